//! `sluice stream`: Kafka into a table in micro-batches.
//!
//! A batch closes at `max_records` or `max_wait`. Each record is decoded (JSON, Avro or bytes:
//! `avro.rs`), checked for its required fields, and either loaded or sent to the dead-letter table
//! with its topic, partition, offset, payload and reason. With `exactly_once` the batch's rows, its
//! dead letters and the partitions' next offsets are written in one PostgreSQL transaction; the
//! offsets row of each partition is locked and read first, and records below it are skipped — so a
//! batch replayed after a crash, or processed by a stale owner after a rebalance, writes nothing
//! twice. With `at_least_once` the offsets are committed to Kafka only after the sink committed the
//! rows; appended rows are keyed by topic, partition and offset, so a replay rewrites rather than
//! duplicates.

mod avro;
pub mod metrics;
pub mod sink;
mod windows;

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_core::stream::{Delivery, StartPosition, Stream};
use sluice_stream::Fired;
use tokio_util::sync::CancellationToken;

pub use avro::{Decoded, Decoder};
pub use sink::{
    KafkaDeadLetters, KafkaSink, LakeDeadLetters, LakeSink, MySqlSink, Offsets, OpenTable, PgSink,
    Sink, SinkBatch, SinkFuture, SinkSetup, Written,
};
pub use windows::event_time;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The source cannot be read for now (a schema registry that does not answer): retryable.
    #[error("the source: {0}")]
    Source(String),
    #[error("the sink: {0}")]
    Sink(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "another process wrote this stream's partitions meanwhile (a rebalance); the batch was not written"
    )]
    Fenced,
}

/// One record as read.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

impl Record {
    /// Not yet written: at or past its partition's stored next offset (all records are, for a
    /// partition without one).
    pub fn is_new(&self, stored: &Offsets) -> bool {
        stored
            .get(&(self.topic.clone(), self.partition))
            .is_none_or(|next| self.offset >= *next)
    }
}

/// A payload as text to store: itself when it is UTF-8 without NUL (which PostgreSQL's text and
/// jsonb refuse), else base64 — with the encoding named, so text that looks like base64 is never
/// taken for it.
pub fn payload_text(payload: &[u8]) -> (String, &'static str) {
    use base64::Engine as _;
    match std::str::from_utf8(payload) {
        Ok(text) if !text.contains('\0') => (text.to_string(), "utf8"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(payload),
            "base64",
        ),
    }
}

/// A record the sink will not take, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub record: Record,
    pub reason: String,
}

/// Counts since the stream started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub consumed: u64,
    pub loaded: u64,
    pub dead_lettered: u64,
    /// Of the dead-lettered records, those later than their windows' allowed lateness.
    pub late: u64,
    /// Records a replay found already written (below the stored offsets).
    pub skipped: u64,
    pub batches: u64,
    /// When the first batch was committed, with the records it held, and when the last was:
    /// the sustained rate leaves out the consumer group's join.
    pub first_commit: Option<(Instant, u64)>,
    pub last_commit: Option<Instant>,
}

impl Totals {
    /// Records per second from the first commit to the last (None before a second batch).
    pub fn sustained_rate(&self) -> Option<f64> {
        let ((first, records), last) = (self.first_commit?, self.last_commit?);
        let seconds = last.duration_since(first).as_secs_f64();
        (seconds > 0.0).then(|| (self.consumed - records) as f64 / seconds)
    }
}

/// Checks a record: JSON object with every required field present and not null.
pub fn decode(record: &Record, require: &[String]) -> Result<serde_json::Value, String> {
    let value: serde_json::Value = serde_json::from_slice(&record.payload).map_err(|e| {
        format!(
            "malformed JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        )
    })?;
    checked(value, require)
}

/// A decoded record, of any format, as the later stages take it: an object with every
/// required field present and not null.
fn checked(value: serde_json::Value, require: &[String]) -> Result<serde_json::Value, String> {
    let Some(object) = value.as_object() else {
        return Err(format!("expected a JSON object, found {}", kind(&value)));
    };
    let missing: Vec<&str> = require
        .iter()
        .filter(|f| {
            object
                .get(f.as_str())
                .is_none_or(serde_json::Value::is_null)
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing required field(s): {}", missing.join(", ")));
    }
    Ok(value)
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The consumer for `stream`: manual commits, the configured start, cooperative rebalancing.
fn consumer(stream: &Stream) -> Result<StreamConsumer<Context>, StreamError> {
    let src = &stream.source;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &src.brokers)
        .set("group.id", &src.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("statistics.interval.ms", "1000")
        .set(
            "auto.offset.reset",
            match src.start {
                StartPosition::Earliest => "earliest",
                StartPosition::Latest => "latest",
            },
        );
    for (k, v) in &src.properties {
        config.set(k, v);
    }
    let consumer: StreamConsumer<Context> = config.create_with_context(Context {
        stream: stream.id.clone(),
    })?;
    let topics: Vec<&str> = src.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Every partition of the stream's topics, from the brokers' metadata: an aggregating
/// stream's watermark waits for all of them, whichever process of the group reads each.
fn topic_partitions(
    consumer: &StreamConsumer<Context>,
    stream: &Stream,
) -> Result<Vec<(String, i32)>, StreamError> {
    let mut all = Vec::new();
    for topic in &stream.source.topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in metadata.topics() {
            all.extend(
                t.partitions()
                    .iter()
                    .map(|p| (t.name().to_string(), p.id())),
            );
        }
    }
    Ok(all)
}

/// Runs `stream` until `stop` (or, with `stop_when_idle`, until no record came for that long).
///
/// While a batch is written, the next one is read: the sink's transaction and the broker's
/// fetches overlap, and the next batch still waits for the previous one's commit.
pub async fn run(
    stream: &Stream,
    setup: &SinkSetup,
    stop: CancellationToken,
    stop_when_idle: Option<Duration>,
) -> Result<Totals, StreamError> {
    let mut run = StreamRun::start(stream, setup, &stop).await?;
    let mut last_record = Instant::now();
    let mut prefetched: Option<Read> = None;
    loop {
        if stop.is_cancelled() {
            break;
        }
        let (batch, opened) = match prefetched.take() {
            Some(read) => read,
            None => next_batch(&run.consumer, stream, &stop).await?,
        };
        if batch.is_empty() {
            run.observe_watermarks();
            // Idle counts only once partitions are assigned: joining the group takes a while
            // (brokers delay the first rebalance, 3 s by default).
            if run.consumer.assignment()?.count() == 0 {
                last_record = Instant::now();
            } else if stop_when_idle.is_some_and(|idle| last_record.elapsed() >= idle) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        let Some(decoded) = run.decode(&batch).await? else {
            // Stopped while asking the schema registry: the batch is not committed, so the next
            // run reads it again.
            break;
        };
        let batch = DecodedBatch::of(batch, decoded);
        run.totals.consumed += batch.consumed();
        let (written, late) = if run.windows.is_none() {
            let (written, read) = run.write_rows_reading_next(&batch).await;
            prefetched = Some(read?);
            (written?, 0)
        } else {
            run.write_windows(&batch).await?
        };
        run.committed(&batch, &written, late, opened)?;
    }
    Ok(run.totals)
}

/// A batch as `next_batch` read it, with the time its first record came.
type Read = (Vec<Record>, Instant);

/// One run of a stream: its consumer, its sink and, for an aggregating stream, its windows.
struct StreamRun<'a> {
    stream: &'a Stream,
    setup: &'a SinkSetup,
    stop: &'a CancellationToken,
    decoder: Decoder,
    sink: Box<dyn Sink>,
    consumer: StreamConsumer<Context>,
    /// The window state (aggregating streams), and the stored offsets it stands for.
    windows: Option<windows::Windows>,
    seen: Offsets,
    /// Every partition of the topics (aggregating streams: the watermark waits for each).
    partitions: Vec<(String, i32)>,
    totals: Totals,
}

/// A batch decoded: the records the sink takes, those it will not, and the next offset to read
/// per partition — what is committed once the batch is durable.
struct DecodedBatch {
    good: Vec<(Record, serde_json::Value)>,
    bad: Vec<Rejected>,
    next: Offsets,
}

impl DecodedBatch {
    fn of(batch: Vec<Record>, decoded: Vec<Decoded>) -> DecodedBatch {
        let mut good: Vec<(Record, serde_json::Value)> = Vec::new();
        let mut bad: Vec<Rejected> = Vec::new();
        for (record, decoded) in batch.into_iter().zip(decoded) {
            match decoded {
                Ok(value) => good.push((record, value)),
                Err(reason) => bad.push(Rejected { record, reason }),
            }
        }
        let mut next = Offsets::new();
        for r in good
            .iter()
            .map(|(r, _)| r)
            .chain(bad.iter().map(|b| &b.record))
        {
            let e = next.entry((r.topic.clone(), r.partition)).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        DecodedBatch { good, bad, next }
    }

    fn consumed(&self) -> u64 {
        (self.good.len() + self.bad.len()) as u64
    }
}

/// What a batch did to an aggregating stream's windows: the windows that fired, the state after
/// it, and the records to dead-letter (the batch's own and those the windows refused).
struct Windowed {
    fired: Vec<Fired>,
    state: serde_json::Value,
    rejected: Vec<Rejected>,
    /// Records already in the window state (below the stored offsets).
    skipped: u64,
    late: u64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An aggregating stream's windows with the checkpointed state put back (None for a stream
/// that does not aggregate).
fn restore(
    stream: &Stream,
    state: Option<serde_json::Value>,
) -> Result<Option<windows::Windows>, StreamError> {
    let mut w = windows::Windows::of(stream);
    if let (Some(w), Some(state)) = (&mut w, state) {
        w.restore(state, now_ms()).map_err(|e| {
            StreamError::Sink(format!(
                "the checkpointed window state does not read back: {e}"
            ))
        })?;
    }
    Ok(w)
}

impl<'a> StreamRun<'a> {
    async fn start(
        stream: &'a Stream,
        setup: &'a SinkSetup,
        stop: &'a CancellationToken,
    ) -> Result<StreamRun<'a>, StreamError> {
        let decoder = Decoder::new(stream)?;
        let mut sink = setup.open(stream).await?;
        let checkpoint = sink.checkpoint().await?;
        let windows = restore(stream, checkpoint.state)?;
        let consumer = consumer(stream)?;
        let partitions = match windows {
            Some(_) => topic_partitions(&consumer, stream)?,
            None => Vec::new(),
        };
        Ok(StreamRun {
            stream,
            setup,
            stop,
            decoder,
            sink,
            consumer,
            windows,
            seen: checkpoint.offsets,
            partitions,
            totals: Totals::default(),
        })
    }

    /// Each record's payload decoded (or why not); None when stopped first.
    async fn decode(&mut self, batch: &[Record]) -> Result<Option<Vec<Decoded>>, StreamError> {
        self.decoder.decode_until_done(batch, self.stop).await
    }

    /// Writes a batch of rows while the next batch is read.
    async fn write_rows_reading_next(
        &mut self,
        batch: &DecodedBatch,
    ) -> (Result<Written, StreamError>, Result<Read, StreamError>) {
        let rows = SinkBatch::rows(&batch.good, &batch.bad);
        let exactly_once = self.stream.delivery == Delivery::ExactlyOnce;
        let write = write_until_done(
            &mut self.sink,
            self.setup,
            self.stream,
            &rows,
            &batch.next,
            exactly_once,
            self.stop,
        );
        tokio::join!(write, next_batch(&self.consumer, self.stream, self.stop))
    }

    /// Adds a batch to the windows and writes what fired with the window state and the offsets,
    /// in one transaction; with how many records were late.
    async fn write_windows(&mut self, batch: &DecodedBatch) -> Result<(Written, u64), StreamError> {
        loop {
            // Another process of the group wrote since (its own partitions, or ours before
            // a rebalance): its records are in the shared state, so start from that.
            if sink::moved(&self.seen, &self.sink.stored_offsets().await?) {
                let checkpoint = self.sink.checkpoint().await?;
                self.windows = restore(self.stream, checkpoint.state)?;
                self.seen = checkpoint.offsets;
            }
            let windowed = self.add_to_windows(batch)?;
            let write = SinkBatch {
                rows: &[],
                results: &windowed.fired,
                bad: &windowed.rejected,
                state: Some(&windowed.state),
                expected: Some(&self.seen),
            };
            match write_until_done(
                &mut self.sink,
                self.setup,
                self.stream,
                &write,
                &batch.next,
                true,
                self.stop,
            )
            .await
            {
                Ok(mut written) => {
                    written.skipped += windowed.skipped;
                    for (tp, offset) in &batch.next {
                        let stored = self.seen.entry(tp.clone()).or_insert(0);
                        *stored = (*stored).max(*offset);
                    }
                    return Ok((written, windowed.late));
                }
                // Another process wrote between our check and our write: stored offsets only
                // grow, so the check at the top sees it and the batch is built again on
                // that process's state.
                Err(StreamError::Fenced) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Adds the batch's records not yet in the window state and fires the windows the
    /// watermark closed.
    fn add_to_windows(&mut self, batch: &DecodedBatch) -> Result<Windowed, StreamError> {
        let w = self
            .windows
            .as_mut()
            .expect("an aggregating stream has windows");
        // Records below the stored offsets are already in the window state.
        let fresh = |r: &Record| r.is_new(&self.seen);
        let records: Vec<&(Record, serde_json::Value)> =
            batch.good.iter().filter(|(r, _)| fresh(r)).collect();
        let mut rejected: Vec<Rejected> = batch
            .bad
            .iter()
            .filter(|b| fresh(&b.record))
            .cloned()
            .collect();
        let skipped = batch.consumed() - (records.len() + rejected.len()) as u64;
        for e in self.consumer.assignment()?.elements() {
            let tp = (e.topic().to_string(), e.partition());
            if !self.partitions.contains(&tp) {
                self.partitions.push(tp); // the topic grew
            }
        }
        w.assign(&self.partitions, now_ms());
        let (refused, late) = w.add(records, now_ms());
        rejected.extend(refused);
        let fired = w.fire(now_ms());
        Ok(Windowed {
            state: w.state(),
            fired,
            rejected,
            skipped,
            late,
        })
    }

    /// Counts a batch the sink committed, commits its offsets to Kafka and reports it.
    fn committed(
        &mut self,
        batch: &DecodedBatch,
        written: &Written,
        late: u64,
        opened: Instant,
    ) -> Result<(), StreamError> {
        let totals = &mut self.totals;
        totals.loaded += written.loaded;
        totals.dead_lettered += written.dead_lettered;
        totals.late += late;
        totals.skipped += written.skipped;
        totals.batches += 1;
        // Committed to Kafka after the sink's commit: at least once by itself, and the
        // consumer group's lag stays visible with exactly once too.
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &batch.next {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        self.consumer.commit(&tpl, CommitMode::Sync)?;
        let consumed = batch.consumed();
        let now = Instant::now();
        totals.first_commit.get_or_insert((now, consumed));
        totals.last_commit = Some(now);
        metrics::batch_committed(
            &self.stream.id,
            &metrics::BatchFigures {
                consumed,
                loaded: written.loaded,
                dead_lettered: written.dead_lettered,
                late,
                replayed: written.skipped,
                took: opened.elapsed(),
            },
        );
        self.observe_watermarks();
        Ok(())
    }

    fn observe_watermarks(&mut self) {
        observe_watermarks(self.stream, self.windows.as_mut(), now_ms());
    }
}

/// Sets the event-time watermark gauges of an aggregating stream.
fn observe_watermarks(stream: &Stream, windows: Option<&mut windows::Windows>, now: i64) {
    let Some(w) = windows else { return };
    for (topic, partition, watermark) in w.partition_watermarks() {
        if let Some(ms) = watermark {
            metrics::partition_watermark(&stream.id, &topic, partition, ms);
        }
    }
    if let Some(ms) = w.watermark(now) {
        metrics::watermark(&stream.id, ms);
    }
}

/// The consumer's context: librdkafka's statistics (every second) give each assigned
/// partition's lag without asking the broker.
struct Context {
    stream: String,
}

impl rdkafka::ClientContext for Context {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal partition; a negative lag means "not known yet".
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::partition_lag(&self.stream, topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Context {}

/// Writes a batch, retrying while the sink is down (backoff from 1 s, doubling to 30 s,
/// reopening the sink when its connection was lost). Meanwhile nothing more is consumed:
/// librdkafka's prefetch queue is bounded, so memory is too. Gives up only when stopped.
async fn write_until_done(
    sink: &mut Box<dyn Sink>,
    setup: &SinkSetup,
    stream: &Stream,
    batch: &SinkBatch<'_>,
    next: &Offsets,
    exactly_once: bool,
    stop: &CancellationToken,
) -> Result<Written, StreamError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let error = match sink.write(batch, next, exactly_once).await {
            Err(StreamError::Sink(e)) => e,
            other => return other,
        };
        tracing::warn!(stream = %stream.id, "the sink refused a batch: {error}; trying again in {}s", backoff.as_secs());
        metrics::sink_retried(&stream.id);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return Err(StreamError::Sink(error)),
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
        if sink.is_closed() {
            match setup.open(stream).await {
                Ok(fresh) => *sink = fresh,
                Err(e) => tracing::warn!(stream = %stream.id, "cannot reopen the sink: {e}"),
            }
        }
    }
}

/// Reads until `max_records` or `max_wait` (from the batch's first record); with the time the
/// first record came.
async fn next_batch(
    consumer: &StreamConsumer<Context>,
    stream: &Stream,
    stop: &CancellationToken,
) -> Result<(Vec<Record>, Instant), StreamError> {
    let mut batch = Vec::new();
    let mut opened = Instant::now();
    let max = stream.batch.max_records as usize;
    let mut deadline = tokio::time::Instant::now() + stream.batch.max_wait;
    while batch.len() < max {
        let message = tokio::select! {
            m = consumer.recv() => m?,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = stop.cancelled() => break,
        };
        if batch.is_empty() {
            deadline = tokio::time::Instant::now() + stream.batch.max_wait;
            opened = Instant::now();
        }
        batch.push(Record {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload().unwrap_or_default().to_vec(),
        });
    }
    Ok((batch, opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &str) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[test]
    fn records_are_checked_with_the_reason_spelled_out() {
        let require = vec!["id".to_string(), "ts".to_string()];
        assert!(decode(&record(r#"{"id": 1, "ts": "x"}"#), &require).is_ok());
        assert_eq!(
            decode(&record(r#"{"id": 1, "ts": null}"#), &require).unwrap_err(),
            "missing required field(s): ts"
        );
        assert!(
            decode(&record("{\"id\": 1,\n oops}"), &require)
                .unwrap_err()
                .starts_with("malformed JSON at line 2, column 2")
        );
        assert_eq!(
            decode(&record("[1]"), &require).unwrap_err(),
            "expected a JSON object, found an array"
        );
    }
}
