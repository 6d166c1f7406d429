//! Which ranges contain an IP: one hash lookup per distinct prefix length, not a scan of ranges.
//!
//! "Contain" is Kubernetes' `PrefixContainsIP` (`range::contains_ip`): never a range's own network
//! or IPv4 broadcast address.

use std::net::IpAddr;

use foldhash::HashMap;

use crate::audit::range::{bits, contains_ip, mask};
use crate::model::{Family, ServiceCidr};

/// One CIDR of one ServiceCIDR: indexes into the slice the index was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub range: usize,
    pub cidr: usize,
}

#[derive(Debug, Default)]
struct FamilyIndex {
    /// Distinct prefix lengths present, longest (most specific) first.
    lens: Vec<u8>,
    by_prefix: HashMap<(u128, u8), Vec<Entry>>,
}

#[derive(Debug)]
pub struct RangeIndex<'a> {
    ranges: &'a [ServiceCidr],
    v4: FamilyIndex,
    v6: FamilyIndex,
}

impl<'a> RangeIndex<'a> {
    pub fn new(ranges: &'a [ServiceCidr]) -> Self {
        let mut index = RangeIndex {
            ranges,
            v4: FamilyIndex::default(),
            v6: FamilyIndex::default(),
        };
        for (r, range) in ranges.iter().enumerate() {
            for (c, net) in range.cidrs.iter().enumerate() {
                let family = Family::of_net(net);
                let fi = index.family_mut(family);
                let len = net.prefix_len();
                let key = (mask(bits(net.network()), len, family), len);
                fi.by_prefix
                    .entry(key)
                    .or_default()
                    .push(Entry { range: r, cidr: c });
                if !fi.lens.contains(&len) {
                    fi.lens.push(len);
                }
            }
        }
        for fi in [&mut index.v4, &mut index.v6] {
            fi.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        index
    }

    fn family_mut(&mut self, family: Family) -> &mut FamilyIndex {
        match family {
            Family::IPv4 => &mut self.v4,
            Family::IPv6 => &mut self.v6,
        }
    }

    fn family(&self, family: Family) -> &FamilyIndex {
        match family {
            Family::IPv4 => &self.v4,
            Family::IPv6 => &self.v6,
        }
    }

    pub fn ranges(&self) -> &'a [ServiceCidr] {
        self.ranges
    }

    /// Every CIDR that contains `ip` as Kubernetes counts it, most specific first.
    pub fn containing(&self, ip: IpAddr) -> impl Iterator<Item = Entry> + '_ {
        let family = Family::of(ip);
        let fi = self.family(family);
        let b = bits(ip);
        fi.lens
            .iter()
            .flat_map(move |&len| {
                fi.by_prefix
                    .get(&(mask(b, len, family), len))
                    .into_iter()
                    .flatten()
                    .copied()
            })
            .filter(move |e| contains_ip(&self.ranges[e.range].cidrs[e.cidr], ip))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{ConditionStatus, ReadyCondition};
    use proptest::prelude::*;
    use std::time::SystemTime;

    pub fn range(name: &str, cidrs: &[&str]) -> ServiceCidr {
        ServiceCidr {
            name: name.into(),
            uid: format!("uid-{name}"),
            resource_version: "1".into(),
            cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            created: Some(SystemTime::UNIX_EPOCH),
            deleting: None,
            finalizers: vec![crate::model::SERVICE_CIDR_FINALIZER.into()],
            ready: Some(ReadyCondition {
                status: ConditionStatus::True,
                reason: String::new(),
                message: "Kubernetes Service CIDR is ready".into(),
                since: Some(SystemTime::UNIX_EPOCH),
                by_controller: true,
            }),
        }
    }

    /// A finding of this kind about this IP, with nothing else known.
    pub fn finding(
        kind: crate::audit::findings::FindingKind,
        ip: &str,
    ) -> crate::audit::findings::Finding {
        crate::audit::findings::Finding {
            kind,
            ip: ip.parse().unwrap(),
            service: None,
            holder: None,
            parent: None,
            ranges: vec![],
            age: None,
            self_healing: false,
            remedy: crate::audit::findings::Remedy::Cover,
        }
    }

    pub fn alloc(ip: &str) -> crate::model::IpAllocation {
        crate::model::IpAllocation {
            ip: ip.parse().unwrap(),
            parent: None,
            managed: true,
            created: None,
        }
    }

    fn names(index: &RangeIndex, ip: &str) -> Vec<String> {
        index
            .containing(ip.parse().unwrap())
            .map(|e| index.ranges()[e.range].name.clone())
            .collect()
    }

    #[test]
    fn finds_every_containing_range_most_specific_first() {
        let ranges = vec![
            range("wide", &["10.0.0.0/8"]),
            range("blue", &["10.96.0.0/16", "fd00:10:96::/112"]),
            range("narrow", &["10.96.5.0/24"]),
            range("twin", &["10.96.5.0/24"]),
        ];
        let index = RangeIndex::new(&ranges);
        assert_eq!(
            names(&index, "10.96.5.1"),
            ["narrow", "twin", "blue", "wide"]
        );
        assert_eq!(names(&index, "10.96.6.1"), ["blue", "wide"]);
        // A range's network address is not inside it (PrefixContainsIP), nor its IPv4 broadcast.
        assert_eq!(names(&index, "10.96.0.0"), ["wide"]);
        assert_eq!(names(&index, "10.96.5.255"), ["blue", "wide"]);
        assert_eq!(names(&index, "10.96.255.255"), ["wide"]);
        assert_eq!(names(&index, "10.0.0.0"), Vec::<String>::new());
        assert_eq!(names(&index, "11.0.0.1"), Vec::<String>::new());
        assert_eq!(names(&index, "fd00:10:96::5"), ["blue"]);
        assert_eq!(names(&index, "fd00:10:97::5"), Vec::<String>::new());
        // An IPv4 address never matches an IPv6 range with the same low bits, nor the reverse.
        assert_eq!(names(&index, "::a60:501"), Vec::<String>::new());
    }

    fn arb_net() -> impl Strategy<Value = ipnet::IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(b, l)| ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(b.into(), l).unwrap().trunc()
            )),
            (any::<u128>(), 0u8..=128).prop_map(|(b, l)| ipnet::IpNet::V6(
                ipnet::Ipv6Net::new(b.into(), l).unwrap().trunc()
            )),
        ]
    }

    /// Kubernetes' `PrefixContainsIP`, restated from its Go source on plain integers and
    /// independent of this crate's range math: the prefix contains the IP, the IP is not
    /// `prefix.Addr()`, and for IPv4 it is not the last address of the prefix.
    fn k8s_prefix_contains_ip(net: &ipnet::IpNet, ip: IpAddr) -> bool {
        match (net, ip) {
            (ipnet::IpNet::V4(n), IpAddr::V4(a)) => {
                let len = u32::from(n.prefix_len());
                let first = u32::from(n.network());
                let size: u64 = 1u64 << (32 - len);
                let a = u32::from(a);
                let last = (u64::from(first) + size - 1) as u32;
                a >= first && a <= last && a != first && a != last
            }
            (ipnet::IpNet::V6(n), IpAddr::V6(a)) => {
                let len = u32::from(n.prefix_len());
                let first = u128::from(n.network());
                let a = u128::from(a);
                let same_prefix = len == 0 || (a ^ first) >> (128 - len) == 0;
                same_prefix && a != first
            }
            _ => false,
        }
    }

    proptest! {
        // The index agrees with Kubernetes' rule applied to every range.
        #[test]
        fn index_matches_a_linear_scan(
            nets in prop::collection::vec(arb_net(), 0..24),
            probes in prop::collection::vec(any::<IpAddr>(), 0..24),
        ) {
            let ranges: Vec<ServiceCidr> = nets
                .iter()
                .enumerate()
                .map(|(i, n)| ServiceCidr { cidrs: vec![*n], ..range(&format!("r{i}"), &[]) })
                .collect();
            let index = RangeIndex::new(&ranges);
            // Probe every edge: network and broadcast addresses, and their neighbours.
            let edges = nets.iter().flat_map(|n| {
                let (lo, hi) = (crate::audit::range::bits(n.network()), crate::audit::range::bits(n.broadcast()));
                let f = Family::of_net(n);
                [lo, lo.wrapping_add(1), hi, hi.wrapping_sub(1)].map(|b| crate::audit::range::from_bits(b, f))
            });
            for ip in probes.into_iter().chain(edges) {
                let mut found: Vec<usize> = index.containing(ip).map(|e| e.range).collect();
                let lens: Vec<u8> = found.iter().map(|&r| ranges[r].cidrs[0].prefix_len()).collect();
                prop_assert!(lens.windows(2).all(|w| w[0] >= w[1]), "not most specific first");
                found.sort_unstable();
                let scan: Vec<usize> = (0..ranges.len()).filter(|&r| k8s_prefix_contains_ip(&ranges[r].cidrs[0], ip)).collect();
                prop_assert_eq!(found, scan);
            }
        }
    }
}
