//! `row_condition`: the rows an expectation looks at, in either of Great Expectations' two
//! spellings — `pandas` (`x == 1 & (s != "a")`) and `great_expectations` (`col("x") > 5`).
//!
//! A condition is parsed once, evaluated on Arrow batches by the in-memory engine and
//! translated to SQL (with quoted identifiers and literals, never spliced text) by the
//! pushdown engine, so both engines select the same rows.

use std::cmp::Ordering;

use arrow::record_batch::RecordBatch;

use crate::QualityError;
use crate::value::{Column, Literal};

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(String, Op, Literal),
    IsNull(String, bool),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o.is_eq(),
            Op::Ne => o.is_ne(),
            Op::Lt => o.is_lt(),
            Op::Le => o.is_le(),
            Op::Gt => o.is_gt(),
            Op::Ge => o.is_ge(),
        }
    }
}

/// Parses `text` written for `parser` (`pandas`, `great_expectations` or none).
pub fn parse(text: &str, parser: Option<&str>) -> Result<Condition, QualityError> {
    match parser {
        None | Some("pandas" | "great_expectations" | "great_expectations__experimental__") => {}
        Some(other) => {
            return Err(QualityError::argument(
                "condition_parser",
                format!(
                    "condition_parser `{other}` is not supported; use `pandas` or `great_expectations`"
                ),
            ));
        }
    }
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, pos: 0 };
    let cond = p.or()?;
    match p.tokens.get(p.pos) {
        None => Ok(cond),
        Some(t) => Err(refused(format!(
            "row_condition `{text}`: unexpected `{t:?}` after the condition"
        ))),
    }
}

/// The suite's mistake in its row condition.
fn refused(message: impl Into<String>) -> QualityError {
    QualityError::argument("row_condition", message)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
    Dot,
}

fn tokenize(text: &str) -> Result<Vec<Token>, QualityError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            _ if c.is_whitespace() => i += 1,
            '(' => (out.push(Token::Open), i += 1).1,
            ')' => (out.push(Token::Close), i += 1).1,
            '.' if !next.is_some_and(|n| n.is_ascii_digit()) => (out.push(Token::Dot), i += 1).1,
            '&' => (out.push(Token::And), i += 1).1,
            '|' => (out.push(Token::Or), i += 1).1,
            '~' => (out.push(Token::Not), i += 1).1,
            '=' | '!' | '<' | '>' => {
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    _ => {
                        return Err(refused(format!(
                            "row_condition `{text}`: `{c}` at offset {i} is not an operator (use ==, !=, <, <=, >, >=)"
                        )));
                    }
                };
                out.push(Token::Op(op));
                i += len;
            }
            '"' | '\'' => {
                let end = chars[i + 1..].iter().position(|&d| d == c).ok_or_else(|| {
                    refused(format!(
                        "row_condition `{text}`: the string at offset {i} is not closed"
                    ))
                })?;
                out.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            _ if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Token::Num(s.parse().map_err(|_| {
                    refused(format!(
                        "row_condition `{text}`: `{s}` at offset {start} is not a number"
                    ))
                })?));
            }
            _ if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    _ => Token::Ident(word),
                });
            }
            _ => {
                return Err(refused(format!(
                    "row_condition `{text}`: unexpected `{c}` at offset {i}"
                )));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Token) -> Result<(), QualityError> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            other => Err(refused(format!(
                "row_condition: expected {want:?}, found {other:?}"
            ))),
        }
    }

    fn or(&mut self) -> Result<Condition, QualityError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, QualityError> {
        let mut left = self.not()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, QualityError> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, QualityError> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(Token::Close)?;
            return Ok(inner);
        }
        let column = match self.next() {
            Some(Token::Ident(name)) if name == "col" && self.peek() == Some(&Token::Open) => {
                self.pos += 1;
                let Some(Token::Str(name)) = self.next() else {
                    return Err(refused(
                        "row_condition: col(...) takes a quoted column name",
                    ));
                };
                self.expect(Token::Close)?;
                name
            }
            Some(Token::Ident(name)) => name,
            other => {
                return Err(refused(format!(
                    "row_condition: expected a column name, found {other:?}"
                )));
            }
        };
        if self.peek() == Some(&Token::Dot) {
            self.pos += 1;
            let Some(Token::Ident(method)) = self.next() else {
                return Err(refused("row_condition: expected a method after `.`"));
            };
            self.expect(Token::Open)?;
            self.expect(Token::Close)?;
            return match method.to_ascii_lowercase().as_str() {
                "isnull" | "isna" => Ok(Condition::IsNull(column, true)),
                "notnull" | "notna" => Ok(Condition::IsNull(column, false)),
                _ => Err(refused(format!(
                    "row_condition: `.{method}()` is not supported (use .isnull() or .notnull())"
                ))),
            };
        }
        let Some(Token::Op(op)) = self.next() else {
            return Err(refused(format!(
                "row_condition: expected a comparison after `{column}`"
            )));
        };
        let value = match self.next() {
            Some(Token::Num(n)) => Literal::Number(n),
            Some(Token::Str(s)) => Literal::Text(s),
            Some(Token::Ident(w)) if w == "True" || w == "true" => Literal::Bool(true),
            Some(Token::Ident(w)) if w == "False" || w == "false" => Literal::Bool(false),
            Some(Token::Ident(w)) if w == "None" || w == "null" => {
                return Ok(Condition::IsNull(column, op == Op::Eq));
            }
            other => {
                return Err(refused(format!(
                    "row_condition: expected a value after `{column}`, found {other:?}"
                )));
            }
        };
        Ok(Condition::Compare(column, op, value))
    }
}

impl Condition {
    /// The columns the condition reads.
    pub fn columns(&self, out: &mut Vec<String>) {
        match self {
            Condition::Compare(c, ..) | Condition::IsNull(c, _) => out.push(c.clone()),
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.columns(out);
                b.columns(out);
            }
            Condition::Not(a) => a.columns(out),
        }
    }

    /// Which rows of `batch` the condition selects.
    pub fn select(&self, batch: &RecordBatch) -> Result<Vec<bool>, QualityError> {
        Ok(match self {
            Condition::Compare(name, op, value) => {
                let column = column(batch, name)?;
                let value = value.for_column(&column);
                // As in pandas, a missing value is unequal to everything.
                (0..batch.num_rows())
                    .map(|row| match compare(&column, row, &value) {
                        Some(o) => op.holds(o),
                        None => *op == Op::Ne,
                    })
                    .collect()
            }
            Condition::IsNull(name, want) => {
                let column = column(batch, name)?;
                (0..batch.num_rows())
                    .map(|row| column.is_missing(row) == *want)
                    .collect()
            }
            Condition::And(a, b) => zip(a.select(batch)?, b.select(batch)?, |x, y| x && y),
            Condition::Or(a, b) => zip(a.select(batch)?, b.select(batch)?, |x, y| x || y),
            Condition::Not(a) => a.select(batch)?.into_iter().map(|x| !x).collect(),
        })
    }

    /// The condition as a SQL predicate. `quote` quotes an identifier; `literal` renders a
    /// value for comparison with the named column (quoted, never spliced), `None` when the
    /// value cannot compare with that column.
    pub fn sql(
        &self,
        quote: &dyn Fn(&str) -> String,
        literal: &dyn Fn(&str, &Literal) -> Option<String>,
    ) -> String {
        match self {
            // Missing values are unequal to everything, as in pandas (and the Arrow engine).
            Condition::Compare(c, Op::Ne, v) => match literal(c, v) {
                Some(v) => format!("({q} <> {v} OR {q} IS NULL)", q = quote(c)),
                None => "TRUE".into(),
            },
            Condition::Compare(c, op, v) => match literal(c, v) {
                Some(v) => format!("{} {} {v}", quote(c), op.sql()),
                None => "FALSE".into(),
            },
            Condition::IsNull(c, true) => format!("{} IS NULL", quote(c)),
            Condition::IsNull(c, false) => format!("{} IS NOT NULL", quote(c)),
            Condition::And(a, b) => {
                format!("({} AND {})", a.sql(quote, literal), b.sql(quote, literal))
            }
            Condition::Or(a, b) => {
                format!("({} OR {})", a.sql(quote, literal), b.sql(quote, literal))
            }
            Condition::Not(a) => format!("(NOT {})", a.sql(quote, literal)),
        }
    }
}

fn zip(a: Vec<bool>, b: Vec<bool>, f: impl Fn(bool, bool) -> bool) -> Vec<bool> {
    a.into_iter().zip(b).map(|(x, y)| f(x, y)).collect()
}

fn column(batch: &RecordBatch, name: &str) -> Result<Column, QualityError> {
    batch.column_by_name(name).map(Column::new).ok_or_else(|| {
        QualityError::data(format!(
            "row_condition names column `{name}`, which the data does not have"
        ))
    })
}

/// Orders a column value against a literal; `None` when either is missing or they do not
/// compare (text against a number).
pub fn compare(column: &Column, row: usize, value: &Literal) -> Option<Ordering> {
    if column.is_missing(row) {
        return None;
    }
    match (column, value) {
        (Column::Int(a), Literal::Number(n)) => (a.value(row) as f64).partial_cmp(n),
        (Column::Float(a), Literal::Number(n)) => a.value(row).partial_cmp(n),
        (Column::Text(a), Literal::Text(s)) => Some(a.value(row).cmp(s.as_str())),
        (Column::Bool(a), Literal::Bool(b)) => Some(a.value(row).cmp(b)),
        (Column::Bool(a), Literal::Number(n)) => f64::from(u8::from(a.value(row))).partial_cmp(n),
        (Column::Time { values, .. }, Literal::Time(t)) => Some(values.value(row).cmp(t)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse_to_the_same_condition() {
        let pandas = parse(r#"x!=1 & (s == "a")"#, Some("pandas")).unwrap();
        let ge = parse(
            r#"col("x") != 1 and col("s") == 'a'"#,
            Some("great_expectations"),
        )
        .unwrap();
        assert_eq!(pandas, ge);
        let sql = pandas.sql(&|c| format!("\"{c}\""), &|_, v| Some(format!("{v:?}")));
        assert_eq!(
            sql,
            r#"(("x" <> Number(1.0) OR "x" IS NULL) AND "s" = Text("a"))"#
        );
        assert!(parse("x == 1", Some("bad_parser")).is_err());
        assert!(parse("x = 1", None).is_err());
    }
}
