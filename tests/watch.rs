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
    watch_logged(kubeconfig, args, Stdio::null())
}

/// The same, its stderr (`-v`'s request log when asked for) to `stderr`.
fn watch_logged(kubeconfig: &Path, args: &[&str], stderr: Stdio) -> (Child, Receiver<String>) {
    let mut child = Command::new(PLUGIN)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["status", "--watch", "--no-headers"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
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

/// A status row without its AGE column, which moves on by itself.
fn without_age(l: &str) -> String {
    let mut cols: Vec<&str> = l.split_whitespace().collect();
    cols.pop();
    cols.join(" ")
}

/// The view is kept by applying watch events to what it listed: after a burst of changes of every
/// kind (IPAddresses created and deleted, in a nested range and out of it, a range created, a range
/// deleted), its last picture is what a fresh `status` reads from the server, and it listed the
/// IPAddresses once.
#[test]
fn the_view_applies_each_change_and_ends_where_a_fresh_list_does() {
    let cp = ControlPlane::shared();
    let block = cp.next_v4_block();
    let (wide, narrow, late, leaving) = (
        unique_name("applied"),
        unique_name("applied-narrow"),
        unique_name("applied-late"),
        unique_name("applied-leaving"),
    );
    // The narrow range is the /28 at host 16: its own hosts are 17..=30.
    let narrow_cidr = format!("{}/28", ip_in(&block, 16));
    cp.create_ready_service_cidr(&wide, &[&block]);
    cp.create_ready_service_cidr(&narrow, &[&narrow_cidr]);
    cp.create_ready_service_cidr(&leaving, &[&cp.next_v4_block()]);
    let log = std::env::temp_dir().join(format!("{}.log", unique_name("watch-v")));
    let names = [&wide, &narrow, &late, &leaving];
    let mut args: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
    args.push("-v");
    let (mut child, rx) = watch_logged(
        &cp.kubeconfig,
        &args,
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    line(
        &rx,
        Duration::from_secs(30),
        |l| l.starts_with(&wide),
        "the first view",
    );
    let ns = unique_name("ns");
    for host in [3, 4, 5, 16, 17, 18, 30, 31, 40] {
        cp.create_ipaddress(&ip_in(&block, host), &ns, "svc", false);
    }
    for host in [4, 17] {
        cp.delete("ipaddress", &ip_in(&block, host));
    }
    cp.create_ready_service_cidr(&late, &[&cp.next_v4_block()]);
    cp.delete("servicecidr", &leaving);
    cp.wait_for(
        &format!("servicecidr/{leaving}"),
        Duration::from_secs(60),
        |v| v.is_none(),
    );
    let fresh = cp.plugin(&["status", "--no-headers", &wide, &narrow, &late]);
    assert!(fresh.status.success(), "{fresh:?}");
    let mut want: Vec<String> = String::from_utf8_lossy(&fresh.stdout)
        .lines()
        .map(without_age)
        .collect();
    want.push(format!("servicecidr {leaving:?}: gone"));
    // Each picture starts with "--- TIME"; wait for one equal to the fresh read.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut picture: Vec<String> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("--- ") => picture.clear(),
            Ok(l) if l.starts_with("servicecidr ") => picture.push(l),
            Ok(l) => picture.push(without_age(&l)),
            Err(_) => panic!(
                "the view never showed what a fresh list shows:\n{want:#?}\nlast:\n{picture:#?}"
            ),
        }
        if picture == want {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let path = log;
    let log = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let lists = log
        .lines()
        .filter(|l| l.contains("/ipaddresses?") && !l.contains("watch="))
        .count();
    assert_eq!(
        lists, 1,
        "the view listed IPAddresses more than once:\n{log}"
    );
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
    // A change is applied, not listed for; a list comes when a watch cannot resume. So the
    // apiserver restarts (ending the watches), every watch after it is answered 410 Gone and
    // every list hangs.
    let before = proxy.seen().len();
    proxy.set_rule(|s| {
        if s.path.contains("watch=") {
            Action::Answer {
                status: 410,
                retry_after: None,
            }
        } else {
            Action::Hang
        }
    });
    cp.restart_apiserver();
    let deadline = Instant::now() + Duration::from_secs(30);
    let relisting = || {
        proxy.seen()[before..]
            .iter()
            .any(|s| s.method == "GET" && !s.path.contains("watch="))
    };
    while !relisting() {
        assert!(
            Instant::now() < deadline,
            "no re-list after the watches were gone: {:?}",
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
    // Every request seen on its way: the lists themselves are counted.
    let proxy = FaultProxy::start(cp, &name);
    let (mut child, rx) = watch(&proxy.kubeconfig, &[&name, "--request-timeout", "2s"]);
    line(
        &rx,
        Duration::from_secs(30),
        |l| l.starts_with(&name),
        "the first view",
    );
    let listed = proxy.lists_of("servicecidrs");
    // Watches idle far longer than --request-timeout; a view that took their silence for a
    // failure would list again every 2 s.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        proxy.lists_of("servicecidrs"),
        listed,
        "listed again while nothing failed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Behind a proxy that answers every watch with 410 Gone, the view lists again at a growing,
/// jittered pace, not in a tight loop, and still shows the range.
#[test]
fn a_watch_that_is_always_gone_is_listed_for_at_a_pace_not_in_a_storm() {
    let cp = ControlPlane::shared();
    let name = unique_name("gone");
    cp.create_ready_service_cidr(&name, &[&cp.next_v4_block()]);
    let proxy = FaultProxy::start(cp, &name);
    proxy.answer_every_watch_gone();
    let (child, rx) = watch(&proxy.kubeconfig, &[&name]);
    line(
        &rx,
        Duration::from_secs(30),
        row_with(&name, "0"),
        "the first view",
    );
    std::thread::sleep(Duration::from_secs(10));
    let lists = proxy.lists_of("servicecidrs");
    // Waits of 0.5-1, 1-2, 2-4 and 4-8 s: at most 5 lists in 10 s (387 in 11 s without a pace).
    assert!((2..=6).contains(&lists), "{lists} lists in 10 s");
    assert_eq!(interrupt(child, Duration::from_secs(2)), 130);
}
