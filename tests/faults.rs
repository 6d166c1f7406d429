//! Failures a healthy control plane does not produce on cue, injected between the plugin and the
//! real kube-apiserver ([`support::faults`]): throttling, bursts of 5xx, and a real 409 provoked at
//! the moment of the finalizer patch.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::faults::{Action, FaultProxy, Seen};
use support::{
    ControlPlane, PLUGIN, SERVICE_CIDR_FINALIZER, code, json_of, retire_args, stderr_of,
    unique_name,
};

/// The plugin, verbose, talking to the cluster through the proxy.
fn plugin_via(proxy: &FaultProxy, args: &[&str]) -> Output {
    Command::new(PLUGIN)
        .arg("--kubeconfig")
        .arg(&proxy.kubeconfig)
        .arg("-v")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn injected(seen: &[Seen]) -> Vec<u16> {
    seen.iter().filter_map(|s| s.injected).collect()
}

/// API discovery, which goes out beside the first lists.
const DISCOVERY: &str = "/apis/networking.k8s.io/v1";

/// The requests for API discovery: the ones these tests refuse.
fn discovery(seen: Vec<Seen>) -> Vec<Seen> {
    seen.into_iter().filter(|s| s.path == DISCOVERY).collect()
}

/// Answers the first requests that `to` picks with these statuses (and Retry-After), then
/// forwards everything.
fn first_answers(
    plan: Vec<(u16, Option<u32>)>,
    to: fn(&Seen) -> bool,
) -> impl FnMut(&Seen) -> Action + Send {
    let mut plan = plan.into_iter().peekable();
    move |s| match plan.next_if(|_| to(s)) {
        Some((status, retry_after)) => Action::Answer {
            status,
            retry_after,
        },
        None => Action::Forward,
    }
}

#[test]
fn throttling_and_unavailability_are_retried_until_the_server_answers() {
    let cp = ControlPlane::shared();
    let name = unique_name("throttled");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    let proxy = FaultProxy::start(cp, &name);
    proxy.set_rule(first_answers(
        vec![(429, Some(1)), (503, None), (504, None), (500, Some(1))],
        |s| s.path == DISCOVERY,
    ));

    let out = plugin_via(&proxy, &["status", &name, "-o", "json"]);
    let err = stderr_of(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert_eq!(json_of(&out)["serviceCIDRs"][0]["name"], name.as_str());

    let seen = discovery(proxy.seen());
    assert_eq!(injected(&seen), [429, 503, 504, 500], "{seen:?}");
    // Each retry repeats the refused request, and waits at least what Retry-After asked.
    for pair in seen[..5].windows(2) {
        assert_eq!(
            (&pair[0].method, &pair[0].path),
            (&pair[1].method, &pair[1].path)
        );
    }
    for i in [0, 3] {
        let gap = seen[i + 1].at - seen[i].at;
        assert!(
            gap >= Duration::from_secs(1),
            "Retry-After: 1 not honoured: {gap:?}"
        );
    }
    for n in 1..=4 {
        assert!(err.contains(&format!("retry {n}/10")), "{err}");
    }
}

#[test]
fn a_server_that_keeps_throttling_is_given_up_on_within_the_bound() {
    let cp = ControlPlane::shared();
    let proxy = FaultProxy::start(cp, &unique_name("always-throttled"));
    proxy.set_rule(|_| Action::Answer {
        status: 429,
        retry_after: Some(1),
    });

    let out = plugin_via(&proxy, &["status"]);
    let err = stderr_of(&out);
    assert_eq!(code(&out), 1, "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "error: failed to discover the networking.k8s.io API: Too many requests, please try again later. (the API server kept throttling: gave up retrying)"
    );

    // One request, retried at most 10 times and for at most 30 s of waiting, then abandoned; the
    // lists that went out beside it give way to its error.
    let seen = discovery(proxy.seen());
    let retries = seen.len() - 1;
    assert!((2..=10).contains(&retries), "{seen:?}");
    assert!(
        err.contains(&format!("giving up after {retries} retries")),
        "{err}"
    );
    let waited = seen[retries].at - seen[0].at;
    assert!(waited <= Duration::from_secs(32), "{waited:?}");
}

/// A range on a control plane of its own whose controller is stopped, so the plugin releases it.
fn range_without_controller() -> (ControlPlane, String) {
    let cp = ControlPlane::start_dedicated(true);
    let name = unique_name("faulty");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    cp.stop_controller();
    (cp, name)
}

fn deleted_by_plugin(out: &Output) {
    let doc: Value = json_of(out);
    let result = &doc["results"][0];
    assert_eq!(result["outcome"], "Deleted", "{}", stderr_of(out));
    assert_eq!(result["releasedBy"], "plugin");
}

#[test]
fn a_real_conflict_on_the_finalizer_patch_is_rechecked_and_retried() {
    let (cp, name) = range_without_controller();
    let proxy = FaultProxy::start(&cp, &name);
    // At the first release patch (the second PATCH: the first puts the guard on), change the range
    // on the real server first: the patch then carries a stale resourceVersion and kube-apiserver
    // itself answers 409.
    let (kubectl, kubeconfig): (PathBuf, PathBuf) = (cp.bin.join("kubectl"), cp.kubeconfig.clone());
    let target = name.clone();
    let mut patches = 0;
    proxy.set_rule(move |s| {
        if s.method == "PATCH" {
            patches += 1;
        }
        if s.method == "PATCH" && patches == 2 {
            let status = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["label", "servicecidr", &target, "touched=during-release"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        }
        Action::Forward
    });

    let out = plugin_via(&proxy, &retire_args(&name));
    deleted_by_plugin(&out);
    assert!(
        stderr_of(&out).contains("changed while releasing: checking again"),
        "{}",
        stderr_of(&out)
    );
    let patches = proxy.seen().iter().filter(|s| s.method == "PATCH").count();
    assert_eq!(patches, 3, "{:?}", proxy.seen());
    assert!(cp.get(&format!("servicecidr/{name}")).is_none());
}

#[test]
fn a_burst_of_server_errors_during_the_wait_is_survived() {
    let (cp, name) = range_without_controller();
    let proxy = FaultProxy::start(&cp, &name);
    // Once the range is deleted, the next six requests fail: 500 without Retry-After and 503, whatever
    // they are (reads, watches, the re-check); the one retry policy repeats them.
    let mut deleted = false;
    let mut burst = vec![(500, None); 3];
    burst.extend([(503, None); 3]);
    let mut burst = first_answers(burst, |_| true);
    proxy.set_rule(move |s| {
        if deleted {
            return burst(s);
        }
        deleted = s.method == "DELETE" && !s.path.contains("dryRun");
        Action::Forward
    });

    let out = plugin_via(&proxy, &retire_args(&name));
    deleted_by_plugin(&out);
    assert_eq!(injected(&proxy.seen()), [500, 500, 500, 503, 503, 503]);
    assert!(cp.get(&format!("servicecidr/{name}")).is_none());
}

#[test]
fn an_ip_written_between_the_final_check_and_the_release_is_reported_as_orphaned() {
    let (cp, name) = range_without_controller();
    let block = cp.get(&format!("servicecidr/{name}")).unwrap()["spec"]["cidrs"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let ip = support::ip_in(&block, 9);
    let proxy = FaultProxy::start(&cp, &name);
    // At the release patch (the second PATCH), an IPAddress appears inside the range first: the
    // final check has already passed, and the range's resourceVersion does not change.
    let (kubectl, kubeconfig): (PathBuf, PathBuf) = (cp.bin.join("kubectl"), cp.kubeconfig.clone());
    let manifest = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": ip},
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "late"}},
    })
    .to_string();
    let mut patches = 0;
    proxy.set_rule(move |s| {
        patches += usize::from(s.method == "PATCH");
        if s.method == "PATCH" && patches == 2 {
            let mut child = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["create", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(manifest.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
        }
        Action::Forward
    });
    let out = plugin_via(&proxy, &retire_args(&name));
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let doc = json_of(&out);
    let r = &doc["results"][0];
    assert_eq!(r["outcome"], "Orphaned", "{doc}");
    assert_eq!(r["orphanedIPs"], serde_json::json!([ip]));
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("create a ServiceCIDR covering"),
        "{doc}"
    );
}

#[test]
fn timeout_bounds_the_whole_command_while_the_apiserver_hangs() {
    let (cp, name) = range_without_controller();
    let proxy = FaultProxy::start(&cp, &name);
    // Once the range is deleted, the server answers nothing more.
    let mut deleted = false;
    proxy.set_rule(move |s| {
        if deleted {
            return Action::Hang;
        }
        deleted = s.method == "DELETE" && !s.path.contains("dryRun");
        Action::Forward
    });
    let started = std::time::Instant::now();
    let out = plugin_via(&proxy, &["delete", &name, "--timeout", "5s", "-o", "json"]);
    let took = started.elapsed();
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    assert!(took < Duration::from_secs(9), "--timeout 5s took {took:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &doc["results"][0];
    assert_eq!(r["outcome"], "TimedOut", "{doc}");
    assert!(
        r["message"].as_str().unwrap().contains(&format!(
            "resume with: kubectl servicecidr delete {name} --wait"
        )),
        "{doc}"
    );
}

/// delete's wait is a retry loop like serve's: behind a proxy that answers every watch 410, it
/// reads the range at the retry pace, not as fast as the watches fail.
#[test]
fn the_wait_behind_watches_that_always_fail_keeps_to_the_retry_pace() {
    let cp = ControlPlane::shared();
    let name = unique_name("held");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    // Someone else's finalizer keeps it terminating once the controller and the plugin are done.
    cp.set_finalizers(
        "servicecidr",
        &name,
        &[SERVICE_CIDR_FINALIZER, "example.com/hold"],
    );
    let proxy = FaultProxy::start(cp, &name);
    proxy.answer_every_watch_gone();
    let out = plugin_via(
        &proxy,
        &["delete", &name, "--wait", "--timeout", "20s", "-o", "json"],
    );
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["results"][0]["outcome"], "TimedOut");
    let reads = proxy
        .seen()
        .iter()
        .filter(|s| {
            s.method == "GET"
                && s.path.contains(&format!("/servicecidrs/{name}"))
                && !s.path.contains("watch=")
        })
        .count();
    // Waits of 0.5-1, 1-2, 2-4, 4-8 and 8-16 s, and a read at the grace period's end: at most
    // about 8 in 20 s (hundreds without a pace).
    assert!((3..=10).contains(&reads), "{reads} reads in 20 s");
    cp.set_finalizers("servicecidr", &name, &[]);
}

/// An access review is a request like any other: one the server never answers fails the run
/// within --request-timeout, before anything is changed.
#[test]
fn a_hanging_access_review_is_bounded_by_the_request_timeout() {
    let cp = ControlPlane::shared();
    let name = unique_name("review");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    let before = cp.get(&format!("servicecidr/{name}")).unwrap();
    let proxy = FaultProxy::start(cp, &name);
    proxy.set_rule(|s| {
        if s.path.contains("selfsubjectaccessreviews") {
            Action::Hang
        } else {
            Action::Forward
        }
    });
    let started = std::time::Instant::now();
    let out = plugin_via(
        &proxy,
        &[
            "delete",
            &name,
            "--wait",
            "--request-timeout",
            "2s",
            "--timeout",
            "5m",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("ask whether this user may")
            && stderr_of(&out).contains("--request-timeout 2s"),
        "{}",
        stderr_of(&out)
    );
    let after = cp.get(&format!("servicecidr/{name}")).unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
}
