//! Each command fetches through `cluster`, reasons through `audit`, prints through `render`.

pub mod delete;
pub mod doctor;
pub mod explain;
pub mod fleet;
pub mod follow;
pub mod migrate;
pub mod orphans;
pub mod serve;
pub mod status;

use std::io::{self, Write};

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::cluster::Cluster;
use crate::exit::Exit;
use crate::render::progress::ReadProgress;
use crate::settings::{self, Settings, Task};

pub async fn run(settings: Settings) -> Result<Exit> {
    let Settings {
        connection,
        chunk_size,
        style,
        env,
        task,
        ..
    } = settings;
    if let Task::Completion(shell) = task {
        print(|out| completion(shell, out))?;
        return Ok(Exit::Success);
    }
    match &task {
        Task::Status(t) if let Some(f) = &t.fleet => {
            return fleet::status(&connection, chunk_size, &style, f, t).await;
        }
        Task::Orphans(t) if let Some(f) = &t.fleet => {
            return fleet::orphans(&connection, chunk_size, &style, f, t).await;
        }
        Task::Doctor(t) if let Some(f) = &t.fleet => {
            return fleet::doctor(&connection, chunk_size, &style, f).await;
        }
        _ => {}
    }
    let cluster = Cluster::connect(&connection, chunk_size).await?;
    let reading = ReadProgress::new(match &task {
        Task::Status(t) => !t.watch && settings::read_progress(&style, &env),
        Task::Orphans(t) => !t.suggest_range && settings::read_progress(&style, &env),
        Task::Doctor(_) => settings::read_progress(&style, &env),
        _ => false,
    });
    let cluster = cluster.with_progress(reading.on_page());
    match task {
        Task::Status(t) => status::run(&cluster, &style, &env, &reading, t).await,
        Task::Orphans(t) => orphans::run(&cluster, &style, &reading, t).await,
        Task::Doctor(_) => doctor::run(&cluster, &style, &reading).await,
        Task::Explain(subject) => explain::run(&cluster, &style, subject).await,
        Task::Delete(t) => delete::run(&cluster, &style, &env, t).await,
        Task::Serve(t) => serve::run(&cluster, t).await,
        Task::Migrate(t) => migrate::run(&cluster, &style, &env, t).await,
        Task::Completion(_) => unreachable!("handled before connecting"),
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
    match shell {
        // clap_complete spells subcommand states inconsistently when the bin name has a space
        // (clap-rs/clap#6421): unify them, or nothing completes after a subcommand.
        clap_complete::Shell::Bash => {
            text = text.replace("kubectl__subcmd__servicecidr", "kubectl__servicecidr");
        }
        // `*::` hides every option once a name is typed (`delete blue --<TAB>` offers nothing,
        // clap-rs/clap#6282); `*:` completes names and options alike.
        clap_complete::Shell::Zsh => text = text.replace("'*::names ", "'*:names "),
        _ => {}
    }
    out.extend_from_slice(text.as_bytes());
    Ok(())
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
