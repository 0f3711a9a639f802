//! The process's [`Redactor`]: what the binary prints, logs, serves and sends passes through it.
//!
//! It starts out knowing the secrets of the environment (`SLUICE_API_TOKEN`, `SLUICE_METADATA`,
//! `SLUICE_CONN_*`) and learns a project's when the project is loaded ([`learn`]); a server that
//! reloads its project learns the new secrets and keeps the old ones, which runs begun before
//! the reload may still hold. Errors printed by `main`, tracing's log lines ([`Stderr`]),
//! reports printed with [`report!`], API and UI responses, lineage events and alerts all read
//! it through [`redactor`].

use std::io::Write;
use std::sync::{Arc, RwLock};

use sluice_core::{Environment, Redactor};

static PROCESS: RwLock<Option<Arc<Redactor>>> = RwLock::new(None);

/// The process's redactor.
pub fn redactor() -> Arc<Redactor> {
    if let Some(r) = PROCESS.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return r.clone();
    }
    current(&mut PROCESS.write().unwrap_or_else(|p| p.into_inner())).clone()
}

/// Adds the secrets `known` holds (a loaded project's) to the process's redactor.
pub fn learn(known: &Redactor) {
    let mut slot = PROCESS.write().unwrap_or_else(|p| p.into_inner());
    let merged = current(&mut slot).as_ref().clone().merged(known);
    *slot = Some(Arc::new(merged));
}

/// The redactor in `slot`, which starts out with the environment's secrets.
fn current(slot: &mut Option<Arc<Redactor>>) -> &Arc<Redactor> {
    slot.get_or_insert_with(|| Arc::new(Environment::process().redactor()))
}

/// `text` with every secret the process knows masked.
pub fn redact(text: &str) -> String {
    redactor().redact(text)
}

/// `eprintln!` through the process's redactor, for lines that may quote an error.
macro_rules! report {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::secrets::redact(&format!($($arg)*)))
    };
}
pub(crate) use report;

/// Standard error for tracing's log lines, masked: the formatter hands each event to a fresh
/// writer in one piece, which is masked and written when the writer is dropped.
pub struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One log event on its way to standard error.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = redact(&String::from_utf8_lossy(&self.0));
        // Nowhere to report a failure to write to standard error.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
