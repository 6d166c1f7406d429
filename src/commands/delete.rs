//! `delete`: pre-flight check, delete with preconditions, wait out the grace period, and release
//! the finalizer where no controller does, only when it is provably safe.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use futures::StreamExt;
use kube::api::WatchEvent;
use tokio::time::{Instant, sleep, sleep_until};

use crate::audit::index::RangeIndex;
use crate::audit::safety::{Blocker, Verdict, grace_remaining, release_verdict};
use crate::audit::suggest::covering_cidrs;
use crate::cli::{DeleteArgs, DryRun};
use crate::cluster::{self, Cluster};
use crate::commands::{print, stderr_is_terminal};
use crate::exit::Exit;
use crate::model::{DEFAULT_SERVICE_CIDR, ServiceCidr};
use crate::render::delete::{DeleteResult, Outcome, ReleasedBy};
use crate::render::{self, Style};

pub async fn run(cluster: &Cluster, style: &Style, args: DeleteArgs) -> Result<Exit> {
    let progress = Progress::new(stderr_is_terminal() && args.names.len() == 1);
    let started = Instant::now();
    let all = futures::future::join_all(args.names.iter().map(|name| {
        Retirement {
            cluster,
            args: &args,
            name,
            progress: &progress,
            started,
        }
        .run()
    }));
    let results = tokio::select! {
        results = all => results,
        // Ctrl-C changes nothing more: say where each range stands and how to resume.
        _ = tokio::signal::ctrl_c() => args.names.iter().map(|name| DeleteResult {
            name: name.clone(),
            outcome: Outcome::Interrupted,
            released_by: None,
            blockers: vec![],
            message: format!("{}; resume with: kubectl servicecidr delete {name} --wait", progress.phase(name)),
            elapsed: started.elapsed(),
        }).collect(),
    };
    progress.finish();
    // A single range that could not be handled is an error, said in one line.
    if let [only] = results.as_slice()
        && only.outcome == Outcome::Failed
    {
        anyhow::bail!("{}", only.message);
    }
    print(|out| render::delete::write(out, style, &results))?;
    Ok(results
        .iter()
        .fold(Exit::Success, |e, r| e.worst(r.outcome.exit())))
}

/// What the user sees while waiting: one rewritten line on a terminal, a log line per phase
/// otherwise. Always stderr, so `-o json` stays clean.
struct Progress {
    tty: bool,
    phases: Mutex<HashMap<String, String>>,
}

impl Progress {
    fn new(tty: bool) -> Self {
        Progress {
            tty,
            phases: Mutex::new(HashMap::new()),
        }
    }

    fn set(&self, name: &str, phase: &str, detail: &str) {
        let changed = self
            .phases
            .lock()
            .expect("no thread panics while holding the progress lock")
            .insert(name.to_owned(), phase.to_owned())
            .is_none_or(|old| old != phase);
        let name = render::sanitize(name);
        if self.tty {
            eprint!("\r\x1b[Kservicecidr {name:?}: {phase}{detail}");
        } else if changed {
            eprintln!("servicecidr {name:?}: {phase}");
        }
    }

    fn phase(&self, name: &str) -> String {
        let phases = self
            .phases
            .lock()
            .expect("no thread panics while holding the progress lock");
        phases
            .get(name)
            .cloned()
            .unwrap_or_else(|| "not started".into())
    }

    fn finish(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}

enum Release {
    Released,
    Gone,
    Blocked(Vec<Blocker>),
    Conflict,
}

struct Retirement<'a> {
    cluster: &'a Cluster,
    args: &'a DeleteArgs,
    name: &'a str,
    progress: &'a Progress,
    started: Instant,
}

impl Retirement<'_> {
    fn result(&self, outcome: Outcome, message: impl Into<String>) -> DeleteResult {
        DeleteResult {
            name: self.name.to_owned(),
            outcome,
            released_by: None,
            blockers: vec![],
            message: message.into(),
            elapsed: self.started.elapsed(),
        }
    }

    async fn run(self) -> DeleteResult {
        match self.check_and_delete().await {
            Ok(Ok(uid)) if self.args.wait => self.wait(&uid).await,
            Ok(Ok(_)) => self.result(
                Outcome::Terminating,
                "terminating: the service-cidr controller releases it after the grace period (use --wait to follow)",
            ),
            Ok(Err(done)) => done,
            Err(e) => self.result(Outcome::Failed, e.to_string()),
        }
    }

    /// Ok(Ok(uid)): deleted (or already terminating), go on waiting. Ok(Err(result)): finished here.
    async fn check_and_delete(&self) -> Result<Result<String, DeleteResult>, cluster::Error> {
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            let Some((current, _)) = self.cluster.get_service_cidr(self.name).await? else {
                return Err(cluster::Error::NotFound(self.name.to_owned()));
            };
            if current.is_terminating() {
                self.progress
                    .set(self.name, "already terminating: resuming the wait", "");
                return Ok(Ok(current.uid));
            }
            self.progress
                .set(self.name, "checking every IPAddress inside", "");
            let (snapshot, _) = self.cluster.snapshot(false).await?;
            let Some(target) = snapshot.ranges.iter().find(|r| r.name == self.name) else {
                continue;
            };
            let covered =
                match release_verdict(&RangeIndex::new(&snapshot.ranges), &snapshot.ips, self.name)
                {
                    Verdict::Blocked { blockers } => return Ok(Err(self.refused(blockers))),
                    Verdict::Safe { covered } => covered,
                };
            if self.name == DEFAULT_SERVICE_CIDR {
                eprintln!(
                    "warning: kube-apiserver recreates the default ServiceCIDR {DEFAULT_SERVICE_CIDR:?} from --service-cluster-ip-range; it comes back unless that flag changes"
                );
            }
            // A delete that RBAC forbids is refused whole by the server; what comes after it
            // (watching, releasing) is asked about first, so a refusal leaves the range untouched.
            let missing = self.missing_rights().await;
            if !missing.is_empty() {
                return Ok(Err(self.result(
                    Outcome::Failed,
                    format!(
                        "not deleted: not allowed to {} servicecidr {:?}; the servicecidr-operator ClusterRole (deploy/rbac) grants what delete needs",
                        missing.join(", "),
                        self.name
                    ),
                )));
            }
            let safe =
                format!("safe: {covered} IPAddress(es) inside are also in other usable ranges");
            match self.args.dry_run {
                DryRun::Client => {
                    return Ok(Err(self.result(
                        Outcome::DryRun,
                        format!("{safe}; not deleted (dry run)"),
                    )));
                }
                DryRun::Server => {
                    self.cluster.delete_service_cidr(target, true).await?;
                    return Ok(Err(self.result(
                        Outcome::DryRun,
                        format!("{safe}; the server accepted the delete (dry run)"),
                    )));
                }
                DryRun::None => {}
            }
            match self.cluster.delete_service_cidr(target, false).await {
                Ok(()) => {
                    self.progress.set(self.name, "deleted", "");
                    return Ok(Ok(target.uid.clone()));
                }
                // Changed or recreated since the check: check again.
                Err(e)
                    if e.api_error()
                        .is_some_and(|a| a.is_conflict() || a.is_not_found()) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Err(self.result(
            Outcome::Failed,
            format!(
                "the ServiceCIDR kept changing during {ATTEMPTS} checks; not deleted, try again"
            ),
        )))
    }

    /// The verbs needed after the delete that RBAC denies, each with the flag that needs it.
    async fn missing_rights(&self) -> Vec<String> {
        let needed = [
            ("watch", "--wait", self.args.wait),
            ("patch", "--remove-finalizer", self.args.remove_finalizer),
        ];
        let mut missing = Vec::new();
        for (verb, flag, _) in needed.into_iter().filter(|n| n.2) {
            if self.cluster.may(verb, self.name).await == Some(false) {
                missing.push(format!("{verb} (for {flag})"));
            }
        }
        missing
    }

    fn refused(&self, blockers: Vec<Blocker>) -> DeleteResult {
        let cover: Vec<String> = covering_cidrs(&blockers.iter().map(|b| b.ip).collect::<Vec<_>>())
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut services: Vec<String> = blockers
            .iter()
            .filter_map(|b| {
                b.parent
                    .as_ref()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
            })
            .collect();
        services.sort();
        services.dedup();
        let message = format!(
            "not deleted: {} IPAddress(es) would be left without a usable range; to unblock, create a ServiceCIDR covering {}{}",
            blockers.len(),
            cover.join(", "),
            if services.is_empty() {
                String::new()
            } else {
                format!(", or recreate Service(s) {}", services.join(", "))
            }
        );
        DeleteResult {
            blockers,
            ..self.result(Outcome::Refused, message)
        }
    }

    async fn wait(&self, uid: &str) -> DeleteResult {
        let deadline = self.started + self.args.timeout;
        let mut first_seen: Option<Instant> = None;
        // Each read gives an upper bound of the grace period's end; the earliest one holds.
        let mut grace_end: Option<Instant> = None;
        let mut released_by = ReleasedBy::Controller;
        let mut backoff = Duration::from_millis(200);
        loop {
            if Instant::now() >= deadline {
                return self.result(
                    Outcome::TimedOut,
                    format!(
                        "still there after {}: {}",
                        humantime::format_duration(self.args.timeout),
                        self.progress.phase(self.name)
                    ),
                );
            }
            let read_at = Instant::now();
            let range = match self.cluster.get_service_cidr(self.name).await {
                Ok(Some((range, date))) if range.uid == uid => (range, date),
                Ok(_) => {
                    return DeleteResult {
                        released_by: Some(released_by),
                        ..self.result(Outcome::Deleted, "gone")
                    };
                }
                Err(e) if is_transient(&e) => {
                    self.progress.set(
                        self.name,
                        "API server unavailable, retrying",
                        &format!(": {e}"),
                    );
                    sleep(backoff.min(deadline - Instant::now())).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(e) => return self.result(Outcome::Failed, e.to_string()),
            };
            backoff = Duration::from_millis(200);
            let (range, server_date) = range;
            let Some(deleting) = range.deleting else {
                return self.result(
                    Outcome::Failed,
                    "not terminating: someone else must have recreated it",
                );
            };
            let seen = *first_seen.get_or_insert(read_at);
            let server_now = server_date.unwrap_or_else(SystemTime::now);
            let bound = read_at
                + grace_remaining(deleting, self.args.grace_period, server_now, read_at - seen);
            let grace_end = *grace_end.insert(grace_end.map_or(bound, |g| g.min(bound)));
            let takeover = if self.args.remove_finalizer {
                grace_end
            } else {
                grace_end + self.args.controller_timeout
            };

            if !range.has_controller_finalizer() {
                let others = range.finalizers.join(", ");
                self.progress.set(
                    self.name,
                    &format!("waiting for other finalizers: {others}"),
                    "",
                );
            } else if Instant::now() >= takeover {
                match self.release(uid).await {
                    Ok(Release::Released) => {
                        released_by = ReleasedBy::Plugin;
                        self.progress.set(self.name, "finalizer removed", "");
                    }
                    Ok(Release::Gone) => {}
                    Ok(Release::Blocked(blockers)) => {
                        let message = format!(
                            "{} IPAddress(es) appeared inside during the grace period and have no other usable range: the finalizer stays; create a ServiceCIDR covering them or recreate their Services, then rerun with --wait",
                            blockers.len()
                        );
                        return DeleteResult {
                            blockers,
                            ..self.result(Outcome::AtRisk, message)
                        };
                    }
                    Ok(Release::Conflict) => {
                        self.progress
                            .set(self.name, "changed while releasing: checking again", "")
                    }
                    Err(e) if is_transient(&e) => sleep(backoff).await,
                    Err(e) => return self.result(Outcome::Failed, e.to_string()),
                }
                continue;
            } else if Instant::now() < grace_end {
                self.progress.set(self.name, "grace period", "");
            } else if range
                .ready
                .as_ref()
                .is_some_and(|c| c.reason == "Terminating")
            {
                self.progress.set(
                    self.name,
                    "blocked by the controller: IPAddresses still reference it",
                    "",
                );
            } else {
                self.progress
                    .set(self.name, "waiting for the service-cidr controller", "");
            }

            let next = [grace_end, takeover, deadline]
                .into_iter()
                .filter(|t| *t > Instant::now())
                .min()
                .unwrap_or(deadline);
            if let Err(e) = self.watch_until(&range, next, grace_end, takeover).await {
                if !is_transient(&e) {
                    return self.result(Outcome::Failed, e.to_string());
                }
                sleep(backoff.min(next.saturating_duration_since(Instant::now()))).await;
            }
        }
    }

    /// Returns at the first change to the range, a closed watch, or `until`; counts down meanwhile.
    async fn watch_until(
        &self,
        range: &ServiceCidr,
        until: Instant,
        grace_end: Instant,
        takeover: Instant,
    ) -> Result<(), cluster::Error> {
        let mut events = pin!(
            self.cluster
                .watch_service_cidrs(Some(self.name), &range.resource_version)
                .await?
        );
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(WatchEvent::Bookmark(_))) => {}
                    Some(Err(e)) => return Err(e),
                    _ => return Ok(()),
                },
                _ = sleep_until(until) => return Ok(()),
                _ = tick.tick(), if self.progress.tty => {
                    let now = Instant::now();
                    let detail = if now < grace_end {
                        format!(": {}s left", (grace_end - now).as_secs() + 1)
                    } else if !self.args.remove_finalizer && now < takeover {
                        format!(": taking over in {}s", (takeover - now).as_secs() + 1)
                    } else {
                        String::new()
                    };
                    self.progress.set(self.name, &self.progress.phase(self.name), &detail);
                }
            }
        }
    }

    /// The controller's job, done only when provably safe: a fresh consistent read of every range
    /// and IPAddress, then a patch that fails if the range changed since that read.
    async fn release(&self, uid: &str) -> Result<Release, cluster::Error> {
        self.progress.set(
            self.name,
            "grace period over: re-checking every IPAddress before releasing",
            "",
        );
        let (snapshot, _) = self.cluster.snapshot(false).await?;
        let Some(target) = snapshot
            .ranges
            .iter()
            .find(|r| r.name == self.name && r.uid == uid)
        else {
            return Ok(Release::Gone);
        };
        if !target.has_controller_finalizer() {
            return Ok(Release::Gone);
        }
        if let Verdict::Blocked { blockers } =
            release_verdict(&RangeIndex::new(&snapshot.ranges), &snapshot.ips, self.name)
        {
            return Ok(Release::Blocked(blockers));
        }
        match self.cluster.remove_finalizer(target).await {
            Ok(()) => Ok(Release::Released),
            Err(e) if e.api_error().is_some_and(|a| a.is_conflict()) => Ok(Release::Conflict),
            Err(e) if e.api_error().is_some_and(|a| a.is_not_found()) => Ok(Release::Gone),
            Err(e) => Err(e),
        }
    }
}

fn is_transient(e: &cluster::Error) -> bool {
    e.api_error().is_some_and(|a| a.is_transient())
}
