"""Throughput per worker count and hand-off latency, from the task queue's timestamps."""
import sys
from collections import defaultdict
from datetime import datetime

ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
rows = defaultdict(list)
for line in open(sys.argv[1]):
    pipeline, workers, task, claimed, completed, worker = line.rstrip("\n").split("\t")
    rows[(pipeline, int(workers))].append((task, ts(claimed), ts(completed), worker))

q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
print("| workers (4 tries each) | 400 no-op tasks | tasks/s | 400 tasks of 50 ms | tasks/s | chain of 100: hand-off p50 / p99 |")
print("|---|---|---|---|---|---|")
for workers in sorted({w for _, w in rows}):
    span_of = lambda rs: max(c for _, _, c, _ in rs) - min(s for _, s, _, _ in rs)
    fan, waits = rows[("fanout", workers)], rows[("waits", workers)]
    span, wspan = span_of(fan), span_of(waits)
    chain = sorted(rows[("chain", workers)])
    gaps = [chain[i + 1][1] - chain[i][2] for i in range(len(chain) - 1)]
    print(
        f"| {workers} | {span:.2f} s | {len(fan) / span:.0f} | {wspan:.2f} s | {len(waits) / wspan:.0f} | "
        f"{q(gaps, 0.5) * 1000:.1f} ms / {q(gaps, 0.99) * 1000:.1f} ms |"
    )
