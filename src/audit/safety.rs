//! Deletion safety: may a ServiceCIDR lose its finalizer without orphaning an IPAddress?
//!
//! Stricter than the service-cidr controller on purpose: only another *usable* range (Ready not
//! False, not terminating) covers an IP, so two overlapping ranges deleted together can never
//! release each other, and every IPAddress counts, not only the allocator's.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use crate::audit::index::{Entry, RangeIndex};
use crate::model::{IpAllocation, ParentRef};

/// An IPAddress that only the target range holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub ip: IpAddr,
    pub cidr: IpNet,
    pub parent: Option<ParentRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every IPAddress inside the range is also inside another usable range.
    Safe {
        covered: usize,
    },
    Blocked {
        blockers: Vec<Blocker>,
    },
}

impl Verdict {
    pub fn is_safe(&self) -> bool {
        matches!(self, Verdict::Safe { .. })
    }
}

/// Whether an IP whose containing CIDRs are `containing` would be left without a usable range
/// if range `target` went away. False when `target` does not contain it at all.
pub fn uncovered_without(index: &RangeIndex, containing: &[Entry], target: usize) -> bool {
    containing.iter().any(|e| e.range == target)
        && !containing
            .iter()
            .any(|e| e.range != target && index.ranges()[e.range].is_usable())
}

/// The verdict for releasing the ServiceCIDR named `target`. A name not in the index has no IPs
/// inside it, so it is safe.
pub fn release_verdict(index: &RangeIndex, ips: &[IpAllocation], target: &str) -> Verdict {
    let Some(t) = index.ranges().iter().position(|r| r.name == target) else {
        return Verdict::Safe { covered: 0 };
    };
    let mut covered = 0;
    let mut blockers = Vec::new();
    let mut containing = Vec::new();
    for alloc in ips {
        containing.clear();
        containing.extend(index.containing(alloc.ip));
        let Some(inside) = containing.iter().find(|e| e.range == t) else {
            continue;
        };
        if uncovered_without(index, &containing, t) {
            blockers.push(Blocker {
                ip: alloc.ip,
                cidr: index.ranges()[t].cidrs[inside.cidr],
                parent: alloc.parent.clone(),
            });
        } else {
            covered += 1;
        }
    }
    if blockers.is_empty() {
        Verdict::Safe { covered }
    } else {
        Verdict::Blocked { blockers }
    }
}

/// How much of the grace period is left at the moment of a read. By the server's clock
/// (deletionTimestamp + grace, against the server's Date), since the controller measures it from
/// the deletionTimestamp too; but never less than the grace period counted from our own first
/// sight of the deletion, so a skewed or coarse clock can only make us wait longer.
pub fn grace_remaining(
    deleting: SystemTime,
    grace: Duration,
    server_now: SystemTime,
    seen_for: Duration,
) -> Duration {
    let by_server = (deleting + grace)
        .duration_since(server_now)
        .unwrap_or_default();
    by_server.max(grace.saturating_sub(seen_for))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, range};
    use crate::model::{ConditionStatus, ServiceCidr};
    use proptest::prelude::*;
    use std::time::SystemTime;

    fn verdict(ranges: &[ServiceCidr], ips: &[&str], target: &str) -> Verdict {
        let ips: Vec<IpAllocation> = ips.iter().map(|s| alloc(s)).collect();
        release_verdict(&RangeIndex::new(ranges), &ips, target)
    }

    #[test]
    fn an_empty_range_is_safe() {
        let ranges = [range("blue", &["10.1.0.0/24"])];
        assert_eq!(
            verdict(&ranges, &["10.2.0.1"], "blue"),
            Verdict::Safe { covered: 0 }
        );
    }

    #[test]
    fn an_ip_only_in_the_target_blocks() {
        let ranges = [
            range("blue", &["10.1.0.0/24", "fd00:1::/112"]),
            range("red", &["10.2.0.0/24"]),
        ];
        let Verdict::Blocked { blockers } =
            verdict(&ranges, &["10.1.0.5", "fd00:1::9", "10.2.0.1"], "blue")
        else {
            panic!("expected blocked");
        };
        let ips: Vec<String> = blockers.iter().map(|b| b.ip.to_string()).collect();
        assert_eq!(ips, ["10.1.0.5", "fd00:1::9"]);
        assert_eq!(blockers[1].cidr.to_string(), "fd00:1::/112");
    }

    #[test]
    fn a_range_nested_in_a_usable_one_is_safe() {
        let ranges = [
            range("wide", &["10.1.0.0/16"]),
            range("blue", &["10.1.5.0/24"]),
        ];
        assert_eq!(
            verdict(&ranges, &["10.1.5.1", "10.1.5.2"], "blue"),
            Verdict::Safe { covered: 2 }
        );
    }

    #[test]
    fn a_terminating_or_not_ready_cover_does_not_count() {
        let mut wide = range("wide", &["10.1.0.0/16"]);
        wide.deleting = Some(SystemTime::UNIX_EPOCH);
        let ranges = [wide.clone(), range("blue", &["10.1.5.0/24"])];
        assert!(!verdict(&ranges, &["10.1.5.1"], "blue").is_safe());
        // Two overlapping ranges deleted together must not release each other.
        let mut blue = range("blue", &["10.1.5.0/24"]);
        blue.deleting = Some(SystemTime::UNIX_EPOCH);
        let both = [wide.clone(), blue];
        assert!(!verdict(&both, &["10.1.5.1"], "blue").is_safe());
        assert!(!verdict(&both, &["10.1.5.1"], "wide").is_safe());
        let mut not_ready = range("wide", &["10.1.0.0/16"]);
        not_ready.ready.as_mut().unwrap().status = ConditionStatus::False;
        assert!(
            !verdict(
                &[not_ready, range("blue", &["10.1.5.0/24"])],
                &["10.1.5.1"],
                "blue"
            )
            .is_safe()
        );
    }

    #[test]
    fn a_twin_with_the_same_cidr_covers() {
        let ranges = [
            range("blue", &["10.1.5.0/24"]),
            range("twin", &["10.1.5.0/24"]),
        ];
        assert!(verdict(&ranges, &["10.1.5.1"], "blue").is_safe());
    }

    #[test]
    fn the_grace_period_counts_from_the_deletion_by_the_server_clock_and_our_own() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let grace = Duration::from_secs(10);
        let s = Duration::from_secs;
        // Just deleted, seen at once: the full period.
        assert_eq!(grace_remaining(t0, grace, t0, s(0)), s(10));
        // Server says 4 s have passed, we have watched for 4 s.
        assert_eq!(grace_remaining(t0, grace, t0 + s(4), s(4)), s(6));
        // Deleted long ago, but we only just saw it: our own observation wins.
        assert_eq!(grace_remaining(t0, grace, t0 + s(300), s(0)), s(10));
        // Our clock runs ahead of nothing: the server's clock says 2 s passed, we think 9 s.
        assert_eq!(grace_remaining(t0, grace, t0 + s(2), s(9)), s(8));
        assert_eq!(grace_remaining(t0, grace, t0 + s(30), s(30)), s(0));
    }

    fn arb_range(i: usize) -> impl Strategy<Value = ServiceCidr> {
        // Small spaces so that ranges and IPs collide often.
        (
            0u32..4,
            24u8..=30,
            any::<bool>(),
            prop::option::of(any::<bool>()),
        )
            .prop_map(move |(third, len, deleting, ready)| {
                let mut r = range(&format!("r{i}"), &[]);
                let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 0, third as u8, 0), len)
                    .unwrap()
                    .trunc();
                r.cidrs = vec![net.into()];
                r.deleting = deleting.then_some(SystemTime::UNIX_EPOCH);
                r.ready = ready.map(|ok| crate::model::ReadyCondition {
                    status: if ok {
                        ConditionStatus::True
                    } else {
                        ConditionStatus::False
                    },
                    reason: String::new(),
                    message: String::new(),
                });
                r
            })
    }

    fn arb_ranges() -> impl Strategy<Value = Vec<ServiceCidr>> {
        (1usize..8).prop_flat_map(|n| (0..n).map(arb_range).collect::<Vec<_>>())
    }

    proptest! {
        // The core guarantee: never safe while an IP in the range lacks another usable range.
        #[test]
        fn safe_only_when_every_ip_inside_has_another_usable_range(
            ranges in arb_ranges(),
            hosts in prop::collection::vec((0u8..4, any::<u8>()), 0..40),
            pick in any::<prop::sample::Index>(),
        ) {
            let ips: Vec<IpAllocation> = hosts
                .iter()
                .map(|(t, h)| alloc(&format!("10.0.{t}.{h}")))
                .collect();
            let target = &ranges[pick.index(ranges.len())];
            let v = release_verdict(&RangeIndex::new(&ranges), &ips, &target.name);
            for a in &ips {
                let inside = target.cidrs[0].contains(&a.ip);
                let other_usable = ranges.iter().any(|r| {
                    r.name != target.name && r.is_usable() && r.cidrs[0].contains(&a.ip)
                });
                let listed = matches!(&v, Verdict::Blocked { blockers } if blockers.iter().any(|b| b.ip == a.ip));
                prop_assert_eq!(inside && !other_usable, listed, "ip {}", a.ip);
            }
            let any_uncovered = ips.iter().any(|a| {
                target.cidrs[0].contains(&a.ip)
                    && !ranges.iter().any(|r| r.name != target.name && r.is_usable() && r.cidrs[0].contains(&a.ip))
            });
            prop_assert_eq!(v.is_safe(), !any_uncovered);
        }
    }
}
