//! One readable line for each way a request can fail.

use std::error::Error as _;

/// A failed request, reduced to what a user can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The server answered with a Status: its message names the object and the cause.
    #[error("{message}")]
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("cannot reach the API server at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("unexpected answer from the API server: {0}")]
    Decode(String),
    #[error("{0}")]
    Other(String),
}

/// The innermost cause of an error chain, which is the useful part for network errors. A
/// credential plugin's failure stops the walk: its own text is never shown (below).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    loop {
        if let Some(auth) = cur.downcast_ref::<kube::client::AuthError>() {
            return credentials_failed(auth);
        }
        match cur.source() {
            Some(next) => cur = next,
            None => return cur.to_string(),
        }
    }
}

/// An error's text, unless a credential plugin's failure is in its chain: then only what
/// [`credentials_failed`] says of it.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(auth) = c.downcast_ref::<kube::client::AuthError>() {
            return credentials_failed(auth);
        }
        cur = c.source();
    }
    e.to_string()
}

/// Why credentials could not be had, without a word of what kube's own message carries: the exec
/// plugin's command line and environment, its output, an auth-provider's command and output, or
/// a token's text. kubectl redacts all of these; so do we.
fn credentials_failed(e: &kube::client::AuthError) -> String {
    use kube::client::AuthError as A;
    let why = match e {
        A::AuthExecStart(io) => format!("the exec credential plugin could not be started: {io}"),
        A::AuthExecRun { out, .. } => format!(
            "the exec credential plugin failed ({}); its output is not shown, as it may hold secrets",
            out.status
        ),
        A::AuthExecParse(_) | A::ExecPluginFailed => {
            "the exec credential plugin did not print an ExecCredential with a status".into()
        }
        A::ReadTokenFile(io, path) => {
            format!("cannot read the token file {}: {io}", path.display())
        }
        A::MissingCommand => "the exec credential plugin has no command".into(),
        A::ExecMissingClusterInfo => {
            "the exec credential plugin asks for cluster info (provideClusterInfo) that the kubeconfig lacks".into()
        }
        _ => "the credential plugin or auth provider failed; its message is not shown, as it may hold secrets".into(),
    };
    format!("cannot get credentials: {why}")
}

impl ApiError {
    pub fn from_kube(url: &str, e: kube::Error) -> ApiError {
        match e {
            kube::Error::Api(s) => {
                let message = match (s.code, s.message.is_empty()) {
                    (401, _) => "Unauthorized: the server rejected the credentials (check the token or certificate in the kubeconfig)".to_owned(),
                    // Only reached once the retry policy (retry.rs) has given up.
                    (429, _) => format!(
                        "{} (the API server kept throttling: gave up retrying)",
                        s.message
                    ),
                    (_, true) => format!("{} ({})", s.reason, s.code),
                    _ => s.message.clone(),
                };
                ApiError::Status {
                    code: s.code,
                    reason: s.reason.clone(),
                    message,
                }
            }
            kube::Error::SerdeError(e) => ApiError::Decode(e.to_string()),
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
                let cause = e.source().map(root_cause).unwrap_or_else(|| e.to_string());
                ApiError::Unreachable {
                    url: url.to_owned(),
                    cause,
                }
            }
            other => ApiError::Other(
                other
                    .source()
                    .map(root_cause)
                    .unwrap_or_else(|| other.to_string()),
            ),
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The Status reason (`AlreadyExists`, `Conflict`, ...), when the server sent one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ApiError::Status { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// Worth another try later: the server is away or overloaded, not refusing.
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Unreachable { .. })
            || self.code().is_some_and(|c| c == 429 || c >= 500)
    }
}
