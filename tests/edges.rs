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

#[test]
fn a_range_with_ready_unknown_gets_no_ip_covers_nothing_and_is_shown_not_ready() {
    // With the controller stopped nothing rewrites the condition the test sets. Distinct CIDR
    // strings throughout: the allocator keeps one allocator per string (see tests/upstream.rs).
    let cp = ControlPlane::start_dedicated(true);
    let (unknown, inner, fresh) = (
        unique_name("unknown"),
        unique_name("inner"),
        unique_name("fresh"),
    );
    let (b1, b2) = (cp.next_v4_block(), cp.next_v4_block());
    cp.create_ready_service_cidr(&unknown, &[&b1]);
    cp.create_ready_service_cidr(&inner, &[&b1.replace(".0/24", ".0/28")]);
    let ns = unique_name("ns");
    cp.create_service(&ns, "held", Some(&ip_in(&b1, 5)));
    // While the outer range is Ready, the inner one may go.
    let out = cp.plugin(&["delete", &inner, "--dry-run", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    cp.stop_controller();
    let condition = serde_json::json!({"status": {"conditions": [{
        "type": "Ready", "status": "Unknown", "reason": "Test", "message": "set by the test",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    cp.kubectl_ok(&[
        "patch",
        "servicecidr",
        &unknown,
        "--subresource=status",
        "--type=merge",
        "-p",
        &condition.to_string(),
    ]);
    // A range with no condition at all: the allocator uses it.
    cp.create_service_cidr(&fresh, &[&b2]);
    // The allocator learns of the change through its informer; no object says when.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut host = 100;
    while cp.allocator_gives(&ns, &ip_in(&b1, host)) {
        assert!(
            std::time::Instant::now() < deadline,
            "Ready=Unknown kept allocating"
        );
        host += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        cp.allocator_gives(&ns, &ip_in(&b2, 10)),
        "a range with no condition is used"
    );
    let doc = json_of(&cp.plugin(&["status", "-o", "json"]));
    let state = |name: &str| {
        doc["serviceCIDRs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(
        (state(&unknown), state(&fresh)),
        ("NotReady".into(), "Pending".into()),
        "{doc}"
    );
    // The plugin follows the allocator: the Unknown range is no usable cover any more.
    let out = cp.plugin(&["delete", &inner, "--dry-run", "-o", "json"]);
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let doc = json_of(&out);
    assert_eq!(
        doc["results"][0]["blockingIPAddresses"][0]["ip"],
        ip_in(&b1, 5),
        "{doc}"
    );
}
