//! What `sluice check` says about a `sql` task's SQL on a server, before anything runs: syntax
//! errors in the connection's dialect (sqlparser) at file:line:col, and — on MySQL/MariaDB,
//! where each DDL statement commits — a warning when one task mixes DDL and data changes.
//!
//! DuckDB SQL is left to DuckDB: its dialect has more than sqlparser reads, and a run finds a
//! mistake there in milliseconds.

use sluice_core::Diagnostic;
use sluice_core::sql::Dialect;
use sluice_core::yaml::Span;
use sqlparser::ast::Statement;
use sqlparser::dialect::{Dialect as ParserDialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

/// Template expressions (`{{ … }}`) stood in for by `NULL` padded to the same length, so that
/// positions in the result are positions in the file. None when the SQL has tags (`{% … %}`)
/// or writes identifiers from values (`ident`): its shape is known only once rendered.
fn blanked(sql: &str) -> Option<String> {
    if sql.contains("{%") || sql.contains("ident") && sql.contains("{{") {
        return None;
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}")? + start + 2;
        let expression = &rest[start..end];
        out.push_str("NULL");
        for c in expression.chars().skip(4) {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    Some(out)
}

/// sqlparser's "… at Line: L, Column: C" → (L, C).
fn position(message: &str) -> Option<(usize, usize)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// Statements that commit implicitly on MySQL/MariaDB.
fn is_ddl(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::CreateTable(_)
            | Statement::CreateView(_)
            | Statement::CreateIndex(_)
            | Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::AlterTable(_)
            | Statement::Drop { .. }
            | Statement::Truncate(_)
            | Statement::RenameTable(_)
            | Statement::CreateFunction(_)
            | Statement::DropFunction(_)
            | Statement::CreateProcedure { .. }
            | Statement::CreateTrigger(_)
            | Statement::AlterView(_)
            | Statement::CreateUser(_)
            | Statement::Grant(_)
            | Statement::LockTables { .. }
    )
}

fn is_data_change(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) | Statement::Merge(_)
    )
}

/// Problems of `sql` (the task's text, starting at `at`) on a server of `dialect`.
pub(super) fn check(sql: &str, dialect: Dialect, at: &Span) -> Vec<Diagnostic> {
    let (parser, name): (Box<dyn ParserDialect>, &str) = match dialect {
        Dialect::Postgres => (Box::new(PostgreSqlDialect {}), "PostgreSQL"),
        Dialect::MySql => (Box::new(MySqlDialect {}), "MySQL/MariaDB"),
        Dialect::DuckDb => return Vec::new(),
    };
    let Some(text) = blanked(sql) else {
        return Vec::new();
    };
    let statements = match Parser::parse_sql(parser.as_ref(), &text) {
        Ok(statements) => statements,
        Err(e) => {
            let message = e.to_string();
            let span = match position(&message) {
                Some((line, col)) => at.shifted(line - 1, if line == 1 { col - 1 } else { col }),
                None => at.clone(),
            };
            let message = match message.rfind(" at Line: ") {
                Some(cut) => message[..cut].to_string(),
                None => message,
            };
            let message = message.trim_start_matches("sql parser error: ").to_string();
            return vec![
                Diagnostic::new(&span, format!("SQL syntax error ({name}): {message}")).hint(
                    "fix the statement there; should the server accept it as written, set \
                     `check_syntax: false` on the task (sluice reads SQL with sqlparser)",
                ),
            ];
        }
    };
    let ddl = statements.iter().any(is_ddl);
    let changes = statements.iter().any(is_data_change);
    if dialect == Dialect::MySql && ddl && changes {
        return vec![
            Diagnostic::new(
                at,
                "this task mixes DDL (CREATE/ALTER/DROP/TRUNCATE) and data changes; MySQL and \
                 MariaDB commit at each DDL statement, so a failure rolls back only the changes \
                 after the last DDL statement",
            )
            .hint("put the DDL in a task of its own, upstream, if the data changes must be all-or-nothing")
            .warning(),
        ];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_at_their_place_in_the_file() {
        let at = Span::new("sql/t.sql".into(), 1, 1);
        let sql = "SELECT {{ ds | sql }} AS day;\nSELEC 1;";
        let d = check(sql, Dialect::Postgres, &at);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].col), (2, 1), "{d:?}");
        assert!(
            d[0].message.starts_with("SQL syntax error (PostgreSQL): "),
            "{d:?}"
        );
        assert!(check("SELECT {{ ds | sql }} AS day", Dialect::Postgres, &at).is_empty());
        assert!(check("SELEC {{ x | ident }}", Dialect::Postgres, &at).is_empty());
        assert!(check("SELEC 1", Dialect::DuckDb, &at).is_empty());
    }

    #[test]
    fn mixing_ddl_and_dml_on_mysql_is_a_warning() {
        let at = Span::new("sql/t.sql".into(), 1, 1);
        let sql = "CREATE TABLE t (id INT); INSERT INTO t VALUES (1)";
        let d = check(sql, Dialect::MySql, &at);
        assert_eq!(d.len(), 1);
        assert!(!d[0].is_error());
        assert!(check(sql, Dialect::Postgres, &at).is_empty());
        assert!(
            check(
                "INSERT INTO t VALUES (1); DELETE FROM t",
                Dialect::MySql,
                &at
            )
            .is_empty()
        );
    }
}
