"""Prints the extract/load table (best of the repetitions, sluice against the native bulk paths)
and, when asked, writes it into docs/benchmarks.md under "Extract and load (bench/load)".

Usage: report.py WORK_DIR DOCS_FILE WRITE(0|1)
"""
import datetime
import json
import os
import statistics
import sys
import textwrap
from collections import defaultdict

work, docs, write = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

times = defaultdict(list)
rss = defaultdict(list)
for line in open(os.path.join(work, "results.tsv")):
    name, _, secs, kib = line.rstrip("\n").split("\t")
    times[name].append(float(secs))
    rss[name].append(int(kib))
meta = dict(line.rstrip("\n").split("=", 1) for line in open(os.path.join(work, "meta.txt")))
rows = int(meta["rows"])
reps = int(meta["reps"])

# sluice's own view of each task (from its metadata store): duration_s of the successful tries.
task_times = defaultdict(list)
for pipeline, name in (("load_pg", "sluice_load_pg"), ("extract_pg", "sluice_extract"),
                       ("load_duck", "sluice_load_duck")):
    try:
        runs = json.load(open(os.path.join(work, f"runs-{pipeline}.json")))
    except (OSError, ValueError):
        runs = []
    for run in runs:
        for task in run.get("tasks", []):
            if task.get("state") == "success" and task.get("duration_s") is not None:
                task_times[name].append(task["duration_s"])


def best(name):
    return min(times[name]) if times.get(name) else None


def median(name):
    return statistics.median(times[name]) if times.get(name) else None


def rate(secs):
    per_s = rows / secs
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f} M rows/s"
    return f"{per_s / 1e3:.0f} k rows/s"


def cell(name):
    b = best(name)
    if b is None:
        return "failed"
    return f"{b:.2f} s ({rate(b)})"


def mib(name):
    if not rss.get(name):
        return "–"
    return f"{max(rss[name]) / 1024:.0f} MiB"


def size(key):
    b = int(meta.get(key, "0") or 0)
    return f"{b / 2**20:,.0f} MiB"


def ratio(a, b):
    if best(a) is None or best(b) is None:
        return None
    return best(a) / best(b)


def verdict(r, goal):
    if r is None:
        return "–"
    return f"{'met' if r <= goal else 'not met'}"


# (label, sluice measurement, peer label, peer measurement, goal or None for a reference row)
lines = [
    ("Parquet → PostgreSQL: `load` (mode: replace)", "sluice_load_pg",
     "psql `\\copy … FROM … CSV`", "copy_csv_in", 1.2),
    ("Parquet → PostgreSQL: `load` (mode: replace)", "sluice_load_pg",
     "psql `\\copy … FROM … (FORMAT binary)` (raw binary COPY)", "copy_bin_in", 1.2),
    ("PostgreSQL → Parquet: `extract` (`select * from bench.orders`)", "sluice_extract",
     "psql `\\copy (select * from bench.orders) TO … CSV`", "copy_csv_out", 1.5),
    ("PostgreSQL → Parquet: `extract` (`select * from bench.orders`)", "sluice_extract",
     "psql `\\copy (select …) TO … (FORMAT binary)` (reference)", "copy_bin_out", None),
    ("Parquet → DuckDB warehouse: `load` (mode: replace)", "sluice_load_duck",
     "DuckDB `INSERT INTO t SELECT * FROM read_parquet(…)`, fresh file", "duckdb_insert", 1.2),
]

table = [
    f"| {rows:,} rows | sluice (wall, best of {reps}) | sluice task (in run) | peer | peer (wall, best of {reps}) "
    "| sluice / peer | goal | sluice peak RSS | peer peak RSS |",
    "|---|---|---|---|---|---|---|---|---|",
]
for label, s, peer_label, p, goal in lines:
    r = ratio(s, p)
    task = f"{min(task_times[s]):.2f} s" if task_times.get(s) else "–"
    goal_cell = f"≤ {goal}× ({verdict(r, goal)})" if goal else "reference"
    table.append(
        f"| {label} | {cell(s)} | {task} | {peer_label} | {cell(p)} "
        f"| {f'{r:.2f}×' if r is not None else '–'} | {goal_cell} | {mib(s)} | {mib(p)} |"
    )

medians = ", ".join(
    f"{name} {median(name):.2f} s" for name in
    ("sluice_load_pg", "copy_csv_in", "copy_bin_in", "sluice_extract", "copy_csv_out",
     "copy_bin_out", "sluice_load_duck", "duckdb_insert") if median(name) is not None
)
today = datetime.date.today().isoformat()
measured = textwrap.fill(
    f"Measured {today} on {meta['cpus']} cores ({meta['cpu_model']}; shared with other work "
    f"while it ran, so single figures carry some noise), {meta['mem_gib']} GiB, release build "
    f"(sluice {meta['sluice']}), PostgreSQL {meta['postgres']} (local, default settings), "
    f"DuckDB {meta['duckdb']} on both sides of the DuckDB comparison. Command: "
    f"`{meta['command']}`. Data: {rows:,} rows; Parquet {size('parquet_bytes')}, CSV "
    f"{size('csv_bytes')}, binary COPY file {size('bin_bytes')}, sluice's extracted Parquet "
    f"{size('extract_bytes')}. Load average (1, 5, 15 min) at the start "
    f"{meta.get('load_start', '?')}, at the end {meta.get('load_end', '?')}.",
    width=100, break_on_hyphens=False, break_long_words=False,
)
block = [
    measured,
    "",
    *table,
    "",
    textwrap.fill(f"Medians of {reps}: {medians}.", width=100, break_on_hyphens=False),
]

print()
print("\n".join(block))

if not write:
    print(f"\n(not written to {os.path.relpath(docs)}: run with the default ROWS, or WRITE_DOCS=1)")
    sys.exit(0)

HEADING = "## Extract and load (bench/load)"
BEGIN = "<!-- bench/load figures: begin (written by bench/load/run) -->"
END = "<!-- bench/load figures: end -->"
INTRO = """```sh
bench/load/run                  # 10,000,000 rows; rewrites the figures below
ROWS=1000000 bench/load/run     # quicker; prints the table only (WRITE_DOCS=1 to write it)
```

What it measures, on rows of the demo's orders shape (order_id bigint, customer_id bigint,
total decimal(12,2), created_at timestamp, order_date date, status, email, product_category
text), sluice and its peers interleaved in each of 3 repetitions:

- Parquet → PostgreSQL: a `load` task (`mode: replace`, into a `connection: pg` table) against
  psql's `\\copy … FROM … CSV` of the same rows (the CSV written beforehand, not timed) and the
  raw binary COPY (`\\copy … FROM … (FORMAT binary)` of a file exported beforehand). Every target
  is an existing, empty table without indexes, after a `CHECKPOINT`;
- PostgreSQL → Parquet: an `extract` task (`select * from bench.orders`) against
  `\\copy (select * from bench.orders) TO … CSV` (and, for reference, the same in binary);
- Parquet → DuckDB: a `load` task into the warehouse (`mode: replace`) against DuckDB's own
  `INSERT INTO t SELECT * FROM read_parquet(…)` from the `duckdb` Python package of the same
  engine version, each on a fresh database file.

Times are wall times of the whole process (start to exit, so sluice's include loading the
project and recording the run; "sluice task" is the task's own duration from `sluice runs`),
peak RSS from `/usr/bin/time -f %M`. Goals: loads within 1.2× of the native bulk path, extracts
within 1.5×, memory bounded (not growing with the rows).
"""
section = f"{BEGIN}\n" + "\n".join(block) + f"\n{END}"
text = open(docs).read()
if BEGIN in text and END in text:
    start = text.index(BEGIN)
    end = text.index(END) + len(END)
    text = text[:start] + section + text[end:]
else:
    text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{INTRO}\n{section}\n"
open(docs, "w").write(text)
print(f"\nwritten to {os.path.relpath(docs)}")
