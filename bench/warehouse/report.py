"""Prints the warehouse table (best of the repetitions) and, when asked, writes it into
docs/benchmarks.md under "Warehouse on servers (bench/warehouse)".

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
rows, reps = int(meta["rows"]), int(meta["reps"])

task_times = defaultdict(list)
for pipeline, name in (("transform", "sluice_sql"), ("load_tls", "load_tls"),
                       ("load_plain", "load_plain"), ("load_maria", "sluice_maria")):
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


def cell(name):
    b = best(name)
    return "failed" if b is None else f"{b:.2f} s"


def mib(name):
    return f"{max(rss[name]) / 1024:.0f} MiB" if rss.get(name) else "–"


lines = [
    ("demo transform + aggregate SQL in PostgreSQL: `sql` task", "sluice_sql",
     "the same file, `psql -1 -f`", "psql_file", 1.05),
    ("Parquet → PostgreSQL `load`, sslmode=require", "load_tls",
     "the same load, sslmode=disable", "load_plain", 1.15),
    ("Parquet → MariaDB `load` (LOAD DATA LOCAL INFILE stream)", "sluice_maria",
     "`mariadb` client `LOAD DATA LOCAL INFILE` of the rows as CSV", "infile", 1.2),
]
table = [
    f"| {rows:,} rows | sluice (wall, best of {reps}) | sluice task (in run) | compared with "
    f"| its wall, best of {reps} | ratio | goal | sluice peak RSS | other peak RSS |",
    "|---|---|---|---|---|---|---|---|---|",
]
for label, s, peer_label, p, goal in lines:
    r = best(s) / best(p) if best(s) and best(p) else None
    task = f"{min(task_times[s]):.2f} s" if task_times.get(s) else "–"
    verdict = "–" if r is None else ("met" if r <= goal else "not met")
    table.append(
        f"| {label} | {cell(s)} | {task} | {peer_label} | {cell(p)} "
        f"| {f'{r:.2f}×' if r is not None else '–'} | ≤ {goal}× ({verdict}) | {mib(s)} | {mib(p)} |"
    )
medians = ", ".join(
    f"{name} {statistics.median(times[name]):.2f} s"
    for name in ("sluice_sql", "psql_file", "load_tls", "load_plain", "sluice_maria", "infile")
    if times.get(name)
)
measured = textwrap.fill(
    f"Measured {datetime.date.today().isoformat()} on {meta['cpus']} cores ({meta['cpu_model']}; "
    f"shared with other work while it ran), {meta['mem_gib']} GiB, release build (sluice "
    f"{meta['sluice']}), PostgreSQL {meta['postgres']} and MariaDB {meta['mariadb']} (local, "
    f"default settings; PostgreSQL with its Debian `ssl = on`, so `psql` and sluice's default "
    f"`sslmode=prefer` both use TLS). Command: `{meta['command']}`. Load average (1, 5, 15 min) "
    f"at the start {meta.get('load_start', '?')}, at the end {meta.get('load_end', '?')}.",
    width=100, break_on_hyphens=False, break_long_words=False,
)
block = [measured, "", *table, "",
         textwrap.fill(f"Medians of {reps}: {medians}.", width=100, break_on_hyphens=False)]
print()
print("\n".join(block))
if not write:
    print(f"\n(not written to {os.path.relpath(docs)}: run with the default ROWS, or WRITE_DOCS=1)")
    sys.exit(0)

HEADING = "## Warehouse on servers (bench/warehouse)"
BEGIN = "<!-- bench/warehouse figures: begin (written by bench/warehouse/run) -->"
END = "<!-- bench/warehouse figures: end -->"
INTRO = """```sh
bench/warehouse/run                 # 10,000,000 rows; rewrites the figures below
ROWS=1000000 bench/warehouse/run    # quicker; prints the table only (WRITE_DOCS=1 to write it)
```

Sluice against the servers' own clients, doing the same work, interleaved in each of 3
repetitions, each repetition's result checked before its time counts:

- the demo's transform and aggregate SQL (`bench/warehouse/transform.sql`: its two files over
  every day of 10 M staged orders) run by a `sql` task on a PostgreSQL connection, against the
  same file through `psql -1 -f` (one transaction on both sides; the check: the aggregates count
  every order once);
- a Parquet → PostgreSQL `load` (`mode: replace`) with `sslmode=require` against the same load
  with `sslmode=disable`: what TLS costs;
- a Parquet → MariaDB `load` (`mode: replace`; rows streamed into `LOAD DATA LOCAL INFILE`)
  against the `mariadb` client's `LOAD DATA LOCAL INFILE` of the same rows as CSV (written
  beforehand, not timed).

Times are wall times of whole processes, start to exit, on every side ("sluice task" is the
task's own duration from `sluice runs`); peak RSS from `/usr/bin/time -f %M`.
"""
section = f"{BEGIN}\n" + "\n".join(block) + f"\n{END}"
text = open(docs).read()
if BEGIN in text and END in text:
    text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
else:
    text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{INTRO}\n{section}\n"
open(docs, "w").write(text)
print(f"\nwritten to {os.path.relpath(docs)}")
