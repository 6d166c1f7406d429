//! Retiring ranges, for `delete` and `migrate run`: judge the named ranges as one set, guard and
//! delete them, then follow each one's retirement (`audit::retire`) until it is gone, acting only
//! on what the core decides.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use tokio::time::{Instant, sleep_until};

use crate::audit::retire::{
    Action, DeleteResult, Observed, Phase, RangeOutcome, Retirement, Step, Waiting, decide,
};
use crate::audit::safety::{Blocker, controller_blockers, left_outside, set_blockers};
use crate::cluster::rights::Right;
use crate::cluster::{self, ApiError, Cluster, GROUP, RangeRead};
use crate::commands::follow::Pace;
use crate::model::{DEFAULT_SERVICE_CIDR, GUARD_FINALIZER, ServiceCidr};
use crate::render;
use crate::render::progress::{Progress, phase_text};
use crate::settings::DeleteTask;

/// Rounds of check-guard-delete for a range that changes under us.
const ATTEMPTS: usize = 3;

/// Every request `delete` makes for `names`: asked of RBAC before the first write, and the only
/// requests its client may send (`cluster::rights`).
pub fn requests(names: &[String], wait: bool) -> Vec<Right> {
    let range = || Right::new("get", GROUP, "servicecidrs");
    let mut rights = vec![
        Right::new("list", GROUP, "servicecidrs"),
        Right::new("list", GROUP, "ipaddresses"),
        Right::new("list", "", "services"),
    ];
    for name in names {
        for verb in ["get", "delete", "patch", "watch"] {
            if verb != "watch" || wait {
                rights.push(Right { verb, ..range() }.named(name));
            }
        }
    }
    rights
}

/// Retires the named ranges as one set and returns each one's result (`migrate` retires the old
/// ranges through this too).
pub async fn retire(cluster: &Cluster, countdown: bool, args: &DeleteTask) -> Vec<DeleteResult> {
    let mut names = args.names.clone();
    names.sort();
    names.dedup();
    let started = Instant::now();
    let cluster = &cluster.declaring(requests(&names, args.wait));
    let job = Retirer {
        cluster,
        args,
        names: &names,
        started,
        progress: Progress::new(countdown && names.len() == 1),
        phases: Mutex::new(HashMap::new()),
        done: Mutex::new(BTreeMap::new()),
        controller_counts: Mutex::new(HashMap::new()),
    };
    // --timeout bounds everything, whatever the server does; Ctrl-C wins at once. Either way
    // nothing more is changed, and each range is left where a rerun resumes it.
    let ended = tokio::select! {
        _ = job.retire_all() => None,
        _ = sleep_until(started + args.timeout) => Some(RangeOutcome::TimedOut),
        _ = tokio::signal::ctrl_c() => Some(RangeOutcome::Interrupted),
    };
    job.progress.finish();
    job.results(ended)
}

#[derive(PartialEq, Eq)]
enum Watched {
    Changed,
    Due,
    /// The watch failed or closed.
    Ended,
}

enum Release {
    Released,
    Blocked(Vec<Blocker>),
    /// Changed since it was observed: observe again.
    Stale,
}

struct Retirer<'a> {
    cluster: &'a Cluster,
    args: &'a DeleteTask,
    names: &'a [String],
    started: Instant,
    progress: Progress,
    phases: Mutex<HashMap<String, Phase>>,
    done: Mutex<BTreeMap<String, DeleteResult>>,
    /// For ranges the controller blocks: the IPAddresses it counts, for the result at --timeout.
    controller_counts: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl Retirer<'_> {
    fn set_phase(&self, name: &str, phase: Phase) {
        let changed = self
            .phases
            .lock()
            .expect("no thread panics while holding the phase lock")
            .insert(name.to_owned(), phase.clone())
            .is_none_or(|old| old != phase);
        self.progress.show(name, &phase_text(&phase), changed, None);
    }

    fn phase(&self, name: &str) -> Phase {
        let phases = self
            .phases
            .lock()
            .expect("no thread panics while holding the phase lock");
        phases.get(name).cloned().unwrap_or(Phase::NotStarted)
    }

    fn result(&self, name: &str, outcome: RangeOutcome) -> DeleteResult {
        DeleteResult::new(
            name,
            outcome,
            self.phase(name),
            self.started.elapsed(),
            self.args.dry_run,
        )
    }

    fn finish(&self, r: DeleteResult) {
        let mut done = self
            .done
            .lock()
            .expect("no thread panics while holding the result lock");
        done.insert(r.name.clone(), r);
    }

    fn fail(&self, name: &str, e: impl ToString) {
        self.finish(DeleteResult {
            error: Some(e.to_string()),
            ..self.result(name, RangeOutcome::Failed)
        });
    }

    /// Every name's result, those not finished ended as `ended` says.
    fn results(&self, ended: Option<RangeOutcome>) -> Vec<DeleteResult> {
        let done = self
            .done
            .lock()
            .expect("no thread panics while holding the result lock");
        let counts = self
            .controller_counts
            .lock()
            .expect("no thread panics while holding the count lock");
        self.names
            .iter()
            .map(|n| match done.get(n) {
                Some(r) => r.clone(),
                None => {
                    let blocked = self.phase(n) == Phase::Waiting(Waiting::ControllerBlocked);
                    let outcome = match ended.unwrap_or(RangeOutcome::Failed) {
                        RangeOutcome::TimedOut if blocked => RangeOutcome::Blocked,
                        other => other,
                    };
                    DeleteResult {
                        controller_blockers: counts.get(n).cloned().unwrap_or_default(),
                        ..self.result(n, outcome)
                    }
                }
            })
            .collect()
    }

    async fn retire_all(&self) {
        let mut pending: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let mut deleted = Vec::new();
        for _ in 0..ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let mut retry = Vec::new();
            match self.check_and_delete(&pending, &mut retry).await {
                Ok(mut d) => deleted.append(&mut d),
                Err(e) => pending.iter().for_each(|n| self.fail(n, &e)),
            }
            pending = retry;
        }
        for name in pending {
            self.fail(
                name,
                format!(
                    "the ServiceCIDR kept changing during {ATTEMPTS} checks; not deleted, try again"
                ),
            );
        }
        let follow = deleted.into_iter().map(|(name, uid, answer)| async move {
            let r = self.see_through(name, uid, answer).await;
            self.finish(r);
        });
        futures::future::join_all(follow).await;
    }

    /// One round: a fresh read of everything, one verdict for the whole set, then guard and delete
    /// each name the verdict allows. Returns the ranges to follow; names to try again go to `retry`.
    async fn check_and_delete<'n>(
        &self,
        pending: &[&'n str],
        retry: &mut Vec<&'n str>,
    ) -> Result<Vec<(&'n str, String, Option<RangeRead>)>, cluster::Error> {
        pending
            .iter()
            .for_each(|n| self.set_phase(n, Phase::Checking));
        // The access reviews only read, so they go beside the read rather than after it.
        let names: Vec<String> = pending.iter().map(|n| (*n).to_owned()).collect();
        let rights = requests(&names, self.args.wait);
        let (snapshot, missing) =
            tokio::join!(self.cluster.snapshot(true), self.cluster.missing(&rights));
        let (snapshot, _) = snapshot?;
        let missing = missing?;
        let set: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let blockers = set_blockers(&snapshot, &set);
        let mut deleted = Vec::new();
        for &name in pending {
            let range = snapshot.ranges.iter().find(|r| r.name == name);
            let action = decide(
                range,
                &blockers,
                &missing,
                self.args.dry_run,
                self.args.wait,
            );
            let Some(range) = range else {
                self.fail(name, cluster::Error::NotFound(name.to_owned()));
                continue;
            };
            if range.is_terminating() {
                self.set_phase(name, Phase::Terminating);
            }
            match action {
                Action::NotFound => unreachable!("the range was found"),
                Action::Resume => deleted.push((name, range.uid.clone(), None)),
                Action::Report { outcome, blockers } => self.finish(DeleteResult {
                    blockers,
                    ..self.result(name, outcome)
                }),
                Action::Refuse {
                    blockers,
                    drop_guard,
                } => {
                    if drop_guard {
                        let _ = self
                            .cluster
                            .remove_finalizers(range, &[GUARD_FINALIZER.to_owned()])
                            .await;
                    }
                    self.finish(DeleteResult {
                        blockers,
                        ..self.result(name, RangeOutcome::Refused)
                    });
                }
                Action::NotAllowed(denied) => {
                    self.fail(name, render::delete::not_allowed(name, &denied))
                }
                Action::AskServer => match self.cluster.delete_service_cidr(range, true).await {
                    Ok(_) => self.finish(self.result(name, RangeOutcome::DryRun)),
                    Err(e) => self.fail(name, e),
                },
                Action::GuardAndDelete => {
                    if name == DEFAULT_SERVICE_CIDR {
                        self.progress.note(render::delete::DEFAULT_RANGE_WARNING);
                    }
                    self.guard_and_delete_one(name, range, retry, &mut deleted)
                        .await
                }
            }
        }
        Ok(deleted)
    }

    /// Guards and deletes one range the set's verdict allows; follows it when waiting.
    async fn guard_and_delete_one<'n>(
        &self,
        name: &'n str,
        range: &ServiceCidr,
        retry: &mut Vec<&'n str>,
        deleted: &mut Vec<(&'n str, String, Option<RangeRead>)>,
    ) {
        match self.guard_and_delete(range).await {
            Ok((uid, answer)) if self.args.wait => deleted.push((name, uid, answer)),
            Ok(_) => self.finish(self.result(name, RangeOutcome::Terminating)),
            // Changed or recreated since the check: check again.
            Err(e)
                if e.api_error()
                    .is_some_and(|a| a.is_conflict() || a.is_not_found()) =>
            {
                retry.push(name)
            }
            Err(e) => self.fail(name, e),
        }
    }

    /// The guard first, so that the range outlives the controller's release until our own final
    /// check; then the delete, of exactly the object guarded. Admission is asked first (a
    /// server-side dry run), so a policy or webhook that refuses the delete leaves no guard; one
    /// that starts refusing in between has the guard taken off again. Returns its uid and the
    /// delete's answer, the first observation of its retirement.
    async fn guard_and_delete(
        &self,
        range: &ServiceCidr,
    ) -> Result<(String, Option<RangeRead>), cluster::Error> {
        let guarded = if range.has_guard() {
            range.clone()
        } else {
            self.cluster.delete_service_cidr(range, true).await?;
            self.cluster.add_guard(range).await?
        };
        let answer = match self.cluster.delete_service_cidr(&guarded, false).await {
            Err(e)
                if !range.has_guard()
                    && e.api_error()
                        .and_then(ApiError::code)
                        .is_some_and(|c| (400..500).contains(&c) && c != 409) =>
            {
                self.cluster
                    .remove_finalizers(&guarded, &[GUARD_FINALIZER.to_owned()])
                    .await?;
                return Err(e);
            }
            other => other?,
        };
        self.set_phase(&range.name, Phase::Deleted);
        // An answer that does not show it terminating says nothing: it is read again.
        let answer = answer.filter(|(r, _)| r.is_terminating());
        Ok((guarded.uid, answer))
    }

    /// Observe, ask the core for the next step, act; until the range is gone or a step ends it.
    /// `first` is an observation already made (the delete's answer).
    async fn see_through(
        &self,
        name: &str,
        uid: String,
        mut first: Option<RangeRead>,
    ) -> DeleteResult {
        let mut machine = Retirement::new(uid.clone(), self.args.retire_options());
        let mut cidrs = Vec::new();
        let mut pace = Pace::default();
        loop {
            let got = match first.take() {
                Some(read) => Ok(Some(read)),
                None => self.cluster.get_service_cidr(name).await,
            };
            let read = match got {
                Ok(read) => read,
                Err(e) => {
                    return DeleteResult {
                        error: Some(e.to_string()),
                        ..self.result(name, RangeOutcome::Failed)
                    };
                }
            };
            let observed = match &read {
                Some((range, server_now)) => {
                    cidrs.clone_from(&range.cidrs);
                    Observed::Range {
                        range,
                        server_now: *server_now,
                    }
                }
                None => Observed::Gone,
            };
            let lost_before = machine.guard_lost();
            let step = machine.next(observed, self.started.elapsed());
            if machine.guard_lost() && !lost_before {
                self.progress.note(&render::delete::guard_lost_note(name));
            }
            match step {
                Step::Gone => return self.after_release(name, &cidrs, &machine).await,
                Step::NotTerminating => {
                    return DeleteResult {
                        error: Some("not terminating: someone else must have recreated it".into()),
                        ..self.result(name, RangeOutcome::Failed)
                    };
                }
                Step::Wait { until, why } => {
                    if why == Waiting::ControllerBlocked
                        && self.phase(name) != Phase::Waiting(why.clone())
                    {
                        self.explain_block(name).await;
                    }
                    self.set_phase(name, Phase::Waiting(why));
                    let Some((range, _)) = read.as_ref() else {
                        continue;
                    };
                    let until = until.map(|u| self.started + u);
                    let watched = Instant::now();
                    if self.watch_until(range, until, &machine).await == Watched::Ended {
                        // A watch that failed or closed at once only means: observe again, but
                        // not faster than the retry pace (a proxy answering every watch with
                        // 410 must not turn the wait into a storm of reads).
                        pace.watched(watched.elapsed());
                        let wait = Instant::now() + pace.failed();
                        sleep_until(until.map_or(wait, |u| u.min(wait))).await;
                    }
                }
                Step::Release { remove, takeover } => {
                    self.set_phase(name, Phase::Releasing);
                    match self.release(name, &uid, &remove).await {
                        Ok(Release::Released) => machine.released(takeover),
                        Ok(Release::Stale) => self.progress.note(&format!(
                            "servicecidr {:?}: changed while releasing: checking again",
                            render::sanitize(name)
                        )),
                        Ok(Release::Blocked(blockers)) => {
                            return DeleteResult {
                                blockers,
                                ..self.result(name, RangeOutcome::AtRisk)
                            };
                        }
                        Err(e) => {
                            return DeleteResult {
                                error: Some(e.to_string()),
                                ..self.result(name, RangeOutcome::Failed)
                            };
                        }
                    }
                }
            }
        }
    }

    /// The controller blocks: remember which IPAddresses it counts, for the result at --timeout.
    async fn explain_block(&self, name: &str) {
        if let Ok((snapshot, _)) = self.cluster.snapshot(false).await {
            let ips = controller_blockers(&snapshot, name);
            let mut counts = self
                .controller_counts
                .lock()
                .expect("no thread panics while holding the count lock");
            counts.insert(name.to_owned(), ips);
        }
    }

    /// Returns at the first change to the range, a closed or failed watch, or `until`; counts
    /// down meanwhile.
    async fn watch_until(
        &self,
        range: &ServiceCidr,
        until: Option<Instant>,
        machine: &Retirement,
    ) -> Watched {
        let Ok(events) = self
            .cluster
            .changes_of_service_cidr(&range.name, &range.resource_version)
            .await
        else {
            return Watched::Ended;
        };
        let mut events = pin!(events);
        let forever = self.started + self.args.timeout;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = events.next() => return match ev {
                    Some(Ok(_)) => Watched::Changed,
                    _ => Watched::Ended,
                },
                _ = sleep_until(until.unwrap_or(forever)) => return Watched::Due,
                _ = tick.tick(), if self.progress.is_tty() => {
                    let now = self.started.elapsed();
                    let countdown = machine.timers().and_then(|(grace, takeover)| {
                        if now < grace {
                            Some(("grace period left", grace - now))
                        } else if now < takeover && !self.args.remove_finalizer {
                            Some(("taking over in", takeover - now))
                        } else {
                            None
                        }
                    });
                    self.progress.show(&range.name, &phase_text(&self.phase(&range.name)), false, countdown);
                }
            }
        }
    }

    /// The strict re-check on a fresh consistent read of everything, then a patch that the server
    /// refuses if the range changed since that read. The gap between the two is one request.
    async fn release(
        &self,
        name: &str,
        uid: &str,
        remove: &[String],
    ) -> Result<Release, cluster::Error> {
        let (snapshot, _) = self.cluster.snapshot(true).await?;
        let Some(target) = snapshot
            .ranges
            .iter()
            .find(|r| r.name == name && r.uid == uid)
        else {
            return Ok(Release::Stale);
        };
        if !remove.iter().all(|f| target.finalizers.contains(f)) {
            return Ok(Release::Stale);
        }
        let blockers = set_blockers(&snapshot, &[name]);
        if !blockers.is_empty() {
            return Ok(Release::Blocked(blockers));
        }
        match self.cluster.remove_finalizers(target, remove).await {
            Ok(()) => Ok(Release::Released),
            Err(e)
                if e.api_error()
                    .is_some_and(|a| a.is_conflict() || a.is_not_found()) =>
            {
                Ok(Release::Stale)
            }
            Err(e) => Err(e),
        }
    }

    /// Once the range is gone: did anything appear inside it between our last check and its
    /// removal (an IP written by hand, or by an allocator that learnt late)? Said loudly if so.
    async fn after_release(
        &self,
        name: &str,
        cidrs: &[ipnet::IpNet],
        machine: &Retirement,
    ) -> DeleteResult {
        let gone = DeleteResult {
            released_by: Some(machine.released_by()),
            guard_lost: machine.guard_lost(),
            ..self.result(name, machine.ending(false))
        };
        match self.cluster.snapshot(true).await {
            Ok((snapshot, _)) => {
                let left = left_outside(&snapshot, cidrs);
                DeleteResult {
                    outcome: machine.ending(!left.is_empty()),
                    left_outside: left,
                    ..gone
                }
            }
            Err(e) => DeleteResult {
                error: Some(format!("gone, but the check after it failed: {e}")),
                outcome: RangeOutcome::Failed,
                ..gone
            },
        }
    }
}
