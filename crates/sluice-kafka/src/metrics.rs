//! The metrics a stream records, by name (dotted for StatsD; Prometheus shows
//! `stream_records_in_total`, `stream_batch_duration_seconds`…). Labels: the stream, and topic and
//! partition for the per-partition gauges — a bounded set, fixed by the topics' partitions.

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Records read from Kafka, by stream.
pub const RECORDS_IN: &str = "stream.records.in";
/// Rows written to the sink (window results, for an aggregating stream), by stream.
pub const RECORDS_OUT: &str = "stream.records.out";
/// Records sent to the dead-letter sink (bad and late ones), by stream.
pub const RECORDS_DEAD_LETTERED: &str = "stream.records.dead_lettered";
/// Records later than their windows' allowed lateness (also counted as dead-lettered).
pub const RECORDS_LATE: &str = "stream.records.late";
/// Records a replay found already written and skipped, by stream.
pub const RECORDS_REPLAYED: &str = "stream.records.replayed";
/// Records per micro-batch, by stream.
pub const BATCH_RECORDS: &str = "stream.batch.records";
/// Seconds from a batch's first record to its offsets' commit, by stream.
pub const BATCH_DURATION: &str = "stream.batch.duration";
/// Batch writes the sink refused and that are being retried, by stream.
pub const SINK_RETRIES: &str = "stream.sink.retries";
/// Batches the source could not decode for now (a schema registry down) and retried, by stream.
pub const SOURCE_RETRIES: &str = "stream.source.retries";
/// Records in a partition not read yet (its high watermark − the consumer's position).
pub const PARTITION_LAG: &str = "stream.partition.lag";
/// A partition's event-time watermark, in seconds since the epoch.
pub const PARTITION_WATERMARK: &str = "stream.partition.watermark";
/// The stream's watermark (the minimum over its active partitions), in seconds since the epoch.
pub const WATERMARK: &str = "stream.watermark";

/// Buckets for [`BATCH_RECORDS`] (the seconds buckets do not fit a count).
pub const BATCH_RECORDS_BUCKETS: &[f64] = &[
    1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0, 100_000.0,
];

/// Help texts and units, for exporters that show them.
pub fn describe() {
    describe_counter!(RECORDS_IN, "Records read from Kafka");
    describe_counter!(RECORDS_OUT, "Rows written to the stream's sink");
    describe_counter!(
        RECORDS_DEAD_LETTERED,
        "Records sent to the dead-letter sink"
    );
    describe_counter!(RECORDS_LATE, "Records later than the allowed lateness");
    describe_counter!(RECORDS_REPLAYED, "Replayed records found already written");
    describe_histogram!(BATCH_RECORDS, "Records per micro-batch");
    describe_histogram!(
        BATCH_DURATION,
        Unit::Seconds,
        "Latency from a micro-batch's first record to its commit"
    );
    describe_counter!(SINK_RETRIES, "Batch writes refused by the sink and retried");
    describe_counter!(
        SOURCE_RETRIES,
        "Batches not decodable for now (schema registry down) and retried"
    );
    describe_gauge!(PARTITION_LAG, "Records of a partition not read yet");
    describe_gauge!(
        PARTITION_WATERMARK,
        Unit::Seconds,
        "Event-time watermark of a partition"
    );
    describe_gauge!(
        WATERMARK,
        Unit::Seconds,
        "Event-time watermark of the stream"
    );
}

/// What one committed batch did.
pub(crate) struct BatchFigures {
    pub consumed: u64,
    pub loaded: u64,
    pub dead_lettered: u64,
    pub late: u64,
    pub replayed: u64,
    pub took: Duration,
}

pub(crate) fn batch_committed(stream: &str, f: &BatchFigures) {
    let s = || stream.to_string();
    counter!(RECORDS_IN, "stream" => s()).increment(f.consumed);
    counter!(RECORDS_OUT, "stream" => s()).increment(f.loaded);
    counter!(RECORDS_DEAD_LETTERED, "stream" => s()).increment(f.dead_lettered);
    counter!(RECORDS_LATE, "stream" => s()).increment(f.late);
    counter!(RECORDS_REPLAYED, "stream" => s()).increment(f.replayed);
    histogram!(BATCH_RECORDS, "stream" => s()).record(f.consumed as f64);
    histogram!(BATCH_DURATION, "stream" => s()).record(f.took.as_secs_f64());
}

pub(crate) fn sink_retried(stream: &str) {
    counter!(SINK_RETRIES, "stream" => stream.to_string()).increment(1);
}

pub(crate) fn source_retried(stream: &str) {
    counter!(SOURCE_RETRIES, "stream" => stream.to_string()).increment(1);
}

pub(crate) fn partition_lag(stream: &str, topic: &str, partition: i32, lag: i64) {
    gauge!(PARTITION_LAG, "stream" => stream.to_string(), "topic" => topic.to_string(), "partition" => partition.to_string())
        .set(lag.max(0) as f64);
}

pub(crate) fn partition_watermark(stream: &str, topic: &str, partition: i32, ms: i64) {
    gauge!(PARTITION_WATERMARK, "stream" => stream.to_string(), "topic" => topic.to_string(), "partition" => partition.to_string())
        .set(ms as f64 / 1000.0);
}

pub(crate) fn watermark(stream: &str, ms: i64) {
    gauge!(WATERMARK, "stream" => stream.to_string()).set(ms as f64 / 1000.0);
}
