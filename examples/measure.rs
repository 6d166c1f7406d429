//! The timer behind `scripts/bench.sh`: runs one command, without a shell, WARMUP times and then
//! RUNS times, its output put aside (stderr is shown when a run fails), and prints one tab-separated
//! line:
//!
//!   median min max mean stddev (wall, ms)  user sys (mean CPU of the command's processes, ms)
//!   server (mean CPU of the --server processes per run, idle background subtracted, ms)
//!   rss (median peak RSS of the command's largest process, MiB)
//!
//!   cargo run --release --example measure -- [--runs N] [--warmup N] [--ok CODE]...
//!       [--prepare SHELL-COMMAND] [--server PID,...] [--idle MS-PER-S] -- COMMAND ARG...
//!
//! CPU and peak RSS come from `wait4` on each run, the way `/usr/bin/time` gets them, so every
//! column comes from the same runs. `--prepare` runs (through `sh -c`) before each run, untimed.
//! Any exit code not given by `--ok` (default 0) ends the measuring with an error.

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

struct Options {
    runs: usize,
    warmup: usize,
    ok: Vec<i32>,
    prepare: Option<String>,
    server: Vec<u32>,
    idle_ms_per_s: f64,
    command: Vec<String>,
    /// Where each run's stderr goes, read back when a run fails.
    stderr: std::path::PathBuf,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let mut o = Options {
        runs: 10,
        warmup: 2,
        ok: Vec::new(),
        prepare: None,
        server: Vec::new(),
        idle_ms_per_s: 0.0,
        command: Vec::new(),
        stderr: std::env::temp_dir().join(format!("measure-{}.stderr", std::process::id())),
    };
    while let Some(flag) = args.next() {
        if flag == "--" {
            o.command = args.collect();
            break;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => o.runs = value.parse()?,
            "--warmup" => o.warmup = value.parse()?,
            "--ok" => o.ok.push(value.parse()?),
            "--prepare" => o.prepare = Some(value),
            "--server" => {
                for pid in value.split(',').filter(|p| !p.is_empty()) {
                    o.server.push(pid.parse()?);
                }
            }
            "--idle" => o.idle_ms_per_s = value.parse()?,
            _ => bail!("unknown option {flag}"),
        }
    }
    ensure!(o.runs > 0, "--runs must be at least 1");
    ensure!(!o.command.is_empty(), "no command after --");
    if o.ok.is_empty() {
        o.ok.push(0);
    }
    Ok(o)
}

/// CPU time (ms) the server processes have used so far: utime + stime of /proc/PID/stat.
fn server_ms(pids: &[u32], ticks_per_s: f64) -> Result<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("server process {pid}"))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').context("a /proc stat line")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    }
    Ok(ticks as f64 * 1000.0 / ticks_per_s)
}

struct Run {
    wall_ms: f64,
    user_ms: f64,
    sys_ms: f64,
    server_ms: f64,
    rss_kib: i64,
}

fn ms(t: libc::timeval) -> f64 {
    t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0
}

fn run_once(o: &Options, ticks_per_s: f64) -> Result<Run> {
    if let Some(prepare) = &o.prepare {
        let status = Command::new("sh").args(["-c", prepare]).status()?;
        ensure!(status.success(), "--prepare failed: {status}");
    }
    let s0 = server_ms(&o.server, ticks_per_s)?;
    let t0 = Instant::now();
    let stderr = std::fs::File::create(&o.stderr)?;
    let child = Command::new(&o.command[0])
        .args(&o.command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot run {}", o.command[0]))?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 only writes into the two locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = t0.elapsed().as_secs_f64() * 1000.0;
    ensure!(pid > 0, "wait4: {}", std::io::Error::last_os_error());
    let s1 = server_ms(&o.server, ticks_per_s)?;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    ensure!(
        o.ok.contains(&code),
        "{} exited {code} (accepted: {:?}); its stderr:\n{}",
        o.command.join(" "),
        o.ok,
        std::fs::read_to_string(&o.stderr).unwrap_or_default()
    );
    Ok(Run {
        wall_ms: wall,
        user_ms: ms(usage.ru_utime),
        sys_ms: ms(usage.ru_stime),
        server_ms: s1 - s0 - o.idle_ms_per_s * wall / 1000.0,
        rss_kib: usage.ru_maxrss,
    })
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn main() -> Result<()> {
    let o = parse(std::env::args().skip(1))?;
    let measured = measure(&o);
    let _ = std::fs::remove_file(&o.stderr);
    measured
}

fn measure(o: &Options) -> Result<()> {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for _ in 0..o.warmup {
        run_once(o, ticks_per_s)?;
    }
    let runs = (0..o.runs)
        .map(|_| run_once(o, ticks_per_s))
        .collect::<Result<Vec<_>>>()?;
    let n = runs.len() as f64;
    let mean_of = |f: fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / n;
    let mut wall: Vec<f64> = runs.iter().map(|r| r.wall_ms).collect();
    wall.sort_by(f64::total_cmp);
    let mean = mean_of(|r| r.wall_ms);
    let stddev = if runs.len() > 1 {
        (wall.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let mut rss: Vec<f64> = runs.iter().map(|r| r.rss_kib as f64 / 1024.0).collect();
    rss.sort_by(f64::total_cmp);
    let server = if o.server.is_empty() {
        "nan".to_string()
    } else {
        format!("{:.1}", mean_of(|r| r.server_ms).max(0.0))
    };
    println!(
        "{:.3}\t{:.3}\t{:.3}\t{mean:.3}\t{stddev:.3}\t{:.3}\t{:.3}\t{server}\t{:.1}",
        median(&wall),
        wall[0],
        wall[wall.len() - 1],
        mean_of(|r| r.user_ms),
        mean_of(|r| r.sys_ms),
        median(&rss),
    );
    Ok(())
}
