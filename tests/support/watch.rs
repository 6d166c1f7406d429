//! Watching objects through kubectl: waiting for a state, or for a period in which it must not
//! come.

use std::io::BufReader;
use std::process::Stdio;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ControlPlane;

impl ControlPlane {
    /// The watch behind [`ControlPlane::wait_for`]: `kubectl get KIND --field-selector
    /// metadata.name=NAME -w -o json --output-watch-events`, plus one GET for the current state (so
    /// "absent" is seen too). Ok(state) once `predicate` holds, Err(last state) when `timeout` runs
    /// out: the latter is how a test asserts that something does NOT happen within a period. The
    /// watch is re-established if it ends early (e.g. an apiserver restart).
    pub fn watch_until(
        &self,
        ns: Option<&str>,
        what: &str,
        timeout: Duration,
        mut predicate: impl FnMut(Option<&Value>) -> bool,
    ) -> Result<Option<Value>, Option<Value>> {
        let deadline = Instant::now() + timeout;
        let mut state = None;
        loop {
            let watch = self.watch_events(ns, what);
            // The watch was started first, so any change after this GET also arrives as an event.
            match self.try_get_in(ns, what) {
                Ok(s) => state = s,
                Err(out) => {
                    // Most likely the apiserver is restarting: retry until the deadline.
                    eprintln!(
                        "wait for {what}: kubectl get failed ({}), retrying: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                    drop(watch);
                    if Instant::now() >= deadline {
                        return Err(state);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
            }
            if predicate(state.as_ref()) {
                return Ok(state);
            }
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match watch.events.recv_timeout(left) {
                    Ok(ev) => {
                        match ev["type"].as_str() {
                            Some("ADDED" | "MODIFIED") => state = Some(ev["object"].clone()),
                            Some("DELETED") => state = None,
                            _ => continue, // BOOKMARK, ERROR
                        }
                        if predicate(state.as_ref()) {
                            return Ok(state);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => return Err(state),
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            drop(watch);
            if Instant::now() >= deadline {
                return Err(state);
            }
            // The watch ended early (apiserver restarting?): back off briefly, then watch again.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Starts `kubectl get KIND --field-selector metadata.name=NAME --watch -o json
    /// --output-watch-events` (`what` = `KIND/NAME`); its events arrive on [`EventStream::events`],
    /// the current object first (as ADDED) when it exists.
    pub fn watch_events(&self, ns: Option<&str>, what: &str) -> EventStream {
        let (kind, name) = what
            .split_once('/')
            .unwrap_or_else(|| panic!("{what}: expected KIND/NAME"));
        let mut cmd = self.kubectl_cmd();
        cmd.args([
            "get",
            kind,
            "--field-selector",
            &format!("metadata.name={name}"),
        ])
        .args(["--watch", "-o", "json", "--output-watch-events"]);
        if let Some(ns) = ns {
            cmd.args(["-n", ns]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run kubectl");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel::<Value>();
        let reader = std::thread::spawn(move || {
            let stream = serde_json::Deserializer::from_reader(BufReader::new(stdout));
            for ev in stream.into_iter::<Value>() {
                let Ok(v) = ev else { break };
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        EventStream {
            child,
            reader: Some(reader),
            events,
        }
    }
}

/// A running `kubectl get --watch` ([`ControlPlane::watch_events`]); stopped when dropped.
pub struct EventStream {
    child: std::process::Child,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Watch events as kubectl prints them (`{"type": ..., "object": ...}`); disconnected once
    /// the watch ends.
    pub events: mpsc::Receiver<Value>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
