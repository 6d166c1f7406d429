//! Output apart from logic: tables for people, JSON and YAML documents for scripts.
//!
//! Renderers write to any `io::Write` with a decided `Style`, so tests render into a `Vec<u8>`.

pub mod delete;
pub mod doctor;
pub mod explain;
pub mod fleet;
pub mod migrate;
pub mod orphans;
pub mod progress;
pub mod prometheus;
pub mod status;
pub mod table;

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::settings::Output;

/// The version of every document this plugin prints.
pub const API_VERSION: &str = "servicecidr.kubectl.io/v1alpha1";

/// Text on stderr. A lost stderr is not worth a panic: the exit code still tells.
pub fn to_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// Writes a document as JSON or YAML; `kind` and `apiVersion` lead.
pub fn write_document<T: Serialize>(
    out: &mut impl Write,
    output: Output,
    kind: &str,
    body: &T,
) -> io::Result<()> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Document<'a, T> {
        api_version: &'a str,
        kind: &'a str,
        #[serde(flatten)]
        body: &'a T,
    }
    let doc = Document {
        api_version: API_VERSION,
        kind,
        body,
    };
    match output {
        Output::Yaml => serde_yaml_ng::to_writer(&mut *out, &doc).map_err(io::Error::other),
        _ => {
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)
        }
    }
}

/// Names and messages from the cluster lose control characters before they reach a terminal.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if is_unsafe(c) { '?' } else { c })
        .collect()
}

/// A character that must not reach a terminal from the cluster: a control character, or one
/// that reorders what follows it (the bidi overrides, embeddings and isolates, and the marks), so
/// that `rtl\u{202E}gnp.exe` cannot display as `rtlexe.png`.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// kubectl's AGE column: 45s, 3m12s, 5h, 2d3h, 400d.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86_400);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{m}m{}s", s % 60).replace("m0s", "m"),
        600..10_800 => format!("{m}m"),
        10_800..28_800 => format!("{h}h{}m", m % 60).replace("h0m", "h"),
        28_800..172_800 => format!("{h}h"),
        172_800..691_200 => format!("{days}d{}h", h % 24).replace("d0h", "d"),
        _ => format!("{days}d"),
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A count for people: exact below a million, a power of two when it is one, else scientific.
pub fn count(n: u128) -> String {
    if n < 1_000_000 {
        return group_thousands(n);
    }
    if (n + 1).is_power_of_two() {
        // Sizes of IPv6 ranges less their network address: 2^64 - 1 reads as ~2^64.
        return format!("~2^{}", (n + 1).trailing_zeros());
    }
    if n.is_power_of_two() {
        return format!("2^{}", n.trailing_zeros());
    }
    let digits = n.to_string();
    format!("{}.{}e{}", &digits[..1], &digits[1..3], digits.len() - 1)
}

fn group_thousands(n: u128) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn percent(p: f64) -> String {
    if p > 0.0 && p < 0.01 {
        "<0.01%".into()
    } else {
        format!("{p:.2}%").replace(".00%", "%")
    }
}

/// An output that could not be written, kind kept (`main` gives a closed pipe exit 141).
fn unwritten(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write the output: {e}"))
}

/// Writes a rendering as it is made, for output too large to hold (a row per IP).
pub fn print_streamed(
    render: impl FnOnce(&mut io::BufWriter<io::StdoutLock<'static>>) -> io::Result<()>,
) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 << 10, io::stdout().lock());
    render(&mut out)
        .and_then(|()| out.flush())
        .map_err(unwritten)
}

/// Writes a whole rendering at once, so a redraw never interleaves with other output. An output
/// that cannot be written is an error of its own (`main` gives a closed pipe exit 141).
pub fn print(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let mut out = io::stdout().lock();
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .map_err(unwritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (180, "3m"),
            (700, "11m"),
            (4 * 3600, "4h"),
            (4 * 3600 + 120, "4h2m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (400 * 86400, "400d"),
        ];
        for (secs, want) in cases {
            assert_eq!(age(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn counts_stay_exact_while_small_and_readable_when_huge() {
        assert_eq!(count(254), "254");
        assert_eq!(count(65_534), "65,534");
        assert_eq!(count((1u128 << 64) - 1), "~2^64");
        assert_eq!(count(1u128 << 70), "2^70");
        assert_eq!(count(12_345_678), "1.23e7");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(sanitize("blue\x1b[31m\n"), "blue?[31m?");
        assert_eq!(sanitize("rtl\u{202E}gnp.exe"), "rtl?gnp.exe");
        assert_eq!(sanitize("a\u{2067}b\u{2069}c\u{200F}"), "a?b?c?");
        assert_eq!(sanitize("é ü 日本 ✓"), "é ü 日本 ✓");
        assert_eq!(percent(0.001), "<0.01%");
        assert_eq!(percent(50.0), "50%");
        assert_eq!(percent(12.345), "12.35%");
    }
}
