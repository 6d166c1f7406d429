//! The control plane's life: started by `scripts/controlplane.sh`, shared or dedicated, its
//! components stopped and restarted on demand, stopped on drop or by the watchdog.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Instant;

use super::{COMPLETER, DIRS, PLUGIN, SCRIPT};

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
    /// The group version serving ServiceCIDRs and IPAddresses: `networking.k8s.io/v1`, or
    /// `networking.k8s.io/v1beta1` on a server configured like Kubernetes 1.31-1.32.
    pub networking: String,
    /// Kubeconfig of the second kube-apiserver, when one was started.
    pub kubeconfig2: Option<PathBuf>,
    pub(super) dedicated: bool,
    pub(super) v4_blocks: AtomicU32,
    pub(super) v6_blocks: AtomicU32,
    pub(super) viewer_bound: Once,
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

    /// A dedicated control plane of another Kubernetes minor (`scripts/build-controlplane.sh
    /// MINOR` builds it once), its kube-apiserver given `apiserver_args` besides the usual flags;
    /// with `apiserver2_args`, a second kube-apiserver on the same etcd takes them too
    /// ([`ControlPlane::kubeconfig2`]).
    pub fn start_version(
        minor: &str,
        apiserver_args: &str,
        apiserver2_args: Option<&str>,
    ) -> ControlPlane {
        let build = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-controlplane.sh");
        let out = Command::new("bash")
            .arg(build)
            .arg(minor)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {build}: {e}"));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{build} {minor} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = printed.lines().last().unwrap_or_default().trim().to_owned();
        ControlPlane::start_in(true, true, Some((&bin, apiserver_args, apiserver2_args)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn start(controller: bool, dedicated: bool) -> Result<ControlPlane, String> {
        ControlPlane::start_in(controller, dedicated, None)
    }

    /// `version`: the binaries' directory, extra flags for kube-apiserver and for a second one.
    fn start_in(
        controller: bool,
        dedicated: bool,
        version: Option<(&str, &str, Option<&str>)>,
    ) -> Result<ControlPlane, String> {
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
        if let Some((bin, apiserver_args, apiserver2_args)) = version {
            cmd.env("CONTROLPLANE_BIN", bin)
                .env("CONTROLPLANE_APISERVER_ARGS", apiserver_args);
            if let Some(args) = apiserver2_args {
                cmd.env("CONTROLPLANE_APISERVER2_ARGS", args);
            }
        }
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
        let second = dir.join("kubeconfig-2");
        let mut cp = ControlPlane {
            networking: "networking.k8s.io/v1".into(),
            kubeconfig2: second.is_file().then_some(second),
            dir,
            kubeconfig,
            bin,
            controller,
            plugin_path,
            dedicated,
            v4_blocks: AtomicU32::new(0),
            v6_blocks: AtomicU32::new(0),
            viewer_bound: Once::new(),
        };
        let v1 = cp.kubectl(&["get", "--raw", "/apis/networking.k8s.io/v1"]);
        if !String::from_utf8_lossy(&v1.stdout).contains("\"servicecidrs\"") {
            cp.networking = "networking.k8s.io/v1beta1".into();
        }
        Ok(cp)
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

    pub(super) fn fail(&self, what: &str, out: &Output) -> ! {
        panic!(
            "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- control plane {} ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.dir.display(),
            self.logs()
        )
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

    /// Restarts kube-apiserver as [`ControlPlane::restart_apiserver`] does, its
    /// `--service-cluster-ip-range` changed to `range`, as an operator renumbering by flag would.
    pub fn restart_apiserver_with_range(&self, range: &str) {
        let cmd = self.dir.join("cmd/kube-apiserver.sh");
        let text = fs::read_to_string(&cmd).unwrap();
        let flag = "--service-cluster-ip-range=";
        let start = text
            .find(flag)
            .expect("no range flag in the apiserver's command")
            + flag.len();
        let end = start + text[start..].find(' ').unwrap();
        // The script's own quoting escapes the comma.
        let changed = format!(
            "{}{}{}",
            &text[..start],
            range.replace(',', "\\,"),
            &text[end..]
        );
        fs::write(&cmd, changed).unwrap();
        self.restart_apiserver();
    }

    /// Stops every component, keeping the directory (certificates, kubeconfig) as a cluster that
    /// went away would. Only on a dedicated control plane.
    pub fn stop(&self) {
        assert!(self.dedicated, "stop on the shared control plane");
        self.script("stop");
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
