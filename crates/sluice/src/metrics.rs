//! The Prometheus endpoint: `/metrics` on `sluice serve` and on `sluice run --metrics-addr`.
//! The names and labels are `sluice_engine::metrics`'.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds: from a millisecond hand-off to an hour-long task.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Installs the process-wide recorder; call once, before any work.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)?
        .install_recorder()?;
    sluice_engine::metrics::describe();
    Ok(handle)
}

/// The `/metrics` route, in Prometheus' text format.
pub fn route<S: Clone + Send + Sync + 'static>(handle: PrometheusHandle) -> Router<S> {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    )
}

/// Serves `/metrics` on `addr` until the process ends (for `sluice run --metrics-addr`).
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .or_else(|e| crate::usage(format!("cannot listen on {addr}: {e}")))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, route::<()>(handle)).await;
    });
    Ok(())
}
