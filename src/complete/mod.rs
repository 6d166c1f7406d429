//! Dynamic completion for `kubectl servicecidr <TAB>` (kubectl 1.26+).
//!
//! kubectl runs `kubectl_complete-servicecidr WORD... PARTIAL`: the words typed after
//! `servicecidr`, then the word being completed (`""` when the cursor starts a new word). It reads
//! one candidate a line (cobra's `value<TAB>description`) and a last line `:<directive>` (a cobra
//! ShellCompDirective). Flags arrive raw: kubectl parses none of them for a plugin.
//!
//! [`analyze`] is pure: it turns the words into a [`Query`] using only clap's view of the command
//! line. [`complete`] then fetches what the request needs (kubeconfig entries, live ServiceCIDRs)
//! and [`render`]s the answer. Any failure yields no candidates, never an error: a completion must
//! not print anything else.

mod analyze;

pub use analyze::{analyze, command};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::Kubeconfig;

use crate::cluster::{Cluster, Connection};
use crate::model::ServiceCidr;

/// cobra's ShellCompDirective: no candidates means "complete file names".
pub const DIRECTIVE_DEFAULT: u32 = 0;
/// cobra's ShellCompDirectiveNoFileComp: never fall back to file names.
pub const DIRECTIVE_NO_FILE_COMP: u32 = 4;

/// Subcommands whose positional arguments name ServiceCIDRs. clap only knows they are strings.
pub const NAME_SUBCOMMANDS: [&str; 3] = ["status", "delete", "explain"];

/// Upper bound for connecting and listing ServiceCIDRs, the whole of it (settings says why).
pub const CLUSTER_TIMEOUT: Duration = crate::settings::COMPLETION_REQUEST_TIMEOUT;

/// Page size for the ServiceCIDR list.
const CHUNK_SIZE: u32 = 500;

/// One completion choice and its one-line description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub help: Option<String>,
}

impl Candidate {
    pub fn new(value: impl Into<String>, help: Option<String>) -> Candidate {
        Candidate {
            value: value.into(),
            help,
        }
    }
}

/// Which kubeconfig entries a flag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeconfigEntry {
    Context,
    Cluster,
    User,
}

/// What the word being completed is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Choices known from the command line itself: subcommands, flags, enum values.
    Fixed(Vec<Candidate>),
    /// Names from the kubeconfig selected by the words typed.
    Kubeconfig(KubeconfigEntry),
    /// ServiceCIDRs of the cluster selected by the words typed, except those already named.
    ServiceCidrs { exclude: Vec<String> },
    /// A path: left to the shell's file completion.
    Files,
    /// A free-form value, or nothing can follow.
    Nothing,
}

/// The `--kubeconfig`, `--context`, `--cluster` and `--user` typed so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
}

impl Selection {
    pub fn connection(&self) -> Connection {
        Connection {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            request_timeout: Some(CLUSTER_TIMEOUT),
        }
    }

    fn from_values(values: &BTreeMap<String, String>) -> Selection {
        let get = |id: &str| values.get(id).filter(|v| !v.is_empty()).cloned();
        Selection {
            kubeconfig: get("kubeconfig").map(|p| expand_tilde(&p)),
            context: get("context"),
            cluster: get("cluster"),
            user: get("user"),
        }
    }
}

/// The shell hands over the word as typed, so `~/x` is still unexpanded.
fn expand_tilde(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => match std::env::home_dir() {
            Some(home) => home.join(rest),
            None => PathBuf::from(path),
        },
        None => PathBuf::from(path),
    }
}

/// What to complete, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub want: Want,
    /// Put before every candidate: what the word being completed holds before the candidate
    /// proper (`-o` of `-oj`, `Orphaned,` of `--kind=Orphaned,At`).
    pub prefix: String,
    /// What has been typed of the candidate proper; only candidates starting with it are offered.
    pub partial: String,
    pub selection: Selection,
}

/// Context, cluster or user names of a kubeconfig; the current context says so.
pub fn kubeconfig_candidates(kc: &Kubeconfig, entry: KubeconfigEntry) -> Vec<Candidate> {
    match entry {
        KubeconfigEntry::Context => kc
            .contexts
            .iter()
            .map(|c| {
                let mut help = c.context.as_ref().map(|ctx| match &ctx.user {
                    Some(user) => format!("cluster {}, user {user}", ctx.cluster),
                    None => format!("cluster {}", ctx.cluster),
                });
                if kc.current_context.as_deref() == Some(c.name.as_str()) {
                    help = Some(match help {
                        Some(h) => format!("{h} (current)"),
                        None => "(current)".into(),
                    });
                }
                Candidate::new(&c.name, help)
            })
            .collect(),
        KubeconfigEntry::Cluster => kc
            .clusters
            .iter()
            .map(|c| {
                let server = c.cluster.as_ref().and_then(|c| c.server.clone());
                Candidate::new(&c.name, server)
            })
            .collect(),
        KubeconfigEntry::User => kc
            .auth_infos
            .iter()
            .map(|u| Candidate::new(&u.name, None))
            .collect(),
    }
}

/// A ServiceCIDR as a candidate: its name, described by its ranges and state.
pub fn service_cidr_candidate(range: &ServiceCidr) -> Candidate {
    let cidrs: Vec<String> = range.cidrs.iter().map(ToString::to_string).collect();
    let mut help = cidrs.join(", ");
    if range.is_terminating() {
        help.push_str(" (terminating)");
    }
    Candidate::new(&range.name, (!help.is_empty()).then_some(help))
}

/// The kubeconfig `kubectl servicecidr` would read with these flags: `--kubeconfig`, else
/// `$KUBECONFIG` (merged), else `~/.kube/config`.
fn load_kubeconfig(selection: &Selection) -> Option<Kubeconfig> {
    match &selection.kubeconfig {
        Some(path) => Kubeconfig::read_from(path).ok(),
        None => Kubeconfig::read().ok(),
    }
}

async fn fetch_service_cidrs(selection: &Selection) -> Vec<ServiceCidr> {
    let conn = selection.connection();
    let fetch = async {
        let cluster = Cluster::connect(&conn, CHUNK_SIZE).await?;
        cluster.list_service_cidrs().await
    };
    match tokio::time::timeout(CLUSTER_TIMEOUT, fetch).await {
        Ok(Ok(listed)) => listed.items,
        _ => Vec::new(),
    }
}

/// cobra's completion output: matching candidates (with `prefix`), then `:<directive>`.
pub fn render(request: &Query, candidates: &[Candidate], directive: u32) -> String {
    let mut out = String::new();
    for c in candidates {
        if !c.value.starts_with(&request.partial) || c.value.contains(['\n', '\t']) {
            continue;
        }
        out.push_str(&request.prefix);
        out.push_str(&c.value);
        if let Some(help) = &c.help {
            out.push('\t');
            out.push_str(help);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

/// Answers kubectl for `words` (the arguments `kubectl_complete-servicecidr` was called with).
pub async fn complete(words: &[String]) -> String {
    let request = analyze(&command(), words);
    let (candidates, directive) = match &request.want {
        Want::Fixed(candidates) => (candidates.clone(), DIRECTIVE_NO_FILE_COMP),
        Want::Kubeconfig(entry) => (
            load_kubeconfig(&request.selection)
                .map(|kc| kubeconfig_candidates(&kc, *entry))
                .unwrap_or_default(),
            DIRECTIVE_NO_FILE_COMP,
        ),
        Want::ServiceCidrs { exclude } => (
            fetch_service_cidrs(&request.selection)
                .await
                .iter()
                .filter(|r| !exclude.contains(&r.name))
                .map(service_cidr_candidate)
                .collect(),
            DIRECTIVE_NO_FILE_COMP,
        ),
        Want::Files => (Vec::new(), DIRECTIVE_DEFAULT),
        Want::Nothing => (Vec::new(), DIRECTIVE_NO_FILE_COMP),
    };
    render(&request, &candidates, directive)
}

/// A completion script from the clap definition.
pub fn script(shell: clap_complete::Shell, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut <crate::cli::Cli as clap::CommandFactory>::command(),
        "kubectl-servicecidr",
        &mut script,
    );
    let mut text = String::from_utf8(script).map_err(std::io::Error::other)?;
    match shell {
        // clap_complete spells subcommand states inconsistently when the bin name has a space
        // (clap-rs/clap#6421): unify them, or nothing completes after a subcommand.
        clap_complete::Shell::Bash => {
            text = text.replace("kubectl__subcmd__servicecidr", "kubectl__servicecidr");
        }
        // `*::` hides every option once a name is typed (`delete blue --<TAB>` offers nothing,
        // clap-rs/clap#6282); `*:` completes names and options alike.
        clap_complete::Shell::Zsh => text = text.replace("'*::names ", "'*:names "),
        _ => {}
    }
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::analyze::tests::words;
    use super::*;
    #[test]
    fn render_filters_prefixes_and_ends_with_the_directive() {
        let req = Query {
            want: Want::Nothing,
            prefix: "-o".into(),
            partial: "w".into(),
            selection: Selection::default(),
        };
        let out = render(
            &req,
            &[
                Candidate::new("wide", Some("wider".into())),
                Candidate::new("json", None),
                Candidate::new("w\nx", None),
            ],
            DIRECTIVE_NO_FILE_COMP,
        );
        assert_eq!(out, "-owide\twider\n:4\n");
        let empty = Query {
            partial: String::new(),
            prefix: String::new(),
            ..req
        };
        assert_eq!(render(&empty, &[], DIRECTIVE_DEFAULT), ":0\n");
    }

    #[test]
    fn kubeconfig_entries() {
        let kc = Kubeconfig::from_yaml(
            r#"
apiVersion: v1
kind: Config
current-context: b
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u1
  user: {}
contexts:
- name: a
  context: {cluster: c1, user: u1}
- name: b
  context: {cluster: c1}
"#,
        )
        .unwrap();
        assert_eq!(
            kubeconfig_candidates(&kc, KubeconfigEntry::Context),
            [
                Candidate::new("a", Some("cluster c1, user u1".into())),
                Candidate::new("b", Some("cluster c1 (current)".into())),
            ]
        );
        assert_eq!(
            kubeconfig_candidates(&kc, KubeconfigEntry::Cluster),
            [Candidate::new("c1", Some("https://127.0.0.1:6443".into()))]
        );
        assert_eq!(
            kubeconfig_candidates(&kc, KubeconfigEntry::User),
            [Candidate::new("u1", None)]
        );
    }

    #[test]
    fn service_cidr_candidates_show_ranges_and_state() {
        let mut range = ServiceCidr {
            name: "blue".into(),
            uid: "u".into(),
            resource_version: "1".into(),
            cidrs: vec![
                "10.0.0.0/24".parse().unwrap(),
                "fd00::/120".parse().unwrap(),
            ],
            created: None,
            deleting: None,
            finalizers: vec![],
            ready: None,
        };
        assert_eq!(
            service_cidr_candidate(&range),
            Candidate::new("blue", Some("10.0.0.0/24, fd00::/120".into()))
        );
        range.deleting = Some(std::time::SystemTime::UNIX_EPOCH);
        assert_eq!(
            service_cidr_candidate(&range).help.as_deref(),
            Some("10.0.0.0/24, fd00::/120 (terminating)")
        );
    }

    #[tokio::test]
    async fn no_cluster_means_no_names_but_still_a_directive() {
        let dir = std::env::temp_dir().join(format!("complete-test-{}", std::process::id()));
        let missing = dir.join("no-such-kubeconfig");
        let out = complete(&words(&[
            "--kubeconfig",
            missing.to_str().unwrap(),
            "status",
            "",
        ]))
        .await;
        assert_eq!(out, ":4\n");
        let out = complete(&words(&[
            "--kubeconfig",
            missing.to_str().unwrap(),
            "--context",
            "",
        ]))
        .await;
        assert_eq!(out, ":4\n");
    }
}
