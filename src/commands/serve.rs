//! `serve`: a long-running Prometheus exporter. It lists once, then follows watches and keeps the
//! picture current; a scrape renders that picture, it never lists. A watch that cannot resume
//! (410 Gone) or fails is followed by a fresh list, counted. SIGTERM or Ctrl-C end it cleanly.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::audit::findings::{AuditOptions, audit, counts};
use crate::audit::usage::status_report;
use crate::cluster::{Cluster, Inventory};
use crate::commands::follow::{Ended, Held, Pace, follow};
use crate::exit::Exit;
use crate::model::Snapshot;
use crate::render::prometheus::{self, ExporterStats};
use crate::render::to_stderr;
use crate::settings::ServeTask;

/// What the exporter knows: the cluster as last seen, and its own counters.
#[derive(Debug, Default)]
pub struct Picture {
    held: Held,
    /// A first list has completed.
    pub synced: bool,
    pub stats: ExporterStats,
}

impl Picture {
    /// Replaces everything with a fresh list.
    pub fn load(&mut self, snapshot: Snapshot) {
        self.held = Held::new(snapshot);
        self.synced = true;
        self.stats.last_sync = Some(SystemTime::now());
    }

    /// The exposition of this picture.
    pub fn metrics(&self, now: SystemTime) -> Vec<u8> {
        let snapshot = self.held.snapshot();
        let report = status_report(&snapshot.ranges, &snapshot.ips, now, false);
        let opts = AuditOptions {
            now,
            include_recent: false,
        };
        let found = counts(&audit(&snapshot, &opts));
        let mut out = Vec::new();
        // Writing into memory cannot fail.
        let _ = prometheus::write(&mut out, &report, &found, Some(&self.stats));
        out
    }

    fn count_error(&mut self, operation: &'static str) {
        *self.stats.errors.entry(operation).or_default() += 1;
    }
}

type Shared = Arc<Mutex<Picture>>;

fn lock(picture: &Shared) -> std::sync::MutexGuard<'_, Picture> {
    // A panic elsewhere while holding it leaves a picture that is still the best we have.
    picture.lock().unwrap_or_else(|e| e.into_inner())
}

pub async fn run(cluster: &Cluster, args: ServeTask) -> Result<Exit> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    to_stderr(&format!(
        "serving metrics on http://{addr}/metrics (health: /healthz, /readyz)\n"
    ));
    let picture: Shared = Arc::default();
    tokio::select! {
        () = keep_current(cluster, &picture) => unreachable!("follows until stopped"),
        r = serve_http(listener, &picture) => r?,
        () = stopped() => {}
    }
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
async fn keep_current(cluster: &Cluster, picture: &Shared) {
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
                lock(picture).count_error("list");
                tokio::time::sleep(pace.failed()).await;
                continue;
            }
        };
        let mut rvs = [
            ranges.resource_version,
            ips.resource_version,
            services.resource_version,
        ];
        {
            let mut p = lock(picture);
            if p.synced {
                p.stats.relists += 1;
            }
            p.load(Snapshot {
                ranges: ranges.items,
                ips: ips.items,
                services: services.items,
            });
        }
        let watching = tokio::time::Instant::now();
        while follow_once(cluster, picture, &mut rvs).await {}
        pace.watched(watching.elapsed());
        tokio::time::sleep(pace.failed()).await;
    }
}

/// One round of the three watches. True when they ended as watches do (resume from `rvs`),
/// false when a list is needed.
async fn follow_once(cluster: &Cluster, picture: &Shared, rvs: &mut [String; 3]) -> bool {
    let lists = [Inventory::Ranges, Inventory::Ips, Inventory::Services];
    let ended = follow(cluster, &lists, rvs, |changes| {
        let mut p = lock(picture);
        changes.into_iter().for_each(|c| p.held.apply(c));
        p.stats.last_sync = Some(SystemTime::now());
        Ok::<_, crate::cluster::Error>(())
    })
    .await;
    match ended {
        // Too old to resume (410 Gone) is no error: the relist it makes is counted in
        // servicecidr_exporter_relists_total, where a storm of them shows.
        Ok(ended) => ended == Ended::Resume,
        Err(e) => {
            tracing::warn!("watch failed: {e}");
            lock(picture).count_error("watch");
            false
        }
    }
}

/// Scrapes, at most `MAX_CONNECTIONS` at a time, each connection bounded: its headers within
/// `HEADER_TIMEOUT`, its whole life within `CONNECTION_LIFETIME` (a scraper reconnects). An
/// accept that fails (EMFILE when descriptors run out) is logged, counted and waited out.
async fn serve_http(listener: TcpListener, picture: &Shared) -> Result<()> {
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
                lock(picture).count_error("accept");
                tokio::time::sleep(pace.failed().min(ACCEPT_WAIT)).await;
                continue;
            }
        };
        let picture = Arc::clone(picture);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = answer(&req, &lock(&picture));
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

fn answer<B>(req: &Request<B>, picture: &Picture) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        // Before the first complete list there is nothing to tell: an answer of zeros would read
        // as an all-clear for a cluster never read.
        "/metrics" if picture.synced => (
            StatusCode::OK,
            prometheus::CONTENT_TYPE,
            picture.metrics(SystemTime::now()),
        ),
        "/metrics" | "/readyz" if !picture.synced => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            b"not synced yet\n".to_vec(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        "/readyz" => (StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            b"not found: /metrics, /healthz, /readyz\n".to_vec(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
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
    use crate::cluster::Change;

    /// The exposition speaks of the picture as changed by events.
    #[test]
    fn metrics_follow_the_changes() {
        let mut p = Picture::default();
        p.load(Snapshot {
            ranges: vec![range("a", &["10.0.0.0/24"])],
            ips: vec![alloc("10.0.0.5")],
            services: vec![],
        });
        p.held.apply(Change::PutRange(range("b", &["10.1.0.0/24"])));
        p.held.apply(Change::PutIp(alloc("10.1.0.7")));
        p.held.apply(Change::DeleteRange("a".into()));
        let text = String::from_utf8(p.metrics(SystemTime::UNIX_EPOCH)).unwrap();
        assert!(
            text.contains(r#"servicecidr_range_allocated_addresses{servicecidr="b",cidr="10.1.0.0/24",family="IPv4"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"servicecidr="a""#), "{text}");
        assert!(
            text.contains(r#"servicecidr_exporter_errors_total{operation="watch"} 0"#),
            "errors start at 0: {text}"
        );
    }

    #[test]
    fn ready_and_metrics_only_after_the_first_list() {
        let mut p = Picture::default();
        for path in ["/readyz", "/metrics"] {
            let req = Request::get(path).body(()).unwrap();
            assert_eq!(
                answer(&req, &p).status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{path}"
            );
        }
        p.load(Snapshot::default());
        for path in ["/readyz", "/metrics"] {
            let req = Request::get(path).body(()).unwrap();
            assert_eq!(answer(&req, &p).status(), StatusCode::OK, "{path}");
        }
        let health = Request::get("/healthz").body(()).unwrap();
        assert_eq!(
            answer(&health, &Picture::default()).status(),
            StatusCode::OK
        );
        let other = Request::get("/").body(()).unwrap();
        assert_eq!(answer(&other, &p).status(), StatusCode::NOT_FOUND);
    }
}
