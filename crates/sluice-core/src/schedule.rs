//! Schedules and data intervals, with Airflow's semantics.
//!
//! A run covers the data interval `[start, end)` between two consecutive fire times of the cron
//! expression, evaluated in the pipeline's time zone, and may start once `end` has passed. The
//! run's `logical_date` is the interval start. All instants are kept in UTC; the time zone only
//! matters when the cron expression is evaluated and when a user names a local date.
//!
//! Daylight saving time follows cron (and croner): a fixed-time schedule whose local time falls
//! in a spring-forward gap fires at the first valid time after the gap; a local time repeated
//! by a fall-back transition fires once. Interval schedules (`@hourly`, `*/15 * * * *`) skip the
//! gap and fire in both halves of the overlap, as absolute time dictates.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::Serialize;

/// When a pipeline runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A 5-field cron expression (presets are translated to one).
    Cron { expr: String, cron: Box<Cron> },
    /// `@once`: a single run whose data interval is the start date itself.
    Once,
    /// `none`: runs only when triggered (`sluice run`, `sluice backfill`).
    Manual,
}

impl Schedule {
    /// Parses `@daily`, `@hourly`, …, `@once`, `none`, or a 5-field cron expression.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let t = text.trim();
        let expr = match t.to_ascii_lowercase().as_str() {
            "none" | "null" | "" | "@none" => return Ok(Schedule::Manual),
            "@once" => return Ok(Schedule::Once),
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@quarterly" => "0 0 1 */3 *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other if other.starts_with('@') => {
                return Err(format!(
                    "unknown preset `{t}`; use @hourly, @daily, @weekly, @monthly, @quarterly, @yearly, @once or none"
                ));
            }
            _ => t,
        };
        let fields = expr.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "`{t}` has {fields} fields; a cron expression has 5: minute hour day-of-month month day-of-week"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| format!("`{t}` is not a valid cron expression: {e}"))?;
        Ok(Schedule::Cron {
            expr: expr.to_string(),
            cron: Box::new(cron),
        })
    }

    /// The schedule in words, for people.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron { cron, .. } => cron.describe(),
            Schedule::Once => "once".into(),
            Schedule::Manual => "only when triggered".into(),
        }
    }
}

/// The data interval `[start, end)` a run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DataInterval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl DataInterval {
    /// The logical date of the run (Airflow's `logical_date`).
    pub fn logical_date(&self) -> DateTime<Utc> {
        self.start
    }
}

/// A schedule bound to a time zone and a start/end date: the source of data intervals.
#[derive(Debug, Clone)]
pub struct Timetable {
    pub schedule: Schedule,
    pub tz: Tz,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// Upper bound on intervals enumerated at once, so that `* * * * *` over ten years cannot
/// exhaust memory by accident.
pub const MAX_INTERVALS: usize = 100_000;

/// A range holds more intervals than a caller allows at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {limit} intervals")]
pub struct TooManyIntervals {
    pub limit: usize,
}

/// A logical date as commands and the API take it: `YYYY-MM-DD`, in years 1 to 9999 (Python's
/// and so Airflow's range; a day after it always exists).
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date; write YYYY-MM-DD, e.g. 2024-01-01"))?;
    if !(1..=9999).contains(&date.year()) {
        return Err(format!(
            "`{text}` is out of range; dates run from 0001-01-01 to 9999-12-31"
        ));
    }
    Ok(date)
}

impl Timetable {
    fn next_fire(
        &self,
        cron: &Cron,
        after: DateTime<Utc>,
        inclusive: bool,
    ) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        cron.find_next_occurrence(&local, inclusive)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    fn prev_fire(
        &self,
        cron: &Cron,
        before: DateTime<Utc>,
        inclusive: bool,
    ) -> Option<DateTime<Utc>> {
        let local = before.with_timezone(&self.tz);
        cron.find_previous_occurrence(&local, inclusive)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    fn in_bounds(&self, interval: &DataInterval) -> bool {
        interval.start >= self.start && self.end.is_none_or(|end| interval.start <= end)
    }

    /// The interval that starts at the first fire time at or after `t`.
    fn interval_from(&self, cron: &Cron, t: DateTime<Utc>) -> Option<DataInterval> {
        let start = self.next_fire(cron, t, true)?;
        let end = self.next_fire(cron, start, false)?;
        Some(DataInterval { start, end })
    }

    /// The first interval of the pipeline.
    pub fn first(&self) -> Option<DataInterval> {
        match &self.schedule {
            Schedule::Cron { cron, .. } => self
                .interval_from(cron, self.start)
                .filter(|i| self.in_bounds(i)),
            Schedule::Once => Some(DataInterval {
                start: self.start,
                end: self.start,
            }),
            Schedule::Manual => None,
        }
    }

    /// The interval after `interval`.
    pub fn next(&self, interval: &DataInterval) -> Option<DataInterval> {
        match &self.schedule {
            Schedule::Cron { cron, .. } => {
                let end = self.next_fire(cron, interval.end, false)?;
                let next = DataInterval {
                    start: interval.end,
                    end,
                };
                self.in_bounds(&next).then_some(next)
            }
            _ => None,
        }
    }

    /// The interval before `interval` (ignoring the start date, as Airflow's `prev_ds` does).
    pub fn prev(&self, interval: &DataInterval) -> Option<DataInterval> {
        match &self.schedule {
            Schedule::Cron { cron, .. } => {
                let start = self.prev_fire(cron, interval.start, false)?;
                Some(DataInterval {
                    start,
                    end: interval.start,
                })
            }
            _ => None,
        }
    }

    /// The run for a local date `date` (what `--date` names): the first interval whose logical
    /// date falls on that day in the pipeline's time zone. For manual and `@once` pipelines it is
    /// local midnight, as a zero-length interval (Airflow's manual runs).
    pub fn interval_for_date(&self, date: NaiveDate) -> Result<DataInterval, String> {
        let day_start = local_midnight(&self.tz, date);
        let next_day = local_midnight(&self.tz, date.succ_opt().unwrap_or(NaiveDate::MAX));
        match &self.schedule {
            Schedule::Cron { cron, .. } => {
                let interval = self
                    .interval_from(cron, day_start)
                    .filter(|i| i.start < next_day)
                    .ok_or_else(|| {
                        format!(
                            "no scheduled interval starts on {date} ({}, {})",
                            self.schedule.describe(),
                            self.tz
                        )
                    })?;
                if interval.start < self.start {
                    return Err(format!(
                        "{date} is before the pipeline's start_date ({})",
                        self.start
                            .with_timezone(&self.tz)
                            .format("%Y-%m-%d %H:%M %Z")
                    ));
                }
                if let Some(end) = self.end.filter(|end| interval.start > *end) {
                    return Err(format!(
                        "{date} is after the pipeline's end_date ({})",
                        end.with_timezone(&self.tz).format("%Y-%m-%d %H:%M %Z")
                    ));
                }
                Ok(interval)
            }
            Schedule::Once | Schedule::Manual => Ok(DataInterval {
                start: day_start,
                end: day_start,
            }),
        }
    }

    /// Every interval whose logical date falls on a local day in `[from, to]` (a backfill); an
    /// error when there are more than `limit`, found without enumerating past it.
    pub fn intervals_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
    ) -> Result<Vec<DataInterval>, TooManyIntervals> {
        let lo = local_midnight(&self.tz, from);
        let hi = local_midnight(&self.tz, to.succ_opt().unwrap_or(NaiveDate::MAX));
        let mut out = Vec::new();
        let mut push = |interval: DataInterval| {
            if out.len() >= limit {
                return Err(TooManyIntervals { limit });
            }
            out.push(interval);
            Ok(())
        };
        match &self.schedule {
            Schedule::Cron { cron, .. } => {
                let mut cur = self.interval_from(cron, lo.max(self.start));
                while let Some(interval) = cur {
                    if interval.start >= hi || !self.in_bounds(&interval) {
                        break;
                    }
                    push(interval)?;
                    cur = self.next(&interval);
                }
            }
            Schedule::Once => {
                if let Some(i) = self.first().filter(|i| i.start >= lo && i.start < hi) {
                    push(i)?;
                }
            }
            Schedule::Manual => {
                for day in from.iter_days().take_while(|d| *d <= to) {
                    let t = local_midnight(&self.tz, day);
                    push(DataInterval { start: t, end: t })?;
                }
            }
        }
        Ok(out)
    }

    /// The latest interval that has ended by `now`.
    pub fn latest_complete(&self, now: DateTime<Utc>) -> Option<DataInterval> {
        match &self.schedule {
            Schedule::Cron { cron, .. } => {
                let end = self.prev_fire(cron, now, true)?;
                let start = self.prev_fire(cron, end, false)?;
                let mut interval = DataInterval { start, end };
                if let Some(last_end) = self.end.filter(|e| interval.start > *e) {
                    // The schedule has ended: its last interval is the one starting at or before end_date.
                    let last_start = self.prev_fire(cron, last_end, true)?;
                    interval = self.interval_from(cron, last_start)?;
                }
                self.in_bounds(&interval).then_some(interval)
            }
            Schedule::Once => self.first().filter(|i| i.end <= now),
            Schedule::Manual => None,
        }
    }

    /// The intervals a scheduler should create at `now`, given the latest interval it already
    /// created. With `catchup`, every missed interval since then (or since the start date);
    /// without, only the latest complete one, as Airflow does.
    pub fn due(
        &self,
        last_created: Option<&DataInterval>,
        now: DateTime<Utc>,
        catchup: bool,
    ) -> Vec<DataInterval> {
        let Some(latest) = self.latest_complete(now) else {
            return Vec::new();
        };
        if last_created.is_some_and(|last| last.start >= latest.start) {
            return Vec::new();
        }
        if !catchup {
            return vec![latest];
        }
        let mut out = Vec::new();
        let mut cur = match last_created {
            Some(last) => self.next(last),
            None => self.first(),
        };
        while let Some(interval) = cur {
            if interval.start > latest.start || out.len() >= MAX_INTERVALS {
                break;
            }
            out.push(interval);
            cur = self.next(&interval);
        }
        out
    }
}

/// Local midnight of `date` in `tz` (or the first valid instant of that day when midnight falls
/// in a DST gap, as in America/Santiago or Asia/Beirut).
pub fn local_midnight(tz: &Tz, date: NaiveDate) -> DateTime<Utc> {
    local_to_utc(tz, date.and_time(NaiveTime::MIN))
}

/// Resolves a local wall time: the earlier instant when it is repeated, the first instant after
/// the gap when it does not exist.
pub fn local_to_utc(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut t = local;
    for _ in 0..(4 * 60) {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc);
        }
        t += Duration::minutes(1);
    }
    Utc.from_utc_datetime(&local)
}

/// Parses a time zone name (IANA, such as `Europe/Berlin`, or `UTC`).
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name.trim()).map_err(|_| format!("`{name}` is not an IANA time zone"))
}

/// Parses `2024-01-01`, `2024-01-01T06:00`, `2024-01-01 06:00:00` (local to `tz`) or an RFC 3339
/// instant with an offset.
pub fn parse_date_or_datetime(text: &str, tz: &Tz) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(local_midnight(tz, d));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(local_to_utc(tz, dt));
        }
    }
    Err(format!(
        "`{text}` is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tt(cron: &str, tz: &str, start: &str) -> Timetable {
        let tz = parse_timezone(tz).unwrap();
        Timetable {
            schedule: Schedule::parse(cron).unwrap(),
            tz,
            start: parse_date_or_datetime(start, &tz).unwrap(),
            end: None,
        }
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Local wall-clock start times of intervals, for readable assertions.
    fn local_starts(t: &Timetable, from: &str, to: &str) -> Vec<String> {
        t.intervals_between(d(from), d(to), MAX_INTERVALS)
            .unwrap()
            .iter()
            .map(|i| {
                i.start
                    .with_timezone(&t.tz)
                    .format("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn cron_table() {
        // (schedule, time zone, start_date, --date, expected interval start, expected end) in UTC
        let cases = [
            (
                "0 6 * * *",
                "UTC",
                "2024-01-01",
                "2024-01-01",
                "2024-01-01T06:00:00Z",
                "2024-01-02T06:00:00Z",
            ),
            (
                "@daily",
                "UTC",
                "2024-01-01",
                "2024-02-29",
                "2024-02-29T00:00:00Z",
                "2024-03-01T00:00:00Z",
            ),
            (
                "@monthly",
                "UTC",
                "2024-01-01",
                "2024-01-01",
                "2024-01-01T00:00:00Z",
                "2024-02-01T00:00:00Z",
            ),
            (
                "0 0 31 * *",
                "UTC",
                "2024-01-01",
                "2024-01-31",
                "2024-01-31T00:00:00Z",
                "2024-03-31T00:00:00Z",
            ),
            (
                "0 0 29 2 *",
                "UTC",
                "2020-01-01",
                "2024-02-29",
                "2024-02-29T00:00:00Z",
                "2028-02-29T00:00:00Z",
            ),
            (
                "@yearly",
                "UTC",
                "2020-01-01",
                "2024-01-01",
                "2024-01-01T00:00:00Z",
                "2025-01-01T00:00:00Z",
            ),
            (
                "@weekly",
                "UTC",
                "2024-01-01",
                "2024-01-07",
                "2024-01-07T00:00:00Z",
                "2024-01-14T00:00:00Z",
            ),
            (
                "0 6 * * *",
                "Europe/Berlin",
                "2024-01-01",
                "2024-01-15",
                "2024-01-15T05:00:00Z",
                "2024-01-16T05:00:00Z",
            ),
            (
                "0 6 * * *",
                "America/New_York",
                "2024-07-01",
                "2024-07-04",
                "2024-07-04T10:00:00Z",
                "2024-07-05T10:00:00Z",
            ),
        ];
        for (cron, tz, start, date, want_start, want_end) in cases {
            let t = tt(cron, tz, start);
            let got = t.interval_for_date(d(date)).unwrap();
            assert_eq!(
                (got.start, got.end),
                (utc(want_start), utc(want_end)),
                "schedule {cron} in {tz}, date {date}"
            );
        }
    }

    #[test]
    fn month_end_schedule_skips_short_months() {
        let t = tt("0 0 31 * *", "UTC", "2024-01-01");
        let starts = local_starts(&t, "2024-01-01", "2024-12-31");
        assert_eq!(starts.len(), 7, "{starts:?}");
        assert!(starts.iter().all(|s| s.contains("-31 ")), "{starts:?}");
    }

    #[test]
    fn daily_runs_once_per_local_day_across_berlin_transitions() {
        for cron in ["0 0 * * *", "30 2 * * *", "0 6 * * *"] {
            let t = tt(cron, "Europe/Berlin", "2024-01-01");
            // Spring forward on 2024-03-31 (02:00 → 03:00), fall back on 2024-10-27 (03:00 → 02:00).
            for (from, to) in [("2024-03-29", "2024-04-02"), ("2024-10-25", "2024-10-29")] {
                let intervals = t.intervals_between(d(from), d(to), MAX_INTERVALS).unwrap();
                assert_eq!(intervals.len(), 5, "{cron} {from}..{to}: {intervals:?}");
                let days: Vec<_> = intervals
                    .iter()
                    .map(|i| i.start.with_timezone(&t.tz).date_naive())
                    .collect();
                let mut unique = days.clone();
                unique.dedup();
                assert_eq!(days, unique, "one run per local day for {cron}");
                for w in intervals.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "intervals are contiguous");
                }
            }
        }
    }

    #[test]
    fn skipped_local_time_runs_at_next_valid_time() {
        // 02:30 does not exist in Berlin on 2024-03-31: the run fires at 03:00 CEST.
        let t = tt("30 2 * * *", "Europe/Berlin", "2024-01-01");
        let i = t.interval_for_date(d("2024-03-31")).unwrap();
        assert_eq!(i.start, utc("2024-03-31T01:00:00Z"));
        assert_eq!(i.end, utc("2024-04-01T00:30:00Z"));
        // The day before, the interval is 23 hours long (it spans the lost hour).
        let before = t.interval_for_date(d("2024-03-30")).unwrap();
        assert_eq!(before.end, i.start);

        let ny = tt("30 2 * * *", "America/New_York", "2024-01-01");
        let i = ny.interval_for_date(d("2024-03-10")).unwrap();
        assert_eq!(i.start, utc("2024-03-10T07:00:00Z"), "03:00 EDT");
    }

    #[test]
    fn repeated_local_time_runs_once() {
        // 01:30 happens twice in New York on 2024-11-03: the run fires once, at the first one (EDT).
        let t = tt("30 1 * * *", "America/New_York", "2024-01-01");
        let runs = t
            .intervals_between(d("2024-11-02"), d("2024-11-04"), MAX_INTERVALS)
            .unwrap();
        assert_eq!(runs.len(), 3, "{runs:?}");
        assert_eq!(runs[1].start, utc("2024-11-03T05:30:00Z"));
        assert_eq!(runs[2].start, utc("2024-11-04T06:30:00Z"));
        // Berlin fall back: 02:30 twice on 2024-10-27.
        let b = tt("30 2 * * *", "Europe/Berlin", "2024-01-01");
        let runs = b
            .intervals_between(d("2024-10-27"), d("2024-10-27"), MAX_INTERVALS)
            .unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].start, utc("2024-10-27T00:30:00Z"));
    }

    #[test]
    fn hourly_follows_absolute_time_across_dst() {
        let t = tt("@hourly", "Europe/Berlin", "2024-01-01");
        // The local day of spring forward has 23 hours, the day of fall back 25.
        assert_eq!(
            t.intervals_between(d("2024-03-31"), d("2024-03-31"), MAX_INTERVALS)
                .unwrap()
                .len(),
            23
        );
        assert_eq!(
            t.intervals_between(d("2024-10-27"), d("2024-10-27"), MAX_INTERVALS)
                .unwrap()
                .len(),
            25
        );
        let ny = tt("@hourly", "America/New_York", "2024-01-01");
        assert_eq!(
            ny.intervals_between(d("2024-03-10"), d("2024-03-10"), MAX_INTERVALS)
                .unwrap()
                .len(),
            23
        );
        assert_eq!(
            ny.intervals_between(d("2024-11-03"), d("2024-11-03"), MAX_INTERVALS)
                .unwrap()
                .len(),
            25
        );
    }

    #[test]
    fn leap_day_and_year_boundaries() {
        let t = tt("@daily", "UTC", "2024-02-27");
        let starts = local_starts(&t, "2024-02-27", "2024-03-01");
        assert_eq!(
            starts,
            vec![
                "2024-02-27 00:00 UTC",
                "2024-02-28 00:00 UTC",
                "2024-02-29 00:00 UTC",
                "2024-03-01 00:00 UTC"
            ]
        );
        let t = tt("@daily", "UTC", "2023-02-27");
        assert_eq!(
            local_starts(&t, "2023-02-27", "2023-03-01").len(),
            3,
            "2023 has no Feb 29"
        );
        let t = tt("0 23 * * *", "UTC", "2023-12-30");
        let i = t.interval_for_date(d("2023-12-31")).unwrap();
        assert_eq!(i.end, utc("2024-01-01T23:00:00Z"));
    }

    #[test]
    fn catchup_creates_missed_intervals_or_only_the_latest() {
        let t = tt("0 6 * * *", "UTC", "2024-01-01");
        let now = utc("2024-01-05T07:00:00Z");
        let all = t.due(None, now, true);
        assert_eq!(all.len(), 4, "Jan 1..4 have ended by Jan 5 07:00");
        assert_eq!(all[0].start, utc("2024-01-01T06:00:00Z"));
        assert_eq!(all[3].end, utc("2024-01-05T06:00:00Z"));
        let latest = t.due(None, now, false);
        assert_eq!(latest, vec![all[3]]);
        // After creating Jan 2, catchup resumes from Jan 3.
        let rest = t.due(Some(&all[1]), now, true);
        assert_eq!(rest, all[2..].to_vec());
        // Nothing is due once the latest interval exists.
        assert!(t.due(Some(&all[3]), now, true).is_empty());
        // An interval that has not ended is never due.
        assert!(t.due(None, utc("2024-01-01T12:00:00Z"), true).is_empty());
    }

    #[test]
    fn start_and_end_dates_bound_intervals() {
        let mut t = tt("@daily", "UTC", "2024-01-10");
        t.end = Some(utc("2024-01-12T00:00:00Z"));
        let starts = local_starts(&t, "2024-01-01", "2024-01-31");
        assert_eq!(
            starts,
            vec![
                "2024-01-10 00:00 UTC",
                "2024-01-11 00:00 UTC",
                "2024-01-12 00:00 UTC"
            ]
        );
        assert!(
            t.interval_for_date(d("2024-01-09"))
                .unwrap_err()
                .contains("before")
        );
        assert!(
            t.interval_for_date(d("2024-01-13"))
                .unwrap_err()
                .contains("after")
        );
        let latest = t.latest_complete(utc("2024-06-01T00:00:00Z")).unwrap();
        assert_eq!(latest.start, utc("2024-01-12T00:00:00Z"));
    }

    #[test]
    fn prev_and_next() {
        let t = tt("0 6 * * *", "UTC", "2024-01-01");
        let i = t.interval_for_date(d("2024-03-01")).unwrap();
        assert_eq!(t.prev(&i).unwrap().start, utc("2024-02-29T06:00:00Z"));
        assert_eq!(t.next(&i).unwrap().start, utc("2024-03-02T06:00:00Z"));
    }

    #[test]
    fn bad_schedules_are_explained() {
        assert!(Schedule::parse("0 6 * *").unwrap_err().contains("4 fields"));
        assert!(Schedule::parse("61 6 * * *").is_err());
        assert!(
            Schedule::parse("@fortnightly")
                .unwrap_err()
                .contains("unknown preset")
        );
        assert!(parse_timezone("Europe/Atlantis").is_err());
        assert!(matches!(Schedule::parse("none").unwrap(), Schedule::Manual));
        assert!(matches!(Schedule::parse("@once").unwrap(), Schedule::Once));
    }

    #[test]
    fn a_range_past_the_limit_is_refused_and_dates_stay_in_range() {
        let hourly = tt("@hourly", "UTC", "2000-01-01");
        // Centuries of hours: refused after the limit, not enumerated.
        assert_eq!(
            hourly.intervals_between(d("2000-01-01"), d("9999-12-31"), 10_000),
            Err(TooManyIntervals { limit: 10_000 })
        );
        assert_eq!(
            hourly
                .intervals_between(d("2000-01-01"), d("2000-01-02"), 48)
                .unwrap()
                .len(),
            48
        );
        assert!(
            hourly
                .intervals_between(d("2000-01-01"), d("2000-01-02"), 47)
                .is_err()
        );
        // The last day there is has no day after it: an answer (here an error), not a panic.
        let _ = hourly.interval_for_date(NaiveDate::MAX);
        let _ = hourly.intervals_between(NaiveDate::MAX, NaiveDate::MAX, 10);
        assert!(parse_date("+262142-12-31").is_err());
        assert!(
            parse_date("0000-06-01")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(parse_date("2024-02-30").unwrap_err().contains("not a date"));
        assert_eq!(parse_date("9999-12-31").unwrap(), d("9999-12-31"));
    }

    #[test]
    fn manual_and_once() {
        let t = tt("none", "UTC", "2024-01-01");
        let i = t.interval_for_date(d("2024-05-05")).unwrap();
        assert_eq!(i.start, i.end);
        assert_eq!(
            t.intervals_between(d("2024-05-01"), d("2024-05-03"), MAX_INTERVALS)
                .unwrap()
                .len(),
            3
        );
        assert!(t.due(None, utc("2025-01-01T00:00:00Z"), true).is_empty());
        let once = tt("@once", "UTC", "2024-01-01");
        assert_eq!(once.due(None, utc("2025-01-01T00:00:00Z"), true).len(), 1);
        let first = once.first().unwrap();
        assert!(
            once.due(Some(&first), utc("2025-01-01T00:00:00Z"), true)
                .is_empty()
        );
    }
}
