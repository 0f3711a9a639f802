//! Small helpers to decode YAML mappings by hand, reporting problems as diagnostics.

use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::yaml::{Node, Span, Value};

/// The entries of a YAML mapping whose keys were checked against the keys a section allows.
pub struct Fields<'a> {
    pub node: &'a Node,
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// Reads `node` as a mapping whose keys must be in `known`; `what` names the section in
    /// messages ("task `load`", "the project settings").
    pub fn new(
        node: &'a Node,
        what: &str,
        known: &[&str],
        diags: &mut Diagnostics,
    ) -> Option<Fields<'a>> {
        let Value::Map(map) = &node.value else {
            diags.push(Diagnostic::new(
                &node.span,
                format!(
                    "{what} must be a mapping of keys to values, found {}",
                    node.kind_name()
                ),
            ));
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                diags.push(Diagnostic::new(
                    &k.span,
                    format!("keys in {what} must be strings, found {}", k.kind_name()),
                ));
                continue;
            };
            if !known.contains(&key) {
                let hint = did_you_mean(key, known.iter().copied())
                    .unwrap_or_else(|| format!("allowed keys: {}", known.join(", ")));
                diags.push(
                    Diagnostic::new(&k.span, format!("unknown key `{key}` in {what}")).hint(hint),
                );
                continue;
            }
            entries.push((key, k, v));
        }
        Some(Fields { node, entries })
    }

    /// The keys present, in file order.
    pub fn keys(&self) -> impl Iterator<Item = (&'a str, &'a Node)> + '_ {
        self.entries.iter().map(|(k, key_node, _)| (*k, *key_node))
    }

    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
            .filter(|v| !v.is_null())
    }

    pub fn string(&self, key: &str, diags: &mut Diagnostics) -> Option<String> {
        let node = self.get(key)?;
        match node.scalar_text() {
            Some(s) if !matches!(node.value, Value::Seq(_) | Value::Map(_)) => Some(s),
            _ => {
                diags.push(Diagnostic::new(
                    &node.span,
                    format!("`{key}` must be a string, found {}", node.kind_name()),
                ));
                None
            }
        }
    }

    pub fn bool(&self, key: &str, diags: &mut Diagnostics) -> Option<bool> {
        let node = self.get(key)?;
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                diags.push(
                    Diagnostic::new(
                        &node.span,
                        format!("`{key}` must be true or false, found {}", node.kind_name()),
                    )
                    .hint("write `true` or `false` without quotes"),
                );
                None
            }
        }
    }

    pub fn uint(&self, key: &str, diags: &mut Diagnostics) -> Option<u32> {
        let node = self.get(key)?;
        match node.value {
            Value::Int(i) if (0..=u32::MAX as i64).contains(&i) => Some(i as u32),
            _ => {
                diags.push(Diagnostic::new(
                    &node.span,
                    format!(
                        "`{key}` must be a whole number ≥ 0, found {}",
                        describe(node)
                    ),
                ));
                None
            }
        }
    }

    pub fn duration(&self, key: &str, diags: &mut Diagnostics) -> Option<Duration> {
        let node = self.get(key)?;
        match parse_duration_node(node) {
            Ok(d) => Some(d),
            Err(msg) => {
                diags.push(
                    Diagnostic::new(&node.span, format!("`{key}`: {msg}"))
                        .hint("write a duration such as 30s, 5m, 2h, 1h30m or 1d"),
                );
                None
            }
        }
    }

    /// A list of strings (a single string is accepted as a list of one).
    pub fn string_list(&self, key: &str, diags: &mut Diagnostics) -> Vec<(String, &'a Node)> {
        let Some(node) = self.get(key) else {
            return Vec::new();
        };
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|item| match item.as_str() {
                    Some(s) => Some((s.to_string(), item)),
                    None => {
                        diags.push(Diagnostic::new(
                            &item.span,
                            format!(
                                "entries of `{key}` must be strings, found {}",
                                item.kind_name()
                            ),
                        ));
                        None
                    }
                })
                .collect(),
            Value::Str { text, .. } => vec![(text.clone(), node)],
            _ => {
                diags.push(Diagnostic::new(
                    &node.span,
                    format!(
                        "`{key}` must be a list of strings, found {}",
                        node.kind_name()
                    ),
                ));
                Vec::new()
            }
        }
    }

    pub fn required(&self, key: &str, what: &str, diags: &mut Diagnostics) -> Option<&'a Node> {
        let node = self.get(key);
        if node.is_none() {
            diags.push(
                Diagnostic::new(&self.node.span, format!("{what} has no `{key}`"))
                    .hint(format!("add `{key}:`")),
            );
        }
        node
    }
}

fn describe(node: &Node) -> String {
    match node.scalar_text() {
        Some(t) => format!("`{t}`"),
        None => node.kind_name().to_string(),
    }
}

fn parse_duration_node(node: &Node) -> Result<Duration, String> {
    match &node.value {
        Value::Int(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
        Value::Float(f) if *f >= 0.0 => Ok(Duration::from_secs_f64(*f)),
        Value::Str { text, .. } => parse_duration(text),
        _ => Err(format!("expected a duration, found {}", describe(node))),
    }
}

/// Whether `id` may name a pipeline, stream or task (`what`); reports it when it may not.
pub fn valid_id(id: &str, span: &Span, what: &str, diags: &mut Diagnostics) -> bool {
    let ok = !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        diags.push(
            Diagnostic::new(span, format!("`{id}` is not a valid {what} id"))
                .hint("use letters, digits, `_`, `-` and `.` only"),
        );
    }
    ok
}

/// Parses durations such as `30s`, `5m`, `2h`, `1h30m`, `1d`, `250ms` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>()
        && secs >= 0.0
        && secs.is_finite()
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t).map_err(|e| format!("`{text}` is not a duration ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-3s").is_err());
    }
}
