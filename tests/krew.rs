//! deploy/krew/servicecidr.yaml: a well-formed krew plugin manifest for this version, covering
//! every platform the release builds.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/krew/servicecidr.yaml");
/// What the release job replaces with each archive's digest.
const SHA256_PLACEHOLDER: &str = "SHA256-FILLED-BY-RELEASE";

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

fn manifest() -> Plugin {
    let text = std::fs::read_to_string(MANIFEST).unwrap_or_else(|e| panic!("{MANIFEST}: {e}"));
    serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{MANIFEST} is not a krew manifest: {e}"))
}

#[test]
fn manifest_has_the_required_fields() {
    let m = manifest();
    assert_eq!(
        m.api_version,
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m.kind, "Plugin");
    assert_eq!(m.metadata.name, "servicecidr");
    assert_eq!(m.spec.homepage, env!("CARGO_PKG_HOMEPAGE"));
    for (field, value) in [
        ("shortDescription", &m.spec.short_description),
        ("description", &m.spec.description),
        ("caveats", &m.spec.caveats),
    ] {
        assert!(!value.trim().is_empty(), "spec.{field} is empty");
    }
    // `kubectl krew search` shows it in a table column.
    assert!(
        !m.spec.short_description.contains('\n'),
        "shortDescription must be one line"
    );
    assert!(
        m.spec.caveats.contains("kubectl_complete-servicecidr"),
        "caveats should tell how to enable completion"
    );
}

#[test]
fn manifest_version_matches_cargo() {
    assert_eq!(
        manifest().spec.version,
        concat!("v", env!("CARGO_PKG_VERSION")),
        "bump spec.version in {MANIFEST} with the version in Cargo.toml"
    );
}

#[test]
fn manifest_covers_every_platform() {
    let m = manifest();
    let mut seen = BTreeSet::new();
    for p in &m.spec.platforms {
        let labels = &p.selector.match_labels;
        let keys: BTreeSet<&str> = labels.keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["arch", "os"]), "selector of {p:?}");
        let (os, arch) = (labels["os"].as_str(), labels["arch"].as_str());
        assert!(seen.insert((os, arch)), "{os}/{arch} listed twice");

        let exe = if os == "windows" { ".exe" } else { "" };
        assert_eq!(
            p.bin,
            format!("kubectl-servicecidr{exe}"),
            "{os}/{arch} bin"
        );
        let from: BTreeSet<&str> = p.files.iter().map(|f| f.from.as_str()).collect();
        for file in [
            format!("kubectl-servicecidr{exe}"),
            format!("kubectl_complete-servicecidr{exe}"),
            "LICENSE".to_string(),
        ] {
            assert!(
                from.contains(file.as_str()),
                "{os}/{arch} files lack {file}"
            );
        }
        assert!(
            p.files.iter().all(|f| f.to == "."),
            "{os}/{arch} files: {:?}",
            p.files
        );

        assert!(
            p.uri.starts_with(&format!(
                "{}/releases/download/{{{{ .TagName }}}}/",
                env!("CARGO_PKG_REPOSITORY")
            )),
            "{os}/{arch} uri {} is not templated on the release tag",
            p.uri
        );
        assert!(
            p.uri.contains(&format!("_{os}_{arch}.")),
            "{os}/{arch} uri {} names another platform",
            p.uri
        );
        let is_digest = p.sha256.len() == 64
            && p.sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        assert!(
            p.sha256 == SHA256_PLACEHOLDER || is_digest,
            "{os}/{arch} sha256 {:?} is neither a digest nor the placeholder",
            p.sha256
        );
    }
    let expected: BTreeSet<(&str, &str)> = ["linux", "darwin", "windows"]
        .into_iter()
        .flat_map(|os| ["amd64", "arm64"].map(|arch| (os, arch)))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn license_is_shipped() {
    let license = concat!(env!("CARGO_MANIFEST_DIR"), "/LICENSE");
    let text = std::fs::read_to_string(license).unwrap_or_else(|e| panic!("{license}: {e}"));
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0");
    assert!(
        text.contains("Apache License"),
        "{license} is not the Apache License"
    );
}
