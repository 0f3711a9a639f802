//! The `sluice` binary: raw arguments → a loaded, validated project → work.

mod access;
mod alerts;
mod api_types;
mod check;
mod client;
mod dlq;
mod execution;
mod history;
mod init;
mod lineage;
mod metrics;
mod output;
mod run;
mod secrets;
mod serve;
mod signal;
mod stream;
mod try_log;
mod validate;
mod worker;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// Exit codes, as documented in `sluice --help`.
pub mod exit {
    pub const OK: u8 = 0;
    /// A run failed, or `check` found problems.
    pub const FAILED: u8 = 1;
    /// Bad usage or configuration.
    pub const USAGE: u8 = 2;
}

/// An error that is the user's to fix (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(msg.into()).into())
}

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Data pipelines in one binary: orchestration, extract and load, data quality, streaming",
    after_help = "Examples:\n  sluice init demo && cd demo\n  sluice check\n  sluice run daily_sales_etl --date 2024-01-01\n  sluice backfill daily_sales_etl --from 2024-01-01 --to 2024-01-07 --parallel 2\n\nExit codes: 0 success, 1 a run failed or check found problems, 2 usage or configuration error."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// The project folder (default: the current folder).
    #[arg(long, global = true, value_name = "DIR", env = "SLUICE_PROJECT")]
    pub project: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Global {
    pub fn project_dir(&self) -> PathBuf {
        self.project.clone().unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a project with a working demo pipeline and sample data.
    #[command(
        after_help = "Example:\n  sluice init demo && sluice run daily_sales_etl --project demo --date 2024-01-01"
    )]
    Init {
        /// The folder to create (must be empty or not exist).
        dir: PathBuf,
    },
    /// Parse and validate every pipeline; report problems as file:line:col.
    #[command(
        after_help = "Example:\n  sluice check --project demo\n\nExit code 1 when any problem is found."
    )]
    Check {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Execute (or resume) one run of a pipeline.
    #[command(
        after_help = "Examples:\n  sluice run daily_sales_etl --date 2024-01-01\n  sluice run daily_sales_etl            # the latest complete interval\n\nRunning the same command again resumes an interrupted run; finished tasks are not repeated."
    )]
    Run(run::RunArgs),
    /// Execute every run whose logical date falls in a range.
    #[command(
        after_help = "Examples:\n  sluice backfill daily_sales_etl --from 2024-01-01 --to 2024-01-31 --parallel 4\n  sluice backfill daily_sales_etl --from 2024-01-01 --to 2024-01-31 --dry-run"
    )]
    Backfill(run::BackfillArgs),
    /// List the latest runs of a pipeline with their task states.
    #[command(after_help = "Example:\n  sluice runs daily_sales_etl --limit 5")]
    Runs(history::RunsArgs),
    /// Print the log of a task try.
    #[command(
        after_help = "Example:\n  sluice logs daily_sales_etl --date 2024-01-01 --task load_to_staging --try 2"
    )]
    Logs(history::LogsArgs),
    /// Make tasks of a run runnable again (then `sluice run` executes them).
    #[command(
        after_help = "Examples:\n  sluice clear daily_sales_etl --date 2024-01-01 --task transform_data --downstream\n  sluice clear daily_sales_etl --date 2024-01-01          # every task"
    )]
    Clear(history::ClearArgs),
    /// Read the dead-letter store: records that could not be parsed or loaded, with their reason.
    #[command(
        after_help = "Examples:\n  sluice dlq list\n  sluice dlq list daily_sales_etl --task extract_orders --limit 50 --json"
    )]
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Manage the named API tokens of `sluice serve`, each with a role.
    #[command(
        after_help = "Examples:\n  sluice token create ci-deploy --role operator\n  sluice token list\n  sluice token revoke ci-deploy\n\nRoles: viewer (read), operator (also trigger, clear, backfill, pause, replay), admin (also the audit log). SLUICE_API_TOKEN stays an admin token."
    )]
    Token {
        #[command(subcommand)]
        command: access::TokenCommand,
    },
    /// Show what was changed through `sluice serve`: who, from where, what, the status.
    #[command(after_help = "Example:\n  sluice audit --limit 20")]
    Audit(access::AuditArgs),
    /// Run the scheduler and the REST API: runs are created as intervals close, files are
    /// reloaded when they change.
    #[command(
        after_help = "Examples:\n  sluice serve --project demo\n  SLUICE_API_TOKEN=secret sluice serve --addr 0.0.0.0:8080\n\nThe API is described at /api/openapi.json. SIGTERM or Ctrl-C stops it; interrupted runs resume on the next start."
    )]
    Serve(serve::ServeArgs),
    /// Show what a table or file is made from and what is made from it, across pipelines.
    #[command(
        after_help = "Examples:\n  sluice lineage staging.orders\n  sluice lineage analytics.daily_sales --json\n\nRun events go to `lineage:` in sluice.yaml: `{ file: lineage.ndjson }` or `{ url: http://marquez:5000 }` (OpenLineage)."
    )]
    Lineage(lineage::LineageArgs),
    /// Run the tries that `sluice serve --workers` hands out (metadata on PostgreSQL).
    #[command(
        after_help = "Examples:\n  SLUICE_METADATA=postgres://sluice@db/sluice sluice worker\n  sluice worker --queues gpu,default --concurrency 8 --lease 30s\n\nThe first SIGTERM (or Ctrl-C) stops taking tries and lets the running ones finish; a second hands them back to the queue."
    )]
    Worker(worker::WorkerArgs),
    /// Run a stream file: Kafka into a table in micro-batches (at least once or exactly once).
    #[command(
        after_help = "Examples:\n  sluice stream orders_raw\n  sluice stream orders_raw --stop-when-idle 10s\n\nSIGTERM or Ctrl-C stops it after the batch in hand; the next start resumes from the committed offsets."
    )]
    Stream(stream::StreamArgs),
    /// Check data against a Great Expectations suite (files, the lake, or a table).
    #[command(
        after_help = "Examples:\n  sluice validate --suite suites/orders.json data/orders.csv\n  sluice validate --suite suites/orders.json 'lake://orders/*/data.parquet' --format json\n  sluice validate --suite suites/orders.json warehouse:staging.orders --result-format COMPLETE\n  sluice validate --suite suites/fresh.json pg:public.orders --param expected_rows=1000\n\nExit code 0 when the suite passes, 1 when it fails, 2 for usage or configuration errors."
    )]
    Validate(validate::ValidateArgs),
    /// Print shell completions.
    #[command(after_help = "Example:\n  sluice completions bash > /etc/bash_completion.d/sluice")]
    Completions { shell: clap_complete::Shell },
}

fn init_tracing(global: &Global) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(secrets::Stderr)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global);
    let result = match cli.command {
        Command::Init { dir } => init::run(&dir),
        Command::Check { json } => check::run(&cli.global, json),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Backfill(args) => run::backfill(&cli.global, args),
        Command::Runs(args) => history::list(&cli.global, args),
        Command::Logs(args) => history::logs(&cli.global, args),
        Command::Clear(args) => history::clear(&cli.global, args),
        Command::Dlq { command } => dlq::dlq(&cli.global, command),
        Command::Token { command } => access::token(&cli.global, command),
        Command::Audit(args) => access::audit(&cli.global, args),
        Command::Validate(args) => validate::run(&cli.global, args),
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Lineage(args) => lineage::run(&cli.global, args),
        Command::Worker(args) => worker::run(&cli.global, args),
        Command::Stream(args) => stream::run(&cli.global, args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
            Ok(exit::OK)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let text = secrets::redact(&format!("{e:#}"));
            // Diagnostics carry their own `file:line:col: error:` prefix.
            if text.lines().next().is_some_and(|l| l.contains(": error: ")) {
                eprintln!("{text}");
            } else {
                eprintln!("error: {text}");
            }
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::from(exit::FAILED)
            }
        }
    }
}
