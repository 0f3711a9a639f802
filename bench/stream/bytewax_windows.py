"""The same bids and windows as crates/sluice-stream/examples/nexmark_windows.rs, in Bytewax
(one process): q5's shape (a 10 s window every 2 s, bids counted per auction) and q7's shape
(a 10 s tumbling window, the highest price). Prints one JSON line per query."""
import json
import sys
import time
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import windowing as win
from bytewax.operators.windowing import EventClock, SlidingWindower, TumblingWindower
from bytewax.testing import TestingSink, TestingSource, run_main
from nexmark_bids import bids

EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def clock():
    return EventClock(
        lambda e: EPOCH + timedelta(milliseconds=e[0]),
        wait_for_system_duration=timedelta(0),
    )


def q5(events, sink):
    flow = Dataflow("q5")
    s = op.input("in", flow, TestingSource(events, batch_size=1000))
    windower = SlidingWindower(
        length=timedelta(seconds=10), offset=timedelta(seconds=2), align_to=EPOCH
    )
    counts = win.count_window("count", s, clock(), windower, lambda e: str(e[1]))
    op.output("out", counts.down, TestingSink(sink))
    return flow


def q7(events, sink):
    flow = Dataflow("q7")
    s = op.input("in", flow, TestingSource(events, batch_size=1000))
    keyed = op.key_on("all", s, lambda e: "all")
    windower = TumblingWindower(length=timedelta(seconds=10), align_to=EPOCH)
    highest = win.max_window("max", keyed, clock(), windower, by=lambda e: e[2])
    op.output("out", highest.down, TestingSink(sink))
    return flow


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    wanted = sys.argv[2].split(",") if len(sys.argv) > 2 else ["q5", "q7"]
    events = bids(n)
    for name, build, value in [
        ("q5", q5, lambda v: v),
        ("q7", q7, lambda v: v[2]),
    ]:
        if name not in wanted:
            continue
        sink = []
        flow = build(events, sink)
        started = time.perf_counter()
        run_main(flow)
        seconds = time.perf_counter() - started
        checksum = sum(value(v) for _key, (_window, v) in sink)
        print(json.dumps({
            "engine": "bytewax", "query": name, "events": n, "seconds": round(seconds, 3),
            "events_per_s": round(n / seconds), "windows": len(sink), "checksum": checksum,
        }))


if __name__ == "__main__":
    main()
