//! `delete --wait` against the real control plane, including the faults it must survive.

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    ControlPlane, GUARD_FINALIZER, SERVICE_CIDR_FINALIZER, code, ip_in, json_of, retire_args,
    stderr_of, stdout_of, unique_name,
};

fn result(doc: &Value) -> &Value {
    &doc["results"][0]
}

/// A ready range that carries the controller's finalizer.
fn ready_range(cp: &ControlPlane, cidrs: &[&str]) -> String {
    let name = unique_name("retire");
    cp.create_ready_service_cidr(&name, cidrs);
    name
}

/// A control plane whose controller stopped after giving a range its finalizer.
fn without_controller() -> (ControlPlane, String, String) {
    let cp = ControlPlane::start_dedicated(true);
    let block = cp.next_v4_block();
    let name = ready_range(&cp, &[&block]);
    cp.stop_controller();
    (cp, name, block)
}

fn spawn(cp: &ControlPlane, args: &[&str]) -> Child {
    cp.spawn_plugin(args)
}

/// The plugin run ended with the range gone, its finalizer removed by the plugin itself.
fn released_by_plugin(child: Child) {
    let out = child.wait_with_output().unwrap();
    let doc = json_of(&out);
    assert_eq!(result(&doc)["outcome"], "Deleted", "{}", stderr_of(&out));
    assert_eq!(result(&doc)["releasedBy"], "plugin");
}

fn terminating(cp: &ControlPlane, name: &str) {
    cp.wait_for(
        &format!("servicecidr/{name}"),
        Duration::from_secs(30),
        |o| o.is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string()),
    );
}

/// The range is exactly as it was read into `before`: same resourceVersion, not deleted.
fn assert_untouched(cp: &ControlPlane, name: &str, before: &Value) {
    let after = cp.get(&format!("servicecidr/{name}")).unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert!(after["metadata"]["deletionTimestamp"].is_null());
}

fn finalizers(cp: &ControlPlane, name: &str) -> Vec<String> {
    let o = cp.get(&format!("servicecidr/{name}")).unwrap();
    serde_json::from_value(o["metadata"]["finalizers"].clone()).unwrap_or_default()
}

#[test]
fn an_empty_range_goes_soon_after_the_controller_releases_it() {
    let cp = ControlPlane::shared();
    let name = ready_range(cp, &[&cp.next_v4_block()]);
    let started = Instant::now();
    let doc = json_of(&cp.plugin(&["delete", &name, "--wait", "-o", "json"]));
    let elapsed = started.elapsed();
    assert_eq!(result(&doc)["outcome"], "Deleted");
    assert_eq!(result(&doc)["releasedBy"], "controller");
    assert!(cp.get(&format!("servicecidr/{name}")).is_none());
    // The controller waits 10 s from the deletionTimestamp (second resolution); we must follow
    // within 1.5 s of its release.
    assert!(
        elapsed >= Duration::from_secs(8) && elapsed <= Duration::from_millis(12_500),
        "{elapsed:?}"
    );
}

#[test]
fn a_range_with_uncovered_ips_is_refused_before_anything_is_deleted() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let name = ready_range(cp, &[&block]);
    let ns = unique_name("ns");
    let ip = ip_in(&block, 4);
    cp.create_service(&ns, "busy", Some(&ip));
    let before = cp.get(&format!("servicecidr/{name}")).unwrap();
    let out = cp.plugin(&["delete", &name, "--wait", "-o", "json"]);
    assert_eq!(code(&out), 3);
    let doc = json_of(&out);
    assert_eq!(result(&doc)["outcome"], "Refused");
    assert_eq!(result(&doc)["blockingIPAddresses"][0]["ip"], ip.as_str());
    assert_eq!(
        result(&doc)["blockingIPAddresses"][0]["service"],
        format!("{ns}/busy")
    );
    assert_untouched(cp, &name, &before);
}

#[test]
fn a_range_nested_in_a_usable_one_is_allowed() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let _outer = ready_range(cp, &[&block]);
    let inner = ready_range(cp, &[&block.replace(".0/24", ".0/28")]);
    cp.create_service(&unique_name("ns"), "nested", Some(&ip_in(&block, 3)));
    let doc = json_of(&cp.plugin(&["delete", &inner, "--wait", "-o", "json"]));
    assert_eq!(result(&doc)["outcome"], "Deleted");
}

#[test]
fn dry_runs_change_nothing() {
    let cp = ControlPlane::shared();
    let name = ready_range(cp, &[&cp.next_v4_block()]);
    let before = cp.get(&format!("servicecidr/{name}")).unwrap();
    // Each mode says what it did, on stdout and stderr alike, and never that anything was
    // guarded or deleted.
    for (mode, message) in [
        ("--dry-run", "safe to delete; not deleted (dry run)"),
        (
            "--dry-run=server",
            "safe to delete; the server accepted the delete (dry run), nothing changed",
        ),
    ] {
        let out = cp.plugin(&["delete", &name, mode, "-o", "json"]);
        let doc = json_of(&out);
        assert_eq!(result(&doc)["outcome"], "DryRun", "{mode}");
        assert_eq!(result(&doc)["message"], message, "{mode}");
        assert!(
            !stderr_of(&out).contains("guarded"),
            "{mode}: {}",
            stderr_of(&out)
        );
    }
    assert_untouched(cp, &name, &before);
    // Resuming a range already terminating: the dry run says what a real run would do.
    cp.set_finalizers(
        "servicecidr",
        &name,
        &[SERVICE_CIDR_FINALIZER, "example.com/hold"],
    );
    cp.delete("servicecidr", &name);
    terminating(cp, &name);
    for mode in ["--dry-run", "--dry-run=server"] {
        let out = cp.plugin(&["delete", &name, mode, "--wait", "-o", "json"]);
        assert_eq!(
            result(&json_of(&out))["message"],
            "already terminating; a real run would wait and release it when safe (dry run, nothing changed)",
            "{mode}"
        );
        assert!(
            !stderr_of(&out).contains("guarded"),
            "{mode}: {}",
            stderr_of(&out)
        );
    }
    cp.set_finalizers("servicecidr", &name, &[]);
}

#[test]
fn the_read_only_user_is_told_it_may_not_delete() {
    let cp = ControlPlane::shared();
    cp.bind_viewer_readonly();
    let name = ready_range(cp, &[&cp.next_v4_block()]);
    let before = cp.get(&format!("servicecidr/{name}")).unwrap();
    let out = cp.plugin_as_viewer(&["delete", &name, "--wait"]);
    assert_eq!(code(&out), 1);
    let stderr = stderr_of(&out);
    // Progress lines come first on stderr; the error is one line, last. Asked before any write,
    // so not even the guard is added.
    assert_eq!(
        stderr.lines().last().unwrap(),
        format!(
            "error: not deleted: not allowed to delete, patch (to guard and release it) servicecidr {name:?}; the servicecidr-operator ClusterRole (deploy/rbac) grants what delete needs"
        ),
        "{stderr}"
    );
    assert_untouched(cp, &name, &before);
}

/// Lets the user `operator` read everything and delete ServiceCIDRs, but neither watch nor patch
/// them.
const DELETE_ONLY_ROLE: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: test-delete-only}
rules:
- {apiGroups: [networking.k8s.io], resources: [servicecidrs], verbs: [get, list, delete]}
- {apiGroups: [networking.k8s.io], resources: [ipaddresses], verbs: [get, list, watch]}
- {apiGroups: [''], resources: [services], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: test-delete-only}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: test-delete-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: operator}]
";

#[test]
fn rights_missing_for_the_wait_or_the_release_are_named_before_anything_is_deleted() {
    let cp = ControlPlane::shared();
    let role = cp.dir.join("delete-only.yaml");
    std::fs::write(&role, DELETE_ONLY_ROLE).unwrap();
    cp.apply_rbac(role.to_str().unwrap(), "operator", "delete");
    let name = ready_range(cp, &[&cp.next_v4_block()]);
    let before = cp.get(&format!("servicecidr/{name}")).unwrap();

    let mut args = vec!["--context", "operator"];
    args.extend(retire_args(&name));
    let out = cp.plugin(&args);
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    assert_eq!(
        stderr_of(&out).lines().last().unwrap(),
        format!(
            "error: not deleted: not allowed to patch (to guard and release it), watch (to wait) servicecidr {name:?}; the servicecidr-operator ClusterRole (deploy/rbac) grants what delete needs"
        )
    );
    assert_untouched(cp, &name, &before);

    // Not waiting needs no watch, but the guard still needs patch: nothing is deleted unguarded.
    let out = cp.plugin(&["--context", "operator", "delete", &name, "--wait=false"]);
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).ends_with(&format!(
            "error: not deleted: not allowed to patch (to guard and release it) servicecidr {name:?}; the servicecidr-operator ClusterRole (deploy/rbac) grants what delete needs\n"
        )),
        "{}",
        stderr_of(&out)
    );
    assert_untouched(cp, &name, &before);
}

#[test]
fn without_a_controller_the_plugin_releases_only_after_the_grace_period() {
    let (cp, name, _) = without_controller();
    let started = Instant::now();
    let doc = json_of(&cp.plugin(&retire_args(&name)));
    assert_eq!(result(&doc)["outcome"], "Deleted");
    assert_eq!(result(&doc)["releasedBy"], "plugin");
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "released before the grace period: {:?}",
        started.elapsed()
    );
    assert!(cp.get(&format!("servicecidr/{name}")).is_none());
}

#[test]
fn a_controller_stopped_mid_wait_is_taken_over_after_the_controller_timeout() {
    let cp = ControlPlane::start_dedicated(true);
    let name = ready_range(&cp, &[&cp.next_v4_block()]);
    let started = Instant::now();
    let child = spawn(
        &cp,
        &[
            "delete",
            &name,
            "--wait",
            "--controller-timeout",
            "3s",
            "--grace-period",
            "15s",
            "-o",
            "json",
        ],
    );
    terminating(&cp, &name);
    cp.stop_controller();
    released_by_plugin(child);
    assert!(
        started.elapsed() >= Duration::from_secs(18),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_ip_appearing_during_the_grace_period_stops_the_release() {
    let (cp, name, block) = without_controller();
    let child = spawn(
        &cp,
        &[
            "delete",
            &name,
            "--wait",
            "--remove-finalizer",
            "--grace-period",
            "15s",
            "-o",
            "json",
        ],
    );
    terminating(&cp, &name);
    // What a late apiserver allocator does: record an IP from the range being deleted.
    let ip = ip_in(&block, 9);
    cp.create_ipaddress(&ip, "default", "late", true);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let doc = json_of(&out);
    assert_eq!(result(&doc)["outcome"], "AtRisk");
    assert_eq!(result(&doc)["blockingIPAddresses"][0]["ip"], ip.as_str());
    assert_eq!(
        finalizers(&cp, &name),
        [GUARD_FINALIZER, SERVICE_CIDR_FINALIZER]
    );
}

#[test]
fn the_wait_survives_an_apiserver_restart() {
    let (cp, name, _) = without_controller();
    let child = spawn(
        &cp,
        &[
            "delete",
            &name,
            "--wait",
            "--remove-finalizer",
            "--grace-period",
            "12s",
            "-o",
            "json",
        ],
    );
    terminating(&cp, &name);
    cp.restart_apiserver();
    released_by_plugin(child);
}

#[test]
fn two_plugins_retiring_the_same_range_both_end_well() {
    let (cp, name, _) = without_controller();
    let what = format!("servicecidr/{name}");
    let watch = cp.watch_events(None, &what);
    let first = watch.events.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first["type"], "ADDED", "{first}");
    let args = retire_args(&name);
    let (a, b) = (spawn(&cp, &args), spawn(&cp, &args));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            result(&json_of(&out))["outcome"],
            "Deleted",
            "{}",
            stderr_of(&out)
        );
    }
    // Whatever the interleaving, the range went through one guard, one deletion and one release:
    // guarded, marked terminating, then gone, with no other write in between.
    let mut types = Vec::new();
    while let Ok(ev) = watch.events.recv_timeout(Duration::from_secs(10)) {
        let object = &ev["object"];
        let kind = ev["type"].as_str().unwrap_or_default();
        let terminating = object["metadata"]["deletionTimestamp"].is_string();
        types.push(match (kind, terminating) {
            ("MODIFIED", false) => "guarded",
            ("MODIFIED", true) => "terminating",
            ("DELETED", _) => "deleted",
            _ => panic!("{ev}"),
        });
        if kind == "MODIFIED" {
            assert_eq!(
                object["metadata"]["finalizers"],
                serde_json::json!([GUARD_FINALIZER, SERVICE_CIDR_FINALIZER]),
                "{ev}"
            );
        }
        if kind == "DELETED" {
            break;
        }
    }
    assert_eq!(types, ["guarded", "terminating", "deleted"]);
    assert!(cp.get(&what).is_none());
}

#[test]
fn rerunning_on_a_terminating_range_resumes_the_wait() {
    let (cp, name, _) = without_controller();
    cp.delete("servicecidr", &name);
    terminating(&cp, &name);
    let out = cp.plugin(&retire_args(&name));
    assert!(
        stderr_of(&out).contains("already terminating"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(result(&json_of(&out))["outcome"], "Deleted");
}

#[test]
fn ctrl_c_leaves_the_range_as_it_is_and_says_how_to_resume() {
    let (cp, name, _) = without_controller();
    let child = spawn(
        &cp,
        &["delete", &name, "--wait", "--controller-timeout", "10m"],
    );
    terminating(&cp, &name);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        finalizers(&cp, &name),
        [GUARD_FINALIZER, SERVICE_CIDR_FINALIZER]
    );
    assert!(
        text.contains("Interrupted")
            && text.contains(&format!(
                "resume with: kubectl servicecidr delete {name} --wait"
            )),
        "{text}"
    );
    // The rerun it names finishes the job.
    let doc = json_of(&cp.plugin(&retire_args(&name)));
    assert_eq!(result(&doc)["outcome"], "Deleted");
    assert!(cp.get(&format!("servicecidr/{name}")).is_none());
}

#[tokio::test]
async fn stale_reads_never_delete_nor_release_a_changed_range() {
    use kubectl_servicecidr::cluster::{Cluster, Connection};
    let (cp, name, _) = without_controller();
    let conn = Connection {
        kubeconfig: Some(cp.kubeconfig.clone()),
        ..Default::default()
    };
    let cluster = Cluster::connect(&conn, 500).await.unwrap();
    let (stale, _) = cluster.get_service_cidr(&name).await.unwrap().unwrap();
    cp.kubectl_ok(&["label", "servicecidr", &name, "touched=yes"]);

    let err = cluster
        .delete_service_cidr(&stale, false)
        .await
        .unwrap_err();
    assert!(err.api_error().is_some_and(|a| a.is_conflict()), "{err}");
    assert!(
        cp.get(&format!("servicecidr/{name}")).unwrap()["metadata"]["deletionTimestamp"].is_null()
    );

    let (fresh, _) = cluster.get_service_cidr(&name).await.unwrap().unwrap();
    cluster.delete_service_cidr(&fresh, false).await.unwrap();
    let (terminating, _) = cluster.get_service_cidr(&name).await.unwrap().unwrap();
    cp.kubectl_ok(&[
        "label",
        "servicecidr",
        &name,
        "touched=again",
        "--overwrite",
    ]);
    let err = cluster
        .remove_finalizers(&terminating, &[SERVICE_CIDR_FINALIZER.to_owned()])
        .await
        .unwrap_err();
    assert!(err.api_error().is_some_and(|a| a.is_conflict()), "{err}");
    assert_eq!(finalizers(&cp, &name), [SERVICE_CIDR_FINALIZER]);
}

#[test]
fn the_shipped_operator_role_is_enough_to_retire_a_range() {
    let (cp, name, _) = without_controller();
    cp.bind_operator();
    let mut args = vec!["--context", "operator"];
    args.extend(retire_args(&name));
    let doc = json_of(&cp.plugin(&args));
    assert_eq!(result(&doc)["outcome"], "Deleted");
    assert_eq!(result(&doc)["releasedBy"], "plugin");
}

/// Admission is asked before the guard: a policy that refuses the delete leaves the range as it
/// was, and one that refuses only the real delete (not its dry run) has the guard taken off again.
#[test]
fn a_delete_refused_by_admission_leaves_no_guard() {
    let cp = ControlPlane::shared();
    for dry_runs_pass in [false, true] {
        let prefix = unique_name("keep");
        let (name, probe) = (format!("{prefix}-target"), format!("{prefix}-probe"));
        cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
        let before = cp.get(&format!("servicecidr/{name}")).unwrap();
        let lets_dry_runs_through = if dry_runs_pass {
            "request.dryRun == true || "
        } else {
            ""
        };
        // Enforced once a real delete of a range of the same prefix is refused.
        let enforced = || {
            if cp.get(&format!("servicecidr/{probe}")).is_none() {
                cp.create_service_cidr(&probe, &[&cp.next_v4_block()]);
            }
            !cp.kubectl(&["delete", "servicecidr", &probe, "--wait=false"])
                .status
                .success()
        };
        cp.deny_by_policy(
            &prefix,
            ("networking.k8s.io", "servicecidrs"),
            "DELETE",
            &format!("{lets_dry_runs_through}!oldObject.metadata.name.startsWith('{prefix}')"),
            enforced,
        );
        let out = cp.plugin(&["delete", &name, "--wait", "-o", "json"]);
        assert_eq!(code(&out), 1, "{}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(&format!("denied by the test policy {prefix}")),
            "{}",
            stderr_of(&out)
        );
        let after = cp.get(&format!("servicecidr/{name}")).unwrap();
        assert!(after["metadata"]["deletionTimestamp"].is_null());
        assert_eq!(
            after["metadata"]["finalizers"],
            before["metadata"]["finalizers"]
        );
        if !dry_runs_pass {
            assert_untouched(cp, &name, &before);
        }
        cp.allow_again(&prefix, enforced);
        cp.delete("servicecidr", &probe);
    }
}

/// Dropping the grace period and taking the release over is allowed, but never without a word
/// about the race the grace period exists for.
#[test]
fn no_grace_period_with_remove_finalizer_is_warned_about() {
    let cp = ControlPlane::shared();
    let warning = "warning: --grace-period 0s with --remove-finalizer releases a range as soon as its check passes";
    let name = ready_range(cp, &[&cp.next_v4_block()]);
    let out = cp.plugin(&[
        "delete",
        &name,
        "--wait",
        "--grace-period",
        "0s",
        "--remove-finalizer",
        "-o",
        "json",
    ]);
    assert_eq!(result(&json_of(&out))["outcome"], "Deleted");
    assert!(stderr_of(&out).contains(warning), "{}", stderr_of(&out));
    let name = ready_range(cp, &[&cp.next_v4_block()]);
    let out = cp.plugin(&retire_args(&name));
    assert_eq!(result(&json_of(&out))["outcome"], "Deleted");
    assert!(!stderr_of(&out).contains(warning), "{}", stderr_of(&out));
}

/// Someone strips the plugin's guard while the controller is down, and the controller, once back,
/// releases the range by its own rule (which ignores IPAddresses not made by the allocator): the
/// plugin says so at once, and its result is not "Deleted" but what the release left behind. A
/// range the controller never held (made while it was down) is the plugin's release.
#[test]
fn a_guard_stripped_by_another_client_is_noticed_and_the_release_not_vouched_for() {
    let (cp, name, block) = without_controller();
    let fresh = unique_name("unheld");
    cp.create_service_cidr(&fresh, &[&cp.next_v4_block()]);
    let child = spawn(
        &cp,
        &[
            "delete",
            &name,
            "--wait",
            "--controller-timeout",
            "5m",
            "-o",
            "json",
        ],
    );
    // The guard goes on before the delete, so a terminating range carries it.
    terminating(&cp, &name);
    cp.set_finalizers("servicecidr", &name, &[SERVICE_CIDR_FINALIZER]);
    let ip = ip_in(&block, 7);
    cp.create_ipaddress(&ip, "default", "by-hand", false);

    let doc = json_of(&cp.plugin(&retire_args(&fresh)));
    assert_eq!(result(&doc)["outcome"], "Deleted");
    assert_eq!(result(&doc)["releasedBy"], "plugin");

    cp.start_controller();
    let out = child.wait_with_output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(code(&out), 3, "{stderr}");
    assert!(
        stderr.contains("another client removed the plugin's guard finalizer"),
        "{stderr}"
    );
    let doc = json_of(&out);
    assert_eq!(result(&doc)["outcome"], "Orphaned", "{stderr}");
    assert_eq!(result(&doc)["releasedBy"], "controller");
    assert_eq!(result(&doc)["guardRemovedByAnotherClient"], true);
    assert_eq!(result(&doc)["orphanedIPs"][0], ip.as_str());
}

/// `--wait=false` stops after the delete: the range stays guarded once the controller is done,
/// `status` says a rerun resumes it, and one does.
#[test]
fn without_the_wait_the_range_stays_guarded_until_a_rerun_releases_it() {
    let cp = ControlPlane::shared();
    let name = ready_range(cp, &[&cp.next_v4_block()]);
    let doc = json_of(&cp.plugin(&["delete", &name, "--wait=false", "-o", "json"]));
    assert_eq!(result(&doc)["outcome"], "Terminating");
    // The controller releases its part after the grace period; the guard stays.
    cp.wait_for(
        &format!("servicecidr/{name}"),
        Duration::from_secs(60),
        |o| o.is_some_and(|o| o["metadata"]["finalizers"] == serde_json::json!([GUARD_FINALIZER])),
    );
    let table = stdout_of(&cp.plugin(&["status", &name]));
    assert!(
        table.contains("guarded: kubectl servicecidr delete resumes"),
        "{table}"
    );
    let doc = json_of(&cp.plugin(&["delete", &name, "--wait", "-o", "json"]));
    assert_eq!(result(&doc)["outcome"], "Deleted");
    assert!(cp.get(&format!("servicecidr/{name}")).is_none());
}
