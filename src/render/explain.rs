//! `explain`: an IP or a range in words, and the documented JSON/YAML shape.

use std::io::{self, Write};

use serde::Serialize;

use crate::audit::explain::{Assignable, CidrFacts, Holder, Idle, IpFacts, RangeFacts};
use crate::audit::usage::Allocating;
use crate::model::Family;
use crate::render::{count, sanitize, write_document};
use crate::settings::Style;

pub const KIND: &str = "ServiceCIDRExplanation";

fn idle(i: &Idle) -> String {
    match i {
        Idle::Terminating => "terminating".into(),
        Idle::NotReady(status, reason) if reason.is_empty() => format!("Ready is {status:?}"),
        Idle::NotReady(status, reason) => format!("Ready is {status:?} ({})", sanitize(reason)),
        Idle::Empty => "it holds no address the allocator hands out".into(),
        Idle::Full => "full".into(),
    }
}

fn assignable(a: Assignable) -> &'static str {
    match a {
        Assignable::Yes => "yes: it is inside a range whose allocator hands out IPs, and free",
        Assignable::Taken => "no: it is taken (an IPAddress records it, or a Service holds it)",
        Assignable::NoRange => {
            "no: it is inside no range whose allocator hands out IPs (the apiserver refuses it as outside the valid range)"
        }
    }
}

fn holder_line(h: &Holder) -> String {
    let mut s = format!("{} {}: ", sanitize(&h.range), h.cidr);
    s.push_str(if h.inside {
        "inside"
    } else {
        "its network or broadcast address, which Kubernetes counts as outside"
    });
    match &h.why_not {
        _ if h.usable => s.push_str(", hands out IPs"),
        Some(why) => s.push_str(&format!(", hands out nothing: {}", idle(why))),
        None => s.push_str(", may hand out IPs (its allocator is shared with a twin)"),
    }
    s
}

fn allocating_line(c: &CidrFacts) -> String {
    let twins = c
        .twins
        .iter()
        .map(|t| sanitize(t))
        .collect::<Vec<_>>()
        .join(", ");
    match (c.allocating, &c.why_not) {
        (Allocating::Yes, None) => format!("hands out IPs ({} free)", count(c.free)),
        (Allocating::Yes, Some(why)) if !c.twins.is_empty() => format!(
            "{}, but its allocator is shared with {twins}, which is usable: it still gets new IPs",
            idle(why)
        ),
        (Allocating::Yes, Some(why)) => format!("hands out nothing: {}", idle(why)),
        (Allocating::Unknown, why) => format!(
            "{}; its allocator is shared with {twins} and none is usable: it keeps its last state, so it may still get new IPs",
            why.as_ref().map_or("not usable".into(), idle)
        ),
        (Allocating::No, Some(why)) => format!("hands out nothing: {}", idle(why)),
        (Allocating::No, None) => "hands out nothing".into(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HolderDoc<'a> {
    #[serde(rename = "serviceCIDR")]
    service_cidr: &'a str,
    cidr: String,
    inside: bool,
    usable: bool,
    not_usable_because: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IpDoc<'a> {
    ip: String,
    #[serde(rename = "serviceCIDRs")]
    service_cidrs: Vec<HolderDoc<'a>>,
    ip_address: Option<RecordDoc>,
    services: &'a [String],
    findings: Vec<&'static str>,
    #[serde(rename = "assignableAsClusterIP")]
    assignable: bool,
    reason: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordDoc {
    managed_by_allocator: bool,
    parent: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceDoc<'a> {
    #[serde(rename = "serviceCIDR")]
    service_cidr: &'a str,
    cidr: String,
    free: u128,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CidrDoc<'a> {
    cidr: String,
    family: Family,
    allocating: Allocating,
    not_allocating_because: Option<String>,
    shares_allocator_with: &'a [String],
    free: u128,
    #[serde(rename = "newClusterIPsFrom")]
    new_cluster_ips_from: Vec<SourceDoc<'a>>,
}

#[derive(Serialize)]
struct RangeDoc<'a> {
    name: &'a str,
    cidrs: Vec<CidrDoc<'a>>,
}

fn parent(r: &crate::model::IpAllocation) -> Option<String> {
    r.parent
        .as_ref()
        .map(|p| format!("{} {}/{}", p.resource, p.namespace, p.name))
}

pub fn write_ip(out: &mut impl Write, style: &Style, f: &IpFacts) -> io::Result<()> {
    if !style.output.is_table() {
        let doc = IpDoc {
            ip: f.ip.to_string(),
            service_cidrs: f
                .holders
                .iter()
                .map(|h| HolderDoc {
                    service_cidr: &h.range,
                    cidr: h.cidr.to_string(),
                    inside: h.inside,
                    usable: h.usable,
                    not_usable_because: h.why_not.as_ref().filter(|_| !h.usable).map(idle),
                })
                .collect(),
            ip_address: f.record.as_ref().map(|r| RecordDoc {
                managed_by_allocator: r.managed,
                parent: parent(r),
            }),
            services: &f.services,
            findings: f.findings.iter().map(|x| x.kind.name()).collect(),
            assignable: f.assignable == Assignable::Yes,
            reason: assignable(f.assignable),
        };
        return write_document(out, style.output, KIND, &doc);
    }
    writeln!(out, "{}", f.ip)?;
    if f.holders.is_empty() {
        writeln!(out, "  ServiceCIDRs: none holds it")?;
    } else {
        writeln!(out, "  ServiceCIDRs:")?;
        for h in &f.holders {
            writeln!(out, "    {}", holder_line(h))?;
        }
    }
    match &f.record {
        Some(r) => writeln!(
            out,
            "  IPAddress: {}, parent {}",
            if r.managed {
                "made by the allocator"
            } else {
                "not made by the allocator"
            },
            parent(r).map_or("none".into(), |p| sanitize(&p))
        )?,
        None => writeln!(out, "  IPAddress: none")?,
    }
    let services: Vec<String> = f.services.iter().map(|s| sanitize(s)).collect();
    writeln!(
        out,
        "  Service: {}",
        if services.is_empty() {
            "none holds it".into()
        } else {
            services.join(", ")
        }
    )?;
    let kinds: Vec<&str> = f.findings.iter().map(|x| x.kind.name()).collect();
    writeln!(
        out,
        "  findings: {}",
        if kinds.is_empty() {
            "none".into()
        } else {
            format!("{} (kubectl servicecidr orphans)", kinds.join(", "))
        }
    )?;
    writeln!(
        out,
        "  as a new Service's ClusterIP now: {}",
        assignable(f.assignable)
    )
}

pub fn write_range(out: &mut impl Write, style: &Style, f: &RangeFacts) -> io::Result<()> {
    if !style.output.is_table() {
        let doc = RangeDoc {
            name: &f.name,
            cidrs: f
                .cidrs
                .iter()
                .map(|c| CidrDoc {
                    cidr: c.cidr.to_string(),
                    family: Family::of_net(&c.cidr),
                    allocating: c.allocating,
                    not_allocating_because: c.why_not.as_ref().map(idle),
                    shares_allocator_with: &c.twins,
                    free: c.free,
                    new_cluster_ips_from: c
                        .candidates
                        .iter()
                        .map(|(n, cidr, free)| SourceDoc {
                            service_cidr: n,
                            cidr: cidr.to_string(),
                            free: *free,
                        })
                        .collect(),
                })
                .collect(),
        };
        return write_document(out, style.output, KIND, &doc);
    }
    writeln!(out, "servicecidr {:?}", sanitize(&f.name))?;
    for c in &f.cidrs {
        writeln!(out, "  {}: {}", c.cidr, allocating_line(c))?;
        let family = Family::of_net(&c.cidr);
        if c.candidates.is_empty() {
            writeln!(
                out,
                "    a new {family} ClusterIP: none can be given (no usable {family} range has room)"
            )?;
            continue;
        }
        let from: Vec<String> = c
            .candidates
            .iter()
            .map(|(n, cidr, free)| format!("{} {cidr} ({} free)", sanitize(n), count(*free)))
            .collect();
        writeln!(
            out,
            "    a new {family} ClusterIP comes from one of: {}; kube-apiserver tries its allocators in a random order for each Service and takes the first with room, so every usable range fills, none first",
            from.join(", ")
        )?;
    }
    Ok(())
}
