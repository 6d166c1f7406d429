//! The JSON shapes read from the API, only the fields the plugin uses, and their conversion into
//! the model. networking.k8s.io v1 and v1beta1 share these shapes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::model::{
    ALLOCATOR_MANAGER, CONTROLLER_MANAGER, ConditionStatus, IpAllocation, NodeNets, ParentRef,
    ReadyCondition, ServiceCidr, ServiceFacts, ServiceIps, ServiceType, parse_cidr, parse_ip_name,
};

/// A complete part of the list page: JSON bytes, or a protobuf message.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    Metadata(&'a [u8]),
    Item(&'a [u8]),
}

pub const MANAGED_BY_LABEL: &str = "ipaddress.kubernetes.io/managed-by";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub resource_version: String,
    pub creation_timestamp: Option<Stamp>,
    pub deletion_timestamp: Option<Stamp>,
    #[serde(default)]
    pub finalizers: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub managed_fields: Vec<ManagedFields>,
}

/// A time as the answer gave it: RFC 3339 text in JSON, whole seconds since 1970 in protobuf.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum Stamp {
    Text(String),
    Seconds(i64),
}

impl From<String> for Stamp {
    fn from(s: String) -> Self {
        Stamp::Text(s)
    }
}

/// Only who wrote, and to which subresource; the field sets are not needed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ManagedFields {
    #[serde(default)]
    pub manager: String,
    #[serde(default)]
    pub subresource: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    #[serde(default)]
    pub resource_version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(rename = "lastTransitionTime")]
    pub last_transition_time: Option<Stamp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceCidrSpec {
    #[serde(default)]
    pub cidrs: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceCidrStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireServiceCidr {
    pub metadata: Meta,
    #[serde(default)]
    pub spec: ServiceCidrSpec,
    #[serde(default)]
    pub status: ServiceCidrStatus,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireParentRef {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddressSpec {
    pub parent_ref: Option<WireParentRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireIpAddress {
    pub metadata: Meta,
    #[serde(default)]
    pub spec: IpAddressSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs", default)]
    pub cluster_ips: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireService {
    pub metadata: Meta,
    #[serde(default)]
    pub spec: ServiceSpec,
}

/// A field of one object that does not parse into the model.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name:?}: {field}: {reason}")]
pub struct InvalidObject {
    pub kind: &'static str,
    pub name: String,
    pub field: &'static str,
    pub reason: String,
}

fn time(
    kind: &'static str,
    name: &str,
    field: &'static str,
    t: &Option<Stamp>,
) -> Result<Option<SystemTime>, InvalidObject> {
    let invalid = |reason: String| InvalidObject {
        kind,
        name: name.into(),
        field,
        reason,
    };
    t.as_ref()
        .map(|t| match t {
            Stamp::Text(s) => humantime::parse_rfc3339(s).map_err(|e| invalid(e.to_string())),
            Stamp::Seconds(s) => u64::try_from(*s)
                .ok()
                .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
                .ok_or_else(|| invalid(format!("{s} seconds since 1970 is not a time"))),
        })
        .transpose()
}

impl WireServiceCidr {
    pub fn into_model(self) -> Result<ServiceCidr, InvalidObject> {
        const KIND: &str = "servicecidr";
        let m = self.metadata;
        let cidrs = self
            .spec
            .cidrs
            .iter()
            .map(|c| parse_cidr(c))
            .collect::<Result<_, _>>()
            .map_err(|e| InvalidObject {
                kind: KIND,
                name: m.name.clone(),
                field: "spec.cidrs",
                reason: e.to_string(),
            })?;
        let by_controller = m
            .managed_fields
            .iter()
            .any(|f| f.manager == CONTROLLER_MANAGER && f.subresource == "status");
        let ready = self
            .status
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| {
                Ok::<_, InvalidObject>(ReadyCondition {
                    status: match c.status.as_str() {
                        "True" => ConditionStatus::True,
                        "False" => ConditionStatus::False,
                        _ => ConditionStatus::Unknown,
                    },
                    since: time(
                        KIND,
                        &m.name,
                        "status.conditions.lastTransitionTime",
                        &c.last_transition_time,
                    )?,
                    reason: c.reason,
                    message: c.message,
                    by_controller,
                })
            })
            .transpose()?;
        Ok(ServiceCidr {
            created: time(
                KIND,
                &m.name,
                "metadata.creationTimestamp",
                &m.creation_timestamp,
            )?,
            deleting: time(
                KIND,
                &m.name,
                "metadata.deletionTimestamp",
                &m.deletion_timestamp,
            )?,
            name: m.name,
            uid: m.uid,
            resource_version: m.resource_version,
            cidrs,
            finalizers: m.finalizers,
            ready,
        })
    }
}

impl WireIpAddress {
    pub fn into_model(self) -> Result<IpAllocation, InvalidObject> {
        const KIND: &str = "ipaddress";
        let m = self.metadata;
        let ip = parse_ip_name(&m.name).map_err(|e| InvalidObject {
            kind: KIND,
            name: m.name.clone(),
            field: "metadata.name",
            reason: e.to_string(),
        })?;
        Ok(IpAllocation {
            ip,
            parent: self.spec.parent_ref.map(|p| ParentRef {
                group: p.group,
                resource: p.resource,
                namespace: p.namespace,
                name: p.name,
            }),
            managed: m
                .labels
                .get(MANAGED_BY_LABEL)
                .is_some_and(|v| v == ALLOCATOR_MANAGER),
            created: time(
                KIND,
                &m.name,
                "metadata.creationTimestamp",
                &m.creation_timestamp,
            )?,
        })
    }
}

impl WireService {
    pub fn into_model(self) -> Result<ServiceIps, InvalidObject> {
        const KIND: &str = "service";
        let m = self.metadata;
        let name = format!("{}/{}", m.namespace, m.name);
        // clusterIPs supersedes clusterIP; "None" marks a headless Service, "" an ExternalName one.
        let raw = if self.spec.cluster_ips.is_empty() {
            self.spec.cluster_ip.into_iter().collect()
        } else {
            self.spec.cluster_ips
        };
        let cluster_ips = raw
            .iter()
            .filter(|s| !s.is_empty() && *s != "None")
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::net::AddrParseError| InvalidObject {
                kind: KIND,
                name: name.clone(),
                field: "spec.clusterIPs",
                reason: e.to_string(),
            })?;
        Ok(ServiceIps {
            created: time(
                KIND,
                &name,
                "metadata.creationTimestamp",
                &m.creation_timestamp,
            )?,
            namespace: m.namespace,
            name: m.name,
            cluster_ips,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn converts_a_terminating_service_cidr() {
        let w: WireServiceCidr = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "blue", "uid": "u1", "resourceVersion": "42",
                         "creationTimestamp": "2026-11-24T10:00:00Z", "deletionTimestamp": "2026-11-24T10:05:00Z",
                         "finalizers": ["networking.k8s.io/service-cidr-finalizer"]},
            "spec": {"cidrs": ["10.1.0.0/24", "fd00:1::/112"]},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Terminating",
                "message": "There are still IPAddresses referencing the ServiceCIDR, please remove them or create a new ServiceCIDR",
                "lastTransitionTime": "2026-11-24T10:05:00Z"}]}
        }))
        .unwrap();
        let r = w.into_model().unwrap();
        assert_eq!(r.cidrs.len(), 2);
        assert!(!r.ready.as_ref().unwrap().by_controller);
        assert_eq!(
            r.ready.as_ref().unwrap().since,
            Some(humantime::parse_rfc3339("2026-11-24T10:05:00Z").unwrap())
        );
        assert!(r.is_terminating() && !r.is_usable() && r.has_controller_finalizer());
        assert_eq!(r.ready.unwrap().reason, "Terminating");
    }

    #[test]
    fn converts_an_ip_address_and_rejects_a_bad_name() {
        let ok: WireIpAddress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "10.96.0.10", "labels": {"ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}},
            "spec": {"parentRef": {"resource": "services", "namespace": "kube-system", "name": "kube-dns"}}
        }))
        .unwrap();
        let a = ok.into_model().unwrap();
        assert!(a.managed && a.parent.unwrap().is_service());
        let bad: WireIpAddress =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "2001:DB8::1"}}))
                .unwrap();
        assert_eq!(
            bad.into_model().unwrap_err().to_string(),
            "ipaddress \"2001:DB8::1\": metadata.name: \"2001:DB8::1\" is not in canonical form (expected \"2001:db8::1\")"
        );
    }

    #[test]
    fn a_headless_service_holds_no_ip() {
        let w: WireService = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "a"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}
        }))
        .unwrap();
        assert!(w.into_model().unwrap().cluster_ips.is_empty());
    }

    /// Text that is sometimes a valid IP, CIDR or timestamp and often nearly one.
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            "(10|192|fd00|2001:db8)[.:][0-9a-fA-F.:]{0,14}(/[0-9]{1,3})?",
            "20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?",
            "\\PC{0,20}",
        ]
    }

    fn object() -> impl Strategy<Value = serde_json::Value> {
        let texts = || proptest::collection::vec(field(), 0..4);
        (field(), texts(), texts(), field(), field(), any::<bool>()).prop_map(
            |(name, cidrs, ips, created, deleted, managed)| {
                serde_json::json!({
                    "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created,
                        "deletionTimestamp": deleted,
                        "labels": if managed { serde_json::json!({MANAGED_BY_LABEL: crate::model::ALLOCATOR_MANAGER}) } else { serde_json::json!({}) }},
                    "spec": {"cidrs": cidrs, "clusterIP": ips.first(), "clusterIPs": ips,
                        "parentRef": {"resource": "services", "namespace": "ns", "name": "svc"}},
                    "status": {"conditions": [{"type": "Ready", "status": "False"}]}
                })
            },
        )
    }

    proptest::proptest! {
        // What the server sends is refused field by field or converted, never a panic, and every
        // accepted range is canonical. `cargo fuzz` (fuzz/) explores the same by coverage.
        #[test]
        fn any_object_converts_or_is_refused(o in object()) {
            if let Ok(r) = serde_json::from_value::<WireServiceCidr>(o.clone()).unwrap().into_model() {
                prop_assert!(r.cidrs.iter().all(|c| c.trunc() == *c));
            }
            let _ = serde_json::from_value::<WireIpAddress>(o.clone()).unwrap().into_model();
            let _ = serde_json::from_value::<WireService>(o).unwrap().into_model();
        }
    }
}

/// What `migrate` reads of a Service beyond its ClusterIPs. The object itself is kept whole as
/// JSON, because a Service is recreated from it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceExtra {
    #[serde(default)]
    metadata: ExtraMeta,
    #[serde(default)]
    spec: ExtraSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtraMeta {
    deletion_timestamp: Option<String>,
    #[serde(default)]
    owner_references: Vec<OwnerRef>,
    #[serde(default)]
    managed_fields: Vec<FieldsEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct OwnerRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct FieldsEntry {
    #[serde(default)]
    manager: String,
    #[serde(rename = "fieldsV1")]
    fields: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtraSpec {
    #[serde(rename = "type")]
    type_: Option<String>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(default)]
    ports: Vec<ExtraPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtraPort {
    node_port: Option<i32>,
}

/// The facts of a whole Service object.
pub fn service_facts(object: &serde_json::Value) -> Result<ServiceFacts, InvalidObject> {
    let ips: WireService =
        serde_json::from_value(object.clone()).map_err(|e| bad_service(object, e))?;
    let extra: ServiceExtra =
        serde_json::from_value(object.clone()).map_err(|e| bad_service(object, e))?;
    let ips = ips.into_model()?;
    let service_type = match extra.spec.type_.as_deref() {
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        _ => ServiceType::ClusterIP,
    };
    // The allocator's choice is written by the registry after field ownership is worked out, so
    // only a manager that sent a ClusterIP owns the field. `migrate` sends one for every Service
    // it recreates, under its own name for those the allocator had chosen: not a pin.
    let pinned_by = extra
        .metadata
        .managed_fields
        .iter()
        .find(|m| {
            m.manager != crate::cluster::FIELD_MANAGER
                && m.fields
                    .as_ref()
                    .and_then(|f| f.get("f:spec"))
                    .is_some_and(|spec| {
                        spec.get("f:clusterIP").is_some() || spec.get("f:clusterIPs").is_some()
                    })
        })
        .map(|m| m.manager.clone());
    Ok(ServiceFacts {
        namespace: ips.namespace,
        name: ips.name,
        service_type,
        headless: extra.spec.cluster_ip.as_deref() == Some("None"),
        cluster_ips: ips.cluster_ips,
        pinned_by,
        owners: extra
            .metadata
            .owner_references
            .into_iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect(),
        node_ports: extra
            .spec
            .ports
            .iter()
            .filter_map(|p| p.node_port)
            .collect(),
        terminating: extra.metadata.deletion_timestamp.is_some(),
        missing: false,
    })
}

fn bad_service(object: &serde_json::Value, e: serde_json::Error) -> InvalidObject {
    let meta = &object["metadata"];
    InvalidObject {
        kind: "service",
        name: format!(
            "{}/{}",
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default()
        ),
        field: "spec",
        reason: e.to_string(),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireNode {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(default)]
    pub status: NodeStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(rename = "podCIDRs", default)]
    pub pod_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeStatus {
    #[serde(default)]
    pub addresses: Vec<NodeAddress>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeAddress {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub address: String,
}

impl WireNode {
    /// Addresses that do not parse are left out: they only feed warnings.
    pub fn into_model(self) -> Result<NodeNets, InvalidObject> {
        Ok(NodeNets {
            name: self.metadata.name,
            internal_ips: self
                .status
                .addresses
                .iter()
                .filter(|a| a.type_ == "InternalIP")
                .filter_map(|a| a.address.parse().ok())
                .collect(),
            pod_cidrs: self
                .spec
                .pod_cidrs
                .iter()
                .filter_map(|c| c.parse::<ipnet::IpNet>().ok().map(|n| n.trunc()))
                .collect(),
        })
    }
}
