//! The only code that talks to Kubernetes: client, API discovery, paged lists, watches, and the
//! writes the plugin makes (its guard finalizer, delete with preconditions, finalizer removal).

pub mod client;
pub mod error;
pub mod retry;
pub mod wire;

use std::time::SystemTime;

use futures::{Stream, StreamExt};
use http::header::DATE;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
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

use crate::model::{GUARD_FINALIZER, IpAllocation, ServiceCidr, ServiceIps, Snapshot};
use wire::{InvalidObject, WireIpAddress, WireService, WireServiceCidr};

pub const GROUP: &str = "networking.k8s.io";
pub const FIELD_MANAGER: &str = "kubectl-servicecidr";
/// Served versions we understand, preferred first.
pub const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] client::ConfigError),
    #[error(
        "the server does not serve the ServiceCIDR API: it needs networking.k8s.io/v1 (Kubernetes 1.33+) or v1beta1 (1.31+ with MultiCIDRServiceAllocator) with servicecidrs and ipaddresses; found {found}"
    )]
    NotServed { found: String },
    #[error("servicecidr {0:?} not found")]
    NotFound(String),
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

/// A connected client that knows which ServiceCIDR API version the server serves.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    url: String,
    version: &'static str,
    chunk_size: u32,
}

/// A list, with the resourceVersion to watch from.
pub struct Listed<T> {
    pub items: Vec<T>,
    pub resource_version: String,
}

impl Cluster {
    pub async fn connect(conn: &Connection, chunk_size: u32) -> Result<Cluster> {
        let (client, url) = conn.client().await?;
        let mut cluster = Cluster {
            client,
            url,
            version: VERSIONS[0],
            chunk_size,
        };
        cluster.version = cluster.discover().await?;
        Ok(cluster)
    }

    pub fn version(&self) -> &'static str {
        self.version
    }

    fn wrap(&self, what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error + '_ {
        let what = what.into();
        move |e| Error::Api {
            what,
            source: ApiError::from_kube(&self.url, e),
        }
    }

    async fn discover(&self) -> Result<&'static str> {
        let mut found = Vec::new();
        for version in VERSIONS {
            match self
                .client
                .list_api_group_resources(&format!("{GROUP}/{version}"))
                .await
            {
                Ok(list) => {
                    let has = |n: &str| list.resources.iter().any(|r| r.name == n);
                    if has("servicecidrs") && has("ipaddresses") {
                        return Ok(version);
                    }
                    found.push(format!(
                        "{GROUP}/{version} without servicecidrs or ipaddresses"
                    ));
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(self.wrap("discover the networking.k8s.io API")(e)),
            }
        }
        if found.is_empty() {
            found.push(format!("no {GROUP} version among {}", VERSIONS.join(", ")));
        }
        Err(Error::NotServed {
            found: found.join("; "),
        })
    }

    fn service_cidrs(&self) -> Request {
        Request::new(format!("/apis/{GROUP}/{}/servicecidrs", self.version))
    }

    fn ip_addresses(&self) -> Request {
        Request::new(format!("/apis/{GROUP}/{}/ipaddresses", self.version))
    }

    /// Sends a request and returns the decoded body with the server's Date (for clock skew).
    async fn call<T: DeserializeOwned>(
        &self,
        req: http::Request<Vec<u8>>,
        what: impl Into<String>,
    ) -> Result<(T, Option<SystemTime>)> {
        let what = what.into();
        let res = self
            .client
            .send(req.map(Into::into))
            .await
            .map_err(self.wrap(what.clone()))?;
        let date = res
            .headers()
            .get(DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok());
        let status = res.status();
        let body = res
            .into_body()
            .collect_bytes()
            .await
            .map_err(self.wrap(what.clone()))?;
        if !status.is_success() {
            let s = serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
                kube::core::Status::failure(String::from_utf8_lossy(&body).trim(), "")
                    .with_code(status.as_u16())
            });
            return Err(self.wrap(what)(kube::Error::Api(s.boxed())));
        }
        let value = serde_json::from_slice(&body).map_err(|e| Error::Api {
            what,
            source: ApiError::Decode(e.to_string()),
        })?;
        Ok((value, date))
    }

    /// Lists every page, converting each page into the model before fetching the next, so memory
    /// holds the model, not the JSON. No resourceVersion: a consistent (quorum) read.
    async fn list_all<W, M>(
        &self,
        req: Request,
        what: &'static str,
        convert: impl Fn(W) -> Result<M, InvalidObject>,
    ) -> Result<Listed<M>>
    where
        W: DeserializeOwned,
    {
        let mut lp = ListParams::default().limit(self.chunk_size);
        let mut items = Vec::new();
        loop {
            let page_req = req
                .list(&lp)
                .map_err(|e| request_error(format!("list {what}"), e))?;
            let (page, _): (wire::List<W>, _) = self.call(page_req, format!("list {what}")).await?;
            items.reserve(page.items.len());
            for w in page.items {
                match convert(w) {
                    Ok(m) => items.push(m),
                    Err(e) => tracing::warn!("skipping {e}"),
                }
            }
            match page.metadata.continue_token.filter(|c| !c.is_empty()) {
                Some(c) => lp.continue_token = Some(c),
                None => {
                    return Ok(Listed {
                        items,
                        resource_version: page.metadata.resource_version,
                    });
                }
            }
        }
    }

    pub async fn list_service_cidrs(&self) -> Result<Listed<ServiceCidr>> {
        self.list_all(
            self.service_cidrs(),
            "servicecidrs",
            WireServiceCidr::into_model,
        )
        .await
    }

    pub async fn list_ip_addresses(&self) -> Result<Listed<IpAllocation>> {
        self.list_all(
            self.ip_addresses(),
            "ipaddresses",
            WireIpAddress::into_model,
        )
        .await
    }

    pub async fn list_services(&self) -> Result<Listed<ServiceIps>> {
        self.list_all(
            Request::new("/api/v1/services"),
            "services",
            WireService::into_model,
        )
        .await
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
    pub async fn get_service_cidr(
        &self,
        name: &str,
    ) -> Result<Option<(ServiceCidr, Option<SystemTime>)>> {
        let req = self
            .service_cidrs()
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
    /// and one changed meanwhile another resourceVersion; both fail with a conflict.
    pub async fn delete_service_cidr(
        &self,
        range: &ServiceCidr,
        server_dry_run: bool,
    ) -> Result<()> {
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
            .delete(&range.name, &dp)
            .map_err(|e| request_error(what.clone(), e))?;
        self.call::<serde_json::Value>(req, what).await.map(|_| ())
    }

    /// Puts the plugin's guard finalizer on the range, as read in `range`: a strategic merge adds
    /// it to the list without touching the others, and the resourceVersion makes the server refuse
    /// it (409) if the range changed since that read. Returns the range as written.
    pub async fn add_guard(&self, range: &ServiceCidr) -> Result<ServiceCidr> {
        let patch = json!({"metadata": {"resourceVersion": range.resource_version, "finalizers": [GUARD_FINALIZER]}});
        let what = format!("guard servicecidr {:?}", range.name);
        let req = self
            .service_cidrs()
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
            .patch(&range.name, &patch_params(), &Patch::Merge(&patch))
            .map_err(|e| request_error(what.clone(), e))?;
        self.call::<serde_json::Value>(req, what).await.map(|_| ())
    }

    /// Whether the server would let this user `verb` the ServiceCIDR `name`, asked with a
    /// SelfSubjectAccessReview; None when it cannot tell (the review itself failed).
    pub async fn may(&self, verb: &str, name: &str) -> Option<bool> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.into()),
                    resource: Some("servicecidrs".into()),
                    verb: Some(verb.into()),
                    name: Some(name.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(self.client.clone());
        match api.create(&PostParams::default(), &review).await {
            Ok(r) => r.status.map(|s| s.allowed),
            Err(e) => {
                tracing::debug!("cannot review access to {verb} servicecidr {name:?}: {e}");
                None
            }
        }
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
        let url = self.url.clone();
        let req = req
            .watch(&wp, resource_version)
            .map_err(|e| request_error(format!("watch {what}"), e))?;
        let stream = self
            .client
            .request_events::<T>(req)
            .await
            .map_err(self.wrap(format!("watch {what}")))?;
        Ok(stream.map(move |r| {
            r.map_err(|e| Error::Api {
                what: format!("watch {what}"),
                source: ApiError::from_kube(&url, e),
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
            self.service_cidrs(),
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
        Ok(events.filter_map(|ev| async move {
            match ev {
                Ok(WatchEvent::Bookmark(_)) => None,
                Ok(_) => Some(Ok(())),
                Err(e) => Some(Err(e)),
            }
        }))
    }

    pub async fn watch_ip_addresses(
        &self,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent<WireIpAddress>>> + use<>> {
        self.watch(self.ip_addresses(), "ipaddresses", None, resource_version)
            .await
    }
}

pub fn into_model(w: WireServiceCidr) -> Result<ServiceCidr> {
    w.into_model().map_err(|e| Error::Api {
        what: "read servicecidr".into(),
        source: ApiError::Decode(e.to_string()),
    })
}

/// Our writes carry our name in managedFields, so `kubectl get -o yaml` shows who wrote them.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// A request that could not even be built (an invalid name or parameter), named like any failure.
fn request_error(what: impl Into<String>, e: kube::core::request::Error) -> Error {
    Error::Api {
        what: what.into(),
        source: ApiError::Other(e.to_string()),
    }
}
