//! The `sql` task on a server: PostgreSQL (the whole script in one transaction, DDL included)
//! and MySQL/MariaDB (one transaction; DDL commits implicitly there). Rows affected per
//! statement go to the log and the task's row count; cancellation (timeout, Ctrl-C, a dropped
//! try) asks the server to stop the running statement, so nothing keeps working after the try.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_connect::{ConnectError, MySqlTarget, PgTarget};
use sluice_core::{TaskError, TaskOutput, TaskRun};
use sqlparser::dialect::{Dialect as ParserDialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::tokenizer::{Token, Tokenizer};
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::ErrorPosition;

fn connect_failed(e: ConnectError) -> TaskError {
    match e {
        ConnectError::Connect(m) => TaskError::failed(m),
        other => TaskError::config(other.to_string()),
    }
}

/// The statements of `sql` with their byte ranges, split at top-level semicolons by the
/// dialect's tokenizer (quotes, comments and dollar quoting respected). `None` when the text
/// does not tokenize: the server then gets it whole and is the judge.
fn statements<'s>(sql: &'s str, dialect: &dyn ParserDialect) -> Option<Vec<&'s str>> {
    let tokens = Tokenizer::new(dialect, sql).tokenize_with_location().ok()?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // A 1-based line and character column → byte offset.
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let skip = usize::try_from(column).ok()?.checked_sub(1)?;
        Some(
            sql[start..]
                .char_indices()
                .nth(skip)
                .map_or(sql.len(), |(i, _)| start + i),
        )
    };
    let mut out = Vec::new();
    let mut begin = 0;
    // Whether the piece since the last semicolon holds anything but whitespace and comments.
    let mut code = false;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                let end = offset(t.span.start.line, t.span.start.column)?;
                if code {
                    out.push(sql[begin..end].trim());
                }
                begin = end + 1;
                code = false;
            }
            Token::Whitespace(_) => {}
            _ => code = true,
        }
    }
    if code {
        out.push(sql[begin..].trim());
    }
    Some(out)
}

/// Whether a MySQL script has compound statements (`BEGIN … END` bodies of procedures,
/// functions, triggers, events; MariaDB's `BEGIN NOT ATOMIC`): their inner semicolons do not
/// end a statement, so the script goes to the server whole.
fn has_compound_statements(sql: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&MySqlDialect {}, sql).tokenize() else {
        return true;
    };
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let is = |t: Option<&&Token>, word: &str| matches!(t, Some(Token::Word(w)) if w.value.eq_ignore_ascii_case(word));
    words.iter().enumerate().any(|(i, t)| {
        let starts_statement = i == 0 || matches!(words[i - 1], Token::SemiColon);
        is(Some(t), "begin") && (!starts_statement || is(words.get(i + 1), "not"))
    })
}

/// A statement as the log names it: its first line, shortened.
fn label(statement: &str) -> String {
    let first = statement
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .unwrap_or_default();
    if first.chars().count() > 60 {
        format!("{}…", first.chars().take(60).collect::<String>())
    } else {
        first.to_string()
    }
}

/// "line L, column C" of a 1-based character position in `sql`.
fn place(sql: &str, position: u32) -> String {
    let before: String = sql
        .chars()
        .take(usize::try_from(position).unwrap_or(0).saturating_sub(1))
        .collect();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column} of the rendered SQL")
}

fn pg_failure(sql: &str, e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return sluice_connect::postgres::chain(e);
    };
    let mut message = format!("{}: {}", db.severity(), db.message());
    if let Some(ErrorPosition::Original(position)) = db.position() {
        let _ = write!(message, " (at {})", place(sql, *position));
    }
    if let Some(detail) = db.detail() {
        let _ = write!(message, "; detail: {detail}");
    }
    if let Some(hint) = db.hint() {
        let _ = write!(message, "; hint: {hint}");
    }
    message
}

/// Sends the server a cancel request for the session unless disarmed: the try's future may be
/// dropped (a timeout past its grace) as well as told to stop.
struct PgCancel {
    target: PgTarget,
    token: Option<tokio_postgres::CancelToken>,
}

impl PgCancel {
    fn disarm(mut self) {
        self.token = None;
    }

    /// Sends the cancel request now and waits for it to be sent: the process may end right
    /// after the try, taking a spawned request with it.
    async fn fire(mut self) {
        if let Some(token) = self.token.take()
            && let Err(e) = self.target.cancel(&token).await
        {
            tracing::warn!(error = %e, "could not cancel a PostgreSQL query");
        }
    }
}

impl Drop for PgCancel {
    fn drop(&mut self) {
        if let (Some(token), Ok(runtime)) =
            (self.token.take(), tokio::runtime::Handle::try_current())
        {
            let target = self.target.clone();
            runtime.spawn(async move {
                if let Err(e) = target.cancel(&token).await {
                    tracing::warn!(error = %e, "could not cancel a PostgreSQL query");
                }
            });
        }
    }
}

fn log_counts(run: &TaskRun, statements: Option<&[&str]>, counts: &[u64], elapsed: Duration) {
    for (i, n) in counts.iter().enumerate() {
        let name = match statements {
            Some(s) if s.len() == counts.len() => format!(" ({})", label(s[i])),
            _ => String::new(),
        };
        run.log.line(format!("statement {}{name}: {n} rows", i + 1));
    }
    run.log.line(format!(
        "committed: {} statement(s), {} rows, in {:.3} s",
        counts.len(),
        counts.iter().sum::<u64>(),
        elapsed.as_secs_f64()
    ));
}

pub(super) async fn postgres(
    target: &PgTarget,
    sql: &str,
    statement_timeout: Option<Duration>,
    run: &TaskRun,
) -> Result<TaskOutput, TaskError> {
    let mut client = target.connect().await.map_err(connect_failed)?;
    let token = client.cancel_token();
    let started = Instant::now();
    let tx = client
        .transaction()
        .await
        .map_err(|e| TaskError::failed(target.redactor().redact(&pg_failure(sql, &e))))?;
    let guard = PgCancel {
        target: target.clone(),
        token: Some(token),
    };
    let work = async {
        if let Some(limit) = statement_timeout {
            tx.batch_execute(&format!(
                "SET LOCAL statement_timeout = {}",
                limit.as_millis()
            ))
            .await?;
        }
        // One simple query: the script is sent as written (one round trip, as psql -f), and
        // the server answers each statement with its own row count.
        tx.simple_query(sql).await
    };
    let result = tokio::select! {
        r = work => r,
        () = run.cancel.cancelled() => {
            // The transaction rolls back with the session.
            guard.fire().await;
            return Err(TaskError::failed(
                "stopped: the server was asked to cancel the query, and the transaction rolled back",
            ));
        }
    };
    // COMMIT outside the select: once sent, its outcome is the server's, not a cancellation's.
    guard.disarm();
    let result = match result {
        Ok(messages) => tx.commit().await.map(|()| {
            messages
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                })
                .collect::<Vec<u64>>()
        }),
        Err(e) => Err(e),
    };
    match result {
        Ok(counts) => {
            let statements = statements(sql, &PostgreSqlDialect {});
            log_counts(run, statements.as_deref(), &counts, started.elapsed());
            Ok(TaskOutput {
                rows: Some(counts.iter().sum()),
                ..TaskOutput::default()
            })
        }
        Err(e) => {
            let message = target.redactor().redact(&pg_failure(sql, &e));
            run.log.line(format!("rolled back: {message}"));
            Err(TaskError::failed(message))
        }
    }
}

/// `KILL QUERY` for a MySQL session, from a second connection, unless disarmed.
struct MySqlKill {
    target: MySqlTarget,
    session: Option<u32>,
}

impl MySqlKill {
    fn disarm(mut self) {
        self.session = None;
    }

    /// Kills the running query now (see `PgCancel::fire`).
    async fn fire(mut self) {
        if let Some(id) = self.session.take() {
            match self.target.connect().await {
                Ok(mut conn) => {
                    let _ = conn.query_drop(format!("KILL QUERY {id}")).await;
                    let _ = conn.disconnect().await;
                }
                Err(e) => tracing::warn!(error = %e, "could not stop a MySQL query"),
            }
        }
    }
}

impl Drop for MySqlKill {
    fn drop(&mut self) {
        if let (Some(id), Ok(runtime)) =
            (self.session.take(), tokio::runtime::Handle::try_current())
        {
            let target = self.target.clone();
            runtime.spawn(async move {
                match target.connect().await {
                    Ok(mut conn) => {
                        let _ = conn.query_drop(format!("KILL QUERY {id}")).await;
                        let _ = conn.disconnect().await;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not stop a MySQL query"),
                }
            });
        }
    }
}

fn mysql_failure(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("error {} ({}): {}", s.code, s.state, s.message),
        other => sluice_connect::postgres::chain(other),
    }
}

/// The server's statement time limit: MariaDB's `max_statement_time` (seconds, every
/// statement), else MySQL's `max_execution_time` (milliseconds, SELECT only).
async fn limit_statements(
    conn: &mut mysql_async::Conn,
    limit: Duration,
) -> mysql_async::Result<()> {
    let mariadb = format!("SET SESSION max_statement_time = {}", limit.as_secs_f64());
    match conn.query_drop(mariadb).await {
        Err(mysql_async::Error::Server(s)) if s.code == 1193 => {
            conn.query_drop(format!(
                "SET SESSION max_execution_time = {}",
                limit.as_millis()
            ))
            .await
        }
        other => other,
    }
}

async fn mysql_statements(
    conn: &mut mysql_async::Conn,
    statements: &[&str],
    statement_timeout: Option<Duration>,
) -> Result<Vec<u64>, (usize, mysql_async::Error)> {
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .map_err(|e| (0, e))?;
    if let Some(limit) = statement_timeout {
        limit_statements(conn, limit).await.map_err(|e| (0, e))?;
    }
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(|e| (0, e))?;
    let mut counts = Vec::with_capacity(statements.len());
    for (i, statement) in statements.iter().enumerate() {
        let outcome = async {
            let result = conn.query_iter(*statement).await?;
            let affected = result.affected_rows();
            result.drop_result().await?;
            Ok::<_, mysql_async::Error>(affected)
        }
        .await;
        match outcome {
            Ok(n) => counts.push(n),
            Err(e) => {
                let _ = conn.query_drop("ROLLBACK").await;
                return Err((i + 1, e));
            }
        }
    }
    Ok(counts)
}

pub(super) async fn mysql(
    target: &MySqlTarget,
    sql: &str,
    statement_timeout: Option<Duration>,
    run: &TaskRun,
) -> Result<TaskOutput, TaskError> {
    let statements = if has_compound_statements(sql) {
        run.log
            .line("the script has BEGIN … END bodies: it goes to the server whole");
        vec![sql]
    } else {
        statements(sql, &MySqlDialect {}).unwrap_or_else(|| vec![sql])
    };
    let mut conn = target.connect().await.map_err(connect_failed)?;
    let guard = MySqlKill {
        target: target.clone(),
        session: Some(conn.id()),
    };
    let started = Instant::now();
    let result = tokio::select! {
        r = mysql_statements(&mut conn, &statements, statement_timeout) => r,
        () = run.cancel.cancelled() => {
            guard.fire().await;
            return Err(TaskError::failed(
                "stopped: the server was asked to kill the running query, and the transaction \
                 rolled back",
            ));
        }
    };
    // COMMIT outside the select: once sent, its outcome is the server's, not a cancellation's.
    guard.disarm();
    let result = match result {
        Ok(counts) => conn
            .query_drop("COMMIT")
            .await
            .map(|()| counts)
            .map_err(|e| (statements.len(), e)),
        Err(e) => Err(e),
    };
    let _ = conn.disconnect().await;
    match result {
        Ok(counts) => {
            log_counts(run, Some(&statements), &counts, started.elapsed());
            Ok(TaskOutput {
                rows: Some(counts.iter().sum()),
                ..TaskOutput::default()
            })
        }
        Err((index, e)) => {
            let at = match statements.get(index.wrapping_sub(1)) {
                Some(s) if index > 0 => format!("statement {index} ({}): ", label(s)),
                _ => String::new(),
            };
            let message = target
                .redactor()
                .redact(&format!("{at}{}", mysql_failure(&e)));
            run.log.line(format!("rolled back: {message}"));
            Err(TaskError::failed(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_top_level_semicolons_only() {
        let sql = "create table t (s text);\n-- a comment; with a semicolon\ninsert into t \
                   values ('a;b'), ($$c;d$$);\n\n  ; \nselect 1";
        assert_eq!(
            statements(sql, &PostgreSqlDialect {}).unwrap(),
            vec![
                "create table t (s text)",
                "-- a comment; with a semicolon\ninsert into t values ('a;b'), ($$c;d$$)",
                "select 1",
            ]
        );
        let mysql = "insert into t values ('it\\'s;'); update t set s = \"x;y\";";
        assert_eq!(
            statements(mysql, &MySqlDialect {}).unwrap(),
            vec![
                "insert into t values ('it\\'s;')",
                "update t set s = \"x;y\""
            ]
        );
        assert_eq!(
            label("-- why\n  INSERT INTO x SELECT 1"),
            "INSERT INTO x SELECT 1"
        );
        assert_eq!(
            place("select\n  bogus", 10),
            "line 2, column 3 of the rendered SQL"
        );
    }
}
