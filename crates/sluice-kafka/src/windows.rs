//! The windowed aggregation of a stream: records → event time, key and inputs → the window
//! operator and the partitions' watermarks; the whole state is checkpointed (JSON) with the
//! offsets it covers.

use sluice_core::stream::{Function, Stream, Window};
use sluice_stream::{Aggregate, Fired, Placed, Value, Watermarks, WindowOperator, WindowSpec};

use crate::{Record, Rejected};

pub struct Windows {
    op: WindowOperator,
    watermarks: Watermarks,
    event_field: String,
    key_fields: Vec<String>,
    /// The fields the aggregates read, in the order the operator sees them.
    inputs: Vec<String>,
    /// The stream's topics: a partition's watermark is kept per topic and partition.
    topics: Vec<String>,
}

/// Room for each topic's partitions in a watermark's partition id.
const PARTITIONS_PER_TOPIC: i32 = 1_000_000;

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

/// Event time from a JSON value: an RFC 3339 timestamp, or epoch milliseconds (or seconds, for
/// numbers below 10^11).
pub fn event_time(v: Option<&serde_json::Value>) -> Result<i64, String> {
    match v {
        Some(serde_json::Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| format!("event time `{s}` is not an RFC 3339 timestamp: {e}")),
        Some(serde_json::Value::Number(n)) => match n.as_f64() {
            Some(x) if x.abs() < 1e11 => Ok((x * 1000.0) as i64),
            Some(x) => Ok(x as i64),
            None => Err(format!("event time {n} is not a number of (milli)seconds")),
        },
        Some(other) => Err(format!(
            "event time {other} is neither a timestamp nor a number"
        )),
        None => Err("no event time field".into()),
    }
}

fn value(v: Option<&serde_json::Value>) -> Value {
    match v {
        None | Some(serde_json::Value::Null) => Value::Null,
        Some(serde_json::Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::Number),
        Some(serde_json::Value::String(s)) => Value::Text(s.clone()),
        Some(other) => Value::Text(other.to_string()),
    }
}

fn key_text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

impl Windows {
    /// None when the stream has no `aggregate:`.
    pub fn of(stream: &Stream) -> Option<Windows> {
        let agg = stream.aggregate.as_ref()?;
        let et = stream.event_time.as_ref()?;
        let spec = match agg.window {
            Window::Tumbling { size } => WindowSpec::Tumbling { size: ms(size) },
            Window::Sliding { size, slide } => WindowSpec::Sliding {
                size: ms(size),
                slide: ms(slide),
            },
            Window::Session { gap } => WindowSpec::Session { gap: ms(gap) },
        };
        let mut inputs: Vec<String> = Vec::new();
        let mut aggregates = Vec::new();
        for c in &agg.compute {
            let index = c.field.as_ref().map(|f| {
                inputs.iter().position(|i| i == f).unwrap_or_else(|| {
                    inputs.push(f.clone());
                    inputs.len() - 1
                })
            });
            aggregates.push(match (c.function, index) {
                (Function::Count, _) | (_, None) => Aggregate::Count,
                (Function::Sum, Some(i)) => Aggregate::Sum(i),
                (Function::Min, Some(i)) => Aggregate::Min(i),
                (Function::Max, Some(i)) => Aggregate::Max(i),
                (Function::Avg, Some(i)) => Aggregate::Avg(i),
                (Function::CountDistinct, Some(i)) => Aggregate::CountDistinct(i),
            });
        }
        Some(Windows {
            op: WindowOperator::new(spec, aggregates, ms(et.allowed_lateness)),
            watermarks: Watermarks::new(ms(et.max_out_of_orderness), et.idle_after.map(ms)),
            event_field: et.field.clone(),
            key_fields: agg.key.clone(),
            inputs,
            topics: stream.source.topics.clone(),
        })
    }

    /// One number per topic and partition, for the watermarks.
    fn partition_id(&self, topic: &str, partition: i32) -> i32 {
        let t = self.topics.iter().position(|x| x == topic).unwrap_or(0) as i32;
        t * PARTITIONS_PER_TOPIC + partition
    }

    /// The topic and partition of a [`Self::partition_id`].
    fn topic_partition(&self, id: i32) -> (String, i32) {
        let topic = self.topics.get((id / PARTITIONS_PER_TOPIC) as usize);
        (
            topic.cloned().unwrap_or_default(),
            id % PARTITIONS_PER_TOPIC,
        )
    }

    /// Every partition of the stream's topics, whichever process of the group reads it: one
    /// without records yet holds the watermark back (until it has records or turns idle).
    pub fn assign(&mut self, partitions: &[(String, i32)], now: i64) {
        let ids: Vec<i32> = partitions
            .iter()
            .map(|(t, p)| self.partition_id(t, *p))
            .collect();
        self.watermarks.assign(&ids, now);
    }

    /// The state to checkpoint.
    pub fn state(&self) -> serde_json::Value {
        serde_json::json!({ "windows": self.op.snapshot(), "watermarks": self.watermarks })
    }

    /// Puts back a checkpoint.
    pub fn restore(&mut self, state: serde_json::Value, now: i64) -> Result<(), String> {
        let windows =
            serde_json::from_value(state["windows"].clone()).map_err(|e| e.to_string())?;
        let mut watermarks: Watermarks =
            serde_json::from_value(state["watermarks"].clone()).map_err(|e| e.to_string())?;
        watermarks.resume(now);
        self.op.restore(windows);
        self.watermarks = watermarks;
        Ok(())
    }

    /// Adds a batch's records; those with a bad event time, or later than every window's
    /// allowed lateness, come back to be dead-lettered, with how many of them were late.
    /// Only the rejected records are copied: a batch built again after a fence reads the same
    /// records twice.
    pub fn add<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r (Record, serde_json::Value)>,
        now: i64,
    ) -> (Vec<Rejected>, u64) {
        // Lateness is judged against the watermark before the batch.
        let watermark = self.watermarks.current(now);
        let mut rejected = Vec::new();
        let mut late = 0;
        for (record, v) in records {
            let t = match event_time(v.get(&self.event_field)) {
                Ok(t) => t,
                Err(reason) => {
                    rejected.push(Rejected {
                        record: record.clone(),
                        reason,
                    });
                    continue;
                }
            };
            let key: Vec<String> = self.key_fields.iter().map(|k| key_text(v.get(k))).collect();
            let fields: Vec<Value> = self.inputs.iter().map(|f| value(v.get(f))).collect();
            if self.op.insert(key, t, &fields, watermark) == Placed::Late {
                late += 1;
                rejected.push(Rejected {
                    reason: format!(
                        "late: event time {} is past the allowed lateness of its windows (watermark {})",
                        iso(t),
                        watermark.map_or("none".into(), iso)
                    ),
                    record: record.clone(),
                });
                continue;
            }
            let id = self.partition_id(&record.topic, record.partition);
            self.watermarks.observe(id, t, now);
        }
        (rejected, late)
    }

    /// Each topic and partition read with its watermark (None before its first record).
    pub fn partition_watermarks(&self) -> Vec<(String, i32, Option<i64>)> {
        self.watermarks
            .partitions()
            .map(|id| {
                let (topic, partition) = self.topic_partition(id);
                (topic, partition, self.watermarks.partition(id))
            })
            .collect()
    }

    /// The stream's watermark now.
    pub fn watermark(&mut self, now: i64) -> Option<i64> {
        self.watermarks.current(now)
    }

    /// The windows the watermark closed (or late records changed) since the last call.
    pub fn fire(&mut self, now: i64) -> Vec<Fired> {
        match self.watermarks.current(now) {
            Some(w) => self.op.advance(w),
            None => Vec::new(),
        }
    }
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_come_as_timestamps_or_epoch_numbers() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(event_time(Some(&j("\"1970-01-01T00:00:01.5Z\""))), Ok(1500));
        assert_eq!(event_time(Some(&j("1700000000"))), Ok(1_700_000_000_000));
        assert_eq!(event_time(Some(&j("1700000000123"))), Ok(1_700_000_000_123));
        assert!(
            event_time(Some(&j("\"yesterday\"")))
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(event_time(None).is_err());
    }
}
