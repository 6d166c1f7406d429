//! End-to-end test fixture: a real, throwaway control plane (etcd, kube-apiserver and a
//! kube-controller-manager running only the service-cidr controller) on loopback ports, started by
//! `scripts/controlplane.sh`, plus helpers to drive it with the pinned kubectl and the plugin.
//!
//! Use it from an integration test with `mod support;`. One control plane is shared by all tests of a
//! test binary ([`ControlPlane::shared`]); tests that need a differently configured or disturbed one
//! (no controller, restarts) take a [`ControlPlane::start_dedicated`] one, stopped on drop.
//!
//! Cleanup never depends on destructors: every control plane is started with `--owner <this pid>`,
//! so a detached watchdog stops it once the test binary exits, panics included.
#![allow(dead_code)]

use std::fs;
use std::io::{BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod faults;
pub mod hostile;
mod output;
#[allow(unused_imports)]
pub use output::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/controlplane.sh");
/// The read-only ClusterRole (and its binding to the user `viewer`) applied by
/// [`ControlPlane::bind_viewer_readonly`].
pub const VIEWER_RBAC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/rbac/servicecidr-viewer.yaml"
);
/// The ClusterRole for `delete` (and its binding to the user `operator`), applied by
/// [`ControlPlane::bind_operator`].
pub const OPERATOR_RBAC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/rbac/servicecidr-operator.yaml"
);
/// The plugin binary built by cargo for this test run.
pub const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-servicecidr");
/// The completion helper (`kubectl_complete-servicecidr`) built by cargo for this test run.
pub const COMPLETER: &str = env!("CARGO_BIN_EXE_kubectl_complete-servicecidr");

/// Label keys and values the upstream IP allocator puts on IPAddress objects.
pub const LABEL_IP_FAMILY: &str = "ipaddress.kubernetes.io/ip-family";
pub const LABEL_MANAGED_BY: &str = "ipaddress.kubernetes.io/managed-by";
pub const MANAGED_BY_ALLOCATOR: &str = "ipallocator.k8s.io";
/// Finalizer the service-cidr controller puts on every ServiceCIDR.
pub const SERVICE_CIDR_FINALIZER: &str = "networking.k8s.io/service-cidr-finalizer";
/// The plugin's own finalizer, put on a range before `delete` deletes it.
pub const GUARD_FINALIZER: &str = "servicecidr.kubectl.io/release-guard";

static NAMES: AtomicU32 = AtomicU32::new(0);
static DIRS: AtomicU32 = AtomicU32::new(0);

/// A name unique within this test binary (hence within its control planes): `PREFIX-N`.
/// `prefix` must be a valid DNS label start (lowercase alphanumerics and `-`).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

/// Address number `host` of `block` (`"10.100.3.0/24"`, 5 -> `"10.100.3.5"`; IPv6 alike), in
/// canonical form. Panics if it falls outside the block.
pub fn ip_in(block: &str, host: u128) -> String {
    let net: ipnet::IpNet = block
        .parse()
        .unwrap_or_else(|e| panic!("bad CIDR {block}: {e}"));
    let ip = match net.network() {
        IpAddr::V4(a) => {
            let n = u128::from(u32::from(a)) + host;
            IpAddr::V4(Ipv4Addr::from(u32::try_from(n).expect("IPv4 overflow")))
        }
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + host)),
    };
    assert!(net.contains(&ip), "host {host} is outside {block}");
    ip.to_string()
}

/// `delete NAME --wait --remove-finalizer -o json`: retire a range, releasing it ourselves when no
/// controller does.
pub fn retire_args(name: &str) -> [&str; 6] {
    ["delete", name, "--wait", "--remove-finalizer", "-o", "json"]
}

pub struct ControlPlane {
    /// Directory of this control plane (env, kubeconfig, pki/, logs/, cmd/, pids/).
    pub dir: PathBuf,
    /// Kubeconfig with contexts `admin` (current, system:masters) and `viewer` (no groups).
    pub kubeconfig: PathBuf,
    /// Directory holding the pinned kubectl, kube-apiserver, kube-controller-manager and etcd.
    pub bin: PathBuf,
    /// Whether the service-cidr controller was started.
    pub controller: bool,
    /// Directory put first on PATH for [`ControlPlane::via_kubectl`]: `kubectl-servicecidr` and
    /// `kubectl_complete-servicecidr` symlinks to the built binaries.
    pub plugin_path: PathBuf,
    dedicated: bool,
    v4_blocks: AtomicU32,
    v6_blocks: AtomicU32,
    viewer_bound: Once,
}

impl ControlPlane {
    /// The control plane shared by all tests of this test binary (controller running), started on
    /// first use. Tests using it must keep to their own names ([`unique_name`]) and ranges
    /// ([`ControlPlane::next_v4_block`]), and must not stop or restart its components.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        match SHARED.get_or_init(|| ControlPlane::start(true, false)) {
            Ok(cp) => cp,
            // Remembered, so that a broken setup fails every test once instead of retrying each time.
            Err(e) => panic!("{e}"),
        }
    }

    /// A control plane of its own, with or without the service-cidr controller; stopped and removed
    /// when dropped (and by the watchdog if the test binary dies first).
    pub fn start_dedicated(controller: bool) -> ControlPlane {
        ControlPlane::start(controller, true).unwrap_or_else(|e| panic!("{e}"))
    }

    fn start(controller: bool, dedicated: bool) -> Result<ControlPlane, String> {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("controlplane");
        fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
        remove_stale(&root);
        let dir = root.join(format!(
            "cp-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);

        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT).arg("start").arg(&dir);
        cmd.arg("--owner").arg(std::process::id().to_string());
        if !controller {
            cmd.arg("--no-controller");
        }
        let started = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {SCRIPT}: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "control plane failed to start ({}, {:?}): {SCRIPT} start {}\n--- stderr ---\n{stderr}",
                out.status,
                started.elapsed(),
                dir.display()
            ));
        }
        eprint!("{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let kubeconfig = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        if !kubeconfig.is_file() {
            return Err(format!(
                "{SCRIPT} start printed no kubeconfig path (stdout: {stdout:?})\n{stderr}"
            ));
        }
        let env = fs::read_to_string(dir.join("env")).map_err(|e| format!("reading env: {e}"))?;
        let bin = env
            .lines()
            .find_map(|l| l.strip_prefix("export CONTROLPLANE_BIN="))
            .map(|v| PathBuf::from(v.trim_matches(|c| c == '\'' || c == '"')))
            .ok_or_else(|| format!("no CONTROLPLANE_BIN in {}/env", dir.display()))?;

        let plugin_path = dir.join("plugin-path");
        fs::create_dir_all(&plugin_path).map_err(|e| e.to_string())?;
        for (link, target) in [
            ("kubectl-servicecidr", PLUGIN),
            ("kubectl_complete-servicecidr", COMPLETER),
        ] {
            std::os::unix::fs::symlink(target, plugin_path.join(link))
                .map_err(|e| format!("symlink {link}: {e}"))?;
        }
        Ok(ControlPlane {
            dir,
            kubeconfig,
            bin,
            controller,
            plugin_path,
            dedicated,
            v4_blocks: AtomicU32::new(0),
            v6_blocks: AtomicU32::new(0),
            viewer_bound: Once::new(),
        })
    }

    /// The last lines of every component log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["etcd", "kube-apiserver", "kube-controller-manager"] {
            let path = self.dir.join("logs").join(format!("{name}.log"));
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            // Startup boilerplate (flag dumps, the list of disabled controllers) is not worth the space.
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("flags.go:") && !l.contains("controller is disabled"))
                .collect();
            let from = lines.len().saturating_sub(30);
            s.push_str(&format!("----- tail of {} -----\n", path.display()));
            for l in &lines[from..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    fn fail(&self, what: &str, out: &Output) -> ! {
        panic!(
            "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- control plane {} ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.dir.display(),
            self.logs()
        )
    }

    fn kubectl_cmd(&self) -> Command {
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
        let mut cmd = Command::new(PLUGIN);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
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
            "apiVersion": "networking.k8s.io/v1",
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
            "apiVersion": "networking.k8s.io/v1",
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

    fn try_get_in(&self, ns: Option<&str>, what: &str) -> Result<Option<Value>, Output> {
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

    /// The watch behind [`ControlPlane::wait_for`]: `kubectl get KIND --field-selector
    /// metadata.name=NAME -w -o json --output-watch-events`, plus one GET for the current state (so
    /// "absent" is seen too). Ok(state) once `predicate` holds, Err(last state) when `timeout` runs
    /// out: the latter is how a test asserts that something does NOT happen within a period. The
    /// watch is re-established if it ends early (e.g. an apiserver restart).
    pub fn watch_until(
        &self,
        ns: Option<&str>,
        what: &str,
        timeout: Duration,
        mut predicate: impl FnMut(Option<&Value>) -> bool,
    ) -> Result<Option<Value>, Option<Value>> {
        let deadline = Instant::now() + timeout;
        let mut state = None;
        loop {
            let watch = self.watch_events(ns, what);
            // The watch was started first, so any change after this GET also arrives as an event.
            match self.try_get_in(ns, what) {
                Ok(s) => state = s,
                Err(out) => {
                    // Most likely the apiserver is restarting: retry until the deadline.
                    eprintln!(
                        "wait for {what}: kubectl get failed ({}), retrying: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                    drop(watch);
                    if Instant::now() >= deadline {
                        return Err(state);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
            }
            if predicate(state.as_ref()) {
                return Ok(state);
            }
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match watch.events.recv_timeout(left) {
                    Ok(ev) => {
                        match ev["type"].as_str() {
                            Some("ADDED" | "MODIFIED") => state = Some(ev["object"].clone()),
                            Some("DELETED") => state = None,
                            _ => continue, // BOOKMARK, ERROR
                        }
                        if predicate(state.as_ref()) {
                            return Ok(state);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => return Err(state),
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            drop(watch);
            if Instant::now() >= deadline {
                return Err(state);
            }
            // The watch ended early (apiserver restarting?): back off briefly, then watch again.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Starts `kubectl get KIND --field-selector metadata.name=NAME --watch -o json
    /// --output-watch-events` (`what` = `KIND/NAME`); its events arrive on [`EventStream::events`],
    /// the current object first (as ADDED) when it exists.
    pub fn watch_events(&self, ns: Option<&str>, what: &str) -> EventStream {
        let (kind, name) = what
            .split_once('/')
            .unwrap_or_else(|| panic!("{what}: expected KIND/NAME"));
        let mut cmd = self.kubectl_cmd();
        cmd.args([
            "get",
            kind,
            "--field-selector",
            &format!("metadata.name={name}"),
        ])
        .args(["--watch", "-o", "json", "--output-watch-events"]);
        if let Some(ns) = ns {
            cmd.args(["-n", ns]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run kubectl");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel::<Value>();
        let reader = std::thread::spawn(move || {
            let stream = serde_json::Deserializer::from_reader(BufReader::new(stdout));
            for ev in stream.into_iter::<Value>() {
                let Ok(v) = ev else { break };
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        EventStream {
            child,
            reader: Some(reader),
            events,
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

    fn script(&self, sub: &str) {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg(sub)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run controlplane.sh");
        if !out.status.success() {
            self.fail(&format!("controlplane.sh {sub}"), &out);
        }
    }

    /// Kills kube-apiserver and starts it again with the same flags and port; returns once /readyz
    /// answers. Only on a dedicated control plane.
    pub fn restart_apiserver(&self) {
        assert!(
            self.dedicated,
            "restart_apiserver on the shared control plane"
        );
        self.script("restart-apiserver");
    }

    /// Stops the service-cidr controller. Only on a dedicated control plane.
    pub fn stop_controller(&self) {
        assert!(
            self.dedicated,
            "stop_controller on the shared control plane"
        );
        self.script("stop-controller");
    }

    /// Starts the service-cidr controller and waits until it has synced. Only on a dedicated control plane.
    pub fn start_controller(&self) {
        assert!(
            self.dedicated,
            "start_controller on the shared control plane"
        );
        self.script("start-controller");
    }
}

/// A running `kubectl get --watch` ([`ControlPlane::watch_events`]); stopped when dropped.
pub struct EventStream {
    child: std::process::Child,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Watch events as kubectl prints them (`{"type": ..., "object": ...}`); disconnected once
    /// the watch ends.
    pub events: mpsc::Receiver<Value>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.dedicated {
            let _ = Command::new("bash")
                .arg(SCRIPT)
                .arg("stop")
                .arg(&self.dir)
                .arg("--clean")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Removes the directories of control planes whose test binary is gone (`cp-<pid>-<n>`), stopping
/// anything the watchdog may have missed. Their etcd WAL alone takes 64 MB.
fn remove_stale(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cp-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(entry.path())
            .arg("--clean")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
