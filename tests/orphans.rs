//! `orphans` against the real control plane: each kind produced for real.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ControlPlane, code, ip_in, json_of, stdout_of, unique_name};

fn findings_for(doc: &Value, ip: &str) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ip"] == ip)
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The first finding about `ip`.
fn finding<'a>(doc: &'a Value, ip: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ip"] == ip)
        .unwrap_or_else(|| panic!("no finding for {ip}: {doc}"))
}

fn audit(cp: &ControlPlane, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["orphans", "--include-recent", "-o", "json"];
    args.extend_from_slice(extra);
    let out = cp.plugin(&args);
    (code(&out), json_of(&out))
}

/// A range with one Service inside, deleted while the controller keeps it (Terminating).
fn terminating_range_with_a_service(cp: &ControlPlane) -> (String, String, String) {
    let block = cp.next_v4_block();
    let name = unique_name("doomed");
    cp.create_ready_service_cidr(&name, &[&block]);
    let ns = unique_name("ns");
    let ip = ip_in(&block, 7);
    cp.create_service(&ns, "stranded", Some(&ip));
    cp.delete("servicecidr", &name);
    cp.wait_for(
        &format!("servicecidr/{name}"),
        Duration::from_secs(30),
        |o| o.is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string()),
    );
    (name, ns, ip)
}

#[test]
fn an_ip_in_a_terminating_range_is_at_risk() {
    let cp = ControlPlane::shared();
    let (name, ns, ip) = terminating_range_with_a_service(cp);
    let (exit, doc) = audit(cp, &["--kind", "AtRisk"]);
    assert_eq!(exit, 3);
    let f = finding(&doc, &ip);
    assert_eq!(f["kind"], "AtRisk");
    assert_eq!(f["serviceCIDRs"], json!([name]));
    assert_eq!(f["service"], format!("{ns}/stranded"));
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] == "AtRisk"),
        "--kind filters"
    );
    cp.delete_in(&ns, "service", "stranded");
}

#[test]
fn stripping_a_finalizer_by_hand_orphans_the_ip_and_the_suggested_range_covers_it_again() {
    let cp = ControlPlane::shared();
    let (name, ns, ip) = terminating_range_with_a_service(cp);
    // What people do today when a range hangs in Terminating.
    cp.set_finalizers("servicecidr", &name, &[]);
    cp.wait_for(
        &format!("servicecidr/{name}"),
        Duration::from_secs(30),
        |o| o.is_none(),
    );

    let (exit, doc) = audit(cp, &["--kind", "Orphaned"]);
    assert_eq!(exit, 3);
    let f = finding(&doc, &ip);
    assert_eq!(f["service"], format!("{ns}/stranded"));
    assert!(
        f["action"]
            .as_str()
            .unwrap()
            .contains(&format!("recreate Service {ns}/stranded"))
    );
    let table = stdout_of(&cp.plugin(&["orphans", "--kind", "Orphaned"]));
    assert!(
        table.lines().nth(1).unwrap().starts_with("Orphaned"),
        "{table}"
    );

    let manifest = stdout_of(&cp.plugin(&["orphans", "--kind", "Orphaned", "--suggest-range"]));
    let docs: Vec<Value> = manifest
        .split("---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let covering = docs
        .iter()
        .find(|d| {
            let net: ipnet::IpNet = d["spec"]["cidrs"][0].as_str().unwrap().parse().unwrap();
            net.contains(&ip.parse::<std::net::IpAddr>().unwrap())
        })
        .unwrap_or_else(|| panic!("no suggestion covers {ip}:\n{manifest}"));
    cp.apply(&serde_yaml_ng::to_string(covering).unwrap());
    let (_, doc) = audit(cp, &[]);
    assert!(
        findings_for(&doc, &ip).is_empty(),
        "{ip} still reported after applying the suggestion: {doc}"
    );
}

#[test]
fn ipaddresses_pointing_at_missing_or_other_services_are_reported() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let name = unique_name("refs");
    cp.create_ready_service_cidr(&name, &[&block]);
    let ns = unique_name("ns");
    let held = ip_in(&block, 20);
    cp.create_service(&ns, "real", Some(&held));
    let (dangling, wrong, unmanaged) = (ip_in(&block, 21), ip_in(&block, 22), ip_in(&block, 23));
    cp.create_ipaddress(&dangling, &ns, "never-existed", true);
    // The repair loop deletes a managed wrong reference within 5 s; an unmanaged one stays.
    cp.create_ipaddress(&wrong, &ns, "real", false);
    cp.create_ipaddress(&unmanaged, &ns, "never-existed", false);

    let (exit, doc) = audit(cp, &[]);
    assert_eq!(exit, 3);
    assert_eq!(findings_for(&doc, &dangling), ["DanglingParent"]);
    assert_eq!(findings_for(&doc, &wrong), ["WrongParent", "Unmanaged"]);
    assert_eq!(
        findings_for(&doc, &unmanaged),
        ["DanglingParent", "Unmanaged"]
    );
    assert!(findings_for(&doc, &held).is_empty());
    assert_eq!(finding(&doc, &dangling)["selfHealing"], true);

    // Without --include-recent the repair loop's 60 s grace hides what it will fix itself.
    let out = cp.plugin(&["orphans", "-o", "json"]);
    assert!(findings_for(&json_of(&out), &dangling).is_empty());
    for ip in [&dangling, &wrong, &unmanaged] {
        cp.delete("ipaddress", ip);
    }
}

#[test]
fn a_clean_cluster_exits_zero() {
    let cp = ControlPlane::start_dedicated(true);
    cp.create_service(&unique_name("ns"), "fine", None);
    let out = cp.plugin(&["orphans", "--include-recent"]);
    assert_eq!(code(&out), 0, "{}", stdout_of(&out));
    assert!(stdout_of(&out).starts_with("No inconsistencies"));
    let doc = json_of(&cp.plugin(&["orphans", "--include-recent", "-o", "json"]));
    assert_eq!(doc["findings"], json!([]));
}

#[test]
fn a_service_ip_without_its_ipaddress_is_unrecorded() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let name = unique_name("unrec");
    cp.create_ready_service_cidr(&name, &[&block]);
    let ns = unique_name("ns");
    let ip = ip_in(&block, 30);
    cp.create_service(&ns, "lost-record", Some(&ip));
    // The repair loop re-records it on its next pass (minutes); until then it is Unrecorded.
    cp.kubectl_ok(&["delete", "ipaddress", &ip]);
    let (exit, doc) = audit(cp, &["--kind", "Unrecorded"]);
    assert_eq!(exit, 3);
    let f = finding(&doc, &ip);
    assert_eq!(f["service"], format!("{ns}/lost-record"));
    assert_eq!(f["selfHealing"], true);
}

#[test]
fn an_unmanaged_ipaddress_a_service_holds_is_replaced_by_the_repair_loop() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    cp.create_ready_service_cidr(&unique_name("repair"), &[&block]);
    let ns = unique_name("ns");
    let held = ip_in(&block, 7);
    cp.create_service(&ns, "held", Some(&held));
    // Swap the allocator's IPAddress for one without its label, then make the Service sync.
    cp.kubectl_ok(&["delete", "ipaddress", &held]);
    cp.create_ipaddress(&held, &ns, "held", false);
    let loose = ip_in(&block, 8);
    cp.create_ipaddress(&loose, &ns, "nobody", false);
    let (_, doc) = audit(cp, &["--kind", "Unmanaged"]);
    assert_eq!(finding(&doc, &held)["selfHealing"], true, "{doc}");
    assert_eq!(finding(&doc, &loose)["selfHealing"], false, "{doc}");
    cp.kubectl_ok(&["label", "service", "-n", &ns, "held", "touched=yes"]);
    cp.wait_for(&format!("ipaddress/{held}"), Duration::from_secs(60), |o| {
        o.is_some_and(|o| {
            o["metadata"]["labels"]["ipaddress.kubernetes.io/managed-by"] == "ipallocator.k8s.io"
        })
    });
    let (_, doc) = audit(cp, &["--kind", "Unmanaged"]);
    assert!(findings_for(&doc, &held).is_empty(), "{doc}");
    assert_eq!(findings_for(&doc, &loose), ["Unmanaged"], "{doc}");
}

#[test]
fn kind_filters_say_how_much_they_left_out() {
    let cp = ControlPlane::start_dedicated(true);
    let block = cp.next_v4_block();
    let ip = ip_in(&block, 3);
    cp.create_ready_service_cidr(&unique_name("kinds"), &[&block]);
    cp.create_ipaddress(&ip, "default", "nobody", false);
    let out = cp.plugin(&["orphans", "--include-recent", "--kind", "Orphaned"]);
    assert_eq!(code(&out), 0);
    let text = stdout_of(&out);
    assert!(
        text.contains("Nothing of the kinds asked for;")
            && text.contains("finding(s) of other kinds were left out by --kind"),
        "{text}"
    );
    let (exit, doc) = audit(&cp, &["--kind", "Orphaned"]);
    assert_eq!(exit, 0);
    assert!(doc["leftOut"].as_u64().unwrap() >= 1, "{doc}");
}
