//! A YAML tree that remembers where every node came from.
//!
//! Pipeline files are decoded by hand from this tree (not by serde) so that every problem —
//! an unknown key, a wrong type, a bad cron — can be reported at its own line and column, and
//! so that all problems of a file are collected in one pass.

use std::fmt;
use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// A position in a source file: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub fn new(file: Arc<str>, line: usize, col: usize) -> Self {
        Span { file, line, col }
    }

    /// The position `lines` lines down (at column `col`), or `col` characters to the right
    /// on the same line when `lines` is 0.
    pub fn shifted(&self, lines: usize, col: usize) -> Span {
        if lines == 0 {
            Span::new(self.file.clone(), self.line, self.col + col)
        } else {
            Span::new(self.file.clone(), self.line + lines, col)
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string scalar. `quoted` is true when the scalar was written in quotes, which shifts the
    /// column of its first character by one.
    Str {
        text: String,
        quoted: bool,
        block: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str { .. } => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The text of a scalar, whatever its YAML type (`retries: 3` and `retries: "3"` both give "3").
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str { text, .. } => Some(text.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Where the first character of a string scalar's content is (inside its quotes).
    pub fn content_span(&self) -> Span {
        match &self.value {
            Value::Str { quoted: true, .. } => self.span.shifted(0, 1),
            Value::Str { block: true, .. } => self.span.shifted(1, 1),
            _ => self.span.clone(),
        }
    }

    /// Converts the node to JSON, dropping positions (for params, kwargs and `for_each` items).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str { text, .. } => J::String(text.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
}

/// Parses one YAML document. An empty file is a `Null` node.
pub fn parse(file: Arc<str>, source: &str) -> Result<Node, SyntaxError> {
    let docs = MarkedYaml::load_from_str(source).map_err(|e| SyntaxError {
        span: Span::new(file.clone(), e.marker().line(), e.marker().col() + 1),
        message: e.info().to_string(),
    })?;
    let mut docs = docs.into_iter();
    let Some(first) = docs.next() else {
        return Ok(Node {
            span: Span::new(file, 1, 1),
            value: Value::Null,
        });
    };
    if let Some(second) = docs.next() {
        return Err(SyntaxError {
            span: Span::new(file, second.span.start.line(), second.span.start.col() + 1),
            message: "a pipeline file holds one YAML document, this is a second one".into(),
        });
    }
    let chars: Vec<char> = source.chars().collect();
    convert(&file, &chars, first)
}

fn convert(file: &Arc<str>, src: &[char], node: MarkedYaml<'_>) -> Result<Node, SyntaxError> {
    let start = node.span.start;
    let span = Span::new(file.clone(), start.line(), start.col() + 1);
    let first_char = src.get(start.index()).copied();
    let value = match node.data {
        YamlData::Value(scalar) => match scalar {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(b),
            Scalar::Integer(i) => Value::Int(i),
            Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
            Scalar::String(s) => Value::Str {
                text: s.into_owned(),
                quoted: matches!(first_char, Some('"' | '\'')),
                block: matches!(first_char, Some('|' | '>')),
            },
        },
        YamlData::Representation(text, _, _) => Value::Str {
            text: text.into_owned(),
            quoted: matches!(first_char, Some('"' | '\'')),
            block: matches!(first_char, Some('|' | '>')),
        },
        YamlData::Sequence(items) => Value::Seq(
            items
                .into_iter()
                .map(|item| convert(file, src, item))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                out.push((convert(file, src, k)?, convert(file, src, v)?));
            }
            Value::Map(out)
        }
        YamlData::Tagged(tag, _) => {
            return Err(SyntaxError {
                span,
                message: format!("YAML tags (`!{}`) are not supported here", tag.suffix),
            });
        }
        YamlData::Alias(_) => {
            return Err(SyntaxError {
                span,
                message: "YAML aliases (`*name`) are not supported in pipeline files".into(),
            });
        }
        YamlData::BadValue => {
            return Err(SyntaxError {
                span,
                message: "this value cannot be read as its YAML type".into(),
            });
        }
    };
    Ok(Node { span, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let src = "a: 1\nb:\n  c: \"x {{ ds }}\"\n";
        let node = parse("f.yaml".into(), src).unwrap();
        let Value::Map(entries) = &node.value else {
            panic!()
        };
        assert_eq!(entries[0].0.span.line, 1);
        assert_eq!(entries[0].0.span.col, 1);
        let Value::Map(inner) = &entries[1].1.value else {
            panic!()
        };
        let c = &inner[0].1;
        assert_eq!((c.span.line, c.span.col), (3, 6));
        assert_eq!(c.content_span().col, 7);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("f.yaml".into(), "a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.span.line >= 1, "{err:?}");
    }
}
