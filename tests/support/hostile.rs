//! Small hostile HTTP servers on 127.0.0.1, there to break the client: slow, huge, garbage,
//! endless. Each answers API discovery as a real kube-apiserver would, then misbehaves on every
//! other request. Not a stand-in for Kubernetes: the real control plane serves every other test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{PLUGIN, unique_name};

#[derive(Clone, Debug)]
pub enum Misbehaviour {
    /// The status line and headers, one byte every 500 ms.
    SlowHeaders,
    /// Headers at once, then the body one byte a second.
    SlowBody,
    /// 200 with a body of this many bytes, sent as fast as the client reads.
    HugeBody(usize),
    /// This status with an HTML page of this many bytes.
    ErrorPage(u16, usize),
    /// Lists of no items, each page with a new continue token.
    EndlessPages,
    /// Lists of no items, every page with the same continue token.
    RepeatedToken,
    /// ServiceCIDR lists whose every page holds this many valid ranges and a new continue token:
    /// a list with no end that is not empty (every other list is empty).
    FullPages(usize),
    /// Reads the request and never answers; over TLS, never answers the hello.
    Silent,
    /// These bytes as the whole answer, `pace` between chunks of 64 bytes.
    Raw {
        bytes: Vec<u8>,
        pace: Option<Duration>,
    },
}

pub struct Hostile {
    pub kubeconfig: PathBuf,
}

const DISCOVERY: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"networking.k8s.io/v1","resources":[{"name":"servicecidrs","singularName":"servicecidr","namespaced":false,"kind":"ServiceCIDR","verbs":["get","list","watch"]},{"name":"ipaddresses","singularName":"ipaddress","namespaced":false,"kind":"IPAddress","verbs":["get","list","watch"]}]}"#;

impl Hostile {
    /// Starts the server; `tls` puts `https://` in the kubeconfig (for a server that never
    /// answers the TLS hello), else `http://`.
    pub fn start(mode: Misbehaviour, tls: bool) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().flatten().enumerate() {
                let mode = mode.clone();
                std::thread::spawn(move || serve(stream, &mode, n));
            }
        });
        let scheme = if tls { "https" } else { "http" };
        let extra = if tls {
            ", insecure-skip-tls-verify: true"
        } else {
            ""
        };
        let kubeconfig = std::env::temp_dir().join(format!(
            "kubectl-servicecidr-{}-{}.yaml",
            std::process::id(),
            unique_name("hostile")
        ));
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: h\n\
                 clusters: [{{name: h, cluster: {{server: \"{scheme}://127.0.0.1:{port}\"{extra}}}}}]\n\
                 users: [{{name: h, user: {{token: not-a-secret}}}}]\n\
                 contexts: [{{name: h, context: {{cluster: h, user: h}}}}]\n"
            ),
        )
        .expect("write the kubeconfig");
        Hostile { kubeconfig }
    }

    /// Runs the plugin against this server and measures it: its output, how long it took, and
    /// its peak resident memory in KiB (VmHWM, read while it runs).
    pub fn run(&self, args: &[&str]) -> (Output, Duration, u64) {
        let started = Instant::now();
        let mut child = Command::new(PLUGIN)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run the plugin");
        let status = format!("/proc/{}/status", child.id());
        let mut peak = 0;
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let readers = (
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = out.read_to_end(&mut v);
                v
            }),
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = err.read_to_end(&mut v);
                v
            }),
        );
        let exit = loop {
            if let Ok(text) = std::fs::read_to_string(&status)
                && let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the plugin hangs"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = Output {
            status: exit,
            stdout: readers.0.join().unwrap(),
            stderr: readers.1.join().unwrap(),
        };
        (output, started.elapsed(), peak)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

fn serve(mut stream: TcpStream, mode: &Misbehaviour, n: usize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    if path == "/apis/networking.k8s.io/v1" {
        let _ =
            stream.write_all(response(200, "application/json", DISCOVERY.as_bytes()).as_slice());
        return;
    }
    match mode {
        Misbehaviour::SlowHeaders => {
            for b in response(200, "application/json", b"{\"items\":[]}") {
                if stream.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Misbehaviour::SlowBody => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n";
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            loop {
                if stream.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Misbehaviour::HugeBody(size) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"items\":[",
                size
            );
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let spaces = vec![b' '; 1 << 16];
            let mut sent = 10;
            while sent < *size {
                if stream.write_all(&spaces).is_err() {
                    return;
                }
                sent += spaces.len();
            }
        }
        Misbehaviour::ErrorPage(status, size) => {
            let mut page = b"<html><body>".to_vec();
            page.resize(*size, b'x');
            let _ = stream.write_all(&response(*status, "text/html", &page));
        }
        Misbehaviour::EndlessPages | Misbehaviour::RepeatedToken => {
            let token = match mode {
                Misbehaviour::EndlessPages => format!("page-{n}"),
                _ => "again".into(),
            };
            let body = format!(
                "{{\"kind\":\"List\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"1\",\"continue\":\"{token}\"}},\"items\":[]}}"
            );
            let _ = stream.write_all(&response(200, "application/json", body.as_bytes()));
        }
        Misbehaviour::FullPages(items) if path.contains("/servicecidrs") => {
            let item = r#"{"metadata":{"name":"r"},"spec":{"cidrs":["10.96.0.0/16"]}},"#;
            let mut body = format!(
                "{{\"kind\":\"List\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"1\",\"continue\":\"page-{n}\"}},\"items\":["
            );
            body.push_str(&item.repeat(*items));
            body.pop();
            body.push_str("]}");
            let _ = stream.write_all(&response(200, "application/json", body.as_bytes()));
        }
        Misbehaviour::FullPages(_) => {
            let _ = stream.write_all(&response(200, "application/json", br#"{"items":[]}"#));
        }
        Misbehaviour::Silent => {
            let _ = std::io::copy(&mut stream, &mut std::io::sink());
        }
        Misbehaviour::Raw { bytes, pace } => {
            for part in bytes.chunks(64) {
                if stream.write_all(part).is_err() {
                    return;
                }
                if let Some(p) = pace {
                    std::thread::sleep(*p);
                }
            }
        }
    }
}

fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}
