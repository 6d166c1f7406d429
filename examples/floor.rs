//! The floor that `scripts/bench.sh` holds `status` against: the same list pages, fetched by a
//! keep-alive client on the plugin's own HTTP stack (kubeconfig credentials, rustls,
//! TCP_NODELAY), each body read to its end and never parsed (the continue token is cut out of the
//! first bytes). The lists run side by side, as the plugin's do. No process start-up is counted.
//!
//!   cargo run --release --example floor -- [--lists] KUBECONFIG LIMIT RUNS PATH...
//!
//! e.g. `floor kubeconfig 500 10 /apis/networking.k8s.io/v1/servicecidrs
//! /apis/networking.k8s.io/v1/ipaddresses`. Prints one line per run: wall time in ms, pages and
//! bytes; the first run (which connects) is a warm-up and not printed. `--lists` adds, after each
//! run, a line per list: `list`, its path, pages, bytes, and the sums of time to the first byte
//! and from there to the last, in ms. With RUNS 0 it makes only that first run: timed from outside, one process per run,
//! it is the floor a command pays (process start, kubeconfig, connections, TLS handshakes), and
//! `scripts/bench.sh` times it so.
//!
//! LIMIT `watch` or `watch-protobuf` reads each list as one streaming list instead (a watch with
//! `sendInitialEvents=true`, served from the watch cache, Kubernetes 1.32+), up to the bookmark
//! that ends the initial events: the lever the plugin did not take, measured beside the pages.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use kubectl_servicecidr::cluster::Connection;

/// How a list is read.
#[derive(Clone, Copy)]
enum Read {
    Pages(u32),
    Stream { protobuf: bool },
}

/// What one list took.
#[derive(Default)]
struct Fetched {
    pages: usize,
    bytes: usize,
    to_first_byte: Duration,
    rest: Duration,
}

impl Fetched {
    /// Sends `uri` and reads the answer to its end, or until `done` says so of what came.
    async fn page(
        &mut self,
        client: &kube::Client,
        uri: String,
        accept: &str,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> Result<()> {
        let sent = Instant::now();
        let req = http::Request::get(uri)
            .header(http::header::ACCEPT, accept)
            .body(kube::client::Body::empty())?;
        let res = client.send(req).await?;
        if !res.status().is_success() {
            bail!("{}", res.status());
        }
        let mut body = res.into_body();
        let mut first = None;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            first.get_or_insert_with(Instant::now);
            self.bytes += data.len();
            if done(&data) {
                break;
            }
        }
        let first = first.unwrap_or_else(Instant::now);
        self.pages += 1;
        self.to_first_byte += first - sent;
        self.rest += first.elapsed();
        Ok(())
    }
}

async fn fetch(client: &kube::Client, path: &str, read: Read) -> Result<Fetched> {
    let mut f = Fetched::default();
    let fetched = match read {
        Read::Pages(limit) => pages(client, path, limit, &mut f).await,
        Read::Stream { protobuf } => stream(client, path, protobuf, &mut f).await,
    };
    fetched.with_context(|| path.to_owned())?;
    Ok(f)
}

/// One list as a streaming list, read up to the bookmark that ends the initial events (its
/// annotation, found in the bytes: enough for a floor).
async fn stream(client: &kube::Client, path: &str, protobuf: bool, f: &mut Fetched) -> Result<()> {
    const END: &[u8] = b"k8s.io/initial-events-end";
    let uri = format!(
        "{path}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=60"
    );
    let accept = if protobuf {
        "application/vnd.kubernetes.protobuf;stream=watch"
    } else {
        "application/json"
    };
    let mut tail = Vec::new();
    let mut ended = false;
    f.page(client, uri, accept, |data| {
        // The annotation may straddle two frames: keep the end of the last one.
        tail.extend_from_slice(data);
        ended = tail.windows(END.len()).any(|w| w == END);
        tail.drain(..tail.len().saturating_sub(END.len()));
        ended
    })
    .await?;
    if !ended {
        bail!("the stream ended before the initial events did");
    }
    Ok(())
}

/// One list, page after page.
async fn pages(client: &kube::Client, path: &str, limit: u32, f: &mut Fetched) -> Result<()> {
    let mut token: Option<String> = None;
    loop {
        let mut uri = format!("{path}?limit={limit}");
        if let Some(t) = &token {
            uri.push_str("&continue=");
            uri.push_str(t);
        }
        let mut head = Vec::new();
        f.page(client, uri, "application/json", |data| {
            if head.len() < 4096 {
                head.extend_from_slice(&data[..data.len().min(4096 - head.len())]);
            }
            false
        })
        .await?;
        token = continue_token(&head);
        if token.is_none() {
            return Ok(());
        }
    }
}

/// The continue token of a page, from its first bytes (the server writes metadata first). Tokens
/// are base64url, so they need no unescaping, and go into a query as they are.
fn continue_token(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    let start = text.find(r#""continue":""#)? + r#""continue":""#.len();
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned()).filter(|t| !t.is_empty())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let lists = args.first().is_some_and(|a| a == "--lists");
    if lists {
        args.remove(0);
    }
    let [kubeconfig, limit, runs, paths @ ..] = args.as_slice() else {
        bail!("usage: floor [--lists] KUBECONFIG LIMIT RUNS PATH...");
    };
    let read = match limit.as_str() {
        "watch" => Read::Stream { protobuf: false },
        "watch-protobuf" => Read::Stream { protobuf: true },
        n => Read::Pages(
            n.parse()
                .context("LIMIT: a number, watch or watch-protobuf")?,
        ),
    };
    let runs: usize = runs.parse().context("RUNS")?;
    let conn = Connection {
        kubeconfig: Some(PathBuf::from(kubeconfig)),
        ..Connection::default()
    };
    let (client, _) = conn.client().await?;
    for run in 0..=runs {
        let started = Instant::now();
        let all = futures::future::try_join_all(paths.iter().map(|p| fetch(&client, p, read)));
        let fetched = all.await?;
        let wall = ms(started.elapsed());
        if run == 0 {
            continue;
        }
        let pages: usize = fetched.iter().map(|f| f.pages).sum();
        let bytes: usize = fetched.iter().map(|f| f.bytes).sum();
        println!("{wall:.1}\t{pages}\t{bytes}");
        if lists {
            for (path, f) in paths.iter().zip(&fetched) {
                let (first, rest) = (ms(f.to_first_byte), ms(f.rest));
                println!(
                    "list\t{path}\t{}\t{}\t{first:.1}\t{rest:.1}",
                    f.pages, f.bytes
                );
            }
        }
    }
    Ok(())
}
