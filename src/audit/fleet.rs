//! Service ranges across clusters: which CIDRs of different clusters could hand out the same IP.

use ipnet::IpNet;

use crate::audit::range::{capacity, overlaps};
use crate::model::ServiceCidr;

/// One cluster's ranges, as read through one context.
#[derive(Debug, Clone, Copy)]
pub struct ClusterRanges<'a> {
    pub context: &'a str,
    /// What tells clusters apart: the kube-system namespace's UID where it could be read, else
    /// the API server URL as [`server_key`] writes it. Two contexts with the same one are the
    /// same cluster.
    pub cluster: &'a str,
    pub ranges: &'a [ServiceCidr],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub context: String,
    pub range: String,
    pub cidr: IpNet,
}

/// Two CIDRs of different clusters that share an address both allocators may hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossOverlap {
    pub a: Side,
    pub b: Side,
}

/// A server URL as a key: the scheme and host in lower case (DNS names are), no trailing slashes,
/// the scheme's default port written out; so `https://LOCALHOST:6443//` and
/// `https://localhost:6443` are one server. Another name for the same host is not caught: that
/// is what the cluster's own UID is for.
pub fn server_key(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    // An empty port is the default one (RFC 3986 6.2.3).
    let authority = authority.strip_suffix(':').unwrap_or(authority);
    let authority = authority.to_ascii_lowercase();
    let scheme = scheme.to_ascii_lowercase();
    // After an IPv6 literal's last ':' come digits and ']', never a port.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let port = match (has_port, scheme.as_str()) {
        (false, "http") => ":80",
        (false, _) => ":443",
        (true, _) => "",
    };
    let path = if path.is_empty() {
        String::new()
    } else {
        format!("/{path}")
    };
    format!("{scheme}://{authority}{port}{path}")
}

/// Whether an IP allocatable from `a` can also be allocated from `b`. Prefixes overlap only by
/// nesting, and the inner one's allocatable addresses (`PrefixContainsIP`) all lie inside the
/// outer one's, so they share one exactly when both hand out any: an IPv6 outer range shorter
/// than /64 hands out nothing, whatever it contains.
pub fn share_an_address(a: &IpNet, b: &IpNet) -> bool {
    overlaps(a, b) && capacity(a) > 0 && capacity(b) > 0
}

/// Every pair of CIDRs from clusters with different servers that share an address, in the order
/// the clusters and ranges are given. Contexts of the same server are the same cluster.
pub fn cross_cluster_overlaps(clusters: &[ClusterRanges]) -> Vec<CrossOverlap> {
    // Each server once: the first context naming it speaks for it.
    let distinct: Vec<&ClusterRanges> = clusters
        .iter()
        .enumerate()
        .filter(|(i, c)| !clusters[..*i].iter().any(|d| d.cluster == c.cluster))
        .map(|(_, c)| c)
        .collect();
    let side = |c: &ClusterRanges, r: &ServiceCidr, cidr: &IpNet| Side {
        context: c.context.to_owned(),
        range: r.name.clone(),
        cidr: *cidr,
    };
    let mut found = Vec::new();
    for (i, x) in distinct.iter().enumerate() {
        for y in &distinct[i + 1..] {
            for rx in x.ranges {
                for ry in y.ranges {
                    for cx in &rx.cidrs {
                        for cy in ry.cidrs.iter().filter(|cy| share_an_address(cx, cy)) {
                            found.push(CrossOverlap {
                                a: side(x, rx, cx),
                                b: side(y, ry, cy),
                            });
                        }
                    }
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::range;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn overlaps_between_servers_not_within_one() {
        let a = [range("a", &["10.0.0.0/16"])];
        let b = [range("b", &["10.0.5.0/24", "fd00::/112"])];
        let c = [range("c", &["10.1.0.0/16"])];
        let found = cross_cluster_overlaps(&[
            ClusterRanges {
                context: "one",
                cluster: "https://one",
                ranges: &a,
            },
            ClusterRanges {
                context: "one-again",
                cluster: "https://one",
                ranges: &b,
            },
            ClusterRanges {
                context: "two",
                cluster: "https://two",
                ranges: &b,
            },
            ClusterRanges {
                context: "three",
                cluster: "https://three",
                ranges: &c,
            },
        ]);
        let pairs: Vec<(&str, &str)> = found
            .iter()
            .map(|o| (o.a.context.as_str(), o.b.context.as_str()))
            .collect();
        assert_eq!(pairs, [("one", "two")]);
        assert_eq!(found[0].b.cidr.to_string(), "10.0.5.0/24");
    }

    #[test]
    fn one_server_spelled_several_ways_is_one_key() {
        let k = "https://localhost:6443";
        for spelling in [
            "https://LOCALHOST:6443",
            "https://localhost:6443//",
            "HTTPS://localhost:6443/",
        ] {
            assert_eq!(server_key(spelling), k, "{spelling}");
        }
        for spelling in ["https://k8s.example:", "https://k8s.example:443"] {
            assert_eq!(
                server_key(spelling),
                "https://k8s.example:443",
                "{spelling}"
            );
        }
        assert_eq!(server_key("https://k8s.example"), "https://k8s.example:443");
        assert_eq!(server_key("http://k8s.example/"), "http://k8s.example:80");
        assert_eq!(server_key("https://[fd00::1]"), "https://[fd00::1]:443");
        assert_eq!(
            server_key("https://[fd00::1]:6443"),
            "https://[fd00::1]:6443"
        );
        assert_ne!(server_key("https://a:6443"), server_key("https://a:6444"));
        assert_ne!(server_key("https://a/x"), server_key("https://a/y"));
    }

    #[test]
    fn a_nested_prefix_without_allocatable_addresses_shares_none() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(!share_an_address(&n("10.0.0.0/24"), &n("10.0.0.0/32")));
        assert!(!share_an_address(&n("10.0.0.0/24"), &n("10.0.0.4/31")));
        assert!(share_an_address(&n("10.0.0.0/24"), &n("10.0.0.4/30")));
        assert!(share_an_address(&n("fd00::/112"), &n("fd00::4/127")));
        assert!(!share_an_address(&n("fd00::/48"), &n("fd00::/112")));
        assert!(!share_an_address(&n("fd00::/112"), &n("fd00::/48")));
        assert!(share_an_address(&n("fd00::/64"), &n("fd00::/112")));
        assert!(!share_an_address(&n("10.0.0.0/24"), &n("10.0.1.0/24")));
    }

    proptest! {
        // Against brute force, from Kubernetes' rule written out here (not the crate's own
        // `contains_ip`): an IP is allocatable from a CIDR when the CIDR holds it and it is not the
        // network address, nor for IPv4 the broadcast address, and an IPv6 CIDR is /64 or longer.
        // IPv4 over every address of a /24; IPv6 over the first 256 addresses of fd00::/48, with
        // prefixes on both sides of /64.
        #[test]
        fn share_an_address_is_an_allocatable_ip_in_both(
            a in (0u32..256, 24u8..=32),
            b in (0u32..256, 24u8..=32),
            c in (0u128..256, proptest::sample::select(vec![48u8, 56, 63, 64, 96, 120, 124, 126, 127, 128])),
            d in (0u128..256, proptest::sample::select(vec![48u8, 56, 63, 64, 96, 120, 124, 126, 127, 128])),
        ) {
            fn allocatable(net: &IpNet, ip: IpAddr) -> bool {
                let bits = |ip: IpAddr| match ip {
                    IpAddr::V4(v) => u128::from(u32::from(v)),
                    IpAddr::V6(v) => u128::from(v),
                };
                let width = if ip.is_ipv4() { 32 } else { 128 };
                let host_bits = width - u32::from(net.prefix_len());
                let host_mask = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
                let (first, x) = (bits(net.network()), bits(ip));
                let last = first | host_mask;
                let family_ok = ip.is_ipv4() || net.prefix_len() >= 64;
                family_ok && x >= first && x <= last && x != first && !(ip.is_ipv4() && x == last)
            }
            let v4 = |(host, len): (u32, u8)| -> IpNet {
                IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | host)), len).unwrap().trunc()
            };
            let (x, y) = (v4(a), v4(b));
            let brute = (0u32..256)
                .map(|h| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | h)))
                .any(|ip| allocatable(&x, ip) && allocatable(&y, ip));
            prop_assert_eq!(share_an_address(&x, &y), brute, "{} {}", x, y);
            let base = u128::from(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0));
            let v6 = |(host, len): (u128, u8)| -> IpNet {
                IpNet::new(IpAddr::V6((base | host).into()), len).unwrap().trunc()
            };
            let (x, y) = (v6(c), v6(d));
            let brute = (0u128..256)
                .map(|h| IpAddr::V6((base | h).into()))
                .any(|ip| allocatable(&x, ip) && allocatable(&y, ip));
            prop_assert_eq!(share_an_address(&x, &y), brute, "{} {}", x, y);
        }
    }
}
