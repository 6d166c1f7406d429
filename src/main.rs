use std::process::ExitCode;

use clap::Parser;
use kubectl_servicecidr::cli::Cli;
use kubectl_servicecidr::commands;
use kubectl_servicecidr::exit::Exit;
use kubectl_servicecidr::render;
use kubectl_servicecidr::settings::{self, Environment, Settings};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse().and_then(|cli| settings::check(&cli).map(|()| cli)) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors, unless they could not be written.
            return match (e.print(), e.use_stderr()) {
                (Err(io), _) if io.kind() == std::io::ErrorKind::BrokenPipe => Exit::BrokenPipe,
                (Err(_), _) => Exit::Error,
                (Ok(()), true) => Exit::Usage,
                (Ok(()), false) => Exit::Success,
            }
            .into();
        }
    };
    let settings = Settings::resolve(cli, Environment::read());
    init_logging(settings.verbose, settings.live.log_colour);
    // One thread: the work is waiting on the API server, and worker threads waking each other
    // for every read cost more CPU than the parsing they would share (BENCHMARKS.md).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::from(e)),
    };
    let result = runtime.block_on(commands::run(settings));
    // A credential plugin that never returns runs on a blocking thread, which dropping the runtime
    // would wait for: its request has failed by its bound already, so leave it behind.
    runtime.shutdown_background();
    match result {
        Ok(exit) => exit.into(),
        // Whoever read our output stopped: never report that as success.
        Err(e) if is_broken_pipe(&e) => Exit::BrokenPipe.into(),
        Err(e) => fail(&e),
    }
}

/// The most characters of an error line: enough for any message of ours or the API's.
const MAX_ERROR_CHARS: usize = 2_000;

/// One line: the message of every error here already carries its cause.
fn fail(e: &anyhow::Error) -> ExitCode {
    let text = e.to_string();
    let mut line: String = text
        .chars()
        .take(MAX_ERROR_CHARS)
        .map(|c| if render::is_unsafe(c) { ' ' } else { c })
        .collect();
    let total = text.chars().count();
    if total > MAX_ERROR_CHARS {
        line.push_str(&format!(
            " … ({} more characters cut)",
            total - MAX_ERROR_CHARS
        ));
    }
    render::to_stderr(&format!("error: {line}\n"));
    Exit::Error.into()
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn init_logging(verbose: u8, ansi: bool) {
    let filter = match verbose {
        // Errors reach the user once, as our one line; libraries stay quiet unless asked.
        0 => "off,kubectl_servicecidr=warn",
        1 => "warn,kubectl_servicecidr=debug,kube_client=debug",
        _ => "debug,kubectl_servicecidr=trace,kube_client=trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .init();
}
