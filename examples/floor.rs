//! The floor that `scripts/bench.sh` holds `status` against: the same list pages, fetched by a
//! keep-alive client on the plugin's own HTTP stack (kubeconfig credentials, rustls,
//! TCP_NODELAY), each body read to its end and never parsed (the continue token is cut out of the
//! first bytes). The lists run side by side, as the plugin's do. No process start-up is counted.
//!
//!   cargo run --release --example floor -- KUBECONFIG LIMIT RUNS PATH...
//!
//! e.g. `floor kubeconfig 500 10 /apis/networking.k8s.io/v1/servicecidrs
//! /apis/networking.k8s.io/v1/ipaddresses`. Prints one line per run: wall time in ms, pages and
//! bytes; the first run (which connects) is a warm-up and not printed. With RUNS 0 it makes only
//! that first run: timed from outside, one process per run, it is the floor a command pays
//! (process start, kubeconfig, connections, TLS handshakes), and `scripts/bench.sh` times it so.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use kubectl_servicecidr::cluster::Connection;

/// One list, page after page: (pages, bytes).
async fn fetch(client: &kube::Client, path: &str, limit: u32) -> Result<(usize, usize)> {
    let (mut pages, mut bytes) = (0, 0);
    let mut token: Option<String> = None;
    loop {
        let mut uri = format!("{path}?limit={limit}");
        if let Some(t) = &token {
            uri.push_str("&continue=");
            uri.push_str(t);
        }
        let req = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(kube::client::Body::empty())?;
        let res = client.send(req).await?;
        if !res.status().is_success() {
            bail!("{path}: {}", res.status());
        }
        let mut body = res.into_body();
        let mut head = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                bytes += data.len();
                if head.len() < 4096 {
                    head.extend_from_slice(&data[..data.len().min(4096 - head.len())]);
                }
            }
        }
        pages += 1;
        token = continue_token(&head);
        if token.is_none() {
            return Ok((pages, bytes));
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kubeconfig, limit, runs, paths @ ..] = args.as_slice() else {
        bail!("usage: floor KUBECONFIG LIMIT RUNS PATH...");
    };
    let limit: u32 = limit.parse().context("LIMIT")?;
    let runs: usize = runs.parse().context("RUNS")?;
    let conn = Connection {
        kubeconfig: Some(PathBuf::from(kubeconfig)),
        ..Connection::default()
    };
    let (client, _) = conn.client().await?;
    for run in 0..=runs {
        let started = Instant::now();
        let lists = futures::future::try_join_all(paths.iter().map(|p| fetch(&client, p, limit)));
        let fetched = lists.await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if run > 0 {
            let pages: usize = fetched.iter().map(|f| f.0).sum();
            let bytes: usize = fetched.iter().map(|f| f.1).sum();
            println!("{ms:.1}\t{pages}\t{bytes}");
        }
    }
    Ok(())
}
