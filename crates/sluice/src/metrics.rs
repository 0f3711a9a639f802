//! Where metrics go: the Prometheus endpoint (`/metrics` on `sluice serve` and on `sluice run
//! --metrics-addr`) and, when `statsd:` is set, a DogStatsD agent over UDP with the names as
//! they are (`prefix.pipeline.task.duration`) and labels as `key:value` tags. The names and
//! labels are `sluice_engine::metrics`'.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::time::Duration;

use metrics_exporter_dogstatsd::DogStatsDBuilder;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::FanoutBuilder;
use sluice_core::Statsd;

/// How often DogStatsD datagrams are sent; a command waits this long before it exits so the
/// last figures are not lost.
pub const STATSD_FLUSH: Duration = Duration::from_secs(1);

/// Histogram buckets in seconds: from a millisecond hand-off to an hour-long task.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Installs the process-wide recorder (Prometheus, plus DogStatsD when configured); call
/// once, before any work.
pub fn install(statsd: Option<&Statsd>) -> anyhow::Result<PrometheusHandle> {
    // Prometheus' own conventions (counters end in `_total`, durations in `_seconds`), so that
    // `promtool check metrics` finds nothing to lint; StatsD keeps the article's dotted names.
    let prometheus = PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets(BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(sluice_kafka::metrics::BATCH_RECORDS.replace('.', "_")),
            sluice_kafka::metrics::BATCH_RECORDS_BUCKETS,
        )?
        .build_recorder();
    let handle = prometheus.handle();
    let mut fanout = FanoutBuilder::default().add_recorder(prometheus);
    if let Some(s) = statsd {
        let mut builder = DogStatsDBuilder::default()
            .with_remote_address(format!("{}:{}", s.host, s.port))?
            .with_flush_interval(STATSD_FLUSH)
            .with_telemetry(false);
        if let Some(prefix) = &s.prefix {
            builder = builder.set_global_prefix(prefix);
        }
        fanout = fanout.add_recorder(builder.build()?);
    }
    metrics::set_global_recorder(fanout.build())
        .map_err(|_| anyhow::anyhow!("a metrics recorder is installed already"))?;
    sluice_engine::metrics::describe();
    sluice_kafka::metrics::describe();
    // Histograms need their buckets drained now and then when nobody scrapes.
    let upkeep = handle.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(5));
            upkeep.run_upkeep();
        }
    });
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

/// For a command that runs work (`sluice run`, `sluice stream`): installs the recorder when
/// metrics go anywhere — StatsD from the settings, Prometheus at `addr` — and serves `addr`.
pub async fn start(statsd: Option<&Statsd>, addr: Option<SocketAddr>) -> anyhow::Result<()> {
    if addr.is_some() || statsd.is_some() {
        let handle = install(statsd)?;
        if let Some(addr) = addr {
            serve(addr, handle).await?;
        }
    }
    Ok(())
}

/// Before a command exits: waits for the last DogStatsD flush, so its figures are not lost.
pub fn flush(statsd: Option<&Statsd>) {
    if statsd.is_some() {
        std::thread::sleep(STATSD_FLUSH + Duration::from_millis(200));
    }
}

/// Serves `/metrics` on `addr` until the process ends (for `sluice run` and `sluice stream` with `--metrics-addr`).
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .or_else(|e| crate::usage(format!("cannot listen on {addr}: {e}")))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, route::<()>(handle)).await;
    });
    Ok(())
}
