//! A try's log, as the executor wrote it (secrets already masked): `sluice logs`, a run's
//! summary, the REST API and the web UI read it through here.

use sluice_store::{Store, TryRecord};

/// The try numbered `try_number` of `task` in run `run` (by store id), if it exists.
pub fn find(
    store: &Store,
    run: i64,
    task: &str,
    try_number: u32,
) -> anyhow::Result<Option<TryRecord>> {
    Ok(store
        .tries(run, task)?
        .into_iter()
        .find(|t| t.try_number == try_number))
}

/// The bytes of a try's log; `Ok(None)` when the try recorded no log.
pub fn read(t: &TryRecord) -> std::io::Result<Option<Vec<u8>>> {
    t.log_path.as_deref().map(std::fs::read).transpose()
}

/// A try's log as the API and the UI show it: empty when there is none or it cannot be read.
pub fn text(t: &TryRecord) -> String {
    match read(t) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    }
}

/// The last `n` lines of the log at `path` (a run's view names each task's latest log by its
/// path): what a run's summary shows of a failed task. Empty when it cannot be read.
pub fn last_lines(path: &str, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
