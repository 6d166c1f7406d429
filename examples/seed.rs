//! Fills a (throwaway) cluster with ServiceCIDRs and IPAddresses for benchmarks.
//!
//!   cargo run --release --example seed -- [N] [--mode services|ipaddresses] [--concurrency 64]
//!
//! Uses KUBECONFIG (`kube::Client::try_default()`). Creates, reproducibly (fixed names and IPs, so a
//! second run finds everything in place and creates nothing):
//!
//! - namespaces `seed-0` .. `seed-9`;
//! - 20 ServiceCIDRs `seed-00` .. `seed-19` (the even ones dual-stack), IPv4 `10.(100+i).0.0/L` and
//!   IPv6 `fd00:5eed:0:i::/L6`, each sized for its share of N with ~25% headroom;
//! - N IPAddresses: 99% spread over those ranges, 1% orphaned (see below).
//!
//! `--mode services` (default): every IPAddress is backed by a real Service created with an explicit
//! clusterIP (one in three Services in a dual-stack range is dual-stack and holds two IPs); the
//! apiserver's allocator creates the IPAddress objects. Each allocation costs the apiserver a scan of
//! every IPAddress (kube-apiserver 1.37 recomputes its allocator metrics by listing them all), so
//! this mode slows down as N grows: ~650/s at first, ~50/s past 25,000 on 2 cores.
//!
//! `--mode ipaddresses` creates the IPAddress objects directly (allocator labels, parentRef to a
//! Service that is never created): ~5x faster, but not a consistent cluster: the apiserver's repair
//! loop deletes such IPAddresses 60 s after their creation (their Service does not exist), so use it
//! only to compare creation rates. `--mode unmanaged-ipaddresses` leaves out the allocator's
//! `managed-by` label, so the repair loop leaves them alone: a stable data set at any N for
//! `status` (which reads only ServiceCIDRs and IPAddresses), but every IP is an Unmanaged and a
//! DanglingParent finding for `orphans`.
//!
//! Orphans: their IPs are allocated from an extra ServiceCIDR `seed-orphans` (10.99.0.0/L), which
//! is then deleted and its finalizer stripped, so the IPAddresses (and their Services) outlive the
//! range: exactly what `kubectl servicecidr orphans` reports as Orphaned. (The API does accept an
//! IPAddress outside every ServiceCIDR, but a Service with such a clusterIP is refused, so this is
//! the only way to get Service-backed orphans.)
//!
//! Prints progress and the creation rate (objects/s) to stderr, a one-line summary to stdout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::{IPAddress, ServiceCIDR};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const RANGES: usize = 20;
const NAMESPACES: usize = 10;
const ORPHAN_RANGE: &str = "seed-orphans";
const MANAGED_BY: &str = "ipaddress.kubernetes.io/managed-by";
const IP_FAMILY: &str = "ipaddress.kubernetes.io/ip-family";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Services with explicit clusterIPs; the apiserver creates the IPAddresses
    Services,
    /// IPAddress objects directly (rate comparison only: the repair loop removes them after 60 s)
    Ipaddresses,
    /// IPAddress objects without the allocator's label (stable; for `status` at large N)
    UnmanagedIpaddresses,
}

#[derive(Debug, Parser)]
#[command(about = "Seed a cluster with ServiceCIDRs and IPAddresses for benchmarks")]
struct Args {
    /// How many IPAddresses to create in all (1% of them orphaned)
    #[arg(default_value_t = 10_000)]
    n: usize,
    #[arg(long, value_enum, default_value_t = Mode::Services)]
    mode: Mode,
    /// Requests in flight at once
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// One object to create: a Service holding `ips`, or (ipaddresses mode) one IPAddress per IP.
#[derive(Debug, Clone)]
struct Item {
    namespace: String,
    name: String,
    ips: Vec<IpAddr>,
}

#[derive(Debug)]
struct Range {
    name: String,
    v4: (Ipv4Addr, u8),
    v6: Option<(Ipv6Addr, u8)>,
}

impl Range {
    fn cidrs(&self) -> Vec<String> {
        let mut out = vec![format!("{}/{}", self.v4.0, self.v4.1)];
        if let Some((a, l)) = self.v6 {
            out.push(format!("{a}/{l}"));
        }
        out
    }
}

/// Host bits so that `count` IPs use at most ~80% of the range (and at least a /28).
fn host_bits(count: usize) -> u8 {
    let want = (count as u64 * 5 / 4 + 2).max(14);
    (64 - (want - 1).leading_zeros()) as u8
}

fn v4_nth(base: Ipv4Addr, n: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(base) + n as u32))
}

fn v6_nth(base: Ipv6Addr, n: u64) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(u128::from(base) + u128::from(n)))
}

/// The whole data set, a pure function of N.
struct Plan {
    ranges: Vec<Range>,
    orphan_range: Range,
    /// Services (or parents) in the ranges that stay.
    items: Vec<Item>,
    /// Services whose IPs end up orphaned.
    orphan_items: Vec<Item>,
}

fn plan(n: usize) -> Result<Plan> {
    let orphans = n / 100;
    let inside = n - orphans;
    let mut ranges = Vec::new();
    let mut items = Vec::new();
    for i in 0..RANGES {
        let quota = inside / RANGES + usize::from(i < inside % RANGES);
        let h = host_bits(quota);
        if h > 16 {
            bail!("N={n} needs ranges wider than /16; at most about 1,000,000 are supported");
        }
        let dual = i.is_multiple_of(2);
        let range = Range {
            name: format!("seed-{i:02}"),
            v4: (Ipv4Addr::new(10, 100 + i as u8, 0, 0), 32 - h),
            v6: dual.then(|| {
                let base = (0xfd00_5eedu128 << 96) | ((i as u128) << 64);
                (Ipv6Addr::from(base), 128 - h)
            }),
        };
        // Host numbers start at 1: never the network address (nor, with the headroom, the
        // IPv4 broadcast address).
        let (mut next4, mut next6, mut ips, mut k) = (1u64, 1u64, 0usize, 0usize);
        while ips < quota {
            let svc_ips = match (range.v6, k % 3) {
                (Some((b6, _)), 1) => {
                    next6 += 1;
                    vec![v6_nth(b6, next6 - 1)]
                }
                (Some((b6, _)), 2) if quota - ips >= 2 => {
                    next4 += 1;
                    next6 += 1;
                    vec![v4_nth(range.v4.0, next4 - 1), v6_nth(b6, next6 - 1)]
                }
                _ => {
                    next4 += 1;
                    vec![v4_nth(range.v4.0, next4 - 1)]
                }
            };
            ips += svc_ips.len();
            items.push(Item {
                namespace: format!("seed-{}", k % NAMESPACES),
                name: format!("r{i:02}-{k:06}"),
                ips: svc_ips,
            });
            k += 1;
        }
        ranges.push(range);
    }
    let orphan_range = Range {
        name: ORPHAN_RANGE.into(),
        v4: (Ipv4Addr::new(10, 99, 0, 0), 32 - host_bits(orphans.max(1))),
        v6: None,
    };
    let orphan_items = (0..orphans)
        .map(|k| Item {
            namespace: format!("seed-{}", k % NAMESPACES),
            name: format!("orphan-{k:06}"),
            ips: vec![v4_nth(orphan_range.v4.0, 1 + k as u64)],
        })
        .collect();
    Ok(Plan {
        ranges,
        orphan_range,
        items,
        orphan_items,
    })
}

fn from_json<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("the manifests here match the API types")
}

fn service(item: &Item) -> Service {
    let ips: Vec<String> = item.ips.iter().map(IpAddr::to_string).collect();
    let families: Vec<&str> = item
        .ips
        .iter()
        .map(|ip| if ip.is_ipv4() { "IPv4" } else { "IPv6" })
        .collect();
    let policy = if ips.len() > 1 {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    from_json(json!({
        "metadata": {"name": item.name, "namespace": item.namespace, "labels": {"app.kubernetes.io/part-of": "seed"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ips[0],
            "clusterIPs": ips,
            "ipFamilies": families,
            "ipFamilyPolicy": policy,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        }
    }))
}

fn ip_address(item: &Item, ip: IpAddr, managed: bool) -> IPAddress {
    let mut labels = json!({IP_FAMILY: if ip.is_ipv4() { "IPv4" } else { "IPv6" }});
    if managed {
        labels[MANAGED_BY] = json!("ipallocator.k8s.io");
    } else {
        labels["app.kubernetes.io/part-of"] = json!("seed");
    }
    from_json(json!({
        "metadata": {"name": ip.to_string(), "labels": labels},
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": item.namespace, "name": item.name}},
    }))
}

fn status_of(e: &kube::Error) -> Option<(u16, &str)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.message.as_str())),
        _ => None,
    }
}

/// Worth retrying: throttling, server trouble, and the allocator not knowing a new range yet.
fn transient(e: &kube::Error) -> bool {
    match status_of(e) {
        Some((429 | 500..=599, _)) => true,
        Some((422, msg)) => msg.contains("range") || msg.contains("ServiceCIDR"),
        Some(_) => false,
        None => true,
    }
}

/// Creates `obj`; Ok(false) when it already existed.
async fn create<K>(api: &Api<K>, obj: &K) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let mut delay = Duration::from_millis(100);
    for attempt in 1.. {
        match api.create(&PostParams::default(), obj).await {
            Ok(_) => return Ok(true),
            Err(e) if status_of(&e).is_some_and(|(c, _)| c == 409) => return Ok(false),
            Err(e) if attempt < 20 && transient(&e) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "create {} {:?}",
                        K::kind(&Default::default()),
                        obj.meta().name.as_deref().unwrap_or("")
                    )
                });
            }
        }
    }
    unreachable!("the loop returns")
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    created_ips: AtomicU64,
    existing_ips: AtomicU64,
}

/// Creates the items with bounded concurrency, reporting progress; returns IPAddresses/s.
async fn create_items(
    client: &Client,
    mode: Mode,
    items: &[Item],
    concurrency: usize,
    what: &str,
) -> Result<f64> {
    let counts = Arc::new(Counts::default());
    let total_ips: usize = items.iter().map(|i| i.ips.len()).sum();
    let started = Instant::now();
    let reporter = {
        let counts = counts.clone();
        let what = what.to_owned();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = counts.created_ips.load(Ordering::Relaxed)
                    + counts.existing_ips.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "seed: {what}: {done}/{total_ips} IPAddresses after {secs:.0} s ({:.0}/s)",
                    done as f64 / secs
                );
            }
        })
    };
    let jobs = items.iter().flat_map(|item| match mode {
        Mode::Services => vec![(item, None)],
        Mode::Ipaddresses | Mode::UnmanagedIpaddresses => {
            item.ips.iter().map(|ip| (item, Some(*ip))).collect()
        }
    });
    let results: Vec<Result<()>> = stream::iter(jobs)
        .map(|(item, ip)| {
            let client = client.clone();
            let counts = counts.clone();
            async move {
                let (fresh, ips) = match ip {
                    None => {
                        let api: Api<Service> = Api::namespaced(client, &item.namespace);
                        (create(&api, &service(item)).await?, item.ips.len())
                    }
                    Some(ip) => {
                        let api: Api<IPAddress> = Api::all(client);
                        let managed = mode == Mode::Ipaddresses;
                        (create(&api, &ip_address(item, ip, managed)).await?, 1)
                    }
                };
                counts.requests.fetch_add(1, Ordering::Relaxed);
                let c = if fresh {
                    &counts.created_ips
                } else {
                    &counts.existing_ips
                };
                c.fetch_add(ips as u64, Ordering::Relaxed);
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    reporter.abort();
    let errors: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    if let Some(first) = errors.first() {
        bail!(
            "{} of {} creates failed; first: {first:#}",
            errors.len(),
            items.len()
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let created = counts.created_ips.load(Ordering::Relaxed);
    let existing = counts.existing_ips.load(Ordering::Relaxed);
    let requests = counts.requests.load(Ordering::Relaxed);
    let rate = (created + existing) as f64 / secs;
    eprintln!(
        "seed: {what}: {created} IPAddresses created, {existing} already there, {requests} requests in {secs:.1} s: {rate:.0} IPAddresses/s, {:.0} requests/s (concurrency {concurrency})",
        requests as f64 / secs
    );
    Ok(rate)
}

async fn ensure_range(api: &Api<ServiceCIDR>, range: &Range) -> Result<()> {
    let obj: ServiceCIDR = from_json(json!({
        "metadata": {"name": range.name, "labels": {"app.kubernetes.io/part-of": "seed"}},
        "spec": {"cidrs": range.cidrs()},
    }));
    create(api, &obj).await.map(|_| ())
}

/// Waits until the service-cidr controller marked the ranges Ready (it also sets the finalizer).
/// Without a controller, goes on after the timeout: the allocator accepts ranges without status.
async fn wait_ready(api: &Api<ServiceCIDR>, names: &[&str]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut pending = 0;
        for name in names {
            let r = api.get(name).await?;
            let ready = r
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            pending += usize::from(!ready);
        }
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            eprintln!("seed: {pending} range(s) not Ready after 30 s (no controller?); going on");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes the orphan source range and strips its finalizer, so its IPAddresses outlive it.
async fn orphan_out(api: &Api<ServiceCIDR>) -> Result<()> {
    match api.delete(ORPHAN_RANGE, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if status_of(&e).is_some_and(|(c, _)| c == 404) => return Ok(()),
        Err(e) => return Err(e).context("delete the orphan source range"),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let patch = json!({"metadata": {"finalizers": null}});
        match api
            .patch(ORPHAN_RANGE, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if status_of(&e).is_some_and(|(c, _)| c == 404) => return Ok(()),
            Err(e) if status_of(&e).is_some_and(|(c, _)| c == 409) => {}
            Err(e) => return Err(e).context("strip the orphan source range's finalizer"),
        }
        match api.get_opt(ORPHAN_RANGE).await? {
            None => return Ok(()),
            Some(_) if Instant::now() >= deadline => {
                bail!("{ORPHAN_RANGE} is still there after 30 s")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// How many IPAddresses the cluster holds now (paged like kubectl).
async fn count_ip_addresses(client: &Client) -> Result<usize> {
    let api: Api<IPAddress> = Api::all(client.clone());
    let mut lp = ListParams::default().limit(500);
    let mut n = 0;
    loop {
        let page = api.list_metadata(&lp).await?;
        n += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(n),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.n == 0 || args.concurrency == 0 {
        bail!("N and --concurrency must be positive");
    }
    let Plan {
        ranges,
        orphan_range,
        items,
        orphan_items,
    } = plan(args.n)?;
    let client = Client::try_default()
        .await
        .context("build a client from KUBECONFIG")?;
    let started = Instant::now();

    let ns_api: Api<Namespace> = Api::all(client.clone());
    for i in 0..NAMESPACES {
        create(
            &ns_api,
            &from_json(json!({"metadata": {"name": format!("seed-{i}")}})),
        )
        .await?;
    }
    let cidr_api: Api<ServiceCIDR> = Api::all(client.clone());
    for r in ranges.iter().chain([&orphan_range]) {
        ensure_range(&cidr_api, r).await?;
    }
    let names: Vec<&str> = ranges
        .iter()
        .chain([&orphan_range])
        .map(|r| r.name.as_str())
        .collect();
    // A rerun after the orphaning step finds the orphan range gone: do not wait for it.
    let present: Vec<&str> = {
        let mut v = Vec::new();
        for n in names {
            if cidr_api.get_opt(n).await?.is_some() {
                v.push(n);
            }
        }
        v
    };
    wait_ready(&cidr_api, &present).await?;
    let setup = started.elapsed().as_secs_f64();

    let mut rate = 0.0;
    if present.contains(&ORPHAN_RANGE) {
        create_items(
            &client,
            args.mode,
            &orphan_items,
            args.concurrency,
            "orphans",
        )
        .await?;
        orphan_out(&cidr_api).await?;
    }
    if !items.is_empty() {
        rate = create_items(&client, args.mode, &items, args.concurrency, "in ranges").await?;
    }
    let total = started.elapsed().as_secs_f64();
    let in_cluster = count_ip_addresses(&client).await?;
    let seeded: usize = items.iter().chain(&orphan_items).map(|i| i.ips.len()).sum();
    let services = items.len() + orphan_items.len();
    println!(
        "seeded N={} mode={:?}: {} ServiceCIDRs, {} {}, {} IPAddresses ({} orphaned) in {:.1} s (setup {:.1} s); bulk rate {:.0} IPAddresses/s; cluster holds {} IPAddresses",
        args.n,
        args.mode,
        ranges.len(),
        services,
        if args.mode == Mode::Services {
            "Services"
        } else {
            "parent names (no Services)"
        },
        seeded,
        orphan_items.len(),
        total,
        setup,
        rate,
        in_cluster
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_n_ips_and_fits_its_ranges() {
        for n in [1, 99, 100, 10_000, 100_000] {
            let Plan {
                ranges,
                orphan_range,
                items,
                orphan_items: orphans,
            } = plan(n).unwrap();
            let count: usize = items.iter().chain(&orphans).map(|i| i.ips.len()).sum();
            assert_eq!(count, n);
            let mut seen = std::collections::HashSet::new();
            for item in items.iter().chain(&orphans) {
                for ip in &item.ips {
                    assert!(seen.insert(*ip), "{ip} twice");
                }
            }
            let nets: Vec<ipnet::IpNet> = ranges
                .iter()
                .chain([&orphan_range])
                .flat_map(|r| r.cidrs())
                .map(|c| c.parse().unwrap())
                .collect();
            for ip in &seen {
                let net = nets.iter().find(|n| n.contains(ip)).expect("in a range");
                assert!(*ip != net.network() && *ip != net.broadcast());
            }
        }
    }
}
