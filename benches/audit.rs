//! Benchmarks of the pure audit at cluster scale: 100,000 IPAddresses over 1,000 ServiceCIDRs.
//!
//! The data set is built deterministically (no randomness): IPv4 /24 leaves (a third dual-stack
//! with an IPv6 /112), /20 and /108 mid ranges over them, /16 and /96 wide ranges with twins (the
//! same CIDR in two ranges), uncovered IPv4 and IPv6-only ranges, some terminating or not ready,
//! 1% orphaned IPs, and Services with the usual inconsistencies (no Service, a Service holding
//! another IP, unmanaged IPAddresses).
//!
//! Run: `cargo bench --bench audit` (about a minute after the build).

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use kubectl_servicecidr::audit::findings::{AuditOptions, audit};
use kubectl_servicecidr::audit::index::RangeIndex;
use kubectl_servicecidr::audit::safety::set_blockers;
use kubectl_servicecidr::audit::usage::status_report;
use kubectl_servicecidr::model::{
    ConditionStatus, IpAllocation, ParentRef, ReadyCondition, SERVICE_CIDR_FINALIZER, ServiceCidr,
    ServiceIps, Snapshot,
};

const RANGES: usize = 1_000;
const IPS: usize = 100_000;
/// IPv4 /24 leaves: 10.100.0.0/24 .. 10.103.191.0/24.
const LEAVES: usize = 960;
/// /20 (and /108 for the dual-stack ones) over 16 leaves each.
const MIDS: usize = 16;
/// /16 over the leaves, then as many twins of them (the first twin also has fd00:0:0:1::/96).
const WIDES: usize = 4;
/// IPv4 /24 outside every wide range (nothing else covers them).
const LONERS: usize = 8;
/// IPv6-only /112 under fd00:0:0:2::.
const V6_ONLY: usize = RANGES - LEAVES - MIDS - 2 * WIDES - LONERS;

/// All timestamps are relative to the epoch: everything is older than the repair grace.
fn at(secs: u64) -> Option<SystemTime> {
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

const NOW: u64 = 1_000_000;

fn v4(a: u8, b: u8, c: u8, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, a, b, c), len).expect("valid IPv4 prefix"))
}

/// fd00:0:0:SUBNET:: plus `low` in the last 64 bits.
fn v6(subnet: u16, low: u64, len: u8) -> IpNet {
    let bits = (0xfd00u128 << 112) | (u128::from(subnet) << 64) | u128::from(low);
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(bits), len).expect("valid IPv6 prefix"))
}

fn range(i: usize, name: String, cidrs: Vec<IpNet>) -> ServiceCidr {
    let ready = if i % 89 == 7 {
        ConditionStatus::False
    } else {
        ConditionStatus::True
    };
    ServiceCidr {
        name,
        uid: format!("uid-{i}"),
        resource_version: "1".into(),
        cidrs,
        created: at(1_000),
        // A few of every kind terminate: leaves (covered by the wide ranges) and loners (not).
        deleting: (i % 50 == 7 || i == LEAVES + MIDS + 2 * WIDES + 1)
            .then(|| at(NOW - 30).unwrap()),
        finalizers: vec![SERVICE_CIDR_FINALIZER.into()],
        ready: Some(ReadyCondition {
            status: ready,
            reason: String::new(),
            message: String::new(),
            since: None,
            by_controller: true,
        }),
    }
}

fn ranges() -> Vec<ServiceCidr> {
    let mut out = Vec::with_capacity(RANGES);
    for i in 0..LEAVES {
        let mut cidrs = vec![v4(100 + (i / 256) as u8, (i % 256) as u8, 0, 24)];
        if i.is_multiple_of(3) {
            cidrs.push(v6(1, (i as u64) << 16, 112));
        }
        out.push(range(i, format!("leaf-{i:03}"), cidrs));
    }
    for k in 0..MIDS {
        let mut cidrs = vec![v4(100, (k * 16) as u8, 0, 20)];
        if k.is_multiple_of(2) {
            cidrs.push(v6(1, (k as u64) << 20, 108));
        }
        out.push(range(out.len(), format!("mid-{k:02}"), cidrs));
    }
    for twin in 0..2 {
        for w in 0..WIDES {
            let mut cidrs = vec![v4(100 + w as u8, 0, 0, 16)];
            if twin == 1 && w == 0 {
                cidrs.push(v6(1, 0, 96));
            }
            out.push(range(out.len(), format!("wide-{w}-{twin}"), cidrs));
        }
    }
    for s in 0..LONERS {
        out.push(range(
            out.len(),
            format!("loner-{s}"),
            vec![v4(120, s as u8, 0, 24)],
        ));
    }
    for s in 0..V6_ONLY {
        out.push(range(
            out.len(),
            format!("v6-{s:02}"),
            vec![v6(2, (s as u64) << 16, 112)],
        ));
    }
    assert_eq!(out.len(), RANGES);
    out
}

/// Ten copies of `ranges()`, each in its own IPv4 /8 and IPv6 /48: 10,000 ranges of the same
/// shape, for the per-range work at ten times the ranges.
fn ten_thousand_ranges() -> Vec<ServiceCidr> {
    (0..10u32)
        .flat_map(|copy| {
            ranges().into_iter().map(move |mut r| {
                r.name = format!("{}-{copy}", r.name);
                for net in &mut r.cidrs {
                    *net = match *net {
                        IpNet::V4(n) => IpNet::V4(
                            Ipv4Net::new(
                                Ipv4Addr::from(u32::from(n.addr()) + (copy << 24)),
                                n.prefix_len(),
                            )
                            .expect("valid IPv4 prefix"),
                        ),
                        IpNet::V6(n) => IpNet::V6(
                            Ipv6Net::new(
                                Ipv6Addr::from(u128::from(n.addr()) + (u128::from(copy) << 80)),
                                n.prefix_len(),
                            )
                            .expect("valid IPv6 prefix"),
                        ),
                    };
                }
                r
            })
        })
        .collect()
}

/// Address number `host` of `net`.
fn nth(net: &IpNet, host: u64) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + host as u32)),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + u128::from(host))),
    }
}

fn snapshot(ranges: Vec<ServiceCidr>) -> Snapshot {
    let mut seen = HashSet::with_capacity(IPS);
    let mut ips = Vec::with_capacity(IPS);
    let mut services = Vec::with_capacity(IPS);
    let mut j: u64 = 0;
    while ips.len() < IPS {
        let round = j / RANGES as u64;
        let ip = if j % 100 == 99 {
            // 1% orphans: in no range at all, half of them IPv6.
            let o = j / 100;
            if o.is_multiple_of(2) {
                nth(&v4(200, 0, 0, 16), 1 + o)
            } else {
                nth(&v6(0xdead, 0, 64), 1 + o)
            }
        } else {
            // Spread over every range; dual-stack ranges alternate families by round. Mid and
            // wide ranges get their own IPs high in their CIDR; duplicates are skipped below.
            let r = &ranges[(j % RANGES as u64) as usize];
            let net = &r.cidrs[(round as usize) % r.cidrs.len()];
            let host = match net.prefix_len() {
                24 | 112 => 1 + round,
                _ => 50_000 - 7 * round - (j % 7),
            };
            let host = match net {
                IpNet::V4(n) if n.prefix_len() < 24 => {
                    host % ((1u64 << (32 - n.prefix_len())) - 2) + 1
                }
                _ => host,
            };
            nth(net, host)
        };
        j += 1;
        if !seen.insert(ip) {
            continue;
        }
        let ns = format!("ns-{}", j % 20);
        let name = format!("svc-{j}");
        let parent = ParentRef {
            group: String::new(),
            resource: "services".into(),
            namespace: ns.clone(),
            name: name.clone(),
        };
        ips.push(IpAllocation {
            ip,
            parent: Some(parent),
            managed: j % 500 != 11,
            created: at(2_000),
        });
        // Every 50th IP lost its Service (DanglingParent); every 200th Service moved to another
        // IP that was never recorded (WrongParent + Unrecorded).
        if j % 50 == 3 {
            continue;
        }
        let held = if j % 200 == 17 {
            nth(&v4(150, 0, 0, 16), 1 + j / 200)
        } else {
            ip
        };
        services.push(ServiceIps {
            namespace: ns,
            name,
            cluster_ips: vec![held],
            created: at(2_000),
        });
    }
    Snapshot {
        ranges,
        ips,
        services,
    }
}

fn benches(c: &mut Criterion) {
    let snap = snapshot(ranges());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
    let opts = AuditOptions {
        now,
        include_recent: false,
    };
    // Sanity: the data set has what the benchmarks claim.
    let findings = audit(&snap, &opts);
    assert!(findings.len() > 3_000, "{} findings", findings.len());
    let report = status_report(&snap.ranges, &snap.ips, now, false);
    assert!(report.orphaned >= (IPS / 100) as u64, "{}", report.orphaned);
    let index = RangeIndex::new(&snap.ranges);
    assert!(!set_blockers(&snap, &["loner-1"]).is_empty());
    assert!(set_blockers(&snap, &["leaf-007"]).is_empty());

    let mut g = c.benchmark_group("audit_100k_ips_1k_ranges");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    g.throughput(Throughput::Elements(RANGES as u64));
    g.bench_function("range_index_new", |b| {
        b.iter(|| RangeIndex::new(black_box(&snap.ranges)))
    });

    // The per-range part of the report alone (overlaps, totals): no IPs at all.
    g.bench_function("status_report_ranges_only", |b| {
        b.iter(|| status_report(black_box(&snap.ranges), &[], now, false))
    });
    let many = ten_thousand_ranges();
    g.throughput(Throughput::Elements(many.len() as u64));
    g.bench_function("status_report_ranges_only_10k", |b| {
        b.iter(|| status_report(black_box(&many), &[], now, false))
    });

    g.throughput(Throughput::Elements(IPS as u64));
    g.bench_function("index_containing_every_ip", |b| {
        b.iter(|| {
            snap.ips
                .iter()
                .map(|a| index.containing(black_box(a.ip)).count())
                .sum::<usize>()
        })
    });
    g.bench_function("findings_audit_with_services", |b| {
        b.iter(|| audit(black_box(&snap), &opts))
    });
    g.bench_function("status_report_table", |b| {
        b.iter(|| status_report(black_box(&snap.ranges), &snap.ips, now, false))
    });
    g.bench_function("status_report_attributed_json", |b| {
        b.iter(|| status_report(black_box(&snap.ranges), &snap.ips, now, true))
    });
    // One delete check: the index, every IP in use, the verdict for the set.
    g.bench_function("set_verdict_leaf", |b| {
        b.iter(|| set_blockers(black_box(&snap), &["leaf-007"]))
    });
    g.bench_function("set_verdict_wide", |b| {
        b.iter(|| set_blockers(black_box(&snap), &["wide-0-0"]))
    });
    g.finish();
}

criterion_group!(audit_benches, benches);
criterion_main!(audit_benches);
