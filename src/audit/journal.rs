//! The migration journal: what a run writes to the cluster before it deletes a Service, and what
//! any later run, from any machine, does with it.
//!
//! The protocol, one Service at a time:
//! 1. an entry naming the exact object (its uid) and holding its manifest is written;
//! 2. the delete is sent with that uid and resourceVersion as preconditions;
//! 3. a refused delete removes the entry at once: nothing of ours happened to the object;
//! 4. once the replacement (or the restored original) exists, the entry is removed.
//!
//! So an entry means: "this run may have deleted object `uid`, and no Service has taken its place".
//! [`resolve`] is what a rerun makes of it; only an object this tool deleted is ever recreated.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The journal of one migration, kept on the range it moves Services into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// The UID of the cluster's kube-system namespace: the cluster this journal was written on.
    pub cluster: String,
    /// The new range's CIDRs.
    pub to: Vec<IpNet>,
    /// The old ranges, kept for when they are gone.
    pub from: Vec<RecordedRange>,
    /// Services deleted, or about to be, and not yet replaced, by `namespace/name`.
    #[serde(default)]
    pub moves: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedRange {
    pub name: String,
    pub cidrs: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    pub namespace: String,
    pub name: String,
    /// The object the delete names: only this one, once gone, is recreated.
    pub uid: String,
    /// The run that wrote it (one id per process), and when, by its clock (RFC 3339).
    pub run: String,
    pub at: String,
    /// Its ClusterIPs, and the ones it is moving to.
    pub from: Vec<IpAddr>,
    pub to: Vec<IpAddr>,
    /// The original without what the server sets: what a restore creates again.
    pub manifest: serde_json::Value,
}

impl Entry {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl Record {
    pub fn new(cluster: &str, to: &[IpNet]) -> Record {
        Record {
            cluster: cluster.to_owned(),
            to: to.to_vec(),
            from: Vec::new(),
            moves: BTreeMap::new(),
        }
    }

    /// Adds the old ranges not recorded yet; those recorded keep the CIDRs first seen.
    pub fn remember(&mut self, ranges: impl IntoIterator<Item = RecordedRange>) {
        for r in ranges {
            if !self.from.iter().any(|f| f.name == r.name) {
                self.from.push(r);
            }
        }
    }
}

/// What the cluster holds under an entry's name now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Now {
    Absent,
    /// The very object the entry names.
    Same {
        terminating: bool,
    },
    /// Another object of that name.
    Other,
}

/// How long another run's entry over an untouched object may be its delete in flight: longer
/// than any request takes. Until then the Service is left to that run.
pub const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(60);

/// What a run does with an entry it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Another run wrote it a moment ago over an object still untouched: its delete may be in
    /// flight. Leave the Service to it this round.
    Busy,
    /// The object is there and not being deleted: the delete never took effect. Forget the entry.
    NotDeleted,
    /// A Service of that name was created since (the create whose answer was lost, another run,
    /// or its owner): never overwrite it. Forget the entry.
    Replaced,
    /// Deleted, held by finalizers: wait for it to go, then recreate it.
    AwaitGone,
    /// Deleted and gone: recreate it.
    Recreate,
}

/// The one decision about an entry. The entry is written before the delete and removed on a
/// refusal or once a Service of that name exists again, so an object gone or going under an
/// entry was deleted by this tool, with one exception: a run killed within one round trip of its
/// delete or of its create (after writing the entry, before reading the delete's answer; or
/// after the create, before removing the entry), whose Service another client then deletes
/// before a rerun. Who deleted an object shows only in those answers, lost with the run; a lost
/// Service is the worse mistake, so that case is recreated.
///
/// `fresh`: another run wrote the entry less than [`IN_FLIGHT`] ago.
pub fn resolve(now: Now, fresh: bool) -> Verdict {
    match now {
        Now::Same { terminating: false } if fresh => Verdict::Busy,
        Now::Same { terminating: false } => Verdict::NotDeleted,
        Now::Same { terminating: true } => Verdict::AwaitGone,
        Now::Other => Verdict::Replaced,
        Now::Absent => Verdict::Recreate,
    }
}

/// Why a run may not start while another migration has Services in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The range holding that journal.
    pub range: String,
    pub to: Vec<IpNet>,
    pub from: Vec<String>,
    pub services: Vec<String>,
}

/// A journal with Services in flight that a run into `name` (`to`) would not finish although they
/// concern it: in its own journal, an entry whose old IPs lie in none of the ranges it empties
/// (another `--from`); in another migration's, an entry whose old IPs lie in them (another
/// target for the same Services). Migrations of other ranges go on side by side. `holds(ip)`
/// says whether one of this run's old ranges holds an IP.
pub fn unfinished<'a>(
    journals: impl IntoIterator<Item = (&'a str, &'a Record)>,
    name: &str,
    to: &[IpNet],
    holds: impl Fn(IpAddr) -> bool,
) -> Option<Unfinished> {
    journals.into_iter().find_map(|(range, record)| {
        let same_target = range == name && record.to == to;
        let stray: Vec<String> = record
            .moves
            .values()
            .filter(|e| same_target != e.from.iter().any(|ip| holds(*ip)))
            .map(Entry::key)
            .collect();
        (!stray.is_empty()).then(|| Unfinished {
            range: range.to_owned(),
            to: record.to.clone(),
            from: record.from.iter().map(|r| r.name.clone()).collect(),
            services: stray,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(key: &str, from: &str) -> Entry {
        let (ns, name) = key.split_once('/').unwrap();
        Entry {
            namespace: ns.into(),
            name: name.into(),
            uid: "u1".into(),
            run: "r1".into(),
            at: "2026-12-05T20:00:00Z".into(),
            from: vec![from.parse().unwrap()],
            to: vec!["10.200.0.1".parse().unwrap()],
            manifest: serde_json::json!({"metadata": {"name": name, "namespace": ns}}),
        }
    }

    fn record(entries: &[Entry]) -> Record {
        let mut r = Record::new("cluster-a", &["10.200.0.0/24".parse().unwrap()]);
        r.remember([RecordedRange {
            name: "old".into(),
            cidrs: vec!["10.96.0.0/24".parse().unwrap()],
        }]);
        r.moves = entries.iter().map(|e| (e.key(), e.clone())).collect();
        r
    }

    #[test]
    fn remember_adds_new_ranges_and_keeps_the_cidrs_first_seen() {
        let mut r = record(&[]);
        let range = |name: &str, cidr: &str| RecordedRange {
            name: name.into(),
            cidrs: vec![cidr.parse().unwrap()],
        };
        r.remember([range("old", "10.97.0.0/24"), range("older", "10.98.0.0/24")]);
        let seen: Vec<String> = r
            .from
            .iter()
            .map(|f| format!("{} {}", f.name, f.cidrs[0]))
            .collect();
        assert_eq!(seen, ["old 10.96.0.0/24", "older 10.98.0.0/24"]);
    }

    #[test]
    fn a_journal_reads_back_as_written_and_refuses_what_it_does_not_know() {
        let r = record(&[entry("a/web", "10.96.0.5")]);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
        let newer = text.replacen('{', "{\"phase\":\"x\",", 1);
        assert!(serde_json::from_str::<Record>(&newer).is_err());
    }

    #[test]
    fn an_untouched_object_is_left_to_a_fresh_writer_and_forgotten_after() {
        let untouched = Now::Same { terminating: false };
        assert_eq!(resolve(untouched, true), Verdict::Busy);
        assert_eq!(resolve(untouched, false), Verdict::NotDeleted);
        for fresh in [false, true] {
            assert_eq!(resolve(Now::Absent, fresh), Verdict::Recreate);
            assert_eq!(resolve(Now::Other, fresh), Verdict::Replaced);
            assert_eq!(
                resolve(Now::Same { terminating: true }, fresh),
                Verdict::AwaitGone
            );
        }
    }

    #[test]
    fn remembered_ranges_keep_the_cidrs_first_seen() {
        let mut r = record(&[]);
        r.remember([
            RecordedRange {
                name: "old".into(),
                cidrs: vec!["10.1.0.0/24".parse().unwrap()],
            },
            RecordedRange {
                name: "older".into(),
                cidrs: vec!["10.2.0.0/24".parse().unwrap()],
            },
        ]);
        assert_eq!(r.from.len(), 2);
        assert_eq!(r.from[0].cidrs, ["10.96.0.0/24".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn only_a_run_that_finishes_every_entry_may_start() {
        let to: Vec<IpNet> = vec!["10.200.0.0/24".parse().unwrap()];
        let old: IpNet = "10.96.0.0/24".parse().unwrap();
        let holds_old = |ip: IpAddr| old.contains(&ip);
        let busy = record(&[entry("a/web", "10.96.0.5")]);
        let idle = record(&[]);
        // The same migration finishes it.
        assert_eq!(unfinished([("new", &busy)], "new", &to, holds_old), None);
        // Another target, or another --from, leaves it: refused, naming it.
        let other = unfinished([("new", &busy)], "next", &to, holds_old).unwrap();
        assert_eq!(other.range, "new");
        assert_eq!(other.services, ["a/web"]);
        assert_eq!(other.from, ["old"]);
        let wider: Vec<IpNet> = vec!["10.200.0.0/23".parse().unwrap()];
        assert!(unfinished([("new", &busy)], "new", &wider, holds_old).is_some());
        assert!(unfinished([("new", &busy)], "new", &to, |_| false).is_some());
        // A journal with nothing in flight blocks nobody, nor does another range's migration.
        assert_eq!(unfinished([("new", &idle)], "next", &to, holds_old), None);
        assert_eq!(unfinished([("new", &busy)], "next", &to, |_| false), None);
    }

    /// What happens around one Service: the tool's steps, and what others do between them.
    #[derive(Debug, Clone, Copy)]
    enum Outside {
        Nothing,
        /// Its owner deletes it (held a while if it has a finalizer).
        OwnerDeletes,
        /// Its owner creates a Service of that name if there is none.
        OwnerCreates,
        /// The finalizer holding a deleted Service goes.
        FinalizerGoes,
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Obj {
        uid: u32,
        terminating: bool,
        finalizer: bool,
    }

    /// The cluster as far as one Service goes, and who did what to it.
    #[derive(Debug, Clone, Default)]
    struct World {
        svc: Option<Obj>,
        next_uid: u32,
        entry: Option<u32>,
        /// The last delete that took effect was its owner's, and nobody has created it since.
        owner_deleted: bool,
        /// The tool created a Service after the owner's delete: a resurrection.
        resurrected: bool,
        /// The entry is written and the answer that would tell the tool's delete or create from
        /// the owner's delete is unread (or lost with the run).
        unanswered: bool,
        /// The documented exception: a rerun found such an entry over an object its owner deleted.
        ambiguous: bool,
    }

    impl World {
        fn outside(&mut self, e: Outside) {
            match e {
                Outside::Nothing => {}
                Outside::OwnerDeletes => {
                    if let Some(o) = &mut self.svc
                        && !o.terminating
                    {
                        self.owner_deleted = true;
                        if o.finalizer {
                            o.terminating = true;
                        } else {
                            self.svc = None;
                        }
                    }
                }
                Outside::OwnerCreates => {
                    if self.svc.is_none() {
                        self.owner_deleted = false;
                        self.next_uid += 1;
                        self.svc = Some(Obj {
                            uid: self.next_uid,
                            terminating: false,
                            finalizer: false,
                        });
                    }
                }
                Outside::FinalizerGoes => {
                    if let Some(o) = &mut self.svc {
                        o.finalizer = false;
                        if o.terminating {
                            self.svc = None;
                        }
                    }
                }
            }
        }

        fn create(&mut self) -> bool {
            if self.svc.is_some() {
                return false;
            }
            self.resurrected |= self.owner_deleted;
            self.next_uid += 1;
            self.svc = Some(Obj {
                uid: self.next_uid,
                terminating: false,
                finalizer: false,
            });
            true
        }

        fn now(&self, uid: u32) -> Now {
            match &self.svc {
                None => Now::Absent,
                Some(o) if o.uid == uid => Now::Same {
                    terminating: o.terminating,
                },
                Some(_) => Now::Other,
            }
        }
    }

    /// One run of the tool over the Service, as `commands::migrate` does it, stopping after
    /// `kill_at` steps (None: to the end). `outside[i]` happens before step i. The delete's answer
    /// is lost when the run is killed right after sending it.
    fn run(w: &mut World, outside: &[Outside], kill_at: Option<usize>) {
        let mut clock = Steps {
            step: 0,
            kill_at,
            outside,
        };
        // A rerun first settles the entry it finds.
        if let Some(uid) = w.entry {
            if !clock.next(w) {
                return;
            }
            // The documented exception: the owner's delete and this entry, with the answer
            // that would tell them apart lost.
            w.ambiguous |= w.unanswered && w.owner_deleted;
            w.unanswered = false;
            match resolve(w.now(uid), false) {
                Verdict::Busy => unreachable!("one run at a time"),
                Verdict::NotDeleted | Verdict::Replaced => w.entry = None,
                Verdict::AwaitGone => return, // a later run finds it gone
                Verdict::Recreate => create_and_forget(w, &mut clock),
            }
            return;
        }
        // A first run: read, journal, delete with preconditions, wait, create, forget.
        if !clock.next(w) {
            return;
        }
        let Some(read) = w.svc.clone().filter(|o| !o.terminating) else {
            return; // gone, or its owner is deleting it: skipped
        };
        if !clock.next(w) {
            return;
        }
        w.entry = Some(read.uid);
        w.unanswered = true;
        if !clock.next(w) {
            return;
        }
        let landed = w.svc.as_ref() == Some(&read);
        if landed {
            w.owner_deleted = false;
            let o = w.svc.as_mut().unwrap();
            if o.finalizer {
                o.terminating = true;
            } else {
                w.svc = None;
            }
        }
        if clock.killed() {
            return; // killed with the answer in flight
        }
        w.unanswered = false;
        if !landed {
            if !clock.next(w) {
                return;
            }
            w.entry = None;
            return;
        }
        if w.svc.as_ref().is_some_and(|o| o.uid == read.uid) {
            return; // held by a finalizer: the run stops and a rerun waits again
        }
        create_and_forget(w, &mut clock);
    }

    /// The create, then the entry removed: the create's answer, unread until then, is what
    /// tells this tool's Service from one its owner made and deleted meanwhile.
    fn create_and_forget(w: &mut World, clock: &mut Steps) {
        if !clock.next(w) {
            return;
        }
        w.create();
        w.unanswered = true;
        if !clock.next(w) {
            return;
        }
        w.entry = None;
    }

    /// Counts the steps of a run, lets the outside act before each, and kills the run at one.
    struct Steps<'o> {
        step: usize,
        kill_at: Option<usize>,
        outside: &'o [Outside],
    }

    impl Steps<'_> {
        fn next(&mut self, w: &mut World) -> bool {
            if self.killed() {
                return false;
            }
            w.outside(*self.outside.get(self.step).unwrap_or(&Outside::Nothing));
            self.step += 1;
            true
        }

        fn killed(&self) -> bool {
            self.kill_at == Some(self.step)
        }
    }

    fn outside_event() -> impl Strategy<Value = Outside> {
        prop_oneof![
            4 => Just(Outside::Nothing),
            1 => Just(Outside::OwnerDeletes),
            1 => Just(Outside::OwnerCreates),
            1 => Just(Outside::FinalizerGoes),
        ]
    }

    proptest! {
        // For every interleaving of kills, reruns and outside changes (the owner deleting or
        // creating the Service, a finalizer holding it), once the dust settles the Service exists
        // unless its owner deleted it, and the tool never created one its owner had deleted
        // (but for the one documented exception in `resolve`).
        #[test]
        fn no_service_is_lost_or_resurrected(
            finalizer in any::<bool>(),
            runs in proptest::collection::vec(
                (proptest::collection::vec(outside_event(), 8), proptest::option::of(0usize..8)),
                1..5,
            ),
        ) {
            let mut w = World {
                svc: Some(Obj { uid: 1, terminating: false, finalizer }),
                next_uid: 1,
                ..World::default()
            };
            for (outside, kill) in &runs {
                run(&mut w, outside, *kill);
            }
            // Then the finalizers go and runs go on, undisturbed, until the journal is empty.
            for _ in 0..3 {
                w.outside(Outside::FinalizerGoes);
                run(&mut w, &[], None);
            }
            prop_assert!(w.entry.is_none(), "{:?}", w);
            prop_assert!(w.svc.is_some() || w.owner_deleted, "lost: {:?}", w);
            if !w.ambiguous {
                prop_assert!(!w.resurrected, "resurrected: {:?}", w);
                prop_assert!(w.svc.is_none() || !w.owner_deleted, "{:?}", w);
            }
        }
    }
}
