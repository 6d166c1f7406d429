//! The requests a command makes, declared once: the same list is asked of RBAC before the first
//! write (`Cluster::missing`) and enforced on every request after (`Cluster::declared`), so the
//! check and the requests cannot drift apart. A request the list does not cover is refused as a
//! bug before it is sent.

use std::sync::Arc;

pub use crate::model::Right;

/// Whether a declared right covers a request.
fn covers(r: &Right, a: &Access) -> bool {
    r.verb == a.verb
        && r.group == a.group
        && r.resource == a.resource
        && r.namespace
            .as_ref()
            .is_none_or(|n| Some(n) == a.namespace.as_ref())
        && r.name.as_ref().is_none_or(|n| Some(n) == a.name.as_ref())
}

/// What one request does, as kube-apiserver's RequestInfo resolves it from method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub verb: &'static str,
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if let Some(n) = &self.name {
            write!(f, " {n:?}")?;
        }
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns:?}")?;
        }
        Ok(())
    }
}

/// The resource request a method and path make; None for what RBAC does not see as one
/// (discovery, `/version`, `/metrics`) and for access reviews, which every user may make.
pub fn access(method: &http::Method, uri: &http::Uri) -> Option<Access> {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        other => (None, other),
    };
    let (resource, name) = match rest {
        [resource] => (*resource, None),
        [resource, name, ..] => (*resource, Some((*name).to_owned())),
        _ => return None,
    };
    if group == "authorization.k8s.io" {
        return None;
    }
    let query: Vec<(&str, String)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k, percent_decoded(v)))
        })
        .collect();
    let watch = query
        .iter()
        .any(|(k, v)| *k == "watch" && (v == "true" || v == "1"));
    // As RequestInfo: a list or watch selecting one name by field is a request on that name.
    let name = name.or_else(|| {
        query.iter().find_map(|(k, v)| {
            let v = v.strip_prefix("metadata.name=")?;
            (*k == "fieldSelector" && !v.contains(','))
                .then(|| v.trim_start_matches('=').to_owned())
        })
    });
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if rest.len() == 1 => "list",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PATCH => "patch",
        http::Method::PUT => "update",
        http::Method::DELETE => "delete",
        _ => return None,
    };
    Some(Access {
        verb,
        group: group.to_owned(),
        resource: resource.to_owned(),
        namespace,
        name,
    })
}

/// `%XX` escapes undone (query values; `+` is left alone, as Kubernetes' selectors never hold one).
fn percent_decoded(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The requests a command declared, shared by every clone of its client.
#[derive(Debug, Clone, Default)]
pub struct Declared(Option<Arc<[Right]>>);

impl Declared {
    pub fn of(rights: Vec<Right>) -> Declared {
        Declared(Some(rights.into()))
    }

    /// The request's access when the declaration does not cover it.
    pub fn undeclared(&self, method: &http::Method, uri: &http::Uri) -> Option<Access> {
        let rights = self.0.as_ref()?;
        let a = access(method, uri)?;
        (!rights.iter().any(|r| covers(r, &a))).then_some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: &str, uri: &str) -> Option<Access> {
        access(&method.parse().unwrap(), &uri.parse().unwrap())
    }

    #[test]
    fn requests_resolve_as_the_apiserver_resolves_them() {
        let a = of("GET", "/apis/networking.k8s.io/v1/servicecidrs?limit=500").unwrap();
        assert_eq!(
            (a.verb, a.group.as_str(), a.resource.as_str()),
            ("list", "networking.k8s.io", "servicecidrs")
        );
        let a = of(
            "GET",
            "/apis/networking.k8s.io/v1/servicecidrs?watch=true&fieldSelector=x",
        )
        .unwrap();
        assert_eq!((a.verb, a.name), ("watch", None));
        let a = of(
            "GET",
            "/apis/networking.k8s.io/v1/servicecidrs?fieldSelector=metadata.name%3Dblue&watch=true",
        )
        .unwrap();
        assert_eq!((a.verb, a.name.as_deref()), ("watch", Some("blue")));
        let a = of(
            "GET",
            "/api/v1/services?fieldSelector=metadata.name%3Dweb%2Cx%3Dy",
        )
        .unwrap();
        assert_eq!((a.verb, a.name), ("list", None));
        let a = of("PATCH", "/apis/networking.k8s.io/v1/servicecidrs/blue").unwrap();
        assert_eq!((a.verb, a.name.as_deref()), ("patch", Some("blue")));
        let a = of("DELETE", "/api/v1/namespaces/shop/services/web").unwrap();
        assert_eq!(
            (
                a.verb,
                a.group.as_str(),
                a.resource.as_str(),
                a.namespace.as_deref(),
                a.name.as_deref()
            ),
            ("delete", "", "services", Some("shop"), Some("web"))
        );
        let a = of("GET", "/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (a.verb, a.resource.as_str(), a.name.as_deref()),
            ("get", "namespaces", Some("kube-system"))
        );
        let a = of("POST", "/api/v1/namespaces/shop/services?dryRun=All").unwrap();
        assert_eq!((a.verb, a.namespace.as_deref()), ("create", Some("shop")));
        assert_eq!(of("GET", "/apis/networking.k8s.io/v1"), None);
        assert_eq!(of("GET", "/version"), None);
        assert_eq!(
            of(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
            ),
            None
        );
    }

    #[test]
    fn a_declaration_covers_by_namespace_and_name_when_it_names_them() {
        let d = Declared::of(vec![
            Right::new("patch", "networking.k8s.io", "servicecidrs").named("blue"),
            Right::new("get", "", "services").in_namespace("shop"),
            Right::new("list", "", "services"),
        ]);
        let undeclared = |m: &str, u: &str| d.undeclared(&m.parse().unwrap(), &u.parse().unwrap());
        assert!(undeclared("PATCH", "/apis/networking.k8s.io/v1/servicecidrs/blue").is_none());
        assert!(undeclared("PATCH", "/apis/networking.k8s.io/v1/servicecidrs/green").is_some());
        assert!(undeclared("GET", "/api/v1/namespaces/shop/services/web").is_none());
        assert!(undeclared("GET", "/api/v1/namespaces/other/services/web").is_some());
        assert!(undeclared("GET", "/api/v1/services?limit=1").is_none());
        assert!(undeclared("DELETE", "/api/v1/namespaces/shop/services/web").is_some());
        assert!(
            Declared::default()
                .undeclared(
                    &"DELETE".parse().unwrap(),
                    &"/api/v1/namespaces/a/services/b".parse().unwrap()
                )
                .is_none()
        );
    }
}
