//! `kubectl servicecidr <TAB>` end to end: the pinned kubectl's plugin completion
//! (`kubectl __complete servicecidr ...`, what kubectl's shell scripts run) finds
//! `kubectl_complete-servicecidr` on PATH and relays its answers, names from the live cluster
//! included.
mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{ControlPlane, unique_name};

const COMPLETER: &str = env!("CARGO_BIN_EXE_kubectl_complete-servicecidr");

/// cobra's ShellCompDirectiveNoFileComp.
const NO_FILE_COMP: &str = ":4";

struct Completion {
    /// The candidates, without their descriptions.
    values: Vec<String>,
    directive: String,
    raw: String,
}

/// `kubectl __complete servicecidr ARGS`, with the plugin and its completer first on PATH.
/// `kubeconfig`: set KUBECONFIG to the control plane's (else it is unset, and the words must say).
fn complete(cp: &ControlPlane, args: &[&str], kubeconfig: bool) -> Completion {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![cp.plugin_path.clone()];
    dirs.extend(std::env::split_paths(&path));
    let mut cmd = Command::new(cp.bin.join("kubectl"));
    cmd.arg("__complete")
        .arg("servicecidr")
        .args(args)
        .env("PATH", std::env::join_paths(dirs).expect("PATH"))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    if kubeconfig {
        cmd.env("KUBECONFIG", &cp.kubeconfig);
    }
    let out = cmd.output().expect("cannot run kubectl");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl __complete servicecidr {args:?} failed ({}):\n{raw}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<&str> = raw.lines().filter(|l| !l.is_empty()).collect();
    let directive = match lines.last() {
        Some(l) if l.starts_with(':') => lines.pop().unwrap().to_string(),
        _ => String::new(),
    };
    let values = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    Completion {
        values,
        directive,
        raw,
    }
}

#[test]
fn the_completer_on_path_is_the_one_built() {
    let cp = ControlPlane::shared();
    let linked = cp.plugin_path.join("kubectl_complete-servicecidr");
    assert_eq!(
        std::fs::canonicalize(&linked).unwrap(),
        std::fs::canonicalize(Path::new(COMPLETER)).unwrap(),
        "{} does not point at the completer cargo built",
        linked.display()
    );
}

#[test]
fn kubectl_completes_subcommands() {
    let cp = ControlPlane::shared();
    let c = complete(cp, &[""], true);
    for sub in ["status", "orphans", "delete", "completion"] {
        assert!(c.values.iter().any(|v| v == sub), "no {sub} in:\n{}", c.raw);
    }
    assert_eq!(c.directive, NO_FILE_COMP, "{}", c.raw);

    let c = complete(cp, &["st"], true);
    assert_eq!(c.values, ["status"], "{}", c.raw);
}

#[test]
fn kubectl_completes_flags_and_values() {
    let cp = ControlPlane::shared();
    let c = complete(cp, &["delete", "x", "--dry"], true);
    assert_eq!(c.values, ["--dry-run"], "{}", c.raw);
    let c = complete(cp, &["status", "-o", ""], true);
    assert_eq!(
        c.values,
        ["table", "wide", "json", "yaml", "prometheus"],
        "{}",
        c.raw
    );
    let c = complete(cp, &["orphans", "-o", ""], true);
    assert_eq!(c.values, ["table", "wide", "json", "yaml"], "{}", c.raw);
    let c = complete(cp, &["--context", ""], true);
    for ctx in ["admin", "viewer"] {
        assert!(
            c.values.iter().any(|v| v == ctx),
            "no context {ctx} in:\n{}",
            c.raw
        );
    }
}

#[test]
fn kubectl_completes_servicecidr_names_from_the_cluster() {
    let cp = ControlPlane::shared();
    let name = unique_name("complete");
    let block = cp.next_v4_block();
    cp.create_service_cidr(&name, &[&block]);

    let c = complete(cp, &["status", ""], true);
    assert!(c.values.contains(&name), "no {name} in:\n{}", c.raw);
    assert!(c.values.iter().any(|v| v == "kubernetes"), "{}", c.raw);
    assert_eq!(c.directive, NO_FILE_COMP, "{}", c.raw);
    // Its description shows the range.
    assert!(
        c.raw.lines().any(|l| l == format!("{name}\t{block}")),
        "no `{name}<TAB>{block}` line in:\n{}",
        c.raw
    );

    // The prefix typed, names already given left out, the cluster chosen by --kubeconfig typed.
    let kubeconfig = cp.kubeconfig.to_str().unwrap();
    let c = complete(
        cp,
        &["--kubeconfig", kubeconfig, "delete", "kubernetes", "comp"],
        false,
    );
    assert!(c.values.contains(&name), "no {name} in:\n{}", c.raw);
    assert!(c.values.iter().all(|v| v.starts_with("comp")), "{}", c.raw);

    cp.delete("servicecidr", &name);
}

#[test]
fn errors_give_no_names_but_still_a_directive() {
    let cp = ControlPlane::shared();
    // A kubeconfig that does not exist.
    let missing = cp.dir.join("no-such-kubeconfig");
    let c = complete(
        cp,
        &["--kubeconfig", missing.to_str().unwrap(), "status", ""],
        false,
    );
    assert!(c.values.is_empty(), "{}", c.raw);
    assert_eq!(c.directive, NO_FILE_COMP, "{}", c.raw);
    // A user the server refuses to list ServiceCIDRs to (no RBAC for `viewer` in this binary).
    let c = complete(cp, &["--context", "viewer", "status", ""], true);
    assert!(c.values.is_empty(), "{}", c.raw);
    assert_eq!(c.directive, NO_FILE_COMP, "{}", c.raw);
    // A context that does not exist.
    let c = complete(cp, &["--context", "nosuch", "delete", ""], true);
    assert!(c.values.is_empty(), "{}", c.raw);
    assert_eq!(c.directive, NO_FILE_COMP, "{}", c.raw);
}
