//! End-to-end test fixture: a real, throwaway control plane (etcd, kube-apiserver and a
//! kube-controller-manager running only the service-cidr controller) on loopback ports, started by
//! `scripts/controlplane.sh`, plus helpers to drive it with the pinned kubectl and the plugin.
//!
//! Use it from an integration test with `mod support;`. One control plane is shared by all tests of a
//! test binary ([`ControlPlane::shared`]); tests that need a differently configured or disturbed one
//! (no controller, restarts) take a [`ControlPlane::start_dedicated`] one, stopped on drop.
//!
//! Cleanup never depends on destructors: every control plane is started with `--owner <this pid>`,
//! so a detached watchdog stops it once the test binary exits, panics included.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

mod controlplane;
pub mod faults;
pub mod hostile;
pub mod http;
mod objects;
mod output;
mod watch;
pub use controlplane::ControlPlane;
#[allow(unused_imports)]
pub use output::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/controlplane.sh");
/// The read-only ClusterRole (and its binding to the user `viewer`) applied by
/// [`ControlPlane::bind_viewer_readonly`].
pub const VIEWER_RBAC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/rbac/servicecidr-viewer.yaml"
);
/// The ClusterRole for `delete` (and its binding to the user `operator`), applied by
/// [`ControlPlane::bind_operator`].
pub const OPERATOR_RBAC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/rbac/servicecidr-operator.yaml"
);
/// The ClusterRole for `migrate run` (and its binding to the user `migrator`).
pub const MIGRATOR_RBAC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/rbac/servicecidr-migrator.yaml"
);
/// Podman's settings for this machine (runc, cgroupfs), used unless CONTAINERS_CONF is set.
pub const CONTAINERS_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/containers.conf");

/// `cmd` with CONTAINERS_CONF pointing at [`CONTAINERS_CONF`] unless the environment sets one.
pub fn with_podman_settings(cmd: &mut std::process::Command) -> &mut std::process::Command {
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        cmd.env("CONTAINERS_CONF", CONTAINERS_CONF);
    }
    cmd
}

/// The plugin binary built by cargo for this test run.
pub const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-servicecidr");
/// The completion helper (`kubectl_complete-servicecidr`) built by cargo for this test run.
pub const COMPLETER: &str = env!("CARGO_BIN_EXE_kubectl_complete-servicecidr");

/// Label keys and values the upstream IP allocator puts on IPAddress objects.
pub const LABEL_IP_FAMILY: &str = "ipaddress.kubernetes.io/ip-family";
pub const LABEL_MANAGED_BY: &str = "ipaddress.kubernetes.io/managed-by";
pub const MANAGED_BY_ALLOCATOR: &str = "ipallocator.k8s.io";
/// Finalizer the service-cidr controller puts on every ServiceCIDR.
pub const SERVICE_CIDR_FINALIZER: &str = "networking.k8s.io/service-cidr-finalizer";
/// The plugin's own finalizer, put on a range before `delete` deletes it.
pub const GUARD_FINALIZER: &str = "servicecidr.kubectl.io/release-guard";

static NAMES: AtomicU32 = AtomicU32::new(0);
static DIRS: AtomicU32 = AtomicU32::new(0);

/// A name unique within this test binary (hence within its control planes): `PREFIX-N`.
/// `prefix` must be a valid DNS label start (lowercase alphanumerics and `-`).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

/// Address number `host` of `block` (`"10.100.3.0/24"`, 5 -> `"10.100.3.5"`; IPv6 alike), in
/// canonical form. Panics if it falls outside the block.
pub fn ip_in(block: &str, host: u128) -> String {
    let net: ipnet::IpNet = block
        .parse()
        .unwrap_or_else(|e| panic!("bad CIDR {block}: {e}"));
    let ip = match net.network() {
        IpAddr::V4(a) => {
            let n = u128::from(u32::from(a)) + host;
            IpAddr::V4(Ipv4Addr::from(u32::try_from(n).expect("IPv4 overflow")))
        }
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + host)),
    };
    assert!(net.contains(&ip), "host {host} is outside {block}");
    ip.to_string()
}

/// `delete NAME --wait --remove-finalizer -o json`: retire a range, releasing it ourselves when no
/// controller does.
pub fn retire_args(name: &str) -> [&str; 6] {
    ["delete", name, "--wait", "--remove-finalizer", "-o", "json"]
}
