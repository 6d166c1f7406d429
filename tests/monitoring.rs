//! Capacity monitoring, checked with the real promtool (Debian's prometheus package): the metrics of
//! `status -o prometheus` and of the `serve` exporter, the alert rules and their unit tests, and
//! the exporter's promises (watch-driven, no list per scrape, a new list after 410 Gone, a clean
//! exit on SIGTERM).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::faults::{Action, FaultProxy};
use support::{
    ControlPlane, PLUGIN, SERVICE_CIDR_FINALIZER, code, ip_in, stderr_of, stdout_of, unique_name,
};

const MONITORING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring");

/// `promtool ARGS` with `input` on stdin; its exit code and everything it said.
fn promtool(args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(MONITORING)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run promtool: scripts/test.sh installs Debian's prometheus package");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        code(&out),
        format!("{}{}", stdout_of(&out), stderr_of(&out)),
    )
}

fn check_metrics(text: &str) {
    let (rc, said) = promtool(&["check", "metrics"], text);
    assert_eq!(rc, 0, "promtool check metrics: {said}\n{text}");
}

/// The value of the sample `series` (name and labels exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn status_metrics_pass_promtool_and_count_the_cluster() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block().replace("/24", "/28");
    let name = unique_name("metrics");
    cp.create_ready_service_cidr(&name, &[&block]);
    for host in 1..=3 {
        cp.create_ipaddress(&ip_in(&block, host), "default", &name, false);
    }
    let out = cp.plugin(&["status", "-o", "prometheus"]);
    assert_eq!(code(&out), 0, "{}", stderr_of(&out));
    let text = stdout_of(&out);
    check_metrics(&text);
    let labels = format!(r#"{{servicecidr="{name}",cidr="{block}",family="IPv4"}}"#);
    assert_eq!(
        sample(
            &text,
            &format!("servicecidr_range_capacity_addresses{labels}")
        ),
        Some(14.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("servicecidr_range_allocated_addresses{labels}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, &format!("servicecidr_range_free_addresses{labels}")),
        Some(11.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"servicecidr_range_ready{{servicecidr="{name}"}}"#)
        ),
        Some(1.0)
    );
    // Three IPAddresses whose Service does not exist, not yet past the repair loop's grace.
    assert!(sample(&text, r#"servicecidr_findings{kind="DanglingParent"}"#).is_some());
    assert!(
        !text.contains("servicecidr_exporter"),
        "no exporter series: {text}"
    );
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let (rc, said) = promtool(&["check", "rules", "rules.yaml"], "");
    assert_eq!(rc, 0, "{said}");
    let (rc, said) = promtool(&["test", "rules", "rules_test.yaml"], "");
    assert_eq!(rc, 0, "{said}");
    // The PrometheusRule carries exactly the plain rules file's groups.
    let read = |f: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(format!("{MONITORING}/{f}")).unwrap();
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"))
    };
    assert_eq!(
        read("prometheusrule.yaml")["spec"]["groups"],
        read("rules.yaml")["groups"]
    );
}

/// Every metric the rules use is one the running exporter really serves: scraped from `serve`
/// against the real control plane, not searched for in the source.
#[test]
fn the_rules_use_only_exported_metrics() {
    let rules = std::fs::read_to_string(format!("{MONITORING}/rules.yaml")).unwrap();
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("servicecidr_") && w.len() > "servicecidr_".len())
        .collect();
    used.sort();
    used.dedup();
    assert!(!used.is_empty());
    // A terminating range, held by a finalizer of its own, so the series about terminating
    // ranges exist.
    let cp = ControlPlane::shared();
    let name = unique_name("rules");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    cp.set_finalizers(
        "servicecidr",
        &name,
        &[SERVICE_CIDR_FINALIZER, "example.com/hold"],
    );
    cp.delete("servicecidr", &name);
    let (mut child, addr) = spawn_exporter(&cp.kubeconfig);
    until_ready(&addr);
    let body = until_metrics(&addr, "the terminating range", |m| {
        m.contains(&format!(
            "servicecidr_range_terminating_seconds{{servicecidr=\"{name}\""
        ))
    });
    let _ = child.kill();
    let _ = child.wait();
    // Samples, and families declared without samples yet (no terminating range: no series),
    // counters under their `_total` sample name too.
    let mut served: Vec<String> = Vec::new();
    for line in body.lines() {
        match line.strip_prefix("# TYPE ") {
            Some(t) => {
                let mut words = t.split(' ');
                let (name, kind) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                served.push(name.to_owned());
                if kind == "counter" {
                    served.push(format!("{name}_total"));
                }
            }
            None if !line.starts_with('#') => {
                served.extend(line.split(['{', ' ']).next().map(str::to_owned))
            }
            None => {}
        }
    }
    cp.set_finalizers("servicecidr", &name, &[]);
    for metric in used {
        assert!(
            served.iter().any(|s| s == metric),
            "rules.yaml uses {metric}, which the exporter does not serve:\n{body}"
        );
    }
}

/// A plain HTTP/1.1 GET; the status code and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Scrapes until `want` holds of the metrics, or fails after 20 s.
fn until_metrics(addr: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(addr, "/metrics");
        if status == 200 && want(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what} never came:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the exporter says it is ready (its first list done), or fails after 20 s.
fn until_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `serve --listen 127.0.0.1:0`, and the address it says it serves on.
fn spawn_exporter(kubeconfig: &std::path::Path) -> (Child, String) {
    spawn_exporter_with(kubeconfig, |_| {})
}

/// The same, `adjust` given the command first.
fn spawn_exporter_with(
    kubeconfig: &std::path::Path,
    adjust: impl FnOnce(&mut Command),
) -> (Child, String) {
    let mut command = Command::new(PLUGIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    adjust(&mut command);
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("serve said {line:?}"))
        .to_owned();
    (child, addr)
}

#[test]
fn the_exporter_follows_watches_lists_again_after_gone_and_stops_on_sigterm() {
    let cp = ControlPlane::shared();
    let proxy = FaultProxy::start(cp, "exporter");
    // The first watch of IPAddresses is too old to resume (410 Gone): the exporter lists again.
    let mut gone_once = false;
    proxy.set_rule(move |seen| {
        if !gone_once && seen.path.contains("/ipaddresses?") && seen.path.contains("watch=") {
            gone_once = true;
            Action::Answer {
                status: 410,
                retry_after: None,
            }
        } else {
            Action::Forward
        }
    });
    let (mut exporter, addr) = spawn_exporter(&proxy.kubeconfig);
    until_ready(&addr);
    assert_eq!(get(&addr, "/healthz").0, 200);
    let first = until_metrics(&addr, "the list after 410 Gone", |m| {
        sample(m, "servicecidr_exporter_relists_total") == Some(1.0)
    });
    check_metrics(&first);
    assert_eq!(
        sample(
            &first,
            r#"servicecidr_exporter_errors_total{operation="watch"}"#
        ),
        Some(0.0),
        "410 is not an error"
    );

    // A new range shows up through the watches.
    let name = unique_name("watched");
    let block = cp.next_v4_block();
    cp.create_service_cidr(&name, &[&block]);
    let series = format!(
        r#"servicecidr_range_capacity_addresses{{servicecidr="{name}",cidr="{block}",family="IPv4"}}"#
    );
    until_metrics(&addr, "the new range", |m| {
        sample(m, &series) == Some(254.0)
    });

    // Scrapes read the picture, never the API server.
    let lists = || {
        proxy
            .seen()
            .iter()
            .filter(|s| {
                s.method == "GET" && !s.path.contains("watch=") && s.path.contains("limit=")
            })
            .count()
    };
    let before = lists();
    for _ in 0..5 {
        check_metrics(&get(&addr, "/metrics").1);
    }
    assert_eq!(lists(), before, "a scrape listed");
    assert_eq!(
        before, 6,
        "one list of each kind, twice (the 410 made the second)"
    );

    let pid = exporter.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = Instant::now();
    let status = exporter.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(stopped.elapsed() < Duration::from_secs(5));
}

/// Behind a proxy that answers every watch with 410 Gone, the exporter lists again at a growing,
/// jittered pace (a list succeeding does not reset it), and the relists are counted.
#[test]
fn a_watch_that_is_always_gone_is_listed_for_at_a_pace_not_in_a_storm() {
    let cp = ControlPlane::shared();
    let proxy = FaultProxy::start(cp, "exporter-gone");
    proxy.answer_every_watch_gone();
    let (mut exporter, addr) = spawn_exporter(&proxy.kubeconfig);
    until_ready(&addr);
    std::thread::sleep(Duration::from_secs(10));
    let lists = proxy.lists_of("servicecidrs");
    // Waits of 0.5-1, 1-2, 2-4 and 4-8 s: at most 5 lists in 10 s (hundreds without a pace).
    assert!((2..=6).contains(&lists), "{lists} lists in 10 s");
    let metrics = get(&addr, "/metrics").1;
    assert!(
        sample(&metrics, "servicecidr_exporter_relists_total").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    exporter.kill().unwrap();
    exporter.wait().unwrap();
}

/// Before the first complete list, /metrics says nothing rather than all-clear zeros.
#[test]
fn metrics_are_unavailable_until_the_first_list() {
    let cp = ControlPlane::shared();
    let proxy = FaultProxy::start(cp, "exporter-unsynced");
    proxy.set_rule(|s| {
        if s.path.contains("/ipaddresses?") {
            Action::Hang
        } else {
            Action::Forward
        }
    });
    let (mut exporter, addr) = spawn_exporter(&proxy.kubeconfig);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !proxy
        .seen()
        .iter()
        .any(|s| s.path.contains("/ipaddresses?"))
    {
        assert!(Instant::now() < deadline, "never listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = get(&addr, "/metrics");
    assert_eq!((status, body.as_str()), (503, "not synced yet\n"));
    assert_eq!(get(&addr, "/readyz").0, 503);
    assert_eq!(get(&addr, "/healthz").0, 200);
    exporter.kill().unwrap();
    exporter.wait().unwrap();
}

/// Connections that never finish their headers, many more than it serves at once, under a low
/// descriptor limit: the exporter stays up, closes them after its header timeout, and serves a
/// scrape again.
#[test]
fn idle_and_unfinished_connections_are_bounded_and_survived() {
    use std::os::unix::process::CommandExt;
    let cp = ControlPlane::shared();
    let (mut exporter, addr) = spawn_exporter_with(&cp.kubeconfig, |command| {
        // SAFETY: setrlimit only, between fork and exec.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 128,
                    rlim_max: 128,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    });
    until_metrics(&addr, "the first list", |_| true);
    // 200 connections: half silent, half with a header that never ends.
    let mut held = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(&addr).unwrap();
        if i % 2 == 1 {
            write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
        }
        held.push(s);
    }
    // The header timeout (10 s) closes them; the exporter is still there and serves.
    let first = &mut held[1];
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 1];
    let started = Instant::now();
    match first.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("an unfinished request was not closed: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    drop(held);
    assert!(
        exporter.try_wait().unwrap().is_none(),
        "the exporter exited"
    );
    until_metrics(&addr, "a scrape after the flood", |m| {
        m.contains("servicecidr_range")
    });
    exporter.kill().unwrap();
    exporter.wait().unwrap();
}
