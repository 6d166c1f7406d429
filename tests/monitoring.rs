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
use support::http::{get, until_ready};
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
        read("operator/prometheusrule.yaml")["spec"]["groups"],
        read("rules.yaml")["groups"]
    );
}

/// Debian's Prometheus server as users run it: a static scrape of `serve` every second, with
/// `rules.yaml` loaded. Answers come from its HTTP API.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Prometheus {
    fn start(target: &str, dir: &std::path::Path) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {MONITORING}/rules.yaml\nscrape_configs:\n  - job_name: servicecidr-exporter\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run prometheus: scripts/test.sh installs Debian's prometheus package");
        let p = Prometheus { child, addr };
        p.until("the server ready", |p| p.raw("/-/ready").0 == 200);
        p
    }

    /// GET over HTTP/1.0 (no chunked body to undo): status and body.
    fn raw(&self, path_and_query: &str) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect(&self.addr) else {
            return (0, String::new());
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path_and_query} HTTP/1.0\r\n\r\n").unwrap();
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
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

    /// `data` of an API answer, which must be a success.
    fn api(&self, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
        let encode = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let (status, body) = self.raw(&format!("{path}?{}", query.join("&")));
        let answer: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} {params:?}: {e} ({status}): {body}"));
        assert_eq!(answer["status"], "success", "{path} {params:?}: {body}");
        answer["data"].clone()
    }

    /// The result of an instant query.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let data = self.api("/api/v1/query", &[("query", promql)]);
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The active alerts as (name, servicecidr, state).
    fn alerts(&self) -> Vec<(String, String, String)> {
        let data = self.api("/api/v1/alerts", &[]);
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let mut all: Vec<_> = data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    text(&a["labels"]["alertname"]),
                    text(&a["labels"]["servicecidr"]),
                    text(&a["state"]),
                )
            })
            .collect();
        all.sort();
        all
    }

    /// The rule group's last evaluation time as Prometheus reports it.
    fn last_evaluation(&self) -> String {
        let data = self.api("/api/v1/rules", &[]);
        data["groups"][0]["lastEvaluation"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits for two more evaluations of the rules: everything scraped before has been judged.
    fn two_evaluations(&self) {
        for _ in 0..2 {
            let before = self.last_evaluation();
            self.until("an evaluation of the rules", |p| {
                p.last_evaluation() != before
            });
        }
    }

    fn until(&self, what: &str, done: impl Fn(&Prometheus) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(Instant::now() < deadline, "Prometheus: {what} never came");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real Prometheus server scrapes `serve` with `rules.yaml` loaded: the target is up, every
/// series the rules use is in Prometheus, every rule evaluates without error, nothing alerts on a
/// healthy cluster, and a range really filled past 95% with Services puts ServiceCIDRUsageCritical
/// (and, being past 80% too, ServiceCIDRUsageHigh) into pending, and nothing else. Then every
/// panel of the Grafana dashboard is run against it and returns data.
#[test]
fn a_real_prometheus_scrapes_the_exporter_evaluates_the_rules_and_fills_the_dashboard() {
    let rules = std::fs::read_to_string(format!("{MONITORING}/rules.yaml")).unwrap();
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("servicecidr_") && w.len() > "servicecidr_".len())
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 6, "{used:?}");

    let cp = ControlPlane::shared();
    // A terminating range, held by a finalizer of its own, so the series about terminating ranges
    // exist. Nothing alerts on it before it has been terminating for 15 minutes.
    let held = unique_name("held");
    cp.create_ready_service_cidr(&held, &[&cp.next_v4_block()]);
    cp.set_finalizers(
        "servicecidr",
        &held,
        &[SERVICE_CIDR_FINALIZER, "example.com/hold"],
    );
    cp.delete("servicecidr", &held);
    let (mut exporter, addr) = spawn_exporter(&cp.kubeconfig);
    until_ready(&addr);
    let dir = cp.dir.join(unique_name("prometheus"));
    std::fs::create_dir_all(&dir).unwrap();
    let prom = Prometheus::start(&addr, &dir);

    prom.until("the exporter's target up", |p| {
        p.query("up{job=\"servicecidr-exporter\"} == 1").len() == 1
    });
    prom.until("the terminating range's series", |p| {
        !p.query(&format!(
            "servicecidr_range_terminating_seconds{{servicecidr=\"{held}\"}}"
        ))
        .is_empty()
    });
    for metric in &used {
        assert!(
            !prom.query(metric).is_empty(),
            "rules.yaml uses {metric}, which Prometheus has no series of"
        );
    }
    prom.two_evaluations();
    let groups = prom.api("/api/v1/rules", &[]);
    let rules_run = groups["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(rules_run.len(), rules.matches("- alert:").count());
    for r in rules_run {
        assert_eq!(r["health"], "ok", "{r}");
    }
    assert_eq!(prom.alerts(), [], "alerts on a healthy cluster");

    // A /29 (6 addresses) filled with real Services: 100% allocated.
    let full = unique_name("full");
    let block = cp.next_v4_block().replace("/24", "/29");
    cp.create_ready_service_cidr(&full, &[&block]);
    let ns = unique_name("fill");
    for host in 1..=6 {
        cp.create_service(&ns, &format!("s{host}"), Some(&ip_in(&block, host)));
    }
    prom.until("ServiceCIDRUsageCritical", |p| {
        p.alerts()
            .iter()
            .any(|(name, _, _)| name == "ServiceCIDRUsageCritical")
    });
    prom.two_evaluations();
    let alerts = prom.alerts();
    assert_eq!(
        alerts
            .iter()
            .map(|(n, r, _)| (n.as_str(), r.as_str()))
            .collect::<Vec<_>>(),
        [
            ("ServiceCIDRUsageCritical", full.as_str()),
            ("ServiceCIDRUsageHigh", full.as_str())
        ],
        "{alerts:?}"
    );
    assert!(
        alerts
            .iter()
            .all(|(_, _, s)| s == "pending" || s == "firing"),
        "{alerts:?}"
    );

    // Every query of every panel, as Grafana sends it with the job variable on "All".
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{MONITORING}/dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$job", ".+")
                .replace("$__rate_interval", "1m");
            assert!(
                !expr.contains('$'),
                "a variable the test does not set: {expr}"
            );
            assert!(
                !prom.query(&expr).is_empty(),
                "panel {:?} has no data: {expr}",
                panel["title"]
            );
        }
    }

    drop(prom);
    let _ = exporter.kill();
    let _ = exporter.wait();
    cp.set_finalizers("servicecidr", &held, &[]);
}

/// Allocated addresses per (range, CIDR) of `names`, as the exporter serves them.
fn served_allocations(metrics: &str, names: &[String]) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("servicecidr_range_allocated_addresses{servicecidr=\"")
        else {
            continue;
        };
        let (name, rest) = rest.split_once('"').unwrap();
        let cidr = rest
            .split("cidr=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let value: f64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
        if names.iter().any(|n| n == name) {
            out.push((name.to_owned(), cidr.to_owned(), value as u64));
        }
    }
    out.sort();
    out
}

/// The same, as a fresh `status -o json` reads them.
fn listed_allocations(cp: &ControlPlane, names: &[String]) -> Vec<(String, String, u64)> {
    let status: serde_json::Value =
        serde_json::from_str(&stdout_of(&cp.plugin(&["status", "-o", "json"]))).unwrap();
    let mut out = Vec::new();
    for r in status["serviceCIDRs"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        if names.iter().any(|n| n == name) {
            for c in r["cidrs"].as_array().unwrap() {
                let cidr = c["cidr"].as_str().unwrap().to_owned();
                out.push((name.to_owned(), cidr, c["allocated"].as_u64().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// After churn (Services created and deleted, IPAddresses written by hand, a range going away),
/// the exporter's rendering, made on changes rather than per scrape, equals a fresh read.
#[test]
fn after_churn_the_metrics_equal_a_fresh_status() {
    let cp = ControlPlane::shared();
    let (mut exporter, addr) = spawn_exporter(&cp.kubeconfig);
    until_ready(&addr);
    let names: Vec<String> = (0..3).map(|_| unique_name("churn")).collect();
    let blocks: Vec<String> = (0..3).map(|_| cp.next_v4_block()).collect();
    for (name, block) in names.iter().zip(&blocks) {
        cp.create_ready_service_cidr(name, &[block]);
    }
    let ns = unique_name("churn");
    for host in 1..=12u128 {
        let block = &blocks[(host % 2) as usize];
        cp.create_service(&ns, &format!("s{host}"), Some(&ip_in(block, host)));
    }
    for host in (1..=12u128).step_by(3) {
        cp.delete_in(&ns, "service", &format!("s{host}"));
    }
    for host in 100..104 {
        cp.create_ipaddress(&ip_in(&blocks[0], host), &ns, "by-hand", false);
    }
    cp.delete("servicecidr", &names[2]);
    // The third range is gone from both once its deletion completes.
    let want = |listed: &[(String, String, u64)]| {
        listed.len() == 2 && listed.iter().map(|(_, _, n)| n).sum::<u64>() == 8 + 4
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = listed_allocations(cp, &names);
        let (status, metrics) = get(&addr, "/metrics");
        assert_eq!(status, 200);
        let served = served_allocations(&metrics, &names);
        if want(&listed) && served == listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the exporter never agreed with a fresh read:\nserved {served:?}\nlisted {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    exporter.kill().unwrap();
    exporter.wait().unwrap();
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
