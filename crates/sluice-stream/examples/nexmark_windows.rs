//! Nexmark-shaped windowed aggregation, in process, for bench/stream: bids (one per ms of event
//! time, on 1,000 auctions) through q5's shape (a 10 s window every 2 s, counting bids per
//! auction) and q7's shape (a 10 s tumbling window, the highest price). The watermark follows
//! the bids (in order, bound 0) and is advanced every 1,000 bids.
//!
//! Usage: cargo run --release -p sluice-stream --example nexmark_windows -- [EVENTS] [QUERIES]
//! (QUERIES: `q5,q7` by default). Prints one JSON line per query: events, the seconds the window
//! operator took over bids already generated in memory (as Bytewax's and PyFlink's sides time
//! their engines, not their generators), events/s, windows and a checksum of the results.

use std::time::Instant;

use sluice_stream::{Aggregate, Value, WindowOperator, WindowSpec};

/// The same generator as bench/stream/nexmark_bids.py: a 64-bit LCG; (event time ms, auction,
/// price) from 10 s on, so that every window of every bid starts at or after 0 (where Bytewax
/// aligns its windows).
fn bids(events: i64) -> Vec<(i64, u64, f64)> {
    let mut state = 42u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    (10_000..events + 10_000)
        .map(|t| {
            let auction = next() % 1_000;
            let price = (next() % 10_000) as f64;
            (t, auction, price)
        })
        .collect()
}

fn run(name: &str, bids: &[(i64, u64, f64)], spec: WindowSpec, aggregate: Aggregate, keyed: bool) {
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
    for &(t, auction, price) in bids {
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
    let events = bids.len();
    println!(
        "{{\"engine\": \"sluice\", \"query\": \"{name}\", \"events\": {events}, \"seconds\": {seconds:.3}, \"events_per_s\": {:.0}, \"windows\": {fired}, \"checksum\": {checksum}}}",
        events as f64 / seconds
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: i64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let queries = args.next().unwrap_or_else(|| "q5,q7".into());
    let bids = bids(events);
    for query in queries.split(',') {
        match query {
            "q5" => run(
                "q5",
                &bids,
                WindowSpec::Sliding {
                    size: 10_000,
                    slide: 2_000,
                },
                Aggregate::Count,
                true,
            ),
            "q7" => run(
                "q7",
                &bids,
                WindowSpec::Tumbling { size: 10_000 },
                Aggregate::Max(0),
                false,
            ),
            other => {
                eprintln!("nexmark_windows: unknown query `{other}` (q5 or q7)");
                std::process::exit(2);
            }
        }
    }
}
