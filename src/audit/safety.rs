//! Deletion safety: may a set of ServiceCIDRs go without leaving an IP outside every range?
//!
//! Stricter than the service-cidr controller on purpose. The controller counts any other range as
//! a parent, terminating ones too, so two overlapping ranges deleted together release each other.
//! Here only a *usable* range (the allocator's rule) outside the set covers an IP, and every IP in
//! use counts: each IPAddress object, and each Service ClusterIP even where no IPAddress records it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::audit::index::{Entry, RangeIndex};
use crate::audit::range::contains_ip;
use crate::model::{ServiceCidr, Snapshot};

/// One IP in use, with who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub ip: IpAddr,
    /// Services holding it, as `namespace/name`: none for an IPAddress whose parentRef names a
    /// Service that is gone or holds another IP (only deleting the IPAddress frees it).
    pub services: Vec<String>,
    /// An IPAddress object records it (false: a Service ClusterIP without one).
    pub recorded: bool,
}

/// Every IP in use that `keep` accepts, once each, in address order. `keep` sees every IPAddress
/// and every Service ClusterIP before anything is built for it: most IPs are dropped there.
pub fn in_use(snapshot: &Snapshot, keep: impl Fn(IpAddr) -> bool) -> Vec<InUse> {
    fn entry(map: &mut BTreeMap<IpAddr, InUse>, ip: IpAddr) -> &mut InUse {
        map.entry(ip).or_insert_with(|| InUse {
            ip,
            services: Vec::new(),
            recorded: false,
        })
    }
    let mut map: BTreeMap<IpAddr, InUse> = BTreeMap::new();
    for a in snapshot.ips.iter().filter(|a| keep(a.ip)) {
        entry(&mut map, a.ip).recorded = true;
    }
    for svc in &snapshot.services {
        for ip in svc.cluster_ips.iter().filter(|ip| keep(**ip)) {
            entry(&mut map, *ip)
                .services
                .push(format!("{}/{}", svc.namespace, svc.name));
        }
    }
    map.into_values()
        .map(|mut u| {
            u.services.sort();
            u.services.dedup();
            u
        })
        .collect()
}

/// An IP in use that a range of the set holds and no usable range outside the set covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub ip: IpAddr,
    /// The ranges of the set it is inside, with the CIDR of each that holds it.
    pub ranges: Vec<(String, IpNet)>,
    pub services: Vec<String>,
    pub recorded: bool,
}

/// Whether an IP inside `containing` is inside a range of the set and inside no usable range
/// outside it.
pub fn uncovered(
    index: &RangeIndex,
    containing: impl IntoIterator<Item = Entry>,
    in_set: impl Fn(&ServiceCidr) -> bool,
) -> bool {
    let mut inside = false;
    for e in containing {
        let range = &index.ranges()[e.range];
        if in_set(range) {
            inside = true;
        } else if range.is_usable() {
            return false;
        }
    }
    inside
}

/// The IPs that make deleting every range named in `set` together unsafe. Empty: safe. The verdict
/// depends only on the set, never on the order of its names.
pub fn set_blockers(snapshot: &Snapshot, set: &[&str]) -> Vec<Blocker> {
    let index = RangeIndex::new(&snapshot.ranges);
    let in_set = |r: &ServiceCidr| set.contains(&r.name.as_str());
    in_use(snapshot, |ip| {
        uncovered(&index, index.containing(ip), in_set)
    })
    .into_iter()
    .map(|u| {
        let mut ranges: Vec<(String, IpNet)> = index
            .containing(u.ip)
            .map(|e| (&snapshot.ranges[e.range], e.cidr))
            .filter(|(r, _)| in_set(r))
            .map(|(r, cidr)| (r.name.clone(), r.cidrs[cidr]))
            .collect();
        ranges.sort();
        ranges.dedup();
        Blocker {
            ip: u.ip,
            ranges,
            services: u.services,
            recorded: u.recorded,
        }
    })
    .collect()
}

/// IPs in use inside any of `cidrs` (ranges that are gone now) and inside no existing range: what a
/// release left behind.
pub fn left_outside(snapshot: &Snapshot, cidrs: &[IpNet]) -> Vec<InUse> {
    let index = RangeIndex::new(&snapshot.ranges);
    in_use(snapshot, |ip| {
        cidrs.iter().any(|c| contains_ip(c, ip)) && index.containing(ip).next().is_none()
    })
}

/// The IPAddresses that keep the service-cidr controller from releasing `target`, by its own rule
/// (`canDeleteCIDR`): made by the allocator (it lists only those), inside the range, and inside no
/// other existing range, terminating or not.
pub fn controller_blockers(snapshot: &Snapshot, target: &str) -> Vec<IpAddr> {
    let index = RangeIndex::new(&snapshot.ranges);
    snapshot
        .ips
        .iter()
        .filter(|a| a.managed)
        .filter(|a| {
            let mut containing = index.containing(a.ip).map(|e| &snapshot.ranges[e.range]);
            let (mut inside, mut other) = (false, false);
            for r in containing.by_ref() {
                if r.name == target {
                    inside = true;
                } else {
                    other = true;
                }
            }
            inside && !other
        })
        .map(|a| a.ip)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, range};
    use crate::model::{ConditionStatus, IpAllocation, ServiceIps};
    use proptest::prelude::*;
    use std::time::SystemTime;

    fn snap(ranges: &[ServiceCidr], ips: &[&str]) -> Snapshot {
        Snapshot {
            ranges: ranges.to_vec(),
            ips: ips.iter().map(|s| alloc(s)).collect(),
            services: vec![],
        }
    }

    fn blocked(ranges: &[ServiceCidr], ips: &[&str], set: &[&str]) -> Vec<String> {
        set_blockers(&snap(ranges, ips), set)
            .iter()
            .map(|b| b.ip.to_string())
            .collect()
    }

    fn dying(name: &str, cidrs: &[&str]) -> ServiceCidr {
        let mut r = range(name, cidrs);
        r.deleting = Some(SystemTime::UNIX_EPOCH);
        r
    }

    #[test]
    fn an_empty_range_is_safe() {
        let ranges = [range("blue", &["10.1.0.0/24"])];
        assert!(blocked(&ranges, &["10.2.0.1"], &["blue"]).is_empty());
    }

    #[test]
    fn an_ip_only_in_the_target_blocks_and_names_its_cidr() {
        let ranges = [
            range("blue", &["10.1.0.0/24", "fd00:1::/112"]),
            range("red", &["10.2.0.0/24"]),
        ];
        let b = set_blockers(
            &snap(&ranges, &["10.1.0.5", "fd00:1::9", "10.2.0.1"]),
            &["blue"],
        );
        let ips: Vec<String> = b.iter().map(|b| b.ip.to_string()).collect();
        assert_eq!(ips, ["10.1.0.5", "fd00:1::9"]);
        assert_eq!(
            b[1].ranges,
            [("blue".into(), "fd00:1::/112".parse().unwrap())]
        );
    }

    #[test]
    fn twins_named_together_are_both_refused_one_alone_is_not() {
        let ranges = [range("a", &["10.1.0.0/24"]), range("b", &["10.1.0.0/24"])];
        assert!(blocked(&ranges, &["10.1.0.10"], &["a"]).is_empty());
        assert!(blocked(&ranges, &["10.1.0.10"], &["b"]).is_empty());
        let both = set_blockers(&snap(&ranges, &["10.1.0.10"]), &["b", "a"]);
        assert_eq!(both.len(), 1);
        let names: Vec<&str> = both[0].ranges.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn inner_and_outer_named_together_are_refused_the_inner_alone_is_not() {
        let ranges = [
            range("outer", &["10.1.0.0/16"]),
            range("inner", &["10.1.5.0/24"]),
        ];
        assert!(blocked(&ranges, &["10.1.5.1"], &["inner"]).is_empty());
        assert_eq!(
            blocked(&ranges, &["10.1.5.1"], &["inner", "outer"]),
            ["10.1.5.1"]
        );
        assert_eq!(
            blocked(&ranges, &["10.1.5.1"], &["outer"]),
            Vec::<String>::new()
        );
        assert_eq!(blocked(&ranges, &["10.1.6.1"], &["outer"]), ["10.1.6.1"]);
    }

    #[test]
    fn the_edges_of_a_nested_range_belong_to_the_outer_one_only() {
        // Kubernetes' PrefixContainsIP: 10.250.0.4 and .7 are not inside 10.250.0.4/30.
        let ranges = [
            range("outer", &["10.250.0.0/24"]),
            range("inner", &["10.250.0.4/30"]),
        ];
        let edges = ["10.250.0.4", "10.250.0.7"];
        assert_eq!(blocked(&ranges, &edges, &["outer"]), edges);
        assert!(blocked(&ranges, &edges, &["inner"]).is_empty());
        assert_eq!(
            controller_blockers(&snap(&ranges, &edges), "outer").len(),
            2
        );
    }

    #[test]
    fn terminating_or_not_ready_covers_do_not_count() {
        let ranges = [
            dying("wide", &["10.1.0.0/16"]),
            range("blue", &["10.1.5.0/24"]),
        ];
        assert_eq!(blocked(&ranges, &["10.1.5.1"], &["blue"]), ["10.1.5.1"]);
        let mut not_ready = range("wide", &["10.1.0.0/16"]);
        not_ready.ready.as_mut().unwrap().status = ConditionStatus::False;
        let ranges = [not_ready, range("blue", &["10.1.5.0/24"])];
        assert_eq!(blocked(&ranges, &["10.1.5.1"], &["blue"]), ["10.1.5.1"]);
    }

    #[test]
    fn a_service_ip_without_an_ipaddress_blocks_too() {
        let mut s = snap(&[range("blue", &["10.79.0.0/24"])], &[]);
        s.services.push(ServiceIps {
            namespace: "a".into(),
            name: "web".into(),
            cluster_ips: vec!["10.79.0.5".parse().unwrap()],
            created: None,
        });
        let b = set_blockers(&s, &["blue"]);
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].recorded, b[0].services.as_slice()),
            (false, &["a/web".to_owned()][..])
        );
    }

    #[test]
    fn what_a_release_left_outside_every_range() {
        let ranges = [range("red", &["10.2.0.0/24"])];
        let gone: Vec<IpNet> = vec!["10.1.0.0/24".parse().unwrap()];
        let left = left_outside(&snap(&ranges, &["10.1.0.5", "10.1.0.0", "10.2.0.5"]), &gone);
        let ips: Vec<String> = left.iter().map(|u| u.ip.to_string()).collect();
        assert_eq!(ips, ["10.1.0.5"]);
    }

    #[test]
    fn the_controller_counts_terminating_ranges_as_parents_and_only_allocator_ips() {
        let ranges = [dying("a", &["10.1.0.0/24"]), dying("b", &["10.1.0.0/24"])];
        let s = snap(&ranges, &["10.1.0.9"]);
        assert!(controller_blockers(&s, "a").is_empty());
        let mut lone = snap(&ranges[..1], &["10.1.0.9", "10.1.0.10"]);
        lone.ips[1].managed = false;
        assert_eq!(
            controller_blockers(&lone, "a"),
            ["10.1.0.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(blocked(&ranges, &["10.1.0.9"], &["a"]), ["10.1.0.9"]);
    }

    /// Kubernetes' PrefixContainsIP on IPv4 integers, restated apart from the crate's own math.
    /// Kubernetes' `PrefixContainsIP` restated on integers: inside the prefix, not its network
    /// address, and for IPv4 not its broadcast address.
    fn k8s_inside(net: &IpNet, ip: IpAddr) -> bool {
        let (first, len, width, x) = match (net, ip) {
            (IpNet::V4(n), IpAddr::V4(i)) => (
                u128::from(u32::from(n.network())),
                n.prefix_len(),
                32,
                u128::from(u32::from(i)),
            ),
            (IpNet::V6(n), IpAddr::V6(i)) => {
                (u128::from(n.network()), n.prefix_len(), 128, u128::from(i))
            }
            _ => return false,
        };
        let last = first + (1u128 << (width - u32::from(len))) - 1;
        x > first && (x < last || (width == 128 && x == last))
    }

    /// An address of the small test spaces: 10.0.T.H, or fd00::T:H as fd00:: + T*256 + H.
    fn test_ip(v6: bool, t: u8, h: u8) -> IpAddr {
        if v6 {
            let base = u128::from(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0));
            IpAddr::V6((base | (u128::from(t) << 8) | u128::from(h)).into())
        } else {
            IpAddr::V4(std::net::Ipv4Addr::new(10, 0, t, h))
        }
    }

    fn arb_range(i: usize) -> impl Strategy<Value = ServiceCidr> {
        // Small spaces so that ranges, edges and IPs collide often; some ranges dual-stack.
        (
            0u8..4,
            24u8..=31,
            prop::option::of((0u8..4, 120u8..=127)),
            any::<bool>(),
            prop::option::of(0u8..3),
        )
            .prop_map(move |(third, len, v6, deleting, ready)| {
                let mut r = range(&format!("r{i}"), &[]);
                r.cidrs = vec![IpNet::new(test_ip(false, third, 0), len).unwrap().trunc()];
                if let Some((t, l)) = v6 {
                    r.cidrs
                        .push(IpNet::new(test_ip(true, t, 0), l).unwrap().trunc());
                }
                r.deleting = deleting.then_some(SystemTime::UNIX_EPOCH);
                r.ready = ready.map(|s| crate::model::ReadyCondition {
                    status: [
                        ConditionStatus::True,
                        ConditionStatus::False,
                        ConditionStatus::Unknown,
                    ][usize::from(s)],
                    reason: String::new(),
                    message: String::new(),
                    since: None,
                    by_controller: true,
                });
                r
            })
    }

    fn arb_ranges() -> impl Strategy<Value = Vec<ServiceCidr>> {
        (1usize..8).prop_flat_map(|n| (0..n).map(arb_range).collect::<Vec<_>>())
    }

    proptest! {
        // The set verdict against a brute-force oracle: for every IP in use (recorded by an
        // IPAddress, or only held by a Service as its ClusterIP), IPv4 and IPv6, is it inside a
        // named range (Kubernetes' rule, on any CIDR) and inside no range outside the set that the
        // allocator uses?
        #[test]
        fn the_set_verdict_matches_a_brute_force_oracle(
            ranges in arb_ranges(),
            hosts in prop::collection::vec((any::<bool>(), 0u8..4, any::<u8>()), 0..40),
            held in prop::collection::vec((any::<bool>(), 0u8..4, any::<u8>()), 0..10),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        ) {
            let ips: Vec<IpAllocation> = hosts.iter().map(|&(v6, t, h)| alloc(&test_ip(v6, t, h).to_string())).collect();
            let services: Vec<crate::model::ServiceIps> = held.iter().enumerate().map(|(i, &(v6, t, h))| crate::model::ServiceIps {
                namespace: "ns".into(),
                name: format!("s{i}"),
                cluster_ips: vec![test_ip(v6, t, h)],
                created: None,
            }).collect();
            let mut set: Vec<&str> = picks.iter().map(|p| ranges[p.index(ranges.len())].name.as_str()).collect();
            let snapshot = Snapshot { ranges: ranges.clone(), ips: ips.clone(), services: services.clone() };
            let found: Vec<IpAddr> = set_blockers(&snapshot, &set).iter().map(|b| b.ip).collect();
            // The order of the names never matters.
            set.reverse();
            let reversed: Vec<IpAddr> = set_blockers(&snapshot, &set).iter().map(|b| b.ip).collect();
            prop_assert_eq!(&found, &reversed);

            // The allocator's rule for a usable range, restated: no deletionTimestamp, and Ready
            // True or not yet set.
            let allocator_uses = |r: &ServiceCidr| r.deleting.is_none()
                && r.ready.as_ref().is_none_or(|c| c.status == ConditionStatus::True);
            let inside = |r: &ServiceCidr, ip: IpAddr| r.cidrs.iter().any(|c| k8s_inside(c, ip));
            let in_use = ips.iter().map(|a| a.ip).chain(services.iter().flat_map(|s| s.cluster_ips.clone()));
            let mut expected: Vec<IpAddr> = in_use.filter(|&ip| {
                let named = ranges.iter().any(|r| set.contains(&r.name.as_str()) && inside(r, ip));
                let covered = ranges.iter().any(|r| !set.contains(&r.name.as_str()) && allocator_uses(r) && inside(r, ip));
                named && !covered
            }).collect();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(found, expected);
        }
    }
}
