//! `run`, `backfill`, `runs`, `logs` and `clear`.

use std::sync::Arc;

use clap::Args;
use futures::StreamExt;
use sluice_core::diag::did_you_mean;
use sluice_core::{DataInterval, Pipeline, RunState};
use sluice_engine::{Executor, RunOutcome, RunRequest};
use sluice_store::{RunType, Store};
use tokio_util::sync::CancellationToken;

use crate::output::{LiveProgress, RunView, print_table};
use crate::workspace::{Workspace, parse_date};
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

#[derive(Args)]
pub struct RunsArgs {
    pipeline: String,
    /// How many runs, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct LogsArgs {
    pipeline: String,
    #[arg(long)]
    date: String,
    #[arg(long)]
    task: String,
    /// The try number (default: the latest).
    #[arg(long = "try")]
    try_number: Option<u32>,
}

#[derive(Args)]
pub struct ClearArgs {
    pipeline: String,
    #[arg(long)]
    date: String,
    /// Tasks to clear (repeatable); default: every task.
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// Also clear every task downstream of the named ones.
    #[arg(long)]
    downstream: bool,
}

/// How long a command waits for alerts still being delivered before it exits.
const ALERT_FLUSH: std::time::Duration = std::time::Duration::from_secs(15);

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Cancelled on Ctrl-C or SIGTERM: running tasks are stopped and the run can be resumed.
/// The handlers are installed before this returns, so no signal slips through before the run.
pub(crate) fn stop_signal() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; Ctrl-C will not stop tasks cleanly");
        return token;
    };
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!(
            "stopping: waiting for running tasks to stop (run the same command again to resume)"
        );
        t.cancel();
    });
    token
}

fn order(p: &Pipeline) -> Vec<String> {
    p.tasks.iter().map(|t| t.id.clone()).collect()
}

fn interval_for(p: &Pipeline, date: Option<&str>) -> anyhow::Result<DataInterval> {
    match date {
        Some(d) => {
            let day = parse_date(d)?;
            p.timetable.interval_for_date(day).or_else(|e| {
                usage(format!(
                    "{e}\n  hint: pick a date on which `{}` has a scheduled interval",
                    p.id
                ))
            })
        }
        None => match p.timetable.latest_complete(chrono::Utc::now()) {
            Some(i) => Ok(i),
            None => usage(format!(
                "`{}` has no complete interval yet ({})\n  hint: pass --date YYYY-MM-DD",
                p.id,
                p.timetable.schedule.describe()
            )),
        },
    }
}

fn executor(ws: &Workspace, store: Arc<Store>) -> anyhow::Result<Executor> {
    Ok(Executor {
        store,
        paths: ws.project.paths.clone(),
        parallelism: ws.project.settings.parallelism,
        redactor: Arc::new(ws.project.connections.redactor()),
        pools: Arc::new(sluice_engine::Pools::new(&ws.project.settings.pools)),
        notifier: crate::alerts::notifier(
            &ws.project.settings.alert_channels,
            &ws.project.paths.root,
        ),
        dispatch: sluice_engine::Dispatch::Local,
        lineage: crate::lineage::sink(ws.project.settings.lineage.as_ref())?,
    })
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
        crate::alerts::flush(ALERT_FLUSH).await;
        crate::lineage::flush(&exec);
        anyhow::Ok(outcome?)
    });
    progress.finish();
    crate::metrics::flush(statsd);
    let outcome = outcome?;
    let view = RunView::load(&store, &outcome.run, &order(pipeline))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        report(&outcome, &view, &args.pipeline);
    }
    Ok(code(&outcome))
}

/// Starts a backfill on a server and prints its progress until every interval has finished.
async fn backfill_via_server(url: &str, args: &BackfillArgs) -> anyhow::Result<u8> {
    use sluice_io::reqwest;
    let client = reqwest::Client::new();
    let token = std::env::var(crate::serve::TOKEN_ENV).ok();
    let with_token = |req: reqwest::RequestBuilder| match &token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let base = url.trim_end_matches('/');
    let answer = |resp: reqwest::Response| async move {
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if status.is_success() {
            Ok(body)
        } else {
            usage(format!(
                "the server refused ({status}): {}",
                body["error"].as_str().unwrap_or("no message")
            ))
        }
    };
    let created =
        with_token(client.post(format!("{base}/api/pipelines/{}/backfills", args.pipeline)))
            .json(&serde_json::json!({ "from": args.from, "to": args.to }))
            .send()
            .await
            .or_else(|e| usage(format!("cannot reach {base}: {e}")))?;
    let mut progress = answer(created).await?;
    let id = progress["id"].as_i64().unwrap_or_default();
    if !args.json {
        println!("backfill {id} of {} started on {base}", args.pipeline);
    }
    let mut last = String::new();
    loop {
        let line = format!(
            "{} intervals: {} done, {} failed, {} running, {} pending",
            progress["intervals"],
            progress["done"],
            progress["failed"],
            progress["running"],
            progress["pending"]
        );
        if line != last && !args.json {
            println!("{line}");
            last = line;
        }
        if progress["finished"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let resp = with_token(client.get(format!("{base}/api/backfills/{id}")))
            .send()
            .await
            .or_else(|e| usage(format!("lost {base}: {e}")))?;
        progress = answer(resp).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&progress)?);
    }
    Ok(if progress["failed"] == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
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

fn code(outcome: &RunOutcome) -> u8 {
    if outcome.run.state == RunState::Success && !outcome.interrupted {
        exit::OK
    } else {
        exit::FAILED
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
    let intervals = pipeline.timetable.intervals_between(from, to);
    if intervals.is_empty() {
        return usage(format!(
            "`{}` has no interval with a logical date between {from} and {to} ({}, start_date {})",
            pipeline.id,
            pipeline.timetable.schedule.describe(),
            pipeline.timetable.start.format("%Y-%m-%d")
        ));
    }
    if args.dry_run {
        if args.json {
            let list: Vec<_> = intervals
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "pipeline": pipeline.id,
                        "logical_date": sluice_core::template::iso(i.start),
                        "data_interval_start": sluice_core::template::iso(i.start),
                        "data_interval_end": sluice_core::template::iso(i.end),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        } else {
            println!(
                "{} runs of {} would be executed:",
                intervals.len(),
                pipeline.id
            );
            for i in &intervals {
                println!(
                    "  {}  [{}, {})",
                    i.start
                        .with_timezone(&pipeline.timetable.tz)
                        .format("%Y-%m-%d %H:%M %Z"),
                    sluice_core::template::iso(i.start),
                    sluice_core::template::iso(i.end)
                );
            }
        }
        return Ok(exit::OK);
    }
    let store = ws.store()?;
    let exec = executor(&ws, store.clone())?;
    let progress = LiveProgress::new(
        (intervals.len() * pipeline.tasks.len()) as u64,
        global.quiet,
        args.json,
    );
    let results: Vec<anyhow::Result<RunOutcome>> = runtime()?.block_on(async {
        let stop = stop_signal();
        let results = futures::stream::iter(intervals.iter().copied())
            .map(|interval| {
                let exec = &exec;
                let progress = &progress;
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
            .collect::<Vec<_>>()
            .await;
        crate::alerts::flush(ALERT_FLUSH).await;
        crate::lineage::flush(&exec);
        results
    });
    progress.finish();
    let mut views = Vec::new();
    let mut all_ok = true;
    let mut table = Vec::new();
    for (interval, result) in intervals.iter().zip(results) {
        match result {
            Ok(outcome) => {
                all_ok &= code(&outcome) == exit::OK;
                let view = RunView::load(&store, &outcome.run, &order(pipeline))?;
                let failed: Vec<&str> = view
                    .tasks
                    .iter()
                    .filter(|t| t.state == "failed")
                    .map(|t| t.task.as_str())
                    .collect();
                table.push(vec![
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
                ]);
                views.push(view);
            }
            Err(e) => {
                all_ok = false;
                table.push(vec![
                    format!("  {}", sluice_core::template::iso(interval.start)),
                    "error".into(),
                    String::new(),
                    format!("{e:#}"),
                ]);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        let ok = views.iter().filter(|v| v.state == "success").count();
        println!(
            "backfill of {} from {from} to {to}: {ok} of {} runs succeeded",
            pipeline.id,
            intervals.len()
        );
        print_table(&table);
        if !all_ok {
            println!(
                "\ninspect failures with `sluice runs {}` and `sluice logs {} --date D --task T`",
                pipeline.id, pipeline.id
            );
        }
    }
    Ok(if all_ok { exit::OK } else { exit::FAILED })
}

#[derive(clap::Subcommand)]
pub enum DlqCommand {
    /// List tasks that exhausted their retries and bad records, newest first.
    List(DlqListArgs),
    /// Show a failed task's context: error, rendered configuration, tries.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Run a failed task again for its interval (once the cause is fixed), with its downstream
    /// tasks.
    Replay { id: i64 },
    /// Delete failed tasks and bad records recorded before a date.
    Purge {
        /// YYYY-MM-DD (UTC): entries recorded before this day are deleted.
        #[arg(long)]
        before: String,
    },
}

#[derive(Args)]
pub struct DlqListArgs {
    /// Only this pipeline's records.
    pipeline: Option<String>,
    /// Only this task's records.
    #[arg(long, requires = "pipeline")]
    task: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

pub fn dlq(global: &Global, command: DlqCommand) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let store = ws.store()?;
    let args = match command {
        DlqCommand::List(args) => args,
        DlqCommand::Show { id, json } => return dlq_show(&store, id, json),
        DlqCommand::Replay { id } => return dlq_replay(&ws, store, id),
        DlqCommand::Purge { before } => {
            let day = parse_date(&before)?;
            let cut = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            let n = store.purge_dead_letters(cut)?;
            println!(
                "deleted {n} dead-letter entr{} recorded before {day}",
                if n == 1 { "y" } else { "ies" }
            );
            return Ok(exit::OK);
        }
    };
    let tasks: Vec<_> = store
        .failed_tasks(args.pipeline.as_deref(), args.limit)?
        .into_iter()
        .filter(|t| args.task.as_ref().is_none_or(|want| &t.task == want))
        .collect();
    let records = store.dead_letters(args.pipeline.as_deref(), args.task.as_deref(), args.limit)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "failed_tasks": tasks,
                "bad_records": records,
            }))?
        );
        return Ok(exit::OK);
    }
    if records.is_empty() && tasks.is_empty() {
        println!(
            "the dead-letter store is empty{}",
            args.pipeline
                .map(|p| format!(" for {p}"))
                .unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    if !tasks.is_empty() {
        println!("failed tasks (sluice dlq show ID, sluice dlq replay ID):");
        let mut rows = vec![vec![
            "ID".into(),
            "PIPELINE".into(),
            "LOGICAL DATE".into(),
            "TASK".into(),
            "ERROR".into(),
        ]];
        for t in &tasks {
            let error: String = t
                .error
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect();
            rows.push(vec![
                t.id.to_string(),
                t.pipeline.clone(),
                sluice_core::template::iso(t.logical_date),
                t.task.clone(),
                match t.replayed_at {
                    Some(at) => format!("{error} (replayed {})", sluice_core::template::iso(at)),
                    None => error,
                },
            ]);
        }
        print_table(&rows);
        if !records.is_empty() {
            println!("\nbad records:");
        }
    }
    for r in &records {
        let at = match (r.line, r.row) {
            (Some(line), _) => format!("{}:{line}", r.source),
            (None, Some(row)) => format!("{} record {row}", r.source),
            _ => r.source.clone(),
        };
        println!("{at}: {}", r.reason);
        println!(
            "  {} / {} / {} try {}",
            r.pipeline, r.run_id, r.task, r.try_number
        );
        if !r.record.is_empty() {
            let shown: String = r.record.chars().take(200).collect();
            println!("  | {shown}");
        }
    }
    Ok(exit::OK)
}

fn failed_task(store: &Store, id: i64) -> anyhow::Result<sluice_store::FailedTaskRecord> {
    match store.failed_task(id)? {
        Some(t) => Ok(t),
        None => usage(format!(
            "no failed task {id} in the dead-letter store\n  hint: `sluice dlq list` shows their ids"
        )),
    }
}

fn dlq_show(store: &Store, id: i64, json: bool) -> anyhow::Result<u8> {
    let t = failed_task(store, id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(exit::OK);
    }
    println!(
        "failed task {id}: {} / {} / {}",
        t.pipeline,
        sluice_core::template::iso(t.logical_date),
        t.task
    );
    println!("error: {}", t.error);
    println!("configuration (rendered for that run):");
    for line in serde_json::to_string_pretty(&t.config)?.lines() {
        println!("  {line}");
    }
    println!("tries:");
    for tr in &t.tries {
        println!(
            "  {}  {}  {}{}",
            tr.try_number,
            tr.outcome,
            sluice_core::template::iso(tr.started_at),
            tr.error
                .as_deref()
                .map(|e| format!("  {}", e.lines().next().unwrap_or_default()))
                .unwrap_or_default()
        );
    }
    if let Some(at) = t.replayed_at {
        println!("replayed {}", sluice_core::template::iso(at));
    } else {
        println!("replay with: sluice dlq replay {id}");
    }
    Ok(exit::OK)
}

/// Clears the failed task (and what runs after it) in its run and runs the run again.
fn dlq_replay(ws: &Workspace, store: Arc<Store>, id: i64) -> anyhow::Result<u8> {
    let t = failed_task(&store, id)?;
    let p = ws.pipeline(&t.pipeline)?;
    let Some(run) = store.find_run(&t.pipeline, t.logical_date)? else {
        return usage(format!("the run of failed task {id} no longer exists"));
    };
    let names = [t.task.clone()];
    let specs = p
        .tasks_to_clear(&names, true)
        .or_else(|name| usage(format!("`{}` no longer has a task `{name}`", p.id)))?;
    store.clear(run.id, &specs)?;
    let interval = DataInterval {
        start: run.data_interval_start,
        end: run.data_interval_end,
    };
    let exec = executor(ws, store.clone())?;
    let progress = LiveProgress::new(specs.len() as u64, false, false);
    let outcome = runtime()?.block_on(async {
        let outcome = exec
            .run(
                RunRequest {
                    pipeline: p,
                    interval,
                    run_type: RunType::Manual,
                    rerun_failed: false,
                },
                &progress,
                stop_signal(),
            )
            .await;
        crate::alerts::flush(ALERT_FLUSH).await;
        crate::lineage::flush(&exec);
        outcome
    });
    progress.finish();
    let outcome = outcome?;
    let view = RunView::load(&store, &outcome.run, &order(p))?;
    view.print(10);
    let task_ok = view
        .tasks
        .iter()
        .any(|v| v.task == t.task && v.state == "success");
    if task_ok {
        store.mark_replayed(id)?;
        println!("\nreplayed failed task {id}: {} succeeded", t.task);
    }
    Ok(if task_ok {
        code(&outcome)
    } else {
        exit::FAILED
    })
}

pub fn list(global: &Global, args: RunsArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let order = match ws.project.pipeline(&args.pipeline) {
        Some(p) => order(p),
        None => {
            // A pipeline whose file is broken still has a history worth reading.
            if !ws.project.files.contains_key(&args.pipeline) {
                ws.pipeline(&args.pipeline)?;
            }
            Vec::new()
        }
    };
    let store = ws.store()?;
    let runs = store.runs(&args.pipeline, args.limit)?;
    let views: Vec<RunView> = runs
        .iter()
        .map(|r| RunView::load(&store, r, &order))
        .collect::<anyhow::Result<_>>()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else if views.is_empty() {
        println!(
            "no runs of {} yet; start one with `sluice run {}`",
            args.pipeline, args.pipeline
        );
    } else {
        for (n, v) in views.iter().enumerate() {
            if n > 0 {
                println!();
            }
            v.print(5);
        }
    }
    Ok(exit::OK)
}

/// The pipeline and its run for a local date.
fn find_run<'a>(
    ws: &'a Workspace,
    store: &Store,
    pipeline: &str,
    date: &str,
) -> anyhow::Result<(&'a Pipeline, sluice_store::RunRecord)> {
    let p = ws.pipeline(pipeline)?;
    let interval = interval_for(p, Some(date))?;
    match store.find_run(pipeline, interval.logical_date())? {
        Some(run) => Ok((p, run)),
        None => usage(format!(
            "`{pipeline}` has no run for {date}\n  hint: `sluice runs {pipeline}` lists its runs"
        )),
    }
}

fn task_name<'a>(p: &'a Pipeline, name: &str) -> anyhow::Result<&'a str> {
    match p.task_index(name) {
        Some(i) => Ok(&p.tasks[i].id),
        None => {
            let hint = did_you_mean(name, p.tasks.iter().map(|t| t.id.as_str()))
                .unwrap_or_else(|| format!("tasks: {}", order(p).join(", ")));
            usage(format!("`{}` has no task `{name}`\n  hint: {hint}", p.id))
        }
    }
}

pub fn logs(global: &Global, args: LogsArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let store = ws.store()?;
    let (p, run) = find_run(&ws, &store, &args.pipeline, &args.date)?;
    let task = task_name(p, &args.task)?;
    let tries = store.tries(run.id, task)?;
    let chosen = match args.try_number {
        Some(n) => tries.iter().find(|t| t.try_number == n),
        None => tries.last(),
    };
    let Some(t) = chosen else {
        return if tries.is_empty() {
            usage(format!("task `{task}` has not run yet in this run"))
        } else {
            usage(format!(
                "task `{task}` has tries 1 to {} in this run",
                tries.len()
            ))
        };
    };
    println!(
        "# {} {} try {} ({}) started {}",
        args.pipeline,
        task,
        t.try_number,
        t.outcome,
        sluice_core::template::iso(t.started_at)
    );
    if let Some(e) = &t.error {
        println!("# error: {e}");
    }
    match t.log_path.as_deref().map(std::fs::read_to_string) {
        Some(Ok(text)) => print!("{text}"),
        Some(Err(e)) => println!(
            "# the log file {} cannot be read: {e}",
            t.log_path.as_deref().unwrap_or_default()
        ),
        None => println!("# no log was recorded"),
    }
    Ok(exit::OK)
}

pub fn clear(global: &Global, args: ClearArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let store = ws.store()?;
    let (p, run) = find_run(&ws, &store, &args.pipeline, &args.date)?;
    for t in &args.tasks {
        task_name(p, t)?;
    }
    let specs = p
        .tasks_to_clear(&args.tasks, args.downstream)
        .expect("task names were checked");
    store.clear(run.id, &specs)?;
    let names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
    println!(
        "cleared {} task{} of {} {}: {}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        p.id,
        args.date,
        names.join(", ")
    );
    println!(
        "run `sluice run {} --date {}` to execute them",
        p.id, args.date
    );
    Ok(exit::OK)
}
