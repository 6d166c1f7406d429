//! The committed shell completion scripts in completions/ are exactly what
//! `kubectl-servicecidr completion SHELL` prints, so they never drift from the command line, and
//! each one completes for real in its shell (bash, zsh and fish, from Debian's packages).
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
        // Updating is for a person at a desk: in CI it would turn the check into a pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "UPDATE_COMPLETIONS is refused in CI"
        );
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
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

fn script(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("completions")
        .join(file)
}

/// Runs a shell program; a shell that is missing fails the test (scripts/test.sh installs them).
fn run_shell(shell: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new(shell)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell} ({e}): scripts/test.sh installs it"));
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // fish prints `value<TAB>description`.
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// What `shell` offers for `line` (the cursor at its end) with the committed script, driven as
/// each shell drives it for a user pressing TAB.
fn completes(shell: &str, line: &str) -> Vec<String> {
    match shell {
        // bash calls the function with COMP_WORDS, COMP_CWORD, then (command, word, previous).
        "bash" => {
            let mut words: Vec<&str> = line.split(' ').collect();
            if words.is_empty() {
                words.push("");
            }
            let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
            let cword = words.len() - 1;
            let prev = if cword > 0 { words[cword - 1] } else { "" };
            let program = format!(
                "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; _kubectl__servicecidr kubectl-servicecidr '{}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script(SCRIPTS[0].1).display(),
                quoted.join(" "),
                words[cword],
            );
            run_shell("bash", &["-c", &program])
        }
        // zsh completes only in its line editor: a real interactive zsh under zsh/zpty.
        "zsh" => {
            let capture = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/zsh-complete.zsh"
            );
            let dir = script("").display().to_string();
            run_shell("zsh", &["-f", capture, &dir, line])
        }
        "fish" => {
            let program = format!(
                "source '{}'; complete -C '{line}'",
                script(SCRIPTS[2].1).display()
            );
            run_shell("fish", &["--no-config", "-c", &program])
        }
        _ => unreachable!("no such shell in SCRIPTS"),
    }
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Subcommands, each subcommand's own and global flags (and none it does not take), and the
/// values of flags, in every shell the scripts are shipped for.
fn check_completion(shell: &str) {
    let subcommands = completes(shell, "kubectl-servicecidr ");
    for s in ["status", "orphans", "delete", "migrate", "completion"] {
        assert!(
            subcommands.contains(&s.to_owned()),
            "{shell}: {subcommands:?}"
        );
    }
    let delete = completes(shell, "kubectl-servicecidr delete blue --");
    for f in [
        "--wait",
        "--dry-run",
        "--remove-finalizer",
        "--timeout",
        "--kubeconfig",
        "--output",
    ] {
        assert!(
            delete.contains(&f.to_owned()),
            "{shell}: {f} not in {delete:?}"
        );
    }
    assert!(
        !delete.contains(&"--watch".to_owned()),
        "{shell}: {delete:?}"
    );
    let orphans = completes(shell, "kubectl-servicecidr orphans --");
    assert!(
        orphans.contains(&"--suggest-range".to_owned()),
        "{shell}: {orphans:?}"
    );
    assert!(
        !orphans.contains(&"--wait".to_owned()),
        "{shell}: {orphans:?}"
    );
    // bash offers flags beside subcommands on an empty word, as at the top level.
    let migrate = completes(shell, "kubectl-servicecidr migrate ");
    for s in ["plan", "run"] {
        assert!(migrate.contains(&s.to_owned()), "{shell}: {migrate:?}");
    }
    assert!(
        !migrate.contains(&"help".to_owned()),
        "{shell}: {migrate:?}"
    );
    let run = completes(shell, "kubectl-servicecidr migrate run --");
    for f in [
        "--from",
        "--to",
        "--yes",
        "--backup-dir",
        "--dry-run",
        "--only",
        "--output",
    ] {
        assert!(run.contains(&f.to_owned()), "{shell}: {f} not in {run:?}");
    }
    let plan = completes(shell, "kubectl-servicecidr migrate plan --");
    assert!(
        plan.contains(&"--allow-overlap".to_owned()),
        "{shell}: {plan:?}"
    );
    assert!(!plan.contains(&"--yes".to_owned()), "{shell}: {plan:?}");
    let completion = completes(shell, "kubectl-servicecidr completion --");
    assert!(
        !completion.contains(&"--output".to_owned()),
        "{shell}: {completion:?}"
    );
    assert_eq!(
        completes(shell, "kubectl-servicecidr status -o "),
        sorted(&["table", "wide", "json", "yaml", "prometheus"]),
        "{shell}"
    );
    assert_eq!(
        completes(shell, "kubectl-servicecidr orphans -o "),
        sorted(&["table", "wide", "json", "yaml"]),
        "{shell}"
    );
    assert_eq!(
        completes(shell, "kubectl-servicecidr delete blue -o "),
        sorted(&["table", "json", "yaml"]),
        "{shell}"
    );
    assert_eq!(
        completes(shell, "kubectl-servicecidr orphans --kind "),
        sorted(&[
            "Orphaned",
            "AtRisk",
            "DanglingParent",
            "WrongParent",
            "Unrecorded",
            "Unmanaged"
        ]),
        "{shell}"
    );
}

#[test]
fn bash_completes_subcommands_their_flags_and_flag_values() {
    check_completion("bash");
}

#[test]
fn zsh_completes_subcommands_their_flags_and_flag_values() {
    check_completion("zsh");
}

#[test]
fn fish_completes_subcommands_their_flags_and_flag_values() {
    check_completion("fish");
}
