//! Bad records: every record that cannot be parsed or cast goes to the dead-letter store with
//! where it came from and why; the read fails once more than `max_bad_records` were seen.

use std::sync::{Arc, Mutex};

use sluice_core::{DeadLetter, Ledger};

use crate::IoError;

/// Records written to the ledger in one go.
const FLUSH_EVERY: usize = 1_000;

pub struct BadRecords {
    ledger: Arc<dyn Ledger>,
    max: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: u64,
    first: Option<DeadLetter>,
    buffer: Vec<DeadLetter>,
}

impl BadRecords {
    pub fn new(ledger: Arc<dyn Ledger>, max: u64) -> BadRecords {
        BadRecords {
            ledger,
            max,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keeps a bad record; fails once there are more than the allowed number.
    pub fn record(&self, bad: DeadLetter) -> Result<(), IoError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.seen += 1;
        if inner.first.is_none() {
            inner.first = Some(bad.clone());
        }
        inner.buffer.push(bad);
        if inner.seen > self.max {
            self.flush_locked(&mut inner)?;
            let first = inner.first.as_ref().expect("set above");
            let at = match (first.line, first.row) {
                (Some(line), _) => format!("{}:{line}", first.source),
                (None, Some(row)) => format!("{} record {row}", first.source),
                _ => first.source.clone(),
            };
            return Err(IoError::invalid(format!(
                "{} bad record(s), more than max_bad_records ({}) allows; the first, at {at}: {}. \
                 They are in the dead-letter store (`sluice dlq list`); fix the data, or raise max_bad_records to load the good rows",
                inner.seen, self.max, first.reason
            )));
        }
        if inner.buffer.len() >= FLUSH_EVERY {
            self.flush_locked(&mut inner)?;
        }
        Ok(())
    }

    /// Writes what is buffered to the dead-letter store.
    pub fn flush(&self) -> Result<(), IoError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked(&mut inner)
    }

    pub fn seen(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).seen
    }

    fn flush_locked(&self, inner: &mut Inner) -> Result<(), IoError> {
        if inner.buffer.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut inner.buffer);
        self.ledger
            .dead_letters(&batch)
            .map_err(|e| IoError::remote("dead-letter store", e))
    }
}
