//! The only code that talks to Kubernetes: client, API discovery, paged lists, watches, and the
//! writes the plugin makes (its guard finalizer, delete with preconditions, finalizer removal).

mod access;
pub mod client;
mod discovery;
pub mod error;
pub mod exec_mark;
pub mod journal;
mod lists;
pub mod page;
pub mod proto;
mod resources;
pub mod retry;
pub mod rights;
pub mod surroundings;
mod transport;
mod watches;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use http::header::{ACCEPT, CONTENT_TYPE, DATE};
use http_body_util::BodyExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::core::Request;
use serde::de::DeserializeOwned;
use serde_json::json;

pub use client::Connection;
pub use error::ApiError;
use proto::FromProtobuf;

use crate::model::{
    GUARD_FINALIZER, IpAllocation, NodeNets, ServiceCidr, ServiceFacts, ServiceIps, Snapshot,
};
use rights::{Declared, Right};
use wire::{InvalidObject, WireIpAddress, WireNode, WireService, WireServiceCidr};

pub const GROUP: &str = "networking.k8s.io";
pub const FIELD_MANAGER: &str = "kubectl-servicecidr";
/// Served versions we understand, preferred first.
pub const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] client::ConfigError),
    #[error(
        "the server does not serve the ServiceCIDR API: it needs networking.k8s.io/v1 (Kubernetes 1.33+) or v1beta1 (1.31+ with MultiCIDRServiceAllocator) with servicecidrs and ipaddresses; found {found}"
    )]
    NotServed { found: String },
    #[error("servicecidr {0:?} not found")]
    NotFound(String),
    #[error(
        "internal error: {what} ({access}) is not among the requests this command declared and checked; not sent (a bug: please report it)"
    )]
    Undeclared { what: String, access: String },
    #[error("failed to {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: ApiError,
    },
}

impl Error {
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Error::Api { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Told after each page of a list: what is listed, and how many objects so far.
pub type OnPage = Arc<dyn Fn(&'static str, usize) + Send + Sync>;

/// A ServiceCIDR as an answer held it, with the server's clock (its Date) at that answer.
pub type RangeRead = (ServiceCidr, Option<SystemTime>);

/// A client that learns, with its first request, which ServiceCIDR API version the server serves.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    on_page: Option<OnPage>,
    url: String,
    /// Settled by discovery, once for every clone: a failure too, so that no caller asks again
    /// and the time spent stays within one request's bound.
    version: Arc<tokio::sync::OnceCell<Result<&'static str>>>,
    chunk_size: u32,
    /// Bounds the whole of each request, body included (--request-timeout).
    request_timeout: Option<Duration>,
    connect_timeout: Duration,
    /// The requests the running command declared; others are refused unsent.
    declared: Declared,
}

/// Objects per list page. kube-apiserver's cost per page grows with the objects still to come, so
/// few large pages beat kubectl's 500: at 100,000 IPAddresses, 1.5 s against 5.7 s (BENCHMARKS.md).
/// Pages are read as they arrive, so the plugin's memory does not grow with the page size.
pub const DEFAULT_CHUNK_SIZE: u32 = 5_000;
/// The largest answer read: a page of 5,000 IPAddresses is about 3.4 MB (Services about twice
/// that), so this leaves room for pages several times larger and refuses a server that never
/// stops.
pub const MAX_BODY: usize = 64 << 20;
/// The largest single watch event (one object).
pub const MAX_EVENT: usize = 4 << 20;
/// The most objects one list may bring; past it the server is not a real one.
pub const MAX_LIST_ITEMS: usize = 5_000_000;
/// How much of an error page that is not a Kubernetes Status goes into the message.
const MAX_ERROR_BODY: usize = 300;

/// A page request in flight; dropped, it is aborted, so a failed list leaves nothing running.
struct Pending {
    task: tokio::task::JoinHandle<kube::Result<http::Response<kube::client::Body>>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A list, with the resourceVersion to watch from.
pub struct Listed<T> {
    pub items: Vec<T>,
    pub resource_version: String,
}

impl Cluster {
    pub async fn connect(conn: &Connection, chunk_size: u32) -> Result<Cluster> {
        let (client, url) = conn.client().await?;
        Ok(Cluster {
            client,
            on_page: None,
            url,
            version: Arc::default(),
            chunk_size,
            declared: Declared::default(),
            request_timeout: conn.request_timeout(),
            connect_timeout: conn.connect_timeout(),
        })
    }

    pub fn with_progress(mut self, on_page: OnPage) -> Cluster {
        self.on_page = Some(on_page);
        self
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.url
    }
}

/// The lists of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Inventory {
    Ranges,
    Ips,
    Services,
}

/// One change to a list, in the model's terms.
#[derive(Debug, Clone)]
pub enum Change {
    PutRange(ServiceCidr),
    DeleteRange(String),
    PutIp(IpAllocation),
    DeleteIp(std::net::IpAddr),
    PutService(ServiceIps),
    /// namespace, name
    DeleteService(String, String),
    /// Nothing changed, but the resourceVersion moved on (a bookmark, or an object that did not
    /// parse and was skipped).
    Progress,
    /// The server cannot resume this watch (410 Gone, or any error event): list again.
    Expired,
}

pub type Changes = futures::stream::BoxStream<'static, Result<(String, Change)>>;

fn changes<W: Clone + DeserializeOwned + Send + 'static>(
    events: impl Stream<Item = Result<WatchEvent<W>>> + Send + 'static,
    put: fn(W) -> Option<Change>,
    delete: fn(W) -> Option<Change>,
    meta: fn(&W) -> &wire::Meta,
) -> Changes {
    events
        .map(move |ev| {
            ev.map(|ev| match ev {
                WatchEvent::Added(w) | WatchEvent::Modified(w) => {
                    let rv = meta(&w).resource_version.clone();
                    (rv, put(w).unwrap_or(Change::Progress))
                }
                WatchEvent::Deleted(w) => {
                    let rv = meta(&w).resource_version.clone();
                    (rv, delete(w).unwrap_or(Change::Progress))
                }
                WatchEvent::Bookmark(b) => (b.metadata.resource_version, Change::Progress),
                WatchEvent::Error(_) => (String::new(), Change::Expired),
            })
        })
        .boxed()
}

pub fn into_model(w: WireServiceCidr) -> Result<ServiceCidr> {
    w.into_model().map_err(|e| Error::Api {
        what: "read servicecidr".into(),
        source: ApiError::Decode(e.to_string()),
    })
}

/// A Service as the server holds it, and its facts.
#[derive(Debug, Clone)]
pub struct ServiceObject {
    pub facts: ServiceFacts,
    pub uid: String,
    pub resource_version: String,
    pub object: serde_json::Value,
}

impl ServiceObject {
    fn new(object: serde_json::Value) -> Result<ServiceObject, InvalidObject> {
        let facts = wire::service_facts(&object)?;
        let meta = &object["metadata"];
        let text = |k: &str| meta[k].as_str().unwrap_or_default().to_owned();
        Ok(ServiceObject {
            facts,
            uid: text("uid"),
            resource_version: text("resourceVersion"),
            object,
        })
    }
}

/// A delete's dry run is said in the query too, as a create's is: kube puts it in the body, which
/// is what the server reads when there is one (the query alone would make it a real delete), but
/// only the query shows in `-v` and to whatever sits in between.
fn dry_run_in_query(mut req: http::Request<Vec<u8>>, dry_run: bool) -> http::Request<Vec<u8>> {
    if dry_run {
        let uri = req.uri().to_string();
        let sep = match uri.find('?') {
            None => "?",
            Some(i) if i + 1 == uri.len() => "",
            Some(_) => "&",
        };
        *req.uri_mut() = format!("{uri}{sep}dryRun=All")
            .parse()
            .expect("a valid URI with a query parameter added is valid");
    }
    req
}

fn post_params(dry_run: bool) -> PostParams {
    PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    }
}

/// Our writes carry our name in managedFields, so `kubectl get -o yaml` shows who wrote them.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// What ends a watch stream early.
enum EventError {
    Read(kube::Error),
    TooLarge,
    Decode(String),
}

/// The events of a watch body: one JSON object per line, each at most `MAX_EVENT` bytes. The
/// stream ends after the body does, or after its first error.
fn watch_events<T: DeserializeOwned>(
    body: kube::client::Body,
) -> impl Stream<Item = std::result::Result<WatchEvent<T>, EventError>> {
    futures::stream::unfold(
        (Some(body), Vec::<u8>::new()),
        |(mut body, mut buf)| async move {
            loop {
                let end = buf.iter().position(|&b| b == b'\n');
                // An event is refused whether or not its line end has arrived yet.
                if end.unwrap_or(buf.len()) > MAX_EVENT {
                    return Some((Err(EventError::TooLarge), (None, Vec::new())));
                }
                if let Some(i) = end {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let event = serde_json::from_slice::<WatchEvent<T>>(&line)
                        .map_err(|e| EventError::Decode(e.to_string()));
                    return Some((event, (body, buf)));
                }
                match body.as_mut()?.frame().await {
                    None => return None,
                    Some(Err(e)) => return Some((Err(EventError::Read(e)), (None, Vec::new()))),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buf.extend_from_slice(&data);
                        }
                    }
                }
            }
        },
    )
}

/// An error page that is no Kubernetes Status, cut to a readable length.
fn error_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_BODY) {
        Some((cut, _)) => format!(
            "{} … ({} more bytes of the answer cut)",
            &text[..cut],
            text.len() - cut
        ),
        None => text.to_owned(),
    }
}

/// A request that could not even be built (an invalid name or parameter), named like any failure.
fn request_error(what: impl Into<String>, e: kube::core::request::Error) -> Error {
    Error::Api {
        what: what.into(),
        source: ApiError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_delete_dry_run_shows_in_the_query() {
        let req = |uri: &str| http::Request::delete(uri).body(Vec::new()).unwrap();
        for (uri, dry, want) in [
            ("/a/b?", true, "/a/b?dryRun=All"),
            ("/a/b", true, "/a/b?dryRun=All"),
            ("/a/b?x=1", true, "/a/b?x=1&dryRun=All"),
            ("/a/b?", false, "/a/b?"),
        ] {
            assert_eq!(dry_run_in_query(req(uri), dry).uri().to_string(), want);
        }
    }
    use super::*;
    use futures::executor::block_on;

    fn events(
        body: Vec<u8>,
    ) -> Vec<std::result::Result<WatchEvent<serde_json::Value>, EventError>> {
        block_on(watch_events(kube::client::Body::from(body)).collect())
    }

    #[test]
    fn watch_lines_become_events_and_an_oversized_one_ends_the_stream() {
        let two = b"{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n\n{\"type\":\"DELETED\",\"object\":{\"a\":2}}\n".to_vec();
        let got = events(two);
        assert_eq!(got.len(), 2);
        assert!(matches!(got[1], Ok(WatchEvent::Deleted(_))));

        let mut huge = b"{\"type\":\"ADDED\",\"object\":{\"a\":\"".to_vec();
        huge.resize(MAX_EVENT + 10, b'x');
        huge.extend_from_slice(b"\"}}\n{\"type\":\"ADDED\",\"object\":{}}\n");
        let got = events(huge);
        assert_eq!(got.len(), 1, "nothing after the refusal");
        assert!(matches!(got[0], Err(EventError::TooLarge)));

        let got = events(b"not json\n".to_vec());
        assert!(matches!(got[0], Err(EventError::Decode(_))));
    }

    #[test]
    fn error_pages_are_cut_to_a_readable_length() {
        let page = "x".repeat(5 << 20);
        let text = error_text(page.as_bytes());
        assert!(text.len() < 400, "{}", text.len());
        assert!(text.ends_with(&format!(
            "({} more bytes of the answer cut)",
            (5 << 20) - MAX_ERROR_BODY
        )));
        assert_eq!(error_text(b"  short  "), "short");
    }
}
