//! `run` and `backfill`: runs of a pipeline executed in this process (or a backfill handed to a
//! server and followed).

use chrono::NaiveDate;
use clap::Args;
use futures::StreamExt;
use sluice_core::schedule::MAX_INTERVALS;
use sluice_core::template::iso;
use sluice_core::{DataInterval, Pipeline};
use sluice_engine::{Executor, RunOutcome, RunRequest};
use sluice_store::{RunType, Store};

use crate::api_types::BackfillRequest;
use crate::client::Client;
use crate::execution::{executor, exit_code, runtime, settle};
use crate::output::{LiveProgress, RunView, print_table, task_order};
use crate::signal::stop_signal;
use crate::workspace::{Workspace, interval_for, parse_date};
use crate::{Global, exit, usage};

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline id.
    pipeline: String,
    /// The logical date (YYYY-MM-DD, in the pipeline's time zone); default: the latest complete interval.
    #[arg(long)]
    date: Option<String>,
    /// Run failed and upstream_failed tasks of this run again.
    #[arg(long)]
    rerun_failed: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics while the run executes.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BackfillArgs {
    pipeline: String,
    /// First logical date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    from: String,
    /// Last logical date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    to: String,
    /// Runs executed at the same time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    parallel: u32,
    /// List the intervals; run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run failed and upstream_failed tasks of existing runs again.
    #[arg(long)]
    rerun_failed: bool,
    /// Hand the backfill to a running `sluice serve` at this URL (its progress is kept there
    /// and survives restarts) and follow it. The token comes from SLUICE_API_TOKEN.
    #[arg(long, value_name = "URL", conflicts_with_all = ["dry_run", "rerun_failed", "parallel"])]
    via_server: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: RunArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let pipeline = ws.pipeline(&args.pipeline)?;
    let interval = interval_for(pipeline, args.date.as_deref())?;
    let store = ws.store()?;
    let exec = executor(&ws, store.clone())?;
    let progress = LiveProgress::new(pipeline.tasks.len() as u64, global.quiet, args.json);
    let statsd = ws.project.settings.statsd.as_ref();
    let outcome = runtime()?.block_on(async {
        crate::metrics::start(statsd, args.metrics_addr).await?;
        let stop = stop_signal();
        let outcome = exec
            .run(
                RunRequest {
                    pipeline,
                    interval,
                    run_type: RunType::Manual,
                    rerun_failed: args.rerun_failed,
                },
                &progress,
                stop,
            )
            .await;
        settle(&exec).await;
        anyhow::Ok(outcome?)
    });
    progress.finish();
    crate::metrics::flush(statsd);
    let outcome = outcome?;
    let view = RunView::load(&store, &outcome.run, &task_order(pipeline))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        report(&outcome, &view, &args.pipeline);
    }
    Ok(exit_code(&outcome))
}

fn report(outcome: &RunOutcome, view: &RunView, pipeline: &str) {
    view.print(10);
    let date = outcome.run.logical_date.format("%Y-%m-%d");
    if outcome.interrupted {
        println!("\ninterrupted: run `sluice run {pipeline} --date {date}` to resume");
    } else if outcome.already_finished {
        println!(
            "\nthis run had already finished; nothing was executed (use --rerun-failed, or `sluice clear {pipeline} --date {date}` to run tasks again)"
        );
    }
}

pub fn backfill(global: &Global, args: BackfillArgs) -> anyhow::Result<u8> {
    if let Some(url) = &args.via_server {
        return runtime()?.block_on(backfill_via_server(url, &args));
    }
    let ws = Workspace::load(global)?;
    let pipeline = ws.pipeline(&args.pipeline)?;
    let (from, to) = (parse_date(&args.from)?, parse_date(&args.to)?);
    if from > to {
        return usage(format!("--from {from} is after --to {to}"));
    }
    let intervals = pipeline
        .timetable
        .intervals_between(from, to, MAX_INTERVALS)
        .or_else(|e| {
            usage(format!(
                "`{}` has {e} between {from} and {to}; backfill a shorter range at a time",
                pipeline.id
            ))
        })?;
    if intervals.is_empty() {
        return usage(format!(
            "`{}` has no interval with a logical date between {from} and {to} ({}, start_date {})",
            pipeline.id,
            pipeline.timetable.schedule.describe(),
            pipeline.timetable.start.format("%Y-%m-%d")
        ));
    }
    if args.dry_run {
        print_dry_run(pipeline, &intervals, args.json)?;
        return Ok(exit::OK);
    }
    let store = ws.store()?;
    let exec = executor(&ws, store.clone())?;
    let progress = LiveProgress::new(
        (intervals.len() * pipeline.tasks.len()) as u64,
        global.quiet,
        args.json,
    );
    let results = runtime()?.block_on(async {
        let results = execute_all(&exec, pipeline, &intervals, &args, &progress).await;
        settle(&exec).await;
        results
    });
    progress.finish();
    let summary = Summary::read(&store, pipeline, &intervals, results)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary.views)?);
    } else {
        summary.print(pipeline, from, to);
    }
    Ok(if summary.all_ok {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// The runs a backfill would execute, as a list (or JSON).
fn print_dry_run(
    pipeline: &Pipeline,
    intervals: &[DataInterval],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let list: Vec<_> = intervals
            .iter()
            .map(|i| {
                serde_json::json!({
                    "pipeline": pipeline.id,
                    "logical_date": iso(i.start),
                    "data_interval_start": iso(i.start),
                    "data_interval_end": iso(i.end),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{} runs of {} would be executed:",
        intervals.len(),
        pipeline.id
    );
    for i in intervals {
        println!(
            "  {}  [{}, {})",
            i.start
                .with_timezone(&pipeline.timetable.tz)
                .format("%Y-%m-%d %H:%M %Z"),
            iso(i.start),
            iso(i.end)
        );
    }
    Ok(())
}

/// Executes a run per interval, `--parallel` at a time, in the intervals' order; after a stop
/// signal the runs not started yet are not started.
async fn execute_all(
    exec: &Executor,
    pipeline: &Pipeline,
    intervals: &[DataInterval],
    args: &BackfillArgs,
    progress: &LiveProgress,
) -> Vec<anyhow::Result<RunOutcome>> {
    let stop = stop_signal();
    futures::stream::iter(intervals.iter().copied())
        .map(|interval| {
            let stop = stop.clone();
            async move {
                if stop.is_cancelled() {
                    anyhow::bail!("not started: stopped");
                }
                Ok(exec
                    .run(
                        RunRequest {
                            pipeline,
                            interval,
                            run_type: RunType::Backfill,
                            rerun_failed: args.rerun_failed,
                        },
                        progress,
                        stop,
                    )
                    .await?)
            }
        })
        .buffered(args.parallel as usize)
        .collect()
        .await
}

/// What a local backfill did: a row per interval, and the runs as `--json` prints them.
struct Summary {
    views: Vec<RunView>,
    table: Vec<Vec<String>>,
    all_ok: bool,
}

impl Summary {
    fn read(
        store: &Store,
        pipeline: &Pipeline,
        intervals: &[DataInterval],
        results: Vec<anyhow::Result<RunOutcome>>,
    ) -> anyhow::Result<Summary> {
        let order = task_order(pipeline);
        let mut summary = Summary {
            views: Vec::new(),
            table: Vec::new(),
            all_ok: true,
        };
        for (interval, result) in intervals.iter().zip(results) {
            match result {
                Ok(outcome) => {
                    summary.all_ok &= exit_code(&outcome) == exit::OK;
                    let view = RunView::load(store, &outcome.run, &order)?;
                    summary.table.push(run_row(&outcome, &view));
                    summary.views.push(view);
                }
                Err(e) => {
                    summary.all_ok = false;
                    summary.table.push(vec![
                        format!("  {}", iso(interval.start)),
                        "error".into(),
                        String::new(),
                        format!("{e:#}"),
                    ]);
                }
            }
        }
        Ok(summary)
    }

    fn print(&self, pipeline: &Pipeline, from: NaiveDate, to: NaiveDate) {
        let ok = self.views.iter().filter(|v| v.state == "success").count();
        // One row per interval, whether its run started or not.
        let runs = self.table.len();
        println!(
            "backfill of {} from {from} to {to}: {ok} of {runs} runs succeeded",
            pipeline.id
        );
        print_table(&self.table);
        if !self.all_ok {
            println!(
                "\ninspect failures with `sluice runs {}` and `sluice logs {} --date D --task T`",
                pipeline.id, pipeline.id
            );
        }
    }
}

/// A run's row in the backfill's table: date, state, duration, failed tasks.
fn run_row(outcome: &RunOutcome, view: &RunView) -> Vec<String> {
    let failed: Vec<&str> = view
        .tasks
        .iter()
        .filter(|t| t.state == "failed")
        .map(|t| t.task.as_str())
        .collect();
    vec![
        format!("  {}", view.logical_date),
        if outcome.interrupted {
            "interrupted".into()
        } else {
            view.state.clone()
        },
        view.duration_s
            .map(|d| format!("{d:.1}s"))
            .unwrap_or_default(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("failed: {}", failed.join(", "))
        },
    ]
}

/// Starts a backfill on a server and prints its progress until every interval has finished.
async fn backfill_via_server(url: &str, args: &BackfillArgs) -> anyhow::Result<u8> {
    let client = Client::new(url);
    let request = BackfillRequest {
        from: args.from.clone(),
        to: args.to.clone(),
    };
    let mut progress = client.start_backfill(&args.pipeline, &request).await?;
    if !args.json {
        println!(
            "backfill {} of {} started on {}",
            progress.id,
            args.pipeline,
            client.base()
        );
    }
    let mut last = String::new();
    loop {
        let line = progress.summary();
        if line != last && !args.json {
            println!("{line}");
            last = line;
        }
        if progress.finished {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        progress = client.backfill(progress.id).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&progress)?);
    }
    Ok(if progress.failed == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}
