//! The verbs on single objects: Services and ServiceCIDRs read, created, deleted and patched.

use super::*;

impl Cluster {
    pub(super) fn services_in(namespace: &str) -> Request {
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

    pub(super) async fn post_service(
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
}
