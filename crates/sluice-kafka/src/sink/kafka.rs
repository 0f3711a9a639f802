//! Kafka topics as sinks, on the source's brokers: records (as JSON) to a topic, and dead
//! letters to a topic with where they came from and why in their headers — Kafka Connect's
//! dead-letter-queue layout, so tools that read Connect's `__connect.errors.*` headers need
//! only the prefix changed.
//!
//! An idempotent producer (`enable.idempotence`, `acks=all`): a batch counts as written once
//! every message is acknowledged, and only then are the source offsets committed. A batch that
//! fails part way is sent again whole, so a topic sink is at least once; with `key:` (upsert)
//! messages are keyed, and a compacted topic keeps the last value of each key.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_core::stream::Stream;

use super::{
    Checkpoint, DeadLetters, Offsets, Sink, SinkBatch, SinkFuture, Written, key_text, rows_to_write,
};
use crate::{Rejected, StreamError};

/// How long a batch's messages may wait for their acknowledgements.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A producer on the stream's brokers, with the source's security settings.
fn producer(stream: &Stream) -> Result<FutureProducer, StreamError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &stream.source.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        );
    // Only what a producer shares with the consumer: how to reach and authenticate to the
    // brokers. Consumer settings (group, offsets) would be refused or warned about.
    for (k, v) in &stream.source.properties {
        if ["security.", "sasl.", "ssl.", "client.", "socket."]
            .iter()
            .any(|p| k.starts_with(p))
        {
            config.set(k, v);
        }
    }
    Ok(config.create()?)
}

fn delivery_error(topic: &str, e: rdkafka::error::KafkaError) -> StreamError {
    StreamError::Sink(format!("producing to topic `{topic}`: {e}"))
}

/// Sends every message and waits for all acknowledgements; the first failure fails the batch.
async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    messages: Vec<(Option<String>, Vec<u8>, Option<OwnedHeaders>)>,
) -> Result<u64, StreamError> {
    let mut pending = Vec::with_capacity(messages.len());
    for (key, payload, headers) in &messages {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key.as_str());
        }
        if let Some(headers) = headers {
            record = record.headers(headers.clone());
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| delivery_error(topic, e))?;
        pending.push(delivery);
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(delivery_error(topic, e)),
            Err(_) => {
                return Err(StreamError::Sink(format!(
                    "producing to topic `{topic}`: the producer went away"
                )));
            }
        }
    }
    Ok(messages.len() as u64)
}

/// Records as JSON messages to a topic.
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    keys: Vec<String>,
    dead_letters: KafkaDeadLetters,
}

impl KafkaSink {
    pub fn connect(stream: &Stream, topic: &str) -> Result<KafkaSink, StreamError> {
        Ok(KafkaSink {
            producer: producer(stream)?,
            topic: topic.to_string(),
            keys: super::table_keys(stream),
            // Without `dead_letter:`, beside the sink's topic.
            dead_letters: KafkaDeadLetters::connect(stream, &format!("{topic}.dead_letters"))?,
        })
    }

    /// A message key of the upsert keys: the value of a single key, a JSON object of several.
    fn key(&self, value: &serde_json::Value) -> Option<String> {
        match self.keys.as_slice() {
            [] => None,
            [one] => Some(key_text(value.get(one))),
            many => {
                let object: serde_json::Map<String, serde_json::Value> = many
                    .iter()
                    .map(|k| (k.clone(), value.get(k).cloned().unwrap_or_default()))
                    .collect();
                Some(serde_json::Value::Object(object).to_string())
            }
        }
    }

    async fn write_batch(&mut self, batch: &SinkBatch<'_>) -> Result<Written, StreamError> {
        let (rows, _) = rows_to_write(batch.rows, &self.keys, &Offsets::new());
        let messages = rows
            .iter()
            .map(|(_, value)| {
                let payload = serde_json::to_vec(value).unwrap_or_default();
                (self.key(value), payload, None)
            })
            .collect();
        let bad: Vec<&Rejected> = batch.bad.iter().collect();
        let dead_lettered = if bad.is_empty() {
            0
        } else {
            self.dead_letters.write_all(&bad).await?
        };
        let loaded = send_all(&self.producer, &self.topic, messages).await?;
        Ok(Written {
            loaded,
            dead_lettered,
            skipped: 0,
        })
    }
}

impl Sink for KafkaSink {
    /// A topic stores no offsets: the consumer group's committed offsets are the only ones.
    fn stored_offsets(&mut self) -> SinkFuture<'_, Offsets> {
        Box::pin(async { Ok(Offsets::new()) })
    }

    fn checkpoint(&mut self) -> SinkFuture<'_, Checkpoint> {
        Box::pin(async { Ok(Checkpoint::default()) })
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a SinkBatch<'a>,
        _next: &'a Offsets,
        _exactly_once: bool,
    ) -> SinkFuture<'a, Written> {
        Box::pin(self.write_batch(batch))
    }
}

/// Dead letters to a topic: the raw payload as it was read, and in the headers
/// `sluice.stream`, `sluice.topic`, `sluice.partition`, `sluice.offset` and `sluice.reason`.
pub struct KafkaDeadLetters {
    producer: FutureProducer,
    stream: String,
    topic: String,
}

impl KafkaDeadLetters {
    pub fn connect(stream: &Stream, topic: &str) -> Result<KafkaDeadLetters, StreamError> {
        Ok(KafkaDeadLetters {
            producer: producer(stream)?,
            stream: stream.id.clone(),
            topic: topic.to_string(),
        })
    }

    async fn write_all(&self, bad: &[&Rejected]) -> Result<u64, StreamError> {
        let messages = bad
            .iter()
            .map(|b| {
                let partition = b.record.partition.to_string();
                let offset = b.record.offset.to_string();
                let headers = OwnedHeaders::new()
                    .insert(header("sluice.stream", &self.stream))
                    .insert(header("sluice.topic", &b.record.topic))
                    .insert(header("sluice.partition", &partition))
                    .insert(header("sluice.offset", &offset))
                    .insert(header("sluice.reason", &b.reason));
                (None, b.record.payload.clone(), Some(headers))
            })
            .collect();
        send_all(&self.producer, &self.topic, messages).await
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

impl DeadLetters for KafkaDeadLetters {
    fn write<'a>(&'a mut self, bad: &'a [&'a Rejected]) -> SinkFuture<'a, u64> {
        Box::pin(self.write_all(bad))
    }
}
