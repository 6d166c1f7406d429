//! Retiring one ServiceCIDR as a state machine: given what was last observed of the range and the
//! monotonic time, the next step. No clock, no cluster: `commands::delete` observes, asks, acts.
//!
//! Who may release a terminating range:
//! - the service-cidr controller removes its own finalizer when its rule allows;
//! - the plugin's guard finalizer stays until the plugin's strict re-check of the whole cluster
//!   (`safety::set_blockers`) passes;
//! - the plugin takes the controller's part only when no controller acts: after the grace period
//!   and `--controller-timeout`, and never while the controller says the range is blocked.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::audit::safety::{Blocker, InUse};
use crate::exit::Exit;
use crate::model::{
    ConditionStatus, DryRun, GUARD_FINALIZER, Right, SERVICE_CIDR_FINALIZER, ServiceCidr,
};

/// The reason the controller writes on Ready=False while IPAddresses hold the range.
pub const BLOCKED_REASON: &str = "Terminating";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetireOptions {
    /// How long after the deletionTimestamp an apiserver may still allocate from the range.
    pub grace: Duration,
    /// How long after the grace period to wait for the controller before taking its part.
    pub controller_timeout: Duration,
    /// Take the controller's part as soon as the grace period is over.
    pub remove_finalizer: bool,
}

/// What was read of the range.
#[derive(Debug, Clone, Copy)]
pub enum Observed<'a> {
    Gone,
    Range {
        range: &'a ServiceCidr,
        /// The server's clock at the read (its Date header).
        server_now: Option<SystemTime>,
    },
}

/// Why nothing is done yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// An apiserver may still allocate from the range.
    Grace,
    /// The grace period is over; the controller has not released it yet.
    Controller,
    /// The controller wrote that IPAddresses would be orphaned: its word stands.
    ControllerBlocked,
    /// Only finalizers of others are left.
    OtherFinalizers(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do until the range changes, or until `until` (monotonic) when given.
    Wait {
        until: Option<Duration>,
        why: Waiting,
    },
    /// Re-check the whole cluster; if safe, remove these finalizers. `takeover`: the controller's
    /// finalizer is among them.
    Release { remove: Vec<String>, takeover: bool },
    /// The range is gone (or its name now belongs to another object).
    Gone,
    /// The range is not being deleted: someone recreated it.
    NotTerminating,
}

/// One range's retirement; keeps only what the next step and the ending depend on.
#[derive(Debug, Clone)]
pub struct Retirement {
    uid: String,
    opts: RetireOptions,
    first_seen: Option<Duration>,
    grace_end: Option<Duration>,
    saw_controller: bool,
    saw_guard: bool,
    /// Someone else removed the guard before our release did.
    guard_lost: bool,
    /// Our release went through; whether it took the controller's part.
    released: Option<bool>,
}

/// The controller has judged that deleting the range would orphan IPAddresses: it wrote
/// Ready=False/Terminating after the deletionTimestamp. A condition with no time counts too, so
/// that doubt never leads to overriding it.
pub fn controller_blocked(range: &ServiceCidr) -> bool {
    let (Some(deleting), Some(ready)) = (range.deleting, range.ready.as_ref()) else {
        return false;
    };
    ready.status == ConditionStatus::False
        && ready.reason == BLOCKED_REASON
        && ready.by_controller
        && ready.since.is_none_or(|t| t >= deleting)
}

impl Retirement {
    pub fn new(uid: impl Into<String>, opts: RetireOptions) -> Self {
        Retirement {
            uid: uid.into(),
            opts,
            first_seen: None,
            grace_end: None,
            saw_controller: false,
            saw_guard: false,
            guard_lost: false,
            released: None,
        }
    }

    /// Our release of `Step::Release` went through.
    pub fn released(&mut self, takeover: bool) {
        self.released = Some(takeover);
    }

    /// Another client removed the guard while the range was held: whatever releases it now does
    /// so without the plugin's final check.
    pub fn guard_lost(&self) -> bool {
        self.guard_lost
    }

    /// Who let the range go: the plugin when it took the controller's part, or when the
    /// controller never held it (its finalizer never seen: it was not running when the range was
    /// made); else the controller.
    pub fn released_by(&self) -> ReleasedBy {
        if self.released == Some(true) || !self.saw_controller {
            ReleasedBy::Plugin
        } else {
            ReleasedBy::Controller
        }
    }

    /// How a retirement ends once the range is gone: IPs left outside every range are the worst;
    /// a release without our final check (guard removed by another client) is not vouched for.
    pub fn ending(&self, left_outside: bool) -> RangeOutcome {
        if left_outside {
            RangeOutcome::Orphaned
        } else if self.guard_lost {
            RangeOutcome::Unguarded
        } else {
            RangeOutcome::Deleted
        }
    }

    /// When the grace period ends, in monotonic time: by the server's clock (deletionTimestamp +
    /// grace against its Date), as the controller counts it, but never before the grace period
    /// counted from our own first sight, so a skewed or coarse clock only makes us wait longer.
    /// Each read gives an upper bound; the earliest one holds.
    fn grace_end(
        &mut self,
        deleting: SystemTime,
        server_now: Option<SystemTime>,
        now: Duration,
    ) -> Duration {
        let seen = *self.first_seen.get_or_insert(now);
        let by_server = match (server_now, deleting.checked_add(self.opts.grace)) {
            (Some(server_now), Some(end)) => end.duration_since(server_now).unwrap_or_default(),
            // No server clock, or an end past what a clock holds: a full period from now.
            _ => self.opts.grace,
        };
        let bound = now
            .saturating_add(by_server)
            .max(seen.saturating_add(self.opts.grace));
        *self
            .grace_end
            .insert(self.grace_end.map_or(bound, |g| g.min(bound)))
    }

    pub fn next(&mut self, observed: Observed, now: Duration) -> Step {
        let (range, server_now) = match observed {
            Observed::Range { range, server_now } if range.uid == self.uid => (range, server_now),
            _ => return Step::Gone,
        };
        let Some(deleting) = range.deleting else {
            return Step::NotTerminating;
        };
        let grace_end = self.grace_end(deleting, server_now, now);
        let controller = range.has_controller_finalizer();
        let guard = range.has_guard();
        self.saw_controller |= controller;
        if guard {
            self.saw_guard = true;
        } else if self.saw_guard && self.released.is_none() {
            self.guard_lost = true;
        }
        match (controller, guard) {
            (false, false) => {
                return Step::Wait {
                    until: None,
                    why: Waiting::OtherFinalizers(range.finalizers.clone()),
                };
            }
            _ if now < grace_end => {
                return Step::Wait {
                    until: Some(grace_end),
                    why: Waiting::Grace,
                };
            }
            (true, _) if controller_blocked(range) => {
                return Step::Wait {
                    until: None,
                    why: Waiting::ControllerBlocked,
                };
            }
            (false, true) => {
                return Step::Release {
                    remove: vec![GUARD_FINALIZER.to_owned()],
                    takeover: false,
                };
            }
            (true, _) => {}
        }
        let takeover_at = if self.opts.remove_finalizer {
            grace_end
        } else {
            grace_end.saturating_add(self.opts.controller_timeout)
        };
        if now < takeover_at {
            return Step::Wait {
                until: Some(takeover_at),
                why: Waiting::Controller,
            };
        }
        let mut remove = vec![SERVICE_CIDR_FINALIZER.to_owned()];
        if guard {
            remove.push(GUARD_FINALIZER.to_owned());
        }
        Step::Release {
            remove,
            takeover: true,
        }
    }

    /// The grace period's end and the takeover time, once known, for a countdown.
    pub fn timers(&self) -> Option<(Duration, Duration)> {
        let grace_end = self.grace_end?;
        let takeover = if self.opts.remove_finalizer {
            grace_end
        } else {
            grace_end.saturating_add(self.opts.controller_timeout)
        };
        Some((grace_end, takeover))
    }
}

/// What to do with one named range, decided for the whole set from one read. The only place
/// `delete` branches on `--dry-run`: a dry run never reaches an action that writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    NotFound,
    /// Already terminating: follow its retirement.
    Resume,
    /// Nothing to do: the result is this outcome, with what blocks the range.
    Report {
        outcome: RangeOutcome,
        blockers: Vec<Blocker>,
    },
    /// IPs inside would be left without a usable range. `drop_guard`: a guard of ours, left by an
    /// interrupted run, comes off, so a refused range keeps nothing of ours.
    Refuse {
        blockers: Vec<Blocker>,
        drop_guard: bool,
    },
    /// RBAC denies what the run needs.
    NotAllowed(Vec<Right>),
    /// A server-side dry run of the delete.
    AskServer,
    /// Guard, delete, then follow when waiting.
    GuardAndDelete,
}

/// The action for one range (None: no such range). `blockers` are the set's, `missing` the
/// rights RBAC denies.
pub fn decide(
    range: Option<&ServiceCidr>,
    blockers: &[Blocker],
    missing: &[Right],
    dry_run: DryRun,
    wait: bool,
) -> Action {
    let Some(range) = range else {
        return Action::NotFound;
    };
    let mine: Vec<Blocker> = blockers
        .iter()
        .filter(|b| b.ranges.iter().any(|(n, _)| *n == range.name))
        .cloned()
        .collect();
    let dry = dry_run != DryRun::None;
    if range.is_terminating() {
        return match (dry, wait) {
            (false, true) => Action::Resume,
            _ => Action::Report {
                outcome: if dry {
                    RangeOutcome::DryRun
                } else {
                    RangeOutcome::Terminating
                },
                blockers: mine,
            },
        };
    }
    if !mine.is_empty() {
        return Action::Refuse {
            blockers: mine,
            drop_guard: !dry && range.has_guard(),
        };
    }
    let denied: Vec<Right> = missing
        .iter()
        .filter(|r| r.name.as_ref().is_none_or(|n| *n == range.name))
        .cloned()
        .collect();
    match dry_run {
        DryRun::Client => Action::Report {
            outcome: RangeOutcome::DryRun,
            blockers: vec![],
        },
        _ if !denied.is_empty() => Action::NotAllowed(denied),
        DryRun::Server => Action::AskServer,
        DryRun::None => Action::GuardAndDelete,
    }
}

/// Releasing without a grace period races the apiservers that have not yet seen the deletion:
/// said before a real run that would.
pub fn races_the_allocators(opts: &RetireOptions, dry_run: DryRun) -> bool {
    opts.remove_finalizer && opts.grace.is_zero() && dry_run == DryRun::None
}

/// How one name's retirement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RangeOutcome {
    /// Gone from the cluster.
    Deleted,
    /// Deleted and guarded; not waited for.
    Terminating,
    /// Checked (client) or validated by the server; nothing changed.
    DryRun,
    /// Not deleted: IPs inside have no usable range outside the set.
    Refused,
    /// Deleted, but IPs inside have no usable range left: the finalizers stay.
    AtRisk,
    /// Gone, but IPs that appeared meanwhile were left outside every range.
    Orphaned,
    /// Gone, released by others after another client removed the guard: no IP was found left
    /// outside, but the release was not held for the plugin's final check.
    Unguarded,
    /// Still terminating at --timeout because the controller counts IPAddresses that would be
    /// orphaned; its word stands.
    Blocked,
    TimedOut,
    Interrupted,
    Failed,
}

impl RangeOutcome {
    pub fn exit(self) -> Exit {
        match self {
            RangeOutcome::Deleted | RangeOutcome::Terminating | RangeOutcome::DryRun => {
                Exit::Success
            }
            RangeOutcome::Refused
            | RangeOutcome::AtRisk
            | RangeOutcome::Orphaned
            | RangeOutcome::Unguarded
            | RangeOutcome::Blocked => Exit::Findings,
            RangeOutcome::TimedOut | RangeOutcome::Failed => Exit::Error,
            RangeOutcome::Interrupted => Exit::Interrupted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleasedBy {
    Controller,
    Plugin,
}

/// What the wait was doing when it ended, for a message that says where the range stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    NotStarted,
    Checking,
    /// Found already terminating (deleted before): the wait resumes.
    Terminating,
    Deleted,
    Waiting(Waiting),
    Releasing,
}

/// The facts of one name's retirement; `render::delete` words them.
#[derive(Debug, Clone)]
pub struct DeleteResult {
    pub name: String,
    pub outcome: RangeOutcome,
    pub released_by: Option<ReleasedBy>,
    pub blockers: Vec<Blocker>,
    /// For Orphaned: what the release left outside every range.
    pub left_outside: Vec<InUse>,
    /// For a timeout while the controller blocks: the IPAddresses it counts.
    pub controller_blockers: Vec<std::net::IpAddr>,
    pub phase: Phase,
    /// Another client removed the guard during the wait.
    pub guard_lost: bool,
    /// `--dry-run` as the run was given it, for the words of its result.
    pub dry_run: DryRun,
    /// An error's own line, for Failed.
    pub error: Option<String>,
    pub elapsed: Duration,
}

/// The exit code of a set of retirements: the worst of them.
pub fn worst(results: &[DeleteResult]) -> Exit {
    results
        .iter()
        .fold(Exit::Success, |e, r| e.worst(r.outcome.exit()))
}

impl DeleteResult {
    pub fn new(
        name: &str,
        outcome: RangeOutcome,
        phase: Phase,
        elapsed: Duration,
        dry_run: DryRun,
    ) -> Self {
        DeleteResult {
            name: name.to_owned(),
            outcome,
            released_by: None,
            blockers: vec![],
            left_outside: vec![],
            controller_blockers: vec![],
            phase,
            guard_lost: false,
            dry_run,
            error: None,
            elapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::range;
    use crate::model::ReadyCondition;
    use proptest::prelude::*;

    const T0: Duration = Duration::from_secs(1_000);
    const S: fn(u64) -> Duration = Duration::from_secs;

    fn opts(remove_finalizer: bool) -> RetireOptions {
        RetireOptions {
            grace: S(10),
            controller_timeout: S(30),
            remove_finalizer,
        }
    }

    fn deleting(finalizers: &[&str]) -> ServiceCidr {
        let mut r = range("blue", &["10.1.0.0/24"]);
        r.deleting = Some(SystemTime::UNIX_EPOCH + T0);
        r.finalizers = finalizers.iter().map(|f| (*f).to_owned()).collect();
        r
    }

    fn at(r: &ServiceCidr, server_secs: u64) -> Observed<'_> {
        Observed::Range {
            range: r,
            server_now: Some(SystemTime::UNIX_EPOCH + T0 + S(server_secs)),
        }
    }

    fn block(r: &mut ServiceCidr) {
        r.ready = Some(ReadyCondition {
            status: ConditionStatus::False,
            reason: BLOCKED_REASON.into(),
            message: "There are still IPAddresses referencing the ServiceCIDR".into(),
            since: r.deleting,
            by_controller: true,
        });
    }

    #[test]
    fn waits_out_the_grace_period_then_the_controller_then_takes_over() {
        let r = deleting(&[SERVICE_CIDR_FINALIZER, GUARD_FINALIZER]);
        let mut m = Retirement::new(&r.uid, opts(false));
        assert_eq!(
            m.next(at(&r, 0), S(0)),
            Step::Wait {
                until: Some(S(10)),
                why: Waiting::Grace
            }
        );
        assert_eq!(
            m.next(at(&r, 10), S(10)),
            Step::Wait {
                until: Some(S(40)),
                why: Waiting::Controller
            }
        );
        assert_eq!(
            m.next(at(&r, 40), S(40)),
            Step::Release {
                remove: vec![SERVICE_CIDR_FINALIZER.into(), GUARD_FINALIZER.into()],
                takeover: true
            }
        );
    }

    #[test]
    fn once_the_controller_released_only_the_guard_is_left_to_remove() {
        let r = deleting(&[GUARD_FINALIZER]);
        let mut m = Retirement::new(&r.uid, opts(false));
        assert_eq!(
            m.next(at(&r, 0), S(0)).clone(),
            Step::Wait {
                until: Some(S(10)),
                why: Waiting::Grace
            }
        );
        assert_eq!(
            m.next(at(&r, 11), S(11)),
            Step::Release {
                remove: vec![GUARD_FINALIZER.into()],
                takeover: false
            }
        );
    }

    #[test]
    fn who_released_it_and_whether_the_guard_held() {
        let both = deleting(&[SERVICE_CIDR_FINALIZER, GUARD_FINALIZER]);
        let guard_only = deleting(&[GUARD_FINALIZER]);
        let controller_only = deleting(&[SERVICE_CIDR_FINALIZER]);
        // The controller released its part, the plugin the guard: the controller's release.
        let mut m = Retirement::new(&both.uid, opts(false));
        m.next(at(&both, 0), S(0));
        m.next(at(&guard_only, 11), S(11));
        m.released(false);
        assert_eq!(m.next(Observed::Gone, S(12)), Step::Gone);
        assert_eq!(m.released_by(), ReleasedBy::Controller);
        assert!(!m.guard_lost());
        assert_eq!(m.ending(false), RangeOutcome::Deleted);
        assert_eq!(m.ending(true), RangeOutcome::Orphaned);
        // The controller never held it (not running when the range was made): the plugin's.
        let mut m = Retirement::new(&both.uid, opts(false));
        m.next(at(&guard_only, 0), S(0));
        m.next(at(&guard_only, 11), S(11));
        m.released(false);
        assert_eq!(m.released_by(), ReleasedBy::Plugin);
        // Taken over: the plugin's.
        let mut m = Retirement::new(&both.uid, opts(true));
        m.next(at(&both, 0), S(0));
        m.released(true);
        assert_eq!(m.released_by(), ReleasedBy::Plugin);
        // Another client stripped the guard: noticed at once, and the ending is not vouched for.
        let mut m = Retirement::new(&both.uid, opts(false));
        m.next(at(&both, 0), S(0));
        assert!(!m.guard_lost());
        m.next(at(&controller_only, 1), S(1));
        assert!(m.guard_lost());
        assert_eq!(m.ending(false), RangeOutcome::Unguarded);
        assert_eq!(m.ending(true), RangeOutcome::Orphaned);
        assert_eq!(m.released_by(), ReleasedBy::Controller);
        // A guard never seen is not lost.
        let mut m = Retirement::new(&both.uid, opts(false));
        m.next(at(&controller_only, 0), S(0));
        assert!(!m.guard_lost());
    }

    #[test]
    fn a_live_controllers_block_is_never_overridden() {
        let mut r = deleting(&[SERVICE_CIDR_FINALIZER, GUARD_FINALIZER]);
        block(&mut r);
        for remove_finalizer in [false, true] {
            let mut m = Retirement::new(&r.uid, opts(remove_finalizer));
            m.next(at(&r, 0), S(0));
            assert_eq!(
                m.next(at(&r, 3_600), S(3_600)),
                Step::Wait {
                    until: None,
                    why: Waiting::ControllerBlocked
                }
            );
        }
        // A condition from before this deletion, or by someone else, is not the controller's block.
        let mut stale = r.clone();
        stale.ready.as_mut().unwrap().since = Some(SystemTime::UNIX_EPOCH);
        assert!(!controller_blocked(&stale));
        let mut other = r.clone();
        other.ready.as_mut().unwrap().by_controller = false;
        assert!(!controller_blocked(&other));
    }

    #[test]
    fn remove_finalizer_takes_over_right_after_the_grace_period() {
        let r = deleting(&[SERVICE_CIDR_FINALIZER]);
        let mut m = Retirement::new(&r.uid, opts(true));
        m.next(at(&r, 0), S(0));
        assert_eq!(
            m.next(at(&r, 10), S(10)),
            Step::Release {
                remove: vec![SERVICE_CIDR_FINALIZER.into()],
                takeover: true
            }
        );
    }

    #[test]
    fn the_grace_period_counts_from_the_deletion_by_both_clocks() {
        let r = deleting(&[GUARD_FINALIZER]);
        // Deleted long ago by the server's clock, but first seen now: a full period from now.
        let mut m = Retirement::new(&r.uid, opts(false));
        assert_eq!(
            m.next(at(&r, 300), S(5)),
            Step::Wait {
                until: Some(S(15)),
                why: Waiting::Grace
            }
        );
        // Server says 4 s have passed when we first look: our own first sight still counts 10.
        let mut m = Retirement::new(&r.uid, opts(false));
        assert_eq!(
            m.next(at(&r, 4), S(0)),
            Step::Wait {
                until: Some(S(10)),
                why: Waiting::Grace
            }
        );
        // A later read never moves the end later.
        assert_eq!(
            m.next(at(&r, 0), S(1)),
            Step::Wait {
                until: Some(S(10)),
                why: Waiting::Grace
            }
        );
        // A server whose clock reads 5 s before the deletionTimestamp: its end (15 s away) is
        // later than our own 10 s, and the later one holds.
        let mut m = Retirement::new(&r.uid, opts(false));
        let early = Observed::Range {
            range: &r,
            server_now: Some(SystemTime::UNIX_EPOCH + T0 - S(5)),
        };
        assert_eq!(
            m.next(early, S(0)),
            Step::Wait {
                until: Some(S(15)),
                why: Waiting::Grace
            }
        );
    }

    #[test]
    fn only_a_real_takeover_without_a_grace_period_races_the_allocators() {
        let no_grace = |remove_finalizer| RetireOptions {
            grace: Duration::ZERO,
            ..opts(remove_finalizer)
        };
        assert!(races_the_allocators(&no_grace(true), DryRun::None));
        assert!(!races_the_allocators(&no_grace(false), DryRun::None));
        assert!(!races_the_allocators(&opts(true), DryRun::None));
        assert!(!races_the_allocators(&no_grace(true), DryRun::Client));
        assert!(!races_the_allocators(&no_grace(true), DryRun::Server));
    }

    #[test]
    fn the_countdown_shows_the_grace_period_and_the_takeover() {
        let r = deleting(&[SERVICE_CIDR_FINALIZER, GUARD_FINALIZER]);
        let mut m = Retirement::new(&r.uid, opts(false));
        assert_eq!(m.timers(), None);
        m.next(at(&r, 0), S(0));
        assert_eq!(m.timers(), Some((S(10), S(40))));
        let mut m = Retirement::new(&r.uid, opts(true));
        m.next(at(&r, 0), S(0));
        assert_eq!(m.timers(), Some((S(10), S(10))));
    }

    #[test]
    fn gone_recreated_or_not_terminating() {
        let r = deleting(&[GUARD_FINALIZER]);
        let mut m = Retirement::new("another-uid", opts(false));
        assert_eq!(m.next(at(&r, 0), S(0)), Step::Gone);
        assert_eq!(m.next(Observed::Gone, S(0)), Step::Gone);
        let mut live = r.clone();
        live.deleting = None;
        let mut m = Retirement::new(&r.uid, opts(false));
        assert_eq!(m.next(at(&live, 0), S(0)), Step::NotTerminating);
        let mut others = r.clone();
        others.finalizers = vec!["example.com/other".into()];
        assert_eq!(
            m.next(at(&others, 0), S(0)),
            Step::Wait {
                until: None,
                why: Waiting::OtherFinalizers(vec!["example.com/other".into()])
            }
        );
    }

    #[test]
    fn huge_durations_saturate_instead_of_overflowing() {
        let r = deleting(&[SERVICE_CIDR_FINALIZER]);
        let huge = RetireOptions {
            grace: Duration::MAX,
            controller_timeout: Duration::MAX,
            remove_finalizer: false,
        };
        let mut m = Retirement::new(&r.uid, huge);
        for now in [S(0), S(100), Duration::MAX - S(1)] {
            assert_eq!(
                m.next(at(&r, 0), now),
                Step::Wait {
                    until: Some(Duration::MAX),
                    why: Waiting::Grace
                }
            );
        }
    }

    fn blocker_in(name: &str) -> Blocker {
        Blocker {
            ip: "10.1.0.9".parse().unwrap(),
            ranges: vec![(name.to_owned(), "10.1.0.0/24".parse().unwrap())],
            services: vec![],
            recorded: true,
        }
    }

    proptest! {
        // Whatever the range, its blockers, the rights and the mode: a dry run never reaches an
        // action that writes, and a write needs a live range, no blocker, every right.
        #[test]
        fn a_dry_run_never_writes_and_a_write_needs_every_check(
            terminating in any::<bool>(),
            guarded in any::<bool>(),
            blocked in any::<bool>(),
            denied in any::<bool>(),
            mode in prop::sample::select(DryRun::ALL.to_vec()),
            wait in any::<bool>(),
        ) {
            let mut r = range("blue", &["10.1.0.0/24"]);
            if terminating { r.deleting = Some(SystemTime::UNIX_EPOCH); }
            if guarded { r.finalizers.push(GUARD_FINALIZER.into()); }
            let blockers = if blocked { vec![blocker_in("blue"), blocker_in("other")] } else { vec![blocker_in("other")] };
            let missing = if denied { vec![Right::new("patch", "networking.k8s.io", "servicecidrs").named("blue")] } else { vec![Right::new("patch", "networking.k8s.io", "servicecidrs").named("other")] };
            let action = decide(Some(&r), &blockers, &missing, mode, wait);
            let writes = matches!(action, Action::GuardAndDelete | Action::Resume | Action::Refuse { drop_guard: true, .. });
            prop_assert!(!(mode != DryRun::None && writes), "{action:?}");
            prop_assert_eq!(action == Action::AskServer, mode == DryRun::Server && !terminating && !blocked && !denied);
            prop_assert_eq!(action == Action::GuardAndDelete, mode == DryRun::None && !terminating && !blocked && !denied);
            prop_assert_eq!(action == Action::Resume, mode == DryRun::None && terminating && wait);
            if let Action::Refuse { blockers, .. } = &action {
                prop_assert!(blocked && !terminating);
                prop_assert!(blockers.iter().all(|b| b.ranges[0].0 == "blue"));
            }
        }
    }

    proptest! {
        // Whatever is observed and whenever: the controller's finalizer is only ever removed after
        // the grace period, never while the controller blocks, and the guard is never left behind
        // by a release that removes the controller's.
        #[test]
        fn releases_only_when_the_rules_allow(
            finalizers in prop::sample::subsequence(vec![SERVICE_CIDR_FINALIZER, GUARD_FINALIZER, "example.com/x"], 0..=3),
            blocked in any::<bool>(),
            remove_finalizer in any::<bool>(),
            reads in prop::collection::vec((0u64..100, 0u64..100), 1..8),
        ) {
            let mut r = deleting(&finalizers);
            if blocked { block(&mut r); }
            let mut m = Retirement::new(&r.uid, opts(remove_finalizer));
            let mut now = S(0);
            let mut first: Option<Duration> = None;
            for (dt, server) in reads {
                now += S(dt);
                first.get_or_insert(now);
                if let Step::Release { remove, takeover } = m.next(at(&r, server), now) {
                    prop_assert!(now >= first.unwrap() + S(10), "released within the grace period");
                    prop_assert!(!(blocked && remove.iter().any(|f| f == SERVICE_CIDR_FINALIZER)));
                    prop_assert_eq!(takeover, remove.iter().any(|f| f == SERVICE_CIDR_FINALIZER));
                    prop_assert_eq!(remove.iter().any(|f| f == GUARD_FINALIZER), r.has_guard());
                    prop_assert!(!remove.iter().any(|f| f == "example.com/x"));
                }
            }
        }
    }
}
