//! The two metadata backends behind one small interface: statements with `?N` parameters over
//! integers, text and NULL, which both SQLite and PostgreSQL understand alike.
//!
//! SQLite is called in place. PostgreSQL runs on a thread of its own (tokio-postgres on a
//! current-thread runtime) so that the store keeps one synchronous API, callable from async
//! code exactly as rusqlite is, and so that the connection — which holds the session's advisory
//! locks — lives exactly as long as the store.

use sluice_connect::PgTarget;
use sluice_core::secrets::redact_uri_text;
use std::collections::HashMap;
use std::sync::mpsc;

use crate::{Result, StoreError};

/// A value bound to a parameter or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Binds parameters: `params![run, task, None::<i64>]`.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => { &[$($crate::db::Value::from($v)),*][..] };
}

/// One row of a result, read by column position.
#[derive(Debug)]
pub struct Row(Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("a result has no column {i}")))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Text(t) => Err(StoreError::Corrupt(format!(
                "column {i} holds `{t}` where a number belongs"
            ))),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }

    pub fn uint(&self, i: usize) -> Result<u32> {
        let v = self.int(i)?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {i} holds {v}")))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t.clone())),
            Value::Int(v) => Ok(Some(v.to_string())),
        }
    }

    pub fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection to the metadata database.
pub trait Conn: Send {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs several statements without parameters (migrations, transaction control).
    fn batch(&mut self, sql: &str) -> Result<()>;

    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Corrupt(format!("no row for `{}`", first_line(sql))))
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

// --- SQLite ---------------------------------------------------------------------------------

pub struct Sqlite(pub rusqlite::Connection);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

impl Conn for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut stmt = self.0.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.0.prepare_cached(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Int(v as i64),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.0.execute_batch(sql)?)
    }
}

// --- PostgreSQL -----------------------------------------------------------------------------

enum Job {
    Execute(String, Vec<Value>, mpsc::SyncSender<Result<u64>>),
    Query(String, Vec<Value>, mpsc::SyncSender<Result<Vec<Row>>>),
    Batch(String, mpsc::SyncSender<Result<()>>),
}

/// A PostgreSQL connection owned by a thread; statements are sent to it and answered in order.
pub struct Postgres {
    jobs: mpsc::Sender<Job>,
}

impl Postgres {
    /// Connects to `url` (a `postgres://` URL); fails here, not on first use, when it cannot.
    pub fn connect(url: &str) -> Result<Postgres> {
        let target = PgTarget::parse(url).map_err(|e| StoreError::Url {
            url: redact_uri_text(url),
            reason: e.to_string(),
        })?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<()>>(1);
        let shown = redact_uri_text(url);
        std::thread::Builder::new()
            .name("sluice-metadata".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Postgres(e.to_string())));
                        return;
                    }
                };
                let client = match rt.block_on(open(&target, &shown)) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut session = Session {
                    client,
                    target,
                    shown,
                    statements: HashMap::new(),
                };
                // Ends when the store (the only sender) is dropped; the connection closes with
                // it, releasing the session's advisory locks.
                while let Ok(job) = inbox.recv() {
                    rt.block_on(session.serve(job));
                }
            })
            .map_err(|e| StoreError::Postgres(format!("cannot start the metadata thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| StoreError::Postgres("the metadata thread stopped".into()))??;
        Ok(Postgres { jobs })
    }

    fn ask<T>(&self, job: impl FnOnce(mpsc::SyncSender<Result<T>>) -> Job) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(job(tx))
            .map_err(|_| StoreError::Postgres("the metadata thread stopped".into()))?;
        rx.recv()
            .map_err(|_| StoreError::Postgres("the metadata thread stopped".into()))?
    }
}

impl Conn for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        self.ask(|tx| Job::Execute(sql.to_string(), params.to_vec(), tx))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        self.ask(|tx| Job::Query(sql.to_string(), params.to_vec(), tx))
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.ask(|tx| Job::Batch(sql.to_string(), tx))
    }
}

async fn open(target: &PgTarget, shown: &str) -> Result<tokio_postgres::Client> {
    target.connect().await.map_err(|e| StoreError::Connect {
        url: shown.to_string(),
        reason: e.to_string(),
    })
}

struct Session {
    client: tokio_postgres::Client,
    target: PgTarget,
    shown: String,
    /// Prepared statements by their text as the store wrote it.
    statements: HashMap<String, tokio_postgres::Statement>,
}

impl Session {
    async fn serve(&mut self, job: Job) {
        if self.client.is_closed() {
            // The server restarted or the network dropped: reconnect for the next statement.
            if let Ok(client) = open(&self.target, &self.shown).await {
                self.client = client;
                self.statements.clear();
            }
        }
        match job {
            Job::Execute(sql, params, reply) => {
                let r = async {
                    let stmt = self.prepare(&sql).await?;
                    let args = bind(&params);
                    Ok(self.client.execute(&stmt, &args).await?)
                }
                .await;
                let _ = reply.send(r);
            }
            Job::Query(sql, params, reply) => {
                let r = async {
                    let stmt = self.prepare(&sql).await?;
                    let args = bind(&params);
                    let rows = self.client.query(&stmt, &args).await?;
                    rows.iter().map(read_row).collect()
                }
                .await;
                let _ = reply.send(r);
            }
            Job::Batch(sql, reply) => {
                let r = self.client.batch_execute(&sql).await.map_err(Into::into);
                let _ = reply.send(r);
            }
        }
    }

    async fn prepare(&mut self, sql: &str) -> Result<tokio_postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare(&dollar_params(sql)).await?;
        self.statements.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

fn bind(params: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

fn read_row(row: &tokio_postgres::Row) -> Result<Row> {
    use tokio_postgres::types::Type;
    let mut values = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::NUMERIC | Type::FLOAT8 => row
                .try_get::<_, Option<f64>>(i)
                .ok()
                .flatten()
                .map(|v| Value::Int(v as i64)),
            Type::VOID => None,
            _ => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use tokio_postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(t) => t.to_sql(ty, out),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// `?1` → `$1`: the one spelling difference of parameters between the two dialects. The
/// store's SQL has no `?` inside string literals.
fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// Translates the SQLite schema to PostgreSQL: identity keys and 64-bit integers.
pub fn postgres_ddl(sql: &str) -> String {
    sql.replace(
        "INTEGER PRIMARY KEY",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    )
    .replace("INTEGER", "BIGINT")
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The database's own message (with its detail and hint) is the useful part.
        let text = match e.as_db_error() {
            Some(db) => {
                let mut t = format!("{}: {}", db.severity(), db.message());
                if let Some(d) = db.detail() {
                    t.push_str(&format!(" ({d})"));
                }
                t
            }
            None => e.to_string(),
        };
        StoreError::Postgres(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_schema_are_translated_for_postgres() {
        assert_eq!(
            dollar_params("SELECT a FROM t WHERE x = ?1 AND y = ?12 OR z ? 'k'"),
            "SELECT a FROM t WHERE x = $1 AND y = $12 OR z ? 'k'"
        );
        assert_eq!(
            postgres_ddl("id INTEGER PRIMARY KEY, n INTEGER NOT NULL"),
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL"
        );
    }
}
