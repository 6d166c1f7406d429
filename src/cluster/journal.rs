//! The migration journal on the cluster: an annotation on the range a migration moves Services
//! into, found by a label, and written with the range's resourceVersion as a precondition so that
//! two runs never overwrite each other's entries.

use kube::api::{ListParams, Patch};
use serde_json::json;

use super::{ApiError, Cluster, Error, Result, patch_params, request_error};
use crate::audit::journal::Record;

/// Where the journal is kept on the range, and the label that finds every range holding one.
pub const JOURNAL_KEY: &str = "servicecidr.kubectl.io/migration";

/// A journal as read, with the range's resourceVersion for the next write.
#[derive(Debug, Clone)]
pub struct Journal {
    pub range: String,
    pub resource_version: String,
    pub record: Record,
}

/// The metadata that carries a journal, for a create or a merge patch (None removes it).
pub fn journal_metadata(record: Option<&Record>) -> serde_json::Value {
    let text = record.map(|r| serde_json::to_string(r).expect("a journal always serializes"));
    json!({
        "labels": {JOURNAL_KEY: record.map(|_| "journal")},
        "annotations": {JOURNAL_KEY: text},
    })
}

fn read(object: &serde_json::Value) -> Result<Option<Journal>> {
    let meta = &object["metadata"];
    let range = meta["name"].as_str().unwrap_or_default().to_owned();
    let Some(text) = meta["annotations"][JOURNAL_KEY].as_str() else {
        return Ok(None);
    };
    let record = serde_json::from_str(text).map_err(|e| Error::Api {
        what: format!("read the migration journal on servicecidr {range:?}"),
        source: ApiError::Decode(format!(
            "{e} (written by another version of kubectl-servicecidr?)"
        )),
    })?;
    Ok(Some(Journal {
        range,
        resource_version: meta["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        record,
    }))
}

impl Cluster {
    /// The UID of the kube-system namespace: what tells this cluster from another.
    pub async fn identity(&self) -> Result<String> {
        let what = "get namespace \"kube-system\" (the cluster's identity)";
        let req = kube::core::Request::new("/api/v1/namespaces")
            .get("kube-system", &Default::default())
            .map_err(|e| request_error(what, e))?;
        let (ns, _) = self.call::<serde_json::Value>(req, what).await?;
        match ns["metadata"]["uid"].as_str() {
            Some(uid) if !uid.is_empty() => Ok(uid.to_owned()),
            _ => Err(Error::Api {
                what: what.into(),
                source: ApiError::Decode("the answer has no metadata.uid".into()),
            }),
        }
    }

    /// Every migration journal on the cluster.
    pub async fn journals(&self) -> Result<Vec<Journal>> {
        let what = "list servicecidrs holding a migration journal";
        let req = self
            .service_cidrs()
            .await?
            .list(&ListParams::default().labels(JOURNAL_KEY))
            .map_err(|e| request_error(what, e))?;
        let (list, _) = self.call::<serde_json::Value>(req, what).await?;
        let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let mut found = Vec::new();
        for item in items {
            found.extend(read(item)?);
        }
        Ok(found)
    }

    /// The journal on one range now, with its resourceVersion; None when the range is gone.
    pub async fn journal_of(&self, range: &str) -> Result<Option<(String, Option<Journal>)>> {
        let what = format!("get servicecidr {range:?}");
        let req = self
            .service_cidrs()
            .await?
            .get(range, &Default::default())
            .map_err(|e| request_error(what.clone(), e))?;
        match self.call::<serde_json::Value>(req, what).await {
            Ok((object, _)) => {
                let rv = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                Ok(Some((rv, read(&object)?)))
            }
            Err(e) if e.api_error().is_some_and(ApiError::is_not_found) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the journal on the range as read at `resource_version` (None removes it); the
    /// server refuses it with a conflict (409) if the range changed since. Returns the new
    /// resourceVersion.
    pub async fn write_journal(
        &self,
        range: &str,
        resource_version: &str,
        record: Option<&Record>,
    ) -> Result<String> {
        let mut meta = journal_metadata(record);
        meta["resourceVersion"] = resource_version.into();
        let patch = json!({ "metadata": meta });
        let what = format!("write the migration journal on servicecidr {range:?}");
        let req = self
            .service_cidrs()
            .await?
            .patch(range, &patch_params(), &Patch::Merge(&patch))
            .map_err(|e| request_error(what.clone(), e))?;
        let (object, _) = self.call::<serde_json::Value>(req, what).await?;
        Ok(object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_rides_on_an_annotation_and_its_label_and_reads_back() {
        let record = Record::new("uid-1", &["10.200.0.0/24".parse().unwrap()]);
        let mut object = json!({"metadata": journal_metadata(Some(&record))});
        object["metadata"]["name"] = "new".into();
        object["metadata"]["resourceVersion"] = "7".into();
        assert_eq!(object["metadata"]["labels"][JOURNAL_KEY], "journal");
        let back = read(&object).unwrap().unwrap();
        assert_eq!(
            (back.range.as_str(), back.resource_version.as_str()),
            ("new", "7")
        );
        assert_eq!(back.record, record);
        // Removal is a merge patch of nulls.
        let gone = journal_metadata(None);
        assert!(
            gone["labels"][JOURNAL_KEY].is_null() && gone["annotations"][JOURNAL_KEY].is_null()
        );
        object["metadata"]["annotations"][JOURNAL_KEY] = "{\"cluster\": 1}".into();
        let err = read(&object).unwrap_err().to_string();
        assert!(err.contains("servicecidr \"new\""), "{err}");
    }
}
