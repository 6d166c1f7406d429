//! The backup directory of a migration: where a run writes down, before each irreversible step,
//! what a rerun needs to finish it.
//!
//! - `migration.json`: the request and the old ranges' CIDRs, so a rerun knows them once the
//!   ranges are gone.
//! - `pending/NAMESPACE/NAME.json`: a Service's original manifest, written before it is deleted.
//!   With no such Service on the cluster, an interrupted run deleted it and a rerun recreates it.
//! - `moved/NAMESPACE/NAME.json`: the same file once the new Service exists.
//!
//! Every file is written whole and renamed into place, so a kill leaves the old file or the new.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::audit::migrate::Source;
use crate::cluster::wire;
use crate::model::ServiceFacts;

const JOURNAL: &str = "migration.json";

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    name: String,
    to: Vec<IpNet>,
    from: Vec<JournalRange>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalRange {
    name: String,
    cidrs: Vec<IpNet>,
}

pub struct Backups {
    dir: PathBuf,
    journal: Option<Journal>,
}

/// A Service known only from its backup.
pub struct Pending {
    pub facts: ServiceFacts,
    pub manifest: serde_json::Value,
}

impl Backups {
    /// Reads what an earlier run left in `dir`, if anything; writes nothing.
    pub fn open(dir: &Path) -> Result<Backups> {
        let path = dir.join(JOURNAL);
        let journal = match fs::read(&path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("backup journal {}: not ours", path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => bail!("backup directory {}: {e}", dir.display()),
        };
        Ok(Backups {
            dir: dir.to_owned(),
            journal,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The old ranges as the earlier run saw them.
    pub fn sources(&self) -> Vec<Source> {
        self.journal
            .iter()
            .flat_map(|j| &j.from)
            .map(|r| Source {
                name: r.name.clone(),
                cidrs: r.cidrs.clone(),
                terminating: true,
                gone: true,
            })
            .collect()
    }

    /// Refuses a directory that holds another migration: its backups are not this one's.
    pub fn check(&self, name: &str, to: &[IpNet]) -> Result<()> {
        match &self.journal {
            Some(j) if j.name != name || j.to != to => bail!(
                "backup directory {} holds the migration to {} ({}); finish that one, or pass another --backup-dir",
                self.dir.display(),
                j.name,
                j.to.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => Ok(()),
        }
    }

    /// Writes the journal: the first write of a run, so a directory that cannot be written
    /// stops it before the cluster is touched. Ranges already journaled keep their CIDRs.
    pub fn begin(&mut self, name: &str, to: &[IpNet], sources: &[Source]) -> Result<()> {
        let mut from: Vec<JournalRange> = self.journal.take().map(|j| j.from).unwrap_or_default();
        for s in sources {
            if !from.iter().any(|r| r.name == s.name) {
                from.push(JournalRange {
                    name: s.name.clone(),
                    cidrs: s.cidrs.clone(),
                });
            }
        }
        let journal = Journal {
            name: name.to_owned(),
            to: to.to_vec(),
            from,
        };
        write_atomic(
            &self.dir.join(JOURNAL),
            &serde_json::to_vec_pretty(&journal)?,
        )?;
        self.journal = Some(journal);
        Ok(())
    }

    /// Services saved before their delete and not moved since.
    pub fn pending(&self) -> Result<Vec<Pending>> {
        let root = self.dir.join("pending");
        let mut found = Vec::new();
        let namespaces = match fs::read_dir(&root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => bail!("backup directory {}: {e}", root.display()),
        };
        for ns in namespaces {
            for file in fs::read_dir(ns?.path())? {
                let path = file?.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let manifest: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)
                    .with_context(|| {
                        format!("backup {}: not a Service manifest", path.display())
                    })?;
                let mut facts = wire::service_facts(&manifest)
                    .with_context(|| format!("backup {}", path.display()))?;
                facts.missing = true;
                found.push(Pending { facts, manifest });
            }
        }
        Ok(found)
    }

    fn path(&self, state: &str, namespace: &str, name: &str) -> PathBuf {
        self.dir
            .join(state)
            .join(namespace)
            .join(format!("{name}.json"))
    }

    /// Saves the manifest to recreate the Service as it was; returns the file.
    pub fn save(
        &self,
        namespace: &str,
        name: &str,
        manifest: &serde_json::Value,
    ) -> Result<PathBuf> {
        let path = self.path("pending", namespace, name);
        write_atomic(&path, &serde_json::to_vec_pretty(manifest)?)?;
        Ok(path)
    }

    /// The Service exists again: its backup is history, not work for a rerun.
    pub fn done(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        let (from, to) = (
            self.path("pending", namespace, name),
            self.path("moved", namespace, name),
        );
        fs::create_dir_all(to.parent().expect("a file in a directory"))?;
        fs::rename(&from, &to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        Ok(to)
    }
}

/// Writes a file whole: a temporary file, synced, then renamed over the target.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().expect("a file in a directory");
    fs::create_dir_all(parent)
        .with_context(|| format!("cannot create the backup directory {}", parent.display()))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp)
        .with_context(|| format!("cannot write the backup {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write the backup {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write the backup {}", path.display()))
}

/// The manifest that recreates a Service: the object without what the server sets.
pub fn manifest(object: &serde_json::Value) -> serde_json::Value {
    let mut m = object.clone();
    if let Some(meta) = m.get_mut("metadata").and_then(|v| v.as_object_mut()) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(k);
        }
    }
    if let Some(obj) = m.as_object_mut() {
        obj.remove("status");
        obj.insert("apiVersion".into(), "v1".into());
        obj.insert("kind".into(), "Service".into());
    }
    m
}

/// The same manifest with other ClusterIPs (`spec.clusterIP` is the first of `spec.clusterIPs`);
/// with none, the allocator chooses.
pub fn with_cluster_ips(
    manifest: &serde_json::Value,
    ips: &[std::net::IpAddr],
) -> serde_json::Value {
    let mut m = manifest.clone();
    if let Some(spec) = m.get_mut("spec").and_then(|v| v.as_object_mut()) {
        match ips.first() {
            Some(first) => {
                spec.insert("clusterIP".into(), first.to_string().into());
                spec.insert(
                    "clusterIPs".into(),
                    ips.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .into(),
                );
            }
            None => {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_manifest_keeps_everything_but_what_the_server_sets() {
        let object = json!({
            "metadata": {"name": "web", "namespace": "a", "uid": "u", "resourceVersion": "7",
                         "labels": {"app": "web"}, "managedFields": [], "ownerReferences": [{"kind": "X", "name": "o"}]},
            "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ports": [{"port": 80, "nodePort": 30080}], "type": "NodePort"},
            "status": {"loadBalancer": {}}
        });
        let m = manifest(&object);
        assert_eq!(
            m,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "a", "labels": {"app": "web"}, "ownerReferences": [{"kind": "X", "name": "o"}]},
                "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ports": [{"port": 80, "nodePort": 30080}], "type": "NodePort"}
            })
        );
        let moved = with_cluster_ips(
            &m,
            &["10.200.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        );
        assert_eq!(moved["spec"]["clusterIP"], "10.200.0.5");
        assert_eq!(
            moved["spec"]["clusterIPs"],
            json!(["10.200.0.5", "fd00::5"])
        );
        assert_eq!(moved["spec"]["ports"], m["spec"]["ports"]);
        let dynamic = with_cluster_ips(&m, &[]);
        assert!(dynamic["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn backups_move_from_pending_to_moved_and_the_journal_guards_the_directory() {
        let dir =
            std::env::temp_dir().join(format!("servicecidr-backup-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let to: Vec<IpNet> = vec!["10.200.0.0/16".parse().unwrap()];
        let mut b = Backups::open(&dir).unwrap();
        let old = Source {
            name: "old".into(),
            cidrs: vec!["10.96.0.0/16".parse().unwrap()],
            terminating: false,
            gone: false,
        };
        b.begin("new", &to, std::slice::from_ref(&old)).unwrap();
        let m = manifest(
            &json!({"metadata": {"name": "web", "namespace": "a"}, "spec": {"clusterIP": "10.96.0.5"}}),
        );
        b.save("a", "web", &m).unwrap();
        let reopened = Backups::open(&dir).unwrap();
        assert_eq!(reopened.sources()[0].cidrs, old.cidrs);
        let pending = reopened.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert!(pending[0].facts.missing);
        assert_eq!(pending[0].manifest, m);
        reopened.done("a", "web").unwrap();
        assert!(reopened.pending().unwrap().is_empty());
        assert!(reopened.check("new", &to).is_ok());
        assert!(reopened.check("other", &to).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
