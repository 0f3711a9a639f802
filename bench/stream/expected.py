"""The exact answers of q5 and q7 over the bench's bids, computed directly (no engine, no
watermark: every bid counts), against which every repetition of every engine is checked.

q5: a 10 s window every 2 s, bids counted per auction: every bid lies in exactly five windows.
q7: a 10 s tumbling window, the highest price.
Prints {"q5": {"windows": …, "checksum": …}, "q7": {…}} as JSON.

Usage: expected.py EVENTS
"""
import json
import sys
from collections import Counter

from nexmark_bids import bids

n = int(sys.argv[1])
q5, q7 = Counter(), {}
for t, auction, price in bids(n):
    first = (t // 2000) * 2000
    for start in range(first, t - 10_000, -2000):
        q5[(start, auction)] += 1
    start = (t // 10_000) * 10_000
    q7[start] = max(q7.get(start, price), price)
print(json.dumps({
    "q5": {"windows": len(q5), "checksum": sum(q5.values())},
    "q7": {"windows": len(q7), "checksum": sum(q7.values())},
}))
