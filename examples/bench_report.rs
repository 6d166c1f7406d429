//! The report writer behind `scripts/bench.sh`: turns the numbers a run left in its results
//! directory into BENCHMARKS.md, keeping the sections written by hand or by the other bench
//! scripts, and prints a short summary.
//!
//!   cargo run --release --example bench_report -- RESULTS_DIR OUT
//!
//! RESULTS_DIR holds (the script writes them; a missing optional file leaves its table saying so):
//! - `facts.tsv`: `key<TAB>value` lines (versions, machine, settings, seeding, pids, and
//!   `criterion_dir`, criterion's output directory, empty when it did not run);
//! - `rows.tsv`: one line per timed command from `examples/measure.rs`, prefixed by its key;
//! - `floor-GROUP.tsv`: the warm keep-alive floor's runs (`examples/floor.rs`, first column, ms);
//! - `orphans.txt`: what `orphans` printed on the seeded cluster;
//! - `lists.tsv`: one run of `examples/floor.rs --lists`;
//! - `status-v.log`: `status -v`, each line prefixed by the nanosecond it arrived;
//! - optional: `perf-stat.csv` (`perf stat -x,`),
//!   `strace.txt` (`strace -c`), `perf-pids.txt` and `perf-script.txt` (`perf script -F pid`),
//!   `perf-report.txt` (`perf report --stdio`).
//!
//! Sections of OUT between `<!-- NAME:start -->` and `<!-- NAME:end -->` (analysis, scale, fleet)
//! are carried over as they are.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The commands of the read table, in order, with their labels. A `_kubectl` key is followed in the
/// table by the two floors of its group.
const READS: [(&str, &str); 6] = [
    ("status_ours", "`kubectl-servicecidr status`"),
    ("status_ours_json", "`kubectl-servicecidr status -o json`"),
    (
        "status_ours_500",
        "`kubectl-servicecidr status --chunk-size 500` (kubectl's page size)",
    ),
    (
        "status_kubectl",
        "`kubectl get servicecidrs,ipaddresses -o json`",
    ),
    ("orphans_ours", "`kubectl-servicecidr orphans`"),
    (
        "orphans_kubectl",
        "`kubectl get servicecidrs,ipaddresses,services -A -o json`",
    ),
];
const KEEPALIVE: &str =
    "keep-alive floor: the same JSON pages of 500, not parsed (`examples/floor.rs`)";
const KEEPALIVE_NEW: &str =
    "the same floor as a process per run (start-up, kubeconfig, TLS handshakes), as a command pays";
const DELETES: [(&str, &str); 2] = [
    ("delete_ctrl", "`delete --wait` (controller running)"),
    (
        "delete_noctrl",
        "`delete --wait --remove-finalizer` (controller stopped)",
    ),
];

/// One timed command: wall times in ms, CPU in ms (NaN when not measured), peak RSS as printed.
struct Row {
    median: f64,
    min: f64,
    max: f64,
    user: f64,
    sys: f64,
    server: f64,
    rss: String,
}

struct Run {
    dir: PathBuf,
    facts: HashMap<String, String>,
    rows: HashMap<String, Row>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out] = args.as_slice() else {
        bail!("usage: bench_report RESULTS_DIR OUT");
    };
    let run = Run::load(Path::new(dir))?;
    let out = Path::new(out);
    let old = fs::read_to_string(out).unwrap_or_default();
    let text = run.report(&old)?;
    let tmp = out.with_extension("md.tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, out).with_context(|| format!("replacing {}", out.display()))?;
    print!("{}", run.summary());
    eprintln!("bench: wrote {}", out.display());
    Ok(())
}

fn num(s: &str) -> f64 {
    s.trim().parse().unwrap_or(f64::NAN)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A wall time for a table: a dash when not measured.
fn ms(x: f64) -> String {
    match x {
        x if x.is_nan() => "—".into(),
        x if x >= 100.0 => format!("{x:.0} ms"),
        x => format!("{x:.1} ms"),
    }
}

/// A criterion estimate (ns), two decimals in the unit that fits, as criterion prints them.
fn duration_ns(ns: f64) -> String {
    let round = |x: f64, places: i32| {
        let f = 10f64.powi(places);
        (x * f).round() / f
    };
    if ns >= 1e6 {
        format!("{} ms", round(ns / 1e6, 2))
    } else if ns >= 1e3 {
        format!("{} µs", round(ns / 1e3, 2))
    } else {
        format!("{} ns", round(ns, 1))
    }
}

impl Run {
    fn load(dir: &Path) -> Result<Run> {
        let facts = read_tsv(&dir.join("facts.tsv"))?
            .into_iter()
            .filter_map(|f| Some((f.first()?.clone(), f.get(1).cloned().unwrap_or_default())))
            .collect();
        let mut rows = HashMap::new();
        for f in read_tsv(&dir.join("rows.tsv"))? {
            let [key, median, min, max, _mean, _sd, user, sys, server, rss] = f.as_slice() else {
                bail!("rows.tsv: a line with {} fields, not 10", f.len());
            };
            let row = Row {
                median: num(median),
                min: num(min),
                max: num(max),
                user: num(user),
                sys: num(sys),
                server: num(server),
                rss: rss.clone(),
            };
            rows.insert(key.clone(), row);
        }
        let mut run = Run {
            dir: dir.to_path_buf(),
            facts,
            rows,
        };
        for group in ["status", "orphans"] {
            let path = dir.join(format!("floor-{group}.tsv"));
            let mut values: Vec<f64> = read_tsv(&path)?.iter().map(|f| num(&f[0])).collect();
            values.retain(|v| !v.is_nan());
            if values.is_empty() {
                bail!("{}: no runs", path.display());
            }
            let row = Row {
                median: median(&mut values),
                min: values[0],
                max: values[values.len() - 1],
                user: f64::NAN,
                sys: f64::NAN,
                server: f64::NAN,
                rss: "nan".into(),
            };
            run.rows.insert(format!("{group}_keepalive"), row);
        }
        Ok(run)
    }

    fn fact(&self, key: &str) -> &str {
        self.facts.get(key).map_or("?", String::as_str)
    }

    fn file(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.dir.join(name)).ok()
    }

    fn row(&self, key: &str) -> Result<&Row> {
        self.rows
            .get(key)
            .with_context(|| format!("rows.tsv has no row for {key}"))
    }

    fn ratio(&self, key: &str, base: &str) -> String {
        match (self.rows.get(key), self.rows.get(base)) {
            (Some(a), Some(b)) => format!("{:.2}×", a.median / b.median),
            _ => "—".into(),
        }
    }

    /// Wall time beyond the grace period, in seconds.
    fn overhead(&self, key: &str) -> String {
        let grace: f64 = num(self.fact("grace_s"));
        self.rows.get(key).map_or("?".into(), |r| {
            format!("{:.2} s", r.median / 1000.0 - grace)
        })
    }

    /// The read table's keys in order, each with the bases its ratios compare it to.
    fn read_rows(&self) -> Vec<(String, &'static str, [Option<String>; 3])> {
        let mut out = Vec::new();
        for (key, label) in READS {
            let group = key.split('_').next().unwrap_or(key);
            let floors = [
                format!("{group}_keepalive"),
                format!("{group}_keepalive_new"),
            ];
            if key.ends_with("_kubectl") {
                out.push((
                    key.to_string(),
                    label,
                    [None, Some(floors[0].clone()), Some(floors[1].clone())],
                ));
                out.push((floors[0].clone(), KEEPALIVE, [None, None, None]));
                out.push((floors[1].clone(), KEEPALIVE_NEW, [None, None, None]));
            } else {
                let bases = [
                    Some(format!("{group}_kubectl")),
                    Some(floors[0].clone()),
                    Some(floors[1].clone()),
                ];
                out.push((key.to_string(), label, bases));
            }
        }
        out
    }

    fn read_table(&self) -> Result<String> {
        let mut out = String::new();
        for (key, label, bases) in self.read_rows() {
            let r = self.row(&key)?;
            let cpu = if r.user.is_nan() {
                "—".into()
            } else {
                format!("{:.0} + {:.0} ms", r.user, r.sys)
            };
            let rss = if num(&r.rss).is_nan() {
                "—".into()
            } else {
                format!("{} MiB", r.rss)
            };
            let ratios: Vec<String> = bases
                .iter()
                .map(|b| b.as_ref().map_or("—".into(), |b| self.ratio(&key, b)))
                .collect();
            writeln!(
                out,
                "| {label} | {} | {} – {} | {cpu} | {} | {rss} | {} |",
                ms(r.median),
                ms(r.min),
                ms(r.max),
                ms(r.server),
                ratios.join(" | ")
            )?;
        }
        Ok(out.trim_end().into())
    }

    fn delete_table(&self) -> Result<String> {
        let mut out = String::new();
        for (key, label) in DELETES {
            let r = self.row(key)?;
            writeln!(
                out,
                "| {label} | {} | {} – {} | {} |",
                ms(r.median),
                ms(r.min),
                ms(r.max),
                self.overhead(key)
            )?;
        }
        Ok(out.trim_end().into())
    }

    fn criterion_table(&self) -> Result<String> {
        let root = self.fact("criterion_dir");
        if root.is_empty() {
            return Ok("| (skipped: BENCH_CRITERION=0) | | | | |".into());
        }
        let group = Path::new(root).join("audit_100k_ips_1k_ranges");
        let mut names: Vec<String> = fs::read_dir(&group)
            .with_context(|| format!("reading {}", group.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| group.join(name).join("new/estimates.json").is_file())
            .collect();
        names.sort();
        let mut out = String::new();
        for name in names {
            let read = |file: &str| -> Result<serde_json::Value> {
                let path = group.join(&name).join("new").join(file);
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(serde_json::from_str(&text)?)
            };
            let estimates = read("estimates.json")?;
            let elements = read("benchmark.json")?["throughput"]["Elements"]
                .as_f64()
                .unwrap_or(0.0);
            let e = if estimates["slope"].is_object() {
                &estimates["slope"]
            } else {
                &estimates["mean"]
            };
            let at = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
            let point = at(&e["point_estimate"]);
            let per = if elements > 0.0 {
                duration_ns(point / elements)
            } else {
                String::new()
            };
            writeln!(
                out,
                "| `{name}` | {} | {} – {} | {elements} | {per} |",
                duration_ns(point),
                duration_ns(at(&e["confidence_interval"]["lower_bound"])),
                duration_ns(at(&e["confidence_interval"]["upper_bound"])),
            )?;
        }
        Ok(out.trim_end().into())
    }

    /// Per-list timings from `floor --lists`: `list PATH PAGES BYTES FIRST_MS REST_MS`.
    fn lists_table(&self) -> Result<String> {
        let mut out = String::new();
        for f in read_tsv(&self.dir.join("lists.tsv"))? {
            let [kind, path, pages, bytes, first, rest] = f.as_slice() else {
                continue;
            };
            if kind != "list" {
                continue;
            }
            let (pages, first, rest) = (num(pages), num(first), num(rest));
            writeln!(
                out,
                "| `{path}` | {pages} | {:.1} MiB | {first:.0} ms | {rest:.0} ms | {:.1} ms |",
                num(bytes) / 1_048_576.0,
                (first + rest) / pages
            )?;
        }
        Ok(out.trim_end().into())
    }

    /// Phases of `status -v` from its time-stamped request log.
    fn timeline(&self) -> Result<String> {
        let log = self
            .file("status-v.log")
            .context("status-v.log is missing")?;
        let t0 = num(self.fact("v_t0"));
        let end = (num(self.fact("v_t1")) - t0) / 1e6;
        let events: Vec<(f64, String)> = log
            .lines()
            .filter_map(|l| {
                let (t, rest) = l.split_once(' ')?;
                Some(((num(t) - t0) / 1e6, strip_ansi(rest).trim().to_string()))
            })
            .collect();
        let first = |p: &dyn Fn(&str) -> bool| events.iter().find(|(_, l)| p(l)).map(|e| e.0);
        let page = |l: &str| l.contains("list ipaddresses: page read");
        let disc_req = first(&|l| l.contains("GET ") && l.ends_with("/apis/networking.k8s.io/v1"));
        let disc_resp = first(&|l| l.contains("discover the networking.k8s.io API: "));
        let ip_req = first(&|l| l.contains("GET ") && l.contains("/ipaddresses?"));
        let ip_resp = first(&page);
        let last_resp = events.iter().rev().find(|(_, l)| page(l)).map(|e| e.0);
        let pages = events.iter().filter(|(_, l)| page(l)).count();
        let d = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0} ms", b - a),
            _ => "?".into(),
        };
        let first_req = [disc_req, ip_req].into_iter().flatten().reduce(f64::min);
        Ok([
            format!(
                "| process start to the first request (config, client) | {} |",
                d(Some(0.0), first_req)
            ),
            format!(
                "| API discovery (`/apis/networking.k8s.io/v1`), beside the first lists | {} |",
                d(disc_req, disc_resp)
            ),
            format!(
                "| first IPAddress page, read whole (new connection) | {} |",
                d(ip_req, ip_resp)
            ),
            format!(
                "| the other {} IPAddress pages (ServiceCIDRs alongside) | {} |",
                pages.saturating_sub(1),
                d(ip_resp, last_resp)
            ),
            format!(
                "| after the last page: audit, render, exit | {} |",
                d(last_resp, Some(end))
            ),
            format!("| **total** | {} |", d(Some(0.0), Some(end))),
        ]
        .join("\n"))
    }

    /// Context switches and the like (`perf stat -x,`), then the top syscalls (`strace -c`).
    fn kernel_table(&self) -> String {
        let mut rows = Vec::new();
        for line in self.file("perf-stat.csv").unwrap_or_default().lines() {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() > 2 && !f[2].is_empty() && !num(f[0]).is_nan() {
                rows.push(format!("| {} | {} {} |", f[2], f[0], f[1]));
            }
        }
        // strace -c: a header, a line of dashes, one row per syscall (the slowest first), dashes,
        // the total. A row is `% time, seconds, usecs/call, calls, [errors,] syscall`.
        let strace = self.file("strace.txt").unwrap_or_default();
        let syscalls = strace
            .lines()
            .skip_while(|l| !l.starts_with('-'))
            .skip(1)
            .take_while(|l| !l.starts_with('-'))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() >= 5)
            .take(6)
            .map(|f| {
                format!(
                    "| syscall `{}` | {} calls, {:.0} ms |",
                    f[f.len() - 1],
                    f[3],
                    num(f[1]) * 1000.0
                )
            });
        rows.extend(syscalls);
        if rows.is_empty() {
            return "| (neither perf nor strace available) | |".into();
        }
        rows.join("\n")
    }

    /// Who took the machine's CPU samples, then the plugin's hottest symbols.
    fn perf_section(&self) -> String {
        let (Some(pids), Some(script), Some(report)) = (
            self.file("perf-pids.txt"),
            self.file("perf-script.txt"),
            self.file("perf-report.txt"),
        ) else {
            return "perf was not usable here (or BENCH_PERF=0): see the phases above.".into();
        };
        let plugin: Vec<&str> = pids.split_whitespace().collect();
        let mut shares: BTreeMap<&str, u64> = BTreeMap::new();
        let mut total = 0;
        for pid in script.split_whitespace() {
            total += 1;
            let who = if plugin.contains(&pid) {
                "kubectl-servicecidr (the 10 runs)"
            } else if pid == self.fact("apiserver_pid") {
                "kube-apiserver"
            } else if pid == self.fact("etcd_pid") {
                "etcd"
            } else if pid == self.fact("kcm_pid") {
                "kube-controller-manager"
            } else if pid == "0" {
                "idle"
            } else {
                "anything else on the machine"
            };
            *shares.entry(who).or_default() += 1;
        }
        let mut shares: Vec<(&str, u64)> = shares.into_iter().collect();
        shares.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        let by_proc: Vec<String> = shares
            .iter()
            .map(|(who, n)| format!("| {who} | {:.1}% |", *n as f64 * 100.0 / total as f64))
            .collect();
        let by_sym: Vec<String> = report
            .lines()
            .filter_map(|line| {
                // Entries are indented and start with their share; comments and headers do not.
                if !line.starts_with(' ') {
                    return None;
                }
                let mut f = line.split_whitespace();
                let share = f
                    .next()
                    .filter(|s| s.strip_suffix('%').is_some_and(|n| !num(n).is_nan()))?;
                let dso = f.next()?;
                let rest: Vec<&str> = f.collect();
                let rest = rest.join(" ");
                let sym = rest
                    .strip_prefix("[.] ")
                    .or_else(|| rest.strip_prefix("[k] "))
                    .or_else(|| rest.strip_prefix("[g] "))
                    .unwrap_or(&rest);
                let sym = if sym.chars().count() > 100 {
                    format!("{}...", sym.chars().take(97).collect::<String>())
                } else {
                    sym.to_string()
                };
                Some(format!(
                    "| {share} | {dso} | `{}` |",
                    sym.replace('|', "\\|")
                ))
            })
            .collect();
        format!(
            "`perf record -F 999` over {} while `status` runs 10 times (an unstripped
build of the same code, `target/profiling`). Share of all CPU samples (2 CPUs; *idle* is unused
capacity):

| where | share of samples |
|---|---:|
{}

Inside the plugin's processes (self time, share of the plugin's samples; entries over 1.5%):

| share | binary | symbol |
|---:|---|---|
{}",
            self.fact("perf_scope"),
            by_proc.join("\n"),
            by_sym.join("\n")
        )
    }

    fn report(&self, old: &str) -> Result<String> {
        let f = |k: &str| self.fact(k);
        let n = f("n");
        let orphans: String = self
            .file("orphans.txt")
            .unwrap_or_default()
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let section = |name: &str, placeholder: &str| {
            section(old, name).unwrap_or_else(|| placeholder.to_string())
        };
        let (grace, delete_runs) = (f("grace_s"), f("delete_runs"));
        Ok(format!(
            "# Benchmarks

Generated by `scripts/bench.sh {n}` on {date} (UTC). Re-run it to refresh every number
here; only the *Analysis* section is written by hand.

- **Machine:** {cores} cores ({cpu}), {mem} GiB RAM, {kernel}
- **Cluster:** local control plane from `scripts/controlplane.sh` (everything on 127.0.0.1, etcd
  with `--unsafe-no-fsync`): kube-apiserver {server_v}, etcd {etcd_v}, kubectl {kubectl_v}
- **Plugin:** {plugin_v} (release build), {rustc_v}
- **Timer:** `examples/measure.rs` (no shell; CPU and peak RSS from `wait4`, as `/usr/bin/time`
  gets them); {runs} runs after {warmup} warm-up runs per command; every column comes from the same
  runs; peak RSS is the median of the largest single process of the command
- **Data:** N = {n} IPAddresses ({ip_count} objects in the cluster, with the default
  `kubernetes` Service's), seeded by `examples/seed.rs`: 20 ServiceCIDRs (10 dual-stack), Services
  with explicit clusterIPs (one in three in dual-stack ranges is dual-stack), 1% orphaned
  (their range deleted with its finalizer stripped). `orphans` finds:
```
{orphans}
```
- **Seeding:** {seed} (wall time including setup: {seed_s} s)

## Reading the cluster

Median wall time of one invocation. *Client CPU* is user and system time of the command's processes;
*server CPU* is kube-apiserver + etcd CPU time per invocation (idle background of {idle} ms/s
subtracted). Ratios compare medians (below 1 is faster than the reference).

| command | median | min – max | client CPU (user + sys) | server CPU | peak RSS | ÷ kubectl | ÷ keep-alive floor | ÷ floor as a process |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{reads}

kubectl and the keep-alive floor use pages of 500 (kubectl's default `--chunk-size`,
`limit=500`); the plugin uses its own default of 5,000 (`cluster::DEFAULT_CHUNK_SIZE`), except in
the `--chunk-size 500` row, which shows what the page size alone is worth. The *keep-alive floor*
is what any client that reads JSON pages of 500 one after another must wait for: one connection per
list, the lists in parallel, each body read to its end and not parsed, timed inside the process.
The *floor as a process* is that client run once per process and timed as the commands are: process
start, kubeconfig, connections and TLS handshakes, then the same pages.
kubectl reads its discovery cache from a warm `--cache-dir`. The floor parses nothing, so its
time is the server's answer; *server CPU* shows what the server spends on each command.

## delete --wait of an empty range

{delete_runs} runs each; before each run the range is created with the controller running (so it carries
the finalizer and is Ready), untimed. The plugin waits out a {grace} s grace period after the
deletionTimestamp before anything can release the range, so *overhead* is wall time minus {grace} s.
With the controller running, the controller releases the range: it counts its own {grace} s from
the deletionTimestamp, which has one-second resolution, so it can finish up to a second early
(a negative overhead); the plugin only watches it go. Without the controller, the plugin checks
every IPAddress again and removes the finalizer itself.

| scenario | median | min – max | overhead (median) |
|---|---:|---:|---:|
{deletes}

## Pure audit (criterion)

`cargo bench --bench audit`: 100,000 IPAddresses × 1,000 ServiceCIDRs (mixed IPv4/IPv6, nested
and overlapping, 1% orphans, ~97,000 Services), built deterministically in `benches/audit.rs`. Run
before the control plane started.

| benchmark | estimate | 95% CI | elements | per element |
|---|---:|---:|---:|---:|
{criterion}

## Where the time goes (`status`, N = {n})

Per-list timings of one run of the warm keep-alive floor (JSON pages of 500, the three lists in
parallel). The apiserver streams list pages, encoding items as it sends them, so its work is
*to first byte* plus most of *rest of the body*:

| list | pages | bytes | Σ to first byte | Σ rest of the body | per page (first byte + rest) |
|---|---:|---:|---:|---:|---:|
{lists}

Phases of one `kubectl-servicecidr status -v` run, from its request log (lines time-stamped as
they arrive on a pipe; a request ends when its log span closes; -v itself adds a little):

| phase | time |
|---|---:|
{timeline}

One `status` run seen from the kernel (`perf stat -r 5` averages; syscalls from one
`strace -c -f` run, top 6 by time, which strace itself slows down):

| measure | value |
|---|---:|
{kstats}

{perf}

## Analysis

<!-- analysis:start -->
{analysis}
<!-- analysis:end -->

## The scale curve

<!-- scale:start -->
{scale}
<!-- scale:end -->

## Many clusters

<!-- fleet:start -->
{fleet}
<!-- fleet:end -->
",
            date = f("date"),
            cores = f("cores"),
            cpu = f("cpu"),
            mem = f("mem_gib"),
            kernel = f("kernel"),
            server_v = f("server_v"),
            etcd_v = f("etcd_v"),
            kubectl_v = f("kubectl_v"),
            plugin_v = f("plugin_v"),
            rustc_v = f("rustc_v"),
            runs = f("runs"),
            warmup = f("warmup"),
            ip_count = f("ip_count"),
            seed = f("seed_summary"),
            seed_s = f("seed_s"),
            idle = f("idle"),
            reads = self.read_table()?,
            deletes = self.delete_table()?,
            criterion = self.criterion_table()?,
            lists = self.lists_table()?,
            timeline = self.timeline()?,
            kstats = self.kernel_table(),
            perf = self.perf_section(),
            analysis = section(
                "analysis",
                "(Reading of the numbers: edit this section by hand; scripts/bench.sh keeps it when it rewrites the file.)"
            ),
            scale = section("scale", "(Run scripts/bench-scale.sh.)"),
            fleet = section("fleet", "(Run scripts/bench-fleet.sh.)"),
        ))
    }

    /// What the script prints when it is done.
    fn summary(&self) -> String {
        let mut out = format!(
            "\nN={} IPAddresses ({} in the cluster)\n",
            self.fact("n"),
            self.fact("ip_count")
        );
        for (key, label) in READS {
            if let Some(r) = self.rows.get(key) {
                let _ = writeln!(
                    out,
                    "  {label:<62} median {:>10}  (min {}, max {})",
                    ms(r.median),
                    ms(r.min),
                    ms(r.max)
                );
            }
        }
        for g in ["status", "orphans"] {
            let _ = writeln!(
                out,
                "  {g}: ours/kubectl {}, ours/keep-alive floor {} ({} as a process)",
                self.ratio(&format!("{g}_ours"), &format!("{g}_kubectl")),
                self.ratio(&format!("{g}_ours"), &format!("{g}_keepalive")),
                self.ratio(&format!("{g}_ours"), &format!("{g}_keepalive_new")),
            );
        }
        for (key, label) in DELETES {
            let _ = writeln!(
                out,
                "  {label}: {} over the {} s grace (median)",
                self.overhead(key),
                self.fact("grace_s")
            );
        }
        out
    }
}

/// Tab-separated fields of each non-empty line; a missing file is an error.
fn read_tsv(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect())
}

/// The text between `<!-- NAME:start -->` and `<!-- NAME:end -->`, without the marker lines.
fn section(text: &str, name: &str) -> Option<String> {
    let start = format!("<!-- {name}:start -->\n");
    let end = format!("\n<!-- {name}:end -->");
    let from = text.find(&start)? + start.len();
    let len = text[from..].find(&end)?;
    Some(text[from..from + len].to_string())
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, ending with a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
