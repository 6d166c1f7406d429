//! `delete`: retire the named ranges (`retirement`) and say how each ended.

use anyhow::Result;

use crate::audit::retire::{self, RangeOutcome};
use crate::cluster::Cluster;
use crate::commands::retirement::retire;
use crate::exit::Exit;
use crate::render::{self, print};
use crate::settings::DeleteTask;
use crate::settings::Style;

pub async fn run(
    cluster: &Cluster,
    style: &Style,
    countdown: bool,
    args: DeleteTask,
) -> Result<Exit> {
    // The grace period is what keeps an apiserver that learns of the deletion late from handing
    // out an IP in the range after its release: without it, say so before anything is done.
    if retire::races_the_allocators(&args.retire_options(), args.dry_run) {
        render::to_stderr(render::delete::NO_GRACE_WARNING);
    }
    let results = retire(cluster, countdown, &args).await;
    // A single range that could not be handled is an error, said in one line.
    if let [only] = results.as_slice()
        && only.outcome == RangeOutcome::Failed
    {
        anyhow::bail!("{}", render::delete::message(only));
    }
    print(|out| render::delete::write(out, style, &results))?;
    Ok(retire::worst(&results))
}
