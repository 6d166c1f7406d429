//! Each command fetches through `cluster`, reasons through `audit`, prints through `render`.

pub mod delete;
pub mod doctor;
pub mod explain;
pub mod fleet;
pub mod follow;
pub mod migrate;
pub mod orphans;
mod retirement;
pub mod serve;
pub mod status;

use anyhow::Result;

use crate::cluster::Cluster;
use crate::exit::Exit;
use crate::render::progress::ReadProgress;
use crate::settings::{Settings, Task};

pub async fn run(settings: Settings) -> Result<Exit> {
    let Settings {
        connection,
        chunk_size,
        style,
        live,
        task,
        ..
    } = settings;
    if let Task::Completion(shell) = task {
        crate::render::print(|out| crate::complete::script(shell, out))?;
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
            let checks = |cluster: Cluster| async move { doctor::checks(&cluster).await };
            return fleet::doctor(&connection, chunk_size, &style, f, checks).await;
        }
        _ => {}
    }
    let cluster = Cluster::connect(&connection, chunk_size).await?;
    let reading = ReadProgress::new(live.reading);
    let cluster = cluster.with_progress(reading.on_page());
    match task {
        Task::Status(t) => status::run(&cluster, &style, live.redraw, &reading, t).await,
        Task::Orphans(t) => orphans::run(&cluster, &style, &reading, t).await,
        Task::Doctor(_) => doctor::run(&cluster, &style, &reading).await,
        Task::Explain(subject) => explain::run(&cluster, &style, subject).await,
        Task::Delete(t) => delete::run(&cluster, &style, live.countdown, t).await,
        Task::Serve(t) => serve::run(&cluster, t).await,
        Task::Migrate(t) => migrate::run(&cluster, &style, live.countdown, t).await,
        Task::Completion(_) => unreachable!("handled before connecting"),
    }
}
