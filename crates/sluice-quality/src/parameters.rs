//! Suite parameters: an argument written `{"$PARAMETER": "…"}` takes its value when the suite
//! is validated, as in Great Expectations. The text is either one name, whose value is given
//! at run time (any JSON value, a list for `value_set` say), or an expression in GE's small
//! language: numbers and names joined by `+ - * / ^` and parentheses, `PI`, `E`, and the
//! functions `now()`, `datetime(y, m, d[, h, mi, s, us])`, `timedelta(weeks=…, days=…, …)`,
//! `sin cos tan exp abs trunc round sgn`. `now() - timedelta(days=1)` is yesterday at this
//! moment. Dates come out as ISO 8601 text, which every date comparison reads.
//!
//! As in GE, a name inside an expression stands for its value read as a number or a date, and
//! a unary minus binds tighter than `^` (`-2^2` is 4).

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use serde_json::{Map, Value as Json};

use crate::QualityError;

/// A suite parameter that cannot be evaluated: the suite's mistake (placed at its argument by
/// [`Parameters::substitute`]).
fn refused(message: impl Into<String>) -> QualityError {
    QualityError::suite(message)
}

/// The key that marks a suite parameter.
pub const KEY: &str = "$PARAMETER";

/// The values parameters take in one validation, and the moment `now()` stands for.
#[derive(Debug, Clone)]
pub struct Parameters {
    values: Map<String, Json>,
    now: NaiveDateTime,
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters::new(Map::new())
    }
}

impl Parameters {
    /// `now()` is the local wall clock, as GE's `datetime.now()`.
    pub fn new(values: Map<String, Json>) -> Parameters {
        Parameters {
            values,
            now: chrono::Local::now().naive_local(),
        }
    }

    pub fn at(self, now: NaiveDateTime) -> Parameters {
        Parameters { now, ..self }
    }

    /// These values, with `defaults` (a suite's own `suite_parameters`) for names not given.
    pub fn or(&self, defaults: &Map<String, Json>) -> Parameters {
        let mut values = defaults.clone();
        values.extend(self.values.clone());
        Parameters {
            values,
            now: self.now,
        }
    }

    /// The arguments with every suite parameter replaced by its value (only top-level
    /// arguments are parameters, as in GE).
    pub fn substitute(
        &self,
        kwargs: &Map<String, Json>,
    ) -> Result<Map<String, Json>, QualityError> {
        kwargs
            .iter()
            .map(|(k, v)| {
                let value = match parameter(v) {
                    Some(text) => self.value_of(text, v).map_err(|e| {
                        QualityError::argument(k, format!("`{k}`: suite parameter `{text}`: {e}"))
                    })?,
                    None => v.clone(),
                };
                Ok((k.clone(), value))
            })
            .collect()
    }

    fn value_of(&self, text: &str, spec: &Json) -> Result<Json, QualityError> {
        let expr = parse(text).map_err(|e| refused(e.to_string()))?;
        if let Expr::Name(name) = &expr {
            // GE's interactive form keeps a value beside the name: `$PARAMETER.name`.
            let temporary = spec.get(format!("{KEY}.{name}"));
            return self.values.get(name).or(temporary).cloned().ok_or_else(|| {
                refused(format!("no value for `{name}`; give it at run time (sluice validate --param {name}=VALUE, or `parameters:` on the validate task) or in the suite's `suite_parameters`"))
            });
        }
        self.evaluate(&expr)?.into_json()
    }

    fn evaluate(&self, expr: &Expr) -> Result<Val, QualityError> {
        match expr {
            Expr::Number(n) => Ok(*n),
            Expr::Name(name) => match constant(name) {
                Some(c) => Ok(Val::Float(c)),
                None => self
                    .values
                    .get(name)
                    .ok_or_else(|| refused(format!("no value for `{name}`")))
                    .and_then(|v| Val::read(name, v)),
            },
            Expr::Neg(e) => match self.evaluate(e)? {
                Val::Int(i) => Ok(Val::Int(-i)),
                Val::Float(f) => Ok(Val::Float(-f)),
                Val::Span(s) => Ok(Val::Span(-s)),
                Val::Time(_) => Err(refused("a date cannot be negated")),
            },
            Expr::Binary(op, a, b) => binary(*op, self.evaluate(a)?, self.evaluate(b)?),
            Expr::Call(name, args, kwargs) => {
                let args = args
                    .iter()
                    .map(|a| self.evaluate(a))
                    .collect::<Result<Vec<_>, _>>()?;
                let kwargs = kwargs
                    .iter()
                    .map(|(k, a)| Ok((k.as_str(), self.evaluate(a)?)))
                    .collect::<Result<Vec<_>, QualityError>>()?;
                self.call(name, &args, &kwargs)
            }
        }
    }

    fn call(&self, name: &str, args: &[Val], kwargs: &[(&str, Val)]) -> Result<Val, QualityError> {
        let number = |i: usize| -> Result<f64, QualityError> {
            match args.get(i) {
                Some(Val::Int(n)) => Ok(*n as f64),
                Some(Val::Float(f)) => Ok(*f),
                Some(other) => Err(refused(format!(
                    "{name}() takes numbers, found {}",
                    other.kind()
                ))),
                None => Err(refused(format!("{name}() needs an argument"))),
            }
        };
        let unary = |f: fn(f64) -> f64| -> Result<Val, QualityError> {
            if args.len() != 1 || !kwargs.is_empty() {
                return Err(refused(format!("{name}() takes one number")));
            }
            Ok(Val::Float(f(number(0)?)))
        };
        match name {
            "sin" => unary(f64::sin),
            "cos" => unary(f64::cos),
            "tan" => unary(f64::tan),
            "exp" => unary(f64::exp),
            "abs" => match args {
                [Val::Int(i)] => Ok(Val::Int(i.abs())),
                [Val::Span(s)] => Ok(Val::Span(s.abs())),
                _ => unary(f64::abs),
            },
            "trunc" => Ok(Val::Int(unary(f64::trunc)?.float() as i64)),
            // Python's round: halves go to the even neighbour.
            "round" => match args.len() {
                1 => Ok(Val::Int(number(0)?.round_ties_even() as i64)),
                2 => {
                    let scale = 10f64.powi(number(1)? as i32);
                    Ok(Val::Float((number(0)? * scale).round_ties_even() / scale))
                }
                _ => Err(refused("round() takes a number and optionally its digits")),
            },
            "sgn" => {
                let x = unary(|x| x)?.float();
                Ok(Val::Int(if x < -1e-12 {
                    -1
                } else if x > 1e-12 {
                    1
                } else {
                    0
                }))
            }
            "now" if args.is_empty() && kwargs.is_empty() => Ok(Val::Time(self.now)),
            "now" => Err(refused("now() takes no arguments")),
            "datetime" => {
                let parts = arguments(
                    name,
                    &[
                        "year",
                        "month",
                        "day",
                        "hour",
                        "minute",
                        "second",
                        "microsecond",
                    ],
                    3,
                    args,
                    kwargs,
                )?;
                let whole = |i: usize| -> Result<u32, QualityError> {
                    let v = parts[i];
                    (v.fract() == 0.0 && v >= 0.0)
                        .then_some(v as u32)
                        .ok_or_else(|| {
                            refused(format!("datetime() takes whole numbers, found {v}"))
                        })
                };
                let time = (whole(3)?, whole(4)?, whole(5)?, whole(6)?);
                NaiveDate::from_ymd_opt(parts[0] as i32, whole(1)?, whole(2)?)
                    .and_then(|d| d.and_hms_micro_opt(time.0, time.1, time.2, time.3))
                    .map(Val::Time)
                    .ok_or_else(|| refused("datetime(): no such date"))
            }
            "timedelta" => {
                let parts = arguments(
                    name,
                    &[
                        "days",
                        "seconds",
                        "microseconds",
                        "milliseconds",
                        "minutes",
                        "hours",
                        "weeks",
                    ],
                    0,
                    args,
                    kwargs,
                )?;
                let micros = parts[0] * 86_400e6
                    + parts[1] * 1e6
                    + parts[2]
                    + parts[3] * 1e3
                    + parts[4] * 60e6
                    + parts[5] * 3_600e6
                    + parts[6] * 7.0 * 86_400e6;
                Ok(Val::Span(TimeDelta::microseconds(micros.round() as i64)))
            }
            _ => Err(refused(format!(
                "unknown function `{name}`; the functions are {}",
                FUNCTIONS.join(", ")
            ))),
        }
    }
}

const FUNCTIONS: &[&str] = &[
    "now",
    "datetime",
    "timedelta",
    "sin",
    "cos",
    "tan",
    "exp",
    "abs",
    "trunc",
    "round",
    "sgn",
];

/// Python's calling convention for `datetime()` and `timedelta()`: positional arguments in
/// `names`' order, then keywords; the first `required` must be given, the others are 0.
fn arguments(
    function: &str,
    names: &[&str],
    required: usize,
    args: &[Val],
    kwargs: &[(&str, Val)],
) -> Result<Vec<f64>, QualityError> {
    if args.len() > names.len() {
        return Err(refused(format!(
            "{function}() takes at most {} arguments",
            names.len()
        )));
    }
    let mut values: Vec<Option<f64>> = vec![None; names.len()];
    let given = args
        .iter()
        .enumerate()
        .map(|(i, v)| (names[i], v))
        .chain(kwargs.iter().map(|(k, v)| (*k, v)));
    for (key, v) in given {
        let Some(i) = names.iter().position(|n| *n == key) else {
            return Err(refused(format!(
                "{function}() has no argument `{key}`; it takes {}",
                names.join(", ")
            )));
        };
        if values[i].is_some() {
            return Err(refused(format!("{function}(): `{key}` is given twice")));
        }
        values[i] = Some(match v {
            Val::Int(n) => *n as f64,
            Val::Float(f) => *f,
            other => {
                return Err(refused(format!(
                    "{function}() takes numbers, found {}",
                    other.kind()
                )));
            }
        });
    }
    if let Some(missing) = (0..required).find(|&i| values[i].is_none()) {
        return Err(refused(format!("{function}() needs `{}`", names[missing])));
    }
    Ok(values.into_iter().map(|v| v.unwrap_or(0.0)).collect())
}

/// The text of a suite parameter, when `v` is one.
pub fn parameter(v: &Json) -> Option<&str> {
    v.as_object()?.get(KEY)?.as_str()
}

/// `PI` and `E`, in any case (GE's caseless keywords).
fn constant(name: &str) -> Option<f64> {
    match name.to_ascii_uppercase().as_str() {
        "PI" => Some(std::f64::consts::PI),
        "E" => Some(std::f64::consts::E),
        _ => None,
    }
}

/// The names a suite parameter `spec` (`{"$PARAMETER": …}`) needs run-time values for: those
/// its expression uses, except one name alone that carries GE's interactive
/// `$PARAMETER.name` value beside it. An unreadable expression needs none (the suite reader
/// reports it).
pub fn required_names(spec: &Json) -> Vec<String> {
    let Some(text) = parameter(spec) else {
        return Vec::new();
    };
    match parse(text) {
        Ok(Expr::Name(name)) if spec.get(format!("{KEY}.{name}")).is_some() => Vec::new(),
        Ok(expr) => names_in(&expr),
        Err(_) => Vec::new(),
    }
}

/// The names an expression needs values for (not `PI`, `E` or functions).
pub fn names(text: &str) -> Result<Vec<String>, SyntaxError> {
    Ok(names_in(&parse(text)?))
}

fn names_in(expr: &Expr) -> Vec<String> {
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::Name(n) if constant(n).is_none() && !out.contains(n) => {
                out.push(n.clone());
            }
            Expr::Neg(e) => walk(e, out),
            Expr::Binary(_, a, b) => {
                walk(a, out);
                walk(b, out);
            }
            Expr::Call(_, args, kwargs) => {
                args.iter()
                    .chain(kwargs.iter().map(|(_, a)| a))
                    .for_each(|a| walk(a, out));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

#[derive(Debug, Clone, Copy)]
enum Val {
    Int(i64),
    Float(f64),
    Time(NaiveDateTime),
    Span(TimeDelta),
}

impl Val {
    /// A parameter's value inside an expression: a number, or text read as a number or date.
    fn read(name: &str, v: &Json) -> Result<Val, QualityError> {
        let text = match v {
            Json::Number(n) => {
                return Ok(n
                    .as_i64()
                    .map_or_else(|| Val::Float(n.as_f64().unwrap_or(f64::NAN)), Val::Int));
            }
            Json::String(s) => s.trim(),
            other => {
                return Err(refused(format!(
                    "`{name}` is {other}, which is not a number or a date"
                )));
            }
        };
        if let Ok(i) = text.parse() {
            return Ok(Val::Int(i));
        }
        if let Ok(f) = text.parse() {
            return Ok(Val::Float(f));
        }
        crate::value::parse_time(text)
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(|t| Val::Time(t.naive_utc()))
            .ok_or_else(|| {
                refused(format!(
                    "`{name}` is \"{text}\", which is not a number or a date"
                ))
            })
    }

    fn kind(&self) -> &'static str {
        match self {
            Val::Int(_) | Val::Float(_) => "a number",
            Val::Time(_) => "a date",
            Val::Span(_) => "a time span",
        }
    }

    fn float(&self) -> f64 {
        match self {
            Val::Int(i) => *i as f64,
            Val::Float(f) => *f,
            _ => f64::NAN,
        }
    }

    fn into_json(self) -> Result<Json, QualityError> {
        match self {
            Val::Int(i) => Ok(Json::from(i)),
            Val::Float(f) => serde_json::Number::from_f64(f)
                .map(Json::Number)
                .ok_or_else(|| refused(format!("the expression evaluates to {f}"))),
            // Python's isoformat: microseconds only when there are some.
            Val::Time(t) => Ok(Json::String(
                if t.and_utc().timestamp_subsec_micros() == 0 {
                    t.format("%Y-%m-%dT%H:%M:%S").to_string()
                } else {
                    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
                },
            )),
            Val::Span(s) => Err(refused(format!(
                "the expression is a time span ({s}), not a value; add it to a date, e.g. now() - timedelta(days=1)"
            ))),
        }
    }
}

fn binary(op: char, a: Val, b: Val) -> Result<Val, QualityError> {
    use Val::*;
    let overflow = || refused(format!("`{op}` overflows"));
    let out = match (op, a, b) {
        ('+', Int(x), Int(y)) => Int(x.checked_add(y).ok_or_else(overflow)?),
        ('-', Int(x), Int(y)) => Int(x.checked_sub(y).ok_or_else(overflow)?),
        ('*', Int(x), Int(y)) => Int(x.checked_mul(y).ok_or_else(overflow)?),
        ('^', Int(x), Int(y)) if (0..=u32::MAX as i64).contains(&y) => {
            Int(x.checked_pow(y as u32).ok_or_else(overflow)?)
        }
        ('/', Int(_) | Float(_), Int(0)) => return Err(refused("division by zero")),
        ('+', Int(_) | Float(_), Int(_) | Float(_)) => Float(a.float() + b.float()),
        ('-', Int(_) | Float(_), Int(_) | Float(_)) => Float(a.float() - b.float()),
        ('*', Int(_) | Float(_), Int(_) | Float(_)) => Float(a.float() * b.float()),
        ('/', Int(_) | Float(_), Int(_) | Float(_)) => Float(a.float() / b.float()),
        ('^', Int(_) | Float(_), Int(_) | Float(_)) => Float(a.float().powf(b.float())),
        ('+', Time(t), Span(s)) | ('+', Span(s), Time(t)) => {
            Time(t.checked_add_signed(s).ok_or_else(overflow)?)
        }
        ('-', Time(t), Span(s)) => Time(t.checked_sub_signed(s).ok_or_else(overflow)?),
        ('-', Time(x), Time(y)) => Span(x - y),
        ('+', Span(x), Span(y)) => Span(x.checked_add(&y).ok_or_else(overflow)?),
        ('-', Span(x), Span(y)) => Span(x.checked_sub(&y).ok_or_else(overflow)?),
        ('*', Span(s), Int(_) | Float(_)) | ('*', Int(_) | Float(_), Span(s)) => {
            let factor = if let Span(_) = a {
                b.float()
            } else {
                a.float()
            };
            Span(scaled(s, factor).ok_or_else(overflow)?)
        }
        ('/', Span(s), Int(_) | Float(_)) => Span(scaled(s, 1.0 / b.float()).ok_or_else(overflow)?),
        _ => {
            return Err(refused(format!(
                "`{op}` cannot take {} and {}",
                a.kind(),
                b.kind()
            )));
        }
    };
    Ok(out)
}

fn scaled(s: TimeDelta, factor: f64) -> Option<TimeDelta> {
    let micros = s.num_microseconds()? as f64 * factor;
    micros
        .is_finite()
        .then(|| TimeDelta::microseconds(micros.round() as i64))
}

#[derive(Debug, Clone)]
enum Expr {
    Number(Val),
    Name(String),
    Neg(Box<Expr>),
    Binary(char, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>, Vec<(String, Expr)>),
}

/// A suite parameter that cannot be read, with the column (from 1) in its text.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at column {}", self.message, self.column)
    }
}

fn parse(text: &str) -> Result<Expr, SyntaxError> {
    let mut p = Parser { text, at: 0 };
    let e = p.expr()?;
    p.space();
    if p.at < text.len() {
        return Err(p.error("expected an operator (+ - * / ^) or the end"));
    }
    Ok(e)
}

/// Recursive descent over GE's grammar: expr = term {(+|-) term}; term = factor {(*|/)
/// factor}; factor = atom [^ factor]; atom = {+|-} (number | call | name | ( expr )).
struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            column: self.text[..self.at].chars().count() + 1,
            message: message.to_string(),
        }
    }

    fn space(&mut self) {
        let rest = &self.text[self.at..];
        self.at += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.space();
        self.text[self.at..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.at += c.len_utf8();
        }
        hit
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.term()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.at += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.term()?));
        }
        Ok(e)
    }

    fn term(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.factor()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.at += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.factor()?));
        }
        Ok(e)
    }

    fn factor(&mut self) -> Result<Expr, SyntaxError> {
        let base = self.atom()?;
        if self.eat('^') {
            return Ok(Expr::Binary('^', Box::new(base), Box::new(self.factor()?)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, SyntaxError> {
        match self.peek() {
            Some('-') => {
                self.at += 1;
                Ok(Expr::Neg(Box::new(self.atom()?)))
            }
            Some('+') => {
                self.at += 1;
                self.atom()
            }
            Some('(') => {
                self.at += 1;
                let e = self.expr()?;
                if !self.eat(')') {
                    return Err(self.error("expected `)`"));
                }
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let name = self.word();
                if !self.eat('(') {
                    return Ok(Expr::Name(name));
                }
                let (args, kwargs) = self.arguments()?;
                Ok(Expr::Call(name, args, kwargs))
            }
            Some(_) => Err(self.error("expected a number, a name, a function or `(`")),
            None => Err(self.error("expected a value, found the end")),
        }
    }

    fn word(&mut self) -> String {
        let rest = &self.text[self.at..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        self.at += len;
        rest[..len].to_string()
    }

    fn number(&mut self) -> Result<Expr, SyntaxError> {
        let rest = &self.text[self.at..];
        let mut len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        // An exponent: 1e6, 2.5E-3.
        let tail = &rest[len..];
        if tail.starts_with(['e', 'E']) {
            let digits = tail[1..].trim_start_matches(['+', '-']);
            if digits.starts_with(|c: char| c.is_ascii_digit()) {
                len = rest.len() - digits.len()
                    + digits
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(digits.len());
            }
        }
        let token = &rest[..len];
        let value = if let Ok(i) = token.parse() {
            Val::Int(i)
        } else if let Ok(f) = token.parse() {
            Val::Float(f)
        } else {
            return Err(self.error(&format!("`{token}` is not a number")));
        };
        self.at += len;
        Ok(Expr::Number(value))
    }

    /// After `(`: nothing, positional arguments, or keyword arguments (not both, as in GE).
    #[expect(
        clippy::type_complexity,
        reason = "positional and keyword arguments, as Python's call syntax has them"
    )]
    fn arguments(&mut self) -> Result<(Vec<Expr>, Vec<(String, Expr)>), SyntaxError> {
        let (mut args, mut kwargs) = (Vec::new(), Vec::new());
        if self.eat(')') {
            return Ok((args, kwargs));
        }
        loop {
            let start = self.at;
            self.space();
            let keyword = self
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic())
                .then(|| {
                    let word = self.word();
                    self.eat('=').then_some(word)
                });
            match keyword.flatten() {
                Some(k) if args.is_empty() => kwargs.push((k, self.expr()?)),
                Some(_) => {
                    return Err(self.error("keyword arguments cannot follow positional ones"));
                }
                None => {
                    self.at = start;
                    if !kwargs.is_empty() {
                        return Err(self.error("positional arguments cannot follow keyword ones"));
                    }
                    args.push(self.expr()?);
                }
            }
            if self.eat(')') {
                return Ok((args, kwargs));
            }
            if !self.eat(',') {
                return Err(self.error("expected `,` or `)`"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at_noon() -> Parameters {
        let values =
            json!({"upstream_rows": 120, "start": "2024-03-01", "statuses": ["paid", "shipped"]});
        Parameters::new(values.as_object().unwrap().clone()).at(NaiveDate::from_ymd_opt(2024, 3, 5)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap())
    }

    fn value(text: &str) -> Result<Json, String> {
        at_noon()
            .value_of(text, &json!({}))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn expressions_evaluate_as_in_great_expectations() {
        assert_eq!(value("now()"), Ok(json!("2024-03-05T12:00:00")));
        assert_eq!(
            value("now() - timedelta(weeks=52*100)"),
            Ok(json!("1924-07-08T12:00:00"))
        );
        assert_eq!(
            value("datetime(2003, 1, 1)"),
            Ok(json!("2003-01-01T00:00:00"))
        );
        assert_eq!(
            value("start + timedelta(hours=1.5)"),
            Ok(json!("2024-03-01T01:30:00"))
        );
        assert_eq!(value("upstream_rows * 0.9"), Ok(json!(108.0)));
        assert_eq!(value("trunc(upstream_rows / 7)"), Ok(json!(17)));
        assert_eq!(value("round(2.5) + round(3.5)"), Ok(json!(6)));
        assert_eq!(value("2^3^2"), Ok(json!(512)));
        assert_eq!(value("-2^2"), Ok(json!(4)));
        assert_eq!(value("(1 + 2) * 3 - 1e1"), Ok(json!(-1.0)));
        // One name alone keeps its value whatever it is.
        assert_eq!(value("statuses"), Ok(json!(["paid", "shipped"])));
    }

    #[test]
    fn problems_say_what_and_where() {
        assert_eq!(
            parse("now() -").unwrap_err().to_string(),
            "expected a value, found the end at column 8"
        );
        assert_eq!(
            parse("timedelta(days=1, 2)").unwrap_err().to_string(),
            "positional arguments cannot follow keyword ones at column 18"
        );
        assert!(
            value("rows_yesterday")
                .unwrap_err()
                .starts_with("no value for `rows_yesterday`")
        );
        assert_eq!(
            value("now() + now()"),
            Err("`+` cannot take a date and a date".into())
        );
        assert!(
            value("timedelta(days=1)")
                .unwrap_err()
                .contains("time span")
        );
        assert!(
            value("datetime(2024, 2, 30)")
                .unwrap_err()
                .contains("no such date")
        );
        assert!(
            value("yesterday()")
                .unwrap_err()
                .contains("unknown function `yesterday`")
        );
        assert_eq!(
            names("now() - timedelta(days=lag) + PI * x").unwrap(),
            ["lag", "x"]
        );
    }

    #[test]
    fn arguments_are_substituted_and_others_kept() {
        let kwargs = json!({"column": "ts", "min_value": {"$PARAMETER": "start"},
            "max_value": {"$PARAMETER": "missing", "$PARAMETER.missing": "2024-04-01"}});
        let got = at_noon().substitute(kwargs.as_object().unwrap()).unwrap();
        assert_eq!(
            Json::Object(got),
            json!({"column": "ts", "min_value": "2024-03-01", "max_value": "2024-04-01"})
        );
        let defaults = json!({"missing": "2024-05-01"});
        let got = at_noon()
            .or(defaults.as_object().unwrap())
            .substitute(kwargs.as_object().unwrap())
            .unwrap();
        assert_eq!(got["max_value"], json!("2024-05-01"));
    }
}
