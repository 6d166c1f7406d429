//! `migrate` against the real control plane: about thirty Services of every kind moved, a run
//! killed between a delete and its create then resumed, a recreate that fails and is rolled back,
//! and the refusals.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::faults::{Action, FaultProxy, Seen};
use support::{
    ControlPlane, MIGRATOR_RBAC, code, ip_in, json_of, stderr_of, stdout_of, unique_name,
};

/// Creates a Service from `spec` in `ns`. `pinned: false` then clears its managedFields, which
/// leaves it exactly as a Service whose ClusterIP the allocator chose: nobody owns the field
/// (probed: an allocated IP is never in any manager's fieldsV1). An explicit IP is the only way
/// to put a Service in a given range while other ranges are usable, since the allocator picks
/// among all of them at random.
fn service(cp: &ControlPlane, ns: &str, name: &str, spec: Value, pinned: bool) -> Value {
    let created = cp.create(&json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}, "annotations": {"team": "blue"}},
        "spec": spec,
    }));
    if !pinned
        && created["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip != "None")
    {
        patch_service(cp, ns, name, r#"{"metadata":{"managedFields":[{}]}}"#);
    }
    cp.get_in(Some(ns), &format!("service/{name}")).unwrap()
}

fn ports(port: i64, node_port: Option<i64>) -> Value {
    match node_port {
        Some(n) => json!([{"port": port, "protocol": "TCP", "nodePort": n}]),
        None => json!([{"port": port, "protocol": "TCP"}]),
    }
}

fn services_in(cp: &ControlPlane, ns: &str) -> BTreeMap<String, Value> {
    let list: Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "services", "-n", ns, "-o", "json"])).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap().to_owned(),
                s.clone(),
            )
        })
        .collect()
}

fn ips_of(svc: &Value) -> Vec<IpAddr> {
    svc["spec"]["clusterIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The spec without the fields a move changes.
fn kept(svc: &Value) -> Value {
    let mut spec = svc["spec"].clone();
    let o = spec.as_object_mut().unwrap();
    o.remove("clusterIP");
    o.remove("clusterIPs");
    json!({
        "spec": spec,
        "labels": svc["metadata"]["labels"],
        "annotations": svc["metadata"]["annotations"],
        "ownerReferences": svc["metadata"]["ownerReferences"],
    })
}

fn offset(ip: IpAddr, net: &ipnet::IpNet) -> u128 {
    let bits = |ip: IpAddr| match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    bits(ip) - bits(net.network())
}

#[test]
fn thirty_services_of_every_kind_move_and_keep_everything_but_their_ip() {
    let cp = ControlPlane::start_dedicated(true);
    let (old4, old6) = (cp.next_v4_block(), cp.next_v6_block());
    let (new4, new6) = (cp.next_v4_block(), cp.next_v6_block());
    cp.create_ready_service_cidr("old", &[&old4, &old6]);
    let ns = "shop";
    cp.ensure_namespace(ns);
    let owner = cp.create(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": ns}}));

    let ip = |block: &str, host: u128| ip_in(block, host);
    let mut n = 10;
    let mut next = || {
        n += 1;
        n
    };
    for i in 0..13 {
        let h = next();
        service(
            &cp,
            ns,
            &format!("dyn-{i}"),
            json!({"clusterIP": ip(&old4, h), "ports": ports(80, None), "selector": {"app": "x"}}),
            false,
        );
    }
    service(
        &cp,
        ns,
        "dns",
        json!({"clusterIP": ip(&old4, 10), "ports": ports(53, None)}),
        true,
    );
    for i in 0..2 {
        let h = next();
        service(
            &cp,
            ns,
            &format!("pinned-{i}"),
            json!({"clusterIP": ip(&old4, h), "ports": ports(80, None), "sessionAffinity": "ClientIP"}),
            true,
        );
    }
    for i in 0..3 {
        let h = next();
        service(
            &cp,
            ns,
            &format!("dual-{i}"),
            json!({
            "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"],
            "clusterIP": ip(&old4, h), "clusterIPs": [ip(&old4, h), ip(&old6, h)], "ports": ports(80, None)}),
            i == 0,
        );
    }
    // IPv4 in the old range, IPv6 in the default range: only the IPv4 one moves.
    for i in 0..2 {
        let h = next();
        service(
            &cp,
            ns,
            &format!("mixed-{i}"),
            json!({
            "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"],
            "clusterIP": ip(&old4, h), "clusterIPs": [ip(&old4, h), ip("fd00:10:96::/112", 4000 + h)], "ports": ports(80, None)}),
            false,
        );
    }
    for i in 0..3 {
        let h = next();
        service(
            &cp,
            ns,
            &format!("nodeport-{i}"),
            json!({"type": "NodePort", "clusterIP": ip(&old4, h), "ports": ports(80, Some(31000 + i))}),
            false,
        );
    }
    let h = next();
    service(
        &cp,
        ns,
        "lb",
        json!({"type": "LoadBalancer", "clusterIP": ip(&old4, h), "ports": ports(443, Some(31100))}),
        false,
    );
    let h = next();
    let mut owned = json!({"clusterIP": ip(&old4, h), "ports": ports(80, None)});
    owned["selector"] = json!({"app": "owned"});
    service(&cp, ns, "owned", owned, false);
    cp.kubectl_ok(&["patch", "service", "owned", "-n", ns, "--type=merge", "-p",
        &json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]}}).to_string()]);
    for i in 0..2 {
        service(
            &cp,
            ns,
            &format!("headless-{i}"),
            json!({"clusterIP": "None", "ports": ports(80, None)}),
            true,
        );
        service(
            &cp,
            ns,
            &format!("external-{i}"),
            json!({"type": "ExternalName", "externalName": "example.com"}),
            true,
        );
    }
    let before = services_in(&cp, ns);
    assert_eq!(before.len(), 30);

    let target = format!("{new4},{new6}");
    // Everything as the user bound to deploy/rbac/servicecidr-migrator.yaml: it is enough.
    cp.apply_rbac(MIGRATOR_RBAC, "migrator", "create");
    let plan = cp.plugin(&[
        "--context",
        "migrator",
        "migrate",
        "plan",
        "--from",
        "old",
        "--to",
        &target,
        "--name",
        "new",
        "-o",
        "json",
    ]);
    assert_eq!(code(&plan), 0, "{}", stderr_of(&plan));
    let plan = json_of(&plan);
    let moves = plan["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 26, "{plan:#}");
    let pinned: Vec<&str> = moves
        .iter()
        .filter(|m| m["pinned"] == true)
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(pinned, ["dns", "dual-0", "pinned-0", "pinned-1"]);
    let skipped: Vec<(&str, &str)> = plan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("external-0", "ExternalName"),
            ("external-1", "ExternalName"),
            ("headless-0", "Headless"),
            ("headless-1", "Headless")
        ]
    );
    // plan changed nothing.
    assert_eq!(services_in(&cp, ns), before);
    assert!(cp.get("servicecidr/new").is_none());

    let backups = cp.dir.join("migrate-backups");
    let run = cp.plugin(&[
        "--context",
        "migrator",
        "migrate",
        "run",
        "--from",
        "old",
        "--to",
        &target,
        "--name",
        "new",
        "--yes",
        "--backup-dir",
        backups.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let report = json_of(&run);
    assert_eq!(code(&run), 0, "{report:#}\n{}", stderr_of(&run));
    assert_eq!(report["outcome"], "Done");
    assert_eq!(report["moved"].as_array().unwrap().len(), 26);

    // Every end-state check reads the cluster.
    let (o4, o6, n4, n6): (ipnet::IpNet, ipnet::IpNet, ipnet::IpNet, ipnet::IpNet) = (
        old4.parse().unwrap(),
        old6.parse().unwrap(),
        new4.parse().unwrap(),
        new6.parse().unwrap(),
    );
    let after = services_in(&cp, ns);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (name, svc) in &after {
        let old = &before[name];
        assert_eq!(kept(svc), kept(old), "{name} changed beyond its ClusterIPs");
        let (was, now) = (ips_of(old), ips_of(svc));
        assert_eq!(was.len(), now.len(), "{name}");
        for (a, b) in was.iter().zip(&now) {
            assert!(!o4.contains(b) && !o6.contains(b), "{name} still has {b}");
            if o4.contains(a) {
                assert!(n4.contains(b), "{name}: {a} -> {b}");
            } else if o6.contains(a) {
                assert!(n6.contains(b), "{name}: {a} -> {b}");
            } else {
                assert_eq!(a, b, "{name}: an IP outside the old range changed");
            }
        }
        if ["dns", "pinned-0", "pinned-1", "dual-0"].contains(&name.as_str()) {
            assert_eq!(
                offset(now[0], &n4),
                offset(was[0], &o4),
                "{name} lost its host offset"
            );
        }
    }
    assert_eq!(ips_of(&after["dns"])[0].to_string(), ip(&new4, 10));
    // A pinned Service stays pinned by its creator's name; one the allocator had placed is
    // owned by the plugin alone, so a later migration still tells them apart.
    let owner_of_ip = |svc: &str| -> Vec<String> {
        let full = cp.kubectl_ok(&[
            "get",
            "service",
            svc,
            "-n",
            ns,
            "-o",
            "json",
            "--show-managed-fields",
        ]);
        let v: Value = serde_json::from_str(&full).unwrap();
        v["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["fieldsV1"]["f:spec"].get("f:clusterIP").is_some())
            .map(|m| m["manager"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(owner_of_ip("dns"), ["kubectl-create"]);
    assert_eq!(owner_of_ip("dyn-0"), ["kubectl-servicecidr"]);
    let again = cp.plugin(&[
        "migrate",
        "plan",
        "--from",
        "new",
        "--to",
        &cp.next_v4_block(),
        "--to",
        &cp.next_v6_block(),
        "-o",
        "json",
    ]);
    let again = json_of(&again);
    let pinned_again: Vec<&str> = again["moves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["pinned"] == true)
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(pinned_again, pinned);
    assert!(
        cp.get("servicecidr/old").is_none(),
        "the old range is still there"
    );
    let orphans = cp.plugin(&["orphans"]);
    assert_eq!(code(&orphans), 0, "{}", stdout_of(&orphans));
    cp.stop();
}

/// A range of its own with `count` allocator-chosen-looking Services in it.
/// One migration under test: a range of its own holding Services `s1`..`sN` (allocator-placed
/// ones, at hosts 1..N), a target block, a name and a backup directory.
#[derive(Clone)]
struct Case {
    old: String,
    ns: String,
    block: String,
    target: String,
    name: String,
    backups: std::path::PathBuf,
}

impl Case {
    fn new(cp: &ControlPlane, count: u128) -> Case {
        let (old, ns) = (unique_name("old"), unique_name("ns"));
        let block = cp.next_v4_block();
        cp.create_ready_service_cidr(&old, &[&block]);
        cp.ensure_namespace(&ns);
        for h in 1..=count {
            let spec = json!({"clusterIP": ip_in(&block, h), "ports": ports(80, None)});
            service(cp, &ns, &format!("s{h}"), spec, false);
        }
        Case {
            old,
            ns,
            block,
            target: cp.next_v4_block(),
            name: unique_name("new"),
            backups: cp.dir.join(unique_name("backups")),
        }
    }

    /// `migrate run --yes -o json` with this case's arguments, and `extra`.
    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "migrate",
            "run",
            "--from",
            &self.old,
            "--to",
            &self.target,
            "--name",
            &self.name,
            "--yes",
            "--backup-dir",
            self.backups.to_str().unwrap(),
            "-o",
            "json",
        ];
        args.extend(extra);
        args
    }

    fn spawn_via(&self, proxy: &FaultProxy, piped: bool) -> std::process::Child {
        let out = || if piped { Stdio::piped() } else { Stdio::null() };
        Command::new(support::PLUGIN)
            .arg("--kubeconfig")
            .arg(&proxy.kubeconfig)
            .args(self.args(&[]))
            .stdout(out())
            .stderr(out())
            .spawn()
            .unwrap()
    }

    /// The end state every finished run must leave: `count` Services, all in the target, the
    /// old range gone, no backup pending.
    fn assert_finished(&self, cp: &ControlPlane, count: usize, why: &str) {
        let net: ipnet::IpNet = self.target.parse().unwrap();
        let after = services_in(cp, &self.ns);
        assert_eq!(after.len(), count, "{why}: a Service is missing");
        for svc in after.values() {
            assert!(net.contains(&ips_of(svc)[0]), "{why}: {svc}");
        }
        assert!(
            cp.get(&format!("servicecidr/{}", self.old)).is_none(),
            "{why}: the old range stays"
        );
        assert_eq!(
            journal_of(cp, &self.name),
            Value::Null,
            "{why}: the migration journal stays"
        );
    }
}

/// The migration journal on range `name` (JSON), or null when it has none.
fn journal_of(cp: &ControlPlane, name: &str) -> Value {
    let range = cp
        .get(&format!("servicecidr/{name}"))
        .unwrap_or_else(|| panic!("servicecidr {name} is gone"));
    match range["metadata"]["annotations"][JOURNAL].as_str() {
        Some(text) => serde_json::from_str(text).unwrap(),
        None => Value::Null,
    }
}

const JOURNAL: &str = "servicecidr.kubectl.io/migration";

/// The names of the Services a report says were moved, in order.
fn moved_names(report: &Value) -> Vec<&str> {
    report["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect()
}

/// A proxy that, at the first request `at` picks (before letting it through), has a real client
/// (kubectl) create the Service `svc` straight on the cluster.
fn when_sent_create(
    cp: &ControlPlane,
    mut at: impl FnMut(&Seen) -> bool + Send + 'static,
    svc: Value,
) -> FaultProxy {
    let proxy = FaultProxy::start(cp, &unique_name("migrate-meanwhile"));
    let (bin, kubeconfig) = (cp.bin.join("kubectl"), cp.kubeconfig.clone());
    let mut done = false;
    proxy.set_rule(move |s| {
        if !done && at(s) {
            done = true;
            let mut c = Command::new(&bin)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["create", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            c.stdin
                .take()
                .unwrap()
                .write_all(svc.to_string().as_bytes())
                .unwrap();
            assert!(c.wait().unwrap().success(), "the competing client failed");
        }
        Action::Forward
    });
    proxy
}

/// As the plugin deletes Service `victim`, Service `name` with `ip` appears in its namespace.
fn when_deleted_create(
    cp: &ControlPlane,
    case: &Case,
    victim: &str,
    name: &str,
    ip: &str,
) -> FaultProxy {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": case.ns},
        "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
    let delete = format!("/api/v1/namespaces/{}/services/{victim}", case.ns);
    when_sent_create(cp, move |s| is_write(s, "DELETE", &delete), svc)
}

fn is_write(s: &Seen, method: &str, prefix: &str) -> bool {
    s.method == method && s.path.starts_with(prefix) && !s.path.contains("dryRun")
}

#[test]
fn a_recreate_that_fails_puts_the_original_back_and_names_it() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 3);
    // Right before s2 is deleted, someone takes the IP planned for it.
    let proxy = when_deleted_create(cp, &case, "s2", "squatter", &ip_in(&case.target, 2));
    let out = cp.plugin_via(&proxy.kubeconfig, &case.args(&[]));
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    // A run that fails still prints its report.
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "Failed");
    let failed = &report["moved"][1];
    assert_eq!(failed["name"], "s2");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("service {}/s2", case.ns))
            && error.contains("provided IP is already allocated"),
        "{error}"
    );
    // The original is back with its own IP; nothing after it was touched; the old range stays.
    let after = services_in(cp, &case.ns);
    assert_eq!(ips_of(&after["s2"])[0].to_string(), ip_in(&case.block, 2));
    assert_eq!(ips_of(&after["s3"])[0].to_string(), ip_in(&case.block, 3));
    assert!(cp.get(&format!("servicecidr/{}", case.old)).is_some());
    assert!(
        stderr_of(&out).contains(&format!("failed {}/s2", case.ns)),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn refusals_are_one_line_and_change_nothing() {
    let cp = ControlPlane::shared();
    let Case { old, ns, block, .. } = Case::new(cp, 1);
    let empty = unique_name("empty");
    cp.create_ready_service_cidr(&empty, &[&cp.next_v4_block()]);
    let before = services_in(cp, &ns);
    let target = cp.next_v4_block();
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["--from", &old, "--to", "10.200.0.1/16"],
            2,
            "has host bits set".into(),
        ),
        (
            vec!["--from", &old, "--to", "10.200.0.0/24,fd01::/48"],
            3,
            "holds no address the allocator hands out".into(),
        ),
        (
            vec!["--from", &old, "--to", "banana"],
            2,
            "is not a CIDR".into(),
        ),
        (
            vec!["--from", &old, "--to", "10.201.0.0/16,10.202.0.0/16"],
            3,
            "two IPv4 CIDRs".into(),
        ),
        (
            vec!["--from", &old, "--to", &block],
            3,
            "a range being emptied".into(),
        ),
        (
            vec!["--from", &old, "--to", "10.96.0.0/24"],
            3,
            "--allow-overlap".into(),
        ),
        (
            vec!["--from", &empty, "--to", &target],
            3,
            "nothing to move".into(),
        ),
        (
            vec!["--from", "no-such-range", "--to", &target],
            3,
            "servicecidr \"no-such-range\" not found".into(),
        ),
        (
            vec!["--from", &old, "--to", &target, "--only", "a/b/c"],
            2,
            "DNS labels".into(),
        ),
        (
            vec!["--from", &old, "--to", &target, "--name", &old],
            3,
            format!("cannot be named {old:?}: that is an old range (choose another with --name)"),
        ),
    ];
    for (args, want, text) in cases {
        for step in ["plan", "run"] {
            let mut all = vec!["migrate", step, "--yes"];
            if step == "plan" {
                all.pop();
            }
            all.extend(&args);
            let out = cp.plugin(&all);
            let err = stderr_of(&out);
            assert_eq!(code(&out), want, "{all:?}: {err}");
            // One line (clap adds its "For more information" tip to usage errors).
            let first = err.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("error: ") && first.contains(&text),
                "{all:?}: {err}"
            );
            assert!(
                err.lines()
                    .skip(1)
                    .all(|l| l.is_empty() || l.starts_with("For more information")),
                "{all:?}: {err}"
            );
        }
    }
    // A user who may retire ranges but not recreate Services is stopped before the first write,
    // with every missing right named.
    cp.bind_operator();
    let out = cp.plugin(&[
        "--context",
        "operator",
        "migrate",
        "run",
        "--from",
        &old,
        "--to",
        &target,
        "--yes",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("not started: not allowed to get namespaces \"kube-system\", create servicecidrs, delete services in {ns:?}, create services in {ns:?}; the servicecidr-migrator ClusterRole")),
        "{}",
        stderr_of(&out)
    );
    // Without --yes and without a terminal, run refuses before anything.
    let out = cp.plugin(&["migrate", "run", "--from", &old, "--to", &target]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr_of(&out).contains("pass --yes"),
        "{}",
        stderr_of(&out)
    );
    // --dry-run, both kinds, changes nothing: every request that could write is a dry run
    // (`-v` shows each request).
    for mode in ["--dry-run", "--dry-run=server"] {
        let out = cp.plugin(&[
            "migrate", "run", "--from", &old, "--to", &target, mode, "-o", "json", "-v",
        ]);
        assert_eq!(code(&out), 0, "{}", stderr_of(&out));
        assert_eq!(json_of(&out)["moves"].as_array().unwrap().len(), 1);
        let log = stderr_of(&out);
        let writes: Vec<&str> = log
            .lines()
            .filter_map(|l| l.split_once("DEBUG ").map(|(_, r)| r))
            .filter(|r| {
                ["POST ", "PATCH ", "PUT ", "DELETE "]
                    .iter()
                    .any(|m| r.starts_with(m))
            })
            .filter(|r| !r.contains("selfsubjectaccessreviews"))
            .collect();
        // Both ask the server to judge the new range (a dry-run create); only the server kind
        // sends the Service deletes, as dry runs too.
        assert!(
            writes.iter().all(|w| w.contains("dryRun=All")),
            "{writes:?}"
        );
        let service_deletes = writes
            .iter()
            .filter(|w| {
                w.starts_with("DELETE ") && w.contains(&format!("/namespaces/{ns}/services/"))
            })
            .count();
        assert_eq!(
            service_deletes,
            usize::from(mode == "--dry-run=server"),
            "{writes:?}"
        );
    }
    assert_eq!(services_in(cp, &ns), before);
    assert!(
        cp.get(&format!("servicecidr/{old}"))
            .is_some_and(|r| r["metadata"]["deletionTimestamp"].is_null())
    );
    assert!(
        cp.get(&format!(
            "servicecidr/range-{}",
            target.replace(['.', '/'], "-")
        ))
        .is_none()
    );
}

#[test]
fn ctrl_c_finishes_the_service_in_hand_and_a_rerun_finishes_the_rest() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 6);
    // Every Service create is held back 400 ms, so SIGINT lands while one is in hand.
    let proxy = FaultProxy::start(cp, &unique_name("migrate-slow"));
    let creates = format!("/api/v1/namespaces/{}/services", case.ns);
    proxy.set_rule(move |s| {
        if s.method == "POST" && s.path.starts_with(&creates) {
            Action::Delay(Duration::from_millis(400))
        } else {
            Action::Forward
        }
    });
    let child = case.spawn_via(&proxy, true);
    // SIGINT while the second Service's create is held back: it is deleted by then.
    let second = format!("/api/v1/namespaces/{}/services", case.ns);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while proxy
        .seen()
        .iter()
        .filter(|s| is_write(s, "POST", &second))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the plugin never reached the second Service"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", stderr_of(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "Interrupted");
    assert_eq!(
        moved_names(&report),
        ["s1", "s2"],
        "the Service in hand was not finished"
    );
    assert!(
        stderr_of(&out).contains("interrupted: 2 of 6 Services moved, none left deleted; run the same command again to resume"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        services_in(cp, &case.ns).len(),
        6,
        "a Service is missing after Ctrl-C"
    );
    let report = json_of(&cp.plugin(&case.args(&[])));
    assert_eq!(report["outcome"], "Done", "{report:#}");
    assert_eq!(moved_names(&report).len(), 4);
    case.assert_finished(cp, 6, "after Ctrl-C and a rerun");
}

#[test]
fn two_runs_at_once_never_lose_a_service() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 8);
    // Two operators on two machines: separate backup directories.
    let other = Case {
        backups: cp.dir.join(unique_name("other")),
        ..case.clone()
    };
    let (a, b) = (
        cp.spawn_plugin(&case.args(&[])),
        cp.spawn_plugin(&other.args(&[])),
    );
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let outcomes: Vec<(i32, String)> = [&a, &b].iter().map(|o| (code(o), stderr_of(o))).collect();
    assert!(outcomes.iter().any(|(c, _)| *c == 0), "{outcomes:#?}");
    for (c, err) in &outcomes {
        assert!(matches!(c, 0 | 1), "{err}");
    }
    let net: ipnet::IpNet = case.target.parse().unwrap();
    let after = services_in(cp, &case.ns);
    assert_eq!(after.len(), 8, "a Service is missing: {outcomes:#?}");
    assert!(
        after.values().all(|s| net.contains(&ips_of(s)[0])),
        "{outcomes:#?}"
    );
    assert!(cp.get(&format!("servicecidr/{}", case.old)).is_none());
}

#[test]
fn a_service_that_lands_in_the_old_range_mid_run_is_moved_too() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 3);
    // While s1 is being moved, a Service is created with an IP in the old range.
    let proxy = when_deleted_create(cp, &case, "s1", "late", &ip_in(&case.block, 200));
    let report = json_of(&cp.plugin_via(&proxy.kubeconfig, &case.args(&[])));
    assert_eq!(report["outcome"], "Done", "{report:#}");
    assert_eq!(moved_names(&report), ["s1", "s2", "s3", "late"]);
    case.assert_finished(cp, 4, "a late Service");
}

#[test]
fn a_create_whose_answer_is_lost_counts_as_moved() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 3);
    let proxy = FaultProxy::start(cp, &unique_name("migrate-swallow"));
    let creates = format!("/api/v1/namespaces/{}/services", case.ns);
    let mut swallowed = false;
    proxy.set_rule(move |s| {
        if !swallowed && is_write(s, "POST", &creates) {
            swallowed = true;
            Action::Swallow
        } else {
            Action::Forward
        }
    });
    let out = cp.plugin_via(&proxy.kubeconfig, &case.args(&[]));
    let report = json_of(&out);
    assert_eq!(report["outcome"], "Done", "{report:#}\n{}", stderr_of(&out));
    assert!(
        report["moved"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["error"].is_null()),
        "{report:#}"
    );
    case.assert_finished(cp, 3, "a lost answer");
}

/// `migrate run` without --yes, on a pseudo-terminal (util-linux `script`) fed `answer`.
fn on_terminal(cp: &ControlPlane, args: &[&str], answer: &str) -> (i32, String) {
    let line: Vec<String> = [
        support::PLUGIN,
        "--kubeconfig",
        cp.kubeconfig.to_str().unwrap(),
    ]
    .into_iter()
    .chain(args.iter().copied())
    .map(|a| format!("'{a}'"))
    .collect();
    let mut child = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run script (util-linux)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (code(&out), stdout_of(&out))
}

#[test]
fn on_a_terminal_it_asks_and_only_yes_goes_ahead() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 2);
    let before = services_in(cp, &case.ns);
    // The run's arguments without --yes and -o json.
    let args: Vec<&str> = case
        .args(&[])
        .into_iter()
        .filter(|a| !["--yes", "-o", "json"].contains(a))
        .collect();
    let (c, screen) = on_terminal(cp, &args, "n\n");
    assert_eq!(c, 1, "{screen}");
    assert!(
        screen.contains("Recreate 2 Services with new ClusterIPs and retire")
            && screen.contains("[y/N]"),
        "{screen}"
    );
    assert!(
        screen.contains("not confirmed: nothing was changed"),
        "{screen}"
    );
    assert_eq!(services_in(cp, &case.ns), before);
    assert!(cp.get(&format!("servicecidr/{}", case.name)).is_none());
    let (c, screen) = on_terminal(cp, &args, "y\n");
    assert_eq!(c, 0, "{screen}");
    assert!(screen.contains("done: 2 Services moved"), "{screen}");
}

/// The path of a request, from the case's namespace and old range.
type PathOf = dyn Fn(&Case) -> String + Send + Sync;

/// SIGKILL right after each kind of write took effect on the server (its answer never comes),
/// then a rerun: the same end state every time.
#[test]
fn a_run_killed_after_any_write_is_finished_by_a_rerun() {
    let cp = ControlPlane::shared();
    let v = &cp.networking;
    let points: Vec<(&str, Box<PathOf>)> = vec![
        (
            "POST",
            Box::new(move |_| format!("/apis/{v}/servicecidrs?")),
        ),
        (
            "DELETE",
            Box::new(|c| format!("/api/v1/namespaces/{}/services/s2", c.ns)),
        ),
        (
            "POST",
            Box::new(|c| format!("/api/v1/namespaces/{}/services?", c.ns)),
        ),
        (
            "PATCH",
            Box::new(move |c| format!("/apis/{v}/servicecidrs/{}", c.old)),
        ),
        (
            "DELETE",
            Box::new(move |c| format!("/apis/{v}/servicecidrs/{}", c.old)),
        ),
        // The first write of the journal on the new range.
        (
            "PATCH",
            Box::new(move |c| format!("/apis/{v}/servicecidrs/{}", c.name)),
        ),
    ];
    std::thread::scope(|scope| {
        for (method, path) in &points {
            scope.spawn(move || killed_after(cp, method, path.as_ref()));
        }
    });
}

fn killed_after(cp: &ControlPlane, method: &str, path: &PathOf) {
    let case = Case::new(cp, 3);
    let proxy = FaultProxy::start(cp, &unique_name("migrate-kill-after"));
    let (method, prefix) = (method.to_owned(), path(&case));
    let point = format!("{method} {prefix}");
    proxy.set_rule(move |s| {
        if is_write(s, &method, &prefix) {
            Action::ActThenHang
        } else {
            Action::Forward
        }
    });
    let mut child = case.spawn_via(&proxy, true);
    // Killed once the server has answered the write (the proxy keeps the answer).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while proxy.acted() == 0 {
        assert!(std::time::Instant::now() < deadline, "{point}: never sent");
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("{point}: the run ended before it: {}", stderr_of(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let rerun = cp.plugin(&case.args(&[]));
    let report = json_of(&rerun);
    assert_eq!(
        report["outcome"],
        "Done",
        "{point}: {report:#}\n{}",
        stderr_of(&rerun)
    );
    assert_eq!(code(&rerun), 0, "{point}: {report:#}");
    case.assert_finished(cp, 3, &point);
}

#[test]
fn only_moves_the_named_services_and_leaves_the_range_for_a_full_run() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 3);
    let only = format!("{}/s2", case.ns);
    let out = cp.plugin(&case.args(&["--only", &only]));
    let report = json_of(&out);
    assert_eq!(code(&out), 0, "{report:#}");
    assert_eq!(moved_names(&report), ["s2"]);
    assert!(report["retired"].as_array().unwrap().is_empty());
    let after = services_in(cp, &case.ns);
    assert_eq!(ips_of(&after["s1"])[0].to_string(), ip_in(&case.block, 1));
    assert!(
        case.target
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&ips_of(&after["s2"])[0])
    );
    assert!(
        cp.get(&format!("servicecidr/{}", case.old))
            .is_some_and(|r| r["metadata"]["deletionTimestamp"].is_null())
    );
    let out = cp.plugin(&case.args(&[]));
    let report = json_of(&out);
    assert_eq!(code(&out), 0, "{report:#}");
    assert_eq!(moved_names(&report).len(), 2);
    case.assert_finished(cp, 3, "--only, then all");
}

/// The default range, all the way: `migrate run --from kubernetes`, then the printed manual
/// steps done as printed, ending with the apiserver's own `kubernetes` range and Service renumbered.
#[test]
fn the_default_range_moves_by_the_printed_manual_steps() {
    let cp = ControlPlane::start_dedicated(true);
    let ns = "apps";
    cp.ensure_namespace(ns);
    service(
        &cp,
        ns,
        "dns",
        json!({"clusterIP": "10.96.0.10", "ports": ports(53, None)}),
        true,
    );
    service(
        &cp,
        ns,
        "web",
        json!({"clusterIP": "10.96.7.7", "ports": ports(80, None)}),
        false,
    );
    service(
        &cp,
        ns,
        "dual",
        json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"],
        "clusterIP": "10.96.8.8", "clusterIPs": ["10.96.8.8", "fd00:10:96::8"], "ports": ports(80, None)}),
        false,
    );
    let to = "10.250.0.0/16,fd00:250::/112";
    let backups = cp.dir.join("backups");
    let run = cp.plugin(&[
        "migrate",
        "run",
        "--from",
        "kubernetes",
        "--to",
        to,
        "--name",
        "next",
        "--yes",
        "--backup-dir",
        backups.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let report = json_of(&run);
    assert_eq!(code(&run), 0, "{report:#}\n{}", stderr_of(&run));
    assert_eq!(report["moved"].as_array().unwrap().len(), 3);
    assert!(
        report["retired"].as_array().unwrap().is_empty(),
        "the default range is never deleted by run"
    );
    let steps: Vec<String> = report["plan"]["manualSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps.len(), 4, "{steps:#?}");
    assert!(
        steps[0].starts_with("kubectl delete servicecidr kubernetes --wait=false"),
        "{steps:#?}"
    );
    assert!(
        steps[1].contains(&format!("--service-cluster-ip-range={to}")),
        "{steps:#?}"
    );
    assert!(
        steps[2].starts_with("kubectl delete service kubernetes -n default")
            && steps[2].contains("10.250.0.1"),
        "{steps:#?}"
    );
    assert!(
        steps[3].contains("kubectl servicecidr delete next"),
        "{steps:#?}"
    );
    assert_eq!(
        ips_of(&cp.get_in(Some("default"), "service/kubernetes").unwrap())[0].to_string(),
        "10.96.0.1"
    );

    // 1. The default range, deleted with kubectl: it stays, held by the kubernetes Service.
    cp.kubectl_ok(&["delete", "servicecidr", "kubernetes", "--wait=false"]);
    // 2. The flags, then a restart.
    let cmd = cp.dir.join("cmd/kube-apiserver.sh");
    let script = std::fs::read_to_string(&cmd).unwrap();
    let old_flag = r"--service-cluster-ip-range=10.96.0.0/16\,fd00:10:96::/112";
    assert!(script.contains(old_flag), "{script}");
    std::fs::write(
        &cmd,
        script.replace(
            old_flag,
            r"--service-cluster-ip-range=10.250.0.0/16\,fd00:250::/112",
        ),
    )
    .unwrap();
    cp.restart_apiserver();
    let old = cp.get("servicecidr/kubernetes").unwrap();
    assert!(old["metadata"]["deletionTimestamp"].is_string(), "{old}");
    // 3. The kubernetes Service: the apiserver recreates both from the new flags.
    cp.kubectl_ok(&["delete", "service", "kubernetes", "-n", "default"]);
    cp.wait_for("servicecidr/kubernetes", Duration::from_secs(60), |r| {
        r.is_some_and(|r| r["spec"]["cidrs"] == json!(["10.250.0.0/16", "fd00:250::/112"]))
    });
    cp.wait_for_in(
        Some("default"),
        "service/kubernetes",
        Duration::from_secs(60),
        |s| s.is_some_and(|s| s["spec"]["clusterIP"] == "10.250.0.1"),
    );
    // 4. The migration's own range, now covered by the new default one.
    let del = cp.plugin(&["delete", "next", "--wait", "-o", "json"]);
    assert_eq!(
        json_of(&del)["results"][0]["outcome"],
        "Deleted",
        "{}",
        stderr_of(&del)
    );
    let orphans = cp.plugin(&["orphans"]);
    assert_eq!(code(&orphans), 0, "{}", stdout_of(&orphans));
    let services = services_in(&cp, ns);
    assert_eq!(ips_of(&services["dns"])[0].to_string(), "10.250.0.10");
    cp.stop();
}

// --- Interference: what a real cluster does beside a run. Each case ends with every Service
// --- compared field by field with what it was (all but its ClusterIPs, for those that moved).

/// Every Service of `ns` by name, with what a move must keep (`kept`) and its uid.
fn snapshot(cp: &ControlPlane, ns: &str) -> BTreeMap<String, (Value, String)> {
    services_in(cp, ns)
        .into_iter()
        .map(|(n, s)| {
            let uid = s["metadata"]["uid"].as_str().unwrap().to_owned();
            (n, (kept(&s), uid))
        })
        .collect()
}

/// Each Service of `before` is there with the same content; those named in `untouched` are the
/// very same objects (same uid), and no other Service exists.
fn assert_kept(
    cp: &ControlPlane,
    ns: &str,
    before: &BTreeMap<String, (Value, String)>,
    untouched: &[&str],
) {
    let after = snapshot(cp, ns);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "Services lost or added"
    );
    for (name, (content, uid)) in before {
        assert_eq!(&after[name].0, content, "{name} changed");
        if untouched.contains(&name.as_str()) {
            assert_eq!(&after[name].1, uid, "{name} was recreated");
        }
    }
}

/// NodePort Services `s1`..`sN` in a range of their own (node ports `base + h`).
fn node_port_case(cp: &ControlPlane, count: u128, base: i64) -> Case {
    let case = Case::new(cp, 0);
    for h in 1..=count {
        let spec = json!({"type": "NodePort", "clusterIP": ip_in(&case.block, h),
            "ports": ports(80, Some(base + h as i64))});
        service(cp, &case.ns, &format!("s{h}"), spec, false);
    }
    case
}

/// s2 was deleted by its owner: the same command run again finishes the migration of the other
/// two and never brings s2 back.
fn rerun_leaves_s2_deleted(cp: &ControlPlane, case: &Case, why: &str) {
    let out = cp.plugin(&case.args(&[]));
    assert_eq!(code(&out), 0, "{why}: {}", stderr_of(&out));
    assert!(
        cp.get_in(Some(&case.ns), "service/s2").is_none(),
        "{why}: a deleted Service came back"
    );
    case.assert_finished(cp, 2, why);
}

/// Puts a finalizer of someone else's on Service `name` (None: takes them all off).
fn set_finalizer(cp: &ControlPlane, ns: &str, name: &str, finalizer: Option<&str>) {
    let patch = json!({"metadata": {"finalizers": finalizer.map(|f| vec![f])}});
    patch_service(cp, ns, name, &patch.to_string());
}

/// `kubectl patch service --type=merge`.
fn patch_service(cp: &ControlPlane, ns: &str, name: &str, patch: &str) {
    cp.kubectl_ok(&[
        "patch",
        "service",
        name,
        "-n",
        ns,
        "--type=merge",
        "-p",
        patch,
    ]);
}

/// The journal's entries (`namespace/name`) on the case's new range.
fn in_flight(cp: &ControlPlane, case: &Case) -> Vec<String> {
    match journal_of(cp, &case.name) {
        Value::Null => vec![],
        j => j["moves"].as_object().unwrap().keys().cloned().collect(),
    }
}

#[test]
fn an_admission_policy_that_refuses_the_replacement_stops_the_run_before_any_delete() {
    let cp = ControlPlane::shared();
    let case = node_port_case(cp, 2, 31100);
    let before = snapshot(cp, &case.ns);
    let policy = unique_name("no-nodeport");
    let ns = case.ns.clone();
    let probe = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe", "namespace": ns},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}}).to_string();
    let enforced = || {
        !cp.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &probe)
            .status
            .success()
    };
    cp.deny_by_policy(
        &policy,
        ("", "services"),
        "CREATE",
        &format!("object.metadata.namespace != '{ns}' || object.spec.type != 'NodePort'"),
        enforced,
    );
    let out = cp.plugin(&case.args(&[]));
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "service {ns}/s1 not touched: the API server would not admit it"
        )) && err.contains(&format!("denied by the test policy {policy}")),
        "{err}"
    );
    let report = json_of_any(&out);
    assert_eq!(report["outcome"], "Failed");
    assert_kept(cp, &ns, &before, &["s1", "s2"]);
    assert!(in_flight(cp, &case).is_empty());
    // Once the policy goes, the same command moves them.
    cp.allow_again(&policy, enforced);
    let out = cp.plugin(&case.args(&[]));
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    assert_kept(cp, &ns, &before, &[]);
    case.assert_finished(cp, 2, "after the policy went");
}

/// The report of a run that failed: printed all the same.
fn json_of_any(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr_of(out)))
}

/// Right before the plugin's first real Service create in the case's namespace goes through, a
/// competing client creates `thief` asking for node port `port`. Its ClusterIP is pinned in the
/// case's target range: a dynamic one lands in any Ready range, other tests' old ranges included.
fn when_recreated_steal_port(cp: &ControlPlane, case: &Case, thief: &str, port: i64) -> FaultProxy {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": thief, "namespace": case.ns},
        "spec": {"type": "NodePort", "clusterIP": ip_in(&case.target, 200),
            "ports": [{"port": 80, "nodePort": port}]}});
    let creates = format!("/api/v1/namespaces/{}/services?", case.ns);
    when_sent_create(cp, move |s| is_write(s, "POST", &creates), svc)
}

#[test]
fn a_node_port_taken_in_the_gap_brings_the_service_back_with_a_new_one_and_says_so() {
    let cp = ControlPlane::shared();
    let case = node_port_case(cp, 1, 31200);
    let before = snapshot(cp, &case.ns);
    let proxy = when_recreated_steal_port(cp, &case, "thief", 31201);
    let out = cp.plugin_via(&proxy.kubeconfig, &case.args(&[]));
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    let report = json_of_any(&out);
    let s1 = &report["moved"][0];
    assert!(
        s1["error"]
            .as_str()
            .unwrap()
            .contains("provided port is already allocated"),
        "{report:#}"
    );
    assert_eq!(s1["restored"], json!([ip_in(&case.block, 1)]), "{report:#}");
    let new_port = s1["newNodePorts"][0]
        .as_i64()
        .expect("new node ports reported");
    assert_ne!(new_port, 31201);
    assert!(
        stderr_of(&out).contains("NEW NODE PORTS"),
        "{}",
        stderr_of(&out)
    );
    let after = services_in(cp, &case.ns);
    assert_eq!(after["s1"]["spec"]["ports"][0]["nodePort"], new_port);
    assert_eq!(after["thief"]["spec"]["ports"][0]["nodePort"], 31201);
    assert!(in_flight(cp, &case).is_empty());
    // Everything else about s1 is as it was.
    let mut was = before["s1"].0.clone();
    was["spec"]["ports"][0]["nodePort"] = json!(new_port);
    assert_eq!(kept(&after["s1"]), was);
}

/// Runs the case's migration through a proxy that holds back the answer to the delete of `s2`
/// once it took effect, and kills the run then: s2 is deleted and only the journal knows it.
fn killed_after_deleting_s2(cp: &ControlPlane, case: &Case) {
    let proxy = FaultProxy::start(cp, &unique_name("migrate-kill"));
    let path = format!("/api/v1/namespaces/{}/services/s2", case.ns);
    proxy.set_rule(move |s| {
        if is_write(s, "DELETE", &path) {
            Action::ActThenHang
        } else {
            Action::Forward
        }
    });
    let mut child = case.spawn_via(&proxy, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while proxy.acted() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the delete of s2 never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(cp.get_in(Some(&case.ns), "service/s2").is_none());
    assert_eq!(in_flight(cp, case), [format!("{}/s2", case.ns)]);
}

#[test]
fn a_rerun_from_another_directory_or_with_other_arguments_never_leaves_a_killed_runs_service_lost()
{
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 3);
    let before = snapshot(cp, &case.ns);
    killed_after_deleting_s2(cp, &case);
    // Another --from (a range of its own, with a Service to move) and the same target: refused.
    let other = Case::new(cp, 1);
    let mut args = case.args(&[]);
    args[3] = &other.old;
    let out = cp.plugin(&args);
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("servicecidr \"{}\" holds an unfinished migration: service {}/s2 deleted and not recreated yet; finish it first: kubectl servicecidr migrate run --from {}", case.name, case.ns, case.old)),
        "{}",
        stderr_of(&out)
    );
    // The same Services into another target: refused too.
    let elsewhere = Case {
        name: unique_name("new"),
        target: cp.next_v4_block(),
        ..case.clone()
    };
    let out = cp.plugin(&elsewhere.args(&[]));
    assert_eq!(code(&out), 3, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("holds an unfinished migration"),
        "{}",
        stderr_of(&out)
    );
    assert!(cp.get(&format!("servicecidr/{}", elsewhere.name)).is_none());
    // The same command from another directory (another machine) finishes it.
    let moved_on = Case {
        backups: cp.dir.join(unique_name("elsewhere")),
        ..case.clone()
    };
    let out = cp.plugin(&moved_on.args(&[]));
    let report = json_of(&out);
    assert_eq!(code(&out), 0, "{report:#}\n{}", stderr_of(&out));
    assert!(moved_names(&report).contains(&"s2"), "{report:#}");
    assert_kept(cp, &case.ns, &before, &[]);
    case.assert_finished(cp, 3, "rerun from another directory");
    assert_eq!(code(&cp.plugin(&["orphans"])), 0);
}

#[test]
fn a_service_its_owner_is_deleting_is_never_moved_nor_recreated() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 3);
    let ns = case.ns.clone();
    set_finalizer(cp, &ns, "s2", Some("example.com/owner-cleanup"));
    cp.kubectl_ok(&["delete", "service", "s2", "-n", &ns, "--wait=false"]);
    let out = cp.plugin(&case.args(&["--timeout", "3s"]));
    let report = json_of_any(&out);
    assert_eq!(moved_names(&report), ["s1", "s3"], "{report:#}");
    let skipped = &report["plan"]["skipped"][0];
    assert_eq!(
        (skipped["name"].as_str(), skipped["reason"].as_str()),
        (Some("s2"), Some("Terminating")),
        "{report:#}"
    );
    // The owner's finalizer goes: s2 is gone for good, and a rerun leaves it so.
    set_finalizer(cp, &ns, "s2", None);
    cp.wait_for_in(Some(&ns), "service/s2", Duration::from_secs(30), |s| {
        s.is_none()
    });
    rerun_leaves_s2_deleted(cp, &case, "an owner's delete");
}

#[test]
fn a_delete_refused_by_a_policy_is_forgotten_so_the_owners_later_delete_stands() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 3);
    let ns = case.ns.clone();
    let before = snapshot(cp, &ns);
    let policy = unique_name("keep-s2");
    let enforced = || {
        !cp.kubectl(&["delete", "service", "s2", "-n", &ns, "--dry-run=server"])
            .status
            .success()
    };
    cp.deny_by_policy(
        &policy,
        ("", "services"),
        "DELETE",
        &format!("oldObject.metadata.namespace != '{ns}' || oldObject.metadata.name != 's2'"),
        enforced,
    );
    let out = cp.plugin(&case.args(&[]));
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "service {ns}/s2 not touched: its delete was refused"
        )) && stderr_of(&out).contains(&policy),
        "{}",
        stderr_of(&out)
    );
    assert!(
        in_flight(cp, &case).is_empty(),
        "a refused delete left an entry"
    );
    assert_kept(cp, &ns, &before, &["s2", "s3"]);
    // The owner deletes s2 after all; the rerun never brings it back.
    cp.allow_again(&policy, enforced);
    cp.kubectl_ok(&["delete", "service", "s2", "-n", &ns]);
    rerun_leaves_s2_deleted(cp, &case, "a refused delete");
}

#[test]
fn a_backup_directory_from_another_cluster_is_refused_before_anything_changes() {
    let other = ControlPlane::start_dedicated(true);
    let theirs = Case::new(&other, 1);
    let out = other.plugin(&theirs.args(&["--timeout", "5s"]));
    assert!(
        theirs.backups.join("migration.json").exists(),
        "{}",
        stderr_of(&out)
    );
    other.stop();
    let cp = ControlPlane::shared();
    let case = Case {
        backups: theirs.backups.clone(),
        ..Case::new(cp, 2)
    };
    let before = snapshot(cp, &case.ns);
    let out = cp.plugin(&case.args(&[]));
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.starts_with(&format!(
            "error: backup directory {} holds backups of another cluster",
            case.backups.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_kept(cp, &case.ns, &before, &["s1", "s2"]);
    assert!(cp.get(&format!("servicecidr/{}", case.name)).is_none());
}

#[test]
fn ctrl_c_while_a_finalizer_holds_the_service_exits_130_at_once_and_a_rerun_recreates_it() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 3);
    let ns = case.ns.clone();
    let before = snapshot(cp, &ns);
    set_finalizer(cp, &ns, "s2", Some("example.com/slow-cleanup"));
    let proxy = FaultProxy::start(cp, &unique_name("migrate-held"));
    let child = case.spawn_via(&proxy, true);
    let delete = format!("/api/v1/namespaces/{ns}/services/s2");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !proxy.seen().iter().any(|s| is_write(s, "DELETE", &delete)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the delete of s2 never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    cp.wait_for_in(Some(&ns), "service/s2", Duration::from_secs(10), |s| {
        s.is_some_and(|s| s["metadata"]["deletionTimestamp"].is_string())
    });
    let sent = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "Ctrl-C took {:?}",
        sent.elapsed()
    );
    assert_eq!(code(&out), 130, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("1 deleted and kept in the migration journal"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(in_flight(cp, &case), [format!("{ns}/s2")]);
    // The finalizer goes; the rerun recreates s2 (from the journal, not the directory).
    set_finalizer(cp, &ns, "s2", None);
    let elsewhere = Case {
        backups: cp.dir.join(unique_name("elsewhere")),
        ..case.clone()
    };
    let out = cp.plugin(&elsewhere.args(&[]));
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    assert_kept(cp, &ns, &before, &[]);
    case.assert_finished(cp, 3, "Ctrl-C during a finalizer");
}

#[test]
fn findings_elsewhere_on_the_cluster_do_not_fail_a_complete_migration() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 2);
    // An IPAddress nobody's allocator made, in a range of its own: a lasting, unrelated finding.
    let unrelated = unique_name("unrelated");
    let block = cp.next_v4_block();
    cp.create_ready_service_cidr(&unrelated, &[&block]);
    cp.create_ipaddress(&ip_in(&block, 9), "nowhere", "nobody", false);
    let out = cp.plugin(&case.args(&[]));
    let report = json_of(&out);
    assert_eq!(code(&out), 0, "{report:#}\n{}", stderr_of(&out));
    assert_eq!(report["findings"], json!([]), "{report:#}");
    assert!(
        report["unrelatedFindings"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(
        stderr_of(&out).contains("other findings on the cluster, none about this migration"),
        "{}",
        stderr_of(&out)
    );
    case.assert_finished(cp, 2, "unrelated findings");
    cp.delete("ipaddress", &ip_in(&block, 9));
}

#[test]
fn a_run_with_yes_still_says_the_plans_warnings() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 1);
    let node = unique_name("node");
    let inside = ip_in(&case.target, 200);
    cp.create(
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
        "status": {"addresses": [{"type": "InternalIP", "address": inside}]}}),
    );
    let out = cp.plugin(&case.args(&[]));
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "warning: node {node:?} has InternalIP {inside} inside {}",
            case.target
        )),
        "{}",
        stderr_of(&out)
    );
    cp.kubectl_ok(&["delete", "node", &node]);
}

#[test]
fn a_journal_entry_that_cannot_be_read_stops_the_run_before_anything_changes() {
    let cp = ControlPlane::shared();
    let case = Case::new(cp, 1);
    let before = snapshot(cp, &case.ns);
    let uid = cp.kubectl_ok(&[
        "get",
        "namespace",
        "kube-system",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let record = json!({"cluster": uid, "to": [case.target], "from": [{"name": case.old, "cidrs": [case.block]}],
        "moves": {format!("{}/ghost", case.ns): {"namespace": case.ns, "name": "ghost", "uid": "u-1", "run": "r-1",
            "at": "2026-01-01T00:00:00Z", "from": [ip_in(&case.block, 9)], "to": [ip_in(&case.target, 9)],
            "manifest": {"spec": {"clusterIPs": 5}}}}});
    cp.create(&json!({"apiVersion": cp.networking, "kind": "ServiceCIDR",
        "metadata": {"name": case.name, "labels": {JOURNAL: "journal"}, "annotations": {JOURNAL: record.to_string()}},
        "spec": {"cidrs": [case.target]}}));
    let out = cp.plugin(&case.args(&[]));
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "holds service {}/ghost to recreate, but its manifest cannot be read",
            case.ns
        )),
        "{}",
        stderr_of(&out)
    );
    assert_kept(cp, &case.ns, &before, &["s1"]);
    assert_eq!(in_flight(cp, &case), [format!("{}/ghost", case.ns)]);
}
