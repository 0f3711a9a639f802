//! Nexmark-shaped windowed aggregation, in process, for bench/stream: bids (one per ms of event
//! time, on 1,000 auctions) through q5's shape (a 10 s window every 2 s, counting bids per
//! auction) and q7's shape (a 10 s tumbling window, the highest price). The watermark follows
//! the bids (in order, bound 0) and is advanced every 1,000 bids.
//!
//! Usage: cargo run --release -p sluice-stream --example nexmark_windows -- [EVENTS]
//! Prints one JSON line per query: events, seconds, events/s and a checksum of the results.

use std::time::Instant;

use sluice_stream::{Aggregate, Value, WindowOperator, WindowSpec};

/// The same generator as bench/stream/bytewax_windows.py: a 64-bit LCG.
struct Bids {
    state: u64,
}

impl Bids {
    fn next(&mut self) -> u64 {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.state >> 33
    }
}

fn run(name: &str, events: i64, spec: WindowSpec, aggregate: Aggregate, keyed: bool) {
    let mut bids = Bids { state: 42 };
    let mut op = WindowOperator::new(spec, vec![aggregate], 0);
    let (mut fired, mut checksum) = (0u64, 0f64);
    let mut collect = |out: Vec<sluice_stream::Fired>| {
        for f in out {
            fired += 1;
            if let Value::Number(x) = f.values[0] {
                checksum += x;
            }
        }
    };
    let started = Instant::now();
    // Event time starts at 10 s, so that every window of every bid starts at or after 0 (where
    // Bytewax aligns its windows).
    for t in 10_000..events + 10_000 {
        let auction = bids.next() % 1_000;
        let price = (bids.next() % 10_000) as f64;
        let key = if keyed {
            vec![auction.to_string()]
        } else {
            Vec::new()
        };
        op.insert(key, t, &[Value::Number(price)], Some(t - 1));
        if t % 1_000 == 999 {
            collect(op.advance(t));
        }
    }
    collect(op.advance(i64::MAX / 2));
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"engine\": \"sluice\", \"query\": \"{name}\", \"events\": {events}, \"seconds\": {seconds:.3}, \"events_per_s\": {:.0}, \"windows\": {fired}, \"checksum\": {checksum}}}",
        events as f64 / seconds
    );
}

fn main() {
    let events: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    run(
        "q5",
        events,
        WindowSpec::Sliding {
            size: 10_000,
            slide: 2_000,
        },
        Aggregate::Count,
        true,
    );
    run(
        "q7",
        events,
        WindowSpec::Tumbling { size: 10_000 },
        Aggregate::Max(0),
        false,
    );
}
