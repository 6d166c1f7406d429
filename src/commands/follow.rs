//! A held copy of the cluster kept current by watch events: `serve` and `status --watch` list
//! once, then apply what the watches say, and list again only when a watch cannot resume (410
//! Gone). Events come in resourceVersion order per list, so the copy is always the state of each
//! list as of some resourceVersion, as an informer's is.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

use futures::{FutureExt, StreamExt};

use crate::cluster::{self, Change, Cluster, Inventory};
use crate::model::{ServiceIps, Snapshot};

/// The copy, kept as the `Snapshot` it is read as, so a reader borrows it in place: the exporter
/// renders 100,000 IPAddresses without copying them. IPAddresses and Services are found by key
/// through an index into their list (removal swaps the last one in); the few ranges stay in name
/// order, as the server lists them.
#[derive(Debug, Default)]
pub struct Held {
    snapshot: Snapshot,
    ip_at: HashMap<IpAddr, usize>,
    service_at: HashMap<(String, String), usize>,
}

fn service_key(s: &ServiceIps) -> (String, String) {
    (s.namespace.clone(), s.name.clone())
}

fn put<K: Hash + Eq, V>(items: &mut Vec<V>, at: &mut HashMap<K, usize>, key: K, value: V) {
    match at.get(&key) {
        Some(&i) => items[i] = value,
        None => {
            at.insert(key, items.len());
            items.push(value);
        }
    }
}

fn remove<K: Hash + Eq, V>(
    items: &mut Vec<V>,
    at: &mut HashMap<K, usize>,
    key: &K,
    key_of: impl Fn(&V) -> K,
) {
    if let Some(i) = at.remove(key) {
        items.swap_remove(i);
        if let Some(moved) = items.get(i) {
            at.insert(key_of(moved), i);
        }
    }
}

impl Held {
    pub fn new(mut snapshot: Snapshot) -> Held {
        snapshot.ranges.sort_by(|a, b| a.name.cmp(&b.name));
        let ip_at = snapshot
            .ips
            .iter()
            .enumerate()
            .map(|(i, a)| (a.ip, i))
            .collect();
        let service_at = (snapshot.services.iter().enumerate())
            .map(|(i, s)| (service_key(s), i))
            .collect();
        Held {
            snapshot,
            ip_at,
            service_at,
        }
    }

    pub fn apply(&mut self, change: Change) {
        let s = &mut self.snapshot;
        match change {
            Change::PutRange(r) => match s.ranges.binary_search_by(|x| x.name.cmp(&r.name)) {
                Ok(i) => s.ranges[i] = r,
                Err(i) => s.ranges.insert(i, r),
            },
            Change::DeleteRange(name) => {
                if let Ok(i) = s.ranges.binary_search_by(|x| x.name.cmp(&name)) {
                    s.ranges.remove(i);
                }
            }
            Change::PutIp(a) => put(&mut s.ips, &mut self.ip_at, a.ip, a),
            Change::DeleteIp(ip) => remove(&mut s.ips, &mut self.ip_at, &ip, |a| a.ip),
            Change::PutService(v) => put(&mut s.services, &mut self.service_at, service_key(&v), v),
            Change::DeleteService(ns, name) => remove(
                &mut s.services,
                &mut self.service_at,
                &(ns, name),
                service_key,
            ),
            Change::Progress | Change::Expired => {}
        }
    }

    /// The copy as lists would give it.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

/// The pace of a loop that lists and watches again after a failure (`serve`, `status --watch`):
/// jittered exponential waits, 1 s doubling to 30 s, that a successful list does not reset, only
/// watches that stayed up a minute. A user who may list but not watch, or a proxy that answers
/// every watch with 410, so costs a list every 30 s or so, not several a second.
#[derive(Debug)]
pub struct Pace {
    next: Duration,
    seed: u64,
}

impl Default for Pace {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1);
        Pace {
            next: FIRST_WAIT,
            seed,
        }
    }
}

const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// Watches that lasted this long were working: the next failure starts from the first wait.
pub const HEALTHY: Duration = Duration::from_secs(60);

impl Pace {
    /// The wait before the next try after a failure (between half and all of the current step),
    /// and a longer step for the one after.
    pub fn failed(&mut self) -> Duration {
        // xorshift: jitter only needs to keep many exporters from asking in step.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let wait = self.next.mul_f64(0.5 + (self.seed % 1000) as f64 / 2000.0);
        self.next = (self.next * 2).min(LONGEST_WAIT);
        wait
    }

    /// The watches ended after `lasted`: only a long run counts as health.
    pub fn watched(&mut self, lasted: Duration) {
        if lasted >= HEALTHY {
            self.next = FIRST_WAIT;
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
        match cluster.changes_since(*list, &rvs[streams.len()]).await {
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

    #[test]
    fn the_pace_grows_to_its_cap_and_only_long_watches_reset_it() {
        let mut pace = Pace::default();
        let waits: Vec<Duration> = (0..8).map(|_| pace.failed()).collect();
        for (i, w) in waits.iter().enumerate() {
            let step = (FIRST_WAIT * 2u32.pow(i as u32)).min(LONGEST_WAIT);
            assert!(*w >= step / 2 && *w <= step, "{i}: {w:?} for {step:?}");
        }
        pace.watched(HEALTHY / 2);
        assert!(
            pace.failed() >= LONGEST_WAIT / 2,
            "a short watch is no reset"
        );
        pace.watched(HEALTHY);
        assert!(pace.failed() <= FIRST_WAIT);
    }
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

    proptest::proptest! {
        // Any sequence of events leaves the copy holding exactly what a map by key holds (the
        // oracle), its index pointing at the right places, and the ranges in name order.
        #[test]
        fn the_indexed_copy_equals_a_map_by_key(
            ops in proptest::collection::vec((0u8..6, 0u8..8, 0u8..3), 0..80),
        ) {
            use std::collections::BTreeMap;
            let svc = |n: u8, ip: u8| ServiceIps {
                namespace: "ns".into(),
                name: format!("s{n}"),
                cluster_ips: vec![format!("10.0.0.{ip}").parse().unwrap()],
                created: None,
            };
            let mut held = Held::new(Snapshot::default());
            let (mut ips, mut services, mut ranges) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
            for (op, key, variant) in ops {
                let ip: IpAddr = format!("10.0.0.{key}").parse().unwrap();
                let change = match op {
                    0 => { let mut a = alloc(&ip.to_string()); a.managed = variant == 0; ips.insert(ip, a.clone()); Change::PutIp(a) }
                    1 => { ips.remove(&ip); Change::DeleteIp(ip) }
                    2 => { services.insert(key, svc(key, variant)); Change::PutService(svc(key, variant)) }
                    3 => { services.remove(&key); Change::DeleteService("ns".into(), format!("s{key}")) }
                    4 => { let r = range(&format!("r{key}"), &[["10.0.0.0/24", "10.1.0.0/24", "10.2.0.0/24"][variant as usize]]); ranges.insert(r.name.clone(), r.clone()); Change::PutRange(r) }
                    _ => { ranges.remove(&format!("r{key}")); Change::DeleteRange(format!("r{key}")) }
                };
                held.apply(change);
            }
            let s = held.snapshot();
            let mut got_ips = s.ips.clone();
            got_ips.sort_by_key(|a| a.ip);
            proptest::prop_assert_eq!(got_ips, ips.into_values().collect::<Vec<_>>());
            let mut got_services: Vec<String> = s.services.iter().map(|v| format!("{v:?}")).collect();
            got_services.sort();
            let mut want_services: Vec<String> = services.values().map(|v| format!("{v:?}")).collect();
            want_services.sort();
            proptest::prop_assert_eq!(got_services, want_services);
            proptest::prop_assert_eq!(s.ranges.clone(), ranges.into_values().collect::<Vec<_>>());
            for (ip, &i) in &held.ip_at {
                proptest::prop_assert_eq!(s.ips[i].ip, *ip);
            }
            for (key, &i) in &held.service_at {
                proptest::prop_assert_eq!(&service_key(&s.services[i]), key);
            }
        }
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
