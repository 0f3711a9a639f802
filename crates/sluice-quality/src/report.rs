//! Reports people read: a terminal summary and a self-contained HTML page (inline styles, no
//! scripts or remote assets), both made from the GE-shaped result JSON so they show exactly
//! what the machine-readable result says.

use askama::Template;
use serde_json::Value as Json;

/// One expectation as a report shows it.
pub struct Line {
    pub success: bool,
    pub raised: bool,
    pub expectation: String,
    pub arguments: String,
    /// What was observed, in words ("12 of 1,000 values unexpected (1.20%)", "observed 41.5").
    pub observed: String,
    /// Some of the unexpected values, as JSON.
    pub examples: Vec<String>,
}

impl Line {
    pub fn mark(&self) -> &'static str {
        match (self.success, self.raised) {
            (_, true) => "!",
            (true, false) => "✓",
            (false, false) => "✗",
        }
    }

    pub fn class(&self) -> &'static str {
        match (self.success, self.raised) {
            (_, true) => "error",
            (true, false) => "pass",
            (false, false) => "fail",
        }
    }
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

pub fn lines(result: &Json) -> Vec<Line> {
    result["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let config = &r["expectation_config"];
            let arguments = config["kwargs"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| {
                    !["result_format", "catch_exceptions", "meta"].contains(&k.as_str())
                })
                .map(|(k, v)| format!("{k}={}", short(v)))
                .collect::<Vec<_>>()
                .join(", ");
            let res = &r["result"];
            let raised = r["exception_info"]["raised_exception"]
                .as_bool()
                .unwrap_or(false);
            let observed = if raised {
                r["exception_info"]["exception_message"]
                    .as_str()
                    .unwrap_or("raised")
                    .to_string()
            } else if let Some(unexpected) = res["unexpected_count"].as_u64() {
                let total = res["element_count"].as_u64().unwrap_or(0)
                    - res["missing_count"].as_u64().unwrap_or(0);
                let pct = res["unexpected_percent"].as_f64().unwrap_or(0.0);
                let missing = res["missing_count"].as_u64().filter(|&m| m > 0);
                format!(
                    "{} of {} values unexpected ({pct:.2}%){}",
                    grouped(unexpected),
                    grouped(total),
                    missing.map_or(String::new(), |m| format!(", {} missing", grouped(m)))
                )
            } else if !res["observed_value"].is_null() {
                format!("observed {}", short(&res["observed_value"]))
            } else {
                String::new()
            };
            let examples = res["partial_unexpected_list"]
                .as_array()
                .into_iter()
                .flatten()
                .take(10)
                .map(short)
                .collect();
            Line {
                success: r["success"].as_bool().unwrap_or(false),
                raised,
                expectation: config["expectation_type"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
                arguments,
                observed,
                examples,
            }
        })
        .collect()
}

fn headline(result: &Json, data: &str) -> (String, bool) {
    let stats = &result["statistics"];
    let success = result["success"].as_bool().unwrap_or(false);
    let suite = result["suite_name"].as_str().unwrap_or("suite");
    (
        format!(
            "{suite} on {data}: {} — {} of {} expectations met ({:.1}%)",
            if success { "passed" } else { "FAILED" },
            stats["successful_expectations"],
            stats["evaluated_expectations"],
            stats["success_percent"].as_f64().unwrap_or(100.0)
        ),
        success,
    )
}

/// The terminal summary: one line per expectation, failures with what was observed.
pub fn text(result: &Json, data: &str) -> String {
    let (head, _) = headline(result, data);
    let mut out = format!("{head}\n");
    for line in lines(result) {
        out.push_str(&format!(
            "  {} {}({})\n",
            line.mark(),
            line.expectation,
            line.arguments
        ));
        if !line.success && !line.observed.is_empty() {
            out.push_str(&format!("      {}\n", line.observed));
        }
        if !line.success && !line.examples.is_empty() {
            out.push_str(&format!("      e.g. {}\n", line.examples.join(", ")));
        }
    }
    out
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    headline: &'a str,
    success: bool,
    data: &'a str,
    generated: &'a str,
    lines: Vec<Line>,
    json: String,
}

/// The HTML report, one page with everything inline (it opens from a file or an e-mail).
pub fn html(result: &Json, data: &str) -> String {
    let (headline, success) = headline(result, data);
    let generated = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    Page {
        headline: &headline,
        success,
        data,
        generated: &generated,
        lines: lines(result),
        json: serde_json::to_string_pretty(result).unwrap_or_default(),
    }
    .render()
    .unwrap_or_else(|e| format!("<p>the report could not be rendered: {e}</p>"))
}
