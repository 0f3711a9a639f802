//! What the workspace's tests share: a temporary project and the `sluice` binary run in it
//! ([`project`]), PostgreSQL and MariaDB databases and schemas of a test's own, created and
//! dropped ([`pg`], [`mariadb`]), free ports ([`net`]), a local S3 server ([`s3`]), and Great
//! Expectations' conformance cases ([`conformance`]).
//!
//! Every helper works from synchronous tests and from `#[tokio::test]`s alike: database work
//! runs on a thread of its own, since blocking on a runtime inside another one panics.
//! A helper that cannot reach what it needs panics with what to start or install.

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "mariadb")]
pub mod mariadb;
pub mod net;
pub mod pg;
pub mod project;
pub mod s3;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A name no other test uses at the same time (for a database, schema or table): `prefix`,
/// this process and a counter. Tests of one process (cargo test) and of several (nextest) get
/// different names.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `work` to completion on a thread and runtime of its own and returns its output; a
/// panic inside goes on in the caller.
pub(crate) fn block_on<F, T>(work: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(work())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
