//! A client from kubeconfig (or in-cluster config) with kubectl's selection flags.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use tower::ServiceBuilder;
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;

use crate::cluster::error::ApiError;
use crate::cluster::exec_mark::Mark;
use crate::cluster::retry::RetryPolicy;

/// What the user typed that selects a cluster and credentials.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// The bound on each request, resolved once (`settings::request_timeout`); None: none.
    pub request_timeout: Option<Duration>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no kubeconfig found: pass --kubeconfig or set KUBECONFIG (and not running in a cluster)"
    )]
    NoConfig,
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("{what} {name:?} not found in kubeconfig (known: {known})")]
    UnknownEntry {
        what: &'static str,
        name: String,
        known: String,
    },
    #[error("invalid kubeconfig: {0}")]
    Invalid(String),
    #[error("in-cluster config: {0}")]
    InCluster(String),
    #[error("cannot build a client: {0}")]
    Client(String),
    #[error(
        "the credential plugin {command:?} of kubeconfig user {user:?} was not found (not a file, nor on PATH); install it or fix users[].user.exec.command"
    )]
    ExecPlugin { user: String, command: String },
    #[error(
        "the credential plugin of the kubeconfig gave no credentials within {0} (--request-timeout bounds it)"
    )]
    CredentialsTimeout(String),
    #[error(
        "{from} sends this cluster through the proxy {proxy}, which kubectl-servicecidr does not do yet: it refuses rather than connect around the proxy; reach the API server directly ({hint})"
    )]
    Proxy {
        proxy: String,
        from: &'static str,
        hint: &'static str,
    },
}

fn kubeconfig_error(path: String, e: KubeconfigError) -> ConfigError {
    let reason = match e {
        KubeconfigError::ReadConfig(io, _) => format!("cannot be read: {io}"),
        KubeconfigError::Parse(p) => format!("is not valid YAML: {p}"),
        other => other.to_string(),
    };
    ConfigError::Kubeconfig { path, reason }
}

fn check_entry(
    what: &'static str,
    name: &Option<String>,
    known: Vec<&str>,
) -> Result<(), ConfigError> {
    match name {
        Some(n) if !known.contains(&n.as_str()) => Err(ConfigError::UnknownEntry {
            what,
            name: n.clone(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        }),
        _ => Ok(()),
    }
}

/// How long a connection (TCP connect and TLS handshake) may take when --request-timeout is unset.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The user's exec credential plugin, if the kubeconfig names one that cannot be run: said by name
/// before anything else, as kubectl does.
fn check_exec_plugin(kc: &Kubeconfig, opts: &KubeConfigOptions) -> Result<(), ConfigError> {
    let context_name = opts.context.as_ref().or(kc.current_context.as_ref());
    let user_name = opts.user.clone().or_else(|| {
        let ctx = kc.contexts.iter().find(|c| Some(&c.name) == context_name)?;
        ctx.context.as_ref()?.user.clone()
    });
    let Some(command) = kc
        .auth_infos
        .iter()
        .find(|a| Some(&a.name) == user_name.as_ref())
        .and_then(|a| a.auth_info.as_ref()?.exec.as_ref()?.command.clone())
    else {
        return Ok(());
    };
    let found = if command.contains('/') {
        std::path::Path::new(&command).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(&command).is_file()))
    };
    if found {
        Ok(())
    } else {
        Err(ConfigError::ExecPlugin {
            user: user_name.unwrap_or_default(),
            command,
        })
    }
}

impl Connection {
    /// The bound on each request, as settings resolved it (None: none).
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }

    /// Connecting (TCP, TLS, credentials) is bounded even when requests are not.
    pub fn connect_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    fn load_kubeconfig(&self) -> Result<Option<Kubeconfig>, ConfigError> {
        if let Some(path) = &self.kubeconfig {
            return Kubeconfig::read_from(path)
                .map(Some)
                .map_err(|e| kubeconfig_error(format!("{:?}", path.display().to_string()), e));
        }
        if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            // As kubectl: files of the list that do not exist are skipped, the rest merged in
            // order (the first to set a value wins).
            let mut merged: Option<Kubeconfig> = None;
            for path in std::env::split_paths(&value).filter(|p| p.exists()) {
                let name = format!("{:?}", path.display().to_string());
                let kc =
                    Kubeconfig::read_from(&path).map_err(|e| kubeconfig_error(name.clone(), e))?;
                merged = Some(match merged {
                    Some(m) => m.merge(kc).map_err(|e| kubeconfig_error(name, e))?,
                    None => kc,
                });
            }
            return Ok(merged);
        }
        match Kubeconfig::read() {
            Ok(kc) => Ok(Some(kc)),
            Err(KubeconfigError::FindPath) => Ok(None),
            Err(KubeconfigError::ReadConfig(io, _))
                if io.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(kubeconfig_error("~/.kube/config".into(), e)),
        }
    }

    /// The contexts of the kubeconfig (merged as kubectl merges it), in its order.
    pub fn context_names(&self) -> Result<Vec<String>, ConfigError> {
        let kc = self.load_kubeconfig()?.ok_or(ConfigError::NoConfig)?;
        Ok(kc.contexts.into_iter().map(|c| c.name).collect())
    }

    /// Resolves the flags into a client config without contacting the server.
    pub async fn config(&self) -> Result<Config, ConfigError> {
        self.config_marked(&Mark::fresh()).await
    }

    /// [`Connection::config`], the exec plugins it runs marked with `mark`.
    async fn config_marked(&self, mark: &Mark) -> Result<Config, ConfigError> {
        let mut config = match self.load_kubeconfig()? {
            Some(mut kc) => {
                mark.apply(&mut kc);
                check_entry(
                    "context",
                    &self.context,
                    kc.contexts.iter().map(|c| c.name.as_str()).collect(),
                )?;
                check_entry(
                    "cluster",
                    &self.cluster,
                    kc.clusters.iter().map(|c| c.name.as_str()).collect(),
                )?;
                check_entry(
                    "user",
                    &self.user,
                    kc.auth_infos.iter().map(|c| c.name.as_str()).collect(),
                )?;
                let opts = KubeConfigOptions {
                    context: self.context.clone(),
                    cluster: self.cluster.clone(),
                    user: self.user.clone(),
                };
                check_exec_plugin(&kc, &opts)?;
                // Connecting around a proxy that kubectl would use could bypass a policy: refused.
                if let Some(proxy) = kubeconfig_proxy(&kc, &opts) {
                    return Err(ConfigError::Proxy {
                        proxy: without_userinfo(&proxy),
                        from: "the kubeconfig (proxy-url)",
                        hint: "a kubeconfig without proxy-url",
                    });
                }
                self.bounded(mark, move || {
                    futures::executor::block_on(Config::from_custom_kubeconfig(kc, &opts))
                })
                .await?
                .map_err(|e| ConfigError::Invalid(super::error::describe(&e)))?
            }
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                Config::incluster().map_err(|e| ConfigError::InCluster(e.to_string()))?
            }
            None => return Err(ConfigError::NoConfig),
        };
        // A connection (TCP and TLS) gets --request-timeout or our default; the whole of each
        // request is bounded in `Cluster::call`, and watches are not requests: no read timeout,
        // or an idle watch would be cut.
        // kube folds HTTPS_PROXY into proxy_url whatever NO_PROXY says; decided here instead.
        config.proxy_url = None;
        if let Some(proxy) = env_proxy(&config.cluster_url, |k| std::env::var(k).ok()) {
            return Err(ConfigError::Proxy {
                proxy: without_userinfo(&proxy),
                from: "the environment (HTTPS_PROXY or HTTP_PROXY)",
                hint: "add the server to NO_PROXY",
            });
        }
        config.cluster_url = without_userinfo(&config.cluster_url.to_string())
            .parse()
            .map_err(|e: http::uri::InvalidUri| ConfigError::Invalid(e.to_string()))?;
        config.connect_timeout = Some(self.connect_timeout());
        config.read_timeout = None;
        config.write_timeout = None;
        Ok(config)
    }

    /// The client, and the server's URL as it may be shown (no credentials in it).
    pub async fn client(&self) -> Result<(Client, String), ConfigError> {
        let mark = Mark::fresh();
        let config = self.config_marked(&mark).await?;
        let url = config.cluster_url.to_string();
        let client = self
            .bounded(&mark, move || build(&config))
            .await?
            .map_err(|e| ConfigError::Client(ApiError::from_kube(&url, e).to_string()))?;
        Ok((client, url))
    }

    /// Runs `work` on a thread of its own under the connection bound: kube runs an exec
    /// credential plugin synchronously while it loads a kubeconfig and builds a client (for the
    /// token, and for a client certificate it may return), and a plugin that never returns must
    /// not hold the command: when the bound passes, the plugins marked with `mark` are killed,
    /// and the thread left waiting for them ends with the process (main.rs).
    async fn bounded<T: Send + 'static>(
        &self,
        mark: &Mark,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ConfigError> {
        let bound = self.connect_timeout();
        match tokio::time::timeout(bound, tokio::task::spawn_blocking(work)).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(join)) => Err(ConfigError::Client(join.to_string())),
            Err(_) => {
                mark.kill();
                Err(ConfigError::CredentialsTimeout(
                    humantime::format_duration(bound).to_string(),
                ))
            }
        }
    }
}

/// The `proxy-url` of the kubeconfig cluster the chosen context (or `--cluster`) names.
fn kubeconfig_proxy(kc: &Kubeconfig, opts: &KubeConfigOptions) -> Option<String> {
    let context_name = opts.context.as_ref().or(kc.current_context.as_ref());
    let cluster_name = opts.cluster.clone().or_else(|| {
        let ctx = kc.contexts.iter().find(|c| Some(&c.name) == context_name)?;
        ctx.context.as_ref().map(|c| c.cluster.clone())
    })?;
    kc.clusters
        .iter()
        .find(|c| c.name == cluster_name)?
        .cluster
        .as_ref()?
        .proxy_url
        .clone()
        .filter(|p| !p.is_empty())
}

/// The proxy kubectl (Go's net/http) would send this server's requests through, from
/// `HTTPS_PROXY`/`HTTP_PROXY` and `NO_PROXY` (either case): none for localhost and loopback
/// addresses, nor for a host that a `NO_PROXY` entry names (`*`, the host, a parent domain, an IP
/// or a CIDR holding it).
fn env_proxy(server: &http::Uri, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let either = |k: &str| {
        var(k)
            .or_else(|| var(&k.to_ascii_lowercase()))
            .filter(|v| !v.is_empty())
    };
    let proxy = match server.scheme_str() {
        Some("http") => either("HTTP_PROXY"),
        _ => either("HTTPS_PROXY"),
    }?;
    let host = server
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip = host.parse::<std::net::IpAddr>().ok();
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return None;
    }
    let exempt = either("NO_PROXY").unwrap_or_default();
    let named = exempt
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| {
            let e = e.to_ascii_lowercase();
            if e == "*" {
                return true;
            }
            if let (Some(ip), Ok(net)) = (ip, e.parse::<ipnet::IpNet>()) {
                return net.contains(&ip);
            }
            let name = e
                .rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(e.as_str(), |(h, _)| h);
            let name = name.trim_start_matches('.');
            host == name || host.ends_with(&format!(".{name}"))
        });
    (!named).then_some(proxy)
}

/// A URL without the `user:password@` a kubeconfig's `server` may carry. Nothing sends it (the
/// API server takes no basic auth since 1.19, and HTTP clients put only host and port in `Host`),
/// but every library that logs a URL would print it; so it is dropped before any sees it.
pub fn without_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &url[start + at + 1..]),
        None => url.to_owned(),
    }
}

/// kube's client stack (TLS from the kubeconfig, base URI, credentials, extra headers), on a
/// connector with TCP_NODELAY: kube's own leaves Nagle's algorithm on, which held each request's
/// last segment back until the previous one was acknowledged (about 40 ms a request on loopback;
/// BENCHMARKS.md). Our bounded retry policy (retry.rs) replaces kube's; retrying needs a buffer
/// to clone the service.
fn build(config: &Config) -> kube::Result<Client> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let tls = config.rustls_https_connector_with_connector(tcp)?;
    // The connect timeout covers the TCP connect and the TLS handshake.
    let mut connector = hyper_timeout::TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(BufferLayer::new(64))
        .layer(config.base_uri_layer())
        // -v: every request (never its headers, so never a credential).
        .map_request(|req: http::Request<kube::client::Body>| {
            tracing::debug!("{} {}", req.method(), req.uri());
            req
        })
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http);
    Ok(Client::new(service, config.default_namespace.clone()))
}

#[cfg(test)]
mod tests {
    use super::without_userinfo;

    #[test]
    fn the_environment_proxy_applies_as_go_applies_it() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        let proxy = env(&[("HTTPS_PROXY", "http://p:3128")]);
        assert_eq!(
            super::env_proxy(&uri("https://api.example:6443"), proxy).as_deref(),
            Some("http://p:3128")
        );
        assert_eq!(
            super::env_proxy(&uri("https://127.0.0.1:6443"), proxy),
            None
        );
        assert_eq!(
            super::env_proxy(&uri("https://localhost:6443"), proxy),
            None
        );
        assert_eq!(
            super::env_proxy(&uri("http://api.example"), proxy),
            None,
            "http needs HTTP_PROXY"
        );
        let lower = env(&[
            ("https_proxy", "http://p:3128"),
            ("no_proxy", ".example, 10.0.0.0/8"),
        ]);
        assert_eq!(
            super::env_proxy(&uri("https://api.example:6443"), lower),
            None
        );
        assert_eq!(super::env_proxy(&uri("https://10.1.2.3:6443"), lower), None);
        assert!(super::env_proxy(&uri("https://11.1.2.3:6443"), lower).is_some());
        assert!(super::env_proxy(&uri("https://notexample:6443"), lower).is_some());
        let all = env(&[("HTTPS_PROXY", "http://p:3128"), ("NO_PROXY", "*")]);
        assert_eq!(super::env_proxy(&uri("https://api.example"), all), None);
    }

    #[test]
    fn a_password_in_a_url_is_dropped() {
        for (url, kept) in [
            (
                "https://admin:s3cret@10.0.0.1:6443/",
                "https://10.0.0.1:6443/",
            ),
            ("https://tok@host/api?x=a@b", "https://host/api?x=a@b"),
            ("https://a:b@c@host", "https://host"),
            ("https://host:6443/path@x", "https://host:6443/path@x"),
            ("https://host:6443", "https://host:6443"),
            ("user:pw@host", "host"),
        ] {
            assert_eq!(without_userinfo(url), kept, "{url}");
        }
    }
}
