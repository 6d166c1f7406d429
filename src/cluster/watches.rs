//! Watches: a range's changes during a wait, the lists kept current by `follow`, a Service's end.

use super::*;

impl Cluster {
    pub(super) async fn watch<T: Clone + DeserializeOwned + 'static>(
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
    pub async fn changes_since(&self, list: Inventory, resource_version: &str) -> Result<Changes> {
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
}
