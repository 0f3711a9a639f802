"""Checks every repetition of bench/stream's window queries against the exact answers and prints
the table: each engine on two bases — in process (its own work) and the whole process, start to
exit — with Sluice's ratio on both. A repetition with a wrong answer is reported and left out;
any such repetition fails the run.

Sluice and PyFlink must give the exact answers. Bytewax's watermark follows the system clock
(EventClock with wait 0), so it counts a few bids as late and drops them from q5: its windows must
be exact and its checksum within 0.5 % below the exact one (the table shows how far).

Usage: report.py EXPECTED_JSON RESULTS_JSONL REPS
"""
import json
import statistics
import sys
from collections import defaultdict

expected = json.load(open(sys.argv[1]))
rows = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
reps = int(sys.argv[3])
IN_PROCESS = {
    "sluice": "the window operator over bids in memory",
    "bytewax": "`run_main` over bids in memory",
    "pyflink": "Flink's net job runtime (with its CSV source and sink)",
}
LABEL = {"sluice": "Sluice", "bytewax": "Bytewax 0.21.1", "pyflink": "PyFlink 2.3.0"}


def problem(r):
    want = expected[r["query"]]
    if r["windows"] != want["windows"]:
        return f"{r['windows']} windows, not {want['windows']}"
    if r["engine"] == "bytewax":
        if not 0.995 * want["checksum"] <= r["checksum"] <= want["checksum"]:
            return f"checksum {r['checksum']}, not within 0.5 % below {want['checksum']}"
    elif r["checksum"] != want["checksum"]:
        return f"checksum {r['checksum']}, not {want['checksum']}"
    return None


good = defaultdict(list)
failed = []
for r in rows:
    p = problem(r)
    if p:
        failed.append(f"{r['engine']} {r['query']} repetition {r['rep']}: {p}")
    else:
        good[(r["engine"], r["query"])].append(r)

print()
print(f"Medians of {reps} repetitions, each checked against the exact answer before it counts.")
print()
print("| query | engine | in process: what is timed | events/s | whole process (start to exit) | events/s "
      "| Sluice / this: in process, whole process | windows | checksum |")
print("|---|---|---|---|---|---|---|---|---|")
for q in ("q5", "q7"):
    base = good.get(("sluice", q))
    s_in = statistics.median(r["events_per_s"] for r in base) if base else None
    s_whole = statistics.median(r["process_seconds"] for r in base) if base else None
    for engine in ("sluice", "bytewax", "pyflink"):
        runs = good.get((engine, q))
        if not runs:
            if any(r["engine"] == engine and r["query"] == q for r in rows):
                print(f"| {q} | {LABEL[engine]} | {IN_PROCESS[engine]} | failed | | | | | |")
            continue
        ev_in = statistics.median(r["events_per_s"] for r in runs)
        whole = statistics.median(r["process_seconds"] for r in runs)
        n = runs[0]["events"]
        ratio = "1×, 1×" if engine == "sluice" else (
            f"**{s_in / ev_in:.0f}×**, **{whole / s_whole:.1f}×**" if s_in and s_whole else "–")
        checksum = runs[0]["checksum"]
        exact = expected[q]["checksum"]
        note = "" if checksum == exact else f" ({exact - checksum:,.0f} late)"
        print(f"| {q} | {LABEL[engine]} | {IN_PROCESS[engine]} | {ev_in:,.0f} | {whole:.2f} s | "
              f"{n / whole:,.0f} | {ratio} | {runs[0]['windows']:,} | {checksum:,.0f}{note} |")
if failed:
    print("\nwrong answers (left out of the table):")
    for f in failed:
        print(f"  {f}")
    sys.exit(1)
