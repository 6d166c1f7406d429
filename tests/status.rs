//! `status` against the real control plane.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{
    ControlPlane, PLUGIN, SERVICE_CIDR_FINALIZER, code, ip_in, json_of, stderr_of, stdout_of,
    unique_name,
};

fn range_doc<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["serviceCIDRs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {doc}"))
}

#[test]
fn counts_follow_services_as_they_come_and_go_with_a_row_per_family() {
    let cp = ControlPlane::shared();
    let (v4, v6) = (cp.next_v4_block(), cp.next_v6_block());
    let name = unique_name("usage");
    cp.create_ready_service_cidr(&name, &[&v4, &v6]);
    let ns = unique_name("ns");
    for host in 10..13 {
        cp.create_service(&ns, &format!("svc-{host}"), Some(&ip_in(&v4, host)));
    }
    cp.create_service(&ns, "svc-v6", Some(&ip_in(&v6, 7)));

    let doc = json_of(&cp.plugin(&["status", &name, "-o", "json"]));
    let cidrs = &range_doc(&doc, &name)["cidrs"];
    assert_eq!(cidrs[0]["cidr"], v4.as_str());
    assert_eq!(
        (
            cidrs[0]["allocated"].as_u64(),
            cidrs[0]["capacity"].as_u64(),
            cidrs[0]["free"].as_u64()
        ),
        (Some(3), Some(254), Some(251))
    );
    assert_eq!(
        (
            cidrs[1]["family"].as_str(),
            cidrs[1]["allocated"].as_u64(),
            cidrs[1]["capacity"].as_u64()
        ),
        (Some("IPv6"), Some(1), Some(65_535))
    );
    assert_eq!(range_doc(&doc, &name)["state"], "Ready");

    let table = stdout_of(&cp.plugin(&["status", &name]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..5],
        [name.as_str(), v4.as_str(), "IPv4", "Ready", "3"],
        "{table}"
    );
    assert_eq!(rows[1][..3], [v6.as_str(), "IPv6", "1"], "{table}");

    let gone = ip_in(&v4, 11);
    cp.delete_in(&ns, "service", "svc-11");
    cp.wait_for(&format!("ipaddress/{gone}"), Duration::from_secs(30), |o| {
        o.is_none()
    });
    let doc = json_of(&cp.plugin(&["status", &name, "-o", "json"]));
    assert_eq!(range_doc(&doc, &name)["cidrs"][0]["allocated"], 2);
    assert!(
        doc["ipAddresses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["ip"] != gone.as_str())
    );
}

#[test]
fn the_default_range_is_there_and_holds_the_kubernetes_service() {
    let cp = ControlPlane::shared();
    let doc = json_of(&cp.plugin(&["status", "kubernetes", "-o", "json"]));
    let k = range_doc(&doc, "kubernetes");
    assert_eq!(k["cidrs"][0]["cidr"], "10.96.0.0/16");
    assert_eq!(k["cidrs"][1]["cidr"], "fd00:10:96::/112");
    assert_eq!(k["cidrs"][0]["capacity"], 65_534);
    assert!(
        k["cidrs"][0]["allocated"].as_u64().unwrap() >= 1,
        "10.96.0.1 is the kubernetes Service: {doc}"
    );
    let attributed = doc["ipAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ip"] == "10.96.0.1")
        .unwrap();
    assert_eq!(attributed["serviceCIDR"], "kubernetes");
}

#[test]
fn a_terminating_range_shows_what_blocks_it() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let name = unique_name("blocked");
    cp.create_ready_service_cidr(&name, &[&block]);
    let ns = unique_name("ns");
    cp.create_service(&ns, "held", Some(&ip_in(&block, 5)));
    cp.delete("servicecidr", &name);
    cp.wait_kubectl(
        &format!("servicecidr/{name}"),
        "condition=Ready=false",
        Duration::from_secs(30),
    );

    let doc = json_of(&cp.plugin(&["status", &name, "-o", "json"]));
    let r = range_doc(&doc, &name);
    assert_eq!(r["state"], "Terminating");
    assert_eq!(r["blockingIPAddresses"], 1);
    assert_eq!(r["ready"]["reason"], "Terminating");
    let wide = stdout_of(&cp.plugin(&["status", &name, "-o", "wide"]));
    assert!(
        wide.contains("blocked by 1") && wide.contains("Terminating: There are still IPAddresses"),
        "{wide}"
    );

    // Releasing the IP lets the controller finish the deletion.
    cp.delete_in(&ns, "service", "held");
    cp.wait_for(
        &format!("servicecidr/{name}"),
        Duration::from_secs(60),
        |o| o.is_none(),
    );
}

#[test]
fn overlapping_ranges_are_marked_and_count_an_ip_in_each() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let inner = block.replace(".0/24", ".0/28");
    let (wide, narrow) = (unique_name("wide"), unique_name("narrow"));
    cp.create_ready_service_cidr(&wide, &[&block]);
    cp.create_ready_service_cidr(&narrow, &[&inner]);
    let ns = unique_name("ns");
    cp.create_service(&ns, "inner", Some(&ip_in(&block, 3)));

    let doc = json_of(&cp.plugin(&["status", &wide, &narrow, "-o", "json"]));
    assert_eq!(
        range_doc(&doc, &wide)["cidrs"][0]["overlapsWith"],
        serde_json::json!([narrow])
    );
    assert_eq!(range_doc(&doc, &wide)["cidrs"][0]["allocated"], 1);
    assert_eq!(range_doc(&doc, &narrow)["cidrs"][0]["allocated"], 1);
    assert_eq!(range_doc(&doc, &narrow)["cidrs"][0]["attributed"], 1);
    assert_eq!(range_doc(&doc, &wide)["cidrs"][0]["attributed"], 0);
    let table = stdout_of(&cp.plugin(&["status", &wide, &narrow]));
    assert!(table.contains(&format!("{block}*")), "{table}");
    assert!(
        table.contains(&format!("* {block} ({wide}) overlaps {narrow}")),
        "{table}"
    );
}

#[test]
fn json_and_yaml_carry_the_same_document() {
    let cp = ControlPlane::shared();
    let strip = |mut v: Value| {
        for r in v["serviceCIDRs"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("ageSeconds");
            r.as_object_mut().unwrap().remove("terminatingSeconds");
        }
        v
    };
    let json = json_of(&cp.plugin(&["status", "kubernetes", "-o", "json"]));
    let yaml: Value = serde_yaml_ng::from_str(&stdout_of(&cp.plugin(&[
        "status",
        "kubernetes",
        "-o",
        "yaml",
    ])))
    .unwrap();
    assert_eq!(json["apiVersion"], "servicecidr.kubectl.io/v1alpha1");
    assert_eq!(json["kind"], "ServiceCIDRStatus");
    for field in [
        "serviceCIDRs",
        "totals",
        "orphanedIPAddresses",
        "ipAddresses",
    ] {
        assert!(json.get(field).is_some(), "{field} missing");
    }
    assert_eq!(strip(json), strip(yaml));
    let bare = stdout_of(&cp.plugin(&["status", "kubernetes", "--no-headers"]));
    assert!(
        bare.starts_with("kubernetes") && !bare.contains("NAME"),
        "{bare}"
    );
}

#[test]
fn an_unknown_name_is_an_error_naming_it() {
    let out = ControlPlane::shared().plugin(&["status", "kubernetes", "no-such-range"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr_of(&out),
        "error: servicecidr \"no-such-range\" not found\n"
    );
    assert!(stdout_of(&out).is_empty());
}

#[test]
fn the_read_only_user_can_run_status_through_kubectl() {
    let cp = ControlPlane::shared();
    cp.bind_viewer_readonly();
    let out = cp.plugin_as_viewer(&["status", "kubernetes", "-o", "json"]);
    assert_eq!(json_of(&out)["serviceCIDRs"][0]["name"], "kubernetes");
    let via = cp.via_kubectl(&["status", "kubernetes"]);
    assert_eq!(code(&via), 0, "{}", stderr_of(&via));
    assert!(
        stdout_of(&via)
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("kubernetes")
    );
}

#[test]
fn kubeconfig_paths_in_kubeconfig_env_are_merged() {
    let cp = ControlPlane::shared();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("merged");
    std::fs::create_dir_all(&dir).unwrap();
    let extra = dir.join(format!("{}-contexts", std::process::id()));
    std::fs::write(
        &extra,
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: merged\n  context: {cluster: local, user: admin}\n",
    )
    .unwrap();
    let paths = std::env::join_paths([extra.as_path(), cp.kubeconfig.as_path()]).unwrap();
    let out = Command::new(PLUGIN)
        .args(["status", "kubernetes", "--context", "merged", "-o", "json"])
        .env("KUBECONFIG", paths)
        .output()
        .unwrap();
    assert_eq!(json_of(&out)["serviceCIDRs"][0]["name"], "kubernetes");
}

/// Runs the plugin on a pseudo-terminal (util-linux `script`), as a person at a terminal would,
/// and returns all it drew there.
fn on_terminal(args: &[&str]) -> String {
    let line: Vec<String> = std::iter::once(PLUGIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect();
    let out = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .output()
        .expect("cannot run script (util-linux)");
    assert!(out.status.success(), "{}", stderr_of(&out));
    stdout_of(&out)
}

/// Long reads say on a terminal what is being read and how far along; documents and pipes get
/// none of it.
#[test]
fn a_terminal_sees_what_is_read_and_how_far_along() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let name = unique_name("spinner");
    cp.create_service_cidr(&name, &[&block]);
    for host in 1..=6 {
        cp.create_ipaddress(&ip_in(&block, host), "default", &name, false);
    }
    // Every page of IPAddresses takes 300 ms, as on a big cluster.
    let proxy = support::faults::FaultProxy::start(cp, "spinner");
    proxy.set_rule(|seen| {
        if seen.path.contains("/ipaddresses?") {
            support::faults::Action::Delay(Duration::from_millis(300))
        } else {
            support::faults::Action::Forward
        }
    });
    let kubeconfig = proxy.kubeconfig.to_str().unwrap();
    let args = ["status", "--chunk-size", "2", "--kubeconfig", kubeconfig];
    let drawn = on_terminal(&args);
    assert!(
        drawn.contains("reading ") && drawn.contains("ipaddresses: ") && drawn.contains(" so far"),
        "{drawn}"
    );
    assert!(drawn.contains(&name), "the table follows: {drawn}");

    let json = on_terminal(&[&args[..], &["-o", "json"]].concat());
    assert!(!json.contains("reading "), "{json}");
    let piped = Command::new(PLUGIN).args(args).output().unwrap();
    assert_eq!(code(&piped), 0, "{}", stderr_of(&piped));
    assert_eq!(stderr_of(&piped), "", "nothing on a piped stderr");
}

/// Twin ServiceCIDRs (the same CIDR) share one allocator in kube-apiserver, which goes not ready
/// only while a single range names its CIDR: two terminating twins still hand out IPs, and
/// `status` says so instead of implying that nothing is allocated from them.
#[test]
fn terminating_twins_that_still_get_ips_are_said_to() {
    let cp = ControlPlane::start_dedicated(true);
    let (twin_block, lone_block) = (cp.next_v4_block(), cp.next_v4_block());
    let (a, b, lone) = (
        unique_name("twin-a"),
        unique_name("twin-b"),
        unique_name("lone"),
    );
    for (name, block) in [(&a, &twin_block), (&b, &twin_block), (&lone, &lone_block)] {
        cp.create_ready_service_cidr(name, &[block]);
        cp.set_finalizers(
            "servicecidr",
            name,
            &[SERVICE_CIDR_FINALIZER, "example.com/hold"],
        );
    }
    for name in [&a, &b, &lone] {
        cp.delete("servicecidr", name);
    }
    // The allocator has seen all three deletions once the last one stops it handing out IPs.
    let ns = unique_name("probe");
    cp.until_allocator(&ns, &lone_block, 10, false);
    assert!(
        cp.allocator_gives(&ns, &ip_in(&twin_block, 10)),
        "the twins' shared allocator stopped"
    );

    let doc = json_of(&cp.plugin(&["status", "-o", "json"]));
    for (name, twin) in [(&a, &b), (&b, &a)] {
        let cidr = &range_doc(&doc, name)["cidrs"][0];
        assert_eq!(range_doc(&doc, name)["state"], "Terminating");
        assert_eq!(cidr["allocating"], "unknown", "{name}");
        assert_eq!(cidr["sharesAllocatorWith"], serde_json::json!([twin]));
    }
    assert_eq!(range_doc(&doc, &lone)["cidrs"][0]["allocating"], "no");
    let table = stdout_of(&cp.plugin(&["status"]));
    assert!(
        table.contains(&format!("! {twin_block} ({a}) may still get new IPs")),
        "{table}"
    );
    assert!(!table.contains(&format!("({lone}) may")), "{table}");
}
