//! Plain types for what the plugin reads from a cluster: ranges, IP allocations and Service IPs.
//!
//! No kube type crosses this edge: `cluster` converts into these, `audit` reasons over them.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::IpNet;
use serde::Serialize;

/// The finalizer the service-cidr controller puts on every ServiceCIDR.
pub const SERVICE_CIDR_FINALIZER: &str = "networking.k8s.io/service-cidr-finalizer";
/// The plugin's own finalizer. `delete` puts it on a range before deleting it, so the range stays
/// until the plugin's final check under its strict rule, whatever the controller decides.
pub const GUARD_FINALIZER: &str = "servicecidr.kubectl.io/release-guard";
/// The field manager of the service-cidr controller's status writes.
pub const CONTROLLER_MANAGER: &str = "service-cidr-controller";
/// The `managed-by` label value of IPAddresses made by the apiserver's allocator.
pub const ALLOCATOR_MANAGER: &str = "ipallocator.k8s.io";
/// The ServiceCIDR kube-apiserver creates from `--service-cluster-ip-range`.
pub const DEFAULT_SERVICE_CIDR: &str = "kubernetes";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Family {
    IPv4,
    IPv6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::IPv4,
            IpAddr::V6(_) => Family::IPv6,
        }
    }

    pub fn of_net(net: &IpNet) -> Family {
        Family::of(net.addr())
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::IPv4 => "IPv4",
            Family::IPv6 => "IPv6",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// The `Ready` condition the service-cidr controller writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyCondition {
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    /// lastTransitionTime.
    pub since: Option<SystemTime>,
    /// The service-cidr controller is among the managers of the object's status.
    pub by_controller: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCidr {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub cidrs: Vec<IpNet>,
    pub created: Option<SystemTime>,
    pub deleting: Option<SystemTime>,
    pub finalizers: Vec<String>,
    pub ready: Option<ReadyCondition>,
}

impl ServiceCidr {
    pub fn is_terminating(&self) -> bool {
        self.deleting.is_some()
    }

    /// Mirrors the allocator: no deletionTimestamp, and Ready True or not written yet. Ready=Unknown
    /// (or False) keeps the allocator away from the range.
    pub fn is_usable(&self) -> bool {
        !self.is_terminating()
            && self
                .ready
                .as_ref()
                .is_none_or(|c| c.status == ConditionStatus::True)
    }

    pub fn has_controller_finalizer(&self) -> bool {
        self.finalizers.iter().any(|f| f == SERVICE_CIDR_FINALIZER)
    }

    pub fn has_guard(&self) -> bool {
        self.finalizers.iter().any(|f| f == GUARD_FINALIZER)
    }
}

/// `spec.parentRef` of an IPAddress.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ParentRef {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ParentRef {
    /// The allocator writes `{group: "", resource: "services"}`.
    pub fn is_service(&self) -> bool {
        self.group.is_empty() && self.resource == "services"
    }
}

impl fmt::Display for ParentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // kubectl's PARENTREF column: resource/namespace/name
        write!(f, "{}/{}/{}", self.resource, self.namespace, self.name)
    }
}

/// An IPAddress object: one allocated IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAllocation {
    pub ip: IpAddr,
    pub parent: Option<ParentRef>,
    pub managed: bool,
    pub created: Option<SystemTime>,
}

/// The ClusterIPs one Service holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIps {
    pub namespace: String,
    pub name: String,
    pub cluster_ips: Vec<IpAddr>,
    pub created: Option<SystemTime>,
}

/// `--dry-run`: decided once from the command line, carried to every decision and result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    None,
    Client,
    Server,
}

impl DryRun {
    pub const ALL: [DryRun; 3] = [DryRun::None, DryRun::Client, DryRun::Server];

    pub fn name(self) -> &'static str {
        match self {
            DryRun::None => "none",
            DryRun::Client => "client",
            DryRun::Server => "server",
        }
    }
}

/// A verb on a resource (of an API group), in one namespace or any, on one object or any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Right {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Used when allowed, done without otherwise (a warning's reads): not asked for beforehand.
    pub optional: bool,
}

impl Right {
    pub fn new(verb: &'static str, group: &'static str, resource: &'static str) -> Right {
        Right {
            verb,
            group,
            resource,
            namespace: None,
            name: None,
            optional: false,
        }
    }

    pub fn optional(mut self) -> Right {
        self.optional = true;
        self
    }

    pub fn in_namespace(mut self, namespace: &str) -> Right {
        self.namespace = Some(namespace.to_owned());
        self
    }

    pub fn named(mut self, name: &str) -> Right {
        self.name = Some(name.to_owned());
        self
    }
}

/// How a Service is exposed (`spec.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

/// What renumbering needs to know of one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFacts {
    pub namespace: String,
    pub name: String,
    pub service_type: ServiceType,
    /// `clusterIP: None`.
    pub headless: bool,
    pub cluster_ips: Vec<IpAddr>,
    /// The manager that set the ClusterIP (its managedFields entry owns `spec.clusterIP` or
    /// `spec.clusterIPs`), as for kube-dns; the allocator's choices are owned by nobody.
    pub pinned_by: Option<String>,
    /// `ownerReferences` as `Kind/name`.
    pub owners: Vec<String>,
    pub node_ports: Vec<i32>,
    /// Its deletion has begun (a deletionTimestamp): its owner is removing it.
    pub terminating: bool,
    /// Known only from the migration journal: a run deleted it and did not recreate it.
    pub missing: bool,
}

impl ServiceFacts {
    pub fn pinned(&self) -> bool {
        self.pinned_by.is_some()
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A Node's addresses that a Service range must not overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNets {
    pub name: String,
    pub internal_ips: Vec<IpAddr>,
    pub pod_cidrs: Vec<IpNet>,
}

/// Everything one audit needs, read at about the same time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub ranges: Vec<ServiceCidr>,
    pub ips: Vec<IpAllocation>,
    pub services: Vec<ServiceIps>,
}

/// Why a name cannot be a ServiceCIDR's: Kubernetes names cluster-scoped objects like these with
/// DNS subdomains (RFC 1123): at most 253 characters of lower-case letters, digits, '-' and '.',
/// starting and ending with a letter or digit.
pub fn invalid_name(name: &str) -> Option<&'static str> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if name.is_empty() {
        Some("a name must not be empty")
    } else if name.len() > 253 {
        Some("a name must be at most 253 characters")
    } else if !name.chars().all(|c| alnum(c) || c == '-' || c == '.') {
        Some("a name may hold only lower-case letters, digits, '-' and '.'")
    } else if name
        .split('.')
        .any(|label| !label.starts_with(alnum) || !label.ends_with(alnum))
    {
        Some("each dot-separated part of a name must start and end with a letter or digit")
    } else {
        None
    }
}

/// Why a name cannot be a namespace's or a Service's: DNS labels (RFC 1123), at most 63
/// characters of lower-case letters, digits and '-', starting and ending with a letter or digit.
pub fn invalid_label(name: &str) -> Option<&'static str> {
    if name.len() > 63 {
        Some("a name must be at most 63 characters")
    } else if name.contains('.') {
        Some("a name may hold only lower-case letters, digits and '-'")
    } else {
        invalid_name(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0:?} is not an IP address")]
    NotAnIp(String),
    #[error("{input:?} is not in canonical form (expected {canonical:?})")]
    NotCanonical { input: String, canonical: String },
    #[error("{0:?} is not a CIDR (expected e.g. 10.96.0.0/16 or fd00::/108)")]
    NotACidr(String),
    #[error("{input:?} has host bits set (the network is {network})")]
    HostBits { input: String, network: IpNet },
}

/// Parses an IPAddress object name: an IP in canonical form (IPv6 per RFC 5952).
pub fn parse_ip_name(name: &str) -> Result<IpAddr, ParseError> {
    let ip: IpAddr = name
        .parse()
        .map_err(|_| ParseError::NotAnIp(name.to_owned()))?;
    let canonical = ip.to_string();
    if canonical != name {
        return Err(ParseError::NotCanonical {
            input: name.to_owned(),
            canonical,
        });
    }
    Ok(ip)
}

/// Parses a CIDR as the ServiceCIDR API accepts it: canonical, no host bits.
pub fn parse_cidr(input: &str) -> Result<IpNet, ParseError> {
    let net: IpNet = input
        .parse()
        .map_err(|_| ParseError::NotACidr(input.to_owned()))?;
    if net.trunc() != net {
        return Err(ParseError::HostBits {
            input: input.to_owned(),
            network: net.trunc(),
        });
    }
    let canonical = net.to_string();
    if canonical != input {
        return Err(ParseError::NotCanonical {
            input: input.to_owned(),
            canonical,
        });
    }
    Ok(net)
}

/// What `explain` explains.
#[derive(Debug, Clone)]
pub enum Subject {
    Ip(std::net::IpAddr),
    Range(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ip_names_must_be_canonical() {
        assert_eq!(
            parse_ip_name("10.96.0.1").unwrap(),
            "10.96.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_ip_name("2001:db8::1").unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert!(matches!(
            parse_ip_name("2001:DB8:0::1"),
            Err(ParseError::NotCanonical { .. })
        ));
        assert!(matches!(
            parse_ip_name("010.96.0.1"),
            Err(ParseError::NotAnIp(_))
        ));
        assert!(matches!(parse_ip_name("blue"), Err(ParseError::NotAnIp(_))));
    }

    #[test]
    fn cidrs_must_have_no_host_bits() {
        assert_eq!(
            parse_cidr("10.96.0.0/16").unwrap().to_string(),
            "10.96.0.0/16"
        );
        assert_eq!(
            parse_cidr("10.96.0.1/16"),
            Err(ParseError::HostBits {
                input: "10.96.0.1/16".into(),
                network: "10.96.0.0/16".parse().unwrap()
            })
        );
        assert!(matches!(
            parse_cidr("fd00:0::/64"),
            Err(ParseError::NotCanonical { .. })
        ));
        assert!(matches!(
            parse_cidr("10.96.0.0/33"),
            Err(ParseError::NotACidr(_))
        ));
        assert!(matches!(
            parse_cidr("10.96.0.0"),
            Err(ParseError::NotACidr(_))
        ));
    }

    #[test]
    fn usable_means_not_terminating_and_ready_true_or_unset() {
        let mut r = ServiceCidr {
            name: "a".into(),
            uid: "u".into(),
            resource_version: "1".into(),
            cidrs: vec![],
            created: None,
            deleting: None,
            finalizers: vec![],
            ready: None,
        };
        assert!(r.is_usable());
        r.ready = Some(ReadyCondition {
            status: ConditionStatus::False,
            reason: "Terminating".into(),
            message: String::new(),
            since: None,
            by_controller: true,
        });
        assert!(!r.is_usable());
        r.ready.as_mut().unwrap().status = ConditionStatus::Unknown;
        assert!(!r.is_usable());
        r.ready.as_mut().unwrap().status = ConditionStatus::True;
        assert!(r.is_usable());
        r.deleting = Some(SystemTime::UNIX_EPOCH);
        assert!(!r.is_usable());
    }

    #[test]
    fn names_follow_the_rules_for_dns_subdomains() {
        for ok in ["blue", "kubernetes", "a.b-c", "0", &"a".repeat(253)] {
            assert_eq!(invalid_name(ok), None, "{ok}");
        }
        for bad in [
            "",
            "blue/status",
            "Blue",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a_b",
            &"a".repeat(254),
        ] {
            assert!(invalid_name(bad).is_some(), "{bad}");
        }
    }

    proptest! {
        // Whatever text arrives from the cluster, parsing never panics and round-trips.
        #[test]
        fn parse_ip_name_round_trips_or_errs(s in "\\PC{0,45}") {
            if let Ok(ip) = parse_ip_name(&s) {
                prop_assert_eq!(ip.to_string(), s);
            }
        }

        #[test]
        fn parse_cidr_round_trips_or_errs(s in "[0-9a-fA-F:./]{0,48}") {
            if let Ok(net) = parse_cidr(&s) {
                prop_assert_eq!(net.to_string(), s);
                prop_assert_eq!(net.trunc(), net);
            }
        }

        #[test]
        fn every_ip_parses_from_its_display(ip in any::<IpAddr>()) {
            prop_assert_eq!(parse_ip_name(&ip.to_string()), Ok(ip));
        }
    }
}
