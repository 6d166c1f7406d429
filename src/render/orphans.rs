//! `orphans`: counts per kind (like `calicoctl ipam check`), then every finding with its action.

use std::io::{self, Write};

use comfy_table::{Cell, Color};
use ipnet::IpNet;
use serde::Serialize;

use crate::audit::findings::{Finding, FindingKind, Remedy, counts};
use crate::render::{age, sanitize, table, write_document};
use crate::settings::Style;

pub const KIND: &str = "ServiceCIDRAudit";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditDoc<'a> {
    summary: Vec<CountDoc>,
    findings: FindingsDoc<'a>,
    /// Findings of kinds that --kind left out.
    left_out: usize,
    suggested_ranges: Vec<String>,
}

#[derive(Serialize)]
struct CountDoc {
    kind: FindingKind,
    count: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FindingDoc<'a> {
    kind: FindingKind,
    ip: String,
    service: Option<&'a str>,
    #[serde(rename = "serviceCIDRs")]
    service_cidrs: &'a [String],
    age_seconds: Option<u64>,
    self_healing: bool,
    remedy: Remedy,
    action: String,
}

/// The findings, each made into its document only as it is written: a list of 200,000 is never
/// held twice.
struct FindingsDoc<'a>(&'a [Finding]);

impl Serialize for FindingsDoc<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|f| FindingDoc {
            kind: f.kind,
            ip: f.ip.to_string(),
            service: f.service.as_deref(),
            service_cidrs: &f.ranges,
            age_seconds: f.age.map(|a| a.as_secs()),
            self_healing: f.self_healing,
            remedy: f.remedy,
            action: action(f),
        }))
    }
}

/// What to do about a finding, as a command an operator can run.
pub fn action(f: &Finding) -> String {
    let ip = f.ip;
    let or_recreate = |h: Option<&str>| {
        h.map(|s| format!(", or recreate Service {s}"))
            .unwrap_or_default()
    };
    // For findings about an IPAddress's parentRef: what is wrong with it.
    let parent = f.parent.as_deref().unwrap_or("<none>");
    let what = match f.kind {
        FindingKind::DanglingParent => format!("Service {parent} no longer exists"),
        _ => format!("Service {parent} does not hold {ip}"),
    };
    let holder = f.holder.as_deref().unwrap_or("<none>");
    match f.remedy {
        Remedy::Cover if f.kind == FindingKind::AtRisk => format!(
            "create a ServiceCIDR covering {ip} before {} is released (orphans --suggest-range){}",
            f.ranges.join(", "),
            or_recreate(f.holder.as_deref())
        ),
        Remedy::Cover => match &f.holder {
            Some(h) => format!(
                "create a ServiceCIDR covering {ip} (orphans --suggest-range), or recreate Service {h} to get an IP from a live range"
            ),
            None => format!(
                "create a ServiceCIDR covering {ip} (orphans --suggest-range) if it is still needed"
            ),
        },
        Remedy::RepairReplaces => format!(
            "not made by the apiserver's allocator; Service {holder} holds it, so the repair loop replaces it with an allocator-made IPAddress when it next syncs that Service"
        ),
        Remedy::AskCreator => "not made by the apiserver's allocator and held by no Service, so the repair loop never touches it: check the tool that created it".into(),
        Remedy::Keep => format!(
            "{what}, but Service {holder} holds this IP: do not delete it; recreate Service {holder} if the repair loop does not re-record it"
        ),
        Remedy::RepairDeletes => {
            let event = match f.kind {
                FindingKind::DanglingParent => "IPAddressNotAllocated",
                _ => "IPAddressWrongReference",
            };
            format!(
                "{what}: the apiserver's repair loop deletes it ({event}) within minutes; if it stays: kubectl delete ipaddress {ip}"
            )
        }
        Remedy::Delete => {
            format!("{what}: no Service holds this IP, delete it: kubectl delete ipaddress {ip}")
        }
        Remedy::RepairRecords => format!(
            "the apiserver's repair loop records it (ClusterIPNotAllocated) within minutes; if not, recreate Service {holder}"
        ),
    }
}

/// The JSON and YAML body of an audit.
pub fn document<'a>(findings: &'a [Finding], left_out: usize, suggested: &[IpNet]) -> AuditDoc<'a> {
    AuditDoc {
        summary: counts(findings)
            .iter()
            .map(|&(kind, count)| CountDoc { kind, count })
            .collect(),
        left_out,
        findings: FindingsDoc(findings),
        suggested_ranges: suggested.iter().map(ToString::to_string).collect(),
    }
}

/// The columns of the findings table; ACTION comes last.
pub fn finding_headers(style: &Style) -> Vec<&'static str> {
    let mut headers = vec!["KIND", "IP", "SERVICE", "AGE", "ACTION"];
    if style.wide() {
        headers.insert(3, "SERVICECIDRS");
    }
    headers
}

pub fn finding_row(style: &Style, f: &Finding) -> Vec<String> {
    let mut row = vec![
        f.kind.name().to_owned(),
        f.ip.to_string(),
        f.service
            .as_deref()
            .map(sanitize)
            .unwrap_or_else(|| "<none>".into()),
        f.age.map(age).unwrap_or_default(),
        sanitize(&action(f)),
    ];
    if style.wide() {
        row.insert(3, sanitize(&f.ranges.join(",")));
    }
    row
}

pub fn write(
    out: &mut impl Write,
    style: &Style,
    findings: &[Finding],
    left_out: usize,
    suggested: &[IpNet],
) -> io::Result<()> {
    let summary = counts(findings);
    if !style.output.is_table() {
        let doc = document(findings, left_out, suggested);
        return write_document(out, style.output, KIND, &doc);
    }
    if findings.is_empty() {
        if left_out > 0 {
            writeln!(
                out,
                "Nothing of the kinds asked for; {left_out} finding(s) of other kinds were left out by --kind."
            )?;
        } else if style.headers {
            writeln!(
                out,
                "No inconsistencies found between Services, IPAddresses and ServiceCIDRs."
            )?;
        }
        return Ok(());
    }
    let mut t = table::new(style, &["KIND", "COUNT", "REPAIRED BY APISERVER"]);
    for (kind, n) in &summary {
        // Said of the rows themselves, so the summary never contradicts them.
        let healing = findings
            .iter()
            .filter(|f| f.kind == *kind && f.self_healing)
            .count();
        let color = if healing == *n {
            Color::Yellow
        } else {
            Color::Red
        };
        t.add_row(vec![
            table::colored(style, format!("{kind:?}"), color),
            Cell::new(n),
            Cell::new(match healing {
                0 => "no".to_owned(),
                h if h == *n => "yes (within minutes)".to_owned(),
                h => format!("{h} of {n} (within minutes)"),
            }),
        ]);
    }
    table::finish(&mut t, &[1]);
    table::write(out, &t)?;
    writeln!(out)?;

    // A row per finding, written as it is made: the widths come from a first pass.
    table::write_streamed(out, style, &finding_headers(style), || {
        findings.iter().map(|f| finding_row(style, f))
    })?;
    if !suggested.is_empty() && style.headers {
        let list: Vec<String> = suggested.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "\nA ServiceCIDR with {} would cover the orphaned and at-risk IPs: see --suggest-range",
            list.join(", ")
        )?;
    }
    Ok(())
}

/// A manifest, one ServiceCIDR per suggested CIDR, ready for `kubectl apply -f -`.
pub fn write_manifest(
    out: &mut impl Write,
    api_version: &str,
    suggested: &[IpNet],
) -> io::Result<()> {
    for (i, net) in suggested.iter().enumerate() {
        if i > 0 {
            writeln!(out, "---")?;
        }
        writeln!(
            out,
            "apiVersion: networking.k8s.io/{api_version}\nkind: ServiceCIDR\nmetadata:\n  name: {}\nspec:\n  cidrs:\n  - {net}",
            manifest_name(net)
        )?;
    }
    Ok(())
}

/// A DNS-1123 name from the CIDR: every address part, then the prefix length.
fn manifest_name(net: &IpNet) -> String {
    let parts: Vec<String> = match net.network() {
        std::net::IpAddr::V4(a) => a.octets().iter().map(u8::to_string).collect(),
        std::net::IpAddr::V6(a) => a.segments().iter().map(|s| format!("{s:x}")).collect(),
    };
    format!("recovered-{}-{}", parts.join("-"), net.prefix_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Output;
    use std::time::Duration;

    fn finding(kind: FindingKind, ip: &str) -> Finding {
        Finding {
            kind,
            ip: ip.parse().unwrap(),
            service: Some("a/web".into()),
            holder: Some("a/web".into()),
            parent: None,
            ranges: vec![],
            age: Some(Duration::from_secs(90)),
            self_healing: false,
            remedy: Remedy::Cover,
        }
    }

    #[test]
    fn only_the_remedies_that_delete_say_delete() {
        use Remedy::*;
        for remedy in [
            Cover,
            RepairReplaces,
            AskCreator,
            Keep,
            RepairDeletes,
            Delete,
            RepairRecords,
        ] {
            for kind in FindingKind::ALL {
                let f = Finding {
                    remedy,
                    ..finding(kind, "10.96.0.5")
                };
                let text = action(&f);
                assert_eq!(
                    text.contains("kubectl delete ipaddress 10.96.0.5"),
                    remedy.deletes_ipaddress(),
                    "{remedy:?}: {text}"
                );
                if remedy == Keep {
                    assert!(text.contains("do not delete it"), "{text}");
                }
            }
        }
    }

    fn render(output: Output, f: &[Finding]) -> String {
        let mut out = Vec::new();
        let nets: Vec<IpNet> = vec!["10.1.0.0/28".parse().unwrap()];
        write(
            &mut out,
            &Style {
                output,
                color: false,
                headers: true,
            },
            f,
            0,
            &nets,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn groups_by_kind_with_counts_then_lists_each() {
        let f = [
            finding(FindingKind::Orphaned, "10.1.0.5"),
            finding(FindingKind::Orphaned, "10.1.0.6"),
            finding(FindingKind::Unrecorded, "10.96.0.9"),
        ];
        let text = render(Output::Table, &f);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1].split_whitespace().take(2).collect::<Vec<_>>(),
            ["Orphaned", "2"]
        );
        assert_eq!(
            lines[2].split_whitespace().take(2).collect::<Vec<_>>(),
            ["Unrecorded", "1"]
        );
        assert!(
            text.lines().any(|l| l
                .split_whitespace()
                .take(3)
                .eq(["Orphaned", "10.1.0.6", "a/web"])),
            "{text}"
        );
        assert!(render(Output::Table, &[]).starts_with("No inconsistencies"));
        let mut out = Vec::new();
        let style = Style {
            output: Output::Table,
            color: false,
            headers: true,
        };
        write(&mut out, &style, &[], 3, &[]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("3 finding(s) of other kinds were left out"),
            "{text}"
        );
    }

    /// Only `-o wide` shows the ranges a finding is about, before AGE.
    #[test]
    fn wide_adds_the_ranges_column() {
        let f = [Finding {
            ranges: vec!["blue".into(), "green".into()],
            ..finding(FindingKind::AtRisk, "10.1.0.5")
        }];
        let header = |output| {
            let text = render(output, &f);
            let line = text.lines().find(|l| l.contains("ACTION")).unwrap();
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        assert_eq!(
            header(Output::Wide),
            "KIND IP SERVICE SERVICECIDRS AGE ACTION"
        );
        assert_eq!(header(Output::Table), "KIND IP SERVICE AGE ACTION");
        assert!(render(Output::Wide, &f).contains("blue,green"));
        assert!(!render(Output::Table, &f).contains("blue,green"));
    }

    #[test]
    fn json_lists_every_finding() {
        let v: serde_json::Value = serde_json::from_str(&render(
            Output::Json,
            &[finding(FindingKind::AtRisk, "fd00::5")],
        ))
        .unwrap();
        assert_eq!(v["kind"], KIND);
        assert_eq!(v["summary"][0]["kind"], "AtRisk");
        assert_eq!(v["findings"][0]["ip"], "fd00::5");
        assert_eq!(v["findings"][0]["ageSeconds"], 90);
        assert_eq!(v["suggestedRanges"][0], "10.1.0.0/28");
    }

    #[test]
    fn manifests_are_valid_yaml_with_dns_names() {
        let mut out = Vec::new();
        let nets: Vec<IpNet> = vec![
            "10.1.0.0/28".parse().unwrap(),
            "fd00:1::/124".parse().unwrap(),
        ];
        write_manifest(&mut out, "v1", &nets).unwrap();
        let text = String::from_utf8(out).unwrap();
        let docs: Vec<serde_json::Value> = text
            .split("---\n")
            .map(|d| serde_yaml_ng::from_str(d).unwrap())
            .collect();
        assert_eq!(docs[0]["metadata"]["name"], "recovered-10-1-0-0-28");
        assert_eq!(
            docs[1]["metadata"]["name"],
            "recovered-fd00-1-0-0-0-0-0-0-124"
        );
        assert_eq!(docs[1]["spec"]["cidrs"][0], "fd00:1::/124");
    }
}
