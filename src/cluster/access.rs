//! The requests a command declared (`rights`): asked of RBAC before the first write, enforced after.

use super::*;

impl Cluster {
    /// Reports the progress of every list to `on_page`.
    /// This client, limited to the requests `rights` cover: the list a command checks with
    /// [`Cluster::missing`] before its first write.
    pub fn declaring(&self, rights: Vec<Right>) -> Cluster {
        Cluster {
            declared: Declared::of(rights),
            ..self.clone()
        }
    }

    /// The rights RBAC denies among `rights` but the optional ones (an access review each, all at
    /// once). A review that fails is an error: a run must not start on rights it could not check.
    pub async fn missing(&self, rights: &[Right]) -> Result<Vec<Right>> {
        let asks = rights
            .iter()
            .filter(|r| !r.optional)
            .map(|r| async move { Ok::<_, Error>((!self.may(r).await?).then(|| r.clone())) });
        let answers = futures::future::try_join_all(asks).await?;
        Ok(answers.into_iter().flatten().collect())
    }

    /// Refuses, unsent, a request the running command did not declare.
    pub(super) fn permit<B>(&self, req: &http::Request<B>, what: &str) -> Result<()> {
        match self.declared.undeclared(req.method(), req.uri()) {
            None => Ok(()),
            Some(access) => Err(Error::Undeclared {
                what: what.to_owned(),
                access: access.to_string(),
            }),
        }
    }

    /// Whether the server would let this user make a request `right` covers: an access review,
    /// bounded like every request.
    pub(super) async fn may(&self, right: &Right) -> Result<bool> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(right.group.into()),
                    resource: Some(right.resource.into()),
                    namespace: right.namespace.clone(),
                    verb: Some(right.verb.into()),
                    name: right.name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let what = format!(
            "ask whether this user may {} {}",
            right.verb, right.resource
        );
        let body = serde_json::to_vec(&review).map_err(|e| Error::Api {
            what: what.clone(),
            source: ApiError::Other(e.to_string()),
        })?;
        let req = Request::new("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
            .create(&PostParams::default(), body)
            .map_err(|e| request_error(what.clone(), e))?;
        let (answer, _) = self.call::<SelfSubjectAccessReview>(req, what).await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}
