//! The lake sink: one Parquet file per batch and partition, named by the offsets it holds —
//! `PATH/topic=T/partition=P/FIRST-LAST.parquet` (offsets zero-padded, so names sort in offset
//! order; the `key=value` folders are Hive's partitioning, which DuckDB and Spark read as
//! columns). The files are the offsets' store: the next offset of a partition is one past the
//! last offset of its files, read back by listing them, so a batch replayed after a crash skips
//! what a file already holds and nothing is written twice, however the replayed batch is cut.
//! An object store makes a file appear whole or not at all.
//!
//! Dead letters are NDJSON files beside them (`PATH/_dead_letters/…`, or the stream's
//! `dead_letter: { into: lake, path: … }`), written before the batch's data.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sluice_core::stream::Stream;
use sluice_io::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use sluice_io::arrow::datatypes::{DataType, Field, Schema};
use sluice_io::arrow::record_batch::RecordBatch;
use sluice_io::lake::{Lake, Location};
use sluice_io::rows::{RowBuilder, infer_json};

use super::{Checkpoint, DeadLetters, Offsets, Sink, SinkBatch, SinkFuture, Written};
use crate::{Record, Rejected, StreamError};

/// Columns that say where a row came from (a record field of the same name is left out).
const ORIGIN: [&str; 3] = ["_topic", "_partition", "_offset"];

pub struct LakeSink {
    stream: String,
    root: Location,
    dead_letters: LakeDeadLetters,
    /// Next offsets as the files say, per partition listed so far.
    known: Offsets,
}

fn lake_error(what: &str, e: impl std::fmt::Display) -> StreamError {
    StreamError::Sink(format!("{what}: {e}"))
}

/// `{root}/topic=T/partition=P`.
fn partition_dir(root: &StorePath, topic: &str, partition: i32) -> StorePath {
    root.clone()
        .join(format!("topic={topic}"))
        .join(format!("partition={partition}"))
}

/// `FIRST-LAST.ext`, zero-padded to sort in offset order.
fn range_name(first: i64, last: i64, ext: &str) -> String {
    format!("{first:020}-{last:020}.{ext}")
}

/// The last offset a file name `FIRST-LAST.parquet` covers.
fn last_offset(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".parquet")?;
    let (first, last) = stem.split_once('-')?;
    first.parse::<i64>().ok()?;
    last.parse().ok()
}

impl LakeSink {
    pub fn open(lake: &Lake, path: &str, stream: &Stream) -> Result<LakeSink, StreamError> {
        let root = lake
            .resolve(path)
            .map_err(|e| lake_error("the lake sink", e))?;
        let mut dead_root = root.clone();
        dead_root.path = root.path.clone().join("_dead_letters");
        dead_root.shown = format!("{}/_dead_letters", root.shown);
        Ok(LakeSink {
            stream: stream.id.clone(),
            dead_letters: LakeDeadLetters {
                stream: stream.id.clone(),
                root: dead_root,
            },
            root,
            known: Offsets::new(),
        })
    }

    /// One past the last offset of the partition's files (0 when it has none).
    async fn list_partition(&self, topic: &str, partition: i32) -> Result<i64, StreamError> {
        let dir = partition_dir(&self.root.path, topic, partition);
        let files: Vec<_> = self
            .root
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| lake_error(&format!("listing {}", self.root), e))?;
        Ok(files
            .iter()
            .filter_map(|f| f.location.filename().and_then(last_offset))
            .map(|last| last + 1)
            .max()
            .unwrap_or(0))
    }

    /// The stored next offset of each partition of `next`. A partition is listed again unless
    /// the batch starts where the last write ended (`firsts`: each partition's first offset in
    /// the batch, when it has records here): after a rebalance another process may have
    /// written it meanwhile.
    async fn refresh(
        &mut self,
        next: &Offsets,
        firsts: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), StreamError> {
        for key in next.keys() {
            let current = match firsts.get(key) {
                Some(first) => self.known.get(key) == Some(first),
                None => self.known.contains_key(key),
            };
            if !current {
                let stored = self.list_partition(&key.0, key.1).await?;
                self.known.insert(key.clone(), stored);
            }
        }
        Ok(())
    }

    async fn write_batch(
        &mut self,
        batch: &SinkBatch<'_>,
        next: &Offsets,
    ) -> Result<Written, StreamError> {
        let mut firsts: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let records = batch
            .rows
            .iter()
            .map(|(r, _)| r)
            .chain(batch.bad.iter().map(|b| &b.record));
        for r in records {
            let first = firsts
                .entry((r.topic.clone(), r.partition))
                .or_insert(r.offset);
            *first = (*first).min(r.offset);
        }
        self.refresh(next, &firsts).await?;
        let mut written = Written::default();
        let mut rows: BTreeMap<(String, i32), Vec<&(Record, serde_json::Value)>> = BTreeMap::new();
        for row in batch.rows {
            if row.0.is_new(&self.known) {
                rows.entry((row.0.topic.clone(), row.0.partition))
                    .or_default()
                    .push(row);
            } else {
                written.skipped += 1;
            }
        }
        let mut bad: Vec<Rejected> = batch
            .bad
            .iter()
            .filter(|b| b.record.is_new(&self.known))
            .cloned()
            .collect();
        let mut files = Vec::new();
        for ((topic, partition), end) in next {
            let key = (topic.clone(), *partition);
            // Partitions whose records were all dead-lettered elsewhere still get a file (with
            // no rows): the files are where the offsets are stored.
            let stored = self.known.get(&key).copied().unwrap_or(0);
            let first = firsts.get(&key).map_or(stored, |f| stored.max(*f));
            if first >= *end {
                continue; // all of it written before
            }
            let part = rows.remove(&key).unwrap_or_default();
            let (data, refused) = to_arrow(&part)?;
            bad.extend(refused);
            let path = partition_dir(&self.root.path, topic, *partition).join(range_name(
                first,
                end - 1,
                "parquet",
            ));
            files.push((key, *end, path, data));
        }
        if !bad.is_empty() {
            let refs: Vec<&Rejected> = bad.iter().collect();
            written.dead_lettered = self.dead_letters.write_all(&refs).await?;
        }
        for (key, end, path, data) in files {
            written.loaded += data.num_rows() as u64;
            let bytes = parquet_bytes(&data)?;
            self.root
                .store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|e| lake_error(&format!("writing {path} in {}", self.root), e))?;
            self.known.insert(key, end);
        }
        tracing::debug!(stream = %self.stream, loaded = written.loaded, "batch written to the lake");
        Ok(written)
    }
}

impl Sink for LakeSink {
    fn stored_offsets(&mut self) -> SinkFuture<'_, Offsets> {
        Box::pin(async move { Ok(self.known.clone()) })
    }

    fn checkpoint(&mut self) -> SinkFuture<'_, Checkpoint> {
        Box::pin(async move {
            Ok(Checkpoint {
                offsets: self.known.clone(),
                state: None,
            })
        })
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a SinkBatch<'a>,
        next: &'a Offsets,
        _exactly_once: bool,
    ) -> SinkFuture<'a, Written> {
        Box::pin(self.write_batch(batch, next))
    }
}

/// A partition's rows as one Arrow batch: the records' fields (types inferred from these
/// records) and where each came from. A record whose field does not fit the inferred type is
/// handed back to be dead-lettered.
fn to_arrow(
    rows: &[&(Record, serde_json::Value)],
) -> Result<(RecordBatch, Vec<Rejected>), StreamError> {
    let objects: Vec<&serde_json::Map<String, serde_json::Value>> =
        rows.iter().filter_map(|(_, v)| v.as_object()).collect();
    let inferred = infer_json(objects.iter().copied());
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .filter(|f| !ORIGIN.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    let mut builder = RowBuilder::new(Arc::new(Schema::new(fields.clone())))
        .map_err(|e| lake_error("the lake sink", e))?;
    let mut kept: Vec<&Record> = Vec::new();
    let mut refused = Vec::new();
    for (record, value) in rows {
        let pushed = match value.as_object() {
            Some(object) => builder.push_json(object),
            None => Err("not a JSON object".to_string()),
        };
        match pushed {
            Ok(()) => kept.push(record),
            Err(reason) => refused.push(Rejected {
                record: record.clone(),
                reason,
            }),
        }
    }
    let values = builder
        .finish()
        .map_err(|e| lake_error("the lake sink", e))?;
    let mut columns: Vec<ArrayRef> = values.columns().to_vec();
    columns.push(Arc::new(StringArray::from_iter_values(
        kept.iter().map(|r| r.topic.as_str()),
    )));
    columns.push(Arc::new(Int32Array::from_iter_values(
        kept.iter().map(|r| r.partition),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        kept.iter().map(|r| r.offset),
    )));
    let mut all = fields;
    all.push(Field::new(ORIGIN[0], DataType::Utf8, false));
    all.push(Field::new(ORIGIN[1], DataType::Int32, false));
    all.push(Field::new(ORIGIN[2], DataType::Int64, false));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(all)), columns)
        .map_err(|e| lake_error("the lake sink", e))?;
    Ok((batch, refused))
}

fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>, StreamError> {
    sluice_io::files::parquet_bytes(batch).map_err(|e| lake_error("encoding Parquet", e))
}

/// Dead letters as NDJSON files in the lake, one per batch and partition:
/// `ROOT/topic=T/partition=P/FIRST-LAST.ndjson`, one object per record with its stream, topic,
/// partition, offset, payload (UTF-8 text or base64, `payload_encoding` says which) and reason.
pub struct LakeDeadLetters {
    stream: String,
    root: Location,
}

impl LakeDeadLetters {
    pub fn open(lake: &Lake, path: &str, stream: &Stream) -> Result<LakeDeadLetters, StreamError> {
        Ok(LakeDeadLetters {
            stream: stream.id.clone(),
            root: lake
                .resolve(path)
                .map_err(|e| lake_error("the dead-letter path", e))?,
        })
    }

    async fn write_all(&self, bad: &[&Rejected]) -> Result<u64, StreamError> {
        let mut by_partition: BTreeMap<(&str, i32), Vec<&Rejected>> = BTreeMap::new();
        for b in bad {
            by_partition
                .entry((b.record.topic.as_str(), b.record.partition))
                .or_default()
                .push(b);
        }
        let mut files: Vec<(StorePath, Vec<u8>)> = Vec::new();
        for ((topic, partition), rejected) in by_partition {
            let first = rejected.iter().map(|b| b.record.offset).min().unwrap_or(0);
            let last = rejected.iter().map(|b| b.record.offset).max().unwrap_or(0);
            let mut lines = Vec::new();
            for b in &rejected {
                let (payload, encoding) = crate::payload_text(&b.record.payload);
                let line = serde_json::json!({
                    "stream": self.stream,
                    "topic": topic,
                    "partition": partition,
                    "offset": b.record.offset,
                    "payload": payload,
                    "payload_encoding": encoding,
                    "reason": b.reason,
                });
                lines.extend(line.to_string().into_bytes());
                lines.push(b'\n');
            }
            let path = partition_dir(&self.root.path, topic, partition)
                .join(range_name(first, last, "ndjson"));
            files.push((path, lines));
        }
        let store: Arc<dyn ObjectStore> = self.root.store.clone();
        futures::stream::iter(files.into_iter().map(|(path, lines)| {
            let store = store.clone();
            async move {
                store
                    .put(&path, PutPayload::from(lines))
                    .await
                    .map_err(|e| lake_error(&format!("writing dead letters to {path}"), e))
            }
        }))
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(bad.len() as u64)
    }
}

impl DeadLetters for LakeDeadLetters {
    fn write<'a>(&'a mut self, bad: &'a [&'a Rejected]) -> SinkFuture<'a, u64> {
        Box::pin(self.write_all(bad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_in_offset_order_and_read_back() {
        let a = range_name(9, 99, "parquet");
        let b = range_name(100, 1000, "parquet");
        assert!(a < b);
        assert_eq!(last_offset(&b), Some(1000));
        assert_eq!(last_offset("notes.txt"), None);
        assert_eq!(last_offset("x-y.parquet"), None);
    }
}
