//! What the workspace's tests share: a temporary project and the `sluice` binary run in it
//! ([`project`]), PostgreSQL and MariaDB databases and schemas of a test's own, created and
//! dropped ([`pg`], [`mariadb`]), free ports ([`net`]), a local S3 server ([`s3`]), and Great
//! Expectations' conformance cases ([`conformance`]), signals to a process ([`send_signal`]),
//! TLS-only PostgreSQL and MariaDB servers of a test's own with their certificates ([`tls`]).
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
#[cfg(feature = "tls")]
pub mod tls;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sends `signal` (`libc::SIGTERM`, …) to process `pid`, as a user's Ctrl-C or `kill -9` would;
/// a process that is gone already is no error.
pub fn send_signal(pid: u32, signal: i32) {
    let pid = i32::try_from(pid).expect("a process id fits an i32");
    // SAFETY: kill(2) touches no memory of ours.
    #[allow(
        unsafe_code,
        reason = "libc::kill: std has no safe way to send a signal other than SIGKILL"
    )]
    unsafe {
        libc::kill(pid, signal);
    }
}

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
