//! Many clusters at once (`--all-contexts`, `--contexts`), against several real control planes:
//! every context reported, a failing one in its own row without stopping the others, and Service
//! ranges that overlap between different clusters (never between contexts of one cluster).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::faults::{Action, FaultProxy};
use support::{ControlPlane, PLUGIN, code, json_of, stderr_of, stdout_of, unique_name};

/// The contexts of `kubeconfig` under `prefix-NAME` (clusters and users alike), as a JSON value.
fn renamed(kubeconfig: &Path, prefix: &str) -> Value {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let mut kc: Value = serde_yaml_ng::from_str(&text).unwrap();
    let rename = |v: &mut Value| {
        let name = v.as_str().unwrap_or_default().to_owned();
        *v = json!(format!("{prefix}-{name}"));
    };
    for list in ["clusters", "users", "contexts"] {
        for item in kc[list].as_array_mut().unwrap() {
            rename(&mut item["name"]);
            if list == "contexts" {
                rename(&mut item["context"]["cluster"]);
                rename(&mut item["context"]["user"]);
            }
        }
    }
    kc
}

/// Only the context `name` of a renamed kubeconfig.
fn only(mut kc: Value, name: &str) -> Value {
    let admin: Vec<Value> = kc["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .cloned()
        .collect();
    kc["contexts"] = json!(admin);
    kc
}

/// One kubeconfig holding the given ones (renamed), current context the first of the first.
fn merged(parts: &[Value], name: &str) -> PathBuf {
    let mut all =
        json!({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []});
    for kc in parts {
        for list in ["clusters", "users", "contexts"] {
            let items = kc[list].as_array().unwrap().clone();
            all[list].as_array_mut().unwrap().extend(items);
        }
    }
    all["current-context"] = all["contexts"][0]["name"].clone();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fleet-{name}-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, serde_yaml_ng::to_string(&all).unwrap()).unwrap();
    path
}

fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(PLUGIN)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn entry<'a>(doc: &'a Value, context: &str) -> &'a Value {
    doc["contexts"]
        .as_array()
        .and_then(|c| c.iter().find(|e| e["context"] == context))
        .unwrap_or_else(|| panic!("{context} not in {doc}"))
}

#[test]
fn status_across_clusters_reports_each_and_the_ranges_they_share() {
    let a = ControlPlane::shared();
    a.bind_viewer_readonly();
    let b = ControlPlane::start_dedicated(true);
    let block = a.next_v4_block();
    let (ra, rb) = (unique_name("fleet-a"), unique_name("fleet-b"));
    a.create_service_cidr(&ra, &[&block]);
    b.create_service_cidr(&rb, &[&block]);
    let kc = merged(
        &[renamed(&a.kubeconfig, "a"), renamed(&b.kubeconfig, "b")],
        "status",
    );

    let out = plugin(
        &kc,
        &[
            "status",
            "--contexts",
            "a-admin,a-viewer,b-admin",
            "-o",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    let doc = json_of(&out);
    assert_eq!(doc["kind"], "ServiceCIDRFleetStatus");
    let names: Vec<&str> = doc["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["context"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-admin", "a-viewer", "b-admin"]);
    // The shape of an entry: context, server, and the single-cluster document under `status`.
    let e = entry(&doc, "b-admin");
    let mut keys: Vec<&String> = e.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["context", "server", "status"]);
    assert!(
        e["server"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    assert!(
        e["status"]["serviceCIDRs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == rb.as_str())
    );

    let pairs: Vec<[(String, String, String); 2]> = doc["crossClusterOverlaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let side = |s: &Value| {
                (
                    s["context"].as_str().unwrap().to_owned(),
                    s["serviceCIDR"].as_str().unwrap().to_owned(),
                    s["cidr"].as_str().unwrap().to_owned(),
                )
            };
            [side(&p[0]), side(&p[1])]
        })
        .collect();
    let shared = [
        ("a-admin".to_owned(), ra.clone(), block.clone()),
        ("b-admin".to_owned(), rb.clone(), block.clone()),
    ];
    assert!(pairs.contains(&shared), "{pairs:?}");
    // Two contexts of one cluster are one cluster: never an overlap between them.
    assert!(
        !pairs
            .iter()
            .any(|[x, y]| x.0.starts_with("a-") && y.0.starts_with("a-")),
        "{pairs:?}"
    );

    let table = plugin(&kc, &["status", "--contexts", "a-admin,b-admin"]);
    let text = stdout_of(&table);
    assert!(text.starts_with("CONTEXT"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("b-admin") && l.contains(&rb)),
        "{text}"
    );
    assert!(text.contains("overlap between clusters"), "{text}");
    let quiet = plugin(
        &kc,
        &[
            "status",
            "--contexts",
            "a-admin,b-admin",
            "--no-cross-cluster",
            "-o",
            "json",
        ],
    );
    assert!(json_of(&quiet).get("crossClusterOverlaps").is_none());
}

#[test]
fn a_failing_context_gets_its_row_and_the_others_are_complete() {
    let a = ControlPlane::shared();
    let c = ControlPlane::start_dedicated(false);
    // A user the API server does not know, on a's server.
    let mut stranger = renamed(&a.kubeconfig, "stranger");
    for user in stranger["users"].as_array_mut().unwrap() {
        user["user"] = json!({"token": "not-a-token"});
    }
    let stranger = only(stranger, "stranger-admin");
    // A server that takes requests and never answers.
    let proxy = FaultProxy::start(a, "fleet-hang");
    proxy.set_rule(|_| Action::Hang);
    let mut hang = renamed(&proxy.kubeconfig, "hang");
    hang["contexts"][0]["name"] = json!("hang");
    let kc = merged(
        &[
            only(renamed(&a.kubeconfig, "a"), "a-admin"),
            only(renamed(&c.kubeconfig, "c"), "c-admin"),
            stranger,
            hang,
        ],
        "failing",
    );
    // The cluster behind c goes away before the read.
    c.stop();

    let started = Instant::now();
    let out = plugin(
        &kc,
        &[
            "orphans",
            "--all-contexts",
            "--request-timeout",
            "3s",
            "-o",
            "json",
        ],
    );
    let took = started.elapsed();
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "ServiceCIDRFleetAudit");
    let ok = entry(&doc, "a-admin");
    assert!(
        ok["error"].is_null() && ok["audit"]["summary"].is_array(),
        "{ok}"
    );
    for (context, says) in [
        (
            "c-admin",
            "cannot reach the API server at https://127.0.0.1:",
        ),
        ("stranger-admin", "Unauthorized"),
        ("hang", "no complete answer within --request-timeout 3s"),
    ] {
        let e = entry(&doc, context);
        let error = e["error"].as_str().unwrap_or_else(|| panic!("{e}"));
        assert!(error.contains(says), "{context}: {error}");
        assert!(!error.contains('\n'));
        assert!(e.get("audit").is_none());
    }
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("3 of 4 contexts could not be read"),
        "{stderr}"
    );

    let table = plugin(
        &kc,
        &[
            "orphans",
            "--contexts",
            "a-admin,c-admin",
            "--request-timeout",
            "3s",
        ],
    );
    assert_eq!(code(&table), 1);
    let text = stdout_of(&table);
    assert!(
        text.lines()
            .any(|l| l.starts_with("c-admin") && l.contains("error: ")),
        "{text}"
    );
}

#[test]
fn fleet_flags_are_checked_before_any_cluster_is_asked() {
    let a = ControlPlane::shared();
    let kc = merged(&[renamed(&a.kubeconfig, "a")], "flags");
    let out = plugin(&kc, &["status", "--contexts", "a-admin,nope"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr_of(&out).contains(r#"context "nope" not found in kubeconfig"#),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(stdout_of(&out), "");
    // A context named with a comma is out of --contexts' reach, and the error says so.
    let mut comma = renamed(&a.kubeconfig, "a");
    comma["contexts"][0]["name"] = json!("x,y");
    let kc2 = merged(&[comma], "comma");
    let out = plugin(&kc2, &["status", "--contexts", "x,y"]);
    assert!(
        stderr_of(&out).contains("a context whose name holds a comma cannot be named in --contexts: use --context NAME or --all-contexts"),
        "{}",
        stderr_of(&out)
    );
    for bad in [
        &["status", "--all-contexts", "--context", "a-admin"][..],
        &["status", "--all-contexts", "--watch"],
        &["status", "--contexts", "a-admin", "-o", "prometheus"],
        &["orphans", "--all-contexts", "--suggest-range"],
    ] {
        assert_eq!(code(&plugin(&kc, bad)), 2, "{bad:?}");
    }
}

/// One cluster reached through contexts that spell its server differently is one cluster: no
/// overlap is reported between them (its kube-system UID says so); a context named twice is read
/// once.
#[test]
fn one_cluster_under_several_names_shares_nothing_with_itself() {
    let cp = ControlPlane::shared();
    let port = cp
        .kubectl_ok(&[
            "config",
            "view",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let mut parts = Vec::new();
    for (prefix, server) in [
        ("a", format!("https://127.0.0.1:{port}")),
        ("b", format!("https://LOCALHOST:{port}")),
        ("c", format!("https://localhost:{port}//")),
    ] {
        let mut kc = only(renamed(&cp.kubeconfig, prefix), &format!("{prefix}-admin"));
        for c in kc["clusters"].as_array_mut().unwrap() {
            c["cluster"]["server"] = json!(server);
        }
        parts.push(kc);
    }
    let kubeconfig = merged(&parts, "one-cluster");
    let out = plugin(&kubeconfig, &["status", "--all-contexts", "-o", "json"]);
    let doc = json_of(&out);
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    assert_eq!(doc["contexts"].as_array().unwrap().len(), 3, "{doc:#}");
    assert_eq!(doc["crossClusterOverlaps"], json!([]), "{doc:#}");
    let out = plugin(
        &kubeconfig,
        &[
            "status",
            "--contexts",
            "a-admin,b-admin,a-admin",
            "-o",
            "json",
        ],
    );
    let doc = json_of(&out);
    let contexts: Vec<&str> = doc["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["context"].as_str().unwrap())
        .collect();
    assert_eq!(contexts, ["a-admin", "b-admin"]);
}

/// Findings in any context make a fleet `orphans` exit 3, with each finding under its context.
#[test]
fn findings_in_a_context_make_the_fleet_exit_3() {
    let cp = ControlPlane::shared();
    let ip = "10.253.0.9";
    cp.create_ipaddress(ip, "default", "nowhere", false);
    let kubeconfig = merged(&[renamed(&cp.kubeconfig, "f")], "findings");
    let out = plugin(
        &kubeconfig,
        &["orphans", "--contexts", "f-admin", "-o", "json"],
    );
    cp.delete("ipaddress", ip);
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    let doc = json_of(&out);
    let findings = doc["contexts"][0]["audit"]["findings"].to_string();
    assert!(findings.contains(ip), "{doc:#}");
}
