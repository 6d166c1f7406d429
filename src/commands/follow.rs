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
    mut on: impl FnMut(Vec<Change>) -> Result<(), E>,
) -> Result<Ended, E> {
    let mut streams = Vec::new();
    for (i, list) in lists.iter().enumerate() {
        match cluster.follow(*list, &rvs[i]).await {
            Ok(s) => streams.push(s.map(move |item| (i, item)).boxed()),
            // Too old to resume from: not a failure, the reason to list again.
            Err(e) if e.api_error().and_then(|a| a.code()) == Some(410) => {
                return Ok(Ended::Relist);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut events = futures::stream::select_all(streams);
    while let Some(first) = events.next().await {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some((i, item)) = next {
            let (rv, change) = item?;
            if matches!(change, Change::Expired) {
                on(batch)?;
                return Ok(Ended::Relist);
            }
            if !rv.is_empty() {
                rvs[i] = rv;
            }
            batch.push(change);
            next = events.next().now_or_never().flatten();
        }
        on(batch)?;
        // The first stream to end ends the round: all are resumed together.
        if events.len() < lists.len() {
            break;
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
}
