//! `status`: one row per CIDR, totals per family, and the documented JSON/YAML shape.

use std::io::{self, Write};

use comfy_table::{Cell, Color};
use serde::Serialize;

use crate::audit::usage::{
    Allocating, CRITICAL_PERCENT, CidrUsage, RangeStatus, State, StatusReport, WARNING_PERCENT,
};
use crate::model::{ConditionStatus, Family, GUARD_FINALIZER};
use crate::render::{age, count, percent, sanitize, table, write_document};
use crate::settings::Style;

pub const KIND: &str = "ServiceCIDRStatus";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDoc<'a> {
    #[serde(rename = "serviceCIDRs")]
    service_cidrs: Vec<RangeDoc<'a>>,
    totals: Vec<TotalDoc>,
    #[serde(rename = "orphanedIPAddresses")]
    orphaned_ip_addresses: u64,
    #[serde(rename = "ipAddresses")]
    ip_addresses: Vec<AttributionDoc<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RangeDoc<'a> {
    name: &'a str,
    state: State,
    age_seconds: Option<u64>,
    terminating_seconds: Option<u64>,
    #[serde(rename = "blockingIPAddresses")]
    blocking_ip_addresses: Option<u64>,
    finalizers: &'a [String],
    ready: Option<ReadyDoc<'a>>,
    cidrs: Vec<CidrDoc<'a>>,
}

#[derive(Serialize)]
struct ReadyDoc<'a> {
    status: ConditionStatus,
    reason: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CidrDoc<'a> {
    cidr: String,
    family: Family,
    capacity: u128,
    allocated: u64,
    free: u128,
    usage_percent: f64,
    attributed: u64,
    overlaps_with: &'a [String],
    allocating: Allocating,
    shares_allocator_with: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TotalDoc {
    family: Family,
    capacity: u128,
    allocated: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttributionDoc<'a> {
    ip: String,
    #[serde(rename = "serviceCIDR")]
    service_cidr: Option<&'a str>,
    cidr: Option<String>,
}

pub fn write(out: &mut impl Write, style: &Style, report: &StatusReport) -> io::Result<()> {
    if !style.output.is_table() {
        return write_document(out, style.output, KIND, &document(report));
    }
    write_table(out, style, report)
}

/// The JSON and YAML body of a report.
pub fn document(report: &StatusReport) -> StatusDoc<'_> {
    {
        StatusDoc {
            service_cidrs: report.ranges.iter().map(range_doc).collect(),
            totals: report
                .totals
                .iter()
                .map(|t| TotalDoc {
                    family: t.family,
                    capacity: t.capacity,
                    allocated: t.allocated,
                })
                .collect(),
            orphaned_ip_addresses: report.orphaned,
            ip_addresses: report
                .attribution
                .iter()
                .map(|a| AttributionDoc {
                    ip: a.ip.to_string(),
                    service_cidr: a.range.as_ref().map(|(n, _)| n.as_str()),
                    cidr: a.range.as_ref().map(|(_, c)| c.to_string()),
                })
                .collect(),
        }
    }
}

fn range_doc(r: &RangeStatus) -> RangeDoc<'_> {
    RangeDoc {
        name: &r.name,
        state: r.state,
        age_seconds: r.age.map(|d| d.as_secs()),
        terminating_seconds: r.terminating_for.map(|d| d.as_secs()),
        blocking_ip_addresses: r.blocking,
        finalizers: &r.finalizers,
        ready: r.ready.as_ref().map(|c| ReadyDoc {
            status: c.status,
            reason: &c.reason,
            message: &c.message,
        }),
        cidrs: r
            .cidrs
            .iter()
            .map(|c| CidrDoc {
                cidr: c.cidr.to_string(),
                family: c.family,
                capacity: c.capacity,
                allocated: c.allocated,
                free: c.free(),
                usage_percent: (c.percent() * 100.0).round() / 100.0,
                attributed: c.attributed,
                overlaps_with: &c.overlaps_with,
                allocating: c.allocating,
                shares_allocator_with: &c.twins,
            })
            .collect(),
    }
}

fn state_cell(style: &Style, r: &RangeStatus) -> Cell {
    let (text, color) = match r.state {
        State::Ready => ("Ready".to_owned(), Color::Green),
        State::Pending => ("Pending".to_owned(), Color::Yellow),
        State::NotReady => ("NotReady".to_owned(), Color::Red),
        State::Terminating => {
            let mut s = format!(
                "Terminating {}",
                r.terminating_for.map(age).unwrap_or_default()
            );
            if let Some(n) = r.blocking.filter(|n| *n > 0) {
                s.push_str(&format!(", blocked by {n}"));
            }
            // Only the plugin's guard is left: a run of `delete NAME` finishes it.
            if r.finalizers == [GUARD_FINALIZER] {
                s.push_str(", guarded: kubectl servicecidr delete resumes");
            }
            (s, Color::Yellow)
        }
    };
    table::colored(style, text, color)
}

/// A ten-cell bar before the percentage, only where colour is on (a terminal).
fn usage_cell(style: &Style, c: &CidrUsage) -> Cell {
    let p = c.percent();
    if !style.color {
        return Cell::new(percent(p));
    }
    let filled = ((p / 10.0).ceil() as usize).min(10);
    table::colored(
        style,
        format!(
            "{}{} {}",
            "█".repeat(filled),
            "░".repeat(10 - filled),
            percent(p)
        ),
        usage_color(p),
    )
}

/// The alerts' thresholds (deploy/monitoring): yellow from 80%, red from 95%.
fn usage_color(percent: f64) -> Color {
    match percent {
        p if p >= CRITICAL_PERCENT => Color::Red,
        p if p >= WARNING_PERCENT => Color::Yellow,
        _ => Color::Green,
    }
}

/// The table's columns.
pub fn headers(style: &Style) -> Vec<&'static str> {
    let mut headers = vec![
        "NAME",
        "CIDR",
        "FAMILY",
        "STATE",
        "ALLOCATED",
        "FREE",
        "USAGE",
        "AGE",
    ];
    if style.wide() {
        headers.extend(["FINALIZERS", "READY", "BLOCKING"]);
    }
    headers
}

/// The right-aligned columns of [`headers`].
pub const NUMERIC: [usize; 2] = [4, 5];

/// For a CIDR whose range is not usable but whose allocator still serves a twin: what the state
/// column alone would hide.
fn shared_allocator_note(r: &RangeStatus, c: &CidrUsage) -> Option<String> {
    if matches!(r.state, State::Ready | State::Pending) {
        return None;
    }
    let twins = c
        .twins
        .iter()
        .map(|n| sanitize(n))
        .collect::<Vec<_>>()
        .join(", ");
    let head = format!("! {} ({})", c.cidr, sanitize(&r.name));
    match c.allocating {
        Allocating::Yes => Some(format!(
            "{head} still gets new IPs: kube-apiserver keeps one allocator per CIDR, shared with {twins}, which is usable"
        )),
        Allocating::Unknown => Some(format!(
            "{head} may still get new IPs: kube-apiserver keeps one allocator per CIDR, shared with {twins}, and with none of them usable it stays as it was"
        )),
        Allocating::No => None,
    }
}

/// A row per CIDR, and a footnote per CIDR that overlaps another range or shares its allocator.
pub fn rows(style: &Style, report: &StatusReport) -> (Vec<Vec<Cell>>, Vec<String>) {
    let mut rows = Vec::new();
    let mut footnotes = Vec::new();
    for r in &report.ranges {
        for (i, c) in r.cidrs.iter().enumerate() {
            let first = i == 0;
            let mut cidr = c.cidr.to_string();
            if !c.overlaps_with.is_empty() {
                cidr.push('*');
                footnotes.push(format!(
                    "* {} ({}) overlaps {}",
                    c.cidr,
                    sanitize(&r.name),
                    c.overlaps_with
                        .iter()
                        .map(|n| sanitize(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(note) = shared_allocator_note(r, c) {
                cidr.push('!');
                footnotes.push(note);
            }
            let mut row = vec![
                Cell::new(if first {
                    sanitize(&r.name)
                } else {
                    String::new()
                }),
                Cell::new(cidr),
                Cell::new(c.family),
                if first {
                    state_cell(style, r)
                } else {
                    Cell::new("")
                },
                Cell::new(count(c.allocated.into())),
                Cell::new(count(c.free())),
                usage_cell(style, c),
                Cell::new(if first {
                    r.age.map(age).unwrap_or_default()
                } else {
                    String::new()
                }),
            ];
            if style.wide() {
                let ready = r.ready.as_ref().map(|c| {
                    let reason = if c.reason.is_empty() {
                        format!("{:?}", c.status)
                    } else {
                        c.reason.clone()
                    };
                    sanitize(&format!("{reason}: {}", c.message))
                });
                row.extend([
                    Cell::new(if first {
                        sanitize(&r.finalizers.join(","))
                    } else {
                        String::new()
                    }),
                    Cell::new(if first {
                        ready.unwrap_or_else(|| "<none>".into())
                    } else {
                        String::new()
                    }),
                    Cell::new(if first {
                        r.blocking
                            .map(|b| b.to_string())
                            .unwrap_or_else(|| "-".into())
                    } else {
                        String::new()
                    }),
                ]);
            }
            rows.push(row);
        }
    }
    (rows, footnotes)
}

fn write_table(out: &mut impl Write, style: &Style, report: &StatusReport) -> io::Result<()> {
    let mut t = table::new(style, &headers(style));
    let (rows, footnotes) = rows(style, report);
    for row in rows {
        t.add_row(row);
    }
    table::finish(&mut t, &NUMERIC);
    table::write(out, &t)?;
    if !style.headers {
        return Ok(());
    }
    for f in footnotes {
        writeln!(out, "{f}")?;
    }
    for total in &report.totals {
        let p = if total.capacity == 0 {
            0.0
        } else {
            total.allocated as f64 * 100.0 / total.capacity as f64
        };
        writeln!(
            out,
            "{}: {} of {} allocated ({})",
            total.family,
            count(total.allocated.into()),
            count(total.capacity),
            percent(p)
        )?;
    }
    if report.orphaned > 0 {
        writeln!(
            out,
            "{} IPAddress{} outside every ServiceCIDR: run `kubectl servicecidr orphans`",
            report.orphaned,
            if report.orphaned == 1 {
                " is"
            } else {
                "es are"
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, range};
    use crate::audit::usage::status_report;
    use crate::model::IpAllocation;
    use crate::settings::Output;
    use std::time::{Duration, SystemTime};

    fn render(output: Output, no_headers: bool) -> String {
        let mut blue = range("blue", &["10.1.0.0/24", "fd00:1::/64"]);
        blue.deleting = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(3570));
        let ranges = [range("kubernetes", &["10.0.0.0/8"]), blue];
        let ips: Vec<IpAllocation> = ["10.1.0.5", "11.0.0.1"].map(alloc).to_vec();
        let report = status_report(
            &ranges,
            &ips,
            SystemTime::UNIX_EPOCH + Duration::from_secs(3600),
            !output.is_table(),
        );
        let style = Style {
            output,
            color: false,
            headers: !no_headers,
        };
        let mut out = Vec::new();
        write(&mut out, &style, &report).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_has_a_row_per_cidr_and_notes_overlaps_and_orphans() {
        let text = render(Output::Table, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("NAME") && lines[0].contains("ALLOCATED"),
            "{text}"
        );
        assert!(lines[1].starts_with("kubernetes   10.0.0.0/8*"), "{text}");
        assert!(
            lines[2].contains("Terminating 30s") && lines[2].contains("10.1.0.0/24*"),
            "{text}"
        );
        assert!(
            lines[3].starts_with(" ")
                && lines[3].contains("fd00:1::/64")
                && lines[3].contains("~2^64"),
            "{text}"
        );
        assert!(
            text.contains("* 10.0.0.0/8 (kubernetes) overlaps blue"),
            "{text}"
        );
        assert!(
            text.contains("1 IPAddress is outside every ServiceCIDR"),
            "{text}"
        );
        let bare = render(Output::Table, true);
        assert!(
            !bare.contains("NAME") && !bare.contains("overlaps") && bare.lines().count() == 3,
            "{bare}"
        );
    }

    #[test]
    fn the_usage_bar_turns_yellow_at_80_and_red_at_95_percent() {
        assert_eq!(usage_color(79.9), Color::Green);
        assert_eq!(usage_color(80.0), Color::Yellow);
        assert_eq!(usage_color(94.9), Color::Yellow);
        assert_eq!(usage_color(95.0), Color::Red);
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&render(Output::Json, false)).unwrap();
        assert_eq!(v["kind"], KIND);
        assert_eq!(v["apiVersion"], crate::render::API_VERSION);
        let blue = &v["serviceCIDRs"][1];
        assert_eq!(blue["state"], "Terminating");
        assert_eq!(blue["terminatingSeconds"], 30);
        assert_eq!(blue["blockingIPAddresses"], 0);
        assert_eq!(blue["cidrs"][1]["capacity"].as_u64(), Some(u64::MAX));
        assert_eq!(v["orphanedIPAddresses"], 1);
        assert_eq!(v["ipAddresses"][0]["serviceCIDR"], "blue");
        let y: serde_json::Value = serde_yaml_ng::from_str(&render(Output::Yaml, false)).unwrap();
        assert_eq!(y, v);
    }
}
