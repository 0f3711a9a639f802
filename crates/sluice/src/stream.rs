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
    /// Serve Prometheus metrics at http://ADDR/metrics while the stream runs.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
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
    let statsd = ws.project.settings.statsd.as_ref();
    let totals = runtime.block_on(async {
        crate::metrics::start(statsd, args.metrics_addr).await?;
        let stop = crate::runs::stop_signal();
        anyhow::Ok(
            sluice_kafka::run(stream, &ws.project.connections, stop, args.stop_when_idle).await,
        )
    })?;
    crate::metrics::flush(statsd);
    let totals = match totals {
        Ok(t) => t,
        Err(sluice_kafka::StreamError::Unsupported(what)) => return usage(what),
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "{}: {} consumed, {} loaded, {} dead-lettered ({} late), {} already written, in {} batches",
        stream.id,
        totals.consumed,
        totals.loaded,
        totals.dead_lettered,
        totals.late,
        totals.skipped,
        totals.batches
    );
    Ok(exit::OK)
}

/// Keeps every stream of the project running until `stop`, restarting one that fails with
/// backoff (1 s, doubling, at most a minute). Streams are read when the server starts.
pub fn supervise(
    streams: &[sluice_core::stream::Stream],
    connections: &sluice_core::connections::Connections,
    stop: tokio_util::sync::CancellationToken,
) -> tokio_util::task::TaskTracker {
    let tracker = tokio_util::task::TaskTracker::new();
    for stream in streams.iter().cloned() {
        let (connections, stop) = (connections.clone(), stop.clone());
        tracker.spawn(async move {
            let mut backoff = std::time::Duration::from_secs(1);
            loop {
                let started = std::time::Instant::now();
                let outcome = sluice_kafka::run(&stream, &connections, stop.clone(), None).await;
                if stop.is_cancelled() {
                    break;
                }
                match outcome {
                    Ok(_) => backoff = std::time::Duration::from_secs(1),
                    Err(sluice_kafka::StreamError::Unsupported(why)) => {
                        eprintln!("stream {}: {why}", stream.id);
                        break;
                    }
                    Err(e) => {
                        // A stream that ran a good while before failing starts over gently.
                        if started.elapsed() > std::time::Duration::from_secs(300) {
                            backoff = std::time::Duration::from_secs(1);
                        }
                        eprintln!(
                            "stream {}: {e}; restarting in {}s",
                            stream.id,
                            backoff.as_secs()
                        );
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(60));
            }
        });
    }
    tracker
}
