//! Stream files: a `stream:` file under `pipelines/` describes a continuous pipeline — a Kafka
//! source, required fields, event time, an optional windowed aggregation, a sink, micro-batch
//! bounds, the delivery guarantee and the dead-letter sink. Decoded and checked like pipeline
//! files: every problem at file:line:col with a hint.
//!
//! ```yaml
//! stream: hourly_sales
//! source: { kafka: { brokers: "127.0.0.1:9092", topic: orders, group: warehouse-loader, format: json } }
//! require: [id, timestamp, data]
//! event_time: { field: timestamp, max_out_of_orderness: 30s, idle_after: 1m, allowed_lateness: 0s }
//! aggregate: { key: [product_category], window: { tumbling: 1h }, compute: { total: sum(amount), orders: count() } }
//! sink: { into: warehouse, table: hourly_sales, mode: upsert, key: [product_category, window_start] }
//! batch: { max_records: 1000, max_wait: 5s }
//! delivery: exactly_once
//! dead_letter: { into: warehouse, table: dead_letters }
//! ```
//!
//! `format:` says what a record's payload is: `json` (the default: an object), `bytes` (any
//! payload, taken as `{"value": …, "encoding": "utf8" | "base64"}`) or `avro`. Avro needs the
//! schema the producer wrote with, one of two ways:
//! - `schema_registry: http://127.0.0.1:8081`: payloads are in the Confluent wire format (byte 0,
//!   a 4-byte big-endian schema id, the Avro datum) and each id's schema comes from the registry.
//! - `schema:` the writer schema itself, inline, as JSON text (a JSON object is also YAML, so it
//!   may be written as is, or as a string or `|` block): payloads are plain Avro datums of it.
//!   Inline rather than a path, so that a stream file says everything its stream reads and
//!   `sluice check` validates the schema without reading another file.
//!
//! ```yaml
//! source: { kafka: { brokers: "127.0.0.1:9092", topic: clicks, group: g, format: avro,
//!   schema: { "type": "record", "name": "Click", "fields": [{ "name": "id", "type": "long" }] } } }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::connections::{ConnectionKind, Connections, WAREHOUSE};
use crate::decode::{Fields, valid_id};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::yaml::{self, Node, Span, Value};

const KEYS: &[&str] = &[
    "stream",
    "description",
    "source",
    "require",
    "validate",
    "event_time",
    "aggregate",
    "sink",
    "batch",
    "delivery",
    "dead_letter",
];

#[derive(Debug, Clone)]
pub struct Stream {
    pub id: String,
    pub file: String,
    pub span: Span,
    pub description: Option<String>,
    pub source: KafkaSource,
    /// Fields every record must have (non-null); the others go to the dead-letter sink.
    pub require: Vec<String>,
    /// A data-quality suite whose row-wise expectations each record must meet.
    pub suite: Option<String>,
    pub event_time: Option<EventTime>,
    pub aggregate: Option<Aggregation>,
    pub sink: Sink,
    pub batch: Batch,
    pub delivery: Delivery,
    pub dead_letter: Option<Target>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSource {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group: String,
    pub start: StartPosition,
    pub format: Format,
    /// A Confluent-compatible schema registry: Avro payloads are in its wire format (only ever
    /// set with `Format::Avro`).
    pub schema_registry: Option<String>,
    /// librdkafka settings passed through as given (security.protocol, sasl.*, ssl.*, …).
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    Earliest,
    Latest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Json,
    /// `schema`: the writer schema (JSON text) of plain Avro datums; None when the payloads are
    /// in the Confluent wire format, `schema_registry` then being set.
    Avro {
        schema: Option<String>,
    },
    Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventTime {
    pub field: String,
    pub max_out_of_orderness: Duration,
    pub idle_after: Option<Duration>,
    pub allowed_lateness: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Tumbling { size: Duration },
    Sliding { size: Duration, slide: Duration },
    Session { gap: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    CountDistinct,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compute {
    pub name: String,
    pub function: Function,
    /// The field it reads (none for `count()`).
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    pub key: Vec<String>,
    pub window: Window,
    pub compute: Vec<Compute>,
}

/// Where records (or results, or dead letters) are written.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A table of a DuckDB or PostgreSQL connection (`warehouse` is the project's DuckDB).
    Table {
        connection: String,
        kind: ConnectionKind,
        table: String,
    },
    /// Parquet files in the lake, one per batch, named by topic-partition-offset range.
    Lake { path: String },
    /// A Kafka topic (on the source's brokers).
    Kafka { topic: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    Append,
    Upsert,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    pub target: Target,
    pub mode: SinkMode,
    pub key: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub max_records: u32,
    pub max_wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Offsets committed after the sink durably wrote the batch.
    AtLeastOnce,
    /// The batch's rows and the offsets in one database transaction (table sinks).
    ExactlyOnce,
}

/// Whether a parsed YAML file is a stream file (its root mapping has `stream:`).
pub fn is_stream_file(root: &Node) -> bool {
    matches!(&root.value, Value::Map(entries) if entries.iter().any(|(k, _)| k.as_str() == Some("stream")))
}

/// Parses and decodes a stream file; None (with diagnostics) when it has problems.
pub fn load_file(
    file: &str,
    text: &str,
    connections: &Connections,
    diags: &mut Diagnostics,
) -> Option<Stream> {
    match yaml::parse(file.into(), text) {
        Ok(root) => decode_file(file, &root, connections, diags),
        Err(e) => {
            diags.push(e.diagnostic());
            None
        }
    }
}

/// Decodes a parsed stream file; None (with diagnostics) when it has problems.
pub fn decode_file(
    file: &str,
    root: &Node,
    connections: &Connections,
    diags: &mut Diagnostics,
) -> Option<Stream> {
    let before = diags.len();
    let f = Fields::new(root, "a stream file", KEYS, diags)?;
    let id = f.string("stream", diags);
    if let (Some(id), Some(node)) = (&id, f.get("stream")) {
        valid_id(id, &node.span, "stream", diags);
    }
    let source = f
        .required("source", "the stream", diags)
        .and_then(|n| source(n, diags));
    let require: Vec<String> = f
        .string_list("require", diags)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let suite = f.get("validate").and_then(|n| validate_suite(n, diags));
    let event_time = f.get("event_time").and_then(|n| event_time(n, diags));
    let aggregate = f.get("aggregate").and_then(|n| aggregation(n, diags));
    if let (Some(node), None) = (f.get("aggregate"), f.get("event_time")) {
        diags.push(
            Diagnostic::new(&node.span, "a windowed `aggregate` needs `event_time`")
                .hint("add `event_time: { field: timestamp, max_out_of_orderness: 30s }`"),
        );
    }
    let sink = f
        .required("sink", "the stream", diags)
        .and_then(|n| sink(n, connections, diags));
    let batch = match f.get("batch") {
        None => Some(Batch {
            max_records: 1000,
            max_wait: Duration::from_secs(5),
        }),
        Some(n) => batch(n, diags),
    };
    let delivery = delivery(&f, diags);
    check_delivery(&f, delivery, sink.as_ref(), diags);
    let dead_letter = f
        .get("dead_letter")
        .and_then(|n| target(n, "`dead_letter`", connections, diags));
    check_dead_letter(&f, dead_letter.as_ref(), sink.as_ref(), diags);
    check_sink_key(&f, aggregate.as_ref(), sink.as_ref(), diags);
    if diags.len() > before {
        return None;
    }
    Some(Stream {
        id: id?,
        file: file.to_string(),
        span: root.span.clone(),
        description: f.string("description", diags),
        source: source?,
        require,
        suite,
        event_time,
        aggregate,
        sink: sink?,
        batch: batch?,
        delivery: delivery?,
        dead_letter,
    })
}

/// `validate: { suite }`.
fn validate_suite(node: &Node, diags: &mut Diagnostics) -> Option<String> {
    let v = Fields::new(node, "`validate`", &["suite"], diags)?;
    v.required("suite", "`validate`", diags)?;
    v.string("suite", diags)
}

/// `delivery:`, at least once when absent.
fn delivery(f: &Fields<'_>, diags: &mut Diagnostics) -> Option<Delivery> {
    match f.string("delivery", diags).as_deref() {
        None | Some("at_least_once") => Some(Delivery::AtLeastOnce),
        Some("exactly_once") => Some(Delivery::ExactlyOnce),
        Some(other) => {
            diags.push(
                Diagnostic::new(
                    &f.get("delivery").expect("given").span,
                    format!("unknown delivery `{other}`"),
                )
                .hint(
                    did_you_mean(other, ["at_least_once", "exactly_once"])
                        .unwrap_or_else(|| "use at_least_once or exactly_once".into()),
                ),
            );
            None
        }
    }
}

/// Exactly once writes into a table; an aggregate needs exactly once.
fn check_delivery(
    f: &Fields<'_>,
    delivery: Option<Delivery>,
    sink: Option<&Sink>,
    diags: &mut Diagnostics,
) {
    if let (Some(Delivery::ExactlyOnce), Some(sink)) = (delivery, sink)
        && !matches!(sink.target, Target::Table { .. })
    {
        diags.push(
            Diagnostic::new(
                &f.get("delivery").expect("given").span,
                "exactly_once needs a table sink: the rows and the offsets are written in one database transaction",
            )
            .hint("write into a DuckDB or PostgreSQL table, or use `delivery: at_least_once` (lake files are named by offsets, so a rewrite overwrites)"),
        );
    }
    if let (Some(node), Some(Delivery::AtLeastOnce)) = (f.get("aggregate"), delivery) {
        diags.push(
            Diagnostic::new(&node.span, "a windowed `aggregate` needs `delivery: exactly_once`")
                .hint("its window state is checkpointed with the offsets in the sink's transaction; at least once would count replayed records twice"),
        );
    }
}

/// Dead letters in a table are written in the sink's transaction, so in the sink's database.
fn check_dead_letter(
    f: &Fields<'_>,
    dead_letter: Option<&Target>,
    sink: Option<&Sink>,
    diags: &mut Diagnostics,
) {
    let (Some(Target::Table { connection, .. }), Some(sink), Some(node)) =
        (dead_letter, sink, f.get("dead_letter"))
    else {
        return;
    };
    let same_database =
        matches!(&sink.target, Target::Table { connection: c, .. } if c == connection);
    if !same_database {
        diags.push(
            Diagnostic::new(
                &node.span,
                format!("dead letters in a table of `{connection}` need the sink to write into `{connection}` too"),
            )
            .hint("a batch's dead letters are written in the sink's transaction: name a table of the sink's database, a lake path (`into: lake, path: …`) or a Kafka topic (`into: kafka, topic: …`)"),
        );
    }
}

/// The sink's key of an aggregating stream names columns of the aggregate's results.
fn check_sink_key(
    f: &Fields<'_>,
    aggregate: Option<&Aggregation>,
    sink: Option<&Sink>,
    diags: &mut Diagnostics,
) {
    let (Some(agg), Some(sink), Some(node)) = (aggregate, sink, f.get("sink")) else {
        return;
    };
    let known: Vec<&str> = agg
        .key
        .iter()
        .map(String::as_str)
        .chain(["window_start", "window_end"])
        .chain(agg.compute.iter().map(|c| c.name.as_str()))
        .collect();
    for k in &sink.key {
        if !known.contains(&k.as_str()) {
            diags.push(
                Diagnostic::new(
                    &node.span,
                    format!("the sink's key `{k}` is not a column of the aggregate's results"),
                )
                .hint(format!("results have the columns {}", known.join(", "))),
            );
        }
    }
}

fn source(node: &Node, diags: &mut Diagnostics) -> Option<KafkaSource> {
    let f = Fields::new(node, "`source`", &["kafka"], diags)?;
    let k = f.required("kafka", "`source`", diags)?;
    let k = Fields::new(
        k,
        "`kafka`",
        &[
            "brokers",
            "topic",
            "topics",
            "group",
            "start",
            "format",
            "schema_registry",
            "schema",
            "properties",
        ],
        diags,
    )?;
    let brokers = k
        .required("brokers", "`kafka`", diags)
        .and(k.string("brokers", diags));
    let mut topics: Vec<String> = k
        .string_list("topics", diags)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    if let Some(t) = k.string("topic", diags) {
        topics.push(t);
    }
    if topics.is_empty() {
        diags.push(
            Diagnostic::new(&k.node.span, "`kafka` names no topic")
                .hint("add `topic: orders` (or `topics: [a, b]`)"),
        );
    }
    let group = k
        .required("group", "`kafka`", diags)
        .and(k.string("group", diags));
    let start = match k.string("start", diags).as_deref() {
        None | Some("earliest") => Some(StartPosition::Earliest),
        Some("latest") => Some(StartPosition::Latest),
        Some(other) => {
            diags.push(
                Diagnostic::new(&k.get("start").expect("given").span, format!("unknown start `{other}`"))
                    .hint("use `earliest` (the default: a new group reads the topic from its start) or `latest`"),
            );
            None
        }
    };
    let format = match k.string("format", diags).as_deref() {
        None | Some("json") => Some(Format::Json),
        Some("avro") => Some(Format::Avro { schema: None }),
        Some("bytes") | Some("raw") => Some(Format::Bytes),
        Some(other) => {
            diags.push(
                Diagnostic::new(
                    &k.get("format").expect("given").span,
                    format!("unknown format `{other}`"),
                )
                .hint(
                    did_you_mean(other, ["json", "avro", "bytes"])
                        .unwrap_or_else(|| "use json, avro or bytes".into()),
                ),
            );
            None
        }
    };
    let schema_registry = schema_registry(&k, diags);
    let schema = k
        .get("schema")
        .and_then(|n| writer_schema(n, &key_span(&k, "schema"), diags));
    let format = format.and_then(|format| avro(&k, format, schema, diags));
    let properties = k
        .get("properties")
        .map(|n| properties(n, diags))
        .unwrap_or_default();
    Some(KafkaSource {
        brokers: brokers?,
        topics,
        group: group?,
        start: start?,
        format: format?,
        schema_registry,
        properties,
    })
}

/// `properties:`, librdkafka settings as `name: value` text.
fn properties(node: &Node, diags: &mut Diagnostics) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    let Value::Map(entries) = &node.value else {
        diags.push(Diagnostic::new(
            &node.span,
            format!("`properties` must be a mapping, found {}", node.kind_name()),
        ));
        return properties;
    };
    for (key, value) in entries {
        match (key.scalar_text(), value.scalar_text()) {
            (Some(key), Some(value)) => {
                properties.insert(key, value);
            }
            _ => diags.push(
                Diagnostic::new(
                    &value.span,
                    "Kafka properties are `name: value` pairs of text",
                )
                .hint("e.g. `properties: { security.protocol: SASL_SSL, sasl.mechanism: PLAIN }`"),
            ),
        }
    }
    properties
}

/// `schema_registry:`, an http(s) URL.
fn schema_registry(k: &Fields, diags: &mut Diagnostics) -> Option<String> {
    let url = k.string("schema_registry", diags)?;
    if url.starts_with("http://") || url.starts_with("https://") {
        return Some(url);
    }
    diags.push(
        Diagnostic::new(
            &k.get("schema_registry").expect("given").span,
            format!(
                "`{}` is not an http:// or https:// URL",
                crate::secrets::redact_uri_text(&url)
            ),
        )
        .hint("e.g. `schema_registry: http://127.0.0.1:8081`"),
    );
    None
}

/// `schema:`, an Avro writer schema given inline: JSON text, or the schema object itself (JSON
/// being YAML). Problems are reported at `key`, the `schema:` key. Returns the schema as JSON text.
fn writer_schema(node: &Node, key: &Span, diags: &mut Diagnostics) -> Option<String> {
    let text = match &node.value {
        Value::Str { text, .. } => text.clone(),
        Value::Map(_) => node.to_json().to_string(),
        _ => {
            diags.push(
                Diagnostic::new(
                    key,
                    format!(
                        "`schema` must be an Avro record schema, found {}",
                        node.kind_name()
                    ),
                )
                .hint(RECORD_HINT),
            );
            return None;
        }
    };
    match apache_avro::Schema::parse_str(&text) {
        Ok(apache_avro::Schema::Record(_)) => Some(text),
        Ok(other) => {
            diags.push(
                Diagnostic::new(
                    key,
                    format!(
                        "`schema` must be an Avro record schema, found a `{}` schema",
                        other.to_string().to_lowercase()
                    ),
                )
                .hint("each record becomes a row: its schema is a record of fields"),
            );
            None
        }
        Err(e) => {
            // The parser's message, and its cause's (where in the JSON text, for a syntax error).
            let mut message = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                message = format!("{message}: {c}");
                cause = c.source();
            }
            diags.push(
                Diagnostic::new(
                    key,
                    format!("`schema` is not a valid Avro schema: {message}"),
                )
                .hint(RECORD_HINT),
            );
            None
        }
    }
}

const RECORD_HINT: &str = r#"write the writer schema as JSON, e.g. `schema: { "type": "record", "name": "Order", "fields": [{ "name": "id", "type": "long" }] }`"#;

/// Where Avro payloads get their writer schema: exactly one of `schema_registry` and `schema`
/// for `format: avro`, neither for the other formats.
fn avro(
    k: &Fields,
    format: Format,
    schema: Option<String>,
    diags: &mut Diagnostics,
) -> Option<Format> {
    let given = |name: &str| k.get(name).map(|_| key_span(k, name));
    match (format, given("schema_registry"), given("schema")) {
        (Format::Avro { .. }, None, None) => {
            let place = k.get("format").map_or(&k.node.span, |n| &n.span);
            diags.push(
                Diagnostic::new(place, "`format: avro` needs the schema the records were written with")
                    .hint("add `schema_registry: http://…` (payloads in the Confluent wire format) or `schema: { \"type\": \"record\", … }` (plain Avro datums)"),
            );
            None
        }
        (Format::Avro { .. }, Some(_), Some(place)) => {
            diags.push(
                Diagnostic::new(&place, "`schema` and `schema_registry` are both given")
                    .hint("payloads in the Confluent wire format take their schema from the registry: remove `schema`, or remove `schema_registry` for plain Avro datums"),
            );
            None
        }
        (Format::Avro { .. }, _, _) => Some(Format::Avro { schema }),
        (other, registry, schema) => {
            for place in schema.into_iter().chain(registry) {
                diags.push(
                    Diagnostic::new(&place, "only Avro payloads have a schema")
                        .hint("add `format: avro`, or remove this key"),
                );
            }
            Some(other)
        }
    }
}

/// Where the key `name` of `k` is written (the mapping, if it is not there).
fn key_span(k: &Fields, name: &str) -> Span {
    k.keys()
        .find(|(n, _)| *n == name)
        .map_or_else(|| k.node.span.clone(), |(_, key)| key.span.clone())
}

fn millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

fn event_time(node: &Node, diags: &mut Diagnostics) -> Option<EventTime> {
    let f = Fields::new(
        node,
        "`event_time`",
        &[
            "field",
            "max_out_of_orderness",
            "idle_after",
            "allowed_lateness",
        ],
        diags,
    )?;
    f.required("field", "`event_time`", diags)?;
    Some(EventTime {
        field: f.string("field", diags)?,
        max_out_of_orderness: millis(
            f.duration("max_out_of_orderness", diags)
                .unwrap_or_default(),
        ),
        idle_after: f.duration("idle_after", diags).map(millis),
        allowed_lateness: millis(f.duration("allowed_lateness", diags).unwrap_or_default()),
    })
}

fn positive(
    node: &Node,
    what: &str,
    d: Option<Duration>,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    match d {
        Some(d) if d.as_millis() > 0 => Some(d),
        Some(_) => {
            diags.push(
                Diagnostic::new(&node.span, format!("{what} must be longer than 0"))
                    .hint("e.g. 1h, 10s or 500ms"),
            );
            None
        }
        None => None,
    }
}

fn window(node: &Node, diags: &mut Diagnostics) -> Option<Window> {
    let f = Fields::new(node, "`window`", &["tumbling", "sliding", "session"], diags)?;
    let given: Vec<&str> = f.keys().map(|(k, _)| k).collect();
    if given.len() != 1 {
        diags.push(
            Diagnostic::new(&node.span, "`window` needs exactly one of `tumbling`, `sliding` or `session`")
                .hint("e.g. `window: { tumbling: 1h }`, `{ sliding: { size: 10s, slide: 2s } }` or `{ session: { gap: 30m } }`"),
        );
        return None;
    }
    match given[0] {
        "tumbling" => {
            let n = f.get("tumbling")?;
            let size = positive(n, "a tumbling window", f.duration("tumbling", diags), diags)?;
            Some(Window::Tumbling { size })
        }
        "sliding" => {
            let n = f.get("sliding")?;
            let s = Fields::new(n, "`sliding`", &["size", "slide"], diags)?;
            s.required("size", "`sliding`", diags)?;
            s.required("slide", "`sliding`", diags)?;
            let size = positive(n, "`size`", s.duration("size", diags), diags)?;
            let slide = positive(n, "`slide`", s.duration("slide", diags), diags)?;
            if slide > size {
                diags.push(
                    Diagnostic::new(&n.span, "`slide` is longer than `size`: records between windows would belong to none")
                        .hint("a slide no longer than the size; equal makes it a tumbling window"),
                );
                return None;
            }
            Some(Window::Sliding { size, slide })
        }
        _ => {
            let n = f.get("session")?;
            let s = Fields::new(n, "`session`", &["gap"], diags)?;
            s.required("gap", "`session`", diags)?;
            let gap = positive(n, "`gap`", s.duration("gap", diags), diags)?;
            Some(Window::Session { gap })
        }
    }
}

/// `sum(amount)`, `count()`, `count_distinct(user)`.
fn compute(name: &str, node: &Node, diags: &mut Diagnostics) -> Option<Compute> {
    let text = node.as_str().unwrap_or_default().trim().to_string();
    let parsed = text
        .strip_suffix(')')
        .and_then(|t| t.split_once('('))
        .map(|(f, arg)| (f.trim().to_lowercase(), arg.trim().to_string()));
    let Some((func, arg)) = parsed else {
        diags.push(
            Diagnostic::new(&node.span, format!("`{name}: {text}` is not a function call"))
                .hint("write `count()`, `sum(field)`, `min(field)`, `max(field)`, `avg(field)` or `count_distinct(field)`"),
        );
        return None;
    };
    let function = match func.as_str() {
        "count" => Function::Count,
        "sum" => Function::Sum,
        "min" => Function::Min,
        "max" => Function::Max,
        "avg" => Function::Avg,
        "count_distinct" => Function::CountDistinct,
        other => {
            let known = ["count", "sum", "min", "max", "avg", "count_distinct"];
            diags.push(
                Diagnostic::new(&node.span, format!("unknown aggregate function `{other}`")).hint(
                    did_you_mean(other, known)
                        .unwrap_or_else(|| format!("use {}", known.join(", "))),
                ),
            );
            return None;
        }
    };
    let field = (!arg.is_empty()).then_some(arg);
    match (function, &field) {
        (Function::Count, Some(f)) => {
            diags.push(
                Diagnostic::new(&node.span, format!("`count({f})`: count takes no field")).hint(
                    "`count()` counts records; `count_distinct(field)` counts distinct values",
                ),
            );
            None
        }
        (Function::Count, None) => Some(Compute {
            name: name.to_string(),
            function,
            field,
        }),
        (_, None) => {
            diags.push(
                Diagnostic::new(
                    &node.span,
                    format!("`{func}()` needs the field it aggregates"),
                )
                .hint(format!("e.g. `{func}(amount)`")),
            );
            None
        }
        (_, Some(_)) => Some(Compute {
            name: name.to_string(),
            function,
            field,
        }),
    }
}

fn aggregation(node: &Node, diags: &mut Diagnostics) -> Option<Aggregation> {
    let f = Fields::new(node, "`aggregate`", &["key", "window", "compute"], diags)?;
    let key: Vec<String> = f
        .string_list("key", diags)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let window = f
        .required("window", "`aggregate`", diags)
        .and_then(|n| window(n, diags));
    let c = f.required("compute", "`aggregate`", diags)?;
    let Value::Map(entries) = &c.value else {
        diags.push(
            Diagnostic::new(&c.span, "`compute` maps result names to functions")
                .hint("e.g. `compute: { total: sum(amount), orders: count() }`"),
        );
        return None;
    };
    let compute: Vec<Compute> = entries
        .iter()
        .filter_map(|(k, v)| compute(&k.scalar_text().unwrap_or_default(), v, diags))
        .collect();
    if compute.len() != entries.len() {
        return None;
    }
    Some(Aggregation {
        key,
        window: window?,
        compute,
    })
}

/// `{ into: CONNECTION, table: T }`, `{ into: lake, path: P }` or `{ into: kafka, topic: T }`.
fn target(
    node: &Node,
    what: &str,
    connections: &Connections,
    diags: &mut Diagnostics,
) -> Option<Target> {
    let f = Fields::new(
        node,
        what,
        &["into", "table", "path", "topic", "mode", "key"],
        diags,
    )?;
    f.required("into", what, diags)?;
    let into = f.string("into", diags)?;
    let into_span = &f.get("into").expect("given").span;
    match into.as_str() {
        "lake" => {
            f.required("path", what, diags)?;
            Some(Target::Lake {
                path: f.string("path", diags)?,
            })
        }
        "kafka" => {
            f.required("topic", what, diags)?;
            Some(Target::Kafka {
                topic: f.string("topic", diags)?,
            })
        }
        name => {
            let kind = if name == WAREHOUSE && connections.get(WAREHOUSE).is_none() {
                ConnectionKind::DuckDb
            } else {
                match connections.get(name) {
                    Some(c)
                        if matches!(
                            c.kind,
                            ConnectionKind::DuckDb
                                | ConnectionKind::Postgres
                                | ConnectionKind::MySql
                        ) =>
                    {
                        c.kind
                    }
                    Some(c) => {
                        diags.push(
                            Diagnostic::new(into_span, format!("`{name}` is a {} connection; tables are written to DuckDB, PostgreSQL or MySQL/MariaDB", c.kind.name()))
                                .hint("use `into: warehouse`, a postgres://, mysql:// or duckdb:// connection, `into: lake` or `into: kafka`"),
                        );
                        return None;
                    }
                    None => {
                        let known: Vec<&str> = connections
                            .iter()
                            .map(|c| c.name.as_str())
                            .chain([WAREHOUSE, "lake", "kafka"])
                            .collect();
                        diags.push(
                            Diagnostic::new(into_span, format!("unknown connection `{name}`"))
                                .hint(
                                did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
                                    format!(
                                        "define it in connections.yaml, or write into one of: {}",
                                        known.join(", ")
                                    )
                                }),
                            ),
                        );
                        return None;
                    }
                }
            };
            f.required("table", what, diags)?;
            Some(Target::Table {
                connection: name.to_string(),
                kind,
                table: f.string("table", diags)?,
            })
        }
    }
}

fn sink(node: &Node, connections: &Connections, diags: &mut Diagnostics) -> Option<Sink> {
    let target = target(node, "`sink`", connections, diags);
    let f = Fields::new(
        node,
        "`sink`",
        &["into", "table", "path", "topic", "mode", "key"],
        &mut Diagnostics::default(),
    )?;
    let key: Vec<String> = f
        .string_list("key", diags)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mode = match f.string("mode", diags).as_deref() {
        None | Some("append") => Some(SinkMode::Append),
        Some("upsert") => Some(SinkMode::Upsert),
        Some(other) => {
            diags.push(
                Diagnostic::new(
                    &f.get("mode").expect("given").span,
                    format!("unknown sink mode `{other}`"),
                )
                .hint("use `append` or `upsert` (with `key: [...]`)"),
            );
            None
        }
    };
    if let (Some(SinkMode::Upsert), Some(Target::Lake { .. })) = (mode, &target) {
        diags.push(
            Diagnostic::new(&f.get("mode").expect("given").span, "the lake cannot upsert: it keeps one Parquet file per batch")
                .hint("use `mode: append` (a replayed batch rewrites its own file), or upsert into a table or a Kafka topic (keyed messages)"),
        );
        return None;
    }
    if mode == Some(SinkMode::Upsert) && key.is_empty() {
        diags.push(
            Diagnostic::new(&node.span, "`mode: upsert` needs the key it upserts on")
                .hint("add `key: [id]` (for windowed results, e.g. `key: [product_category, window_start]`)"),
        );
        return None;
    }
    Some(Sink {
        target: target?,
        mode: mode?,
        key,
    })
}

fn batch(node: &Node, diags: &mut Diagnostics) -> Option<Batch> {
    let f = Fields::new(node, "`batch`", &["max_records", "max_wait"], diags)?;
    let max_records = f.uint("max_records", diags).unwrap_or(1000);
    if max_records == 0 {
        diags.push(Diagnostic::new(
            &f.get("max_records").expect("given").span,
            "`max_records` must be at least 1",
        ));
        return None;
    }
    let max_wait = match f.get("max_wait") {
        Some(n) => positive(n, "`max_wait`", f.duration("max_wait", diags), diags)?,
        None => Duration::from_secs(5),
    };
    Some(Batch {
        max_records,
        max_wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Option<Stream>, Vec<String>) {
        let mut diags = Diagnostics::default();
        let conns = Connections::default();
        let s = load_file("pipelines/s.yaml", text, &conns, &mut diags);
        (s, diags.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_products_example_decodes() {
        let (s, problems) = load(
            "stream: hourly_sales
source: { kafka: { brokers: \"127.0.0.1:9092\", topic: orders, group: warehouse-loader, format: json } }
require: [id, timestamp, data]
event_time: { field: timestamp, max_out_of_orderness: 30s, idle_after: 1m, allowed_lateness: 0s }
aggregate: { key: [product_category], window: { tumbling: 1h }, compute: { total: sum(amount), orders: count() } }
sink: { into: warehouse, table: hourly_sales, mode: upsert, key: [product_category, window_start] }
batch: { max_records: 1000, max_wait: 5s }
delivery: exactly_once
dead_letter: { into: warehouse, table: dead_letters }
",
        );
        assert!(problems.is_empty(), "{problems:#?}");
        let s = s.unwrap();
        assert_eq!(s.source.topics, ["orders"]);
        assert_eq!(s.delivery, Delivery::ExactlyOnce);
        let agg = s.aggregate.unwrap();
        assert_eq!(
            agg.window,
            Window::Tumbling {
                size: Duration::from_secs(3600)
            }
        );
        assert_eq!(agg.compute[0].function, Function::Sum);
        assert_eq!(agg.compute[0].field.as_deref(), Some("amount"));
        assert_eq!(agg.compute[1].function, Function::Count);
        assert_eq!(
            s.event_time.unwrap().idle_after,
            Some(Duration::from_secs(60))
        );
        assert!(matches!(
            s.sink.target,
            Target::Table {
                kind: ConnectionKind::DuckDb,
                ..
            }
        ));
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let (s, problems) = load(
            "stream: s
source: { kafka: { brokers: b, group: g, format: jsn } }
aggregate: { key: [k], window: { sliding: { size: 2s, slide: 5s } }, compute: { n: count(x), m: median(v) } }
sink: { into: lake, path: \"lake://out\", mode: upsert }
delivery: exactly_once
",
        );
        assert!(s.is_none());
        let text = problems.join("\n");
        for expected in [
            "pipelines/s.yaml:2:18: error: `kafka` names no topic",
            "unknown format `jsn`",
            "hint: did you mean `json`?",
            "a windowed `aggregate` needs `event_time`",
            "`slide` is longer than `size`",
            "`count(x)`: count takes no field",
            "unknown aggregate function `median`",
            "the lake cannot upsert",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
        }
    }

    #[test]
    fn exactly_once_needs_a_table_and_tables_need_a_known_connection() {
        let (_, problems) = load(
            "stream: s
source: { kafka: { brokers: b, topic: t, group: g } }
sink: { into: lake, path: \"lake://out\" }
delivery: exactly_once
dead_letter: { into: warehose, table: dl }
",
        );
        let text = problems.join("\n");
        assert!(text.contains("exactly_once needs a table sink"), "{text}");
        assert!(text.contains("unknown connection `warehose`"), "{text}");
        assert!(text.contains("did you mean `warehouse`?"), "{text}");
    }

    #[test]
    fn dead_letter_tables_live_in_the_sinks_database_and_the_lake_does_not_upsert() {
        let (_, problems) = load(
            "stream: s
source: { kafka: { brokers: b, topic: t, group: g } }
sink: { into: lake, path: \"lake://out\", mode: upsert, key: [id] }
",
        );
        let text = problems.join("\n");
        assert!(
            text.contains("pipelines/s.yaml:3:47: error: the lake cannot upsert"),
            "{text}"
        );
        let (_, problems) = load(
            "stream: s
source: { kafka: { brokers: b, topic: t, group: g } }
sink: { into: lake, path: \"lake://out\" }
dead_letter: { into: warehouse, table: dl }
",
        );
        let text = problems.join("\n");
        assert!(
            text.contains("pipelines/s.yaml:4:14: error: dead letters in a table of `warehouse` need the sink to write into `warehouse` too"),
            "{text}"
        );
        let (s, problems) = load(
            "stream: s
source: { kafka: { brokers: b, topic: t, group: g } }
sink: { into: lake, path: \"lake://out\" }
dead_letter: { into: kafka, topic: t.dead_letters }
",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            s.unwrap().dead_letter,
            Some(Target::Kafka {
                topic: "t.dead_letters".into()
            })
        );
    }

    /// A stream file whose kafka source is `kafka` (a block mapping, indented by 4).
    fn with_kafka(kafka: &str) -> String {
        format!(
            "stream: s
source:
  kafka:
    brokers: b
    topic: t
    group: g
{kafka}
sink: {{ into: warehouse, table: out }}
"
        )
    }

    #[test]
    fn avro_takes_its_schema_from_a_registry_or_inline() {
        let (s, problems) = load(&with_kafka(
            "    format: avro\n    schema_registry: http://127.0.0.1:8081",
        ));
        assert!(problems.is_empty(), "{problems:#?}");
        let source = s.unwrap().source;
        assert_eq!(source.format, Format::Avro { schema: None });
        assert_eq!(
            source.schema_registry.as_deref(),
            Some("http://127.0.0.1:8081")
        );

        // JSON is YAML: the schema object as it is, or as a string / block of JSON text.
        let record =
            r#"{"type": "record", "name": "Click", "fields": [{"name": "id", "type": "long"}]}"#;
        for kafka in [
            format!("    format: avro\n    schema: {record}"),
            format!("    format: avro\n    schema: '{record}'"),
            format!("    format: avro\n    schema: |\n      {record}"),
        ] {
            let (s, problems) = load(&with_kafka(&kafka));
            assert!(problems.is_empty(), "{kafka}\n{problems:#?}");
            let Format::Avro { schema: Some(text) } = s.unwrap().source.format else {
                panic!("{kafka}: no inline schema");
            };
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed["name"], "Click", "{kafka}");
        }
    }

    #[test]
    fn avro_schema_problems_are_reported_at_the_key() {
        let cases = [
            (
                "    format: avro",
                "pipelines/s.yaml:7:13: error: `format: avro` needs the schema the records were written with\n  hint: add `schema_registry: http://…`",
            ),
            (
                "    format: avro\n    schema: '{\"type\": \"record\", \"name\": \"R\", \"fields\": [{\"name\": \"id\", \"type\": \"lng\"}]}'",
                "pipelines/s.yaml:8:5: error: `schema` is not a valid Avro schema: Unknown primitive type: lng",
            ),
            (
                "    format: avro\n    schema: '{\"type\": \"record\",'",
                "pipelines/s.yaml:8:5: error: `schema` is not a valid Avro schema: Failed to parse schema from JSON: EOF while parsing a value at line 1 column 18",
            ),
            (
                "    format: avro\n    schema: '\"string\"'",
                "pipelines/s.yaml:8:5: error: `schema` must be an Avro record schema, found a `string` schema",
            ),
            (
                "    format: avro\n    schema: 3",
                "pipelines/s.yaml:8:5: error: `schema` must be an Avro record schema, found an integer",
            ),
            (
                "    format: avro\n    schema_registry: http://r\n    schema: { \"type\": \"record\", \"name\": \"R\", \"fields\": [] }",
                "pipelines/s.yaml:9:5: error: `schema` and `schema_registry` are both given",
            ),
            (
                "    format: avro\n    schema_registry: 127.0.0.1:8081",
                "pipelines/s.yaml:8:22: error: `127.0.0.1:8081` is not an http:// or https:// URL",
            ),
            (
                "    schema_registry: http://r",
                "pipelines/s.yaml:7:5: error: only Avro payloads have a schema\n  hint: add `format: avro`",
            ),
        ];
        for (kafka, expected) in cases {
            let (s, problems) = load(&with_kafka(kafka));
            let text = problems.join("\n");
            assert!(
                s.is_none() && text.contains(expected),
                "for the kafka source\n{kafka}\nexpected `{expected}` in:\n{text}"
            );
        }
    }
}
