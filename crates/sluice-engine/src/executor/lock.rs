//! One process at a time executes a given run.

use std::fs::File;
use std::sync::Arc;

use sluice_store::{RunRecord, Store};

use super::{EngineError, Executor};

impl Executor {
    /// One process at a time executes a run: an advisory lock that the kernel releases when
    /// the process dies, however it dies — and, with the metadata on PostgreSQL, a session
    /// lock there too, so that schedulers on other machines keep off as well.
    pub(super) fn lock_run(&self, run: &RunRecord) -> Result<RunLock, EngineError> {
        let file = self.lock_file(run)?;
        if !self.store.try_lock_run(run.id)? {
            return Err(EngineError::Busy {
                pipeline: run.pipeline.clone(),
                logical_date: run.logical_date.to_rfc3339(),
                lock: format!("the metadata database's lock on run {}", run.id),
            });
        }
        Ok(RunLock {
            _file: file,
            store: self.store.clone(),
            run: run.id,
        })
    }

    fn lock_file(&self, run: &RunRecord) -> Result<File, EngineError> {
        let dir = self.paths.locks().join(&run.pipeline);
        std::fs::create_dir_all(&dir).map_err(|source| EngineError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(format!(
            "{}.lock",
            run.logical_date.format("%Y-%m-%dT%H%M%SZ")
        ));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| EngineError::Io {
                path: path.display().to_string(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Busy {
                pipeline: run.pipeline.clone(),
                logical_date: run.logical_date.to_rfc3339(),
                lock: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(EngineError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// Held while a run executes.
pub(super) struct RunLock {
    _file: File,
    store: Arc<Store>,
    run: i64,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Err(e) = self.store.unlock_run(self.run) {
            tracing::warn!(run = self.run, "cannot release the run's lock: {e}");
        }
    }
}
