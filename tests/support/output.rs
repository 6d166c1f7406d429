//! Reading what a process printed, with the output in the panic message when it is not as expected.

use std::process::Output;

use serde_json::Value;

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code; a death by signal is -1.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Stdout as JSON, from a run that exited 0 or 3 (the plugin's "found something").
pub fn json_of(out: &Output) -> Value {
    assert!(
        matches!(code(out), 0 | 3),
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        code(out),
        stdout_of(out),
        stderr_of(out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout_of(out),
            stderr_of(out)
        )
    })
}

/// Stdout of a run that must exit 0; otherwise a panic naming `what`, with both streams.
pub fn ok(what: &str, out: Output) -> String {
    assert_eq!(
        code(&out),
        0,
        "{what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    stdout_of(&out)
}

/// One line on stderr, starting `error: `, holding `want`; exit 1; no panic.
pub fn one_line_error(out: &Output, want: &str) {
    let err = stderr_of(out);
    assert_eq!(code(out), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(want),
        "{err}"
    );
}
