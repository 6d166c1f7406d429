//! The only code that talks to Kubernetes: client, API discovery, paged lists, watches, and the
//! writes the plugin makes (its guard finalizer, delete with preconditions, finalizer removal).

pub mod client;
pub mod error;
pub mod exec_mark;
pub mod journal;
pub mod page;
pub mod proto;
pub mod retry;
pub mod rights;
pub mod surroundings;
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

    /// Reports the progress of every list to `on_page`.
    /// This client, limited to the requests `rights` cover: the list a command checks with
    /// [`Cluster::missing`] before its first write.
    pub fn declaring(&self, rights: Vec<Right>) -> Cluster {
        Cluster {
            declared: Declared::of(rights),
            ..self.clone()
        }
    }

    /// The rights RBAC denies among `rights` but the optional ones (an access review each, all at
    /// once). A review that fails is an error: a run must not start on rights it could not check.
    pub async fn missing(&self, rights: &[Right]) -> Result<Vec<Right>> {
        let asks = rights
            .iter()
            .filter(|r| !r.optional)
            .map(|r| async move { Ok::<_, Error>((!self.may(r).await?).then(|| r.clone())) });
        let answers = futures::future::try_join_all(asks).await?;
        Ok(answers.into_iter().flatten().collect())
    }

    /// Refuses, unsent, a request the running command did not declare.
    fn permit<B>(&self, req: &http::Request<B>, what: &str) -> Result<()> {
        match self.declared.undeclared(req.method(), req.uri()) {
            None => Ok(()),
            Some(access) => Err(Error::Undeclared {
                what: what.to_owned(),
                access: access.to_string(),
            }),
        }
    }

    pub fn with_progress(mut self, on_page: OnPage) -> Cluster {
        self.on_page = Some(on_page);
        self
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.url
    }

    /// The served version, from discovery the first time; callers at the same time share it.
    pub async fn version(&self) -> Result<&'static str> {
        self.version.get_or_init(|| self.discover()).await.clone()
    }

    fn wrap(&self, what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error + '_ {
        let what = what.into();
        move |e| {
            let mut source = ApiError::from_kube(&self.url, e);
            // The connector's timeout covers the TCP connect and the TLS handshake.
            if let ApiError::Unreachable { cause, .. } = &mut source
                && cause == "deadline has elapsed"
            {
                *cause = format!(
                    "no connection within {} (TCP connect and TLS handshake; {})",
                    humantime::format_duration(self.connect_timeout),
                    if self.request_timeout.is_some() {
                        "--request-timeout"
                    } else {
                        "the default when --request-timeout is unset"
                    }
                );
            }
            Error::Api { what, source }
        }
    }

    fn unreachable(&self, what: String, cause: String) -> Error {
        Error::Api {
            what,
            source: ApiError::Unreachable {
                url: self.url.clone(),
                cause,
            },
        }
    }

    async fn discover(&self) -> Result<&'static str> {
        let mut found = Vec::new();
        for version in VERSIONS {
            let req = http::Request::get(format!("/apis/{GROUP}/{version}"))
                .body(Vec::new())
                .map_err(|e| Error::Api {
                    what: "discover the networking.k8s.io API".into(),
                    source: ApiError::Other(e.to_string()),
                })?;
            match self
                .call::<APIResourceList>(req, "discover the networking.k8s.io API")
                .await
            {
                Ok((list, _)) => {
                    let has = |n: &str| list.resources.iter().any(|r| r.name == n);
                    if has("servicecidrs") && has("ipaddresses") {
                        return Ok(version);
                    }
                    found.push(format!(
                        "{GROUP}/{version} without servicecidrs or ipaddresses"
                    ));
                }
                Err(e) if e.api_error().is_some_and(ApiError::is_not_found) => {}
                Err(e) => return Err(e),
            }
        }
        if found.is_empty() {
            found.push(format!("no {GROUP} version among {}", VERSIONS.join(", ")));
        }
        Err(Error::NotServed {
            found: found.join("; "),
        })
    }

    fn service_cidrs_at(version: &str) -> Request {
        Request::new(format!("/apis/{GROUP}/{version}/servicecidrs"))
    }

    fn ip_addresses_at(version: &str) -> Request {
        Request::new(format!("/apis/{GROUP}/{version}/ipaddresses"))
    }

    async fn service_cidrs(&self) -> Result<Request> {
        Ok(Self::service_cidrs_at(self.version().await?))
    }

    async fn ip_addresses(&self) -> Result<Request> {
        Ok(Self::ip_addresses_at(self.version().await?))
    }

    /// Sends a request and returns the decoded body with the server's Date (for clock skew). The
    /// whole exchange, body included, is bounded by --request-timeout and the body by `MAX_BODY`.
    async fn call<T: DeserializeOwned>(
        &self,
        req: http::Request<Vec<u8>>,
        what: impl Into<String>,
    ) -> Result<(T, Option<SystemTime>)> {
        let what = what.into();
        let (body, date) = self.call_raw(req, &what).await?;
        let value = serde_json::from_slice(&body).map_err(|e| Error::Api {
            what,
            source: ApiError::Decode(e.to_string()),
        })?;
        Ok((value, date))
    }

    /// [`Cluster::call`] without decoding: the body of a successful answer, as bytes.
    async fn call_raw(
        &self,
        req: http::Request<Vec<u8>>,
        what: &str,
    ) -> Result<(Vec<u8>, Option<SystemTime>)> {
        self.permit(&req, what)?;
        let exchange = async {
            let res = self
                .client
                .send(req.map(Into::into))
                .await
                .map_err(self.wrap(what))?;
            let date = res
                .headers()
                .get(DATE)
                .and_then(|d| d.to_str().ok())
                .and_then(|d| httpdate::parse_http_date(d).ok());
            let status = res.status();
            let body = self.read_body(res.into_body(), MAX_BODY, what).await?;
            Ok::<_, Error>((status, date, body))
        };
        let (status, date, body) = self.bounded(what, exchange).await?;
        tracing::debug!("{what}: {status}, {} bytes", body.len());
        if !status.is_success() {
            return Err(self.failure(status, &body, what.to_owned()));
        }
        Ok((body, date))
    }

    /// `work` (a request and its whole answer), bounded by --request-timeout when it is set.
    async fn bounded<T>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match self.request_timeout {
            Some(t) => tokio::time::timeout(t, work).await.map_err(|_| {
                self.unreachable(
                    what.to_owned(),
                    format!(
                        "no complete answer within --request-timeout {}",
                        humantime::format_duration(t)
                    ),
                )
            })?,
            None => work.await,
        }
    }

    /// An answer that is not a success: its Status, or a short text of what came instead.
    fn failure(&self, status: http::StatusCode, body: &[u8], what: String) -> Error {
        let s = serde_json::from_slice::<kube::core::Status>(body)
            .ok()
            .or_else(|| proto::status(body))
            .unwrap_or_else(|| {
                kube::core::Status::failure(&error_text(body), "").with_code(status.as_u16())
            });
        self.wrap(what)(kube::Error::Api(s.boxed()))
    }

    /// Reads a body of at most `max` bytes.
    async fn read_body(
        &self,
        mut body: kube::client::Body,
        max: usize,
        what: &str,
    ) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(self.wrap(what))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > max {
                    return Err(self.unreachable(
                        what.to_owned(),
                        format!("the answer is larger than {} MiB; refused", max >> 20),
                    ));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf)
    }

    /// Sends a page request on a task of its own, so the server works on it while the page before
    /// is still being read.
    fn send_page(
        &self,
        req: &Request,
        lp: &ListParams,
        what: &str,
        protobuf: bool,
    ) -> Result<Pending> {
        let mut page = req
            .list(lp)
            .map_err(|e| request_error(what.to_owned(), e))?;
        if protobuf {
            page.headers_mut()
                .insert(ACCEPT, http::HeaderValue::from_static(proto::ACCEPT));
        }
        self.permit(&page, what)?;
        let client = self.client.clone();
        Ok(Pending {
            task: tokio::spawn(async move { client.send(page.map(Into::into)).await }),
        })
    }

    /// Lists every page. Each page is read as it arrives: every item becomes the model as soon as
    /// its bytes are in, so memory holds the model and one object of JSON, whatever the page size;
    /// and the next page is asked for as soon as this one's continue token is in (the server sends
    /// it before the items). No resourceVersion: a consistent (quorum) read. With `protobuf`, the
    /// server may answer in protobuf, which that function decodes.
    async fn list_pages<W, M>(
        &self,
        req: Request,
        what: &'static str,
        protobuf: Option<proto::Decoder<W>>,
        convert: &impl Fn(W) -> Result<M, InvalidObject>,
    ) -> Result<Listed<M>>
    where
        W: DeserializeOwned,
    {
        let doing = format!("list {what}");
        let decode = |e: String| Error::Api {
            what: doing.clone(),
            source: ApiError::Decode(e),
        };
        let mut lp = ListParams::default().limit(self.chunk_size);
        let mut items = Vec::new();
        let mut tokens = std::collections::HashSet::new();
        // A real server needs about items / limit pages; far more means one that never ends.
        let max_pages = MAX_LIST_ITEMS / self.chunk_size as usize + 1_000;
        let mut pending = Some(self.send_page(&req, &lp, &doing, protobuf.is_some())?);
        let mut resource_version = String::new();
        while let Some(mut page) = pending.take() {
            if tokens.len() > max_pages {
                return Err(self.unreachable(
                    doing.clone(),
                    format!("more than {max_pages} pages: not a list a real server sends; stopped"),
                ));
            }
            let read = async {
                let res = (&mut page.task)
                    .await
                    .map_err(|e| self.unreachable(doing.clone(), e.to_string()))?
                    .map_err(self.wrap(doing.clone()))?;
                let status = res.status();
                if !status.is_success() {
                    let body = self.read_body(res.into_body(), MAX_BODY, &doing).await?;
                    return Err(self.failure(status, &body, doing.clone()));
                }
                let content_type = res
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let mut reader = page::Reader::for_content_type(content_type);
                let from_protobuf = match (&reader, protobuf) {
                    (page::Reader::Json(_), _) => None,
                    (page::Reader::Protobuf(_), Some(f)) => Some(f),
                    (page::Reader::Protobuf(_), None) => {
                        return Err(decode("protobuf, which was not asked for".into()));
                    }
                };
                let mut body = res.into_body();
                let mut skipped = Vec::new();
                let mut read = 0;
                while let Some(frame) = body.frame().await {
                    let Ok(data) = frame.map_err(self.wrap(doing.clone()))?.into_data() else {
                        continue;
                    };
                    read += data.len();
                    if read > MAX_BODY {
                        return Err(self.unreachable(
                            doing.clone(),
                            format!("the answer is larger than {} MiB; refused", MAX_BODY >> 20),
                        ));
                    }
                    reader.feed(&data);
                    while let Some(part) = reader.next_part().map_err(decode)? {
                        match part {
                            page::Part::Metadata(bytes) => {
                                let meta = match from_protobuf {
                                    Some(_) => wire::ListMeta::from_protobuf(bytes)
                                        .map_err(|e| decode(e.to_string()))?,
                                    None => serde_json::from_slice::<wire::ListMeta>(bytes)
                                        .map_err(|e| decode(e.to_string()))?,
                                };
                                resource_version = meta.resource_version;
                                match meta.continue_token.filter(|c| !c.is_empty()) {
                                    Some(c) if !tokens.insert(c.clone()) => {
                                        return Err(self.unreachable(
                                            doing.clone(),
                                            "the server sent the same continue token twice: the list would never end; stopped".into(),
                                        ));
                                    }
                                    Some(c) => {
                                        lp.continue_token = Some(c);
                                        pending = Some(self.send_page(
                                            &req,
                                            &lp,
                                            &doing,
                                            protobuf.is_some(),
                                        )?);
                                    }
                                    None => {}
                                }
                            }
                            page::Part::Item(bytes) => {
                                let w: W = match from_protobuf {
                                    Some(f) => f(bytes).map_err(|e| decode(e.to_string()))?,
                                    None => serde_json::from_slice(bytes)
                                        .map_err(|e| decode(e.to_string()))?,
                                };
                                match convert(w) {
                                    Ok(m) => items.push(m),
                                    Err(e) => skipped.push(e),
                                }
                                if items.len() > MAX_LIST_ITEMS {
                                    return Err(self.unreachable(
                                        doing.clone(),
                                        format!("more than {MAX_LIST_ITEMS} objects: not a list a real server sends; stopped"),
                                    ));
                                }
                            }
                        }
                    }
                }
                reader.finish().map_err(decode)?;
                // Said only of a page that arrived whole: a failed list says one thing.
                for e in skipped {
                    tracing::warn!("skipping {e}");
                }
                Ok(if from_protobuf.is_some() {
                    "protobuf"
                } else {
                    "JSON"
                })
            };
            // --request-timeout bounds each page from when it is waited for: while the page before
            // is read, its request runs ahead of the bound.
            let encoding = self.bounded(&doing, read).await?;
            tracing::debug!(
                "{doing}: page read ({encoding}), {} objects so far",
                items.len()
            );
            if let Some(on_page) = &self.on_page {
                on_page(what, items.len());
            }
        }
        Ok(Listed {
            items,
            resource_version,
        })
    }

    /// Lists at the served version. Before discovery has answered, the list goes out at v1 beside
    /// it, which saves a command's first read a round trip. Discovery decides: its error comes
    /// first, so a failing server gets one message whichever list notices, and a server without
    /// v1 is asked again at its version.
    async fn list_all<W, M>(
        &self,
        path: impl Fn(&'static str) -> Request,
        what: &'static str,
        protobuf: Option<proto::Decoder<W>>,
        convert: impl Fn(W) -> Result<M, InvalidObject>,
    ) -> Result<Listed<M>>
    where
        W: DeserializeOwned,
    {
        if let Some(v) = self.version.get() {
            return self
                .list_pages(path(v.clone()?), what, protobuf, &convert)
                .await;
        }
        let (settled, optimistic) = tokio::join!(
            self.version(),
            self.list_pages(path(VERSIONS[0]), what, protobuf, &convert)
        );
        let v = settled?;
        if path(v).url_path == path(VERSIONS[0]).url_path {
            optimistic
        } else {
            self.list_pages(path(v), what, protobuf, &convert).await
        }
    }

    pub async fn list_service_cidrs(&self) -> Result<Listed<ServiceCidr>> {
        self.list_all(
            Self::service_cidrs_at,
            "servicecidrs",
            Some(WireServiceCidr::from_protobuf),
            WireServiceCidr::into_model,
        )
        .await
    }

    pub async fn list_ip_addresses(&self) -> Result<Listed<IpAllocation>> {
        self.list_all(
            Self::ip_addresses_at,
            "ipaddresses",
            Some(WireIpAddress::from_protobuf),
            WireIpAddress::into_model,
        )
        .await
    }

    pub async fn list_services(&self) -> Result<Listed<ServiceIps>> {
        self.list_all(
            |_| Request::new("/api/v1/services"),
            "services",
            Some(WireService::from_protobuf),
            WireService::into_model,
        )
        .await
    }

    /// Every Service as a whole object, with its facts.
    pub async fn list_service_objects(&self) -> Result<Vec<ServiceObject>> {
        self.list_all(
            |_| Request::new("/api/v1/services"),
            "services",
            None,
            ServiceObject::new,
        )
        .await
        .map(|l| l.items)
    }

    pub async fn list_nodes(&self) -> Result<Vec<NodeNets>> {
        self.list_all(
            |_| Request::new("/api/v1/nodes"),
            "nodes",
            None,
            WireNode::into_model,
        )
        .await
        .map(|l| l.items)
    }

    fn services_in(namespace: &str) -> Request {
        Request::new(format!("/api/v1/namespaces/{namespace}/services"))
    }

    /// The Service now; None when there is none.
    pub async fn get_service(&self, namespace: &str, name: &str) -> Result<Option<ServiceObject>> {
        let what = format!("get service {namespace}/{name}");
        let req = Self::services_in(namespace)
            .get(name, &Default::default())
            .map_err(|e| request_error(what.clone(), e))?;
        match self.call::<serde_json::Value>(req, what.clone()).await {
            Ok((v, _)) => ServiceObject::new(v).map(Some).map_err(|e| Error::Api {
                what,
                source: ApiError::Decode(e.to_string()),
            }),
            Err(e) if e.api_error().is_some_and(ApiError::is_not_found) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes exactly the Service that was read: changed or recreated meanwhile, it is refused
    /// with a conflict.
    pub async fn delete_service(
        &self,
        service: &ServiceObject,
        server_dry_run: bool,
    ) -> Result<()> {
        let (ns, name) = (&service.facts.namespace, &service.facts.name);
        let dp = DeleteParams {
            dry_run: server_dry_run,
            preconditions: Some(Preconditions {
                uid: Some(service.uid.clone()),
                resource_version: Some(service.resource_version.clone()),
            }),
            ..Default::default()
        };
        let what = format!("delete service {ns}/{name}");
        let req = Self::services_in(ns)
            .delete(name, &dp)
            .map(|r| dry_run_in_query(r, server_dry_run))
            .map_err(|e| request_error(what.clone(), e))?;
        self.call::<serde_json::Value>(req, what).await.map(|_| ())
    }

    /// Creates a Service from a manifest without server-set fields, written by `manager`.
    pub async fn create_service(
        &self,
        manifest: &serde_json::Value,
        manager: &str,
    ) -> Result<ServiceObject> {
        let (v, what) = self.post_service(manifest, false, manager).await?;
        ServiceObject::new(v).map_err(|e| Error::Api {
            what,
            source: ApiError::Decode(e.to_string()),
        })
    }

    /// What the server would say to the create, with dryRun=All: nothing is stored or allocated.
    pub async fn create_service_dry_run(&self, manifest: &serde_json::Value) -> Result<()> {
        self.post_service(manifest, true, FIELD_MANAGER)
            .await
            .map(|_| ())
    }

    async fn post_service(
        &self,
        manifest: &serde_json::Value,
        dry_run: bool,
        manager: &str,
    ) -> Result<(serde_json::Value, String)> {
        let ns = manifest["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("create service {ns}/{name}");
        let body = serde_json::to_vec(manifest).map_err(|e| Error::Api {
            what: what.clone(),
            source: ApiError::Other(e.to_string()),
        })?;
        let req = Self::services_in(ns)
            .create(
                &PostParams {
                    dry_run,
                    field_manager: Some(manager.into()),
                },
                body,
            )
            .map_err(|e| request_error(what.clone(), e))?;
        let (v, _) = self.call::<serde_json::Value>(req, what.clone()).await?;
        Ok((v, what))
    }

    /// Waits until the Service with this uid is gone (one with finalizers stays a while after
    /// its delete), watching it from `resource_version`.
    pub async fn service_gone(&self, namespace: &str, name: &str, uid: &str) -> Result<()> {
        loop {
            let rv = match self.get_service(namespace, name).await? {
                Some(s) if s.uid == uid => s.resource_version,
                _ => return Ok(()),
            };
            let events = self
                .watch::<serde_json::Value>(
                    Self::services_in(namespace),
                    "services",
                    Some(format!("metadata.name={name}")),
                    &rv,
                )
                .await?;
            let mut events = std::pin::pin!(events);
            while let Some(ev) = events.next().await {
                if let WatchEvent::Deleted(_) = ev? {
                    return Ok(());
                }
            }
        }
    }

    /// Creates the ServiceCIDR (with dryRun=All when asked, to learn whether the server would),
    /// carrying a migration journal when given one.
    pub async fn create_service_cidr(
        &self,
        name: &str,
        cidrs: &[ipnet::IpNet],
        journal: Option<&crate::audit::journal::Record>,
        server_dry_run: bool,
    ) -> Result<ServiceCidr> {
        let mut metadata = match journal {
            Some(r) => journal::journal_metadata(Some(r)),
            None => json!({}),
        };
        metadata["name"] = name.into();
        let body = json!({
            "apiVersion": format!("{GROUP}/{}", self.version().await?),
            "kind": "ServiceCIDR",
            "metadata": metadata,
            "spec": {"cidrs": cidrs.iter().map(ToString::to_string).collect::<Vec<_>>()},
        });
        let what = format!("create servicecidr {name:?}");
        let body = serde_json::to_vec(&body).map_err(|e| Error::Api {
            what: what.clone(),
            source: ApiError::Other(e.to_string()),
        })?;
        let req = self
            .service_cidrs()
            .await?
            .create(&post_params(server_dry_run), body)
            .map_err(|e| request_error(what.clone(), e))?;
        let (w, _) = self.call::<WireServiceCidr>(req, what).await?;
        into_model(w)
    }

    /// ServiceCIDRs and IPAddresses (and Services when asked), fetched concurrently.
    pub async fn snapshot(&self, with_services: bool) -> Result<(Snapshot, [String; 2])> {
        let services = async {
            if with_services {
                self.list_services().await.map(|l| l.items)
            } else {
                Ok(Vec::new())
            }
        };
        let (ranges, ips, services) = tokio::try_join!(
            self.list_service_cidrs(),
            self.list_ip_addresses(),
            services
        )?;
        let rvs = [ranges.resource_version, ips.resource_version];
        Ok((
            Snapshot {
                ranges: ranges.items,
                ips: ips.items,
                services,
            },
            rvs,
        ))
    }

    /// The ServiceCIDR and the server's clock at the time of the read; None when it is gone.
    pub async fn get_service_cidr(&self, name: &str) -> Result<Option<RangeRead>> {
        let req = self
            .service_cidrs()
            .await?
            .get(name, &Default::default())
            .map_err(|e| request_error(format!("get servicecidr {name:?}"), e))?;
        match self
            .call::<WireServiceCidr>(req, format!("get servicecidr {name:?}"))
            .await
        {
            Ok((w, date)) => Ok(Some((into_model(w)?, date))),
            Err(e) if e.api_error().is_some_and(ApiError::is_not_found) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes exactly the object that was checked: a range recreated meanwhile has another uid,
    /// and one changed meanwhile another resourceVersion; both fail with a conflict. Returns the
    /// range as the answer holds it (terminating), with the server's clock, when it does.
    pub async fn delete_service_cidr(
        &self,
        range: &ServiceCidr,
        server_dry_run: bool,
    ) -> Result<Option<RangeRead>> {
        let dp = DeleteParams {
            dry_run: server_dry_run,
            preconditions: Some(Preconditions {
                uid: Some(range.uid.clone()),
                resource_version: Some(range.resource_version.clone()),
            }),
            ..Default::default()
        };
        let what = format!("delete servicecidr {:?}", range.name);
        let req = self
            .service_cidrs()
            .await?
            .delete(&range.name, &dp)
            .map(|r| dry_run_in_query(r, server_dry_run))
            .map_err(|e| request_error(what.clone(), e))?;
        let (answer, date) = self.call::<serde_json::Value>(req, what).await?;
        // The deleted object, or a Status from servers that answer so: only the object is used.
        let range = (answer.get("kind").and_then(|k| k.as_str()) == Some("ServiceCIDR"))
            .then(|| serde_json::from_value::<WireServiceCidr>(answer).ok())
            .flatten()
            .and_then(|w| w.into_model().ok());
        Ok(range.map(|r| (r, date)))
    }

    /// Puts the plugin's guard finalizer on the range, as read in `range`: a strategic merge adds
    /// it to the list without touching the others, and the resourceVersion makes the server refuse
    /// it (409) if the range changed since that read. Returns the range as written.
    pub async fn add_guard(&self, range: &ServiceCidr) -> Result<ServiceCidr> {
        let patch = json!({"metadata": {"resourceVersion": range.resource_version, "finalizers": [GUARD_FINALIZER]}});
        let what = format!("guard servicecidr {:?}", range.name);
        let req = self
            .service_cidrs()
            .await?
            .patch(&range.name, &patch_params(), &Patch::Strategic(&patch))
            .map_err(|e| request_error(what.clone(), e))?;
        let (w, _) = self.call::<WireServiceCidr>(req, what).await?;
        into_model(w)
    }

    /// Removes the named finalizers and keeps the rest. The resourceVersion in the patch makes the
    /// server refuse it (409) if the range changed since the check that allowed it.
    pub async fn remove_finalizers(&self, range: &ServiceCidr, remove: &[String]) -> Result<()> {
        let remaining: Vec<&String> = range
            .finalizers
            .iter()
            .filter(|f| !remove.contains(f))
            .collect();
        let patch = json!({"metadata": {"resourceVersion": range.resource_version, "finalizers": remaining}});
        let what = format!("remove finalizers of servicecidr {:?}", range.name);
        let req = self
            .service_cidrs()
            .await?
            .patch(&range.name, &patch_params(), &Patch::Merge(&patch))
            .map_err(|e| request_error(what.clone(), e))?;
        self.call::<serde_json::Value>(req, what).await.map(|_| ())
    }

    /// Whether the server would let this user make a request `right` covers: an access review,
    /// bounded like every request.
    async fn may(&self, right: &Right) -> Result<bool> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(right.group.into()),
                    resource: Some(right.resource.into()),
                    namespace: right.namespace.clone(),
                    verb: Some(right.verb.into()),
                    name: right.name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let what = format!(
            "ask whether this user may {} {}",
            right.verb, right.resource
        );
        let body = serde_json::to_vec(&review).map_err(|e| Error::Api {
            what: what.clone(),
            source: ApiError::Other(e.to_string()),
        })?;
        let req = Request::new("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
            .create(&PostParams::default(), body)
            .map_err(|e| request_error(what.clone(), e))?;
        let (answer, _) = self.call::<SelfSubjectAccessReview>(req, what).await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    async fn watch<T: Clone + DeserializeOwned + 'static>(
        &self,
        req: Request,
        what: &'static str,
        field_selector: Option<String>,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent<T>>> + use<T>> {
        let mut wp = WatchParams::default().timeout(290);
        wp.bookmarks = true;
        wp.field_selector = field_selector;
        let what = format!("watch {what}");
        let req = req
            .watch(&wp, resource_version)
            .map_err(|e| request_error(what.clone(), e))?;
        self.permit(&req, &what)?;
        let send = self.client.send(req.map(Into::into));
        // Only the answer's head is a request's; the stream after it may idle for minutes.
        let res = match self.request_timeout {
            Some(t) => tokio::time::timeout(t, send).await.map_err(|_| {
                self.unreachable(
                    what.clone(),
                    format!(
                        "no answer within --request-timeout {}",
                        humantime::format_duration(t)
                    ),
                )
            })?,
            None => send.await,
        }
        .map_err(self.wrap(what.clone()))?;
        if !res.status().is_success() {
            let status = res.status();
            let body = self.read_body(res.into_body(), MAX_BODY, &what).await?;
            return Err(self.failure(status, &body, what));
        }
        let this = self.clone();
        Ok(watch_events(res.into_body()).map(move |r| {
            r.map_err(|e| match e {
                EventError::Read(e) => this.wrap(what.clone())(e),
                EventError::TooLarge => this.unreachable(
                    what.clone(),
                    format!(
                        "a watch event is larger than {} MiB; refused",
                        MAX_EVENT >> 20
                    ),
                ),
                EventError::Decode(e) => Error::Api {
                    what: what.clone(),
                    source: ApiError::Decode(e),
                },
            })
        }))
    }

    /// Watches ServiceCIDRs (one, when named) from a resourceVersion. The stream ends when the
    /// server closes it; callers re-read and watch again, which is how a wait survives restarts.
    pub async fn watch_service_cidrs(
        &self,
        name: Option<&str>,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent<WireServiceCidr>>> + use<>> {
        let selector = name.map(|n| format!("metadata.name={n}"));
        self.watch(
            self.service_cidrs().await?,
            "servicecidrs",
            selector,
            resource_version,
        )
        .await
    }

    /// One item per change to the named ServiceCIDR after `resource_version` (bookmarks are not
    /// changes). The stream ends when the server closes the watch.
    pub async fn changes_of_service_cidr(
        &self,
        name: &str,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<()>> + use<>> {
        let events = self
            .watch_service_cidrs(Some(name), resource_version)
            .await?;
        // An ERROR event (410: too old to resume) ends the watch, as a closed one does.
        let events =
            events.take_while(|ev| std::future::ready(!matches!(ev, Ok(WatchEvent::Error(_)))));
        Ok(events.filter_map(|ev| async move {
            match ev {
                Ok(WatchEvent::Bookmark(_)) => None,
                Ok(_) => Some(Ok(())),
                Err(e) => Some(Err(e)),
            }
        }))
    }

    /// The changes to one of the lists a snapshot holds, from a resourceVersion, each with the
    /// resourceVersion to resume from after it. The stream ends when the server closes the watch.
    pub async fn follow(&self, list: Inventory, resource_version: &str) -> Result<Changes> {
        Ok(match list {
            Inventory::Ranges => changes(
                self.watch(
                    self.service_cidrs().await?,
                    "servicecidrs",
                    None,
                    resource_version,
                )
                .await?,
                |w: WireServiceCidr| w.into_model().ok().map(Change::PutRange),
                |w| Some(Change::DeleteRange(w.metadata.name)),
                |w| &w.metadata,
            ),
            Inventory::Ips => changes(
                self.watch(
                    self.ip_addresses().await?,
                    "ipaddresses",
                    None,
                    resource_version,
                )
                .await?,
                |w: WireIpAddress| w.into_model().ok().map(Change::PutIp),
                |w| w.into_model().ok().map(|m| Change::DeleteIp(m.ip)),
                |w| &w.metadata,
            ),
            Inventory::Services => changes(
                self.watch(
                    Request::new("/api/v1/services"),
                    "services",
                    None,
                    resource_version,
                )
                .await?,
                |w: WireService| w.into_model().ok().map(Change::PutService),
                |w| Some(Change::DeleteService(w.metadata.namespace, w.metadata.name)),
                |w| &w.metadata,
            ),
        })
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
