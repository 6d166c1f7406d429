//! `explain` against the real control plane, its claims checked against the real allocator:
//! where it says an IP can be had, a Service gets it; where it says new ClusterIPs come from,
//! they land.

mod support;

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::{Value, json};
use support::{ControlPlane, SERVICE_CIDR_FINALIZER, code, ip_in, json_of, stdout_of, unique_name};

fn explain(cp: &ControlPlane, what: &str) -> Value {
    json_of(&cp.plugin(&["explain", what, "-o", "json"]))
}

#[test]
fn an_ip_is_told_as_the_allocator_sees_it_and_the_allocator_agrees() {
    let cp = ControlPlane::shared();
    let (live, old) = (cp.next_v4_block(), cp.next_v4_block());
    let (blue, gone) = (unique_name("blue"), unique_name("old"));
    cp.create_ready_service_cidr(&blue, &[&live]);
    cp.create_ready_service_cidr(&gone, &[&old]);
    cp.set_finalizers(
        "servicecidr",
        &gone,
        &[SERVICE_CIDR_FINALIZER, "example.com/hold"],
    );
    cp.delete("servicecidr", &gone);
    let ns = unique_name("explain");

    // Held by a Service: taken, with its IPAddress and Service.
    let held = ip_in(&live, 10);
    cp.create_service(&ns, "held", Some(&held));
    let doc = explain(cp, &held);
    assert_eq!(doc["serviceCIDRs"][0]["serviceCIDR"], blue.as_str());
    assert_eq!(doc["serviceCIDRs"][0]["inside"], true);
    assert_eq!(doc["serviceCIDRs"][0]["usable"], true);
    assert_eq!(doc["ipAddress"]["managedByAllocator"], true);
    assert_eq!(doc["ipAddress"]["parent"], format!("services {ns}/held"));
    assert_eq!(doc["services"], json!([format!("{ns}/held")]));
    assert_eq!(doc["assignableAsClusterIP"], false);

    // Free inside a usable range: said to be assignable, and the apiserver gives it.
    let free = ip_in(&live, 11);
    assert_eq!(explain(cp, &free)["assignableAsClusterIP"], true);
    assert!(cp.allocator_gives(&ns, &free));

    // Inside a terminating range only: refused, and the apiserver refuses it too (once its
    // allocator has seen the deletion).
    cp.until_allocator(&ns, &old, 20, false);
    let doc = explain(cp, &ip_in(&old, 30));
    assert_eq!(doc["serviceCIDRs"][0]["usable"], false);
    assert_eq!(doc["serviceCIDRs"][0]["notUsableBecause"], "terminating");
    assert_eq!(doc["assignableAsClusterIP"], false);
    assert!(!cp.allocator_gives(&ns, &ip_in(&old, 30)));

    // A range's network address is not inside it, as Kubernetes counts.
    let network = live.split('/').next().unwrap();
    let doc = explain(cp, network);
    assert_eq!(doc["serviceCIDRs"][0]["inside"], false);
    assert_eq!(doc["assignableAsClusterIP"], false);

    let text = stdout_of(&cp.plugin(&["explain", &held]));
    assert!(
        text.contains(&format!("{blue} {live}: inside, hands out IPs")),
        "{text}"
    );
    assert!(text.contains(&format!("Service: {ns}/held")), "{text}");
    cp.set_finalizers("servicecidr", &gone, &[]);
}

/// "Why is my new range unused?": explain says which ranges new ClusterIPs come from, and Services
/// created for real land in exactly those, spread over them, never in a range it says is idle.
#[test]
fn new_cluster_ips_land_where_explain_says_they_come_from() {
    let cp = ControlPlane::start_dedicated(true);
    let (live, old) = ("10.150.0.0/28", "10.151.0.0/28");
    cp.create_ready_service_cidr("blue", &[live]);
    cp.create_ready_service_cidr("old", &[old]);
    cp.set_finalizers(
        "servicecidr",
        "old",
        &[SERVICE_CIDR_FINALIZER, "example.com/hold"],
    );
    cp.delete("servicecidr", "old");
    let ns = unique_name("spread");
    cp.until_allocator(&ns, old, 1, false);

    let doc = explain(&cp, "old");
    let cidr = &doc["cidrs"][0];
    assert_eq!(cidr["allocating"], "no");
    assert_eq!(cidr["notAllocatingBecause"], "terminating");
    let from: Vec<IpNet> = cidr["newClusterIPsFrom"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cidr"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        from,
        [
            "10.96.0.0/16".parse::<IpNet>().unwrap(),
            live.parse().unwrap()
        ]
    );

    let mut landed: BTreeMap<IpNet, usize> = BTreeMap::new();
    for i in 0..24 {
        let ip: std::net::IpAddr = cp
            .create_service(&ns, &format!("s{i}"), None)
            .parse()
            .unwrap();
        let net = from
            .iter()
            .find(|n| n.contains(&ip))
            .unwrap_or_else(|| panic!("{ip} landed outside {from:?}"));
        *landed.entry(*net).or_default() += 1;
    }
    assert_eq!(
        landed.len(),
        2,
        "every usable range gets new IPs: {landed:?}"
    );

    let out = cp.plugin(&["explain", "old"]);
    assert_eq!(code(&out), 0);
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("{old}: hands out nothing: terminating")),
        "{text}"
    );
    assert!(
        text.contains("a new IPv4 ClusterIP comes from one of: kubernetes 10.96.0.0/16"),
        "{text}"
    );
    let out = cp.plugin(&["explain", "no-such-range"]);
    assert_eq!(code(&out), 1);
    let out = cp.plugin(&["explain", "Not_A_Name"]);
    assert_eq!(code(&out), 2);
    cp.set_finalizers("servicecidr", "old", &[]);
}
