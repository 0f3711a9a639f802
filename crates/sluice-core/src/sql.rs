//! SQL text for the databases Sluice writes SQL for: quoted identifiers and literals, each in
//! the rules of its own database. Every crate that puts a name or a value into SQL text goes
//! through here, and so do the template filters `sql` and `ident`.
//!
//! A leaf module: it knows nothing else of sluice-core, so any crate can use it.

use std::fmt::Write;

/// The SQL dialect of a database. MariaDB speaks [`Dialect::MySql`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// The warehouse, and what a template renders for unless told otherwise.
    #[default]
    DuckDb,
    Postgres,
    MySql,
}

/// A name or value that cannot be written as SQL text of a dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error(
        "a string with a NUL character cannot be a PostgreSQL literal: PostgreSQL text cannot \
         hold NUL"
    )]
    NulInPostgresText,
    #[error("an identifier cannot be empty")]
    EmptyIdentifier,
    #[error("an identifier cannot contain a NUL character")]
    NulInIdentifier,
    #[error(
        "`{0}` is not a valid MySQL/MariaDB name: names hold only characters up to U+FFFF \
         (no emoji) and cannot end with a space"
    )]
    MySqlName(String),
    #[error("`{name}` is longer than {dialect} keeps a name ({limit})")]
    NameTooLong {
        name: String,
        dialect: &'static str,
        limit: &'static str,
    },
    #[error("`{0}` cannot be written as a SQL number")]
    NotANumber(String),
    #[error("an empty list cannot be written as a SQL list (`IN ()` is invalid)")]
    EmptyList,
}

/// The keyword of the null literal, the same everywhere.
pub const NULL: &str = "NULL";

impl Dialect {
    /// The database's name, as people call it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::DuckDb => "DuckDB",
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL/MariaDB",
        }
    }

    /// Quotes one identifier, whatever it holds (a `.` is part of the name): `a"b` →
    /// `"a""b"`, or `` `a``b` `` on MySQL. For names Sluice writes itself or reads from data;
    /// the database reports a name it cannot hold.
    pub fn quote_ident(self, name: &str) -> String {
        let q = match self {
            Dialect::DuckDb | Dialect::Postgres => '"',
            // Backticks quote in every sql_mode; `"` quotes names only under ANSI_QUOTES.
            Dialect::MySql => '`',
        };
        let mut out = String::with_capacity(name.len() + 2);
        out.push(q);
        for c in name.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
        out
    }

    /// Quotes a dotted name part by part: `staging.orders` → `"staging"."orders"`.
    pub fn quote_qualified(self, name: &str) -> String {
        let parts: Vec<String> = name.split('.').map(|p| self.quote_ident(p)).collect();
        parts.join(".")
    }

    /// Quotes a dotted name given by a user (the `ident` template filter), refusing a part the
    /// database would refuse or silently change: an empty part, NUL; on PostgreSQL more than
    /// 63 bytes (it truncates, so two long names could meet in one table); on MySQL/MariaDB
    /// characters above U+FFFF, a trailing space, more than 64 characters.
    pub fn checked_qualified(self, name: &str) -> Result<String, SqlError> {
        for part in name.split('.') {
            self.check_name(part)?;
        }
        Ok(self.quote_qualified(name))
    }

    fn check_name(self, part: &str) -> Result<(), SqlError> {
        if part.is_empty() {
            return Err(SqlError::EmptyIdentifier);
        }
        if part.contains('\0') {
            return Err(SqlError::NulInIdentifier);
        }
        let too_long = |limit| SqlError::NameTooLong {
            name: part.to_string(),
            dialect: self.name(),
            limit,
        };
        match self {
            Dialect::DuckDb => Ok(()),
            Dialect::Postgres if part.len() > 63 => Err(too_long("63 bytes")),
            Dialect::Postgres => Ok(()),
            Dialect::MySql if part.chars().any(|c| c > '\u{FFFF}') || part.ends_with(' ') => {
                Err(SqlError::MySqlName(part.to_string()))
            }
            Dialect::MySql if part.chars().count() > 64 => Err(too_long("64 characters")),
            Dialect::MySql => Ok(()),
        }
    }

    /// A text literal that reads back exactly `text`.
    ///
    /// - DuckDB: `'…'` with quotes doubled (a backslash is an ordinary character). DuckDB text
    ///   holds NUL, but SQL text handed to DuckDB cannot, so a NUL is spliced in as `chr(0)`.
    /// - PostgreSQL: `'…'` with quotes doubled, or `E'…'` with backslashes doubled when the
    ///   text has one: a plain literal's backslash means itself only while
    ///   `standard_conforming_strings` is on, an `E''` literal's is an escape whatever the
    ///   setting. NUL cannot be stored in PostgreSQL text at all: an error.
    /// - MySQL/MariaDB: no quoted form reads a backslash the same both with and without
    ///   `NO_BACKSLASH_ESCAPES` (`'\\'` is one backslash in one mode and two in the other),
    ///   and outside ASCII the bytes of a quoted literal are read in the connection's
    ///   character set (where, in GBK or SJIS, a multi-byte character can end in the byte of a
    ///   quote or backslash). So text that is ASCII without a backslash or NUL is written
    ///   `'…'` with quotes doubled (readable in logs, the same in every mode and ASCII-based
    ///   character set), and any other text as `_utf8mb4 X'…'`: hexadecimal UTF-8 bytes,
    ///   which no sql_mode escapes, marked as utf8mb4 text by the introducer. Unlike
    ///   `CONVERT(X'…' USING …)`, an introduced literal keeps a literal's coercibility, so it
    ///   compares with a column of any utf8mb4 collation as a quoted literal would.
    pub fn text(self, text: &str) -> Result<String, SqlError> {
        match self {
            Dialect::DuckDb if text.contains('\0') => {
                let pieces: Vec<String> = text.split('\0').map(quote_doubled).collect();
                Ok(format!("({})", pieces.join(" || chr(0) || ")))
            }
            Dialect::DuckDb => Ok(quote_doubled(text)),
            Dialect::Postgres if text.contains('\0') => Err(SqlError::NulInPostgresText),
            Dialect::Postgres if text.contains('\\') => {
                Ok(format!("E{}", quote_doubled(&text.replace('\\', "\\\\"))))
            }
            Dialect::Postgres => Ok(quote_doubled(text)),
            Dialect::MySql if text.bytes().all(|b| b.is_ascii() && b != b'\\' && b != 0) => {
                Ok(quote_doubled(text))
            }
            Dialect::MySql => {
                let mut out = String::with_capacity(text.len() * 2 + 12);
                out.push_str("_utf8mb4 X'");
                for b in text.bytes() {
                    let _ = write!(out, "{b:02X}");
                }
                out.push('\'');
                Ok(out)
            }
        }
    }

    /// A number literal from its decimal text (`42`, `-1.5`, `1e300`); a negative number is
    /// parenthesised, since after a `-` in the statement (`10-{{ n | sql }}`) its sign would
    /// start a `--` comment.
    pub fn number(self, text: &str) -> Result<String, SqlError> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let decimal = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            && text.parse::<f64>().is_ok_and(f64::is_finite);
        if !decimal {
            return Err(SqlError::NotANumber(text.to_string()));
        }
        Ok(if text.starts_with('-') {
            format!("({text})")
        } else {
            text.to_string()
        })
    }

    /// `TRUE` or `FALSE` (MySQL reads them as 1 and 0).
    pub fn boolean(self, value: bool) -> &'static str {
        if value { "TRUE" } else { "FALSE" }
    }

    /// Literals as a parenthesised list, for `IN`.
    pub fn list(self, items: &[String]) -> Result<String, SqlError> {
        if items.is_empty() {
            return Err(SqlError::EmptyList);
        }
        Ok(format!("({})", items.join(", ")))
    }
}

fn quote_doubled(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Dialect; 3] = [Dialect::DuckDb, Dialect::Postgres, Dialect::MySql];

    #[test]
    fn identifiers() {
        let cases: &[(Dialect, &str, &str)] = &[
            (Dialect::DuckDb, "orders", "\"orders\""),
            (Dialect::DuckDb, "a\"b", "\"a\"\"b\""),
            (Dialect::Postgres, "a\"\"b", "\"a\"\"\"\"b\""),
            (Dialect::Postgres, "a`b", "\"a`b\""),
            (Dialect::MySql, "orders", "`orders`"),
            (Dialect::MySql, "a`b", "`a``b`"),
            (Dialect::MySql, "a\"b", "`a\"b`"),
            (Dialect::DuckDb, "s.t", "\"s.t\""),
        ];
        for &(dialect, name, want) in cases {
            assert_eq!(dialect.quote_ident(name), want, "{dialect:?} {name}");
        }
        assert_eq!(
            Dialect::DuckDb.quote_qualified("staging.orders"),
            "\"staging\".\"orders\""
        );
        assert_eq!(Dialect::MySql.quote_qualified("db.t`x"), "`db`.`t``x`");
        assert_eq!(Dialect::Postgres.quote_qualified("\"x\""), "\"\"\"x\"\"\"");
    }

    #[test]
    fn checked_names() {
        for d in ALL {
            assert_eq!(d.checked_qualified(""), Err(SqlError::EmptyIdentifier));
            assert_eq!(d.checked_qualified("a..b"), Err(SqlError::EmptyIdentifier));
            assert_eq!(d.checked_qualified("a\0b"), Err(SqlError::NulInIdentifier));
            assert_eq!(
                d.checked_qualified("s.t").unwrap(),
                d.quote_qualified("s.t")
            );
        }
        let long = "é".repeat(32); // 64 bytes, 32 characters
        assert!(Dialect::Postgres.checked_qualified(&long).is_err());
        assert!(Dialect::Postgres.checked_qualified(&long[2..]).is_ok());
        assert!(Dialect::MySql.checked_qualified(&long).is_ok());
        assert!(Dialect::MySql.checked_qualified(&"x".repeat(65)).is_err());
        assert!(Dialect::DuckDb.checked_qualified(&"x".repeat(500)).is_ok());
        assert!(Dialect::MySql.checked_qualified("emoji😀").is_err());
        assert!(Dialect::MySql.checked_qualified("space ").is_err());
        assert!(Dialect::Postgres.checked_qualified("emoji😀 ").is_ok());
    }

    #[test]
    fn text_literals() {
        let cases: &[(Dialect, &str, &str)] = &[
            (Dialect::DuckDb, "O'Brien", "'O''Brien'"),
            (Dialect::DuckDb, "a\\", "'a\\'"),
            (Dialect::DuckDb, "a\0b", "('a' || chr(0) || 'b')"),
            (Dialect::DuckDb, "\0", "('' || chr(0) || '')"),
            (Dialect::Postgres, "O'Brien", "'O''Brien'"),
            (Dialect::Postgres, "é$$", "'é$$'"),
            (Dialect::Postgres, "a\\'", "E'a\\\\'''"),
            (Dialect::MySql, "O'Brien", "'O''Brien'"),
            (Dialect::MySql, "", "''"),
            (Dialect::MySql, "a\\", "_utf8mb4 X'615C'"),
            (Dialect::MySql, "é", "_utf8mb4 X'C3A9'"),
            (Dialect::MySql, "\0", "_utf8mb4 X'00'"),
        ];
        for &(dialect, text, want) in cases {
            assert_eq!(dialect.text(text).unwrap(), want, "{dialect:?} {text:?}");
        }
        assert_eq!(
            Dialect::Postgres.text("a\0"),
            Err(SqlError::NulInPostgresText)
        );
    }

    #[test]
    fn numbers_booleans_lists() {
        for d in ALL {
            for (text, want) in [
                ("42", "42"),
                ("1.5", "1.5"),
                ("1e300", "1e300"),
                ("-3", "(-3)"),
                ("-0.25", "(-0.25)"),
            ] {
                assert_eq!(d.number(text).unwrap(), want, "{d:?} {text}");
            }
            for bad in ["inf", "NaN", "-inf", "1;", "", "-", "0x1F", "1 --", "e5"] {
                assert!(d.number(bad).is_err(), "{d:?} accepted {bad:?}");
            }
            assert_eq!(d.boolean(true), "TRUE");
            assert_eq!(d.list(&["1".into(), "'a'".into()]).unwrap(), "(1, 'a')");
            assert_eq!(d.list(&[]), Err(SqlError::EmptyList));
        }
    }
}
