//! From the words typed to a [`Query`]: pure, using only clap's view of the command line.

use std::collections::BTreeMap;

use clap::builder::PossibleValue;
use clap::{Arg, ArgAction, Command, CommandFactory, ValueHint};

use super::{Candidate, KubeconfigEntry, NAME_SUBCOMMANDS, Query, Selection, Want};
use crate::cli::Cli;

/// The command line as completion sees it: `Cli::command()`, built so that global flags, `--help`
/// and the `help` subcommand are where clap puts them.
pub fn command() -> Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// Flags clap refuses twice are not offered again.
fn repeatable(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append | ArgAction::Count)
}

fn find_long<'c>(cmd: &'c Command, name: &str) -> Option<&'c Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

fn find_short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| {
        a.get_short() == Some(c) || a.get_all_short_aliases().is_some_and(|al| al.contains(&c))
    })
}

/// First line of a help text, fit for a cobra description (no tabs, no newlines).
fn one_line(help: Option<&clap::builder::StyledStr>) -> Option<String> {
    let text = help?.to_string();
    let line = text.lines().next()?.trim().replace('\t', " ");
    (!line.is_empty()).then_some(line)
}

fn subcommands(cmd: &Command) -> Vec<Candidate> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| Candidate::new(s.get_name(), one_line(s.get_about())))
        .collect()
}

fn flags(cmd: &Command, used: &[String]) -> Vec<Candidate> {
    cmd.get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .filter(|a| repeatable(a) || !used.iter().any(|u| u == a.get_id().as_str()))
        // Nor a flag that conflicts with one given (`--context` and `--contexts`).
        .filter(|a| {
            !cmd.get_arg_conflicts_with(a)
                .iter()
                .any(|c| used.iter().any(|u| u == c.get_id().as_str()))
        })
        .filter_map(|a| {
            let long = a.get_long()?;
            Some(Candidate::new(format!("--{long}"), one_line(a.get_help())))
        })
        .collect()
}

fn possible_values(values: Vec<PossibleValue>, exclude: &[&str]) -> Vec<Candidate> {
    values
        .into_iter()
        .filter(|v| !v.is_hide_set() && !exclude.contains(&v.get_name()))
        .map(|v| Candidate::new(v.get_name(), one_line(v.get_help())))
        .collect()
}

/// The value of `arg` being completed: `partial` is what has been typed of it, `prefix` what
/// precedes it in the same word and must be kept.
fn value_request(arg: &Arg, prefix: String, partial: &str, selection: Selection) -> Query {
    let (mut prefix, mut partial) = (prefix, partial.to_string());
    let want = match arg.get_id().as_str() {
        "context" => Want::Kubeconfig(KubeconfigEntry::Context),
        // `--contexts a,b` completes the last name and keeps the others.
        "contexts" => {
            if let Some(i) = partial.rfind(',') {
                prefix.push_str(&partial[..=i]);
                partial = partial[i + 1..].to_string();
            }
            Want::Kubeconfig(KubeconfigEntry::Context)
        }
        // `migrate --from blue,gr`: ranges, the last name completed, the others not offered again.
        "from" => {
            let mut exclude = Vec::new();
            if let Some(i) = partial.rfind(',') {
                prefix.push_str(&partial[..=i]);
                exclude = partial[..i].split(',').map(str::to_string).collect();
                partial = partial[i + 1..].to_string();
            }
            Want::ServiceCidrs { exclude }
        }
        "cluster" => Want::Kubeconfig(KubeconfigEntry::Cluster),
        "user" => Want::Kubeconfig(KubeconfigEntry::User),
        _ if matches!(
            arg.get_value_hint(),
            ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
        ) =>
        {
            Want::Files
        }
        _ => {
            let values = arg.get_possible_values();
            if values.is_empty() {
                Want::Nothing
            } else {
                // `--kind Orphaned,At`: complete the last item, keep the others, offer no repeat.
                let mut chosen = Vec::new();
                if let Some(d) = arg.get_value_delimiter()
                    && let Some(i) = partial.rfind(d)
                {
                    let (done, last) = partial.split_at(i + d.len_utf8());
                    chosen = done.split(d).map(str::to_string).collect();
                    prefix.push_str(done);
                    partial = last.to_string();
                }
                let chosen: Vec<&str> = chosen.iter().map(String::as_str).collect();
                Want::Fixed(possible_values(values, &chosen))
            }
        }
    };
    Query {
        want,
        prefix,
        partial,
        selection,
    }
}

/// What `words` (the words after `servicecidr`, the last being the one under completion) ask to
/// complete. Pure: reads only `cmd` (see [`command`]) and the words.
pub fn analyze(cmd: &Command, words: &[String]) -> Query {
    let (partial, typed) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let root = cmd;
    let mut cmd = cmd;
    let mut unknown_subcommand = false;
    // `help status`: clap's help holds copies of the subcommands, names only.
    let mut under_help = false;
    let mut positionals: Vec<String> = Vec::new();
    // Arg id -> last value, for the selection flags.
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut used: Vec<String> = Vec::new();
    let mut pending: Option<&Arg> = None;
    let mut after_dashdash = false;

    for word in typed {
        if let Some(arg) = pending.take() {
            values.insert(arg.get_id().to_string(), word.clone());
            continue;
        }
        if after_dashdash || !word.starts_with('-') || word == "-" {
            if !after_dashdash && positionals.is_empty() && cmd.has_subcommands() {
                let Some(sub) = cmd.find_subcommand(word) else {
                    unknown_subcommand = true;
                    positionals.push(word.clone());
                    continue;
                };
                under_help |= std::ptr::eq(cmd, root) && sub.get_name() == "help";
                cmd = sub;
                continue;
            }
            positionals.push(word.clone());
            continue;
        }
        if word == "--" {
            after_dashdash = true;
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if let Some(arg) = find_long(cmd, name) {
                used.push(arg.get_id().to_string());
                if takes_value(arg) {
                    match value {
                        Some(v) => {
                            values.insert(arg.get_id().to_string(), v.to_string());
                        }
                        // `--wait`, `--dry-run`: a value only after '=', never the next word.
                        None if arg.is_require_equals_set() => {}
                        None => pending = Some(arg),
                    }
                }
            }
            continue;
        }
        // A cluster of short flags; the first one taking a value takes the rest of the word
        // (`-ojson`, `-o=json`) or else the next word.
        let shorts = &word[1..];
        for (i, c) in shorts.char_indices() {
            let Some(arg) = find_short(cmd, c) else {
                break;
            };
            used.push(arg.get_id().to_string());
            if takes_value(arg) {
                let rest = &shorts[i + c.len_utf8()..];
                let rest = rest.strip_prefix('=').unwrap_or(rest);
                if rest.is_empty() {
                    pending = Some(arg);
                } else {
                    values.insert(arg.get_id().to_string(), rest.to_string());
                }
                break;
            }
        }
    }

    let selection = Selection::from_values(&values);
    let request = |want: Want, partial: &str| Query {
        want,
        prefix: String::new(),
        partial: partial.to_string(),
        selection: selection.clone(),
    };

    if let Some(arg) = pending {
        return value_request(arg, String::new(), partial, selection);
    }
    if unknown_subcommand {
        return request(Want::Nothing, partial);
    }

    if !after_dashdash && partial.starts_with('-') {
        if let Some(long) = partial.strip_prefix("--") {
            // `--output=j`: cobra's shell scripts strip `--output=` and match what follows.
            if let Some((name, value)) = long.split_once('=') {
                return match find_long(cmd, name).filter(|a| takes_value(a)) {
                    Some(arg) => value_request(arg, String::new(), value, selection),
                    None => request(Want::Nothing, value),
                };
            }
        } else {
            let shorts = &partial[1..];
            for (i, c) in shorts.char_indices() {
                let Some(arg) = find_short(cmd, c) else {
                    break;
                };
                if takes_value(arg) {
                    let after = i + c.len_utf8();
                    let rest = &shorts[after..];
                    if let Some(value) = rest.strip_prefix('=') {
                        // `-o=j`: stripped by the shell scripts like `--output=`.
                        return value_request(arg, String::new(), value, selection);
                    }
                    if !rest.is_empty() {
                        // `-oj`: the candidates must carry the `-o`.
                        let prefix = partial[..1 + after].to_string();
                        return value_request(arg, prefix, rest, selection);
                    }
                    break;
                }
            }
        }
        return request(Want::Fixed(flags(cmd, &used)), partial);
    }

    // A positional argument.
    if under_help {
        // `help <TAB>`: the subcommands (clap's copies), but not `help help`.
        return if cmd.has_subcommands() && positionals.is_empty() {
            let subs = subcommands(cmd)
                .into_iter()
                .filter(|s| s.value != "help")
                .collect();
            request(Want::Fixed(subs), partial)
        } else {
            request(Want::Nothing, partial)
        };
    }
    if cmd.has_subcommands() && positionals.is_empty() && !after_dashdash {
        return request(Want::Fixed(subcommands(cmd)), partial);
    }
    if NAME_SUBCOMMANDS.contains(&cmd.get_name()) {
        return request(
            Want::ServiceCidrs {
                exclude: positionals,
            },
            partial,
        );
    }
    let mut args: Vec<&Arg> = cmd.get_positionals().collect();
    args.sort_by_key(|a| a.get_index());
    let arg = args.get(positionals.len()).copied().or_else(|| {
        args.last()
            .copied()
            .filter(|a| matches!(a.get_action(), ArgAction::Append))
    });
    match arg {
        Some(arg) => value_request(arg, String::new(), partial, selection),
        None => request(Want::Nothing, partial),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use clap::Parser;
    use std::path::PathBuf;

    pub fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    fn analyze_words(s: &[&str]) -> Query {
        analyze(&command(), &words(s))
    }

    /// The values offered, filtered by the partial word and prefixed, as kubectl would show them.
    fn offered(s: &[&str]) -> Vec<String> {
        let req = analyze_words(s);
        let Want::Fixed(candidates) = &req.want else {
            panic!("{s:?}: expected fixed candidates, got {:?}", req.want)
        };
        candidates
            .iter()
            .filter(|c| c.value.starts_with(&req.partial))
            .map(|c| format!("{}{}", req.prefix, c.value))
            .collect()
    }

    fn want(s: &[&str]) -> Want {
        analyze_words(s).want
    }

    #[test]
    fn subcommands_come_from_clap() {
        let expected: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .chain(["help".to_string()])
            .collect();
        assert_eq!(offered(&[""]), expected);
        assert_eq!(offered(&[]), expected);
        assert_eq!(offered(&["st"]), ["status"]);
        assert_eq!(offered(&["--context", "x", "de"]), ["delete"]);
        assert_eq!(offered(&["-v", "o"]), ["orphans"]);
    }

    #[test]
    fn subcommands_carry_their_about_line() {
        let req = analyze_words(&["sta"]);
        let Want::Fixed(c) = req.want else { panic!() };
        let status = c.iter().find(|c| c.value == "status").unwrap();
        assert!(
            status
                .help
                .as_deref()
                .unwrap()
                .starts_with("Every ServiceCIDR"),
            "{status:?}"
        );
    }

    #[test]
    fn help_completes_subcommands_once() {
        assert_eq!(offered(&["help", "or"]), ["orphans"]);
        assert!(!offered(&["help", ""]).contains(&"help".to_string()));
        assert_eq!(want(&["help", "status", ""]), Want::Nothing);
        assert_eq!(want(&["help", "delete", "x", ""]), Want::Nothing);
    }

    #[test]
    fn flags_are_global_plus_the_subcommands_long_forms() {
        let root = offered(&["--"]);
        // Output flags belong to the commands that print tables or documents.
        assert!(!root.contains(&"--output".to_string()), "{root:?}");
        assert!(root.contains(&"--kubeconfig".to_string()));
        assert!(root.contains(&"--version".to_string()));
        assert!(!root.contains(&"--wait".to_string()));
        assert!(root.iter().all(|f| f.starts_with("--")), "{root:?}");

        let delete = offered(&["delete", "blue", "--"]);
        for f in [
            "--wait",
            "--dry-run",
            "--remove-finalizer",
            "--context",
            "--output",
        ] {
            assert!(
                delete.contains(&f.to_string()),
                "{f} missing from {delete:?}"
            );
        }
        assert!(!delete.contains(&"--watch".to_string()));
        let completion = offered(&["completion", "--"]);
        assert!(
            !completion.contains(&"--output".to_string()),
            "{completion:?}"
        );
        assert!(
            !completion.contains(&"--no-headers".to_string()),
            "{completion:?}"
        );
        assert_eq!(offered(&["status", "--w"]), ["--watch"]);
        assert_eq!(offered(&["orphans", "--k"]), ["--kind", "--kubeconfig"]);
        assert_eq!(offered(&["status", "-"]), offered(&["status", "--"]));
    }

    #[test]
    fn flags_given_once_are_not_offered_again() {
        assert_eq!(
            offered(&["status", "--watch", "--wa"]),
            Vec::<String>::new()
        );
        assert_eq!(offered(&["status", "-w", "--wa"]), Vec::<String>::new());
        assert_eq!(
            offered(&["--context", "a", "status", "--cont"]),
            Vec::<String>::new()
        );
        // Counted flags may repeat.
        assert_eq!(offered(&["-v", "status", "--verb"]), ["--verbose"]);
    }

    #[test]
    fn values_come_from_the_value_enums() {
        assert_eq!(
            offered(&["status", "-o", ""]),
            ["table", "wide", "json", "yaml", "prometheus"]
        );
        assert_eq!(
            offered(&["orphans", "-o", ""]),
            ["table", "wide", "json", "yaml"]
        );
        assert_eq!(
            offered(&["delete", "x", "-o", ""]),
            ["table", "json", "yaml"]
        );
        assert_eq!(offered(&["status", "--output", "j"]), ["json"]);
        assert_eq!(
            offered(&["status", "--color", ""]),
            ["auto", "always", "never"]
        );
        assert_eq!(offered(&["delete", "x", "--dry-run=s"]), ["server"]);
        assert_eq!(
            offered(&["orphans", "--kind", ""]),
            [
                "Orphaned",
                "AtRisk",
                "DanglingParent",
                "WrongParent",
                "Unrecorded",
                "Unmanaged"
            ]
        );
        assert_eq!(offered(&["completion", "fi"]), ["fish"]);
        assert_eq!(want(&["completion", "bash", ""]), Want::Nothing);
    }

    #[test]
    fn flag_equals_value_completes_the_value_alone() {
        // cobra's scripts strip `--flag=` from the word before matching.
        let req = analyze_words(&["status", "--output=w"]);
        assert_eq!((req.prefix.as_str(), req.partial.as_str()), ("", "w"));
        assert_eq!(offered(&["status", "--output=w"]), ["wide"]);
        assert_eq!(offered(&["orphans", "-o=y"]), ["yaml"]);
        assert_eq!(want(&["status", "--watch=x"]), Want::Nothing);
    }

    #[test]
    fn attached_short_values_keep_the_flag() {
        assert_eq!(offered(&["status", "-oj"]), ["-ojson"]);
        assert_eq!(offered(&["status", "-vow"]), ["-vowide"]);
    }

    #[test]
    fn delimited_values_complete_the_last_item() {
        assert_eq!(
            offered(&["orphans", "--kind", "Orphaned,At"]),
            ["Orphaned,AtRisk"]
        );
        let all = offered(&["orphans", "--kind=Orphaned,AtRisk,"]);
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(all.iter().all(|v| v.starts_with("Orphaned,AtRisk,")));
        assert!(!all.contains(&"Orphaned,AtRisk,Orphaned".to_string()));
    }

    #[test]
    fn free_values_and_paths() {
        assert_eq!(want(&["--request-timeout", ""]), Want::Nothing);
        assert_eq!(want(&["delete", "x", "--grace-period", "1"]), Want::Nothing);
        assert_eq!(want(&["--kubeconfig", ""]), Want::Files);
        assert_eq!(want(&["status", "--kubeconfig=/tmp/"]), Want::Files);
        assert_eq!(want(&["orphans", ""]), Want::Nothing);
        assert_eq!(want(&["nosuch", ""]), Want::Nothing);
        assert_eq!(want(&["nosuch", "--"]), Want::Nothing);
    }

    #[test]
    fn kubeconfig_flags_complete_kubeconfig_entries() {
        assert_eq!(
            want(&["--context", ""]),
            Want::Kubeconfig(KubeconfigEntry::Context)
        );
        assert_eq!(
            want(&["status", "--context=ki"]),
            Want::Kubeconfig(KubeconfigEntry::Context)
        );
        assert_eq!(
            want(&["delete", "--cluster", ""]),
            Want::Kubeconfig(KubeconfigEntry::Cluster)
        );
        assert_eq!(
            want(&["--user", "a"]),
            Want::Kubeconfig(KubeconfigEntry::User)
        );
        let req = analyze_words(&["--kubeconfig", "/k", "--context", "a"]);
        assert_eq!(req.selection.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(req.partial, "a");
    }

    #[test]
    fn names_for_status_and_delete_with_the_selection_typed() {
        let req = analyze_words(&[
            "--kubeconfig=/tmp/kc",
            "delete",
            "--context",
            "kind",
            "blue",
            "--cluster=c1",
            "--user",
            "u1",
            "--dry-run=server",
            "gr",
        ]);
        assert_eq!(
            req.want,
            Want::ServiceCidrs {
                exclude: vec!["blue".into()]
            }
        );
        assert_eq!(req.partial, "gr");
        assert_eq!(
            req.selection,
            Selection {
                kubeconfig: Some("/tmp/kc".into()),
                context: Some("kind".into()),
                cluster: Some("c1".into()),
                user: Some("u1".into()),
            }
        );
        assert_eq!(
            want(&["status", ""]),
            Want::ServiceCidrs { exclude: vec![] }
        );
        assert_eq!(
            want(&["status", "-o", "wide", "-w", "a", ""]),
            Want::ServiceCidrs {
                exclude: vec!["a".into()]
            }
        );
        // After `--` everything is a name, even what looks like a flag.
        assert_eq!(
            want(&["delete", "--", "-x", "--w"]),
            Want::ServiceCidrs {
                exclude: vec!["-x".into()]
            }
        );
    }

    #[test]
    fn name_subcommands_exist_and_take_positionals() {
        let cmd = command();
        for name in NAME_SUBCOMMANDS {
            let sub = cmd
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
            assert!(sub.get_positionals().count() > 0, "{name} takes no names");
        }
    }

    #[test]
    fn flags_whose_value_needs_equals_leave_the_next_word_alone_like_clap() {
        // `--dry-run blue` is a dry run of blue, so completion offers names after it.
        assert!(Cli::try_parse_from(["k", "delete", "--dry-run", "blue"]).is_ok());
        assert!(Cli::try_parse_from(["k", "delete", "--wait", "blue"]).is_ok());
        assert!(matches!(
            analyze_words(&["delete", "--dry-run", ""]).want,
            Want::ServiceCidrs { .. }
        ));
    }

    #[test]
    fn contexts_complete_the_last_comma_separated_name() {
        let req = analyze_words(&["status", "--contexts", "prod,st"]);
        assert_eq!(req.want, Want::Kubeconfig(KubeconfigEntry::Context));
        assert_eq!((req.prefix.as_str(), req.partial.as_str()), ("prod,", "st"));
        let req = analyze_words(&["orphans", "--contexts=a,"]);
        assert_eq!((req.prefix.as_str(), req.partial.as_str()), ("a,", ""));
    }

    #[test]
    fn from_completes_range_names_after_the_last_comma() {
        let req = analyze_words(&["migrate", "plan", "--from", "blue,gr"]);
        assert_eq!(
            req.want,
            Want::ServiceCidrs {
                exclude: vec!["blue".into()]
            }
        );
        assert_eq!((req.prefix.as_str(), req.partial.as_str()), ("blue,", "gr"));
        let req = analyze_words(&["migrate", "run", "--from="]);
        assert_eq!(req.want, Want::ServiceCidrs { exclude: vec![] });
        assert_eq!(
            offered(&["migrate", ""]),
            ["plan", "run"].map(String::from).to_vec()
        );
    }

    #[test]
    fn tilde_in_kubeconfig_is_expanded() {
        let req = analyze_words(&["--kubeconfig", "~/kc", "status", ""]);
        let path = req.selection.kubeconfig.unwrap();
        if let Some(home) = std::env::home_dir() {
            assert_eq!(path, home.join("kc"));
        }
    }
}
