//! The plugin against other Kubernetes versions than the pinned 1.37: real 1.33 (the first with
//! networking.k8s.io/v1) and 1.34 control planes, and a server that serves ServiceCIDRs and
//! IPAddresses at networking.k8s.io/v1beta1 only, as a 1.31-1.32 cluster does. Every other suite
//! runs against 1.37; this one runs the smoke path of `status`, `orphans` and `delete` on each, and
//! pins the behaviour the plugin depends on.
//!
//! No single kube-apiserver of a version the Go module proxy serves (1.33+) can serve v1beta1 alone
//! and still allocate: its allocator, repair loop and controllers use v1, and 1.34 emulates 1.31 at
//! the oldest. So the v1beta1-only server is a second kube-apiserver of the same 1.34 control plane,
//! emulating 1.32 (`--emulated-version=1.32`), on the same etcd: it serves the two resources at
//! v1beta1 only, while the first apiserver allocates and the controller releases, as in a cluster.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{ControlPlane, SERVICE_CIDR_FINALIZER, code, ip_in, json_of, stderr_of, unique_name};

/// What the service-cidr controller writes on a terminating range that still holds IPs (1.33,
/// 1.34 and 1.37 alike, `pkg/controller/servicecidrs`).
const TERMINATING_MESSAGE: &str = "There are still IPAddresses referencing the ServiceCIDR, please remove them or create a new ServiceCIDR";

fn range<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["serviceCIDRs"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {status}"))
}

/// status, orphans and delete (refused, then done) through `kubeconfig`, on a control plane
/// whose first apiserver allocates. Returns the plugin's `-v` log of one status run.
fn smoke(cp: &ControlPlane, kubeconfig: &std::path::Path) -> String {
    let plugin = |args: &[&str]| cp.plugin_via(kubeconfig, args);
    let block = cp.next_v4_block();
    let name = unique_name("smoke");
    cp.create_ready_service_cidr(&name, &[&block]);
    cp.ensure_namespace("smoke");
    let svc = unique_name("svc");
    let ip = ip_in(&block, 7);
    cp.create_service("smoke", &svc, Some(&ip));

    let logged = plugin(&["status", "-o", "json", "-v"]);
    let status = json_of(&logged);
    let r = range(&status, &name);
    assert_eq!(r["state"], "Ready");
    assert_eq!(r["cidrs"][0]["allocated"], 1);
    assert_eq!(r["cidrs"][0]["capacity"], 254);
    assert_eq!(r["ready"]["message"], "Kubernetes Service CIDR is ready");
    let finalizers = r["finalizers"].as_array().unwrap();
    assert!(
        finalizers.iter().any(|f| f == SERVICE_CIDR_FINALIZER),
        "{r}"
    );

    let orphans = plugin(&["orphans", "-o", "json"]);
    assert_eq!(code(&orphans), 0, "{}", stderr_of(&orphans));

    // The one IP is only inside the range: refused, and nothing changes.
    let refused = plugin(&["delete", &name, "-o", "json"]);
    assert_eq!(code(&refused), 3, "{}", stderr_of(&refused));
    let doc = json_of(&refused);
    assert_eq!(doc["results"][0]["outcome"], "Refused");
    assert_eq!(doc["results"][0]["blockingIPAddresses"][0]["ip"], ip);
    assert!(
        cp.get(&format!("servicecidr/{name}")).unwrap()["metadata"]["deletionTimestamp"].is_null()
    );

    // Without the Service the range goes, released by the controller after the grace period.
    cp.delete_in("smoke", "service", &svc);
    cp.wait_for(&format!("ipaddress/{ip}"), Duration::from_secs(30), |o| {
        o.is_none()
    });
    let started = Instant::now();
    let done = plugin(&["delete", &name, "-o", "json", "-v"]);
    let doc = json_of(&done);
    assert_eq!(
        doc["results"][0]["outcome"],
        "Deleted",
        "{}",
        stderr_of(&done)
    );
    assert_eq!(doc["results"][0]["releasedBy"], "controller");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "gone before the grace period"
    );
    assert!(cp.get(&format!("servicecidr/{name}")).is_none());
    // Both runs' request lines: the reads, and the delete's patch, delete and watch.
    format!("{}{}", stderr_of(&logged), stderr_of(&done))
}

/// The controller's Terminating condition, as the plugin reads it, on a range deleted with an IP
/// still inside.
fn pin_terminating_condition(cp: &ControlPlane) {
    let block = cp.next_v4_block();
    let name = unique_name("held");
    cp.create_ready_service_cidr(&name, &[&block]);
    cp.ensure_namespace("smoke");
    let svc = unique_name("svc");
    cp.create_service("smoke", &svc, Some(&ip_in(&block, 9)));
    cp.kubectl_ok(&["delete", "servicecidr", &name, "--wait=false"]);
    cp.wait_for(
        &format!("servicecidr/{name}"),
        Duration::from_secs(30),
        |o| {
            o.is_some_and(|o| {
                o["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["reason"] == "Terminating"))
            })
        },
    );
    let status = json_of(&cp.plugin(&["status", "-o", "json"]));
    let r = range(&status, &name);
    assert_eq!(r["state"], "Terminating");
    assert_eq!(r["blockingIPAddresses"], 1);
    assert_eq!(r["ready"]["status"], "False");
    assert_eq!(r["ready"]["reason"], "Terminating");
    assert_eq!(r["ready"]["message"], TERMINATING_MESSAGE);
    // Freeing the IP lets the controller finish what the plugin never forced.
    cp.delete_in("smoke", "service", &svc);
    cp.wait_for(
        &format!("servicecidr/{name}"),
        Duration::from_secs(30),
        |o| o.is_none(),
    );
}

/// The smoke path and the Terminating condition on a real control plane of this minor, at v1.
fn on_a_real(minor: &str, git_version: &str) {
    let cp = ControlPlane::start_version(minor, "", None);
    let version = cp.kubectl_ok(&["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], git_version);
    let log = smoke(&cp, &cp.kubeconfig);
    assert!(log.contains("/apis/networking.k8s.io/v1/"), "{log}");
    pin_terminating_condition(&cp);
    // This release's kubectl finds the plugin on PATH and runs it.
    let via = cp.via_kubectl(&["status", "kubernetes", "-o", "json"]);
    assert_eq!(json_of(&via)["serviceCIDRs"][0]["name"], "kubernetes");
}

/// The first release with `networking.k8s.io/v1`.
#[test]
fn kubernetes_1_33() {
    on_a_real("1.33", "v1.33.13");
}

#[test]
fn kubernetes_1_34() {
    on_a_real("1.34", "v1.34.4");
}

#[test]
fn a_server_that_serves_only_v1beta1() {
    let cp = ControlPlane::start_version(
        "1.34",
        "",
        Some("--emulated-version=1.32 --runtime-config=networking.k8s.io/v1beta1=true"),
    );
    let second = cp.kubeconfig2.clone().expect("a second apiserver");
    // The second server is what a 1.31-1.32 cluster looks like: v1beta1, and no v1 at all.
    let plugin_sees = cp.plugin_via(&second, &["status", "-o", "json", "-v"]);
    let log = stderr_of(&plugin_sees);
    assert!(
        log.contains("/apis/networking.k8s.io/v1beta1/servicecidrs"),
        "{log}"
    );
    // The first lists go out at v1 beside discovery, once each, and are not found; every other
    // request is discovery or at v1beta1.
    let gets: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("DEBUG GET ").map(|(_, url)| url))
        .collect();
    let at_v1 = |what: &str| {
        gets.iter()
            .filter(|u| u.contains(&format!("/networking.k8s.io/v1/{what}?")))
            .count()
    };
    assert_eq!(
        (at_v1("servicecidrs"), at_v1("ipaddresses")),
        (1, 1),
        "{log}"
    );
    let others = gets
        .iter()
        .filter(|u| {
            u.contains("/networking.k8s.io/v1beta1") || u.ends_with("/networking.k8s.io/v1")
        })
        .count();
    assert_eq!(gets.len(), others + 2, "{log}");
    assert_eq!(code(&plugin_sees), 0, "{log}");
    let log = smoke(&cp, &second);
    assert!(
        log.contains("/apis/networking.k8s.io/v1beta1/ipaddresses"),
        "{log}"
    );
    // Every write and watch of the delete went to v1beta1: the guard's patch, the delete, the
    // watch of its retirement.
    let requests: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("DEBUG ").map(|(_, r)| r))
        .filter(|r| r.contains("/networking.k8s.io/"))
        .collect();
    for (what, verb, marker) in [
        ("patch", "PATCH ", ""),
        ("delete", "DELETE ", ""),
        ("watch", "GET ", "watch="),
    ] {
        let seen: Vec<&&str> = requests
            .iter()
            .filter(|r| r.starts_with(verb) && r.contains(marker))
            .collect();
        assert!(!seen.is_empty(), "no {what} request:\n{log}");
        assert!(
            seen.iter()
                .all(|r| r.contains("/networking.k8s.io/v1beta1/")),
            "{what} outside v1beta1: {seen:?}"
        );
    }
}
