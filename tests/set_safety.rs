//! Attacks on `delete`'s central promise, against the real control plane: whatever is deleted beside
//! a range, by the same call, another plugin run or kubectl, no IP in use is ever left outside
//! every range. Each test ends by checking that with kubectl's own view and with `orphans`.

mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::{
    ControlPlane, GUARD_FINALIZER, code, ip_in, json_of, retire_args, stderr_of, unique_name,
};

/// Kubernetes' `PrefixContainsIP`, restated for the oracle on IPv4 and IPv6 alike: inside the
/// prefix, not its network address, and for IPv4 not its broadcast address.
fn k8s_inside(cidr: &str, ip: &str) -> bool {
    let net: ipnet::IpNet = cidr.parse().unwrap();
    let ip: std::net::IpAddr = ip.parse().unwrap();
    let v4_broadcast = matches!(net, ipnet::IpNet::V4(_)) && ip == net.broadcast();
    net.contains(&ip) && ip != net.network() && !v4_broadcast
}

/// Every ServiceCIDR that exists (terminating or not) and holds `ip`, as kubectl lists them.
fn ranges_holding(cp: &ControlPlane, ip: &str) -> Vec<String> {
    holders(cp, ip)
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn holders(cp: &ControlPlane, ip: &str) -> Vec<Value> {
    let list: Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "servicecidrs", "-o", "json"])).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["spec"]["cidrs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| k8s_inside(c.as_str().unwrap(), ip))
        })
        .cloned()
        .collect()
}

/// The IP is inside an existing range by kubectl's view, one that stays: live, or terminating but
/// held by the plugin's guard (a terminating range held by the controller alone may still go, as
/// twins deleted together do); and `orphans` does not call it orphaned.
fn assert_not_orphaned(cp: &ControlPlane, ip: &str) {
    let held = holders(cp, ip);
    assert!(!held.is_empty(), "{ip} is outside every ServiceCIDR");
    assert!(
        held.iter()
            .any(|r| r["metadata"]["deletionTimestamp"].is_null()
                || r["metadata"]["finalizers"]
                    .to_string()
                    .contains(GUARD_FINALIZER)),
        "{ip} is held only by terminating ranges nothing keeps: {held:#?}"
    );
    let out = cp.plugin(&[
        "orphans",
        "--include-recent",
        "--kind",
        "Orphaned",
        "-o",
        "json",
    ]);
    let doc = json_of(&out);
    let orphaned = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["ip"] == ip);
    assert!(!orphaned, "orphans reports {ip}: {doc}");
}

/// Two ready ranges with the same CIDR and a Service holding an IP inside both.
fn twins(cp: &ControlPlane) -> (String, String, String) {
    let block = cp.next_v4_block();
    let (a, b) = (unique_name("twin"), unique_name("twin"));
    cp.create_ready_service_cidr(&a, &[&block]);
    cp.create_ready_service_cidr(&b, &[&block]);
    let ip = ip_in(&block, 10);
    cp.create_service(&unique_name("ns"), "shared", Some(&ip));
    (a, b, ip)
}

fn outcome(out: &Output) -> String {
    json_of(out)["results"][0]["outcome"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn twins_named_in_one_call_are_both_refused_every_time() {
    let cp = ControlPlane::shared();
    for round in 0..10 {
        let (a, b, ip) = twins(cp);
        // Half the rounds name them the other way round: the verdict never depends on it.
        let names = if round % 2 == 0 { [&a, &b] } else { [&b, &a] };
        let out = cp.plugin(&["delete", names[0], names[1], "-o", "json"]);
        assert_eq!(code(&out), 3, "{}", stderr_of(&out));
        let doc = json_of(&out);
        assert_eq!(doc["results"].as_array().unwrap().len(), 2, "{doc}");
        for r in doc["results"].as_array().unwrap() {
            assert_eq!(r["outcome"], "Refused", "{doc}");
            let blocker = &r["blockingIPAddresses"][0];
            assert_eq!(blocker["ip"], ip.as_str());
            let held_by: Vec<&str> = blocker["ranges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap())
                .collect();
            let mut both = [a.as_str(), b.as_str()];
            both.sort();
            assert_eq!(held_by, both);
        }
        // The same verdict from a dry run, the blockers named the same way.
        let dry = cp.plugin(&["delete", names[1], names[0], "--dry-run", "-o", "json"]);
        assert_eq!(code(&dry), 3);
        let dry = json_of(&dry);
        for (r, d) in doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(dry["results"].as_array().unwrap())
        {
            assert_eq!(
                (&r["name"], &r["outcome"], &r["blockingIPAddresses"]),
                (&d["name"], &d["outcome"], &d["blockingIPAddresses"])
            );
        }
        assert_eq!(ranges_holding(cp, &ip).len(), 2);
        assert_not_orphaned(cp, &ip);
    }
}

#[test]
fn nested_ranges_named_together_are_refused_the_inner_alone_goes() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let (outer, inner) = (unique_name("outer"), unique_name("inner"));
    cp.create_ready_service_cidr(&outer, &[&block]);
    cp.create_ready_service_cidr(&inner, &[&block.replace(".0/24", ".0/28")]);
    let ip = ip_in(&block, 3);
    cp.create_service(&unique_name("ns"), "nested", Some(&ip));
    let out = cp.plugin(&["delete", &outer, &inner, "-o", "json"]);
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let doc = json_of(&out);
    assert!(
        doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "Refused"),
        "{doc}"
    );
    let out = cp.plugin(&["delete", &inner, "-o", "json"]);
    assert_eq!(outcome(&out), "Deleted", "{}", stderr_of(&out));
    assert_eq!(ranges_holding(cp, &ip), [outer]);
    assert_not_orphaned(cp, &ip);
}

#[test]
fn twins_deleted_by_two_processes_at_once_never_orphan_the_ip() {
    // 20 pairs at once on a control plane of their own: every interleaving the scheduler gives.
    let cp = ControlPlane::start_dedicated(true);
    let pairs: Vec<_> = (0..20).map(|_| twins(&cp)).collect();
    let runs: Vec<_> = pairs
        .iter()
        .map(|(a, b, _)| {
            let args = |n: &str| {
                ["delete", n, "--wait", "--timeout", "40s", "-o", "json"].map(str::to_owned)
            };
            let (x, y) = (args(a), args(b));
            let x: Vec<&str> = x.iter().map(String::as_str).collect();
            let y: Vec<&str> = y.iter().map(String::as_str).collect();
            (cp.spawn_plugin(&x), cp.spawn_plugin(&y))
        })
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    for ((x, y), (_, _, ip)) in runs.into_iter().zip(&pairs) {
        let (x, y) = (x.wait_with_output().unwrap(), y.wait_with_output().unwrap());
        let outcomes = [outcome(&x), outcome(&y)];
        // One goes and the other is refused, or both are kept (at risk): never both gone.
        assert!(
            outcomes != ["Deleted", "Deleted"],
            "both released: {}\n{}",
            stderr_of(&x),
            stderr_of(&y)
        );
        for (o, out) in outcomes.iter().zip([&x, &y]) {
            // Blocked: the controller itself keeps the range (its twin went first); safe too.
            assert!(
                ["Deleted", "Refused", "AtRisk", "Blocked"].contains(&o.as_str()),
                "{o}: {}",
                stderr_of(out)
            );
        }
        let mut key = outcomes.clone();
        key.sort();
        *seen.entry(key).or_insert(0) += 1;
        assert_not_orphaned(&cp, ip);
    }
    eprintln!("outcomes over 20 pairs: {seen:?}");
}

#[test]
fn the_plugin_racing_kubectl_delete_of_the_twin_never_orphans_the_ip() {
    let cp = ControlPlane::start_dedicated(true);
    let pairs: Vec<_> = (0..5).map(|_| twins(&cp)).collect();
    let runs: Vec<_> = pairs
        .iter()
        .map(|(a, b, _)| {
            let child = cp.spawn_plugin(&["delete", a, "--wait", "--timeout", "40s", "-o", "json"]);
            cp.kubectl_ok(&["delete", "servicecidr", b, "--wait=false"]);
            child
        })
        .collect();
    for (child, (a, b, ip)) in runs.into_iter().zip(&pairs) {
        let out = child.wait_with_output().unwrap();
        let o = outcome(&out);
        assert!(
            ["Refused", "AtRisk", "Blocked", "Deleted"].contains(&o.as_str()),
            "{o}: {}",
            stderr_of(&out)
        );
        if o == "Deleted" {
            // Only possible if the twin was still usable at the final check; then it must remain.
            assert!(
                ranges_holding(&cp, ip).contains(b),
                "{a} released while {b} went too"
            );
        }
        // kubectl's delete goes through the controller alone: wait until the controller has
        // acted on the twin (released it, or written that IPs block it); the guarded range must
        // stay while the IP has no usable range.
        cp.wait_for(&format!("servicecidr/{b}"), Duration::from_secs(60), |o| {
            o.is_none_or(|o| {
                o["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["reason"] == "Terminating")
                })
            })
        });
        assert_not_orphaned(&cp, ip);
    }
}

#[test]
fn a_plugin_killed_between_its_delete_and_its_release_is_resumed_by_a_rerun() {
    let cp = ControlPlane::start_dedicated(true);
    let block = cp.next_v4_block();
    let name = unique_name("killed");
    cp.create_ready_service_cidr(&name, &[&block]);
    let mut child = cp.spawn_plugin(&["delete", &name, "--wait"]);
    let what = format!("servicecidr/{name}");
    cp.wait_for(&what, Duration::from_secs(30), |o| {
        o.is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // The controller releases its own finalizer after the grace period; the guard keeps the range
    // until a run of the plugin makes its final check.
    cp.wait_for(&what, Duration::from_secs(60), |o| {
        o.is_some_and(|o| o["metadata"]["finalizers"] == serde_json::json!([GUARD_FINALIZER]))
    });
    let out = cp.plugin(&retire_args(&name));
    assert_eq!(outcome(&out), "Deleted", "{}", stderr_of(&out));
    assert!(cp.get(&what).is_none());
}

#[test]
fn a_range_terminating_with_its_twin_gone_keeps_its_guard_and_says_what_is_at_risk() {
    // The controller releases twins deleted together (it counts terminating ranges as parents);
    // the guard keeps the one the plugin deletes, and the plugin names the IP and the way out.
    let cp = ControlPlane::start_dedicated(true);
    let (a, b, ip) = twins(&cp);
    cp.kubectl_ok(&["delete", "servicecidr", &b, "--wait=false"]);
    let out = cp.plugin(&["delete", &a, "--wait", "--timeout", "40s", "-o", "json"]);
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let doc = json_of(&out);
    let r = &doc["results"][0];
    assert!(
        ["Refused", "AtRisk"].contains(&r["outcome"].as_str().unwrap()),
        "{doc}"
    );
    assert_eq!(r["blockingIPAddresses"][0]["ip"], ip.as_str());
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("create a ServiceCIDR covering"),
        "{doc}"
    );
    // Deleted and at risk: it keeps the guard; refused: never deleted.
    let range = cp
        .get(&format!("servicecidr/{a}"))
        .expect("the range is kept");
    if r["outcome"] == "AtRisk" {
        assert!(
            range["metadata"]["finalizers"]
                .to_string()
                .contains(GUARD_FINALIZER),
            "{range:#}"
        );
    } else {
        assert!(
            range["metadata"]["deletionTimestamp"].is_null(),
            "{range:#}"
        );
    }
    assert_not_orphaned(&cp, &ip);
}

#[test]
fn dry_runs_change_nothing_on_the_resume_path_either() {
    let cp = ControlPlane::start_dedicated(true);
    let name = unique_name("dry");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    cp.stop_controller();
    cp.kubectl_ok(&["delete", "servicecidr", &name, "--wait=false"]);
    let what = format!("servicecidr/{name}");
    let before = cp.get(&what).unwrap();
    for args in [
        &[
            "delete",
            &name,
            "--dry-run",
            "--wait",
            "--remove-finalizer",
            "-o",
            "json",
        ][..],
        &["delete", &name, "--dry-run=server", "--wait", "-o", "json"],
        &["delete", &name, "--dry-run", "-o", "json"],
    ] {
        let out = cp.plugin(args);
        assert_eq!(outcome(&out), "DryRun", "{args:?}: {}", stderr_of(&out));
    }
    let after = cp.get(&what).unwrap();
    assert_eq!(after["metadata"], before["metadata"]);
}

#[test]
fn a_service_ip_without_an_ipaddress_blocks_the_delete() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let name = unique_name("unrec");
    cp.create_ready_service_cidr(&name, &[&block]);
    let ip = ip_in(&block, 5);
    let ns = unique_name("ns");
    cp.create_service(&ns, "held", Some(&ip));
    cp.kubectl_ok(&["delete", "ipaddress", &ip]);
    let out = cp.plugin(&["delete", &name, "-o", "json"]);
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let r = &json_of(&out)["results"][0];
    assert_eq!(r["outcome"], "Refused");
    assert_eq!(r["blockingIPAddresses"][0]["ip"], ip.as_str());
    assert_eq!(r["blockingIPAddresses"][0]["service"], format!("{ns}/held"));
    assert!(
        cp.get(&format!("servicecidr/{name}")).unwrap()["metadata"]["deletionTimestamp"].is_null()
    );
}

#[test]
fn huge_durations_and_bad_names_are_refused_before_anything_changes() {
    let cp = ControlPlane::shared();
    let name = unique_name("bounds");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    let what = format!("servicecidr/{name}");
    let before = cp.get(&what).unwrap();
    for flag in ["--grace-period", "--timeout", "--controller-timeout"] {
        let out = cp.plugin(&["delete", &name, flag, "500000000000y"]);
        assert_eq!(code(&out), 2, "{flag}: {}", stderr_of(&out));
        assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
    }
    let out = cp.plugin(&["delete", &format!("{name}/status")]);
    assert_eq!(code(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("may hold only lower-case letters, digits"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(cp.get(&what).unwrap()["metadata"], before["metadata"]);
}

/// What a run killed between its guard and its delete leaves: a live range with the guard.
fn guard_by_hand(cp: &ControlPlane, name: &str) {
    cp.kubectl_ok(&[
        "patch",
        "servicecidr",
        name,
        "--type=json",
        "-p",
        &format!(r#"[{{"op":"add","path":"/metadata/finalizers/-","value":"{GUARD_FINALIZER}"}}]"#),
    ]);
}

#[test]
fn a_run_killed_between_its_guard_and_its_delete_is_finished_or_cleaned_up_by_a_rerun() {
    let cp = ControlPlane::shared();
    // Safe: the rerun deletes and releases it, guard and all.
    let spare = unique_name("half");
    cp.create_ready_service_cidr(&spare, &[&cp.next_v4_block()]);
    guard_by_hand(cp, &spare);
    let out = cp.plugin(&["delete", &spare, "-o", "json"]);
    assert_eq!(outcome(&out), "Deleted", "{}", stderr_of(&out));
    assert!(cp.get(&format!("servicecidr/{spare}")).is_none());
    // Unsafe now: the rerun refuses and leaves nothing of its own on the live range.
    let block = cp.next_v4_block();
    let busy = unique_name("half");
    cp.create_ready_service_cidr(&busy, &[&block]);
    cp.create_service(&unique_name("ns"), "held", Some(&ip_in(&block, 6)));
    guard_by_hand(cp, &busy);
    let out = cp.plugin(&["delete", &busy, "-o", "json"]);
    assert_eq!(outcome(&out), "Refused", "{}", stderr_of(&out));
    let o = cp.get(&format!("servicecidr/{busy}")).unwrap();
    assert!(o["metadata"]["deletionTimestamp"].is_null(), "{o}");
    assert!(
        !o["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == GUARD_FINALIZER),
        "{o}"
    );
}
