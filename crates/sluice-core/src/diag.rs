//! Problems found in the user's files, each with its position and a hint on how to fix it.

use std::fmt;

use serde::Serialize;

use crate::yaml::{Span, SyntaxError};

#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub severity: Severity,
}

/// An error makes its pipeline (or the project) invalid: `check` fails and nothing runs. A
/// warning is reported and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Diagnostic {
    pub fn new(span: &Span, message: impl Into<String>) -> Self {
        Diagnostic {
            file: span.file.to_string(),
            line: span.line,
            col: span.col,
            message: message.into(),
            hint: None,
            severity: Severity::Error,
        }
    }

    /// The same diagnostic as a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// A problem with a file as a whole (it cannot be read, it repeats another file's id):
    /// placed at its first character.
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: 1,
            col: 1,
            message: message.into(),
            hint: None,
            severity: Severity::Error,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

// Here rather than in yaml.rs, so that the YAML tree knows nothing of diagnostics.
impl SyntaxError {
    /// The error as a diagnostic at its place, with the usual hint.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::new(&self.span, format!("YAML syntax error: {}", self.message))
            .hint("check the indentation and that quotes and brackets are closed")
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {severity}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics while decoding, so a file reports all its problems at once.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// No errors (warnings do not count).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The errors (warnings do not count): what decides whether a file is valid.
    pub fn len(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }
}

/// "did you mean `x`?" for a misspelt name, when one candidate is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    // Transpositions and one-letter slips (`evn`, `retires`) count as close, as do names that
    // share most of their letters in order (`extract_order`).
    let max_edits = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| {
            strsim::osa_distance(name, c) <= max_edits || strsim::jaro_winkler(name, c) > 0.85
        })
        .min_by_key(|c| strsim::osa_distance(name, c))
        .map(|c| format!("did you mean `{c}`?"))
}
