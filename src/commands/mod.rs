//! Each command fetches through `cluster`, reasons through `audit`, prints through `render`.

pub mod delete;
pub mod orphans;
pub mod status;

use std::io::{self, IsTerminal, Write};

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::cluster::{Cluster, Connection};
use crate::exit::Exit;
use crate::render::Style;

pub async fn run(cli: Cli) -> Result<Exit> {
    let g = &cli.global;
    let style = Style::from_env(g.output, g.color, g.no_headers);
    if let Command::Completion { shell } = cli.command {
        print(|out| completion(shell, out))?;
        return Ok(Exit::Success);
    }
    let conn = Connection {
        kubeconfig: g.kubeconfig.clone(),
        context: g.context.clone(),
        cluster: g.cluster.clone(),
        user: g.user.clone(),
        request_timeout: Some(g.request_timeout),
    };
    let cluster = Cluster::connect(&conn, g.chunk_size).await?;
    match cli.command {
        Command::Status(args) => status::run(&cluster, &style, args).await,
        Command::Orphans(args) => orphans::run(&cluster, &style, args).await,
        Command::Delete(args) => delete::run(&cluster, &style, args).await,
        Command::Completion { .. } => unreachable!("handled before connecting"),
    }
}

/// A completion script from the clap definition.
pub fn completion(shell: clap_complete::Shell, out: &mut Vec<u8>) -> io::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "kubectl-servicecidr",
        &mut script,
    );
    let mut text = String::from_utf8(script).map_err(io::Error::other)?;
    if shell == clap_complete::Shell::Bash {
        // clap_complete spells subcommand states inconsistently when the bin name has a space
        // (clap-rs/clap#6421): unify them, or nothing completes after a subcommand.
        text = text.replace("kubectl__subcmd__servicecidr", "kubectl__servicecidr");
    }
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// Writes a whole rendering at once, so a redraw never interleaves with other output. An output
/// that cannot be written is an error of its own (`main` gives a closed pipe exit 141).
pub fn print(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let mut out = io::stdout().lock();
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write the output: {e}")))
}

/// Progress belongs on stderr, and only on a terminal that takes escape sequences.
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal() && !crate::render::term_is_dumb()
}
