//! The local backup directory of a migration: a second copy, beside the journal on the cluster,
//! of every Service's manifest before its delete. No decision is read from it (a rerun from
//! another machine must decide the same); it records the cluster it was written for, and a
//! directory from another cluster or another migration is refused.
//!
//! - `migration.json`: the cluster's identity (the kube-system UID) and the new range.
//! - `services/NAMESPACE/NAME.UID.json`: a Service's manifest, written before it is deleted.
//!
//! Every file is written whole and renamed into place, so a kill leaves the old file or the new.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

const HEADER: &str = "migration.json";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    /// The UID of the kube-system namespace of the cluster the backups come from.
    cluster: String,
    name: String,
    to: Vec<IpNet>,
}

pub struct Backups {
    dir: PathBuf,
    header: Option<Header>,
}

impl Backups {
    /// Reads what an earlier run left in `dir`, if anything; writes nothing.
    pub fn open(dir: &Path) -> Result<Backups> {
        let path = dir.join(HEADER);
        let header = match fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                anyhow!(
                    "backup directory {}: {HEADER} is not a migration this version wrote ({e}); pass another --backup-dir",
                    dir.display()
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => bail!("backup directory {}: {e}", dir.display()),
        };
        Ok(Backups {
            dir: dir.to_owned(),
            header,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Refuses a directory that holds another cluster's or another migration's backups.
    pub fn check(&self, cluster: &str, name: &str, to: &[IpNet]) -> Result<()> {
        let Some(h) = &self.header else {
            return Ok(());
        };
        if h.cluster != cluster {
            bail!(
                "backup directory {} holds backups of another cluster (kube-system UID {}; this one is {}): pass another --backup-dir",
                self.dir.display(),
                h.cluster,
                cluster
            );
        }
        if h.name != name || h.to != to {
            bail!(
                "backup directory {} holds the migration to {} ({}); finish that one, or pass another --backup-dir",
                self.dir.display(),
                h.name,
                h.to.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        Ok(())
    }

    /// Writes the header: the first write of a run, so a directory that cannot be written stops
    /// it before the cluster is touched.
    pub fn begin(&mut self, cluster: &str, name: &str, to: &[IpNet]) -> Result<()> {
        let header = Header {
            cluster: cluster.to_owned(),
            name: name.to_owned(),
            to: to.to_vec(),
        };
        write_atomic(&self.dir.join(HEADER), &serde_json::to_vec_pretty(&header)?)?;
        self.header = Some(header);
        Ok(())
    }

    /// Saves the manifest that recreates the Service as it was; returns the file.
    pub fn save(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        manifest: &serde_json::Value,
    ) -> Result<PathBuf> {
        let path = self
            .dir
            .join("services")
            .join(namespace)
            .join(format!("{name}.{uid}.json"));
        write_atomic(&path, &serde_json::to_vec_pretty(manifest)?)?;
        Ok(path)
    }
}

/// Writes a file whole: a temporary file, synced, then renamed over the target.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().expect("a file in a directory");
    fs::create_dir_all(parent).map_err(|e| {
        anyhow!(
            "cannot create the backup directory {}: {e}",
            parent.display()
        )
    })?;
    let tmp = path.with_extension("json.tmp");
    let cannot = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| anyhow!("cannot write the backup {p}: {e}")
    };
    let mut f = fs::File::create(&tmp).map_err(cannot(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(cannot(&tmp))?;
    fs::rename(&tmp, path).map_err(cannot(path))
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

/// The same manifest with the node ports left to the allocator (`nodePort` of every port and
/// `healthCheckNodePort`): for a restore whose ports were taken meanwhile, and for the admission
/// probe, which runs while the original still holds them.
pub fn without_node_ports(manifest: &serde_json::Value) -> serde_json::Value {
    let mut m = manifest.clone();
    if let Some(spec) = m.get_mut("spec").and_then(|v| v.as_object_mut()) {
        spec.remove("healthCheckNodePort");
        if let Some(ports) = spec.get_mut("ports").and_then(|p| p.as_array_mut()) {
            for p in ports.iter_mut().filter_map(|p| p.as_object_mut()) {
                p.remove("nodePort");
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
        let free = without_node_ports(&m);
        assert_eq!(free["spec"]["ports"], json!([{"port": 80}]));
        assert_eq!(free["spec"]["type"], "NodePort");
    }

    #[test]
    fn a_directory_remembers_its_cluster_and_migration() {
        let dir =
            std::env::temp_dir().join(format!("servicecidr-backup-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let to: Vec<IpNet> = vec!["10.200.0.0/16".parse().unwrap()];
        let mut b = Backups::open(&dir).unwrap();
        assert!(b.check("any", "any", &[]).is_ok(), "a new directory");
        b.begin("cluster-a", "new", &to).unwrap();
        let m = json!({"metadata": {"name": "web", "namespace": "a"}});
        let path = b.save("a", "web", "u1", &m).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&fs::read(path).unwrap()).unwrap(),
            m
        );
        let reopened = Backups::open(&dir).unwrap();
        assert!(reopened.check("cluster-a", "new", &to).is_ok());
        let foreign = reopened.check("cluster-b", "new", &to).unwrap_err();
        assert!(foreign.to_string().contains("another cluster"), "{foreign}");
        assert!(reopened.check("cluster-a", "other", &to).is_err());
        fs::write(dir.join(HEADER), b"{\"name\": \"new\"}").unwrap();
        assert!(Backups::open(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
