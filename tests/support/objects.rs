//! Driving a control plane: kubectl and the plugin against it, and the objects tests make.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

impl ControlPlane {
    pub(super) fn kubectl_cmd(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd.env_remove("KUBECONFIG").stdin(Stdio::null());
        cmd
    }

    /// Runs the pinned kubectl as admin (`--kubeconfig` set).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd()
            .args(args)
            .output()
            .expect("cannot run kubectl")
    }

    /// Runs the pinned kubectl as the read-only user `viewer`.
    pub fn kubectl_as_viewer(&self, args: &[&str]) -> Output {
        self.kubectl_cmd()
            .args(["--context", "viewer"])
            .args(args)
            .output()
            .expect("cannot run kubectl")
    }

    /// Runs kubectl with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .expect("writing kubectl stdin");
        child.wait_with_output().expect("waiting for kubectl")
    }

    /// Runs kubectl, panics (with stderr and log tails) unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        if !out.status.success() {
            self.fail(&format!("kubectl {}", args.join(" ")), &out);
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl_stdin_ok(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_stdin(args, input);
        if !out.status.success() {
            self.fail(
                &format!("kubectl {} with stdin:\n{input}\n", args.join(" ")),
                &out,
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` (YAML or JSON, several documents allowed).
    pub fn apply(&self, yaml: &str) {
        self.kubectl_stdin_ok(&["apply", "-f", "-"], yaml);
    }

    /// `kubectl create -f - -o json`; returns the created object as the server stored it.
    pub fn create(&self, manifest: &Value) -> Value {
        let out =
            self.kubectl_stdin_ok(&["create", "-f", "-", "-o", "json"], &manifest.to_string());
        serde_json::from_str(&out).expect("kubectl create -o json printed no JSON")
    }

    fn plugin_cmd(&self, args: &[&str]) -> Command {
        self.plugin_cmd_via(&self.kubeconfig, args)
    }

    fn plugin_cmd_via(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(PLUGIN);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// The plugin through another kubeconfig (e.g. [`ControlPlane::kubeconfig2`]).
    pub fn plugin_via(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Output {
        self.plugin_cmd_via(kubeconfig, args)
            .output()
            .expect("cannot run kubectl-servicecidr")
    }

    /// Runs the plugin binary directly: `kubectl-servicecidr --kubeconfig <path> ARGS`, NO_COLOR=1.
    pub fn plugin(&self, args: &[&str]) -> Output {
        self.plugin_cmd(args)
            .output()
            .expect("cannot run the plugin")
    }

    /// Starts the plugin like [`ControlPlane::plugin`] without waiting, its output captured.
    pub fn spawn_plugin(&self, args: &[&str]) -> std::process::Child {
        self.plugin_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run the plugin")
    }

    /// Like [`ControlPlane::plugin`], as the read-only user (`--context viewer`). Call
    /// [`ControlPlane::bind_viewer_readonly`] first for it to be allowed to read anything.
    pub fn plugin_as_viewer(&self, args: &[&str]) -> Output {
        let mut all = vec!["--context", "viewer"];
        all.extend_from_slice(args);
        self.plugin(&all)
    }

    /// Runs `kubectl servicecidr ARGS` through kubectl's plugin mechanism: the plugin is found on PATH
    /// (a directory with a `kubectl-servicecidr` symlink, put first) and gets KUBECONFIG from the env.
    pub fn via_kubectl(&self, args: &[&str]) -> Output {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.plugin_path.clone()];
        dirs.extend(std::env::split_paths(&path));
        Command::new(self.bin.join("kubectl"))
            .arg("servicecidr")
            .args(args)
            .env("PATH", std::env::join_paths(dirs).expect("PATH"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("cannot run kubectl")
    }

    /// A fresh IPv4 /24 for this test: `10.100.0.0/24`, `10.100.1.0/24`, ... `10.255.255.0/24`; never
    /// overlaps another block nor the default range 10.96.0.0/16.
    pub fn next_v4_block(&self) -> String {
        let n = self.v4_blocks.fetch_add(1, Ordering::Relaxed);
        let second = 100 + n / 256;
        assert!(second <= 255, "out of IPv4 test blocks");
        format!("10.{second}.{}.0/24", n % 256)
    }

    /// A fresh IPv6 /112 inside fd00:1::/64: `fd00:1::1:0/112`, `fd00:1::2:0/112`, ...; never
    /// overlaps another block nor the default range fd00:10:96::/112.
    pub fn next_v6_block(&self) -> String {
        let n = self.v6_blocks.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(n <= 0xffff, "out of IPv6 test blocks");
        format!("fd00:1::{n:x}:0/112")
    }

    /// Creates a ServiceCIDR (with `kubectl create`: no last-applied annotation).
    pub fn create_service_cidr(&self, name: &str, cidrs: &[&str]) -> Value {
        self.create(&json!({
            "apiVersion": self.networking,
            "kind": "ServiceCIDR",
            "metadata": {"name": name},
            "spec": {"cidrs": cidrs},
        }))
    }

    /// Creates a ServiceCIDR and waits until the controller reports it Ready (so it also carries
    /// the controller's finalizer).
    pub fn create_ready_service_cidr(&self, name: &str, cidrs: &[&str]) {
        self.create_service_cidr(name, cidrs);
        self.wait_kubectl(
            &format!("servicecidr/{name}"),
            "condition=Ready",
            Duration::from_secs(30),
        );
    }

    /// Creates the namespace unless it exists (safe to race with other tests).
    pub fn ensure_namespace(&self, ns: &str) {
        let out = self.kubectl(&["create", "namespace", ns]);
        if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("AlreadyExists")
        {
            self.fail(&format!("kubectl create namespace {ns}"), &out);
        }
    }

    /// Creates a ClusterIP Service with one port (80/TCP), with the given clusterIP or a dynamic one;
    /// creates the namespace if needed. Returns the allocated `spec.clusterIP`.
    pub fn create_service(&self, ns: &str, name: &str, cluster_ip: Option<&str>) -> String {
        self.ensure_namespace(ns);
        let mut spec = json!({"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]});
        if let Some(ip) = cluster_ip {
            spec["clusterIP"] = json!(ip);
        }
        let svc = self.create(&json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }));
        svc["spec"]["clusterIP"]
            .as_str()
            .unwrap_or_else(|| panic!("service {ns}/{name} has no clusterIP: {svc}"))
            .to_string()
    }

    /// Asks the real allocator for `ip` with a ClusterIP Service of its own in `ns`; true when the
    /// IP was given. Any refusal other than "not in a usable range" fails the test.
    pub fn allocator_gives(&self, ns: &str, ip: &str) -> bool {
        self.ensure_namespace(ns);
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": unique_name("probe"), "namespace": ns},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"port": 80}]},
        });
        let out = self.kubectl_stdin(&["create", "-f", "-"], &svc.to_string());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success()
                || err.contains("does not match the current range")
                || err.contains("not in the valid range")
                || err.contains("is not within"),
            "unexpected refusal of {ip}: {err}"
        );
        out.status.success()
    }

    /// Asks the allocator for one address after another of `block`, from `host` on, until its
    /// answer is `gives`; the allocator learns of changes through its informer, and no object
    /// says when. Returns the next host not yet asked for; fails the test after 30 s.
    pub fn until_allocator(&self, ns: &str, block: &str, mut host: u128, gives: bool) -> u128 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let given = self.allocator_gives(ns, &ip_in(block, host));
            host += 1;
            if given == gives {
                return host;
            }
            assert!(
                Instant::now() < deadline,
                "the allocator kept {} {block}",
                if gives { "refusing" } else { "giving out" }
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates an IPAddress by hand, with parentRef `{group: "", resource: services, namespace, name}`
    /// and the ip-family label; `managed` adds `managed-by: ipallocator.k8s.io` like the allocator.
    pub fn create_ipaddress(
        &self,
        ip: &str,
        parent_ns: &str,
        parent_name: &str,
        managed: bool,
    ) -> Value {
        let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
        let mut labels = json!({ LABEL_IP_FAMILY: family });
        if managed {
            labels[LABEL_MANAGED_BY] = json!(MANAGED_BY_ALLOCATOR);
        }
        self.create(&json!({
            "apiVersion": self.networking,
            "kind": "IPAddress",
            "metadata": {"name": ip, "labels": labels},
            "spec": {"parentRef": {
                "group": "",
                "resource": "services",
                "namespace": parent_ns,
                "name": parent_name,
            }},
        }))
    }

    /// Sets the finalizers of a cluster-scoped object to exactly `finalizers` (a merge patch, as
    /// people strip them by hand; none: takes them all off).
    pub fn set_finalizers(&self, kind: &str, name: &str, finalizers: &[&str]) {
        let patch =
            json!({"metadata": {"finalizers": (!finalizers.is_empty()).then_some(finalizers)}});
        self.kubectl_ok(&[
            "patch",
            kind,
            name,
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    /// Deletes a cluster-scoped object (`kind` as kubectl takes it: `servicecidr`, `ipaddress`, ...)
    /// without waiting for finalizers; no error if it does not exist.
    pub fn delete(&self, kind: &str, name: &str) {
        self.kubectl_ok(&["delete", kind, name, "--wait=false", "--ignore-not-found"]);
    }

    /// Deletes a namespaced object without waiting; no error if it does not exist.
    pub fn delete_in(&self, ns: &str, kind: &str, name: &str) {
        self.kubectl_ok(&[
            "delete",
            kind,
            name,
            "-n",
            ns,
            "--wait=false",
            "--ignore-not-found",
        ]);
    }

    /// The object as JSON, or None if it does not exist (cluster-scoped; `what` = `KIND/NAME`).
    pub fn get(&self, what: &str) -> Option<Value> {
        self.get_in(None, what)
    }

    /// The object as JSON, or None if it does not exist; `ns` for namespaced kinds.
    pub fn get_in(&self, ns: Option<&str>, what: &str) -> Option<Value> {
        self.try_get_in(ns, what)
            .unwrap_or_else(|out| self.fail(&format!("kubectl get {what}"), &out))
    }

    pub(super) fn try_get_in(&self, ns: Option<&str>, what: &str) -> Result<Option<Value>, Output> {
        let mut args = vec!["get", what, "-o", "json", "--ignore-not-found"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let out = self.kubectl(&args);
        if !out.status.success() {
            return Err(out);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            Ok(None)
        } else {
            Ok(Some(
                serde_json::from_str(&text).expect("kubectl get -o json printed no JSON"),
            ))
        }
    }

    /// `kubectl wait --for=FOR WHAT --timeout=...`, e.g. `("servicecidr/x", "condition=Ready=false")`
    /// or `("servicecidr/x", "delete")`; panics with log tails on timeout.
    pub fn wait_kubectl(&self, what: &str, for_: &str, timeout: Duration) {
        let t = format!("{}ms", timeout.as_millis());
        self.kubectl_ok(&[
            "wait",
            &format!("--for={for_}"),
            what,
            &format!("--timeout={t}"),
        ]);
    }

    /// Waits (watching, no polling) until `predicate` holds for the cluster-scoped object `what`
    /// (`KIND/NAME`, e.g. `servicecidr/foo`); the predicate gets None while the object does not exist.
    /// Returns the state that satisfied it; panics with the last state and log tails on timeout.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        predicate: impl FnMut(Option<&Value>) -> bool,
    ) -> Option<Value> {
        self.wait_for_in(None, what, timeout, predicate)
    }

    /// [`ControlPlane::wait_for`] for namespaced objects (`ns` = Some).
    pub fn wait_for_in(
        &self,
        ns: Option<&str>,
        what: &str,
        timeout: Duration,
        predicate: impl FnMut(Option<&Value>) -> bool,
    ) -> Option<Value> {
        match self.watch_until(ns, what, timeout, predicate) {
            Ok(state) => state,
            Err(last) => panic!(
                "timed out after {timeout:?} waiting for {what}; last state:\n{}\n--- control plane {} ---\n{}",
                last.map_or("<absent>".to_string(), |v| {
                    serde_json::to_string_pretty(&v).unwrap()
                }),
                self.dir.display(),
                self.logs()
            ),
        }
    }

    /// Applies `deploy/rbac/servicecidr-viewer.yaml` (read-only ClusterRole bound to the user
    /// `viewer`) once, and waits until the authorizer lets `viewer` list ServiceCIDRs.
    pub fn bind_viewer_readonly(&self) {
        self.viewer_bound
            .call_once(|| self.apply_rbac(VIEWER_RBAC, "viewer", "list"));
    }

    /// Applies `deploy/rbac/servicecidr-operator.yaml` (bound to the user `operator`), and waits
    /// until the authorizer lets `operator` patch ServiceCIDRs.
    pub fn bind_operator(&self) {
        self.apply_rbac(OPERATOR_RBAC, "operator", "patch");
    }

    /// Applies RBAC objects from `file` and waits until the authorizer lets `user` `verb`
    /// ServiceCIDRs.
    pub fn apply_rbac(&self, file: &str, user: &str, verb: &str) {
        self.kubectl_ok(&["apply", "-f", file]);
        // RBAC is enforced from the apiserver's informer cache; there is no object to watch for
        // "the authorizer has seen it", so ask it (SubjectAccessReview via `auth can-i`).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.kubectl(&[
                "--context",
                user,
                "auth",
                "can-i",
                verb,
                "servicecidrs.networking.k8s.io",
            ]);
            if String::from_utf8_lossy(&out.stdout).trim() == "yes" {
                break;
            }
            if Instant::now() >= deadline {
                self.fail(
                    &format!("waiting for the {user} ClusterRoleBinding to take effect"),
                    &out,
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A ValidatingAdmissionPolicy and its binding that deny `operations` (e.g. `"CREATE"`) on
    /// `(group, resource)` when the CEL `expression` is false; returns once the apiserver enforces
    /// it, which `enforced` tells (a new policy can be enforced on one request and not on the next
    /// for a moment, so ten in a row must say so).
    pub fn deny_by_policy(
        &self,
        name: &str,
        (group, resource): (&str, &str),
        operations: &str,
        expression: &str,
        enforced: impl Fn() -> bool,
    ) {
        let version = if group.is_empty() { "v1" } else { "*" };
        self.apply(&format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["{group}"]
      apiVersions: ["{version}"]
      operations: [{operations}]
      resources: ["{resource}"]
  validations:
  - expression: "{expression}"
    message: "denied by the test policy {name}"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
"#
        ));
        self.until(&format!("policy {name} enforced"), enforced);
    }

    /// Removes a policy made by [`ControlPlane::deny_by_policy`]; returns once it is no longer
    /// enforced.
    pub fn allow_again(&self, name: &str, enforced: impl Fn() -> bool) {
        self.kubectl_ok(&["delete", "validatingadmissionpolicybinding", name]);
        self.kubectl_ok(&["delete", "validatingadmissionpolicy", name]);
        self.until(&format!("policy {name} lifted"), || !enforced());
    }

    /// Waits until `holds` is true ten times in a row, 50 ms apart (30 s at most).
    fn until(&self, what: &str, holds: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut in_a_row = 0;
        while in_a_row < 10 {
            assert!(Instant::now() < deadline, "never: {what}");
            in_a_row = if holds() { in_a_row + 1 } else { 0 };
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
