"""Prints the data-quality table (best of the repetitions: sluice against Great Expectations on
pandas and DuckDB's single query) and, when asked, writes it into docs/benchmarks.md under
"Data quality (bench/quality)".

Usage: report.py WORK_DIR DOCS_FILE WRITE(0|1)
"""
import datetime
import os
import statistics
import sys
import textwrap
from collections import defaultdict

work, docs, write = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
times, rss = defaultdict(list), defaultdict(list)
for line in open(os.path.join(work, "results.tsv")):
    name, _, secs, kib = line.rstrip("\n").split("\t")
    times[name].append(float(secs))
    rss[name].append(int(kib))
meta = dict(line.rstrip("\n").split("=", 1) for line in open(os.path.join(work, "meta.txt")))
rows, reps = int(meta["rows"]), int(meta["reps"])


startup = {}
if os.path.exists(os.path.join(work, "startup.tsv")):
    startup = {n: float(s) for n, s in (l.rstrip("\n").split("\t") for l in open(os.path.join(work, "startup.tsv")))}


def best(name):
    return min(times[name]) if times.get(name) else None


def work_only(name):
    b, s = best(name), startup.get(name.removesuffix("_big"))
    return None if b is None or s is None else max(b - s, 1e-3)


def mib(name):
    return max(rss[name]) / 1024 if rss.get(name) else None


def cell(name, n=rows):
    b = best(name)
    return "failed" if b is None else f"{b:.2f} s ({n / b / 1e6:.1f} M rows/s)"


def seconds(v):
    return "–" if v is None else f"{v:.2f} s"


s, sw = best("sluice"), work_only("sluice")
table = [
    f"| {rows:,} rows, 10 expectations | wall, process start to exit (best of {reps}) | start-up | "
    "wall − start-up | peak RSS | sluice / this: wall, wall − start-up | goal |",
    "|---|---|---|---|---|---|---|",
    f"| sluice `validate` (in-memory engine) | {cell('sluice')} | {seconds(startup.get('sluice'))} | "
    f"{seconds(sw)} | {mib('sluice') or 0:,.0f} MiB | 1.00×, 1.00× | |",
]
for name, label, goal in (
    ("ge", f"Great Expectations {meta['ge']} on pandas", "time ≤ 0.2× (5× faster), memory < ¼"),
    ("duckdb", f"DuckDB {meta['duckdb']}, one SQL query", "time ≤ 1.0×"),
):
    b, w = best(name), work_only(name)
    r = f"{s / b:.2f}×" if s and b else "–"
    r += f", {sw / w:.2f}×" if sw and w else ""
    m = f"{mib(name):,.0f} MiB" if mib(name) else "–"
    mem = f"; memory {mib('sluice') / mib(name):.2f}×" if mib(name) and mib("sluice") else ""
    table.append(f"| {label} | {cell(name)} | {seconds(startup.get(name))} | {seconds(w)} | {m} | {r}{mem} | {goal} |")
big = int(meta["big"])
for name, label, goal in (("sluice_big", "sluice", "memory < 1 GiB"), ("duckdb_big", "DuckDB, one SQL query", "")):
    if best(name) is not None:
        table.append(
            f"| {label} on {big:,} rows (one run) | {cell(name, big)} | {seconds(startup.get(name.removesuffix('_big')))} "
            f"| {seconds(work_only(name))} | {mib(name):,.0f} MiB | | {goal} |"
        )
medians = ", ".join(f"{n} {statistics.median(times[n]):.2f} s" for n in ("sluice", "ge", "duckdb") if times.get(n))
today = datetime.date.today().isoformat()
cpus = os.cpu_count()
measured = textwrap.fill(
    f"Measured {today} on {cpus} cores, release build. Command: `{meta['command']}`. "
    f"Load average (1, 5, 15 min) at the start {meta['load_start']}, at the end {meta['load_end']}.",
    width=100, break_on_hyphens=False, break_long_words=False,
)
block = [measured, "", *table, "", f"Medians of {reps}: {medians}."]
print()
print("\n".join(block))
if not write:
    print(f"\n(not written to {os.path.relpath(docs)}: run with the default ROWS, or WRITE_DOCS=1)")
    sys.exit(0)

HEADING = "## Data quality (bench/quality)"
BEGIN = "<!-- bench/quality figures: begin (written by bench/quality/run) -->"
END = "<!-- bench/quality figures: end -->"
INTRO = """```sh
bench/quality/run                        # 10,000,000 rows, then 100,000,000 for memory
ROWS=1000000 BIG=0 bench/quality/run     # quicker; prints the table only (WRITE_DOCS=1 to write)
```

Rows of the demo's orders shape (order_id, customer_id, total decimal(12,2), created_at,
status, email) as one Parquet file, about one row in a thousand breaking the suite; the suite
(`bench/quality/suite.json`) is the article's orders suite plus between, in_set, regex, mean and
unique_value_count checks, 10 expectations. Each repetition runs, one after the other,
DuckDB's own single query computing the same counts, `sluice validate --format json`, and Great
Expectations on pandas (`pd.read_parquet` then `batch.validate(suite)`, result format SUMMARY,
as sluice; pandas reads Parquet decimals as Python `Decimal` objects, which cost GE minutes per
million rows, so the script makes them float64 first, as a GE user would). The results are
compared: every count of sluice's with DuckDB's, and every expectation's success,
unexpected_count and observed_value with Great Expectations — for every repetition, before its time counts (a repetition whose result is wrong is
left out and the run fails). Times are whole processes (start to exit) for every side; start-up
is the best of five runs of the same program doing nothing (`sluice --version`; Python importing
great_expectations and pandas, or duckdb), and the table gives the ratio on both bases. Peak RSS
from `/usr/bin/time -f %M`.
"""
section = f"{BEGIN}\n" + "\n".join(block) + f"\n{END}"
text = open(docs).read()
if BEGIN in text and END in text:
    text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
else:
    text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{INTRO}\n{section}\n"
open(docs, "w").write(text)
print(f"\nwritten to {os.path.relpath(docs)}")
