//! The migration's journal as this run keeps it: the record last read or written on the new
//! range, and each change to it a write with the range's resourceVersion, redone on a conflict.

use anyhow::{Result, bail};

use crate::audit::journal::{Entry, Record, RecordedRange};
use crate::audit::migrate::Plan;
use crate::cluster::{ApiError, Cluster};
use crate::render;
use crate::render::migrate as words;

/// The journal on the new range, as last read or written: every change is a write with the
/// range's resourceVersion, read again and redone on a conflict.
pub struct Ledger<'a> {
    cluster: &'a Cluster,
    pub range: String,
    resource_version: String,
    record: Record,
}

/// A change to the journal: false leaves it unwritten.
type Change<'c> = dyn FnMut(&mut Record) -> bool + Send + 'c;

impl<'a> Ledger<'a> {
    /// Creates the new range carrying the journal, or writes the journal on it, remembering the
    /// old ranges; then forgets the entries a rerun settled (`settled`).
    pub async fn open(
        cluster: &'a Cluster,
        plan: &Plan,
        cluster_id: &str,
        settled: &[String],
    ) -> Result<Ledger<'a>> {
        let old: Vec<RecordedRange> = plan
            .sources
            .iter()
            .map(|s| RecordedRange {
                name: s.name.clone(),
                cidrs: s.cidrs.clone(),
            })
            .collect();
        let mut fresh = Record::new(cluster_id, &plan.cidrs);
        fresh.remember(old.clone());
        if !plan.range_exists {
            match cluster
                .create_service_cidr(&plan.name, &plan.cidrs, Some(&fresh), false)
                .await
            {
                Ok(_) => render::to_stderr(&words::created(plan)),
                // Another run made it a moment ago: the same range is as good, another is not.
                Err(e) if e.api_error().and_then(ApiError::code) == Some(409) => {
                    match cluster.get_service_cidr(&plan.name).await? {
                        Some((r, _)) if r.cidrs == plan.cidrs && !r.is_terminating() => {}
                        _ => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut ledger = Ledger {
            cluster,
            range: plan.name.clone(),
            resource_version: String::new(),
            record: fresh,
        };
        ledger.read(plan).await?;
        ledger
            .change(&mut |r| {
                r.remember(old.clone());
                for key in settled {
                    r.moves.remove(key);
                }
                true
            })
            .await?;
        Ok(ledger)
    }

    /// Reads the journal again; a range without one starts a new one.
    async fn read(&mut self, plan: &Plan) -> Result<()> {
        match self.cluster.journal_of(&self.range).await? {
            Some((rv, journal)) => {
                self.resource_version = rv;
                if let Some(j) = journal {
                    if j.record.cluster != self.record.cluster || j.record.to != plan.cidrs {
                        bail!(
                            "{}",
                            words::foreign_journal(
                                &self.range,
                                &j.record.cluster,
                                &self.record.cluster
                            )
                        );
                    }
                    self.record = j.record;
                }
                Ok(())
            }
            None => bail!("{}", words::range_gone(&self.range)),
        }
    }

    /// Applies `f` and writes the result; on a conflict, reads again and applies it anew.
    /// Returns false when `f` declined.
    async fn change(&mut self, f: &mut Change<'_>) -> Result<bool> {
        for _ in 0..20 {
            let mut next = self.record.clone();
            if !f(&mut next) {
                return Ok(false);
            }
            match self
                .cluster
                .write_journal(&self.range, &self.resource_version, Some(&next))
                .await
            {
                Ok(rv) => {
                    self.resource_version = rv;
                    self.record = next;
                    return Ok(true);
                }
                // Read again and redo the change on what is there now: a journal another run
                // closed meanwhile starts empty, never from this run's stale copy.
                Err(e) if e.api_error().is_some_and(ApiError::is_conflict) => {
                    match self.cluster.journal_of(&self.range).await? {
                        Some((rv, j)) => {
                            self.resource_version = rv;
                            self.record = match j {
                                Some(j) => j.record,
                                None => Record {
                                    moves: Default::default(),
                                    ..self.record.clone()
                                },
                            };
                        }
                        None => bail!("{}", words::range_gone(&self.range)),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("{}", words::journal_contended(&self.range))
    }

    /// Takes a Service in hand: false when another run holds it.
    pub async fn claim(&mut self, entry: Entry) -> Result<bool> {
        let key = entry.key();
        self.change(&mut |r| match r.moves.get(&key) {
            Some(e) if e.run != entry.run => false,
            _ => {
                r.moves.insert(key.clone(), entry.clone());
                true
            }
        })
        .await
    }

    pub async fn forget(&mut self, key: &str) -> Result<()> {
        self.change(&mut |r| r.moves.remove(key).is_some())
            .await
            .map(|_| ())
    }

    /// Removes the journal once nothing is in flight.
    pub async fn close(&mut self) -> Result<()> {
        loop {
            if !self.record.moves.is_empty() {
                return Ok(());
            }
            match self
                .cluster
                .write_journal(&self.range, &self.resource_version, None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.api_error().is_some_and(ApiError::is_conflict) => {
                    match self.cluster.journal_of(&self.range).await? {
                        Some((rv, j)) => {
                            self.resource_version = rv;
                            match j {
                                Some(j) => self.record = j.record,
                                None => return Ok(()),
                            }
                        }
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
