//! The man pages in man/ are exactly what clap_mangen makes of the command line, and real `man`
//! (Debian's man-db) renders each of them with the options the command takes.
//!
//! After changing the command line, regenerate them with `UPDATE_MAN=1 cargo test --test man`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use kubectl_servicecidr::cli::Cli;

fn committed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man")
}

/// File name -> page, for the command and each subcommand.
fn pages_in(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read_to_string(e.path()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn generated() -> BTreeMap<String, String> {
    let dir = std::env::temp_dir().join(format!("kubectl-servicecidr-man-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    clap_mangen::generate_to(Cli::command(), &dir).expect("clap_mangen");
    let pages = pages_in(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    pages
}

#[test]
fn man_pages_are_current() {
    let pages = generated();
    if std::env::var_os("UPDATE_MAN").is_some() {
        // Updating is for a person at a desk: in CI it would turn the check into a pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "UPDATE_MAN is refused in CI"
        );
        let _ = std::fs::remove_dir_all(committed_dir());
        std::fs::create_dir_all(committed_dir()).unwrap();
        for (name, page) in &pages {
            std::fs::write(committed_dir().join(name), page).unwrap();
        }
    }
    let committed = pages_in(&committed_dir());
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        pages.keys().collect::<Vec<_>>(),
        "man/ does not hold one page per command; regenerate with `UPDATE_MAN=1 cargo test --test man`"
    );
    for (name, page) in &pages {
        assert!(
            committed[name] == *page,
            "man/{name} is out of date; regenerate with `UPDATE_MAN=1 cargo test --test man`"
        );
    }
}

/// What `man` shows a reader of the committed page, as plain text.
fn man(page: &str) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(committed_dir().join(page))
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap_or_else(|e| panic!("cannot run man ({e}): scripts/test.sh installs man-db"));
    assert!(
        out.status.success(),
        "man -l {page}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bold and underline come as overstrikes: keep the letters; justification spreads words.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn man_renders_every_page_with_its_options() {
    let root = man("kubectl-servicecidr.1");
    for part in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "SUBCOMMANDS",
        "--kubeconfig",
        "delete",
    ] {
        assert!(root.contains(part), "{part} missing from:\n{root}");
    }
    let delete = man("kubectl-servicecidr-delete.1");
    for part in [
        "--dry-run",
        "A bare --dry-run is --dry-run=client",
        "--grace-period",
        "--context",
    ] {
        assert!(delete.contains(part), "{part} missing from:\n{delete}");
    }
    assert!(!delete.contains("wide"), "{delete}");
    let status = man("kubectl-servicecidr-status.1");
    assert!(
        status.contains("--watch") && status.contains("wide"),
        "{status}"
    );
}
