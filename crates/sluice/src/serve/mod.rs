//! `sluice serve`: the always-on scheduler and the REST API, in one process.
//!
//! A tick (every second, or at once when something changed) does three things: picks up
//! changed project files (a broken file is reported and its last good pipelines keep running),
//! resumes unfinished runs (restarted server, API triggers, cleared tasks) and creates the runs
//! whose intervals have closed (catchup honoured, at most `max_active_runs` per pipeline). Runs
//! execute concurrently through the same executor as `sluice run`, which hands a finished
//! task's dependents their turn at once. The project's streams run beside the scheduler
//! (`stream::Supervisor`). SIGTERM stops scheduling, interrupts running tasks (they do not use
//! up a retry), stops the streams after their batch in hand, and exits; the next start resumes.

mod access;
mod api;
mod guard;
mod tls;
mod ui;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use clap::Args;
use sluice_core::schedule::MAX_INTERVALS;
use sluice_core::{DataInterval, Diagnostic, Pipeline, Project};
use sluice_engine::{Dispatch, EngineError, Executor, Progress, RunRequest};
use sluice_store::{RunType, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::secrets::report;
use crate::workspace::{Fingerprint, fingerprint};
use crate::{Global, exit, usage};

#[derive(Args)]
pub struct ServeArgs {
    /// Where the REST API listens. Off loopback, tokens (`sluice token create`, or
    /// SLUICE_API_TOKEN) and TLS are required.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The server's certificate chain (PEM): it speaks HTTPS. Overrides `serve.tls`.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP off loopback (behind a TLS-terminating proxy, say), on purpose.
    #[arg(long)]
    insecure_http: bool,
    /// Hand tries to `sluice worker` processes (on this or other machines) instead of running
    /// them here. Needs the metadata on PostgreSQL.
    #[arg(long)]
    workers: bool,
}

/// Runs started by the server report through its own lines, not a progress bar.
struct Quiet;

impl Progress for Quiet {}

/// The environment variable that holds the API's bearer token.
pub const TOKEN_ENV: &str = sluice_core::settings::API_TOKEN_ENV;

/// The project as last loaded: its pipelines (the last good version of each) and problems.
pub struct Loaded {
    pub project: Arc<Project>,
    /// Pool slots shared by every run this server executes.
    pools: Arc<sluice_engine::Pools>,
    pub pipelines: BTreeMap<String, Arc<Pipeline>>,
    pub problems: Vec<Diagnostic>,
    fingerprint: Fingerprint,
}

pub struct Service {
    pub root: PathBuf,
    pub store: Arc<Store>,
    pub loaded: RwLock<Loaded>,
    /// Runs executing in this process, by store id, per pipeline.
    active: Mutex<HashMap<String, HashSet<i64>>>,
    /// Runs another process holds, not retried before this instant.
    busy_until: Mutex<HashMap<i64, Instant>>,
    runs: TaskTracker,
    pub stop: CancellationToken,
    pub wake: Notify,
    /// Where runs execute their tries.
    dispatch: Dispatch,
    /// Where OpenLineage run events go.
    lineage: Option<Arc<dyn sluice_engine::lineage::LineageSink>>,
}

impl Service {
    pub fn pipeline(&self, id: &str) -> Option<Arc<Pipeline>> {
        self.loaded.read().expect("lock").pipelines.get(id).cloned()
    }

    /// The most intervals one backfill request may create runs for (`serve:` in sluice.yaml).
    pub fn max_backfill_intervals(&self) -> u32 {
        let loaded = self.loaded.read().expect("lock");
        loaded.project.settings.serve.max_backfill_intervals
    }

    /// Creates a backfill's runs, queued (blocking; in the background of the request that
    /// asked for it, or at start for a backfill a stopped server left unfinished). Runs that
    /// exist already are left as they are.
    pub fn create_backfill_runs(&self, p: &Pipeline, backfill: i64, intervals: &[DataInterval]) {
        let specs = task_specs(p);
        for (i, interval) in intervals.iter().enumerate() {
            if let Err(e) = self
                .store
                .ensure_run(&p.id, interval, RunType::Backfill, &specs)
            {
                tracing::error!(
                    pipeline = %p.id,
                    backfill,
                    "creating the backfill's runs stopped after {i} of {}: {e:#}",
                    intervals.len()
                );
                break;
            }
            // The scheduler starts on the first runs while the rest are created.
            if i % 100 == 99 {
                self.wake.notify_one();
            }
        }
        self.wake.notify_one();
    }

    /// Creates the runs of backfills whose creation a stop interrupted.
    fn resume_backfills(&self) -> anyhow::Result<()> {
        for b in self.store.backfills(None)? {
            let Some(p) = self.pipeline(&b.pipeline) else {
                continue;
            };
            let (Ok(from), Ok(to)) = (
                sluice_core::schedule::parse_date(&b.from),
                sluice_core::schedule::parse_date(&b.to),
            ) else {
                continue;
            };
            let Ok(intervals) = p.timetable.intervals_between(from, to, MAX_INTERVALS) else {
                continue;
            };
            let dates: Vec<_> = intervals.iter().map(|i| i.start).collect();
            let states = self.store.run_states(&b.pipeline, &dates)?;
            if states.iter().any(Option::is_none) {
                self.create_backfill_runs(&p, b.id, &intervals);
            }
        }
        Ok(())
    }

    fn executor(&self) -> Executor {
        let loaded = self.loaded.read().expect("lock");
        let project = &loaded.project;
        Executor {
            store: self.store.clone(),
            paths: project.paths.clone(),
            parallelism: project.settings.parallelism,
            redactor: project.redactor.clone(),
            pools: loaded.pools.clone(),
            notifier: crate::alerts::notifier(&project.settings),
            dispatch: self.dispatch.clone(),
            lineage: self.lineage.clone(),
        }
    }

    fn active_count(&self, pipeline: &str) -> usize {
        self.active
            .lock()
            .expect("lock")
            .get(pipeline)
            .map_or(0, HashSet::len)
    }

    /// Starts executing a run in the background, unless it already is.
    fn start(
        self: &Arc<Self>,
        pipeline: Arc<Pipeline>,
        run_id: i64,
        interval: DataInterval,
        run_type: RunType,
    ) {
        {
            let mut active = self.active.lock().expect("lock");
            if !active
                .entry(pipeline.id.clone())
                .or_default()
                .insert(run_id)
            {
                return;
            }
        }
        let service = self.clone();
        let exec = self.executor();
        let stop = self.stop.child_token();
        self.runs.spawn(async move {
            let request = RunRequest {
                pipeline: &pipeline,
                interval,
                run_type,
                rerun_failed: false,
            };
            match exec.run(request, &Quiet, stop).await {
                Ok(outcome) => eprintln!(
                    "{} {}: {}{}",
                    pipeline.id,
                    sluice_core::template::iso(outcome.run.logical_date),
                    outcome.run.state,
                    if outcome.interrupted {
                        " (interrupted; resumes on the next start)"
                    } else {
                        ""
                    }
                ),
                Err(EngineError::Busy { .. }) => {
                    service
                        .busy_until
                        .lock()
                        .expect("lock")
                        .insert(run_id, Instant::now() + Duration::from_secs(30));
                }
                Err(e) => report!("{}: {e}", pipeline.id),
            }
            if let Some(set) = service.active.lock().expect("lock").get_mut(&pipeline.id) {
                set.remove(&run_id);
            }
            service.wake.notify_one();
        });
    }

    /// One scheduler pass: resume what is unfinished, then create what is due.
    fn tick(self: &Arc<Self>) -> anyhow::Result<()> {
        if let Dispatch::Workers { .. } = self.dispatch {
            // Tries of workers that stopped renewing their leases are answered `lost`, so the
            // runs waiting for them retry them (live workers do this too).
            self.store.expire_leases()?;
            sluice_engine::metrics::queue_depth(self.store.queue_depth()?);
        }
        let paused = self.store.paused()?;
        let pipelines = self.loaded.read().expect("lock").pipelines.clone();
        let now = chrono::Utc::now();
        for run in self.store.unfinished_runs()? {
            let Some(p) = pipelines.get(&run.pipeline) else {
                continue;
            };
            if paused.contains(&p.id) || self.active_count(&p.id) >= p.max_active_runs as usize {
                continue;
            }
            if self
                .busy_until
                .lock()
                .expect("lock")
                .get(&run.id)
                .is_some_and(|until| *until > Instant::now())
            {
                continue;
            }
            let interval = DataInterval {
                start: run.data_interval_start,
                end: run.data_interval_end,
            };
            let run_type = match run.run_type.as_str() {
                "scheduled" => RunType::Scheduled,
                "backfill" => RunType::Backfill,
                _ => RunType::Manual,
            };
            self.start(p.clone(), run.id, interval, run_type);
        }
        for p in pipelines.values() {
            if paused.contains(&p.id) {
                continue;
            }
            let last = self.store.latest_scheduled(&p.id)?.map(|r| DataInterval {
                start: r.data_interval_start,
                end: r.data_interval_end,
            });
            for interval in p.timetable.due(last.as_ref(), now, p.catchup) {
                if self.active_count(&p.id) >= p.max_active_runs as usize {
                    break;
                }
                let (run, _) =
                    self.store
                        .ensure_run(&p.id, &interval, RunType::Scheduled, &task_specs(p))?;
                self.start(p.clone(), run.id, interval, RunType::Scheduled);
            }
        }
        Ok(())
    }

    /// Reloads the project when one of its files changed.
    fn reload_if_changed(&self) {
        let fingerprint = fingerprint(&self.root);
        if self.loaded.read().expect("lock").fingerprint == fingerprint {
            return;
        }
        match crate::workspace::load_project(&self.root) {
            Err(diags) => {
                for d in &diags {
                    eprintln!("{d}");
                }
                eprintln!("the settings have problems; still serving the last good project");
                let mut loaded = self.loaded.write().expect("lock");
                loaded.problems = diags;
                loaded.fingerprint = fingerprint;
            }
            Ok(project) => {
                let mut loaded = self.loaded.write().expect("lock");
                let next = merge(&loaded, &project);
                for d in &project.diagnostics {
                    eprintln!("{d}");
                }
                eprintln!(
                    "reloaded: {} pipelines{}",
                    next.len(),
                    match project.errors().count() {
                        0 => String::new(),
                        n => format!("; {n} problems (broken files keep their last good version)"),
                    }
                );
                loaded.problems = project.diagnostics.clone();
                loaded.pipelines = next;
                if project.settings.pools != loaded.project.settings.pools {
                    loaded.pools = Arc::new(sluice_engine::Pools::new(&project.settings.pools));
                }
                loaded.project = Arc::new(project);
                loaded.fingerprint = fingerprint;
            }
        }
    }
}

/// The task list `ensure_run` wants: (task, tries allowed).
pub fn task_specs(p: &Pipeline) -> Vec<(&str, u32)> {
    p.tasks
        .iter()
        .map(|t| (t.id.as_str(), t.retry.retries + 1))
        .collect()
}

/// The new project's pipelines, plus the last good version of those whose file now has
/// problems (so a typo in one file does not stop its pipelines).
fn merge(old: &Loaded, new: &Project) -> BTreeMap<String, Arc<Pipeline>> {
    let mut next: BTreeMap<String, Arc<Pipeline>> = new
        .pipelines
        .iter()
        .map(|p| (p.id.clone(), Arc::new(p.clone())))
        .collect();
    let broken: HashSet<&str> = new.errors().map(|d| d.file.as_str()).collect();
    for (id, p) in &old.pipelines {
        if !next.contains_key(id) && broken.contains(p.file.as_str()) {
            next.insert(id.clone(), p.clone());
        }
    }
    next
}

pub fn run(global: &Global, args: ServeArgs) -> anyhow::Result<u8> {
    let root = std::path::absolute(global.project_dir())?;
    let project = crate::workspace::load_project(&root).map_err(|diags| {
        let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
        crate::UsageError(text.join("\n"))
    })?;
    let token = sluice_core::Environment::process()
        .api_token()
        .map(String::from);
    let store = Arc::new(crate::workspace::open_store(&project.settings.metadata)?);
    let off_loopback = !args.addr.ip().is_loopback();
    if token.is_none() && off_loopback && !store.has_tokens()? {
        return usage(format!(
            "serving on {} (not loopback only) needs API tokens\n  hint: create them with `sluice token create NAME --role viewer|operator|admin`, set {TOKEN_ENV}, or listen on 127.0.0.1",
            args.addr
        ));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::config(cert, key)?),
        _ => match &project.settings.serve.tls {
            Some(t) => Some(tls::config(&t.cert, &t.key)?),
            None => None,
        },
    };
    if tls.is_none() && off_loopback && !args.insecure_http {
        return usage(format!(
            "serving on {} (not loopback only) without TLS would send tokens and sessions in the clear\n  hint: set `serve: {{ tls: {{ cert: …, key: … }} }}` in sluice.yaml or pass --tls-cert and --tls-key; behind a TLS-terminating proxy, pass --insecure-http",
            args.addr
        ));
    }
    if args.workers && store.dialect() != sluice_store::db::Dialect::Postgres {
        return usage(
            "`sluice serve --workers` needs the metadata on PostgreSQL\n  hint: set `metadata: postgres://…` in sluice.yaml (or SLUICE_METADATA), the same for every worker",
        );
    }
    let metrics = crate::metrics::install(project.settings.statsd.as_ref())?;
    for d in &project.diagnostics {
        eprintln!("{d}");
    }
    let pipelines = project
        .pipelines
        .iter()
        .map(|p| (p.id.clone(), Arc::new(p.clone())))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dispatch = match (args.workers, store.url()) {
        (true, Some(url)) => Dispatch::Workers {
            answered: Some(runtime.block_on(sluice_store::listen(url, sluice_store::ANSWERED))?),
        },
        (true, None) => Dispatch::Workers { answered: None },
        (false, _) => Dispatch::Local,
    };
    let lineage = crate::lineage::sink(project.settings.lineage.as_ref())?;
    let service = Arc::new(Service {
        loaded: RwLock::new(Loaded {
            pools: Arc::new(sluice_engine::Pools::new(&project.settings.pools)),
            problems: project.diagnostics.clone(),
            pipelines,
            project: Arc::new(project),
            fingerprint: fingerprint(&root),
        }),
        root,
        store,
        active: Mutex::default(),
        busy_until: Mutex::default(),
        runs: TaskTracker::new(),
        stop: CancellationToken::new(),
        wake: Notify::new(),
        dispatch,
        lineage,
    });
    runtime.block_on(serve(service, args.addr, token, tls, metrics))
}

/// Answers the API and the UI, schedules and keeps the streams running until a stop signal;
/// then lets the running runs and streams stop and waits for their alerts and lineage events.
async fn serve(
    service: Arc<Service>,
    addr: SocketAddr,
    token: Option<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<u8> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .or_else(|e| usage(format!("cannot listen on {addr}: {e}")))?;
    let addr = listener.local_addr()?;
    let stop = crate::signal::stop_signal();
    eprintln!(
        "sluice serve: {} pipelines, API on {}://{addr}/api (OpenAPI at /api/openapi.json){}",
        service.loaded.read().expect("lock").pipelines.len(),
        if tls.is_some() { "https" } else { "http" },
        if token.is_some() || service.store.has_tokens().unwrap_or(true) {
            ", bearer token required"
        } else {
            ""
        }
    );
    // Read once: a changed `serve:` section takes effect at the next start.
    let allowed_hosts = service
        .loaded
        .read()
        .expect("lock")
        .project
        .settings
        .serve
        .allowed_hosts
        .clone();
    let app = api::router(
        service.clone(),
        token,
        &allowed_hosts,
        tls.is_some(),
        metrics,
    )
    .into_make_service_with_connect_info::<access::Peer>();
    let server_stop = stop.clone();
    let stopped = async move { server_stop.cancelled().await };
    let server = match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?;
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }),
    };
    let resuming = service.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = resuming.resume_backfills() {
            tracing::error!("resuming unfinished backfills: {e:#}");
        }
    });
    let streams = schedule(&service, &stop).await;
    service.stop.cancel();
    service.runs.close();
    service.runs.wait().await;
    streams.wait().await;
    crate::alerts::flush(Duration::from_secs(15)).await;
    if let Some(sink) = &service.lineage {
        sink.flush(Duration::from_secs(15));
    }
    let _ = server.await;
    eprintln!("sluice serve: stopped");
    Ok(exit::OK)
}

/// The scheduler's loop until `stop`: each pass reloads changed files, brings the streams in
/// line with the project, and ticks. Returns the streams' supervisor, to wait for them.
async fn schedule(service: &Arc<Service>, stop: &CancellationToken) -> crate::stream::Supervisor {
    let mut streams = crate::stream::Supervisor::new(service.stop.clone());
    let mut streams_of: Option<Arc<Project>> = None;
    loop {
        service.reload_if_changed();
        let project = service.loaded.read().expect("lock").project.clone();
        if !streams_of
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, &project))
        {
            streams.update(&project);
            streams_of = Some(project);
        }
        if let Err(e) = service.tick() {
            report!("scheduler: {e:#}");
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = service.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    streams
}
