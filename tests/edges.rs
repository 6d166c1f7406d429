//! A differential test at range edges: the real allocator is the oracle. Which static ClusterIPs it
//! accepts, and which ranges the service-cidr controller counts, must agree with `status`,
//! `orphans` and `delete` (Kubernetes' `PrefixContainsIP`: a range's network address and IPv4
//! broadcast address are not inside it).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{ControlPlane, SERVICE_CIDR_FINALIZER, code, ip_in, json_of, stderr_of, unique_name};

fn allocated(doc: &Value, name: &str) -> u64 {
    doc["serviceCIDRs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {doc}"))["cidrs"][0]["allocated"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_lone_ranges_edges_are_refused_by_the_allocator_and_counted_by_no_one() {
    let cp = ControlPlane::shared();
    let (v4, v6) = (cp.next_v4_block(), cp.next_v6_block());
    let name = unique_name("lone");
    cp.create_ready_service_cidr(&name, &[&v4, &v6]);
    let ns = unique_name("ns");
    let last_v6 = ip_in(&v6, 0xffff);
    // The oracle: what the real allocator accepts.
    assert!(
        !cp.allocator_gives(&ns, &ip_in(&v4, 0)),
        "IPv4 network address"
    );
    assert!(
        !cp.allocator_gives(&ns, &ip_in(&v4, 255)),
        "IPv4 broadcast address"
    );
    assert!(
        !cp.allocator_gives(&ns, &ip_in(&v6, 0)),
        "IPv6 network address"
    );
    assert!(cp.allocator_gives(&ns, &ip_in(&v4, 1)));
    assert!(cp.allocator_gives(&ns, &ip_in(&v4, 254)));
    assert!(
        cp.allocator_gives(&ns, &last_v6),
        "IPv6 has no broadcast address"
    );
    let doc = json_of(&cp.plugin(&["status", &name, "-o", "json"]));
    let r = &doc["serviceCIDRs"][0];
    assert_eq!(
        (
            r["cidrs"][0]["allocated"].as_u64(),
            r["cidrs"][0]["capacity"].as_u64()
        ),
        (Some(2), Some(254)),
        "{doc}"
    );
    assert_eq!(r["cidrs"][1]["allocated"], 1, "{doc}");
}

#[test]
fn a_nested_ranges_edges_belong_to_the_outer_range_only() {
    let cp = ControlPlane::start_dedicated(true);
    let block = cp.next_v4_block();
    let (outer, inner) = (unique_name("outer"), unique_name("inner"));
    cp.create_ready_service_cidr(&outer, &[&block]);
    let inner_cidr = block.replace(".0/24", ".4/30");
    cp.create_ready_service_cidr(&inner, &[&inner_cidr]);
    let ns = unique_name("ns");
    let edges = [ip_in(&block, 4), ip_in(&block, 7)];
    // The allocator gives the inner range's network and broadcast addresses out of the outer one.
    for ip in &edges {
        assert!(cp.allocator_gives(&ns, ip), "{ip}");
    }
    let doc = json_of(&cp.plugin(&["status", "-o", "json"]));
    assert_eq!(
        (allocated(&doc, &outer), allocated(&doc, &inner)),
        (2, 0),
        "{doc}"
    );
    // The inner range still has both usable addresses for the allocator, as status says.
    assert!(cp.allocator_gives(&ns, &ip_in(&block, 5)));
    let doc = json_of(&cp.plugin(&["status", "-o", "json"]));
    assert_eq!(
        (allocated(&doc, &outer), allocated(&doc, &inner)),
        (3, 1),
        "{doc}"
    );

    // Deleting the inner range orphans nothing: allowed. Deleting the outer one would orphan the
    // edges: refused by the plugin, whatever it is asked.
    let out = cp.plugin(&["delete", &outer, "--dry-run", "-o", "json"]);
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let doc = json_of(&out);
    let blocking: Vec<&str> = doc["results"][0]["blockingIPAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ip"].as_str().unwrap())
        .collect();
    assert_eq!(blocking, [edges[0].as_str(), edges[1].as_str()]);
}

#[test]
fn a_live_controllers_block_is_never_overridden() {
    let cp = ControlPlane::start_dedicated(true);
    let block = cp.next_v4_block();
    let (outer, inner) = (unique_name("outer"), unique_name("inner"));
    cp.create_ready_service_cidr(&outer, &[&block]);
    cp.create_ready_service_cidr(&inner, &[&block.replace(".0/24", ".4/30")]);
    let ns = unique_name("ns");
    let edges = [ip_in(&block, 4), ip_in(&block, 7)];
    for ip in &edges {
        assert!(cp.allocator_gives(&ns, ip), "{ip}");
    }
    cp.kubectl_ok(&["delete", "servicecidr", &outer, "--wait=false"]);
    let what = format!("servicecidr/{outer}");
    cp.wait_for(&what, Duration::from_secs(30), |o| {
        o.is_some_and(|o| o["status"]["conditions"][0]["reason"] == "Terminating")
    });
    // Asked to take over at once, the plugin still leaves the controller's finalizer alone.
    let out = cp.plugin(&[
        "delete",
        &outer,
        "--wait",
        "--remove-finalizer",
        "--controller-timeout",
        "1s",
        "--timeout",
        "15s",
        "-o",
        "json",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let r = &json_of(&out)["results"][0];
    assert_eq!(r["outcome"], "Blocked", "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains(&edges[0]) && message.contains(&edges[1]),
        "{message}"
    );
    let o = cp.get(&what).unwrap();
    assert!(
        o["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == SERVICE_CIDR_FINALIZER),
        "{o}"
    );
    // And `orphans` sees the two edges at risk, as the controller does.
    let out = cp.plugin(&[
        "orphans",
        "--include-recent",
        "--kind",
        "AtRisk",
        "-o",
        "json",
    ]);
    let doc = json_of(&out);
    let at_risk: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip"].as_str().unwrap())
        .collect();
    assert_eq!(at_risk, [edges[0].as_str(), edges[1].as_str()]);
}
