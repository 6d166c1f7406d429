//! `serve`: a long-running Prometheus exporter. It lists once, then follows watches and keeps the
//! picture current; a scrape renders that picture, it never lists. A watch that cannot resume
//! (410 Gone) or fails is followed by a fresh list, counted. SIGTERM or Ctrl-C end it cleanly.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::audit::findings::{AuditOptions, tally};
use crate::audit::usage::status_report;
use crate::cluster::{Change, Cluster, Inventory};
use crate::commands::follow::{Ended, Held, Pace, follow};
use crate::exit::Exit;
use crate::model::Snapshot;
use crate::render::prometheus::{self, ExporterStats};
use crate::render::to_stderr;
use crate::settings::ServeTask;

/// What the exporter knows: the cluster as last seen, and its own counters. Owned by the
/// renderer thread alone.
#[derive(Debug, Default)]
pub struct Picture {
    held: Held,
    /// A first list has completed.
    synced: bool,
    stats: ExporterStats,
}

/// What the watching and serving side tells the renderer.
#[derive(Debug)]
enum Update {
    /// A complete list: replaces everything.
    Load(Snapshot),
    Changes(Vec<Change>),
    /// A failed operation, counted.
    Failed(&'static str),
}

impl Picture {
    fn update(&mut self, update: Update, now: SystemTime) {
        match update {
            Update::Load(snapshot) => {
                if self.synced {
                    self.stats.relists += 1;
                }
                self.held = Held::new(snapshot);
                self.synced = true;
                self.stats.last_sync = Some(now);
            }
            Update::Changes(changes) => {
                changes.into_iter().for_each(|c| self.held.apply(c));
                self.stats.last_sync = Some(now);
            }
            Update::Failed(operation) => *self.stats.errors.entry(operation).or_default() += 1,
        }
    }

    /// The exposition of this picture, read in place: no copy of the objects, and findings
    /// counted rather than held.
    pub fn metrics(&self, now: SystemTime) -> Vec<u8> {
        let snapshot = self.held.snapshot();
        let report = status_report(&snapshot.ranges, &snapshot.ips, now, false);
        let opts = AuditOptions {
            now,
            include_recent: false,
        };
        let found = tally(snapshot, &opts);
        let mut out = Vec::new();
        // Writing into memory cannot fail.
        let _ = prometheus::write(&mut out, &report, &found, Some(&self.stats));
        out
    }
}

/// The latest exposition, None until the first list is rendered: what a scrape answers with.
type Exposition = Arc<Mutex<Option<Bytes>>>;

fn lock(exposition: &Exposition) -> std::sync::MutexGuard<'_, Option<Bytes>> {
    // A panic elsewhere while holding it leaves bytes that are still the best we have.
    exposition.lock().unwrap_or_else(|e| e.into_inner())
}

/// A burst of events is rendered once: after `QUIET` without another, or `SETTLE` after the
/// first, whichever comes first.
const QUIET: Duration = Duration::from_millis(20);
const SETTLE: Duration = Duration::from_millis(100);
/// Rendered again at least this often, for what moves with the clock alone (how long a range
/// has been terminating, findings passing the repair loop's grace).
const REFRESH: Duration = Duration::from_secs(10);

/// The renderer, on a thread of its own: it owns the picture, applies updates, and renders the
/// exposition when they settle. A scrape only copies the last rendering, so its cost does not
/// grow with the cluster, and neither the watches nor the scrapes wait for a rendering.
fn render(updates: &mpsc::Receiver<Update>, exposition: &Exposition) {
    let mut picture = Picture::default();
    loop {
        match updates.recv_timeout(REFRESH) {
            Ok(u) => picture.update(u, SystemTime::now()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let settling = std::time::Instant::now();
        while settling.elapsed() < SETTLE {
            match updates.recv_timeout(QUIET) {
                Ok(u) => picture.update(u, SystemTime::now()),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        if picture.synced {
            let started = std::time::Instant::now();
            let bytes = Bytes::from(picture.metrics(SystemTime::now()));
            tracing::debug!(took = ?started.elapsed(), bytes = bytes.len(), "rendered the metrics");
            *lock(exposition) = Some(bytes);
        }
    }
}

pub async fn run(cluster: &Cluster, args: ServeTask) -> Result<Exit> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    to_stderr(&format!(
        "serving metrics on http://{addr}/metrics (health: /healthz, /readyz)\n"
    ));
    let exposition = Exposition::default();
    let (updates, received) = mpsc::channel();
    let renderer = {
        let exposition = Arc::clone(&exposition);
        std::thread::Builder::new()
            .name("render".into())
            .spawn(move || render(&received, &exposition))?
    };
    tokio::select! {
        () = keep_current(cluster, &updates) => unreachable!("follows until stopped"),
        r = serve_http(listener, &exposition, &updates) => r?,
        () = stopped() => {}
    }
    // The renderer ends with its last sender; a rendering in flight is not waited for.
    drop(updates);
    drop(renderer);
    Ok(Exit::Success)
}

/// SIGTERM (a pod being stopped) or Ctrl-C.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Lists, then follows the three watches from the list's resourceVersions; a watch that ends is
/// resumed from the last resourceVersion seen, one that cannot resume or fails means a new list,
/// after a wait that only watches which stayed up reset (`Pace`).
async fn keep_current(cluster: &Cluster, updates: &mpsc::Sender<Update>) {
    let mut pace = Pace::default();
    loop {
        let listed = tokio::try_join!(
            cluster.list_service_cidrs(),
            cluster.list_ip_addresses(),
            cluster.list_services(),
        );
        let (ranges, ips, services) = match listed {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("list failed: {e}");
                let _ = updates.send(Update::Failed("list"));
                tokio::time::sleep(pace.failed()).await;
                continue;
            }
        };
        let mut rvs = [
            ranges.resource_version,
            ips.resource_version,
            services.resource_version,
        ];
        let _ = updates.send(Update::Load(Snapshot {
            ranges: ranges.items,
            ips: ips.items,
            services: services.items,
        }));
        let watching = tokio::time::Instant::now();
        while follow_once(cluster, updates, &mut rvs).await {}
        pace.watched(watching.elapsed());
        tokio::time::sleep(pace.failed()).await;
    }
}

/// One round of the three watches. True when they ended as watches do (resume from `rvs`),
/// false when a list is needed.
async fn follow_once(
    cluster: &Cluster,
    updates: &mpsc::Sender<Update>,
    rvs: &mut [String; 3],
) -> bool {
    let lists = [Inventory::Ranges, Inventory::Ips, Inventory::Services];
    let ended = follow(cluster, &lists, rvs, |changes| {
        let _ = updates.send(Update::Changes(changes));
        Ok::<_, crate::cluster::Error>(())
    })
    .await;
    match ended {
        // Too old to resume (410 Gone) is no error: the relist it makes is counted in
        // servicecidr_exporter_relists_total, where a storm of them shows.
        Ok(ended) => ended == Ended::Resume,
        Err(e) => {
            tracing::warn!("watch failed: {e}");
            let _ = updates.send(Update::Failed("watch"));
            false
        }
    }
}

/// Scrapes, at most `MAX_CONNECTIONS` at a time, each connection bounded: its headers within
/// `HEADER_TIMEOUT`, its whole life within `CONNECTION_LIFETIME` (a scraper reconnects). An
/// accept that fails (EMFILE when descriptors run out) is logged, counted and waited out.
async fn serve_http(
    listener: TcpListener,
    exposition: &Exposition,
    updates: &mpsc::Sender<Update>,
) -> Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut pace = Pace::default();
    loop {
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("cannot accept a scrape: {e}");
                let _ = updates.send(Update::Failed("accept"));
                tokio::time::sleep(pace.failed().min(ACCEPT_WAIT)).await;
                continue;
            }
        };
        let exposition = Arc::clone(exposition);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let rendered = lock(&exposition).clone();
                let answer = answer(&req, rendered);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

/// Scrapes served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// The longest wait after a failed accept.
const ACCEPT_WAIT: Duration = Duration::from_secs(1);

/// The answer to a request, given the last rendering (None before the first list).
fn answer<B>(req: &Request<B>, rendered: Option<Bytes>) -> Response<Full<Bytes>> {
    let text = |s: &'static str| Bytes::from_static(s.as_bytes());
    let (status, content_type, body) = match (req.uri().path(), rendered) {
        ("/metrics", Some(bytes)) => (StatusCode::OK, prometheus::CONTENT_TYPE, bytes),
        // Before the first complete list there is nothing to tell: an answer of zeros would read
        // as an all-clear for a cluster never read.
        ("/metrics" | "/readyz", None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            text("not synced yet\n"),
        ),
        ("/healthz" | "/readyz", _) => (StatusCode::OK, "text/plain", text("ok\n")),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            text("not found: /metrics, /healthz, /readyz\n"),
        ),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, range};

    /// The exposition speaks of the picture as changed by events, and counts failures.
    #[test]
    fn metrics_follow_the_changes() {
        let mut p = Picture::default();
        let t = SystemTime::UNIX_EPOCH;
        p.update(
            Update::Load(Snapshot {
                ranges: vec![range("a", &["10.0.0.0/24"])],
                ips: vec![alloc("10.0.0.5")],
                services: vec![],
            }),
            t,
        );
        p.update(
            Update::Changes(vec![
                Change::PutRange(range("b", &["10.1.0.0/24"])),
                Change::PutIp(alloc("10.1.0.7")),
                Change::DeleteRange("a".into()),
            ]),
            t,
        );
        p.update(Update::Failed("list"), t);
        p.update(Update::Load(p.held.snapshot().clone()), t);
        let text = String::from_utf8(p.metrics(t)).unwrap();
        for line in [
            r#"servicecidr_range_allocated_addresses{servicecidr="b",cidr="10.1.0.0/24",family="IPv4"} 1"#,
            r#"servicecidr_exporter_errors_total{operation="list"} 1"#,
            r#"servicecidr_exporter_errors_total{operation="watch"} 0"#,
            "servicecidr_exporter_relists_total 1",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        assert!(!text.contains(r#"servicecidr="a""#), "{text}");
    }

    /// The renderer renders once a burst settles, and ends with its last sender.
    #[test]
    fn the_renderer_publishes_what_it_was_told_and_ends_with_its_senders() {
        let exposition = Exposition::default();
        let (updates, received) = mpsc::channel();
        let out = Arc::clone(&exposition);
        let renderer = std::thread::spawn(move || render(&received, &out));
        updates.send(Update::Failed("watch")).unwrap();
        updates
            .send(Update::Load(Snapshot {
                ranges: vec![range("a", &["10.0.0.0/24"])],
                ips: vec![alloc("10.0.0.5")],
                services: vec![],
            }))
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let text = loop {
            if let Some(b) = lock(&exposition).clone() {
                break String::from_utf8(b.to_vec()).unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "never rendered");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(text.contains(r#"servicecidr_range_allocated_addresses{servicecidr="a",cidr="10.0.0.0/24",family="IPv4"} 1"#), "{text}");
        assert!(
            text.contains(r#"servicecidr_exporter_errors_total{operation="watch"} 1"#),
            "{text}"
        );
        drop(updates);
        renderer.join().unwrap();
    }

    #[test]
    fn ready_and_metrics_only_after_the_first_list() {
        for path in ["/readyz", "/metrics"] {
            let req = Request::get(path).body(()).unwrap();
            assert_eq!(
                answer(&req, None).status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{path}"
            );
            let rendered = Some(Bytes::from_static(b"x 1\n"));
            assert_eq!(answer(&req, rendered).status(), StatusCode::OK, "{path}");
        }
        let health = Request::get("/healthz").body(()).unwrap();
        assert_eq!(answer(&health, None).status(), StatusCode::OK);
        let other = Request::get("/").body(()).unwrap();
        assert_eq!(answer(&other, None).status(), StatusCode::NOT_FOUND);
    }
}
