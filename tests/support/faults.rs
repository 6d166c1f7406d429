//! A fault-injecting hop in front of the real kube-apiserver, for failures a healthy control plane
//! will not produce on cue (throttling, 5xx bursts, a conflict at an exact moment).
//!
//! plugin --http--> FaultProxy --http--> `kubectl proxy` --https--> kube-apiserver
//!
//! Every request is shown to a rule first, which may answer it with an error Status of its own or
//! let it through (after running any side effect on the real cluster, such as changing an object
//! so that the real server answers 409). Each request gets its own connection (`Connection:
//! close` is forced), so every request is seen. Loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ControlPlane;

/// What the rule decides for one request.
pub enum Action {
    Forward,
    /// Read the request and never answer, as a stopped apiserver does, until the client gives up.
    Hang,
    /// Forward after this long, as a slow apiserver answers.
    Delay(Duration),
    /// Forward, let the server act, and lose its answer: the connection drops instead.
    Swallow,
    /// Forward, let the server act, and never answer: the client waits until it is killed.
    /// [`FaultProxy::acted`] counts the answers so held back.
    ActThenHang,
    /// Answer with this HTTP status and a Kubernetes Status body, optionally with Retry-After.
    Answer {
        status: u16,
        retry_after: Option<u32>,
    },
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub at: Instant,
    /// The status the proxy answered with itself; None when it was forwarded.
    pub injected: Option<u16>,
}

type Rule = Box<dyn FnMut(&Seen) -> Action + Send>;

pub struct FaultProxy {
    /// A kubeconfig whose server is this proxy (no credentials: `kubectl proxy` adds admin's).
    pub kubeconfig: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    rule: Arc<Mutex<Rule>>,
    acted: Arc<std::sync::atomic::AtomicUsize>,
    upstream: Child,
}

impl FaultProxy {
    /// Starts `kubectl proxy` (as admin) and the fault hop in front of it; every request is
    /// forwarded until [`FaultProxy::set_rule`].
    pub fn start(cp: &ControlPlane, name: &str) -> FaultProxy {
        let mut upstream = Command::new(cp.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .args(["proxy", "--address=127.0.0.1", "--port=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run kubectl proxy");
        let mut line = String::new();
        BufReader::new(upstream.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Starting to serve on 127.0.0.1:PORT"
        let upstream_addr = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|a| a.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("kubectl proxy said {line:?}"))
            .to_owned();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let acted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(Box::new(|_: &Seen| Action::Forward)));
        {
            let (seen, rule, acted) = (seen.clone(), rule.clone(), acted.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { break };
                    let (seen, rule, up) = (seen.clone(), rule.clone(), upstream_addr.clone());
                    let acted = acted.clone();
                    std::thread::spawn(move || serve(conn, &up, &seen, &rule, &acted));
                }
            });
        }

        let kubeconfig = cp.dir.join(format!("faulty-{name}.kubeconfig"));
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: faulty\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: anyone\n  user: {{}}\ncontexts:\n- name: faulty\n  context:\n    cluster: faulty\n    user: anyone\ncurrent-context: faulty\n"
            ),
        )
        .unwrap();
        FaultProxy {
            kubeconfig,
            seen,
            rule,
            acted,
            upstream,
        }
    }

    /// Replaces the rule; it sees every later request, in arrival order.
    pub fn set_rule(&self, rule: impl FnMut(&Seen) -> Action + Send + 'static) {
        *self.rule.lock().unwrap() = Box::new(rule);
    }

    /// How many requests the server has answered that [`Action::ActThenHang`] held back: each
    /// one has taken effect.
    pub fn acted(&self) -> usize {
        self.acted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// From now on every watch is answered 410 Gone (too old to resume), as a proxy or server in
    /// a bad state may; everything else goes through.
    pub fn answer_every_watch_gone(&self) {
        self.set_rule(|s| {
            if s.path.contains("watch=") {
                Action::Answer {
                    status: 410,
                    retry_after: None,
                }
            } else {
                Action::Forward
            }
        });
    }

    /// How many lists (not watches) of `resource` (`servicecidrs`, ...) it has seen.
    pub fn lists_of(&self, resource: &str) -> usize {
        let path = format!("/{resource}?");
        self.seen()
            .iter()
            .filter(|s| s.method == "GET" && s.path.contains(&path) && !s.path.contains("watch="))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.upstream.kill();
        let _ = self.upstream.wait();
    }
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    seen: &Mutex<Vec<Seen>>,
    rule: &Mutex<Rule>,
    acted: &std::sync::atomic::AtomicUsize,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let mut s = Seen {
        method: request_line.next().unwrap_or_default().to_owned(),
        path: request_line.next().unwrap_or_default().to_owned(),
        at: Instant::now(),
        injected: None,
    };
    // The rule runs under the lock, so side effects of one request finish before the next is judged.
    let action = (rule.lock().unwrap())(&s);
    if let Action::Answer {
        status,
        retry_after,
    } = action
    {
        s.injected = Some(status);
        seen.lock().unwrap().push(s);
        let _ = client.write_all(answer(status, retry_after).as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    seen.lock().unwrap().push(s);
    match action {
        Action::Hang => {
            let _ = std::io::copy(&mut client, &mut std::io::sink());
            return;
        }
        Action::Delay(d) => std::thread::sleep(d),
        _ => {}
    }

    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let mut rewritten: String = head
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    rewritten.truncate(rewritten.len() - 2);
    rewritten.push_str("Connection: close\r\n\r\n");
    if up.write_all(rewritten.as_bytes()).is_err() || up.write_all(&buf[head_end..]).is_err() {
        return;
    }
    if matches!(action, Action::Swallow | Action::ActThenHang) {
        let _ = std::io::copy(&mut up, &mut std::io::sink());
        if matches!(action, Action::ActThenHang) {
            acted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::copy(&mut client, &mut std::io::sink());
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let (mut client_r, mut up_w) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    let body = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut up, &mut client);
    // The answer is complete (upstream closed): end the client side too, which also ends the copy
    // of the request body above.
    let _ = client.shutdown(Shutdown::Both);
    let _ = body.join();
}

/// An answer shaped like kube-apiserver's own: a JSON Status with reason and code.
fn answer(status: u16, retry_after: Option<u32>) -> String {
    let (reason, message) = match status {
        409 => ("Conflict", "injected conflict"),
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later.",
        ),
        500 => ("InternalError", "Internal error occurred: injected"),
        503 => (
            "ServiceUnavailable",
            "The server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "Timeout: request did not complete within the allotted timeout",
        ),
        _ => ("Unknown", "injected failure"),
    };
    let mut body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": status,
    });
    let mut extra = String::new();
    if let Some(secs) = retry_after {
        body["details"] = serde_json::json!({ "retryAfterSeconds": secs });
        extra = format!("Retry-After: {secs}\r\n");
    }
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
}
