//! Files as sources and sinks: CSV, JSON, NDJSON and Parquet in the lake or on local disk.
//!
//! Text formats are read on a blocking thread straight from the store's byte stream (never a
//! whole file in memory, except a JSON array document), record by record, so a bad record is
//! reported with its file and line and sent to the dead-letter store alone.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use std::ops::Range;

use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataSuffixFetch};
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};
use sluice_core::DeadLetter;
use tokio::sync::{mpsc, oneshot};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::bad::BadRecords;
use crate::lake::Location;
use crate::rows::{INFER_ROWS, RowBuilder, infer_json, infer_text};
use crate::{BATCH_ROWS, BatchStream, IoError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv {
        delimiter: u8,
    },
    /// One JSON document: an array of records.
    Json,
    /// One JSON record per line.
    Ndjson,
    Parquet,
}

impl Format {
    /// The format a file name implies (`.csv`, `.tsv`, `.json`, `.ndjson`/`.jsonl`, `.parquet`).
    pub fn from_name(name: &str) -> Option<Format> {
        let ext = name.rsplit('.').next()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => Format::Csv { delimiter: b',' },
            "tsv" => Format::Csv { delimiter: b'\t' },
            "json" => Format::Json,
            "ndjson" | "jsonl" => Format::Ndjson,
            "parquet" | "pq" => Format::Parquet,
            _ => return None,
        })
    }

    pub fn parse(name: &str) -> Option<Format> {
        Format::from_name(&format!("x.{name}"))
    }
}

/// How to read a set of files.
pub struct FileRead {
    pub format: Format,
    /// Declared column types; inferred from the first records when absent.
    pub schema: Option<SchemaRef>,
    pub bad: Arc<BadRecords>,
}

/// Reads the files one after the other as one stream of batches.
pub async fn read(
    files: Vec<Location>,
    read: FileRead,
) -> Result<(SchemaRef, BatchStream), IoError> {
    match read.format {
        Format::Parquet => read_parquet(files).await,
        _ => read_text(files, read).await,
    }
}

async fn read_parquet(files: Vec<Location>) -> Result<(SchemaRef, BatchStream), IoError> {
    let mut streams = Vec::with_capacity(files.len());
    let mut schema: Option<SchemaRef> = None;
    for file in files {
        let reader = StoreReader {
            store: file.store.clone(),
            path: file.path.clone(),
        };
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| IoError::invalid(format!("{file}: not a readable Parquet file: {e}")))?;
        let this = builder.schema().clone();
        match &schema {
            None => schema = Some(this),
            Some(first) if same_columns(first, &this) => {}
            Some(first) => {
                return Err(IoError::invalid(format!(
                    "{file}: its columns ({}) differ from the first file's ({}); load files of one schema per task",
                    describe(&this),
                    describe(first)
                )));
            }
        }
        let shown = file.shown.clone();
        let stream = builder
            .with_batch_size(BATCH_ROWS)
            .build()?
            .map_err(move |e| IoError::invalid(format!("{shown}: {e}")));
        streams.push(stream);
    }
    let schema = schema.ok_or_else(|| IoError::invalid("no files to read"))?;
    let target = schema.clone();
    // Parquet readers attach file metadata to their schema; batches carry the first file's.
    let stream = futures::stream::iter(streams).flatten().map(move |b| {
        let b = b?;
        Ok(RecordBatch::try_new(target.clone(), b.columns().to_vec())?)
    });
    Ok((schema, stream.boxed()))
}

fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

pub fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), crate::rows::type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text formats: a blocking thread parses, the async side receives batches (at most two
/// in flight, so memory stays bounded however large the files are).
async fn read_text(
    files: Vec<Location>,
    read: FileRead,
) -> Result<(SchemaRef, BatchStream), IoError> {
    let (schema_tx, schema_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel::<Result<RecordBatch, IoError>>(2);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut parser = TextParser {
            read,
            handle,
            schema_tx: Some(schema_tx),
            rows: None,
            tx,
        };
        if let Err(e) = parser.run(files) {
            match parser.schema_tx.take() {
                Some(s) => {
                    let _ = s.send(Err(e));
                }
                None => {
                    let _ = parser.tx.blocking_send(Err(e));
                }
            }
        }
    });
    let schema = schema_rx
        .await
        .map_err(|_| IoError::invalid("the file reader stopped unexpectedly"))??;
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok((schema, stream.boxed()))
}

struct TextParser {
    read: FileRead,
    handle: tokio::runtime::Handle,
    schema_tx: Option<oneshot::Sender<Result<SchemaRef, IoError>>>,
    rows: Option<RowBuilder>,
    tx: mpsc::Sender<Result<RecordBatch, IoError>>,
}

/// An NDJSON line read ahead (for inference): line number, record number, text, parsed record.
type PendingLine = (u64, u64, String, Result<Map<String, Value>, String>);

/// Why the consumer went away: stop quietly.
struct Closed;

impl TextParser {
    fn run(&mut self, files: Vec<Location>) -> Result<(), IoError> {
        for file in &files {
            let input = self.open(file)?;
            let done = match self.read.format {
                Format::Csv { delimiter } => self.csv(file, input, delimiter),
                Format::Json => self.json(file, input),
                Format::Ndjson => self.ndjson(file, input),
                Format::Parquet => unreachable!("parquet is read asynchronously"),
            }?;
            if done.is_err() {
                return Ok(());
            }
        }
        if self.rows.is_none() {
            // No records anywhere: the declared schema, or none at all.
            let schema = self
                .read
                .schema
                .clone()
                .unwrap_or_else(|| Arc::new(Schema::empty()));
            self.start(schema)?;
        }
        let _ = self.send_batch();
        self.read.bad.flush()
    }

    fn open(&self, file: &Location) -> Result<Box<dyn Read + Send>, IoError> {
        let store = file.store.clone();
        let path = file.path.clone();
        let got = self
            .handle
            .block_on(async move { store.get(&path).await })
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    IoError::invalid(format!("{file}: no such file"))
                }
                other => other.into(),
            })?;
        let bytes = got.into_stream().map_err(std::io::Error::other);
        let reader = SyncIoBridge::new_with_handle(StreamReader::new(bytes), self.handle.clone());
        Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
    }

    fn start(&mut self, schema: SchemaRef) -> Result<(), IoError> {
        self.rows = Some(RowBuilder::new(schema.clone())?);
        if let Some(tx) = self.schema_tx.take() {
            let _ = tx.send(Ok(schema));
        }
        Ok(())
    }

    fn rows(&mut self) -> &mut RowBuilder {
        self.rows.as_mut().expect("started before the first record")
    }

    fn bad(
        &self,
        file: &Location,
        line: Option<u64>,
        row: u64,
        reason: String,
        record: String,
    ) -> Result<(), IoError> {
        self.read.bad.record(DeadLetter {
            source: file.shown.clone(),
            line,
            row: Some(row),
            reason,
            record,
        })
    }

    /// Sends the batch if it is full; `Err(Closed)` when nobody listens any more.
    fn maybe_send(&mut self) -> Result<(), Closed> {
        if self.rows().len() >= BATCH_ROWS {
            self.send_batch()?;
        }
        Ok(())
    }

    fn send_batch(&mut self) -> Result<(), Closed> {
        let Some(rows) = self.rows.as_mut() else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        let batch = rows.finish();
        self.tx.blocking_send(batch).map_err(|_| Closed)
    }

    fn csv(
        &mut self,
        file: &Location,
        input: Box<dyn Read + Send>,
        delimiter: u8,
    ) -> Result<Result<(), Closed>, IoError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(input);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| IoError::invalid(format!("{file}:1: cannot read the header: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut records = reader.into_byte_records();
        let mut sample = Vec::new();
        if self.rows.is_none() {
            let schema = match &self.read.schema {
                Some(s) => s.clone(),
                None => {
                    // Inference reads ahead; the sampled records are parsed like every other.
                    while sample.len() < INFER_ROWS {
                        match records.next() {
                            Some(r) => sample.push(r),
                            None => break,
                        }
                    }
                    let texts: Vec<Vec<String>> = sample
                        .iter()
                        .filter_map(|r| r.as_ref().ok())
                        .map(|r| {
                            r.iter()
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                                .collect()
                        })
                        .collect();
                    Arc::new(infer_text(&headers, &texts))
                }
            };
            self.start(schema)?;
        }
        // Where each schema column is in this file's records.
        let schema = self.rows().schema().clone();
        let missing: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| !headers.contains(f.name()))
            .map(|f| f.name().as_str())
            .collect();
        if !missing.is_empty() {
            return Err(IoError::invalid(format!(
                "{file}:1: the header has no column {}; it has {}",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                headers.join(", ")
            )));
        }
        let positions: Vec<Option<usize>> = schema
            .fields()
            .iter()
            .map(|f| headers.iter().position(|h| h == f.name()))
            .collect();
        let mut row = 0u64;
        for record in sample.into_iter().chain(records) {
            row += 1;
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line());
                    self.bad(
                        file,
                        line,
                        row,
                        format!("unreadable CSV record: {e}"),
                        String::new(),
                    )?;
                    continue;
                }
            };
            let line = record.position().map(|p| p.line());
            let raw = || {
                record
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect::<Vec<_>>()
                    .join(&(delimiter as char).to_string())
            };
            if record.len() != headers.len() {
                let reason = format!(
                    "expected {} fields (as in the header), found {}",
                    headers.len(),
                    record.len()
                );
                self.bad(file, line, row, reason, raw())?;
                continue;
            }
            let Ok(text) = record
                .iter()
                .map(std::str::from_utf8)
                .collect::<Result<Vec<&str>, _>>()
            else {
                self.bad(
                    file,
                    line,
                    row,
                    "the record is not valid UTF-8".into(),
                    raw(),
                )?;
                continue;
            };
            let values = positions.iter().map(|p| p.map_or("", |i| text[i]));
            let pushed = self.rows().push_text(values);
            if let Err(reason) = pushed {
                self.bad(file, line, row, reason, raw())?;
                continue;
            }
            if self.maybe_send().is_err() {
                return Ok(Err(Closed));
            }
        }
        Ok(Ok(()))
    }

    fn ndjson(
        &mut self,
        file: &Location,
        input: Box<dyn Read + Send>,
    ) -> Result<Result<(), Closed>, IoError> {
        let mut lines = BufReader::new(input).lines();
        let mut row = 0u64;
        let mut line_no = 0u64;
        let mut pending: Vec<PendingLine> = Vec::new();
        loop {
            let next = lines.next();
            let finished = next.is_none();
            if let Some(line) = next {
                line_no += 1;
                let text = line?;
                if text.trim().is_empty() {
                    continue;
                }
                row += 1;
                let parsed = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => Ok(map),
                    Ok(other) => Err(format!(
                        "expected a JSON object, found {}",
                        json_kind(&other)
                    )),
                    Err(e) => Err(format!("invalid JSON at column {}: {e}", e.column())),
                };
                pending.push((line_no, row, text, parsed));
                if self.rows.is_none() && pending.len() < INFER_ROWS {
                    continue;
                }
            }
            if self.rows.is_none() {
                let schema = match &self.read.schema {
                    Some(s) => s.clone(),
                    None => Arc::new(infer_json(pending.iter().filter_map(|p| p.3.as_ref().ok()))),
                };
                self.start(schema)?;
            }
            for (line, row, text, parsed) in pending.drain(..) {
                let result = parsed.and_then(|map| self.rows().push_json(&map));
                if let Err(reason) = result {
                    self.bad(file, Some(line), row, reason, text)?;
                } else if self.maybe_send().is_err() {
                    return Ok(Err(Closed));
                }
            }
            if finished {
                return Ok(Ok(()));
            }
        }
    }

    fn json(
        &mut self,
        file: &Location,
        input: Box<dyn Read + Send>,
    ) -> Result<Result<(), Closed>, IoError> {
        let doc: Value = serde_json::from_reader(input).map_err(|e| {
            IoError::invalid(format!(
                "{file}:{}:{}: invalid JSON: {e}",
                e.line(),
                e.column()
            ))
        })?;
        let Value::Array(records) = doc else {
            return Err(IoError::invalid(format!(
                "{file}: expected an array of records, found {}; use format ndjson for one record per line",
                json_kind(&doc)
            )));
        };
        if self.rows.is_none() {
            let schema = match &self.read.schema {
                Some(s) => s.clone(),
                None => Arc::new(infer_json(
                    records.iter().take(INFER_ROWS).filter_map(Value::as_object),
                )),
            };
            self.start(schema)?;
        }
        for (i, record) in records.into_iter().enumerate() {
            let row = i as u64 + 1;
            let result = match &record {
                Value::Object(map) => self.rows().push_json(map),
                other => Err(format!(
                    "expected a JSON object, found {}",
                    json_kind(other)
                )),
            };
            if let Err(reason) = result {
                self.bad(file, None, row, reason, record.to_string())?;
            } else if self.maybe_send().is_err() {
                return Ok(Err(Closed));
            }
        }
        Ok(Ok(()))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One batch as the bytes of a Parquet file (Snappy), for a store to put whole.
pub fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>, IoError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Writes batches to one Parquet file (Snappy). Object stores make the file appear whole or not
/// at all, so a failed write never leaves half a file where a reader could find it.
pub async fn write_parquet(
    target: &Location,
    schema: SchemaRef,
    mut batches: BatchStream,
) -> Result<u64, IoError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let out = object_store::buffered::BufWriter::new(target.store.clone(), target.path.clone());
    let mut writer = AsyncArrowWriter::try_new(out, schema, Some(props))?;
    let mut rows = 0u64;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).await?;
    }
    writer.close().await?;
    Ok(rows)
}

/// Parquet's async reader over an object store: ranged reads, and the footer by a suffix read
/// (no extra request for the file size).
struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
}

fn parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_err)
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        Box::pin(async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(parquet_err)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_via_suffix_and_finish(self)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}

impl MetadataSuffixFetch for &mut StoreReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move {
            let options = GetOptions {
                range: Some(GetRange::Suffix(suffix as u64)),
                ..Default::default()
            };
            let got = self
                .store
                .get_opts(&self.path, options)
                .await
                .map_err(parquet_err)?;
            got.bytes().await.map_err(parquet_err)
        })
    }
}
