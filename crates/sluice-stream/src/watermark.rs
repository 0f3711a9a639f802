//! Watermarks per partition, and the stream's watermark: the minimum over the partitions that
//! are not idle.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Clock {
    /// Greatest event time seen on the partition.
    max_event_time: Option<i64>,
    /// Processing time of the partition's last record (or of its assignment).
    last_active: i64,
}

/// Serialisable: checkpointed beside the window state (processing times are reset on restore).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Watermarks {
    out_of_orderness: i64,
    /// A partition without records for this long stops holding the watermark back.
    idle_after: Option<i64>,
    partitions: BTreeMap<i32, Clock>,
    /// The last watermark handed out: the stream's watermark never goes back.
    emitted: Option<i64>,
}

impl Watermarks {
    pub fn new(max_out_of_orderness_ms: i64, idle_after_ms: Option<i64>) -> Watermarks {
        Watermarks {
            out_of_orderness: max_out_of_orderness_ms,
            idle_after: idle_after_ms,
            partitions: BTreeMap::new(),
            emitted: None,
        }
    }

    /// The partitions this process now reads (after a rebalance). A newly assigned partition
    /// holds the watermark back until it has records or turns idle. A revoked one still
    /// counts: another process of the group reads it now and shares this state, and the
    /// watermark is the minimum over all the stream's partitions (as Flink's over all inputs).
    pub fn assign(&mut self, partitions: &[i32], now: i64) {
        for &p in partitions {
            self.partitions.entry(p).or_insert(Clock {
                max_event_time: None,
                last_active: now,
            });
        }
    }

    /// A record of `partition` with event time `event_time`, read at processing time `now`.
    pub fn observe(&mut self, partition: i32, event_time: i64, now: i64) {
        let clock = self.partitions.entry(partition).or_insert(Clock {
            max_event_time: None,
            last_active: now,
        });
        clock.max_event_time = Some(
            clock
                .max_event_time
                .map_or(event_time, |m| m.max(event_time)),
        );
        clock.last_active = now;
    }

    /// The partitions tracked (assigned or seen).
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.partitions.keys().copied()
    }

    /// A partition's own watermark.
    pub fn partition(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .and_then(|c| c.max_event_time)
            .map(|m| m - self.out_of_orderness - 1)
    }

    fn idle(&self, clock: &Clock, now: i64) -> bool {
        self.idle_after
            .is_some_and(|after| now - clock.last_active >= after)
    }

    /// The stream's watermark at processing time `now`: the minimum over active partitions,
    /// never less than what was handed out before. None until every active partition has a
    /// record; unchanged while every partition is idle.
    pub fn current(&mut self, now: i64) -> Option<i64> {
        let mut min: Option<i64> = None;
        let mut any_active = false;
        for clock in self.partitions.values() {
            if self.idle(clock, now) {
                continue;
            }
            any_active = true;
            match clock.max_event_time {
                None => return self.emitted,
                Some(m) => {
                    let w = m - self.out_of_orderness - 1;
                    min = Some(min.map_or(w, |x: i64| x.min(w)));
                }
            }
        }
        if any_active && let Some(w) = min {
            self.emitted = Some(self.emitted.map_or(w, |e| e.max(w)));
        }
        self.emitted
    }

    /// Partitions that are idle at `now`.
    pub fn idle_partitions(&self, now: i64) -> Vec<i32> {
        self.partitions
            .iter()
            .filter(|(_, c)| self.idle(c, now))
            .map(|(p, _)| *p)
            .collect()
    }

    /// After a restore from a checkpoint: partitions count as active from `now`, so that none
    /// looks idle for the time the process was down.
    pub fn resume(&mut self, now: i64) {
        for clock in self.partitions.values_mut() {
            clock.last_active = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_minimum_over_partitions_minus_the_bound_and_one_ms() {
        let mut w = Watermarks::new(30_000, None);
        w.assign(&[0, 1], 0);
        w.observe(0, 100_000, 1);
        // Partition 1 has no record yet: it holds the watermark back.
        assert_eq!(w.current(2), None);
        w.observe(1, 70_000, 3);
        assert_eq!(w.partition(0), Some(69_999));
        assert_eq!(w.partition(1), Some(39_999));
        assert_eq!(w.current(4), Some(39_999));
        // Out-of-order records do not move a partition's watermark back.
        w.observe(1, 50_000, 5);
        assert_eq!(w.current(6), Some(39_999));
        w.observe(1, 120_000, 7);
        assert_eq!(w.current(8), Some(69_999));
    }

    #[test]
    fn idle_partitions_stop_holding_the_watermark_back_and_it_never_goes_back() {
        let mut w = Watermarks::new(0, Some(60_000));
        w.assign(&[0, 1, 2], 0);
        w.observe(0, 10_000, 1_000);
        w.observe(1, 5_000, 1_000);
        // Partition 2 never sends: idle after a minute of processing time.
        assert_eq!(w.current(30_000), None);
        assert_eq!(w.current(60_000), Some(4_999));
        assert_eq!(w.idle_partitions(60_000), [2]);
        // Partition 0 keeps sending; partition 1 goes quiet too: partition 0 alone decides.
        w.observe(0, 10_000, 50_000);
        assert_eq!(w.current(61_000), Some(9_999));
        assert_eq!(w.idle_partitions(61_000), [1, 2]);
        // Partition 1 wakes up behind: the watermark does not go back.
        w.observe(1, 6_000, 62_000);
        assert_eq!(w.current(62_000), Some(9_999));
        // Every partition idle: the watermark stays where it was.
        assert_eq!(w.current(1_000_000), Some(9_999));
    }

    #[test]
    fn a_rebalance_keeps_revoked_partitions_and_waits_for_new_ones() {
        let mut w = Watermarks::new(0, Some(1_000));
        w.assign(&[0, 1], 0);
        w.observe(0, 1_000, 1);
        w.observe(1, 500, 1);
        assert_eq!(w.current(2), Some(499));
        w.assign(&[0, 2], 3);
        // Partition 2 has nothing yet; the watermark stays where it was.
        assert_eq!(w.current(4), Some(499));
        w.observe(2, 2_000, 5);
        // Partition 1 went to another process: it still holds the watermark back …
        assert_eq!(w.current(6), Some(499));
        // … until it turns idle (nobody's records for `idle_after`).
        w.observe(0, 1_000, 600);
        w.observe(2, 2_000, 600);
        assert_eq!(w.current(1_001), Some(999));
    }
}
