//! `runs`, `logs` and `clear`: what a pipeline's runs did, and making tasks of a run runnable
//! again.

use std::io::Write;

use clap::Args;
use sluice_core::Pipeline;
use sluice_core::diag::did_you_mean;
use sluice_store::Store;

use crate::output::{RunView, task_order};
use crate::workspace::{Workspace, interval_for};
use crate::{Global, exit, try_log, usage};

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

pub fn list(global: &Global, args: RunsArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let order = match ws.project.pipeline(&args.pipeline) {
        Some(p) => task_order(p),
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
                .unwrap_or_else(|| format!("tasks: {}", task_order(p).join(", ")));
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
    match try_log::read(t) {
        Ok(Some(log)) => std::io::stdout().write_all(&log)?,
        Err(e) => println!(
            "# the log file {} cannot be read: {e}",
            t.log_path.as_deref().unwrap_or_default()
        ),
        Ok(None) => println!("# no log was recorded"),
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
