//! What `doctor` reads besides the ranges: events, kube-apiserver Pods, kubeadm's ConfigMap,
//! Nodes and the server version. Each read is separate, so a refused one skips only the checks
//! that need it.

use std::net::IpAddr;
use std::time::SystemTime;

use kube::api::ListParams;
use serde_json::Value;

use super::{ApiError, Cluster, Result, request_error};
use crate::audit::doctor::{
    ApiserverPod, Calico, DEFAULT_RANGE_EVENTS, EventSeen, GATES, NodeNet, REPAIR_EVENTS, Read,
    ServerVersion, Surroundings,
};
use crate::model::Right;

/// Events kept per reason: enough to count and date them.
const EVENTS_PER_REASON: u32 = 500;

fn right(verb: &'static str, resource: &'static str, namespace: Option<&str>) -> Right {
    let r = Right::new(verb, "", resource);
    match namespace {
        Some(ns) => r.in_namespace(ns),
        None => r,
    }
}

/// A read's result, a refusal by RBAC told apart from other failures.
fn read<T>(got: Result<T>, needs: Right) -> Read<T> {
    match got {
        Ok(t) => Read::Got(t),
        Err(e) if e.api_error().and_then(ApiError::code) == Some(403) => Read::Denied(needs),
        Err(e) => Read::Failed(e.to_string()),
    }
}

fn time(v: &Value) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(v.as_str()?).ok()
}

fn event(v: &Value) -> EventSeen {
    let o = &v["involvedObject"];
    let kind = o["kind"].as_str().unwrap_or_default();
    let name = o["name"].as_str().unwrap_or_default();
    let object = match o["namespace"].as_str().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    EventSeen {
        reason: v["reason"].as_str().unwrap_or_default().to_owned(),
        object,
        count: v["count"]
            .as_u64()
            .or_else(|| v["series"]["count"].as_u64())
            .unwrap_or(1),
        last: time(&v["lastTimestamp"])
            .or_else(|| time(&v["series"]["lastObservedTime"]))
            .or_else(|| time(&v["eventTime"])),
        message: v["message"].as_str().unwrap_or_default().to_owned(),
    }
}

/// The value of `--service-cluster-ip-range` in a container's command line, either spelling.
fn range_flag(args: &[&str]) -> Option<String> {
    const FLAG: &str = "--service-cluster-ip-range";
    args.iter().enumerate().find_map(|(i, a)| {
        let rest = a.strip_prefix(FLAG)?;
        match rest.strip_prefix('=') {
            Some(v) => Some(v.to_owned()),
            None if rest.is_empty() => args.get(i + 1).map(|v| (*v).to_owned()),
            None => None,
        }
    })
}

fn apiserver(pod: &Value) -> ApiserverPod {
    let containers = pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let flag = containers.iter().find_map(|c| {
        let args: Vec<&str> = ["command", "args"]
            .iter()
            .flat_map(|k| c[k].as_array().map(Vec::as_slice).unwrap_or(&[]))
            .filter_map(Value::as_str)
            .collect();
        range_flag(&args)
    });
    ApiserverPod {
        name: pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        flag,
    }
}

fn node(v: &Value) -> NodeNet {
    let mut pod_cidrs: Vec<_> = v["spec"]["podCIDRs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .chain(std::iter::once(&v["spec"]["podCIDR"]))
        .filter_map(|c| c.as_str()?.parse().ok())
        .collect();
    pod_cidrs.sort();
    pod_cidrs.dedup();
    let addresses = v["status"]["addresses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
        .collect();
    NodeNet {
        name: v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        pod_cidrs,
        addresses,
    }
}

/// [`GATES`] from Prometheus text: `kubernetes_feature_enabled{name="X",stage="..."} 1`.
fn feature_gates(metrics: &str) -> Vec<(String, bool)> {
    let mut gates: Vec<(String, bool)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("kubernetes_feature_enabled{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once('}')?;
            let name = labels
                .split(',')
                .find_map(|kv| kv.strip_prefix("name=\""))?
                .trim_end_matches('"');
            GATES
                .contains(&name)
                .then(|| (name.to_owned(), value.trim() == "1"))
        })
        .collect();
    gates.sort_by_key(|(name, _)| GATES.iter().position(|g| g == name));
    gates
}

/// `networking.serviceSubnet` of kubeadm's ClusterConfiguration (YAML inside the ConfigMap).
fn kubeadm_subnet(cm: &Value) -> Option<String> {
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(cm["data"]["ClusterConfiguration"].as_str()?).ok()?;
    Some(config["networking"]["serviceSubnet"].as_str()?.to_owned())
}

impl Cluster {
    async fn get_json(&self, path: &str, what: &str) -> Result<Value> {
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| super::Error::Api {
                what: what.into(),
                source: ApiError::Other(e.to_string()),
            })?;
        Ok(self.call::<Value>(req, what).await?.0)
    }

    async fn list_json(
        &self,
        req: kube::core::Request,
        lp: &ListParams,
        what: &str,
    ) -> Result<Vec<Value>> {
        let req = req.list(lp).map_err(|e| request_error(what, e))?;
        let (list, _) = self.call::<Value>(req, what).await?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    async fn events_of(&self, reason: &str) -> Result<Vec<EventSeen>> {
        let lp = ListParams::default()
            .fields(&format!("reason={reason}"))
            .limit(EVENTS_PER_REASON);
        let items = self
            .list_json(
                kube::core::Request::new("/api/v1/events"),
                &lp,
                &format!("list events with reason {reason}"),
            )
            .await?;
        Ok(items.iter().map(event).collect())
    }

    async fn events(&self) -> Result<Vec<EventSeen>> {
        let lists = futures::future::try_join_all(
            DEFAULT_RANGE_EVENTS
                .iter()
                .chain(&REPAIR_EVENTS)
                .map(|r| self.events_of(r)),
        )
        .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    async fn apiserver_pods(&self) -> Result<Vec<ApiserverPod>> {
        let lp = ListParams::default().labels("component=kube-apiserver");
        let items = self
            .list_json(
                kube::core::Request::new("/api/v1/namespaces/kube-system/pods"),
                &lp,
                "list kube-apiserver pods in kube-system",
            )
            .await?;
        Ok(items.iter().map(apiserver).collect())
    }

    async fn kubeadm_config(&self) -> Result<Option<String>> {
        let what = "get configmap kube-system/kubeadm-config";
        match self
            .get_json(
                "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
                what,
            )
            .await
        {
            Ok(cm) => Ok(kubeadm_subnet(&cm)),
            Err(e) if e.api_error().is_some_and(ApiError::is_not_found) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn nodes(&self) -> Result<Vec<NodeNet>> {
        let items = self
            .list_json(
                kube::core::Request::new("/api/v1/nodes"),
                &ListParams::default(),
                "list nodes",
            )
            .await?;
        Ok(items.iter().map(node).collect())
    }

    async fn server_version(&self) -> Result<ServerVersion> {
        let v = self.get_json("/version", "get the server version").await?;
        let number = |k: &str| {
            v[k].as_str()
                .map(|s| s.trim_end_matches('+'))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        Ok(ServerVersion {
            major: number("major"),
            minor: number("minor"),
            git: v["gitVersion"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Calico's `default` BGPConfiguration and IPPools; None when the cluster has no Calico API.
    async fn calico(&self) -> Result<Option<Calico>> {
        const API: &str = "/apis/crd.projectcalico.org/v1";
        match self
            .get_json(API, "discover the crd.projectcalico.org API")
            .await
        {
            Err(e) if e.api_error().is_some_and(ApiError::is_not_found) => return Ok(None),
            other => other?,
        };
        let advertised = match self
            .get_json(
                &format!("{API}/bgpconfigurations/default"),
                "get bgpconfiguration default",
            )
            .await
        {
            Ok(bgp) => bgp["spec"]["serviceClusterIPs"].as_array().map(|list| {
                list.iter()
                    .filter_map(|c| c["cidr"].as_str()?.parse().ok())
                    .collect()
            }),
            Err(e) if e.api_error().is_some_and(ApiError::is_not_found) => None,
            Err(e) => return Err(e),
        };
        let pools = self
            .list_json(
                kube::core::Request::new(format!("{API}/ippools")),
                &ListParams::default(),
                "list ippools",
            )
            .await?
            .iter()
            .filter_map(|p| {
                let name = p["metadata"]["name"].as_str()?.to_owned();
                Some((name, p["spec"]["cidr"].as_str()?.parse().ok()?))
            })
            .collect();
        Ok(Some(Calico { advertised, pools }))
    }

    /// The allocator's feature gates as kube-apiserver's `/metrics` reports them.
    async fn gates(&self) -> Result<Vec<(String, bool)>> {
        let what = "get the apiserver's /metrics";
        let req = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| super::Error::Api {
                what: what.into(),
                source: ApiError::Other(e.to_string()),
            })?;
        let (body, _) = self.call_raw(req, what).await?;
        Ok(feature_gates(&String::from_utf8_lossy(&body)))
    }

    /// Every read `doctor` makes besides the ranges, at once.
    pub async fn surroundings(&self) -> Result<Surroundings> {
        let served = self.version().await?;
        let (events, apiservers, kubeadm, nodes, version, calico, gates) = tokio::join!(
            self.events(),
            self.apiserver_pods(),
            self.kubeadm_config(),
            self.nodes(),
            self.server_version(),
            self.calico(),
            self.gates(),
        );
        Ok(Surroundings {
            events: read(events, right("list", "events", None)),
            apiservers: read(apiservers, right("list", "pods", Some("kube-system"))),
            kubeadm_subnet: read(kubeadm, right("get", "configmaps", Some("kube-system"))),
            nodes: read(nodes, right("list", "nodes", None)),
            version: read(version, right("get", "/version", None)),
            served,
            calico: read(calico, right("list", "ippools and bgpconfigurations", None)),
            gates: read(gates, right("get", "/metrics", None)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_gates_from_metrics_text() {
        let text = "# HELP kubernetes_feature_enabled ...\n\
            kubernetes_feature_enabled{name=\"AllAlpha\",stage=\"ALPHA\"} 0\n\
            kubernetes_feature_enabled{name=\"DisableAllocatorDualWrite\",stage=\"BETA\"} 0\n\
            kubernetes_feature_enabled{name=\"MultiCIDRServiceAllocator\",stage=\"\"} 1\n";
        assert_eq!(
            feature_gates(text),
            [
                ("MultiCIDRServiceAllocator".to_owned(), true),
                ("DisableAllocatorDualWrite".to_owned(), false)
            ]
        );
    }

    #[test]
    fn the_range_flag_in_either_spelling() {
        assert_eq!(
            range_flag(&["kube-apiserver", "--service-cluster-ip-range=10.96.0.0/12"]),
            Some("10.96.0.0/12".into())
        );
        assert_eq!(
            range_flag(&["--service-cluster-ip-range", "10.96.0.0/12,fd00::/108"]),
            Some("10.96.0.0/12,fd00::/108".into())
        );
        assert_eq!(range_flag(&["--service-cluster-ip-range-x=1"]), None);
        assert_eq!(range_flag(&["--secure-port=6443"]), None);
    }
}
