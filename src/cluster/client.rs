//! A client from kubeconfig (or in-cluster config) with kubectl's selection flags.

use std::path::PathBuf;
use std::time::Duration;

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;

use crate::cluster::error::ApiError;
use crate::cluster::retry::RetryPolicy;

/// What the user typed that selects a cluster and credentials.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub request_timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
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

impl Connection {
    fn load_kubeconfig(&self) -> Result<Option<Kubeconfig>, ConfigError> {
        if let Some(path) = &self.kubeconfig {
            return Kubeconfig::read_from(path)
                .map(Some)
                .map_err(|e| kubeconfig_error(format!("{:?}", path.display().to_string()), e));
        }
        if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            return Kubeconfig::from_env().map_err(|e| {
                kubeconfig_error(format!("from KUBECONFIG={:?}", value.to_string_lossy()), e)
            });
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

    /// Resolves the flags into a client config without contacting the server.
    pub async fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match self.load_kubeconfig()? {
            Some(kc) => {
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
                Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| ConfigError::Invalid(e.to_string()))?
            }
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                Config::incluster().map_err(|e| ConfigError::InCluster(e.to_string()))?
            }
            None => return Err(ConfigError::NoConfig),
        };
        // kubectl's --request-timeout bounds each request; 0 means none.
        if let Some(t) = self.request_timeout.filter(|t| !t.is_zero()) {
            config.connect_timeout = Some(t);
            config.read_timeout = Some(t);
            config.write_timeout = Some(t);
            config.reset_reader_on_write = true;
        }
        Ok(config)
    }

    pub async fn client(&self) -> Result<(Client, String), ConfigError> {
        let mut config = self.config().await?;
        let url = config.cluster_url.to_string();
        // Our bounded policy instead of kube's (retry.rs); retrying needs a cloneable service.
        config.default_retry = false;
        let client = ClientBuilder::try_from(config)
            .map_err(|e| ConfigError::Client(ApiError::from_kube(&url, e).to_string()))?
            .with_layer(&BufferLayer::new(64))
            .with_layer(&RetryLayer::new(RetryPolicy::default()))
            .build();
        Ok((client, url))
    }
}
