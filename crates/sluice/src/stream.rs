//! `sluice stream NAME`: runs a stream file until stopped.

use clap::Args;

use crate::workspace::Workspace;
use crate::{Global, exit, usage};

#[derive(Args)]
pub struct StreamArgs {
    /// The stream (its `stream:` name).
    stream: String,
    /// Stop when no record has come for this long (for catching up and for tests); without it,
    /// run until SIGTERM or Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    stop_when_idle: Option<std::time::Duration>,
}

pub fn run(global: &Global, args: StreamArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let Some(stream) = ws.project.streams.iter().find(|s| s.id == args.stream) else {
        let known: Vec<&str> = ws.project.streams.iter().map(|s| s.id.as_str()).collect();
        let hint = sluice_core::diag::did_you_mean(&args.stream, known.iter().copied())
            .unwrap_or_else(|| {
                if known.is_empty() {
                    "this project has no valid stream files (`sluice check` shows their problems)"
                        .to_string()
                } else {
                    format!("streams in this project: {}", known.join(", "))
                }
            });
        return usage(format!("unknown stream `{}`\n  hint: {hint}", args.stream));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let totals = runtime.block_on(async {
        let stop = crate::runs::stop_signal();
        sluice_kafka::run(stream, &ws.project.connections, stop, args.stop_when_idle).await
    });
    let totals = match totals {
        Ok(t) => t,
        Err(sluice_kafka::StreamError::Unsupported(what)) => return usage(what),
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "{}: {} consumed, {} loaded, {} dead-lettered, {} already written, in {} batches",
        stream.id,
        totals.consumed,
        totals.loaded,
        totals.dead_lettered,
        totals.skipped,
        totals.batches
    );
    Ok(exit::OK)
}
