//! The committed shell completion scripts in completions/ are exactly what
//! `kubectl-servicecidr completion SHELL` prints, so they never drift from the command line.
//!
//! After changing the command line, regenerate them with
//! `UPDATE_COMPLETIONS=1 cargo test --test completions`.

use std::path::PathBuf;
use std::process::Command;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-servicecidr");

/// (shell, committed file)
const SCRIPTS: [(&str, &str); 3] = [
    ("bash", "kubectl-servicecidr.bash"),
    ("zsh", "_kubectl-servicecidr"),
    ("fish", "kubectl-servicecidr.fish"),
];

fn generate(shell: &str) -> String {
    let out = Command::new(PLUGIN)
        .args(["completion", shell])
        .env_remove("KUBECONFIG")
        .output()
        .expect("cannot run kubectl-servicecidr");
    assert!(
        out.status.success(),
        "kubectl-servicecidr completion {shell} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("completion script is not UTF-8")
}

fn check(shell: &str, file: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("completions")
        .join(file);
    let generated = generate(shell);
    if std::env::var_os("UPDATE_COMPLETIONS").is_some() {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what `kubectl-servicecidr completion {shell}` prints now; regenerate it with \
         `UPDATE_COMPLETIONS=1 cargo test --test completions` (or `cargo run -q -- completion \
         {shell} > completions/{file}`) and commit the result",
        path.display()
    );
}

#[test]
fn bash_script_is_current() {
    let (shell, file) = SCRIPTS[0];
    check(shell, file);
}

#[test]
fn zsh_script_is_current() {
    let (shell, file) = SCRIPTS[1];
    check(shell, file);
}

#[test]
fn fish_script_is_current() {
    let (shell, file) = SCRIPTS[2];
    check(shell, file);
}

/// Completes `words` (the last one being completed) in a real bash with the shipped script, as
/// bash itself calls the function: COMP_WORDS, COMP_CWORD, then (command, word, previous word).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("completions/kubectl-servicecidr.bash");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; _kubectl__servicecidr kubectl-servicecidr '{}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words[cword],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_their_flags_and_flag_values() {
    let subcommands = bash_completes(&["kubectl-servicecidr", ""]);
    for s in ["status", "orphans", "delete", "completion"] {
        assert!(subcommands.contains(&s.to_owned()), "{subcommands:?}");
    }
    let delete = bash_completes(&["kubectl-servicecidr", "delete", "--"]);
    for f in [
        "--wait",
        "--dry-run",
        "--remove-finalizer",
        "--timeout",
        "--kubeconfig",
    ] {
        assert!(delete.contains(&f.to_owned()), "{delete:?}");
    }
    let orphans = bash_completes(&["kubectl-servicecidr", "orphans", "--"]);
    assert!(
        orphans.contains(&"--suggest-range".to_owned()),
        "{orphans:?}"
    );
    assert_eq!(
        bash_completes(&["kubectl-servicecidr", "status", "-o", ""]),
        ["table", "wide", "json", "yaml"]
    );
}
