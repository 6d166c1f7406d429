//! The release step and what it ships, for real: `scripts/release.sh` packs an archive and renders
//! the krew manifest; the real krew (built from the Go module proxy) installs it, the plugin runs
//! through krew's bin directory against the real control plane, and uninstalling leaves nothing.
//! The README's install and uninstall lines are run exactly as written. The crates.io package
//! passes `cargo publish --dry-run` and holds only what `cargo install` needs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use support::{ControlPlane, ok, with_podman_settings};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TAG: &str = concat!("v", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Plugin {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    version: String,
    homepage: String,
    short_description: String,
    description: String,
    caveats: String,
    platforms: Vec<Platform>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    selector: Selector,
    uri: String,
    sha256: String,
    bin: String,
    files: Vec<FileOperation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperation {
    from: String,
    to: String,
}

fn sha256(file: &Path) -> String {
    let out = ok(
        "sha256sum",
        Command::new("sha256sum").arg(file).output().unwrap(),
    );
    out.split_whitespace().next().unwrap().to_owned()
}

/// `scripts/release.sh OUT` with the dev profile; the archive's path.
fn release(out: &Path) -> PathBuf {
    let printed = ok(
        "scripts/release.sh",
        with_podman_settings(
            Command::new("bash")
                .arg(format!("{ROOT}/scripts/release.sh"))
                .arg(out)
                .env("RELEASE_PROFILE", "dev"),
        )
        .output()
        .unwrap(),
    );
    PathBuf::from(printed.lines().last().unwrap_or_default())
}

/// The shell block of the README that follows the marker `<!-- tests/release.rs: WHICH -->`.
fn readme_block(which: &str) -> String {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let marker = format!("<!-- tests/release.rs: {which} -->\n```sh\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker:?}"))
        + marker.len();
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("release-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file and directory under `root`, relative, except `skip`.
fn tree(root: &Path, skip: &str) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, skip: &str, into: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if rel == skip {
                continue;
            }
            into.insert(rel);
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), root, skip, into);
            }
        }
    }
    let mut all = BTreeSet::new();
    walk(root, root, skip, &mut all);
    all
}

#[test]
fn the_archive_is_complete_reproducible_and_its_manifest_names_it() {
    let (a, b) = (temp_dir("a"), temp_dir("b"));
    let archive = release(&a);
    let name = format!("kubectl-servicecidr_{TAG}_linux_amd64.tar.gz");
    assert_eq!(archive, a.join(&name));

    let listed = ok(
        "tar -tzf",
        Command::new("tar")
            .arg("-tzf")
            .arg(&archive)
            .output()
            .unwrap(),
    );
    let mut files: Vec<&str> = listed
        .lines()
        .map(|l| l.trim_start_matches("./"))
        .filter(|l| !l.is_empty() && !l.ends_with('/'))
        .collect();
    files.sort();
    let mut expected = vec![
        "LICENSE",
        "kubectl-servicecidr",
        "kubectl_complete-servicecidr",
    ];
    for dir in ["completions", "man"] {
        for e in std::fs::read_dir(format!("{ROOT}/{dir}"))
            .unwrap()
            .flatten()
        {
            expected.push(Box::leak(
                format!("{dir}/{}", e.file_name().to_string_lossy()).into_boxed_str(),
            ));
        }
    }
    expected.sort();
    assert_eq!(files, expected);

    let digest = sha256(&archive);
    let written = std::fs::read_to_string(a.join(format!("{name}.sha256"))).unwrap();
    assert_eq!(written, format!("{digest}  {name}\n"));
    let image = format!("kubectl-servicecidr_{TAG}_linux_amd64.oci.tar");
    let image_digest = sha256(&a.join(&image));
    let written = std::fs::read_to_string(a.join(format!("{image}.sha256"))).unwrap();
    assert_eq!(written, format!("{image_digest}  {image}\n"));
    // The same sources give the same bytes, the exporter's image included.
    assert_eq!(
        sha256(&release(&b)),
        digest,
        "the archive is not reproducible"
    );
    assert_eq!(
        sha256(&b.join(&image)),
        image_digest,
        "the image archive is not reproducible"
    );

    let text = std::fs::read_to_string(a.join("servicecidr.yaml")).unwrap();
    let m: Plugin = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        (m.api_version.as_str(), m.kind.as_str()),
        ("krew.googlecontainertools.github.com/v1alpha2", "Plugin")
    );
    assert_eq!(m.metadata.name, "servicecidr");
    assert_eq!(m.spec.version, TAG);
    assert_eq!(m.spec.homepage, env!("CARGO_PKG_HOMEPAGE"));
    assert!(!m.spec.short_description.contains('\n') && !m.spec.description.is_empty());
    assert!(m.spec.caveats.contains("kubectl_complete-servicecidr"));
    let [p] = m.spec.platforms.as_slice() else {
        panic!(
            "one platform was built, the manifest lists {:?}",
            m.spec.platforms
        )
    };
    assert_eq!(
        p.selector.match_labels,
        BTreeMap::from([
            ("os".into(), "linux".into()),
            ("arch".into(), "amd64".into())
        ])
    );
    assert_eq!(
        p.uri,
        format!(
            "{}/releases/download/{TAG}/{name}",
            env!("CARGO_PKG_REPOSITORY")
        )
    );
    assert_eq!(p.sha256, digest);
    assert_eq!(p.bin, "kubectl-servicecidr");
    let from: Vec<&str> = p.files.iter().map(|f| f.from.as_str()).collect();
    assert_eq!(
        from,
        [
            "kubectl-servicecidr",
            "kubectl_complete-servicecidr",
            "LICENSE"
        ]
    );
    assert!(p.files.iter().all(|f| f.to == "."));
}

/// The README's krew lines, run as written with the real krew in a KREW_ROOT of the test's own.
#[test]
fn krew_installs_runs_completes_and_uninstalls_as_the_readme_says() {
    let cp = ControlPlane::shared();
    let krew = ok(
        "scripts/build-krew.sh",
        Command::new("bash")
            .arg(format!("{ROOT}/scripts/build-krew.sh"))
            .output()
            .unwrap(),
    );
    let krew = krew.lines().last().unwrap().to_owned();
    let root = temp_dir("krew-root");
    // `uninstall` insists on a cloned plugin index, which `krew update` would fetch from GitHub; a
    // machine without GitHub has an empty one (install from a manifest never reads it).
    let index = root.join("index/default");
    std::fs::create_dir_all(index.join("plugins")).unwrap();
    ok(
        "git init",
        Command::new("git")
            .args(["init", "-q"])
            .arg(&index)
            .output()
            .unwrap(),
    );
    // Only krew's bin directory offers the plugin: not the test build's.
    let path = format!(
        "{}:{}:{krew}:{}",
        root.join("bin").display(),
        cp.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |block: &str| {
        ok(
            block,
            Command::new("bash")
                .args(["-euo", "pipefail", "-c", block])
                .current_dir(ROOT)
                .env("PATH", &path)
                .env("KREW_ROOT", &root)
                .env("KREW_NO_UPGRADE_CHECK", "1")
                .env("KUBECONFIG", &cp.kubeconfig)
                .env("RELEASE_PROFILE", "dev")
                .output()
                .unwrap(),
        )
    };

    let installed = run(&readme_block("install"));
    assert!(
        installed.contains("kubernetes") && installed.contains("NAME"),
        "`kubectl servicecidr status` through krew: {installed}"
    );
    let store = root.join(format!("store/servicecidr/{TAG}"));
    assert!(store.join("kubectl-servicecidr").is_file());
    let which = run("command -v kubectl-servicecidr");
    assert_eq!(
        which.trim(),
        root.join("bin/kubectl-servicecidr").display().to_string()
    );
    let completed = run("kubectl __complete servicecidr st");
    assert!(
        completed.lines().any(|l| l.starts_with("status")),
        "{completed}"
    );

    run(&readme_block("uninstall"));
    let left: Vec<String> = tree(&root, "index")
        .into_iter()
        .filter(|p| p.contains("servicecidr"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// What `cargo install kubectl-servicecidr` downloads: sources and the lock file, no tests, fuzz
/// corpora, benchmark data or scripts.
#[test]
fn the_crate_package_holds_what_cargo_install_needs_and_publishes() {
    let listed = ok(
        "cargo package --list",
        Command::new(env!("CARGO"))
            .args(["package", "--list", "--allow-dirty", "--locked"])
            .current_dir(ROOT)
            .output()
            .unwrap(),
    );
    let files: BTreeSet<&str> = listed.lines().collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "LICENSE",
        "src/main.rs",
        "src/bin/complete.rs",
    ] {
        assert!(files.contains(needed), "{needed} missing: {files:?}");
    }
    let extra: Vec<&&str> = files
        .iter()
        .filter(|f| {
            !(f.starts_with("src/")
                || [
                    "Cargo.toml",
                    "Cargo.toml.orig",
                    "Cargo.lock",
                    "README.md",
                    "LICENSE",
                    ".cargo_vcs_info.json",
                ]
                .contains(f))
        })
        .collect();
    assert!(extra.is_empty(), "not needed by cargo install: {extra:?}");

    ok(
        "cargo publish --dry-run",
        Command::new(env!("CARGO"))
            .args(["publish", "--dry-run", "--allow-dirty", "--locked"])
            .current_dir(ROOT)
            .output()
            .unwrap(),
    );
    // A dry run leaves the package under target/package/tmp-crate/.
    let name = format!("kubectl-servicecidr-{}.crate", env!("CARGO_PKG_VERSION"));
    let krate = [
        format!("{ROOT}/target/package/tmp-crate/{name}"),
        format!("{ROOT}/target/package/{name}"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .unwrap_or_else(|| panic!("no {name} under target/package"));
    // The file list above is the real check; the size only catches a large file slipping in
    // (sources, lock file and README are about 200 kB: 200,091 bytes on 2026-12-05).
    let size = std::fs::metadata(&krate).unwrap().len();
    assert!(size < 256 * 1024, "{} is {size} bytes", krate.display());
}
