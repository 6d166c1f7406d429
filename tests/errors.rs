//! The catalogue of bad input: each case gets one clear line on stderr, the right exit code, no
//! panic, and leaves the cluster as it was.

mod support;

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{ControlPlane, PLUGIN, code, stderr_of, stdout_of, unique_name};

/// Runs the plugin with exactly these arguments (no kubeconfig added) and KUBECONFIG unset.
fn run(args: &[&str]) -> Output {
    Command::new(PLUGIN)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts the exit code and that stderr's last line is the expected error, with no panic.
fn fails(out: &Output, exit: i32, line: impl AsRef<str>) {
    let err = stderr_of(out);
    assert_eq!(code(out), exit, "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let last = err
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        last.contains(line.as_ref()),
        "expected {:?} in the last line of:\n{err}",
        line.as_ref()
    );
    if exit == 1 {
        assert!(
            last.starts_with("error: ") && stdout_of(out).is_empty(),
            "{err}"
        );
    }
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("errors");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{name}", std::process::id()));
    fs::write(&path, content).unwrap();
    path
}

/// The test kubeconfig with `from` replaced by `to`.
fn kubeconfig_with(cp: &ControlPlane, name: &str, from: &str, to: &str) -> PathBuf {
    let text = fs::read_to_string(&cp.kubeconfig).unwrap();
    assert!(text.contains(from), "{from} not in the kubeconfig");
    temp_file(name, &text.replacen(from, to, 1))
}

fn server_url(cp: &ControlPlane) -> String {
    let text = fs::read_to_string(&cp.kubeconfig).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn command_line_mistakes_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["status", "--bogus"], "unexpected argument '--bogus'"),
        (&["status", "-o", "xml"], "invalid value 'xml'"),
        (
            &["delete", "blue", "--wait=false", "--remove-finalizer"],
            "--remove-finalizer needs the wait",
        ),
        (&["delete", "blue/status"], "invalid value 'blue/status'"),
        (&["status", "Blue"], "invalid value 'Blue'"),
        (
            &["delete", "blue", "--timeout", "500000000000y"],
            "invalid value",
        ),
        (&["delete"], "<NAME>"),
        (
            &["status", "--request-timeout", "soon"],
            "invalid value 'soon'",
        ),
        (
            &["delete", "blue", "--grace-period", "ten"],
            "invalid value 'ten'",
        ),
        (&["status", "--chunk-size", "0"], "invalid value '0'"),
        (&["orphans", "--kind", "Lost"], "invalid value 'Lost'"),
        (&["completion", "tcsh"], "invalid value 'tcsh'"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (
            &["status", "--watch", "-o", "json"],
            "--watch redraws a table",
        ),
        (&["delete", "blue", "-o", "wide"], "invalid value 'wide'"),
        (
            &["orphans", "--suggest-range", "-o", "json"],
            "cannot be used with",
        ),
        (
            &["completion", "bash", "-o", "json"],
            "unexpected argument '-o'",
        ),
    ];
    for (args, want) in cases {
        let out = run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(want),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn kubeconfig_problems_name_the_file_and_the_cause() {
    let cp = ControlPlane::shared();
    fails(
        &run(&["status", "--kubeconfig", "/nonexistent/kubeconfig"]),
        1,
        r#"error: kubeconfig "/nonexistent/kubeconfig": cannot be read: No such file or directory (os error 2)"#,
    );
    let dir = temp_file("dir-marker", "");
    let parent = dir.parent().unwrap().to_str().unwrap();
    fails(
        &run(&["status", "--kubeconfig", parent]),
        1,
        "cannot be read",
    );
    let malformed = temp_file("malformed", "clusters: [ {name: x\n  : : :");
    fails(
        &run(&["status", "--kubeconfig", malformed.to_str().unwrap()]),
        1,
        "is not valid YAML",
    );
    let empty = temp_file("empty", "");
    fails(
        &run(&["status", "--kubeconfig", empty.to_str().unwrap()]),
        1,
        "error: invalid kubeconfig: ",
    );
    fails(&run(&["status"]), 1, "error: no kubeconfig found");
    for (flag, what) in [
        ("--context", "context"),
        ("--cluster", "cluster"),
        ("--user", "user"),
    ] {
        fails(
            &cp.plugin(&["status", flag, "nope"]),
            1,
            format!("error: {what} \"nope\" not found in kubeconfig (known: "),
        );
    }
}

#[test]
fn wrong_credentials_are_unauthorized() {
    let cp = ControlPlane::shared();
    let text = fs::read_to_string(&cp.kubeconfig).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .trim();
    let bad = kubeconfig_with(cp, "bad-token", token, "0000not-a-valid-token0000");
    fails(
        &run(&["status", "--kubeconfig", bad.to_str().unwrap()]),
        1,
        "Unauthorized: the server rejected the credentials",
    );
}

#[test]
fn a_server_with_a_certificate_from_another_ca_is_refused() {
    let cp = ControlPlane::shared();
    let pem = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            "/CN=other-ca",
            "-days",
            "1",
        ])
        .output()
        .unwrap();
    assert!(pem.status.success());
    let other_ca = temp_file("other-ca.crt", &String::from_utf8(pem.stdout).unwrap());
    let text = fs::read_to_string(&cp.kubeconfig).unwrap();
    let ca = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority: "))
        .unwrap()
        .trim();
    let bad = kubeconfig_with(cp, "other-ca", ca, other_ca.to_str().unwrap());
    let out = run(&["status", "--kubeconfig", bad.to_str().unwrap()]);
    fails(&out, 1, "cannot reach the API server at");
    let err = stderr_of(&out);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn an_unreachable_server_is_named() {
    let cp = ControlPlane::shared();
    let bad = kubeconfig_with(cp, "unreachable", &server_url(cp), "https://127.0.0.1:1");
    fails(
        &run(&["status", "--kubeconfig", bad.to_str().unwrap()]),
        1,
        "cannot reach the API server at https://127.0.0.1:1/: Connection refused",
    );
}

#[test]
fn a_server_that_never_answers_times_out() {
    let cp = ControlPlane::shared();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections and reads, but never says a word.
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = [0u8; 1024];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let bad = kubeconfig_with(
        cp,
        "silent",
        &server_url(cp),
        &format!("https://127.0.0.1:{port}"),
    );
    let started = Instant::now();
    let out = run(&[
        "status",
        "--kubeconfig",
        bad.to_str().unwrap(),
        "--request-timeout",
        "1s",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The flag that was set is the one named (the connection's bound and the request's, both 1s,
    // race; either says so).
    fails(&out, 1, "error: ");
    let err = stderr_of(&out);
    assert!(
        err.contains("within 1s (TCP connect and TLS handshake; --request-timeout)")
            || err.contains("no complete answer within --request-timeout 1s"),
        "{err}"
    );
}

#[test]
fn a_server_without_the_servicecidr_api_is_explained() {
    let cp = ControlPlane::shared();
    // etcd's client port is a real HTTP server on loopback that serves no Kubernetes API at all.
    let env = fs::read_to_string(cp.dir.join("env")).unwrap();
    let port = env
        .lines()
        .find_map(|l| l.strip_prefix("export ETCD_CLIENT_PORT="))
        .unwrap()
        .trim();
    let bad = kubeconfig_with(
        cp,
        "no-api",
        &server_url(cp),
        &format!("http://127.0.0.1:{port}"),
    );
    fails(
        &run(&["status", "--kubeconfig", bad.to_str().unwrap()]),
        1,
        "error: the server does not serve the ServiceCIDR API: it needs networking.k8s.io/v1 (Kubernetes 1.33+) or v1beta1",
    );
}

#[test]
fn a_user_without_rights_is_told_what_is_forbidden() {
    let cp = ControlPlane::shared();
    // This test binary never binds the viewer, so it may read nothing.
    for cmd in ["status", "orphans"] {
        fails(
            &cp.plugin_as_viewer(&[cmd]),
            1,
            "is forbidden: User \"viewer\" cannot list resource",
        );
    }
}

#[test]
fn unknown_and_malformed_names_change_nothing() {
    let cp = ControlPlane::shared();
    let name = unique_name("keep");
    cp.create_service_cidr(&name, &[&cp.next_v4_block()]);
    let before = cp.get(&format!("servicecidr/{name}")).unwrap();
    fails(
        &cp.plugin(&["delete", "no-such-range", "--wait"]),
        1,
        r#"error: servicecidr "no-such-range" not found"#,
    );
    let out = cp.plugin(&["delete", "Bad_Name!"]);
    assert_eq!(code(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("a name may hold only lower-case letters, digits, '-' and '.'"),
        "{}",
        stderr_of(&out)
    );
    fails(
        &cp.plugin(&["status", "no-such-range"]),
        1,
        r#"error: servicecidr "no-such-range" not found"#,
    );
    let unchanged = cp.get(&format!("servicecidr/{name}")).unwrap();
    assert_eq!(
        unchanged["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    let out = cp.plugin(&[
        "delete",
        &name,
        "no-such-range",
        "--wait=false",
        "-o",
        "json",
    ]);
    assert_eq!(
        code(&out),
        1,
        "one failure among several names is an error: {}",
        stderr_of(&out)
    );
    let after = cp.get(&format!("servicecidr/{name}")).unwrap();
    assert!(
        after["metadata"]["deletionTimestamp"].is_string(),
        "the good name is still handled"
    );
}

#[test]
fn tokens_and_client_keys_never_reach_the_output_at_any_verbosity() {
    let cp = ControlPlane::shared();
    let env = fs::read_to_string(cp.dir.join("env")).unwrap();
    let mut secrets: Vec<String> = env
        .lines()
        .filter_map(|l| l.strip_prefix("export ").and_then(|l| l.split_once('=')))
        .filter(|(k, _)| k.ends_with("TOKEN"))
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    assert_eq!(secrets.len(), 4, "admin, viewer, operator and migrator");
    // The client key of the cert-admin user: as embedded in the kubeconfig, and its PEM lines.
    let kubeconfig = fs::read_to_string(&cp.kubeconfig).unwrap();
    secrets.extend(
        kubeconfig
            .lines()
            .filter_map(|l| l.trim().strip_prefix("client-key-data: "))
            .map(str::to_owned),
    );
    let key = fs::read_to_string(cp.dir.join("pki/client.key")).unwrap();
    secrets.extend(
        key.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    assert!(secrets.len() >= 5, "{secrets:?}");
    for args in [
        &["status", "-v"][..],
        &["orphans", "-vv"],
        &["status", "--context", "viewer", "-vv"],
        &["status", "--context", "cert-admin", "-vv"],
    ] {
        let out = cp.plugin(args);
        let all = format!("{}{}", stdout_of(&out), stderr_of(&out));
        if args.contains(&"cert-admin") {
            assert_eq!(code(&out), 0, "the client certificate is accepted: {all}");
        }
        assert!(
            all.contains("GET") || all.contains("requesting"),
            "-v logs requests: {all}"
        );
        for secret in &secrets {
            assert!(!all.contains(secret), "a secret leaked with {args:?}");
        }
    }
}

/// Secrets planted wherever a kubeconfig can hold them outside a token: a user:password in the
/// server URL, an exec plugin's environment, arguments and output, an auth-provider's command
/// arguments. Every command path that meets them, at every verbosity, on success and on error,
/// prints none of them (kubectl redacts them all).
#[test]
fn no_credential_from_a_url_an_exec_plugin_or_an_auth_provider_reaches_the_output() {
    let cp = ControlPlane::shared();
    let server = server_url(cp);
    let ca = cp.dir.join("pki/ca.crt");
    let plugin = temp_file(
        "leaky-plugin.sh",
        "#!/bin/sh\necho \"token=OUTSECRET-stdout $EXEC_ENV_SECRET $1\"\necho \"password=OUTSECRET-stderr\" >&2\nexit 1\n",
    );
    fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let token = fs::read_to_string(cp.dir.join("env"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("export ADMIN_TOKEN="))
        .unwrap()
        .trim()
        .to_owned();
    let with_password = server.replacen("https://", "https://someone:URLSECRET-pw@", 1);
    let kubeconfig = temp_file(
        "leaky-kubeconfig",
        &format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: plain
  cluster: {{server: "{server}", certificate-authority: "{ca}"}}
- name: with-password
  cluster: {{server: "{with_password}", certificate-authority: "{ca}"}}
users:
- name: admin
  user: {{token: "{token}"}}
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: "{plugin}"
      args: ["ARGSECRET-arg"]
      env: [{{name: EXEC_ENV_SECRET, value: "ENVSECRET-env"}}]
      interactiveMode: Never
- name: gcp
  user:
    auth-provider:
      name: gcp
      config: {{cmd-path: "{plugin}", cmd-args: "ARGSECRET-gcp", token-key: "{{.token}}"}}
contexts:
- {{name: url-password, context: {{cluster: with-password, user: admin}}}}
- {{name: exec, context: {{cluster: plain, user: exec}}}}
- {{name: gcp, context: {{cluster: plain, user: gcp}}}}
current-context: url-password
"#,
            ca = ca.display(),
            plugin = plugin.display()
        ),
    );
    let kc = kubeconfig.to_str().unwrap();
    let secrets = ["URLSECRET", "ENVSECRET", "ARGSECRET", "OUTSECRET"];
    for context in ["url-password", "exec", "gcp"] {
        for verbosity in [&[][..], &["-v"], &["-vv"]] {
            for command in [&["status"][..], &["orphans", "-o", "json"]] {
                let mut args = vec!["--kubeconfig", kc, "--context", context];
                args.extend(command);
                args.extend(verbosity);
                let out = run(&args);
                let all = format!("{}{}", stdout_of(&out), stderr_of(&out));
                for secret in secrets {
                    assert!(!all.contains(secret), "{secret} leaked: {args:?}\n{all}");
                }
                if context != "url-password" {
                    assert_eq!(code(&out), 1, "{args:?}: {all}");
                    assert!(all.contains("cannot get credentials"), "{args:?}: {all}");
                }
            }
        }
    }
    // Many clusters at once: each one's server is shown without its password (dropped before the
    // connection is made: nothing sends it).
    let out = run(&["--kubeconfig", kc, "status", "--all-contexts", "-o", "json"]);
    let all = format!("{}{}", stdout_of(&out), stderr_of(&out));
    for secret in secrets {
        assert!(
            !all.contains(secret),
            "{secret} leaked by fleet JSON:\n{all}"
        );
    }
    assert!(all.contains(&format!("\"server\": \"{server}")), "{all}");
}

/// Whether a process has ended (gone, or a zombie waiting to be reaped).
fn ended(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// An exec credential plugin is a wait like any other: one that never returns fails the command
/// within --request-timeout, alone and as one context of many, and is killed with what it started.
#[test]
fn a_credential_plugin_that_never_returns_is_bounded_by_the_request_timeout() {
    let pids = temp_file("hanging-plugin.pids", "");
    let plugin = temp_file(
        "hanging-plugin.sh",
        &format!(
            "#!/bin/sh\necho $$ >> {0}\nsleep 120 &\necho $! >> {0}\nwait\n",
            pids.display()
        ),
    );
    fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let kubeconfig = temp_file(
        "hanging-kubeconfig",
        &format!(
            r#"apiVersion: v1
kind: Config
clusters:
- {{name: c, cluster: {{server: "https://127.0.0.1:1"}}}}
users:
- name: u
  user:
    exec: {{apiVersion: client.authentication.k8s.io/v1, command: "{}", interactiveMode: Never}}
contexts:
- {{name: hangs, context: {{cluster: c, user: u}}}}
current-context: hangs
"#,
            plugin.display()
        ),
    );
    let kc = kubeconfig.to_str().unwrap();
    let started = std::time::Instant::now();
    let out = run(&["--kubeconfig", kc, "status", "--request-timeout", "2s"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    fails(
        &out,
        1,
        "error: the credential plugin of the kubeconfig gave no credentials within 2s (--request-timeout bounds it)",
    );
    let started = std::time::Instant::now();
    let out = run(&[
        "--kubeconfig",
        kc,
        "status",
        "--all-contexts",
        "--request-timeout",
        "2s",
        "-o",
        "json",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code(&out), 1, "{}", stderr_of(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["contexts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("gave no credentials within 2s"),
        "{doc:#}"
    );
    let started = fs::read_to_string(&pids).unwrap();
    assert_eq!(started.lines().count(), 4, "{started}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !started.lines().all(ended) {
        assert!(
            std::time::Instant::now() < deadline,
            "plugin processes left running: {started}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A kubeconfig that sends the cluster through a proxy is refused, not connected around the
/// proxy, and the proxy's credentials are not printed.
#[test]
fn a_proxy_url_is_refused_rather_than_bypassed() {
    let cp = ControlPlane::shared();
    let kubeconfig = kubeconfig_with(
        cp,
        "proxied-kubeconfig",
        "    server: ",
        "    proxy-url: http://someone:PROXYSECRET@127.0.0.1:3128\n    server: ",
    );
    let out = run(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "status",
        "-vv",
    ]);
    fails(
        &out,
        1,
        "error: the kubeconfig (proxy-url) sends this cluster through the proxy http://127.0.0.1:3128, which kubectl-servicecidr does not do yet",
    );
    assert!(!stderr_of(&out).contains("PROXYSECRET"));
    // HTTPS_PROXY as kubectl reads it: used for a server by name, not for loopback or NO_PROXY.
    let by_name = kubeconfig_with(
        cp,
        "by-name-kubeconfig",
        "https://127.0.0.1:",
        "https://k8s.invalid:",
    );
    let with_env = |no_proxy: &str| {
        Command::new(PLUGIN)
            .args([
                "--kubeconfig",
                by_name.to_str().unwrap(),
                "status",
                "--request-timeout",
                "2s",
            ])
            .env("HTTPS_PROXY", "http://someone:PROXYSECRET@127.0.0.1:3128")
            .env("NO_PROXY", no_proxy)
            .output()
            .unwrap()
    };
    let out = with_env("");
    fails(
        &out,
        1,
        "error: the environment (HTTPS_PROXY or HTTP_PROXY) sends this cluster through the proxy http://127.0.0.1:3128, which kubectl-servicecidr does not do yet",
    );
    assert!(!stderr_of(&out).contains("PROXYSECRET"));
    // Exempted, it is connected to directly (and the name does not resolve).
    let out = with_env(".invalid");
    assert!(!stderr_of(&out).contains("proxy"), "{}", stderr_of(&out));
    let out = run(&["--kubeconfig", cp.kubeconfig.to_str().unwrap(), "status"]);
    assert_eq!(
        code(&out),
        0,
        "loopback is never proxied: {}",
        stderr_of(&out)
    );
}
