//! Usage of every range: capacity, allocated, free, overlaps, and why a terminating range waits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use serde::Serialize;

use crate::audit::index::{Entry, RangeIndex};
use crate::audit::range::{bits, capacity};
use crate::audit::safety::uncovered;
use crate::model::{ConditionStatus, Family, IpAllocation, ReadyCondition, ServiceCidr, Snapshot};

/// Usage from which a range is worth a look, and from which it is about to fill.
pub const WARNING_PERCENT: f64 = 80.0;
pub const CRITICAL_PERCENT: f64 = 95.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    Ready,
    /// No Ready condition yet: the controller has not seen it (the allocator still uses it).
    Pending,
    /// Ready False or Unknown: the allocator gives out no IP from it.
    NotReady,
    Terminating,
}

impl State {
    pub fn of(range: &ServiceCidr) -> State {
        if range.is_terminating() {
            return State::Terminating;
        }
        match range.ready.as_ref().map(|c| c.status) {
            Some(ConditionStatus::True) => State::Ready,
            // The allocator uses a range only while Ready is True or not written yet.
            Some(ConditionStatus::False | ConditionStatus::Unknown) => State::NotReady,
            None => State::Pending,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrUsage {
    pub cidr: IpNet,
    pub family: Family,
    pub capacity: u128,
    /// IPAddresses inside this CIDR (an IP inside overlapping ranges counts in each).
    pub allocated: u64,
    /// IPAddresses for which this CIDR is the most specific container.
    pub attributed: u64,
    /// Names of the other ServiceCIDRs with a CIDR overlapping this one.
    pub overlaps_with: Vec<String>,
    /// Names of the other ServiceCIDRs with this very CIDR: kube-apiserver keeps one allocator
    /// per CIDR string, shared by all of them.
    pub twins: Vec<String>,
    pub allocating: Allocating,
}

/// Whether kube-apiserver hands out new IPs from a CIDR. Its allocator for a CIDR string is
/// ready when any ServiceCIDR naming it is usable, and is made not ready only while a single
/// ServiceCIDR names it (`syncAllocators` in cidrallocator.go): twins none of which is usable
/// leave it as it was, which the objects do not show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Allocating {
    Yes,
    No,
    Unknown,
}

impl Allocating {
    fn of(range: &ServiceCidr, twins: &[&ServiceCidr]) -> Allocating {
        if range.is_usable() || twins.iter().any(|t| t.is_usable()) {
            Allocating::Yes
        } else if twins.is_empty() {
            Allocating::No
        } else {
            Allocating::Unknown
        }
    }
}

impl CidrUsage {
    pub fn free(&self) -> u128 {
        self.capacity.saturating_sub(u128::from(self.allocated))
    }

    pub fn percent(&self) -> f64 {
        if self.capacity == 0 {
            return if self.allocated > 0 { 100.0 } else { 0.0 };
        }
        self.allocated as f64 * 100.0 / self.capacity as f64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeStatus {
    pub name: String,
    pub state: State,
    pub age: Option<Duration>,
    pub terminating_for: Option<Duration>,
    /// For a terminating range: IPAddresses no other usable range covers (our count).
    pub blocking: Option<u64>,
    pub finalizers: Vec<String>,
    pub ready: Option<ReadyCondition>,
    pub cidrs: Vec<CidrUsage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyTotal {
    pub family: Family,
    pub capacity: u128,
    pub allocated: u64,
}

/// Where one IP belongs: its most specific range, or none (an orphan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub ip: IpAddr,
    pub range: Option<(String, IpNet)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub ranges: Vec<RangeStatus>,
    /// Capacity counts each address once even where ranges overlap: it sums only the outermost.
    pub totals: Vec<FamilyTotal>,
    pub orphaned: u64,
    pub attribution: Vec<Attribution>,
}

fn age(now: SystemTime, since: Option<SystemTime>) -> Option<Duration> {
    since.map(|t| now.duration_since(t).unwrap_or_default())
}

/// Builds the report over every range (coverage and overlaps need them all), then keeps the
/// named ones (none: all). Err: a name that is not a range.
pub fn selected(
    snapshot: &Snapshot,
    names: &[String],
    now: SystemTime,
    attribute: bool,
) -> Result<StatusReport, String> {
    if let Some(missing) = names
        .iter()
        .find(|n| !snapshot.ranges.iter().any(|r| &r.name == *n))
    {
        return Err(missing.clone());
    }
    let mut report = status_report(&snapshot.ranges, &snapshot.ips, now, attribute);
    if !names.is_empty() {
        // Totals and the orphan count speak for the whole cluster, not for a selection.
        report.totals.clear();
        report.orphaned = 0;
        report.ranges.retain(|r| names.contains(&r.name));
        report
            .attribution
            .retain(|a| a.range.as_ref().is_some_and(|(n, _)| names.contains(n)));
    }
    Ok(report)
}

/// Builds the report. `attribute` keeps one row per IP for machine output.
pub fn status_report(
    ranges: &[ServiceCidr],
    ips: &[IpAllocation],
    now: SystemTime,
    attribute: bool,
) -> StatusReport {
    let index = RangeIndex::new(ranges);
    let mut allocated: Vec<Vec<u64>> = ranges.iter().map(|r| vec![0; r.cidrs.len()]).collect();
    let mut attributed = allocated.clone();
    let mut blocking = vec![0u64; ranges.len()];
    let mut orphaned = 0;
    let mut attribution = Vec::new();
    let mut containing: Vec<Entry> = Vec::new();
    let mut inside_by_family: BTreeMap<Family, u64> = BTreeMap::new();
    let mut overlaps_with = overlapping(ranges);
    let mut naming: HashMap<IpNet, Vec<&ServiceCidr>> = HashMap::new();
    for r in ranges {
        for net in &r.cidrs {
            naming.entry(*net).or_default().push(r);
        }
    }
    for alloc in ips {
        containing.clear();
        containing.extend(index.containing(alloc.ip));
        for e in &containing {
            allocated[e.range][e.cidr] += 1;
            if ranges[e.range].is_terminating()
                && uncovered(&index, containing.iter().copied(), |r| {
                    r.name == ranges[e.range].name
                })
            {
                blocking[e.range] += 1;
            }
        }
        match containing.first() {
            Some(e) => {
                attributed[e.range][e.cidr] += 1;
                *inside_by_family.entry(Family::of(alloc.ip)).or_default() += 1;
            }
            None => orphaned += 1,
        }
        if attribute {
            attribution.push(Attribution {
                ip: alloc.ip,
                range: containing
                    .first()
                    .map(|e| (ranges[e.range].name.clone(), ranges[e.range].cidrs[e.cidr])),
            });
        }
    }

    let report_ranges = ranges
        .iter()
        .enumerate()
        .map(|(r, range)| RangeStatus {
            name: range.name.clone(),
            state: State::of(range),
            age: age(now, range.created),
            terminating_for: age(now, range.deleting),
            blocking: range.is_terminating().then_some(blocking[r]),
            finalizers: range.finalizers.clone(),
            ready: range.ready.clone(),
            cidrs: range
                .cidrs
                .iter()
                .enumerate()
                .map(|(c, net)| {
                    let twins: Vec<&ServiceCidr> = naming[net]
                        .iter()
                        .copied()
                        .filter(|t| t.name != range.name)
                        .collect();
                    CidrUsage {
                        cidr: *net,
                        family: Family::of_net(net),
                        capacity: capacity(net),
                        allocated: allocated[r][c],
                        attributed: attributed[r][c],
                        overlaps_with: std::mem::take(&mut overlaps_with[r][c]),
                        allocating: Allocating::of(range, &twins),
                        twins: twins.iter().map(|t| t.name.clone()).collect(),
                    }
                })
                .collect(),
        })
        .collect();

    StatusReport {
        ranges: report_ranges,
        totals: totals(ranges, &inside_by_family),
        orphaned,
        attribution,
    }
}

/// For each CIDR of each range, the names of the other ranges with a CIDR sharing an address with
/// it, in range order. Two prefixes share an address only when one contains the other, so sorted
/// by (family, network, length) the prefixes inside one follow it in a single run: sorting and
/// those runs cost O(n log n + pairs), where comparing every pair was quadratic in the ranges.
fn overlapping(ranges: &[ServiceCidr]) -> Vec<Vec<Vec<String>>> {
    let mut nets: Vec<(IpNet, Entry)> = ranges
        .iter()
        .enumerate()
        .flat_map(|(range, r)| {
            r.cidrs
                .iter()
                .enumerate()
                .map(move |(cidr, net)| (net.trunc(), Entry { range, cidr }))
        })
        .collect();
    nets.sort_unstable_by_key(|(net, _)| *net);
    let mut with: Vec<Vec<BTreeSet<usize>>> = ranges
        .iter()
        .map(|r| vec![BTreeSet::new(); r.cidrs.len()])
        .collect();
    for (i, (outer, a)) in nets.iter().enumerate() {
        for (_, b) in nets[i + 1..]
            .iter()
            .take_while(|(inner, _)| outer.contains(inner))
        {
            if a.range != b.range {
                with[a.range][a.cidr].insert(b.range);
                with[b.range][b.cidr].insert(a.range);
            }
        }
    }
    with.into_iter()
        .map(|cidrs| {
            cidrs
                .into_iter()
                .map(|set| set.into_iter().map(|r| ranges[r].name.clone()).collect())
                .collect()
        })
        .collect()
}

/// The addresses the allocator can hand out from one CIDR, as an inclusive interval: never the
/// network address, never the IPv4 broadcast address, nothing from an IPv6 range under /64.
fn allocatable(net: &IpNet) -> Option<(u128, u128)> {
    if capacity(net) == 0 {
        return None;
    }
    let last = match net {
        IpNet::V4(_) => bits(net.broadcast()) - 1,
        IpNet::V6(_) => bits(net.broadcast()),
    };
    Some((bits(net.network()) + 1, last))
}

/// Per family: how many addresses the union of all ranges can hand out (each address once, a
/// nested range's edges counted through the range around it), and the IPs inside some range.
fn totals(ranges: &[ServiceCidr], inside: &BTreeMap<Family, u64>) -> Vec<FamilyTotal> {
    let mut spans: Vec<(Family, u128, u128)> = ranges
        .iter()
        .flat_map(|r| r.cidrs.iter())
        .filter_map(|n| allocatable(n).map(|(lo, hi)| (Family::of_net(n), lo, hi)))
        .collect();
    spans.sort_unstable();
    let mut by_family: BTreeMap<Family, u128> = ranges
        .iter()
        .flat_map(|r| r.cidrs.iter())
        .map(|n| (Family::of_net(n), 0))
        .collect();
    let add = |by: &mut BTreeMap<Family, u128>, (f, lo, hi): (Family, u128, u128)| {
        let sum = by.entry(f).or_default();
        *sum = sum.saturating_add((hi - lo).saturating_add(1));
    };
    let mut run: Option<(Family, u128, u128)> = None;
    for (f, lo, hi) in spans {
        run = match run {
            Some((rf, rlo, rhi)) if rf == f && lo <= rhi.saturating_add(1) => {
                Some((rf, rlo, rhi.max(hi)))
            }
            Some(done) => {
                add(&mut by_family, done);
                Some((f, lo, hi))
            }
            None => Some((f, lo, hi)),
        };
    }
    if let Some(done) = run {
        add(&mut by_family, done);
    }
    by_family
        .into_iter()
        .map(|(family, capacity)| FamilyTotal {
            family,
            capacity,
            allocated: inside.get(&family).copied().unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, range};
    use proptest::prelude::*;

    fn report(ranges: &[ServiceCidr], ips: &[&str]) -> StatusReport {
        let ips: Vec<IpAllocation> = ips.iter().map(|s| alloc(s)).collect();
        status_report(
            ranges,
            &ips,
            SystemTime::UNIX_EPOCH + Duration::from_secs(600),
            true,
        )
    }

    #[test]
    fn twins_share_one_allocator_whose_readiness_neither_shows_alone() {
        let gone = |mut r: ServiceCidr| {
            r.deleting = Some(SystemTime::UNIX_EPOCH);
            r
        };
        let unknown = |mut r: ServiceCidr| {
            r.ready.as_mut().unwrap().status = ConditionStatus::Unknown;
            r
        };
        let allocating = |ranges: &[ServiceCidr]| -> Vec<(Allocating, Vec<String>)> {
            report(ranges, &[])
                .ranges
                .iter()
                .map(|r| (r.cidrs[0].allocating, r.cidrs[0].twins.clone()))
                .collect()
        };
        let (a, b) = (range("a", &["10.1.0.0/24"]), range("b", &["10.1.0.0/24"]));
        let nested = range("c", &["10.1.0.0/25"]);
        // Alone: the range's own state decides.
        assert_eq!(allocating(&[gone(a.clone())]), [(Allocating::No, vec![])]);
        assert_eq!(
            allocating(std::slice::from_ref(&a)),
            [(Allocating::Yes, vec![])]
        );
        // A usable twin keeps the shared allocator ready; a nested range is no twin.
        assert_eq!(
            allocating(&[gone(a.clone()), b.clone(), gone(nested.clone())]),
            [
                (Allocating::Yes, vec!["b".into()]),
                (Allocating::Yes, vec!["a".into()]),
                (Allocating::No, vec![]),
            ]
        );
        // No twin usable: the allocator stays as it was.
        for pair in [
            [gone(a.clone()), gone(b.clone())],
            [unknown(a.clone()), unknown(b.clone())],
        ] {
            assert!(
                allocating(&pair)
                    .iter()
                    .all(|(x, _)| *x == Allocating::Unknown)
            );
        }
    }

    #[test]
    fn percent_is_of_the_capacity_and_a_cidr_without_room_is_full_once_it_holds_one() {
        let usage = |capacity, allocated| CidrUsage {
            cidr: "10.0.0.0/30".parse().unwrap(),
            family: Family::IPv4,
            capacity,
            allocated,
            attributed: 0,
            overlaps_with: vec![],
            twins: vec![],
            allocating: Allocating::Yes,
        };
        assert_eq!(usage(4, 1).percent(), 25.0);
        assert_eq!(usage(0, 0).percent(), 0.0);
        assert_eq!(usage(0, 1).percent(), 100.0);
    }

    /// `status NAME...` keeps the named ranges and then says nothing of the whole cluster's
    /// totals and orphans; a name that is no range is an error.
    #[test]
    fn selected_keeps_the_named_ranges_and_refuses_an_unknown_name() {
        let snapshot = Snapshot {
            ranges: vec![range("a", &["10.1.0.0/24"]), range("b", &["10.2.0.0/24"])],
            ips: ["10.1.0.1", "10.2.0.1", "10.3.0.1"]
                .iter()
                .map(|s| alloc(s))
                .collect(),
            services: vec![],
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(600);
        let pick = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            selected(&snapshot, &names, now, true)
        };
        let all = pick(&[]).unwrap();
        assert_eq!(all.ranges.len(), 2);
        let shape = |r: &StatusReport| (r.totals.len(), r.orphaned, r.attribution.len());
        assert_eq!(shape(&all), (1, 1, 3));
        let a = pick(&["a"]).unwrap();
        let names: Vec<&str> = a.ranges.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(shape(&a), (0, 0, 1));
        assert_eq!(pick(&["a", "nope"]).unwrap_err(), "nope");
    }

    #[test]
    fn counts_allocated_and_free_per_cidr() {
        let ranges = [range("kubernetes", &["10.96.0.0/24", "fd00::/112"])];
        let r = report(
            &ranges,
            &["10.96.0.1", "10.96.0.10", "fd00::1", "10.97.0.1"],
        );
        let cidrs = &r.ranges[0].cidrs;
        assert_eq!((cidrs[0].allocated, cidrs[0].free()), (2, 252));
        assert_eq!((cidrs[1].allocated, cidrs[1].free()), (1, 65_534));
        assert_eq!(r.orphaned, 1);
        assert_eq!(r.ranges[0].state, State::Ready);
        assert_eq!(r.ranges[0].age, Some(Duration::from_secs(600)));
        assert_eq!(
            r.attribution[3],
            Attribution {
                ip: "10.97.0.1".parse().unwrap(),
                range: None
            }
        );
    }

    #[test]
    fn overlapping_ranges_count_an_ip_in_each_and_attribute_it_once() {
        let ranges = [
            range("wide", &["10.0.0.0/16"]),
            range("narrow", &["10.0.5.0/24"]),
        ];
        let r = report(&ranges, &["10.0.5.1", "10.0.6.1"]);
        assert_eq!(r.ranges[0].cidrs[0].allocated, 2);
        assert_eq!(r.ranges[0].cidrs[0].attributed, 1);
        assert_eq!(r.ranges[1].cidrs[0].allocated, 1);
        assert_eq!(r.ranges[1].cidrs[0].attributed, 1);
        assert_eq!(r.ranges[0].cidrs[0].overlaps_with, ["narrow"]);
        assert_eq!(r.ranges[1].cidrs[0].overlaps_with, ["wide"]);
        assert_eq!(
            r.attribution[0].range,
            Some(("narrow".into(), "10.0.5.0/24".parse().unwrap()))
        );
        // The union counts each address once.
        assert_eq!(
            r.totals,
            [FamilyTotal {
                family: Family::IPv4,
                capacity: 65_534,
                allocated: 2
            }]
        );
    }

    #[test]
    fn a_terminating_range_counts_what_blocks_it() {
        let mut blue = range("blue", &["10.1.0.0/24"]);
        blue.deleting = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(540));
        let ranges = [blue, range("cover", &["10.1.0.0/25"])];
        let r = report(&ranges, &["10.1.0.5", "10.1.0.200", "10.1.0.201"]);
        assert_eq!(r.ranges[0].state, State::Terminating);
        assert_eq!(r.ranges[0].terminating_for, Some(Duration::from_secs(60)));
        assert_eq!(r.ranges[0].blocking, Some(2));
        assert_eq!(r.ranges[1].blocking, None);
    }

    #[test]
    fn totals_count_the_union_of_what_the_allocator_hands_out() {
        // A /112 inside a /48 (which no allocator serves) still counts; ::/0 counts nothing.
        let ranges = [
            range("wide", &["fd00::/48"]),
            range("small", &["fd00::/112"]),
            range("all", &["::/0"]),
        ];
        let r = report(&ranges, &["fd00::7"]);
        assert_eq!(r.totals[0].family, Family::IPv6);
        assert_eq!((r.totals[0].capacity, r.totals[0].allocated), (65_535, 1));
        // The network address of a nested range is the outer range's to give.
        let ranges = [
            range("outer", &["10.0.0.0/24"]),
            range("inner", &["10.0.0.4/30"]),
        ];
        assert_eq!(report(&ranges, &[]).totals[0].capacity, 254);
    }

    proptest! {
        // The totals against brute force: every address of a small space, counted when some
        // range holds it by Kubernetes' rule, restated on integers.
        #[test]
        fn totals_match_a_brute_force_count(
            nets in prop::collection::vec((0u32..1024, 22u8..=32), 1..8),
        ) {
            let ranges: Vec<ServiceCidr> = nets.iter().enumerate().map(|(i, (host, len))| {
                let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0x0a00_0000 + host), *len).unwrap().trunc();
                range(&format!("r{i}"), &[&net.to_string()])
            }).collect();
            let held = |a: u32| nets.iter().any(|(host, len)| {
                let size = 1u32 << (32 - u32::from(*len));
                let first = (0x0a00_0000 + host) & !(size - 1);
                a > first && a < first + size - 1
            });
            let brute = (0x0a00_0000u32..0x0a00_0400).filter(|&a| held(a)).count() as u128;
            let r = report(&ranges, &[]);
            prop_assert_eq!(r.totals[0].capacity, brute);
        }
    }

    proptest! {
        // Allocated plus free is the capacity until a range is over-full, and attribution is
        // a partition: every IP is attributed once or is an orphan.
        #[test]
        fn attribution_partitions_the_ips(
            lens in prop::collection::vec((0u8..4, 22u8..=30), 1..6),
            hosts in prop::collection::vec((0u8..4, any::<u8>()), 0..60),
        ) {
            let ranges: Vec<ServiceCidr> = lens.iter().enumerate().map(|(i, (t, l))| {
                let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 0, *t, 0), *l).unwrap().trunc();
                range(&format!("r{i}"), &[&net.to_string()])
            }).collect();
            let ips: Vec<String> = hosts.iter().map(|(t, h)| format!("10.0.{t}.{h}")).collect();
            let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
            let r = report(&ranges, &ips);
            let attributed: u64 = r.ranges.iter().flat_map(|x| &x.cidrs).map(|c| c.attributed).sum();
            prop_assert_eq!(attributed + r.orphaned, ips.len() as u64);
            for c in r.ranges.iter().flat_map(|x| &x.cidrs) {
                prop_assert!(c.attributed <= c.allocated);
                prop_assert!(u128::from(c.allocated) + c.free() >= c.capacity);
            }
        }
    }

    proptest! {
        // Overlaps against brute force: two ranges overlap when some address of the space lies in
        // a CIDR of each (whole prefixes, network and broadcast included), with twins, nesting and
        // several CIDRs per range.
        #[test]
        fn overlaps_match_a_brute_force_search(
            nets in prop::collection::vec(prop::collection::vec((0u32..256, 24u8..=32), 1..3), 1..12),
        ) {
            let parse = |(host, len): &(u32, u8)| {
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0x0a00_0000 + host), *len).unwrap()
            };
            let ranges: Vec<ServiceCidr> = nets.iter().enumerate().map(|(i, cidrs)| {
                let cidrs: Vec<String> = cidrs.iter().map(|c| parse(c).to_string()).collect();
                range(&format!("r{i}"), &cidrs.iter().map(String::as_str).collect::<Vec<_>>())
            }).collect();
            let r = report(&ranges, &[]);
            for (i, cidrs) in nets.iter().enumerate() {
                for (c, own) in cidrs.iter().enumerate() {
                    let own = parse(own);
                    let brute: Vec<String> = nets.iter().enumerate()
                        .filter(|&(j, other)| j != i && other.iter().any(|o| {
                            let o = parse(o);
                            (0x0a00_0000u32..0x0a00_0100)
                                .map(std::net::Ipv4Addr::from)
                                .any(|a| own.contains(&a) && o.contains(&a))
                        }))
                        .map(|(j, _)| format!("r{j}"))
                        .collect();
                    prop_assert_eq!(&r.ranges[i].cidrs[c].overlaps_with, &brute);
                }
            }
        }
    }
}
