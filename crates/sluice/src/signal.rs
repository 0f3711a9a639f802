//! Ctrl-C and SIGTERM, as the commands that run work until stopped see them.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Cancelled on Ctrl-C or SIGTERM: running tasks are stopped and the run can be resumed.
/// The handlers are installed before this returns, so no signal slips through before the run.
pub fn stop_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; Ctrl-C will not stop tasks cleanly");
        return token;
    };
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!(
            "stopping: waiting for running tasks to stop (run the same command again to resume)"
        );
        t.cancel();
    });
    token
}

/// A worker's two steps: the first SIGTERM or Ctrl-C cancels `stop` (claim nothing more, let
/// running tries finish); the second cancels `abandon` (hand them back to the queue).
pub fn worker_signals() -> (CancellationToken, CancellationToken) {
    let (stop, abandon) = (CancellationToken::new(), CancellationToken::new());
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; a stop signal will kill running tries");
        return (stop, abandon);
    };
    let steps = [
        (
            stop.clone(),
            "stopping: no new tries; waiting for the running ones (stop again to hand them back)",
        ),
        (
            abandon.clone(),
            "stopping now: handing the running tries back to the queue",
        ),
    ];
    tokio::spawn(async move {
        for (token, message) in steps {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("{message}");
            token.cancel();
        }
    });
    (stop, abandon)
}
