//! Range math: address counts the way the allocator counts them, prefix arithmetic on u128.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::model::Family;

/// Width of the address space of a family in bits.
pub fn width(family: Family) -> u8 {
    match family {
        Family::IPv4 => 32,
        Family::IPv6 => 128,
    }
}

/// The address as an unsigned number (IPv4 in the low 32 bits).
pub fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Keeps the first `len` bits of an address of the given family.
pub fn mask(bits: u128, len: u8, family: Family) -> u128 {
    let host = u32::from(width(family) - len);
    if host >= 128 { 0 } else { bits >> host << host }
}

pub fn from_bits(bits: u128, family: Family) -> IpAddr {
    match family {
        Family::IPv4 => IpAddr::V4((bits as u32).into()),
        Family::IPv6 => IpAddr::V6(bits.into()),
    }
}

pub fn net(bits: u128, len: u8, family: Family) -> IpNet {
    let addr = from_bits(mask(bits, len, family), family);
    match addr {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, len).expect("len is at most 32 for IPv4")),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, len).expect("len is at most 128 for IPv6")),
    }
}

/// How many IPs the allocator can hand out from `net`: never the network address, never the
/// IPv4 broadcast address, and nothing from an IPv6 range shorter than /64 (it refuses those).
pub fn capacity(net: &IpNet) -> u128 {
    let family = Family::of_net(net);
    let host = u32::from(width(family) - net.prefix_len());
    if family == Family::IPv6 && net.prefix_len() < 64 {
        return 0;
    }
    let size = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    match family {
        Family::IPv4 => size.saturating_sub(1),
        Family::IPv6 => size,
    }
}

/// Kubernetes' `PrefixContainsIP` (pkg/api/servicecidr): `net` contains `ip`, and `ip` is neither
/// the network address nor, for IPv4, the broadcast address. The allocator, the repair loop and the
/// service-cidr controller all use it, so a nested range's edge addresses belong only to the ranges
/// around it.
pub fn contains_ip(net: &IpNet, ip: IpAddr) -> bool {
    if !net.contains(&ip) || ip == net.network() {
        return false;
    }
    match net {
        IpNet::V4(n) => ip != IpAddr::V4(n.broadcast()),
        IpNet::V6(_) => true,
    }
}

/// Whether two prefixes share any address (for prefixes: one contains the other).
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// Length of the common prefix of two addresses of one family.
pub fn common_prefix_len(a: u128, b: u128, family: Family) -> u8 {
    let diff = (a ^ b).leading_zeros() as u8;
    match family {
        Family::IPv4 => diff.saturating_sub(96).min(32),
        Family::IPv6 => diff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> u128 {
        capacity(&s.parse().unwrap())
    }

    #[test]
    fn capacity_follows_the_allocator() {
        assert_eq!(cap("10.0.0.0/24"), 254);
        assert_eq!(cap("10.96.0.0/16"), 65_534);
        assert_eq!(cap("10.0.0.0/30"), 2);
        assert_eq!(cap("10.0.0.0/31"), 0);
        assert_eq!(cap("10.0.0.0/32"), 0);
        assert_eq!(cap("fd00::/64"), (1u128 << 64) - 1);
        assert_eq!(cap("fd00::/112"), 65_535);
        assert_eq!(cap("fd00::/128"), 0);
        assert_eq!(cap("fd00::/48"), 0);
    }

    fn inside(net: &str, ip: &str) -> bool {
        contains_ip(&net.parse().unwrap(), ip.parse().unwrap())
    }

    #[test]
    fn the_network_and_ipv4_broadcast_addresses_are_not_inside() {
        assert!(!inside("10.250.0.4/30", "10.250.0.4"));
        assert!(inside("10.250.0.4/30", "10.250.0.5"));
        assert!(inside("10.250.0.4/30", "10.250.0.6"));
        assert!(!inside("10.250.0.4/30", "10.250.0.7"));
        assert!(!inside("10.250.0.4/30", "10.250.0.8"));
        // A /31 and a /32 hold nothing; IPv6 has no broadcast address.
        assert!(!inside("10.0.0.0/31", "10.0.0.0") && !inside("10.0.0.0/31", "10.0.0.1"));
        assert!(!inside("10.0.0.1/32", "10.0.0.1"));
        assert!(!inside("fd00::/112", "fd00::"));
        assert!(inside("fd00::/112", "fd00::ffff"));
        assert!(inside("fd00::/127", "fd00::1"));
        assert!(!inside("fd00::1/128", "fd00::1"));
        assert!(!inside("10.0.0.0/8", "fd00::1"));
    }

    #[test]
    fn masks_and_prefixes() {
        let ip: IpAddr = "10.96.5.7".parse().unwrap();
        assert_eq!(net(bits(ip), 24, Family::IPv4).to_string(), "10.96.5.0/24");
        assert_eq!(net(bits(ip), 0, Family::IPv4).to_string(), "0.0.0.0/0");
        let a = bits("10.96.5.7".parse().unwrap());
        let b = bits("10.96.4.7".parse().unwrap());
        assert_eq!(common_prefix_len(a, b, Family::IPv4), 23);
        assert_eq!(common_prefix_len(a, a, Family::IPv4), 32);
        let v6 = bits("fd00::1".parse().unwrap());
        assert_eq!(net(v6, 0, Family::IPv6).to_string(), "::/0");
        assert_eq!(common_prefix_len(v6, v6, Family::IPv6), 128);
    }
}
