//! Windows and the windowed aggregation: which windows a record belongs to, their running
//! aggregates per key, and what fires as the watermark advances.

use std::collections::BTreeMap;

use crate::aggregate::{Acc, Aggregate, Value};

/// How records are grouped in time (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows aligned to the epoch.
    Tumbling { size: i64 },
    /// Windows of `size` starting every `slide` (Flink's sliding / hopping windows).
    Sliding { size: i64, slide: i64 },
    /// Per key, records closer than `gap` share a window, which ends `gap` after its last record.
    Session { gap: i64 },
}

impl WindowSpec {
    /// The windows [start, end) a record at `t` belongs to (for sessions: its own [t, t + gap),
    /// before merging).
    pub fn assign(&self, t: i64) -> Vec<(i64, i64)> {
        match *self {
            WindowSpec::Tumbling { size } => {
                let start = t - t.rem_euclid(size);
                vec![(start, start + size)]
            }
            WindowSpec::Sliding { size, slide } => {
                let mut out = Vec::new();
                let mut start = t - t.rem_euclid(slide);
                while start > t - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
                out
            }
            WindowSpec::Session { gap } => vec![(t, t + gap)],
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Window {
    end: i64,
    accs: Vec<Acc>,
    fired: bool,
    /// Changed by a late record since it last fired.
    dirty: bool,
}

fn fresh(aggregates: &[Aggregate], end: i64) -> Window {
    Window {
        end,
        accs: aggregates.iter().map(|a| a.start()).collect(),
        fired: false,
        dirty: false,
    }
}

fn add(aggregates: &[Aggregate], window: &mut Window, fields: &[Value]) {
    for (a, acc) in aggregates.iter().zip(&mut window.accs) {
        a.add(acc, fields);
    }
    if window.fired {
        window.dirty = true;
    }
}

/// Where a record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Into windows that have not fired yet.
    OnTime,
    /// Into a window that fired already, within the allowed lateness: it fires again.
    Updated,
    /// Every window of the record is past its allowed lateness: the record is the caller's to
    /// dead-letter; it changed nothing.
    Late,
}

/// What a firing says about a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// The window's result, the first time.
    First,
    /// An updated result after late records (an upsert on key + window replaces the first).
    Update,
    /// The window no longer exists: sessions merged into a larger one (delete its result).
    Retract,
}

/// A window's result, handed to the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub key: Vec<String>,
    pub start: i64,
    pub end: i64,
    pub emit: Emit,
    /// One value per aggregate (empty for a retraction).
    pub values: Vec<Value>,
}

pub struct WindowOperator {
    spec: WindowSpec,
    aggregates: Vec<Aggregate>,
    lateness: i64,
    /// Per key, its windows by start.
    windows: BTreeMap<Vec<String>, BTreeMap<i64, Window>>,
    retracted: Vec<(Vec<String>, i64, i64)>,
    late: u64,
}

impl WindowOperator {
    pub fn new(spec: WindowSpec, aggregates: Vec<Aggregate>, allowed_lateness: i64) -> Self {
        WindowOperator {
            spec,
            aggregates,
            lateness: allowed_lateness,
            windows: BTreeMap::new(),
            retracted: Vec::new(),
            late: 0,
        }
    }

    /// Past its allowed lateness at `watermark`: the window's state is gone or about to go.
    fn expired(&self, end: i64, watermark: Option<i64>) -> bool {
        watermark.is_some_and(|w| w >= end - 1 + self.lateness)
    }

    /// Adds a record of `key` at event time `t`. `watermark` is the stream's watermark before
    /// this record (in micro-batches: before its batch).
    pub fn insert(
        &mut self,
        key: Vec<String>,
        t: i64,
        fields: &[Value],
        watermark: Option<i64>,
    ) -> Placed {
        if let WindowSpec::Session { gap } = self.spec {
            return self.insert_session(key, t, gap, fields, watermark);
        }
        let live: Vec<(i64, i64)> = self
            .spec
            .assign(t)
            .into_iter()
            .filter(|&(_, end)| !self.expired(end, watermark))
            .collect();
        if live.is_empty() {
            self.late += 1;
            return Placed::Late;
        }
        let mut updated = false;
        let aggregates = &self.aggregates;
        let windows = self.windows.entry(key).or_default();
        for (start, end) in live {
            let window = windows
                .entry(start)
                .or_insert_with(|| fresh(aggregates, end));
            updated |= window.fired;
            add(aggregates, window, fields);
        }
        if updated {
            Placed::Updated
        } else {
            Placed::OnTime
        }
    }

    fn insert_session(
        &mut self,
        key: Vec<String>,
        t: i64,
        gap: i64,
        fields: &[Value],
        watermark: Option<i64>,
    ) -> Placed {
        let (mut start, mut end) = (t, t + gap);
        let sessions = self.windows.entry(key.clone()).or_default();
        let overlapping: Vec<i64> = sessions
            .iter()
            .filter(|(s, w)| **s < end && w.end > start)
            .map(|(s, _)| *s)
            .collect();
        for s in &overlapping {
            start = start.min(*s);
            end = end.max(sessions[s].end);
        }
        if self.expired(end, watermark) {
            self.late += 1;
            return Placed::Late;
        }
        let mut merged = fresh(&self.aggregates, end);
        let mut updated = false;
        let sessions = self.windows.get_mut(&key).expect("inserted above");
        let parts: Vec<(i64, Window)> = overlapping
            .iter()
            .map(|s| (*s, sessions.remove(s).expect("listed above")))
            .collect();
        for (s, part) in parts {
            if part.fired {
                if (s, part.end) == (start, end) {
                    // The record falls inside a fired session: the same window, updated.
                    merged.fired = true;
                    updated = true;
                } else {
                    self.retracted.push((key.clone(), s, part.end));
                }
            }
            for (acc, other) in merged.accs.iter_mut().zip(part.accs) {
                acc.merge(other);
            }
        }
        add(&self.aggregates, &mut merged, fields);
        self.windows.entry(key).or_default().insert(start, merged);
        if updated {
            Placed::Updated
        } else {
            Placed::OnTime
        }
    }

    /// Fires the windows `watermark` reached (and again those late records changed since), and
    /// drops the windows past their allowed lateness. Retractions first, then in order of window
    /// end, key and start.
    pub fn advance(&mut self, watermark: i64) -> Vec<Fired> {
        let mut out: Vec<Fired> = self
            .retracted
            .drain(..)
            .map(|(key, start, end)| Fired {
                key,
                start,
                end,
                emit: Emit::Retract,
                values: Vec::new(),
            })
            .collect();
        let lateness = self.lateness;
        for (key, windows) in &mut self.windows {
            windows.retain(|&start, w| {
                let emit = if !w.fired && watermark >= w.end - 1 {
                    Some(Emit::First)
                } else if w.fired && w.dirty {
                    Some(Emit::Update)
                } else {
                    None
                };
                if let Some(emit) = emit {
                    w.fired = true;
                    w.dirty = false;
                    out.push(Fired {
                        key: key.clone(),
                        start,
                        end: w.end,
                        emit,
                        values: w.accs.iter().map(Acc::result).collect(),
                    });
                }
                watermark < w.end - 1 + lateness
            });
        }
        self.windows.retain(|_, w| !w.is_empty());
        // Retractions first, so that a sink deletes before it writes the merged window.
        out.sort_by(|a, b| {
            let order = |f: &Fired| (f.emit != Emit::Retract, f.end, f.key.clone(), f.start);
            order(a).cmp(&order(b))
        });
        out
    }

    /// Records that came after all their windows were past the allowed lateness.
    pub fn late_records(&self) -> u64 {
        self.late
    }

    /// Windows held in memory.
    pub fn open_windows(&self) -> usize {
        self.windows.values().map(BTreeMap::len).sum()
    }

    /// The state to checkpoint with the offsets it covers.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            windows: self
                .windows
                .iter()
                .flat_map(|(key, ws)| ws.iter().map(|(s, w)| (key.clone(), *s, w.clone())))
                .collect(),
            retracted: self.retracted.clone(),
            late: self.late,
        }
    }

    /// Puts back the state of a checkpoint (after a restart).
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.windows.clear();
        for (key, start, window) in snapshot.windows {
            self.windows.entry(key).or_default().insert(start, window);
        }
        self.retracted = snapshot.retracted;
        self.late = snapshot.late;
    }
}

/// A window operator's state, serialisable.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    windows: Vec<(Vec<String>, i64, Window)>,
    retracted: Vec<(Vec<String>, i64, i64)>,
    late: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000;

    fn key(k: &str) -> Vec<String> {
        vec![k.to_string()]
    }

    fn n(x: f64) -> Value {
        Value::Number(x)
    }

    /// (key, start s, end s, emit, values) of the firings, for hand-checked expectations.
    fn brief(fired: &[Fired]) -> Vec<(String, i64, i64, Emit, Vec<Value>)> {
        fired
            .iter()
            .map(|f| {
                (
                    f.key.join(","),
                    f.start / S,
                    f.end / S,
                    f.emit,
                    f.values.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_restored_snapshot_carries_on_as_if_nothing_happened() {
        let new = || {
            WindowOperator::new(
                WindowSpec::Tumbling { size: 10 * S },
                vec![Aggregate::Sum(0)],
                0,
            )
        };
        let mut a = new();
        a.insert(key("k"), S, &[n(1.0)], None);
        a.insert(key("k"), 2 * S, &[n(2.0)], None);
        let saved = serde_json::to_string(&a.snapshot()).unwrap();
        let mut b = new();
        b.restore(serde_json::from_str(&saved).unwrap());
        b.insert(key("k"), 3 * S, &[n(4.0)], None);
        assert_eq!(
            brief(&b.advance(10 * S)),
            [("k".into(), 0, 10, Emit::First, vec![n(7.0)])]
        );
    }

    #[test]
    fn windows_a_record_belongs_to() {
        assert_eq!(WindowSpec::Tumbling { size: 10 }.assign(23), [(20, 30)]);
        assert_eq!(WindowSpec::Tumbling { size: 10 }.assign(-3), [(-10, 0)]);
        assert_eq!(
            WindowSpec::Sliding { size: 10, slide: 5 }.assign(7),
            [(0, 10), (5, 15)]
        );
        assert_eq!(
            WindowSpec::Sliding { size: 10, slide: 2 }.assign(10),
            [(2, 12), (4, 14), (6, 16), (8, 18), (10, 20)]
        );
        assert_eq!(WindowSpec::Session { gap: 5 }.assign(7), [(7, 12)]);
    }

    #[test]
    fn a_tumbling_window_fires_when_the_watermark_reaches_its_end_minus_one() {
        let mut op = WindowOperator::new(
            WindowSpec::Tumbling { size: 10 * S },
            vec![Aggregate::Count, Aggregate::Sum(0), Aggregate::Max(0)],
            0,
        );
        for (k, t, amount) in [("a", 1, 5.0), ("b", 2, 1.0), ("a", 9, 7.0), ("a", 12, 3.0)] {
            assert_eq!(op.insert(key(k), t * S, &[n(amount)], None), Placed::OnTime);
        }
        assert!(op.advance(10 * S - 2).is_empty(), "one ms short of end − 1");
        assert_eq!(
            brief(&op.advance(10 * S - 1)),
            [
                (
                    "a".into(),
                    0,
                    10,
                    Emit::First,
                    vec![n(2.0), n(12.0), n(7.0)]
                ),
                ("b".into(), 0, 10, Emit::First, vec![n(1.0), n(1.0), n(1.0)]),
            ]
        );
        // Without lateness the fired windows are gone; a record for them is late.
        assert_eq!(
            op.insert(key("a"), 3 * S, &[n(1.0)], Some(10 * S - 1)),
            Placed::Late
        );
        assert_eq!(op.late_records(), 1);
        assert_eq!(op.open_windows(), 1);
        assert_eq!(
            brief(&op.advance(20 * S - 1)),
            [(
                "a".into(),
                10,
                20,
                Emit::First,
                vec![n(1.0), n(3.0), n(3.0)]
            )]
        );
    }

    #[test]
    fn sliding_windows_count_a_record_in_each_window_it_falls_in() {
        // q5's shape: a 10 s window every 2 s, counting per auction.
        let mut op = WindowOperator::new(
            WindowSpec::Sliding {
                size: 10 * S,
                slide: 2 * S,
            },
            vec![Aggregate::Count],
            0,
        );
        op.insert(key("x"), 3 * S, &[], None); // windows starting -6, -4, -2, 0, 2
        op.insert(key("x"), 9 * S, &[], None); // 0, 2, 4, 6, 8
        let fired = brief(&op.advance(12 * S - 1));
        assert_eq!(
            fired,
            [
                ("x".into(), -6, 4, Emit::First, vec![n(1.0)]),
                ("x".into(), -4, 6, Emit::First, vec![n(1.0)]),
                ("x".into(), -2, 8, Emit::First, vec![n(1.0)]),
                ("x".into(), 0, 10, Emit::First, vec![n(2.0)]),
                ("x".into(), 2, 12, Emit::First, vec![n(2.0)]),
            ]
        );
        assert_eq!(op.open_windows(), 3, "[4,14), [6,16), [8,18) still open");
    }

    #[test]
    fn allowed_lateness_refires_then_late_records_are_handed_back() {
        let mut op = WindowOperator::new(
            WindowSpec::Tumbling { size: 10 * S },
            vec![Aggregate::Count],
            5 * S,
        );
        op.insert(key("a"), S, &[], None);
        assert_eq!(
            brief(&op.advance(10 * S - 1)),
            [("a".into(), 0, 10, Emit::First, vec![n(1.0)])]
        );
        // Within lateness (the window lives until the watermark reaches 10 s − 1 + 5 s).
        assert_eq!(
            op.insert(key("a"), 3 * S, &[], Some(12 * S)),
            Placed::Updated
        );
        assert_eq!(
            brief(&op.advance(12 * S)),
            [("a".into(), 0, 10, Emit::Update, vec![n(2.0)])]
        );
        assert!(op.advance(13 * S).is_empty(), "nothing new: no refire");
        // Past it: late, counted, and the window is gone.
        assert_eq!(
            op.insert(key("a"), 4 * S, &[], Some(15 * S - 1)),
            Placed::Late
        );
        assert_eq!(op.late_records(), 1);
        assert!(op.advance(15 * S - 1).is_empty());
        assert_eq!(op.open_windows(), 0);
    }

    #[test]
    fn sessions_merge_and_close_after_the_gap() {
        let mut op = WindowOperator::new(
            WindowSpec::Session { gap: 5 * S },
            vec![Aggregate::Count, Aggregate::Sum(0)],
            0,
        );
        op.insert(key("u"), S, &[n(1.0)], None); // [1, 6)
        op.insert(key("u"), 3 * S, &[n(2.0)], None); // merges: [1, 8)
        op.insert(key("u"), 20 * S, &[n(4.0)], None); // a new session [20, 25)
        op.insert(key("v"), 2 * S, &[n(8.0)], None); // another key: [2, 7)
        assert_eq!(
            brief(&op.advance(8 * S - 1)),
            [
                ("v".into(), 2, 7, Emit::First, vec![n(1.0), n(8.0)]),
                ("u".into(), 1, 8, Emit::First, vec![n(2.0), n(3.0)]),
            ]
        );
        assert_eq!(op.open_windows(), 1);
        assert_eq!(
            brief(&op.advance(25 * S - 1)),
            [("u".into(), 20, 25, Emit::First, vec![n(1.0), n(4.0)])]
        );
    }

    #[test]
    fn a_late_record_bridging_fired_sessions_retracts_them_for_the_merged_one() {
        let mut op = WindowOperator::new(
            WindowSpec::Session { gap: 5 * S },
            vec![Aggregate::Count],
            10 * S,
        );
        op.insert(key("u"), S, &[], None); // [1, 6)
        op.insert(key("u"), 8 * S, &[], None); // [8, 13)
        assert_eq!(op.advance(13 * S).len(), 2);
        // t = 5 s: [5, 10) touches both; within lateness of the merged [1, 13).
        assert_eq!(
            op.insert(key("u"), 5 * S, &[], Some(13 * S)),
            Placed::OnTime
        );
        assert_eq!(
            brief(&op.advance(13 * S)),
            [
                ("u".into(), 1, 6, Emit::Retract, vec![]),
                ("u".into(), 8, 13, Emit::Retract, vec![]),
                ("u".into(), 1, 13, Emit::First, vec![n(3.0)]),
            ]
        );
        // Inside the merged session, later but within lateness: the same window, updated.
        assert_eq!(
            op.insert(key("u"), 2 * S, &[], Some(14 * S)),
            Placed::Updated
        );
        assert_eq!(
            brief(&op.advance(14 * S)),
            [("u".into(), 1, 13, Emit::Update, vec![n(4.0)])]
        );
    }
}
