//! `status --watch` against faults: an apiserver restart, an apiserver that hangs while the view
//! re-lists, a watched range that finishes deleting, and a --request-timeout shorter than the
//! time between changes.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use support::faults::{Action, FaultProxy};
use support::{ControlPlane, PLUGIN, ip_in, unique_name};

/// `status --watch` with its stdout lines on a channel.
fn watch(kubeconfig: &Path, args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = Command::new(PLUGIN)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["status", "--watch", "--no-headers"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a line that `want` accepts.
fn line(rx: &Receiver<String>, timeout: Duration, want: impl Fn(&str) -> bool, what: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if want(&l) => return,
            Ok(_) => {}
            Err(_) => panic!("no line with {what}"),
        }
    }
}

fn row_with(name: &str, allocated: &'static str) -> impl Fn(&str) -> bool {
    let name = name.to_owned();
    move |l: &str| l.starts_with(&name) && l.split_whitespace().nth(4) == Some(allocated)
}

/// SIGINT, then the exit code, which must come within `within`.
fn interrupt(mut child: Child, within: Duration) -> i32 {
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            sent.elapsed() < within,
            "Ctrl-C took longer than {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_view_redraws_when_an_ip_is_allocated() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let name = unique_name("watched");
    cp.create_ready_service_cidr(&name, &[&block]);
    let (mut child, rx) = watch(&cp.kubeconfig, &[&name]);
    line(
        &rx,
        Duration::from_secs(30),
        row_with(&name, "0"),
        "0 allocated",
    );
    cp.create_service(&unique_name("ns"), "late", Some(&ip_in(&block, 9)));
    line(
        &rx,
        Duration::from_secs(30),
        row_with(&name, "1"),
        "1 allocated",
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_view_survives_an_apiserver_restart_and_ctrl_c_ends_it_at_once() {
    let cp = ControlPlane::start_dedicated(true);
    let block = cp.next_v4_block();
    let name = unique_name("watched");
    cp.create_ready_service_cidr(&name, &[&block]);
    let (child, rx) = watch(&cp.kubeconfig, &[&name]);
    line(
        &rx,
        Duration::from_secs(30),
        row_with(&name, "0"),
        "the first view",
    );
    cp.restart_apiserver();
    cp.create_service(&unique_name("ns"), "after", Some(&ip_in(&block, 9)));
    line(
        &rx,
        Duration::from_secs(60),
        row_with(&name, "1"),
        "a redraw after the restart",
    );
    assert_eq!(interrupt(child, Duration::from_secs(2)), 130);
}

#[test]
fn ctrl_c_wins_while_the_apiserver_hangs_during_a_relist() {
    let cp = ControlPlane::start_dedicated(true);
    let block = cp.next_v4_block();
    let name = unique_name("hung");
    cp.create_ready_service_cidr(&name, &[&block]);
    let proxy = FaultProxy::start(&cp, &name);
    let (child, rx) = watch(&proxy.kubeconfig, &[&name]);
    line(
        &rx,
        Duration::from_secs(30),
        row_with(&name, "0"),
        "the first view",
    );
    // From now on every new request hangs; a change makes the view list again.
    // Both watches open first, so that the hang meets the re-list.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proxy
        .seen()
        .iter()
        .any(|s| s.path.contains("ipaddresses?&watch=true"))
    {
        assert!(
            Instant::now() < deadline,
            "no watch of ipaddresses: {:?}",
            proxy.seen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = proxy.seen().len();
    proxy.set_rule(|_| Action::Hang);
    cp.create_service(&unique_name("ns"), "trigger", Some(&ip_in(&block, 9)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let relisting = || {
        proxy.seen()[before..]
            .iter()
            .any(|s| s.method == "GET" && !s.path.contains("watch="))
    };
    while !relisting() {
        assert!(
            Instant::now() < deadline,
            "no re-list after the change: {:?}",
            proxy.seen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(interrupt(child, Duration::from_secs(2)), 130);
}

#[test]
fn a_watched_range_that_finishes_deleting_is_shown_as_gone() {
    let cp = ControlPlane::shared();
    let name = unique_name("leaving");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    let (mut child, rx) = watch(&cp.kubeconfig, &[&name]);
    line(
        &rx,
        Duration::from_secs(30),
        |l| l.starts_with(&name),
        "the first view",
    );
    cp.delete("servicecidr", &name);
    let gone = format!("servicecidr {name:?}: gone");
    line(
        &rx,
        Duration::from_secs(60),
        |l| l == gone,
        "the range shown as gone",
    );
    assert!(child.try_wait().unwrap().is_none(), "the view must go on");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_short_request_timeout_does_not_make_the_view_relist() {
    let cp = ControlPlane::shared();
    let name = unique_name("quiet");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    let (mut child, rx) = watch(&cp.kubeconfig, &[&name, "--request-timeout", "2s"]);
    line(
        &rx,
        Duration::from_secs(30),
        |l| l.starts_with(&name),
        "the first view",
    );
    // Nothing changes in this range; other tests may change others, so count only what a re-list
    // every 2 s would bring: three or more redraws in 7 s.
    let quiet_until = Instant::now() + Duration::from_secs(7);
    let mut redraws = 0;
    while let Ok(l) = rx.recv_timeout(quiet_until.saturating_duration_since(Instant::now())) {
        redraws += usize::from(l.starts_with("--- "));
    }
    assert!(redraws < 3, "{redraws} redraws in 7 s without a change");
    child.kill().unwrap();
    child.wait().unwrap();
}
