//! A held copy of the cluster kept current by watch events: `serve` and `status --watch` list
//! once, then apply what the watches say, and list again only when a watch cannot resume (410
//! Gone). Events come in resourceVersion order per list, so the copy is always the state of each
//! list as of some resourceVersion, as an informer's is.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::{FutureExt, StreamExt};

use crate::cluster::{self, Change, Cluster, Inventory};
use crate::model::{IpAllocation, ServiceCidr, ServiceIps, Snapshot};

#[derive(Debug, Default)]
pub struct Held {
    ranges: BTreeMap<String, ServiceCidr>,
    ips: BTreeMap<IpAddr, IpAllocation>,
    services: BTreeMap<(String, String), ServiceIps>,
}

impl Held {
    pub fn new(snapshot: Snapshot) -> Held {
        Held {
            ranges: snapshot
                .ranges
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect(),
            ips: snapshot.ips.into_iter().map(|a| (a.ip, a)).collect(),
            services: snapshot
                .services
                .into_iter()
                .map(|s| ((s.namespace.clone(), s.name.clone()), s))
                .collect(),
        }
    }

    pub fn apply(&mut self, change: Change) {
        match change {
            Change::PutRange(r) => {
                self.ranges.insert(r.name.clone(), r);
            }
            Change::DeleteRange(name) => {
                self.ranges.remove(&name);
            }
            Change::PutIp(a) => {
                self.ips.insert(a.ip, a);
            }
            Change::DeleteIp(ip) => {
                self.ips.remove(&ip);
            }
            Change::PutService(s) => {
                self.services
                    .insert((s.namespace.clone(), s.name.clone()), s);
            }
            Change::DeleteService(ns, name) => {
                self.services.remove(&(ns, name));
            }
            Change::Progress | Change::Expired => {}
        }
    }

    /// The copy as lists would give it (ranges by name, as the server orders them).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            ranges: self.ranges.values().cloned().collect(),
            ips: self.ips.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
        }
    }
}

/// How a round of watches ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The server closed a watch, as it does every few minutes: resume from the resourceVersions.
    Resume,
    /// A watch cannot resume (410 Gone, an error event): list again.
    Relist,
}

/// Watches `lists` from `rvs` (updated as events arrive) and hands `on` each batch of changes:
/// everything that has arrived by the time the first is read, so a burst is one batch and a
/// lone change is handed on at once. Ends when the first watch ends; a watch that fails, or an
/// error from `on`, is an error.
pub async fn follow<E: From<cluster::Error>>(
    cluster: &Cluster,
    lists: &[Inventory],
    rvs: &mut [String],
    on: impl FnMut(Vec<Change>) -> Result<(), E>,
) -> Result<Ended, E> {
    let mut streams = Vec::new();
    for list in lists {
        match cluster.follow(*list, &rvs[streams.len()]).await {
            Ok(s) => streams.push(s),
            // Too old to resume from: not a failure, the reason to list again.
            Err(e) if e.api_error().and_then(|a| a.code()) == Some(410) => {
                return Ok(Ended::Relist);
            }
            Err(e) => return Err(e.into()),
        }
    }
    drain(streams, rvs, on).await
}

/// The watches' events, batched, until one watch ends: every stream ends with a marker, so the end
/// of one is seen at once, not at the next event of another.
async fn drain<E: From<cluster::Error>>(
    streams: Vec<cluster::Changes>,
    rvs: &mut [String],
    mut on: impl FnMut(Vec<Change>) -> Result<(), E>,
) -> Result<Ended, E> {
    let mut events = futures::stream::select_all(streams.into_iter().enumerate().map(|(i, s)| {
        s.map(move |item| (i, Some(item)))
            .chain(futures::stream::once(async move { (i, None) }))
            .boxed()
    }));
    while let Some(first) = events.next().await {
        let mut batch = Vec::new();
        let mut ended = None;
        let mut next = Some(first);
        while let Some((i, item)) = next {
            let Some(item) = item else {
                ended = Some(Ended::Resume);
                break;
            };
            let (rv, change) = item?;
            if matches!(change, Change::Expired) {
                ended = Some(Ended::Relist);
                break;
            }
            if !rv.is_empty() {
                rvs[i] = rv;
            }
            batch.push(change);
            next = events.next().now_or_never().flatten();
        }
        on(batch)?;
        if let Some(ended) = ended {
            return Ok(ended);
        }
    }
    Ok(Ended::Resume)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, range};

    /// Events applied to a listed copy give what a fresh list of the result gives.
    #[test]
    fn changes_keep_the_copy_equal_to_a_fresh_list() {
        let mut held = Held::new(Snapshot {
            ranges: vec![range("a", &["10.0.0.0/24"])],
            ips: vec![alloc("10.0.0.5")],
            services: vec![],
        });
        held.apply(Change::PutRange(range("b", &["10.1.0.0/24"])));
        held.apply(Change::PutIp(alloc("10.1.0.7")));
        held.apply(Change::DeleteIp("10.0.0.5".parse().unwrap()));
        held.apply(Change::DeleteRange("a".into()));
        held.apply(Change::Progress);
        let s = held.snapshot();
        assert_eq!(
            s.ranges.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(s.ips, [alloc("10.1.0.7")]);
    }

    fn events(changes: Vec<(&'static str, Change)>) -> cluster::Changes {
        futures::stream::iter(changes.into_iter().map(|(rv, c)| Ok((rv.to_owned(), c)))).boxed()
    }

    /// One watch ends while another stays open and quiet: the round ends at once (all are resumed
    /// together), with what came before it handed on and its resourceVersion kept.
    #[test]
    fn the_end_of_one_watch_ends_the_round_at_once() {
        let quiet = futures::stream::pending::<cluster::Result<(String, Change)>>().boxed();
        let ending = events(vec![("7", Change::PutIp(alloc("10.0.0.1")))]);
        let mut rvs = ["1".to_owned(), "2".to_owned()];
        let mut seen = Vec::new();
        let ended = futures::executor::block_on(drain(vec![quiet, ending], &mut rvs, |b| {
            seen.push(b.len());
            Ok::<_, cluster::Error>(())
        }));
        assert_eq!(ended.unwrap(), Ended::Resume);
        assert_eq!(rvs, ["1", "7"]);
        assert_eq!(seen.iter().sum::<usize>(), 1);
    }

    /// A burst that has arrived is one batch; an event the server cannot resume after ends the
    /// round asking for a list, after handing on what came before it.
    #[test]
    fn a_burst_is_one_batch_and_expired_asks_for_a_list() {
        let burst = events(vec![
            ("3", Change::PutIp(alloc("10.0.0.1"))),
            ("4", Change::DeleteIp("10.0.0.1".parse().unwrap())),
            ("", Change::Expired),
            ("9", Change::PutIp(alloc("10.0.0.2"))),
        ]);
        let mut rvs = ["1".to_owned()];
        let mut batches = Vec::new();
        let ended = futures::executor::block_on(drain(vec![burst], &mut rvs, |b| {
            batches.push(b.len());
            Ok::<_, cluster::Error>(())
        }));
        assert_eq!(ended.unwrap(), Ended::Relist);
        assert_eq!(batches, [2]);
        assert_eq!(rvs, ["4"]);
    }
}
