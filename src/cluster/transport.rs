//! Sending one request and reading its whole answer: bounded in time and size, errors told in one line.

use super::*;

impl Cluster {
    pub(super) fn wrap(&self, what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error + '_ {
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

    pub(super) fn unreachable(&self, what: String, cause: String) -> Error {
        Error::Api {
            what,
            source: ApiError::Unreachable {
                url: self.url.clone(),
                cause,
            },
        }
    }

    /// Sends a request and returns the decoded body with the server's Date (for clock skew). The
    /// whole exchange, body included, is bounded by --request-timeout and the body by `MAX_BODY`.
    pub(super) async fn call<T: DeserializeOwned>(
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
    pub(super) async fn call_raw(
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
    pub(super) async fn bounded<T>(
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
    pub(super) fn failure(&self, status: http::StatusCode, body: &[u8], what: String) -> Error {
        let s = serde_json::from_slice::<kube::core::Status>(body)
            .ok()
            .or_else(|| proto::status(body))
            .unwrap_or_else(|| {
                kube::core::Status::failure(&error_text(body), "").with_code(status.as_u16())
            });
        self.wrap(what)(kube::Error::Api(s.boxed()))
    }

    /// Reads a body of at most `max` bytes.
    pub(super) async fn read_body(
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
}
