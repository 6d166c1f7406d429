//! Smallest CIDRs that would cover a set of IPs again, for a recovery ServiceCIDR.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::audit::range::{bits, common_prefix_len, net};
use crate::model::Family;

/// Widest prefix a suggestion may have: wider would swallow unrelated address space.
fn min_len(family: Family) -> u8 {
    match family {
        Family::IPv4 => 16,
        // The allocator refuses IPv6 Service ranges shorter than /64.
        Family::IPv6 => 64,
    }
}

/// Narrowest prefix a suggestion may have, so the range also has room to allocate.
fn max_len(family: Family) -> u8 {
    match family {
        Family::IPv4 => 28,
        Family::IPv6 => 124,
    }
}

/// Groups the IPs (sorted, per family) so that each group fits in one prefix no wider than
/// `min_len`, and returns each group's common prefix, at most `max_len` long.
pub fn covering_cidrs(ips: &[IpAddr]) -> Vec<IpNet> {
    let mut keys: Vec<(Family, u128)> = ips.iter().map(|ip| (Family::of(*ip), bits(*ip))).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out: Vec<IpNet> = Vec::new();
    let mut group: Option<(Family, u128, u128)> = None;
    let close = |g: (Family, u128, u128), out: &mut Vec<IpNet>| {
        let (family, first, last) = g;
        let len = common_prefix_len(first, last, family).min(max_len(family));
        out.push(net(first, len, family));
    };
    for (family, b) in keys {
        group = match group {
            Some((f, first, _))
                if f == family && common_prefix_len(first, b, family) >= min_len(family) =>
            {
                Some((f, first, b))
            }
            Some(g) => {
                close(g, &mut out);
                Some((family, b, b))
            }
            None => Some((family, b, b)),
        };
    }
    if let Some(g) = group {
        close(g, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn suggest(ips: &[&str]) -> Vec<String> {
        let ips: Vec<IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
        covering_cidrs(&ips).iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn groups_nearby_ips_and_keeps_distant_ones_apart() {
        assert_eq!(suggest(&["10.1.0.5"]), ["10.1.0.0/28"]);
        assert_eq!(suggest(&["10.1.0.5", "10.1.0.200"]), ["10.1.0.0/24"]);
        assert_eq!(
            suggest(&["10.1.0.5", "192.168.0.1"]),
            ["10.1.0.0/28", "192.168.0.0/28"]
        );
        assert_eq!(
            suggest(&["fd00:1::5", "10.1.0.5"]),
            ["10.1.0.0/28", "fd00:1::/124"]
        );
        assert_eq!(suggest(&["fd00:1::5", "fd00:1::1:5"]), ["fd00:1::/111"]);
        assert!(suggest(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn every_ip_is_covered_by_one_bounded_suggestion(ips in prop::collection::vec(any::<IpAddr>(), 0..50)) {
            let nets = covering_cidrs(&ips);
            for ip in &ips {
                prop_assert!(nets.iter().any(|n| n.contains(ip)), "{} uncovered", ip);
            }
            for n in &nets {
                let family = Family::of_net(n);
                prop_assert!(n.prefix_len() >= min_len(family) && n.prefix_len() <= max_len(family));
                prop_assert_eq!(n.trunc(), *n);
            }
            for (i, a) in nets.iter().enumerate() {
                for b in &nets[i + 1..] {
                    prop_assert!(!crate::audit::range::overlaps(a, b), "{} overlaps {}", a, b);
                }
            }
        }
    }
}
