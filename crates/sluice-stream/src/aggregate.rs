//! Aggregates a window computes: count, sum, min, max, avg, count_distinct — with SQL's null
//! rules (only `count()` counts rows; the others skip nulls, and are null over no values).

use std::collections::HashSet;

/// A field value of a record, as the window sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Null,
    Number(f64),
    Text(String),
}

impl Value {
    fn number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Text(t) => t.trim().parse().ok(),
            Value::Null => None,
        }
    }

    fn distinct_key(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Number(n) => Some(n.to_string()),
            Value::Text(t) => Some(t.clone()),
        }
    }
}

/// One output of a window; the `usize` is the position of its input among the record's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Sum(usize),
    Min(usize),
    Max(usize),
    Avg(usize),
    CountDistinct(usize),
}

/// The running state of one aggregate in one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Acc {
    Count(u64),
    Sum(Option<f64>),
    Min(Option<f64>),
    Max(Option<f64>),
    Avg { sum: f64, n: u64 },
    Distinct(HashSet<String>),
}

impl Aggregate {
    pub fn start(self) -> Acc {
        match self {
            Aggregate::Count => Acc::Count(0),
            Aggregate::Sum(_) => Acc::Sum(None),
            Aggregate::Min(_) => Acc::Min(None),
            Aggregate::Max(_) => Acc::Max(None),
            Aggregate::Avg(_) => Acc::Avg { sum: 0.0, n: 0 },
            Aggregate::CountDistinct(_) => Acc::Distinct(HashSet::new()),
        }
    }

    fn input(self) -> Option<usize> {
        match self {
            Aggregate::Count => None,
            Aggregate::Sum(i)
            | Aggregate::Min(i)
            | Aggregate::Max(i)
            | Aggregate::Avg(i)
            | Aggregate::CountDistinct(i) => Some(i),
        }
    }

    /// Adds a record (its fields) to the state.
    pub fn add(self, acc: &mut Acc, fields: &[Value]) {
        let value = self.input().map(|i| fields.get(i).unwrap_or(&Value::Null));
        let number = value.and_then(Value::number);
        match acc {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => {
                if let Some(x) = number {
                    *s = Some(s.unwrap_or(0.0) + x);
                }
            }
            Acc::Min(m) => {
                if let Some(x) = number {
                    *m = Some(m.map_or(x, |m| m.min(x)));
                }
            }
            Acc::Max(m) => {
                if let Some(x) = number {
                    *m = Some(m.map_or(x, |m| m.max(x)));
                }
            }
            Acc::Avg { sum, n } => {
                if let Some(x) = number {
                    *sum += x;
                    *n += 1;
                }
            }
            Acc::Distinct(set) => {
                if let Some(k) = value.and_then(Value::distinct_key) {
                    set.insert(k);
                }
            }
        }
    }
}

impl Acc {
    /// Folds `other` (the same aggregate's state in another window) in: session windows merge.
    pub fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Sum(a), Acc::Sum(b)) => {
                if let Some(b) = b {
                    *a = Some(a.unwrap_or(0.0) + b);
                }
            }
            (Acc::Min(a), Acc::Min(b)) => {
                if let Some(b) = b {
                    *a = Some(a.map_or(b, |a| a.min(b)));
                }
            }
            (Acc::Max(a), Acc::Max(b)) => {
                if let Some(b) = b {
                    *a = Some(a.map_or(b, |a| a.max(b)));
                }
            }
            (Acc::Avg { sum, n }, Acc::Avg { sum: s2, n: n2 }) => {
                *sum += s2;
                *n += n2;
            }
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(b),
            _ => unreachable!("states of one aggregate are merged with each other only"),
        }
    }

    pub fn result(&self) -> Value {
        let num = |x: Option<f64>| x.map_or(Value::Null, Value::Number);
        match self {
            Acc::Count(n) => Value::Number(*n as f64),
            Acc::Sum(s) => num(*s),
            Acc::Min(m) | Acc::Max(m) => num(*m),
            Acc::Avg { sum, n } => num((*n > 0).then(|| sum / *n as f64)),
            Acc::Distinct(set) => Value::Number(set.len() as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_skipped_except_by_count() {
        let rows = [
            vec![Value::Number(2.0), Value::Text("a".into())],
            vec![Value::Null, Value::Text("b".into())],
            vec![Value::Text("4".into()), Value::Text("a".into())],
            vec![Value::Text("oops".into()), Value::Null],
        ];
        let aggs = [
            Aggregate::Count,
            Aggregate::Sum(0),
            Aggregate::Min(0),
            Aggregate::Max(0),
            Aggregate::Avg(0),
            Aggregate::CountDistinct(1),
        ];
        let results: Vec<Value> = aggs
            .iter()
            .map(|a| {
                let mut acc = a.start();
                for r in &rows {
                    a.add(&mut acc, r);
                }
                acc.result()
            })
            .collect();
        let n = Value::Number;
        assert_eq!(results, [n(4.0), n(6.0), n(2.0), n(4.0), n(3.0), n(2.0)]);
        let mut empty = Aggregate::Sum(0).start();
        Aggregate::Sum(0).add(&mut empty, &[Value::Null]);
        assert_eq!(empty.result(), Value::Null, "a sum over no values is null");
    }

    #[test]
    fn merged_states_equal_one_state_over_all_rows() {
        let a = Aggregate::Avg(0);
        let (mut x, mut y) = (a.start(), a.start());
        a.add(&mut x, &[Value::Number(1.0)]);
        a.add(&mut y, &[Value::Number(2.0)]);
        a.add(&mut y, &[Value::Number(6.0)]);
        x.merge(y);
        assert_eq!(x.result(), Value::Number(3.0));
    }
}
