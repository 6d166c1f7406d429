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
