//! Smallest CIDRs that would cover a set of IPs again, for a recovery ServiceCIDR.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::audit::range::{bits, common_prefix_len, contains_ip, from_bits, net};
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
    // No prefix holds 0.0.0.0, 255.255.255.255 or ::; nothing can be suggested for those.
    keys.retain(|&(f, b)| b != 0 && !(f == Family::IPv4 && b == u128::from(u32::MAX)));
    keys.sort_unstable();
    keys.dedup();
    let mut out: Vec<IpNet> = Vec::new();
    let mut group: Option<(Family, u128, u128)> = None;
    let close = |g: (Family, u128, u128), out: &mut Vec<IpNet>| {
        let (family, first, last) = g;
        let mut len = common_prefix_len(first, last, family).min(max_len(family));
        // Kubernetes counts neither a range's network address nor its IPv4 broadcast address as
        // inside it (PrefixContainsIP): widen until neither is one of ours, past `min_len` if the
        // address is aligned so that nothing narrower can hold it.
        while len > 0
            && !(contains_ip(&net(first, len, family), from_bits(first, family))
                && contains_ip(&net(first, len, family), from_bits(last, family)))
        {
            len -= 1;
        }
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
    // A widened suggestion may hold another one: keep the outer.
    let all = out.clone();
    out.retain(|n| !all.iter().any(|o| o != n && o.contains(n)));
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
        // Never a suggestion whose network or broadcast address is the IP to cover.
        assert_eq!(suggest(&["10.1.0.16"]), ["10.1.0.0/27"]);
        assert_eq!(suggest(&["10.1.0.15"]), ["10.1.0.0/27"]);
        assert_eq!(suggest(&["10.1.0.0"]), ["10.0.0.0/15"]);
        assert_eq!(suggest(&["fd00:1::10"]), ["fd00:1::/123"]);
        assert_eq!(suggest(&["fd00:1::f"]), ["fd00:1::/124"]);
        assert!(suggest(&[]).is_empty());
        // Nothing holds 0.0.0.0, 255.255.255.255 or ::, and they drag no other IP along; an IPv6
        // address with the IPv4 broadcast's bits is an ordinary one.
        assert_eq!(suggest(&["0.0.0.0", "10.1.0.5"]), ["10.1.0.0/28"]);
        assert!(suggest(&["255.255.255.255", "::"]).is_empty());
        assert_eq!(suggest(&["::ffff:ffff"]), ["::ffff:fff0/124"]);
        // Farther apart than a /16 (IPv4) or a /64 (IPv6): one suggestion each.
        assert_eq!(
            suggest(&["10.1.0.5", "10.2.0.5"]),
            ["10.1.0.0/28", "10.2.0.0/28"]
        );
        assert_eq!(
            suggest(&["fd00:1::5", "fd00:1:0:1::5"]),
            ["fd00:1::/124", "fd00:1:0:1::/124"]
        );
    }

    proptest! {
        #[test]
        fn every_ip_is_covered_by_one_bounded_suggestion(ips in prop::collection::vec(any::<IpAddr>(), 0..50)) {
            let nets = covering_cidrs(&ips);
            let holdable = |ip: &&IpAddr| !ip.is_unspecified() && **ip != IpAddr::from([255, 255, 255, 255]);
            for ip in ips.iter().filter(holdable) {
                // Inside as Kubernetes counts it, restated: in the prefix, not its first address,
                // and for IPv4 not its last.
                let inside = |n: &IpNet| n.contains(ip) && *ip != n.network()
                    && (Family::of(*ip) == Family::IPv6 || *ip != n.broadcast());
                prop_assert!(nets.iter().any(inside), "{} uncovered by {:?}", ip, nets);
            }
            // Wider than a /16 (IPv4) or /64 (IPv6) only for an address aligned on that boundary;
            // never narrower than a /28 or /124.
            let bounds = |f| match f { Family::IPv4 => (16, 28), Family::IPv6 => (64, 124) };
            let aligned = |ip: &IpAddr| {
                let (b, w) = (bits(*ip), crate::audit::range::width(Family::of(*ip)));
                let host = u32::from(w - bounds(Family::of(*ip)).0);
                b.trailing_zeros() >= host || (!b).trailing_zeros() >= host
            };
            for n in &nets {
                let family = Family::of_net(n);
                prop_assert!(n.prefix_len() >= bounds(family).0 || ips.iter().any(|ip| n.contains(ip) && aligned(ip)), "{}", n);
                prop_assert!(n.prefix_len() <= bounds(family).1);
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
