//! Which networking.k8s.io version serves ServiceCIDRs and IPAddresses, settled once per client.

use super::*;

impl Cluster {
    /// The served version, from discovery the first time; callers at the same time share it.
    pub async fn version(&self) -> Result<&'static str> {
        self.version.get_or_init(|| self.discover()).await.clone()
    }

    pub(super) async fn discover(&self) -> Result<&'static str> {
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

    pub(super) fn service_cidrs_at(version: &str) -> Request {
        Request::new(format!("/apis/{GROUP}/{version}/servicecidrs"))
    }

    pub(super) fn ip_addresses_at(version: &str) -> Request {
        Request::new(format!("/apis/{GROUP}/{version}/ipaddresses"))
    }

    pub(super) async fn service_cidrs(&self) -> Result<Request> {
        Ok(Self::service_cidrs_at(self.version().await?))
    }

    pub(super) async fn ip_addresses(&self) -> Result<Request> {
        Ok(Self::ip_addresses_at(self.version().await?))
    }
}
