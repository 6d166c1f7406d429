//! The command line (names, CIDRs, durations, output formats, flags), split on NUL into
//! arguments: clap accepts it or explains, never a panic.
#![no_main]

use clap::Parser;
use kubectl_servicecidr::cli::Cli;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let args = std::iter::once("kubectl-servicecidr").chain(text.split('\0'));
    let _ = Cli::try_parse_from(args).map_err(|e| e.render().to_string());
});
