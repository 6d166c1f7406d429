//! Credential plugins that outlive their bound: kube runs them with `std::process` out of our
//! reach, so each client's plugins carry a mark in their environment (inherited by whatever they
//! start), and the ones still running when the bound passes are found by it and killed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::config::Kubeconfig;

const VAR: &str = "KUBECTL_SERVICECIDR_EXEC_MARK";

/// One client's mark, unique in this machine.
#[derive(Debug, Clone)]
pub struct Mark(String);

impl Mark {
    pub fn fresh() -> Mark {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Mark(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Adds the mark to the environment of every exec plugin the kubeconfig names.
    pub fn apply(&self, kc: &mut Kubeconfig) {
        let execs = kc
            .auth_infos
            .iter_mut()
            .filter_map(|a| a.auth_info.as_mut()?.exec.as_mut());
        for exec in execs {
            let entry = HashMap::from([
                ("name".to_owned(), VAR.to_owned()),
                ("value".to_owned(), self.0.clone()),
            ]);
            exec.env.get_or_insert_with(Vec::new).push(entry);
        }
    }

    /// Kills every process of ours that carries the mark: the plugin and what it started.
    #[cfg(target_os = "linux")]
    pub fn kill(&self) {
        let needle = format!("{VAR}={}\0", self.0);
        let own = std::process::id();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for pid in procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != own)
        {
            // Another user's processes are unreadable, and so never matched.
            let marked = std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| memchr::memmem::find(&env, needle.as_bytes()).is_some());
            if let (true, Ok(pid)) = (marked, i32::try_from(pid)) {
                // SAFETY: kill(2) only sends a signal; a pid gone meanwhile is ESRCH.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }

    /// Elsewhere the plugin ends with the process at the latest.
    #[cfg(not(target_os = "linux"))]
    pub fn kill(&self) {}
}
