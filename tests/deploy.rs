//! The exporter as users deploy it. The image `scripts/release.sh` builds runs under the real podman
//! exactly as in a Pod: a real ServiceAccount token bound by the manifests' own RBAC, `ca.crt`
//! mounted where the kubelet puts it, `KUBERNETES_SERVICE_HOST`/`_PORT`, no kubeconfig, read-only
//! root, the Deployment's command and UID. The kustomization is built by the real kubectl and
//! accepted by the real apiserver with strict validation, with the Prometheus Operator's real CRDs
//! (from the Go module proxy) for its ServiceMonitor and PrometheusRule.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::http::{get, until_ready};
use support::{ControlPlane, ok, unique_name, with_podman_settings};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TAG: &str = concat!("v", env!("CARGO_PKG_VERSION"));
const MONITORING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring");
/// Where the Prometheus Operator's CRDs come from: its module on the Go module proxy.
const OPERATOR_MODULE: &str = "github.com/prometheus-operator/prometheus-operator@v0.85.0";

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn podman(args: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    with_podman_settings(&mut cmd).args(args);
    cmd
}

/// The documents of a multi-document YAML stream.
fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {objects:?}"))
}

/// A TCP hop to `upstream` that holds every connection until opened: TLS passes through
/// untouched, so the client still verifies the apiserver against the mounted `ca.crt`.
struct Gate {
    port: u16,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    fn start(upstream: String) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let gate = open.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { break };
                let (gate, upstream) = (gate.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let (lock, cv) = &*gate;
                    drop(cv.wait_while(lock.lock().unwrap(), |open| !*open).unwrap());
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        return;
                    };
                    let (mut c2, mut s2) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = std::thread::spawn(move || std::io::copy(&mut c2, &mut s2));
                    let _ = std::io::copy(&mut { server }, &mut { client });
                    let _ = up.join();
                });
            }
        });
        Gate { port, open }
    }

    fn open(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }
}

/// `host:port` of the apiserver the kubeconfig names.
fn apiserver(cp: &ControlPlane) -> String {
    let url = cp.kubectl_ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    url.trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}

#[test]
fn the_image_runs_as_in_a_pod_with_the_manifests_rbac() {
    let cp = ControlPlane::shared();
    let out = temp_dir("image");
    ok(
        "scripts/release.sh",
        with_podman_settings(
            Command::new("bash")
                .arg(format!("{ROOT}/scripts/release.sh"))
                .arg(&out)
                .env("RELEASE_PROFILE", "dev"),
        )
        .output()
        .unwrap(),
    );
    let archive = out.join(format!("kubectl-servicecidr_{TAG}_linux_amd64.oci.tar"));

    // The reference the release gives the image is the one the Deployment runs.
    let index: Value = serde_json::from_str(&ok(
        "tar index.json",
        Command::new("tar")
            .arg("-xOf")
            .arg(&archive)
            .arg("./index.json")
            .output()
            .unwrap(),
    ))
    .unwrap();
    let reference = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap()
        .to_owned();
    let manifests =
        documents(&std::fs::read_to_string(format!("{MONITORING}/exporter.yaml")).unwrap());
    let deployment = kind(&manifests, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], reference.as_str());
    assert_eq!(
        reference,
        format!("ghcr.io/kubectl-servicecidr/kubectl-servicecidr:{TAG}")
    );

    ok(
        "podman load",
        podman(&["load", "--quiet", "--input"])
            .arg(&archive)
            .output()
            .unwrap(),
    );
    let inspect: Value = serde_json::from_str(&ok(
        "podman image inspect",
        podman(&["image", "inspect", &reference]).output().unwrap(),
    ))
    .unwrap();
    let uid = pod["securityContext"]["runAsUser"].as_i64().unwrap();
    assert_eq!(inspect[0]["Config"]["User"], format!("{uid}:{uid}"));

    // The manifests applied for real; the exporter's ServiceAccount gets a real token.
    cp.kubectl_ok(&["apply", "-k", MONITORING]);
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap();
    let account = pod["serviceAccountName"].as_str().unwrap();
    let token = cp.kubectl_ok(&["create", "token", account, "-n", namespace]);
    let secrets = temp_dir("serviceaccount");
    std::fs::write(secrets.join("token"), token.trim()).unwrap();
    std::fs::copy(cp.dir.join("pki/ca.crt"), secrets.join("ca.crt")).unwrap();
    std::fs::write(secrets.join("namespace"), namespace).unwrap();

    // The Deployment's command, on a free port of the host's network.
    let command: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().replace("0.0.0.0:9800", "127.0.0.1:0"))
        .collect();
    assert!(command.contains(&"127.0.0.1:0".to_owned()), "{command:?}");
    let gate = Gate::start(apiserver(cp));
    let name = unique_name("exporter");
    let mut run = podman(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
    ]);
    run.args(["--user", &format!("{uid}:{uid}"), "--cap-drop", "ALL"])
        .args(["--security-opt", "no-new-privileges"])
        .arg("--volume")
        .arg(format!(
            "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
            secrets.display()
        ))
        .args(["--env", "KUBERNETES_SERVICE_HOST=127.0.0.1"])
        .arg("--env")
        .arg(format!("KUBERNETES_SERVICE_PORT={}", gate.port))
        .args(["--entrypoint", &command[0], &reference])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = run.spawn().expect("cannot run podman");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("the container said {line:?}"))
        .to_owned();

    // Alive, not ready while its first list is held at the gate.
    assert_eq!(get(&addr, "/healthz").0, 200);
    assert_eq!(get(&addr, "/readyz").0, 503);
    assert_eq!(get(&addr, "/metrics").0, 503);
    gate.open();
    until_ready(&addr);
    let (status, metrics) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("servicecidr_range_capacity_addresses{servicecidr=\"kubernetes\""),
        "{metrics}"
    );

    let stopping = Instant::now();
    ok(
        "podman kill",
        podman(&["kill", "--signal", "TERM", &name])
            .output()
            .unwrap(),
    );
    let status = child.wait().unwrap();
    let took = stopping.elapsed();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert_eq!(status.code(), Some(0), "{line}{rest}");
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
}

/// `path` written relative to `from`, as kustomize wants every resource path.
fn relative(path: &str, from: &Path) -> String {
    let up = from.components().count() - 1;
    format!("{}{}", "../".repeat(up), path.trim_start_matches('/'))
}

#[test]
fn the_kustomization_is_accepted_by_the_real_apiserver_and_takes_users_settings() {
    let cp = ControlPlane::shared();
    let built = documents(&cp.kubectl_ok(&["kustomize", MONITORING]));
    let mut kinds: Vec<&str> = built.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "Service",
            "ServiceAccount"
        ]
    );
    let dashboard = std::fs::read_to_string(format!("{MONITORING}/dashboard.json")).unwrap();
    let config_map = kind(&built, "ConfigMap");
    assert_eq!(config_map["data"]["dashboard.json"], dashboard.as_str());
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    // A server dry run cannot create a namespace for the objects in it: the namespaces are made
    // for real first, everything else only validated.
    cp.ensure_namespace("servicecidr-monitoring");
    ok(
        "apply -k --dry-run=server",
        cp.kubectl(&[
            "apply",
            "-k",
            MONITORING,
            "--dry-run=server",
            "--validate=strict",
        ]),
    );

    // The operator's own CRDs, so its objects are validated against their real schemas.
    let download: Value = serde_json::from_str(&ok(
        "go mod download",
        Command::new("go")
            .args(["mod", "download", "-json", OPERATOR_MODULE])
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .env("GOFLAGS", "-mod=mod")
            .output()
            .expect("cannot run go (it builds the control plane too)"),
    ))
    .unwrap();
    let crds =
        PathBuf::from(download["Dir"].as_str().unwrap()).join("example/prometheus-operator-crd");
    for crd in ["servicemonitors", "prometheusrules"] {
        let file = crds.join(format!("monitoring.coreos.com_{crd}.yaml"));
        cp.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
        cp.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{crd}.monitoring.coreos.com"),
            "--timeout=30s",
        ]);
    }

    // A user's own kustomization: another namespace, their registry, the operator's objects.
    let overlay = temp_dir("overlay");
    let ns = unique_name("monitoring");
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {ns}\nresources:\n  - {}\ncomponents:\n  - {}\nimages:\n  - name: ghcr.io/kubectl-servicecidr/kubectl-servicecidr\n    newName: registry.example/tools/servicecidr\n    newTag: {TAG}-custom\n",
        relative(MONITORING, &overlay),
        relative(&format!("{MONITORING}/operator"), &overlay),
    );
    std::fs::write(overlay.join("kustomization.yaml"), &kustomization).unwrap();
    let text = cp.kubectl_ok(&["kustomize", overlay.to_str().unwrap()]);
    assert!(!text.contains("servicecidr-monitoring"), "{text}");
    let objects = documents(&text);
    for o in &objects {
        match o["kind"].as_str().unwrap() {
            "Namespace" => assert_eq!(o["metadata"]["name"], ns.as_str()),
            "ClusterRole" | "ClusterRoleBinding" => {}
            _ => assert_eq!(o["metadata"]["namespace"], ns.as_str(), "{o}"),
        }
    }
    assert_eq!(
        kind(&objects, "ClusterRoleBinding")["subjects"][0]["namespace"],
        ns.as_str()
    );
    assert_eq!(
        kind(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("registry.example/tools/servicecidr:{TAG}-custom")
    );
    assert!(objects.iter().any(|o| o["kind"] == "ServiceMonitor"));
    assert!(objects.iter().any(|o| o["kind"] == "PrometheusRule"));
    cp.ensure_namespace(&ns);
    ok(
        "apply -k overlay --dry-run=server",
        cp.kubectl(&[
            "apply",
            "-k",
            overlay.to_str().unwrap(),
            "--dry-run=server",
            "--validate=strict",
        ]),
    );

    // Strict validation is really on: one unknown field in the ServiceMonitor is refused.
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "{kustomization}patches:\n  - target:\n      kind: ServiceMonitor\n    patch: |\n      - op: add\n        path: /spec/endpoints/0/scrapeIntervall\n        value: 30s\n"
        ),
    )
    .unwrap();
    let refused = cp.kubectl(&[
        "apply",
        "-k",
        overlay.to_str().unwrap(),
        "--dry-run=server",
        "--validate=strict",
    ]);
    assert!(!refused.status.success());
    assert!(
        support::stderr_of(&refused).contains("scrapeIntervall"),
        "{}",
        support::stderr_of(&refused)
    );
}
