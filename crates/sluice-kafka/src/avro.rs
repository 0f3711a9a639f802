//! Payloads in a stream's `format:`: JSON, raw bytes and Avro (plain datums of the stream's
//! `schema`, or the Confluent wire format with writer schemas from a `schema_registry`), all
//! decoded into the JSON objects a `json` stream gives, so the later stages (required fields,
//! windows, sinks) work alike whatever the producer wrote.
//!
//! Avro becomes what a JSON producer would have sent:
//! - records → objects, unions → their branch's value (null too), enums → the symbol, arrays →
//!   arrays, maps → objects;
//! - timestamp-millis/micros/nanos → RFC 3339 in UTC (`2024-05-01T12:00:00.250Z`), which
//!   `event_time` reads; local-timestamp-* → the same without an offset (they name no zone);
//!   date → `YYYY-MM-DD`; time-millis/micros → `HH:MM:SS.fff`; uuid → its text; duration →
//!   `{months, days, millis}`;
//! - decimals → JSON numbers when the number reads back as exactly the decimal (so aggregates
//!   can sum them), else strings, so that no amount is silently rounded;
//! - bytes and fixed → base64: lossless, and text PostgreSQL's jsonb accepts (Avro's own JSON
//!   encoding maps bytes to U+0000..U+00FF, and jsonb refuses U+0000);
//! - NaN and the infinities → the strings `NaN`, `Infinity`, `-Infinity` (JSON has no such
//!   numbers).
//!
//! A registry that cannot answer is the outside world's failure, not the record's: the batch is
//! left undecoded (`StreamError::Source`) and tried again with backoff. Only what is about the
//! record — its schema id is unknown (404), its datum does not fit its schema — dead-letters it.

use std::collections::HashMap;
use std::time::Duration;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{NamesRef, ResolvedSchema};
use apache_avro::types::Value as Avro;
use apache_avro::{BigDecimal, Schema};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveTime, SecondsFormat};
use serde_json::Value as Json;
use sluice_core::secrets::{self, Redactor};
use sluice_core::stream::{Format, Stream};
use tokio_util::sync::CancellationToken;

use crate::{Record, StreamError};

/// One record decoded: the object the later stages take, or why it goes to the dead letters.
pub type Decoded = Result<Json, String>;

/// Decodes a stream's records, a batch at a time, in the stream's `format:`; built once per run
/// so that registry schemas are asked for once.
pub struct Decoder {
    stream: String,
    payload: Payload,
    require: Vec<String>,
}

enum Payload {
    Json,
    Bytes,
    /// Plain Avro datums of the stream's schema.
    Avro(Schema),
    /// The Confluent wire format, schemas from a registry.
    Registry(Registry),
}

impl Decoder {
    /// The decoder for `stream`. Fails only for what `sluice check` refuses.
    pub fn new(stream: &Stream) -> Result<Decoder, StreamError> {
        let source = &stream.source;
        let payload = match (&source.format, &source.schema_registry) {
            (Format::Json, _) => Payload::Json,
            (Format::Bytes, _) => Payload::Bytes,
            (Format::Avro { schema: Some(text) }, _) => {
                Payload::Avro(Schema::parse_str(text).map_err(|e| {
                    StreamError::Unsupported(format!(
                        "stream `{}`: its Avro `schema` does not parse: {e}",
                        stream.id
                    ))
                })?)
            }
            (Format::Avro { schema: None }, Some(url)) => Payload::Registry(Registry::new(url)?),
            (Format::Avro { schema: None }, None) => {
                return Err(StreamError::Unsupported(format!(
                    "stream `{}`: `format: avro` needs `schema_registry` or `schema`",
                    stream.id
                )));
            }
        };
        Ok(Decoder {
            stream: stream.id.clone(),
            payload,
            require: stream.require.clone(),
        })
    }

    /// Decodes a batch: one outcome per record, in order. `Err(StreamError::Source)` when the
    /// schema registry cannot answer: then nothing is decoded and the batch can be tried again.
    pub async fn decode(&mut self, records: &[Record]) -> Result<Vec<Decoded>, StreamError> {
        let require = &self.require;
        let checked = |decoded: Decoded| decoded.and_then(|v| crate::checked(v, require));
        Ok(match &mut self.payload {
            Payload::Json => records.iter().map(|r| crate::decode(r, require)).collect(),
            Payload::Bytes => records
                .iter()
                .map(|r| checked(Ok(bytes(&r.payload))))
                .collect(),
            Payload::Avro(schema) => {
                let writer = Writer::new(schema, "the stream's schema".into());
                records
                    .iter()
                    .map(|r| checked(writer.as_ref().map_err(Clone::clone)?.read(&r.payload)))
                    .collect()
            }
            Payload::Registry(registry) => {
                // Every schema the batch needs is asked for before any record is decoded: if the
                // registry cannot answer, the batch is left as it was, to be tried again whole.
                let mut missing: HashMap<u32, String> = HashMap::new();
                for record in records {
                    let Ok((id, _)) = wire_format(&record.payload) else {
                        continue;
                    };
                    if registry.schemas.contains_key(&id) || missing.contains_key(&id) {
                        continue;
                    }
                    match registry.ask(id).await? {
                        Answer::Schema(schema) => {
                            registry.schemas.insert(id, Ok(schema));
                        }
                        Answer::Unusable(why) => {
                            registry.schemas.insert(id, Err(why));
                        }
                        // Not kept past the batch: a registry replica may not know yet an id
                        // registered a moment ago.
                        Answer::Missing(why) => {
                            missing.insert(id, why);
                        }
                    }
                }
                let schemas = &registry.schemas;
                let mut writers: HashMap<u32, Result<Writer<'_>, String>> = HashMap::new();
                records
                    .iter()
                    .map(|record| {
                        let (id, datum) = wire_format(&record.payload)?;
                        if let Some(why) = missing.get(&id) {
                            return Err(why.clone());
                        }
                        let writer = writers.entry(id).or_insert_with(|| match schemas.get(&id) {
                            Some(Ok(schema)) => Writer::new(schema, format!("schema id {id}")),
                            Some(Err(why)) => Err(why.clone()),
                            None => Err(format!(
                                "schema id {id} was not asked for; this is a bug in Sluice, please report it"
                            )),
                        });
                        checked(writer.as_ref().map_err(Clone::clone)?.read(datum))
                    })
                    .collect()
            }
        })
    }

    /// Decodes a batch, asking the registry again while it cannot answer (backoff from 1 s,
    /// doubling to 30 s). Meanwhile nothing more is consumed, as while the sink is down.
    /// Ok(None) when stopped before the batch was decoded — its records are not committed, so
    /// they are read again — or, once the registry has failed, that failure, as for the sink.
    pub async fn decode_until_done(
        &mut self,
        records: &[Record],
        stop: &CancellationToken,
    ) -> Result<Option<Vec<Decoded>>, StreamError> {
        let mut backoff = Duration::from_secs(1);
        let mut failed: Option<String> = None;
        loop {
            // Decoding first: a batch that needs no request (JSON, bytes, known schemas) is
            // decoded on the first poll even when the stream is stopping. Dropping a `decode`
            // that waits for the registry loses nothing: answers are cached once complete.
            let error = tokio::select! {
                biased;
                decoded = self.decode(records) => match decoded {
                    Err(StreamError::Source(e)) => e,
                    other => return other.map(Some),
                },
                _ = stop.cancelled() => {
                    return failed.map_or(Ok(None), |e| Err(StreamError::Source(e)));
                }
            };
            tracing::warn!(stream = %self.stream, "cannot decode a batch: {error}; trying again in {}s", backoff.as_secs());
            crate::metrics::source_retried(&self.stream);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return Err(StreamError::Source(error)),
            }
            failed = Some(error);
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// A `bytes` payload as a record: `{"value": text, "encoding": "utf8"}` when it is UTF-8 text,
/// else `{"value": base64, "encoding": "base64"}` — also for text holding NUL, which PostgreSQL's
/// jsonb cannot store. The encoding is spelled out so that text that happens to look like base64
/// is never taken for it.
fn bytes(payload: &[u8]) -> Json {
    let (value, encoding) = crate::payload_text(payload);
    serde_json::json!({ "value": value, "encoding": encoding })
}

/// Splits a payload in the Confluent wire format: the magic byte 0, the schema id (4 bytes,
/// big-endian), then the Avro datum.
pub(crate) fn wire_format(payload: &[u8]) -> Result<(u32, &[u8]), String> {
    match payload {
        [] => Err("Avro: the payload is empty, not in the Confluent wire format (the magic byte 0, a 4-byte schema id, the datum)".into()),
        [magic, ..] if *magic != 0 => Err(format!(
            "Avro: payload does not start with the Confluent magic byte 0 (found {magic:#04x} at offset 0)"
        )),
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        short => Err(format!(
            "Avro: the payload is {} byte(s), shorter than the Confluent header (the magic byte 0 and a 4-byte schema id)",
            short.len()
        )),
    }
}

/// A writer schema ready to read datums, its named types resolved once rather than per record.
struct Writer<'s> {
    schema: &'s Schema,
    reader: GenericDatumReader<'s>,
    names: ResolvedSchema<'s>,
    /// The schema in messages: "schema id 3", "the stream's schema".
    which: String,
}

impl<'s> Writer<'s> {
    fn new(schema: &'s Schema, which: String) -> Result<Writer<'s>, String> {
        let unusable = |e: apache_avro::Error| format!("Avro: cannot decode with {which}: {e}");
        Ok(Writer {
            schema,
            reader: GenericDatumReader::builder(schema)
                .build()
                .map_err(unusable)?,
            names: ResolvedSchema::try_from(schema).map_err(unusable)?,
            which,
        })
    }

    /// A datum as a JSON object. The datum must be the whole payload: bytes left over mean it
    /// was written with another schema, even when its start happens to read.
    fn read(&self, mut datum: &[u8]) -> Decoded {
        let which = &self.which;
        let value = self
            .reader
            .read_value(&mut datum)
            .map_err(|e| format!("Avro: cannot decode with {which}: {}", chain(&e)))?;
        if !datum.is_empty() {
            return Err(format!(
                "Avro: cannot decode with {which}: {} byte(s) left after the record (was it written with another schema?)",
                datum.len()
            ));
        }
        match to_json(value, Some(self.schema), self.names.get_names())
            .map_err(|e| format!("Avro: {e} (with {which})"))?
        {
            object @ Json::Object(_) => Ok(object),
            other => Err(format!(
                "Avro: expected a record, found {} (with {which})",
                crate::kind(&other)
            )),
        }
    }
}

/// An Avro value as JSON (the mapping is in the module's comment). `schema` is the value's schema
/// where known: only decimals need it, their scale being in the schema, not in the value.
fn to_json(value: Avro, schema: Option<&Schema>, names: &NamesRef<'_>) -> Result<Json, String> {
    // A named type used a second time is a reference to its definition.
    let schema = match schema {
        Some(Schema::Ref { name }) => names.get(name).copied(),
        other => other,
    };
    Ok(match value {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(b),
        Avro::Int(i) => Json::from(i),
        Avro::Long(l) => Json::from(l),
        // Through the f32's shortest text: 0.1f32 stays 0.1, not 0.10000000149011612.
        Avro::Float(f) => float(f.to_string().parse().unwrap_or(f64::from(f))),
        Avro::Double(d) => float(d),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Json::String(BASE64.encode(b)),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s),
        Avro::Uuid(u) => Json::String(u.to_string()),
        Avro::Union(branch, inner) => {
            let schema = match schema {
                Some(Schema::Union(u)) => u.variants().get(branch as usize),
                _ => None,
            };
            to_json(*inner, schema, names)?
        }
        Avro::Array(items) => {
            let schema = match schema {
                Some(Schema::Array(a)) => Some(&*a.items),
                _ => None,
            };
            Json::Array(
                items
                    .into_iter()
                    .map(|v| to_json(v, schema, names))
                    .collect::<Result<_, _>>()?,
            )
        }
        Avro::Map(entries) => {
            let schema = match schema {
                Some(Schema::Map(m)) => Some(&*m.types),
                _ => None,
            };
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((k, to_json(v, schema, names)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        Avro::Record(fields) => {
            let schemas: Vec<&Schema> = match schema {
                Some(Schema::Record(r)) => r.fields.iter().map(|f| &f.schema).collect(),
                _ => Vec::new(),
            };
            let mut object = serde_json::Map::new();
            for (i, (name, v)) in fields.into_iter().enumerate() {
                object.insert(name, to_json(v, schemas.get(i).copied(), names)?);
            }
            Json::Object(object)
        }
        Avro::Date(days) => DateTime::from_timestamp(i64::from(days) * 86_400, 0)
            .map(|t| Json::String(t.date_naive().to_string()))
            .ok_or_else(|| format!("date {days} (days since 1970-01-01) is out of range"))?,
        Avro::TimeMillis(ms) => time_of_day(i64::from(ms) * 1_000_000, "%H:%M:%S%.3f")
            .ok_or_else(|| format!("time-millis {ms} is not a time of day"))?,
        Avro::TimeMicros(us) => us
            .checked_mul(1_000)
            .and_then(|ns| time_of_day(ns, "%H:%M:%S%.6f"))
            .ok_or_else(|| format!("time-micros {us} is not a time of day"))?,
        Avro::TimestampMillis(ms) => DateTime::from_timestamp_millis(ms)
            .map(|t| Json::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
            .ok_or_else(|| format!("timestamp-millis {ms} is out of range"))?,
        Avro::TimestampMicros(us) => DateTime::from_timestamp_micros(us)
            .map(|t| Json::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)))
            .ok_or_else(|| format!("timestamp-micros {us} is out of range"))?,
        Avro::TimestampNanos(ns) => Json::String(
            DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Nanos, true),
        ),
        Avro::LocalTimestampMillis(ms) => DateTime::from_timestamp_millis(ms)
            .map(|t| Json::String(t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string()))
            .ok_or_else(|| format!("local-timestamp-millis {ms} is out of range"))?,
        Avro::LocalTimestampMicros(us) => DateTime::from_timestamp_micros(us)
            .map(|t| Json::String(t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()))
            .ok_or_else(|| format!("local-timestamp-micros {us} is out of range"))?,
        Avro::LocalTimestampNanos(ns) => Json::String(
            DateTime::from_timestamp_nanos(ns)
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S%.9f")
                .to_string(),
        ),
        Avro::Decimal(d) => {
            let Some(Schema::Decimal(decimal)) = schema else {
                return Err(
                    "a decimal whose scale is unknown; this is a bug in Sluice, please report it"
                        .into(),
                );
            };
            let scale = i64::try_from(decimal.scale)
                .map_err(|_| format!("decimal scale {} is out of range", decimal.scale))?;
            number(BigDecimal::new(d.into(), scale))
        }
        Avro::BigDecimal(d) => number(d),
        Avro::Duration(d) => serde_json::json!({
            "months": u32::from(d.months()),
            "days": u32::from(d.days()),
            "millis": u32::from(d.millis()),
        }),
    })
}

/// A JSON number, or for NaN and the infinities (which JSON has not) their usual names.
fn float(f: f64) -> Json {
    match serde_json::Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// A decimal as a JSON number when that number reads back as exactly the decimal, else as its
/// text: amounts are never rounded on the way.
fn number(d: BigDecimal) -> Json {
    let text = d.to_plain_string();
    if let Ok(f) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
        && n.to_string()
            .parse::<BigDecimal>()
            .is_ok_and(|back| back == d)
    {
        return Json::Number(n);
    }
    Json::String(text)
}

/// `nanos` after midnight as a time of day.
fn time_of_day(nanos: i64, format: &str) -> Option<Json> {
    let secs = u32::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let nano = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    let t = NaiveTime::from_num_seconds_from_midnight_opt(secs, nano)?;
    Some(Json::String(t.format(format).to_string()))
}

/// An error with its causes, which often say more than it ("connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// A Confluent-compatible schema registry, and what it answered.
struct Registry {
    /// Without a trailing slash, for requests.
    url: String,
    /// With its credentials masked, for messages and logs.
    shown: String,
    /// Masks the URL's credentials, which a registry may echo in an error's body.
    redactor: Redactor,
    client: reqwest::Client,
    /// Answers by schema id. A registry never changes the schema of an id, so an answer holds
    /// for good; Err: the registry has the id, but not as an Avro schema Sluice can read.
    schemas: HashMap<u32, Result<Schema, String>>,
}

/// What a registry said about one schema id.
enum Answer {
    Schema(Schema),
    /// Not Avro, or not parsable: every record of the id is dead-lettered.
    Unusable(String),
    /// Unknown to the registry (404).
    Missing(String),
}

impl Registry {
    fn new(url: &str) -> Result<Registry, StreamError> {
        // Credentials in the URL are sent as basic authentication, never shown.
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            StreamError::Unsupported(format!(
                "`schema_registry: {}` is not a URL: {e}",
                secrets::redact_uri_text(url)
            ))
        })?;
        let shown = secrets::redact_url(&parsed);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| StreamError::Source(format!("cannot set up an HTTP client: {e}")))?;
        Ok(Registry {
            url: url.trim_end_matches('/').to_string(),
            shown: shown.trim_end_matches('/').to_string(),
            redactor: Redactor::default().with_uri(url),
            client,
            schemas: HashMap::new(),
        })
    }

    /// Asks for the schema of `id`. `Err(StreamError::Source)` when the registry gives no answer
    /// about the id: unreachable, an error status other than 404, an answer that is not a
    /// registry's — none of it the record's fault.
    async fn ask(&self, id: u32) -> Result<Answer, StreamError> {
        let shown = &self.shown;
        let unreachable = |e: reqwest::Error| {
            StreamError::Source(format!(
                "schema registry {shown}: cannot ask for schema id {id}: {}",
                chain(&e.without_url())
            ))
        };
        let response = self
            .client
            .get(format!("{}/schemas/ids/{id}", self.url))
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Answer::Missing(format!(
                "schema registry {shown}: schema id {id} not found (404)"
            )));
        }
        if !status.is_success() {
            let body = self.redactor.redact(&String::from_utf8_lossy(&body));
            let body: String = body.chars().take(200).collect();
            return Err(StreamError::Source(format!(
                "schema registry {shown}: schema id {id}: HTTP {status}: {body}"
            )));
        }
        let answer: Json = serde_json::from_slice(&body).map_err(|e| {
            StreamError::Source(format!(
                "schema registry {shown}: the answer for schema id {id} is not JSON ({e}); is this a schema registry's URL?"
            ))
        })?;
        let Some(text) = answer.get("schema").and_then(Json::as_str) else {
            return Err(StreamError::Source(format!(
                "schema registry {shown}: the answer for schema id {id} has no `schema`; is this a schema registry's URL?"
            )));
        };
        // Confluent's registry says `schemaType` for Protobuf and JSON Schema only.
        if let Some(kind) = answer.get("schemaType").and_then(Json::as_str)
            && kind != "AVRO"
        {
            return Ok(Answer::Unusable(format!(
                "schema registry {shown}: schema id {id} is a {kind} schema, not Avro"
            )));
        }
        Ok(match Schema::parse_str(text) {
            Ok(schema) => Answer::Schema(schema),
            Err(e) => {
                let references = answer
                    .get("references")
                    .and_then(Json::as_array)
                    .is_some_and(|r| !r.is_empty());
                Answer::Unusable(format!(
                    "schema registry {shown}: schema id {id} does not parse as Avro: {}{}",
                    chain(&e),
                    if references {
                        " (it references other subjects' schemas, which Sluice does not fetch yet)"
                    } else {
                        ""
                    }
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::writer::datum::GenericDatumWriter;
    use serde_json::json;

    #[test]
    fn a_registry_url_is_never_shown_with_its_password() {
        let Err(StreamError::Unsupported(message)) =
            Registry::new("http://reg:hunter22@127.0.0.1:99999/x")
        else {
            panic!("a port out of range is not a URL");
        };
        assert_eq!(
            message,
            "`schema_registry: http://reg:***@127.0.0.1:99999/x` is not a URL: invalid port number"
        );
        let registry = Registry::new("https://reg:hunter22@registry.example.com/").unwrap();
        assert_eq!(registry.shown, "https://reg:***@registry.example.com");
    }

    fn encode(schema: &Schema, value: Avro) -> Vec<u8> {
        GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    fn record(payload: Vec<u8>) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            payload,
        }
    }

    #[test]
    fn the_confluent_header_is_split_off_or_the_reason_spelled_out() {
        assert_eq!(
            wire_format(&[0, 0, 0, 1, 2, 9, 9]).unwrap(),
            (258, &[9u8, 9][..])
        );
        assert_eq!(wire_format(&[0, 0, 0, 0, 42]).unwrap(), (42, &[][..]));
        let cases: [(&[u8], &str); 3] = [
            (
                b"{\"id\": 1}",
                "Avro: payload does not start with the Confluent magic byte 0 (found 0x7b at offset 0)",
            ),
            (
                &[0, 0, 1],
                "Avro: the payload is 3 byte(s), shorter than the Confluent header (the magic byte 0 and a 4-byte schema id)",
            ),
            (
                &[],
                "Avro: the payload is empty, not in the Confluent wire format (the magic byte 0, a 4-byte schema id, the datum)",
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(
                wire_format(payload).unwrap_err(),
                expected,
                "payload {payload:?}"
            );
        }
    }

    const ORDER: &str = r#"{
        "type": "record", "name": "Order", "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
                {"name": "name", "type": "string"},
                {"name": "vip", "type": "boolean"}
            ]}},
            {"name": "referrer", "type": ["null", "Customer"]},
            {"name": "coupon", "type": ["null", "string"]},
            {"name": "items", "type": {"type": "array", "items": "int"}},
            {"name": "tags", "type": {"type": "map", "values": "double"}},
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "exact", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 2}},
            {"name": "discount", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 3, "scale": 1}]},
            {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "blob", "type": "bytes"},
            {"name": "ratio", "type": "float"},
            {"name": "nothing", "type": "double"}
        ]
    }"#;

    #[test]
    fn avro_records_become_the_json_a_producer_would_have_sent() {
        let schema = Schema::parse_str(ORDER).unwrap();
        let customer = |name: &str, vip| {
            Avro::Record(vec![
                ("name".into(), Avro::String(name.into())),
                ("vip".into(), Avro::Boolean(vip)),
            ])
        };
        let value = Avro::Record(vec![
            ("id".into(), Avro::Long(9_007_199_254_740_993)),
            ("customer".into(), customer("Ada", true)),
            (
                "referrer".into(),
                Avro::Union(1, Box::new(customer("Bob", false))),
            ),
            ("coupon".into(), Avro::Union(0, Box::new(Avro::Null))),
            (
                "items".into(),
                Avro::Array(vec![Avro::Int(1), Avro::Int(2)]),
            ),
            (
                "tags".into(),
                Avro::Map(HashMap::from([("weight".to_string(), Avro::Double(1.5))])),
            ),
            ("status".into(), Avro::Enum(1, "PAID".into())),
            // 2024-05-01T12:00:00.250Z
            ("ts".into(), Avro::TimestampMillis(1_714_564_800_250)),
            ("ts_us".into(), Avro::TimestampMicros(1_714_564_800_000_001)),
            (
                "local".into(),
                Avro::LocalTimestampMillis(1_714_564_800_250),
            ),
            // 19_844 days after 1970-01-01
            ("day".into(), Avro::Date(19_844)),
            // 13:30:05.007
            ("at".into(), Avro::TimeMillis(48_605_007)),
            // 12345 at scale 2
            (
                "amount".into(),
                Avro::Decimal(apache_avro::Decimal::from(vec![0x30, 0x39])),
            ),
            // 1234567890123456789 at scale 2: more digits than a double holds
            (
                "exact".into(),
                Avro::Decimal(apache_avro::Decimal::from(
                    1_234_567_890_123_456_789i64.to_be_bytes().to_vec(),
                )),
            ),
            // 2.5 in a union: the scale is found through the union's branch
            (
                "discount".into(),
                Avro::Union(
                    1,
                    Box::new(Avro::Decimal(apache_avro::Decimal::from(vec![25]))),
                ),
            ),
            (
                "uid".into(),
                Avro::Uuid(
                    apache_avro::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap(),
                ),
            ),
            ("blob".into(), Avro::Bytes(vec![0, 1, 2, 255])),
            ("ratio".into(), Avro::Float(0.1)),
            ("nothing".into(), Avro::Double(f64::NAN)),
        ]);
        let datum = encode(&schema, value);
        let writer = Writer::new(&schema, "the stream's schema".into()).unwrap();
        assert_eq!(
            writer.read(&datum).unwrap(),
            json!({
                "id": 9_007_199_254_740_993i64,
                "customer": {"name": "Ada", "vip": true},
                "referrer": {"name": "Bob", "vip": false},
                "coupon": null,
                "items": [1, 2],
                "tags": {"weight": 1.5},
                "status": "PAID",
                "ts": "2024-05-01T12:00:00.250Z",
                "ts_us": "2024-05-01T12:00:00.000001Z",
                "local": "2024-05-01T12:00:00.250",
                "day": "2024-05-01",
                "at": "13:30:05.007",
                "amount": 123.45,
                "exact": "12345678901234567.89",
                "discount": 2.5,
                "uid": "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "blob": "AAEC/w==",
                "ratio": 0.1,
                "nothing": "NaN",
            })
        );
        // The datum must be the whole payload.
        let mut longer = datum.clone();
        longer.push(0);
        assert_eq!(
            writer.read(&longer).unwrap_err(),
            "Avro: cannot decode with the stream's schema: 1 byte(s) left after the record (was it written with another schema?)"
        );
        assert!(
            writer
                .read(&datum[..3])
                .unwrap_err()
                .starts_with("Avro: cannot decode with the stream's schema: "),
        );
    }

    #[test]
    fn decimals_are_numbers_only_when_nothing_is_rounded() {
        let d = |unscaled: i64, scale| number(BigDecimal::new(unscaled.into(), scale));
        assert_eq!(d(10_000, 2), json!(100.0));
        assert_eq!(d(-5, 3), json!(-0.005));
        assert_eq!(d(0, 2), json!(0.0));
        assert_eq!(d(123_456_789_012_345_678, 0), json!("123456789012345678"));
        assert_eq!(d(1, 400), json!(format!("0.{}1", "0".repeat(399))));
    }

    fn stream(kafka: &str) -> Stream {
        let text = format!(
            "stream: s
source: {{ kafka: {{ brokers: b, topic: t, group: g, {kafka} }} }}
require: [id]
sink: {{ into: warehouse, table: out }}
"
        );
        let mut diags = sluice_core::diag::Diagnostics::default();
        let connections = sluice_core::connections::Connections::default();
        let stream =
            sluice_core::stream::load_file("pipelines/s.yaml", &text, &connections, &mut diags);
        assert!(diags.is_empty(), "{:#?}", diags.0);
        stream.unwrap()
    }

    #[tokio::test]
    async fn plain_avro_datums_of_the_streams_schema_are_checked_like_json() {
        let schema_json = r#"{"type": "record", "name": "Click", "fields": [
            {"name": "id", "type": ["null", "long"]}, {"name": "page", "type": "string"}]}"#;
        let mut decoder =
            Decoder::new(&stream(&format!("format: avro, schema: {schema_json}"))).unwrap();
        let schema = Schema::parse_str(schema_json).unwrap();
        let click = |id: Option<i64>| {
            let id = match id {
                Some(id) => Avro::Union(1, Box::new(Avro::Long(id))),
                None => Avro::Union(0, Box::new(Avro::Null)),
            };
            encode(
                &schema,
                Avro::Record(vec![
                    ("id".into(), id),
                    ("page".into(), Avro::String("/".into())),
                ]),
            )
        };
        let decoded = decoder
            .decode(&[record(click(Some(3))), record(click(None)), record(vec![7])])
            .await
            .unwrap();
        assert_eq!(decoded[0], Ok(json!({"id": 3, "page": "/"})));
        assert_eq!(decoded[1], Err("missing required field(s): id".to_string()));
        assert!(
            decoded[2]
                .as_ref()
                .unwrap_err()
                .starts_with("Avro: cannot decode with the stream's schema: "),
            "{decoded:?}"
        );
    }

    #[tokio::test]
    async fn bytes_are_text_when_they_are_text_else_base64() {
        let mut decoder = Decoder::new(&stream("format: bytes")).unwrap();
        decoder.require.clear();
        let decoded = decoder
            .decode(&[
                record(b"plain \xc3\xa9t\xc3\xa9".to_vec()),
                record(vec![0xff, 0x00]),
                record(b"a\0b".to_vec()),
            ])
            .await
            .unwrap();
        assert_eq!(
            decoded,
            [
                Ok(json!({"value": "plain été", "encoding": "utf8"})),
                Ok(json!({"value": "/wA=", "encoding": "base64"})),
                Ok(json!({"value": "YQBi", "encoding": "base64"})),
            ]
        );
        // `require` applies to every format.
        let mut decoder = Decoder::new(&stream("format: bytes")).unwrap();
        assert_eq!(
            decoder.decode(&[record(b"x".to_vec())]).await.unwrap(),
            [Err("missing required field(s): id".to_string())]
        );
    }
}
