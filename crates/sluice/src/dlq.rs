//! `dlq`: the dead-letter store — tasks that exhausted their retries and records that could
//! not be parsed or loaded — listed, shown, replayed and purged.

use std::sync::Arc;

use clap::Args;
use sluice_core::DataInterval;
use sluice_core::template::iso;
use sluice_engine::RunRequest;
use sluice_store::{RunType, Store};

use crate::execution::{executor, exit_code, runtime, settle};
use crate::output::{LiveProgress, RunView, print_table, task_order};
use crate::signal::stop_signal;
use crate::workspace::{Workspace, parse_date};
use crate::{Global, exit, usage};

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
    match command {
        DlqCommand::List(args) => list(&store, &args),
        DlqCommand::Show { id, json } => show(&store, id, json),
        DlqCommand::Replay { id } => replay(&ws, store, id),
        DlqCommand::Purge { before } => {
            let day = parse_date(&before)?;
            let cut = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            let n = store.purge_dead_letters(cut)?;
            println!(
                "deleted {n} dead-letter entr{} recorded before {day}",
                if n == 1 { "y" } else { "ies" }
            );
            Ok(exit::OK)
        }
    }
}

fn list(store: &Store, args: &DlqListArgs) -> anyhow::Result<u8> {
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
                .as_ref()
                .map(|p| format!(" for {p}"))
                .unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    if !tasks.is_empty() {
        print_failed_tasks(&tasks);
        if !records.is_empty() {
            println!("\nbad records:");
        }
    }
    print_bad_records(&records);
    Ok(exit::OK)
}

fn print_failed_tasks(tasks: &[sluice_store::FailedTaskRecord]) {
    println!("failed tasks (sluice dlq show ID, sluice dlq replay ID):");
    let mut rows = vec![vec![
        "ID".into(),
        "PIPELINE".into(),
        "LOGICAL DATE".into(),
        "TASK".into(),
        "ERROR".into(),
    ]];
    for t in tasks {
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
            iso(t.logical_date),
            t.task.clone(),
            match t.replayed_at {
                Some(at) => format!("{error} (replayed {})", iso(at)),
                None => error,
            },
        ]);
    }
    print_table(&rows);
}

fn print_bad_records(records: &[sluice_store::DeadLetterRecord]) {
    for r in records {
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
}

fn failed_task(store: &Store, id: i64) -> anyhow::Result<sluice_store::FailedTaskRecord> {
    match store.failed_task(id)? {
        Some(t) => Ok(t),
        None => usage(format!(
            "no failed task {id} in the dead-letter store\n  hint: `sluice dlq list` shows their ids"
        )),
    }
}

fn show(store: &Store, id: i64, json: bool) -> anyhow::Result<u8> {
    let t = failed_task(store, id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(exit::OK);
    }
    println!(
        "failed task {id}: {} / {} / {}",
        t.pipeline,
        iso(t.logical_date),
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
            iso(tr.started_at),
            tr.error
                .as_deref()
                .map(|e| format!("  {}", e.lines().next().unwrap_or_default()))
                .unwrap_or_default()
        );
    }
    if let Some(at) = t.replayed_at {
        println!("replayed {}", iso(at));
    } else {
        println!("replay with: sluice dlq replay {id}");
    }
    Ok(exit::OK)
}

/// Clears the failed task (and what runs after it) in its run and runs the run again.
fn replay(ws: &Workspace, store: Arc<Store>, id: i64) -> anyhow::Result<u8> {
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
        settle(&exec).await;
        outcome
    });
    progress.finish();
    let outcome = outcome?;
    let view = RunView::load(&store, &outcome.run, &task_order(p))?;
    view.print(10);
    let task_ok = view
        .tasks
        .iter()
        .any(|v| v.task == t.task && v.state == "success");
    if task_ok {
        println!("\nreplayed failed task {id}: {} succeeded", t.task);
    }
    Ok(if task_ok {
        exit_code(&outcome)
    } else {
        exit::FAILED
    })
}
