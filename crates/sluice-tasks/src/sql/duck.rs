//! The `sql` task on DuckDB: the script in one transaction on a blocking thread, interrupted
//! on cancellation, retried when it loses a write-write conflict to a concurrent task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_core::{TaskError, TaskOutput, TaskRun};
use sluice_warehouse::{QueryGuard, Warehouse, WarehouseError, execute_in_transaction};

/// Attempts of one transaction that loses write-write conflicts to concurrent tasks.
const CONFLICT_ATTEMPTS: u32 = 12;

fn is_conflict(message: &str) -> bool {
    message.contains("write-write conflict") || message.contains("Conflict on")
}

pub(super) async fn run(
    warehouse: Arc<Warehouse>,
    sql: String,
    run: &TaskRun,
) -> Result<TaskOutput, TaskError> {
    let mut conn = warehouse
        .connect()
        .map_err(|e| TaskError::failed(e.to_string()))?;
    let guard = QueryGuard::new(&conn);
    let cancel = run.cancel.clone();
    let interrupt = conn.interrupt_handle();
    // The query runs on a blocking thread; cancellation interrupts it from here, and the flag
    // stops a retry that an interrupt between attempts would miss.
    let log = run.log.clone();
    let stopped = Arc::new(AtomicBool::new(false));
    let stop_retries = stopped.clone();
    let work = tokio::task::spawn_blocking(move || {
        // DuckDB's concurrency control is optimistic: two transactions that touch the same
        // catalog entry or rows conflict, and the loser can simply go again.
        let mut attempt = 1;
        loop {
            if stop_retries.load(Ordering::SeqCst) {
                return Err(WarehouseError::Interrupted);
            }
            match execute_in_transaction(&mut conn, &sql) {
                Err(WarehouseError::Sql(msg))
                    if is_conflict(&msg) && attempt < CONFLICT_ATTEMPTS =>
                {
                    log.line(format!("transaction conflict, trying again: {msg}"));
                    // Exponential, capped, with jitter so that racing tasks drift apart.
                    let jitter = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| u64::from(d.subsec_nanos()) % 20);
                    let wait = (10u64 << attempt.min(6)).min(400) + jitter;
                    std::thread::sleep(std::time::Duration::from_millis(wait));
                    attempt += 1;
                }
                other => return other,
            }
        }
    });
    let result = tokio::select! {
        r = work => r.map_err(|e| TaskError::failed(format!("the query thread failed: {e}")))?,
        _ = cancel.cancelled() => {
            stopped.store(true, Ordering::SeqCst);
            interrupt.interrupt();
            Err(WarehouseError::Interrupted)
        }
    };
    guard.disarm();
    match result {
        Ok(()) => {
            run.log.line("committed");
            Ok(TaskOutput::default())
        }
        Err(WarehouseError::Interrupted) => Err(TaskError::failed("the query was interrupted")),
        Err(e) => {
            run.log.line(format!("rolled back: {e}"));
            Err(TaskError::failed(e.to_string()))
        }
    }
}
