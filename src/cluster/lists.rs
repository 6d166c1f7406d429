//! Paged lists read item by item as they arrive, and the consistent snapshot every check reads.

use super::*;

impl Cluster {
    /// Sends a page request on a task of its own, so the server works on it while the page before
    /// is still being read.
    pub(super) fn send_page(
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
    pub(super) async fn list_pages<W, M>(
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
                            wire::Part::Metadata(bytes) => {
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
                            wire::Part::Item(bytes) => {
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
    pub(super) async fn list_all<W, M>(
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
}
