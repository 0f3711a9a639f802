"""Prints the benchmark table (best of the repetitions) with ratios against Airflow."""
import sys
from collections import defaultdict

results, handoff, version_file, startup_file = sys.argv[1:5]
best = defaultdict(lambda: float("inf"))
for line in open(results):
    name, _, secs, _ = line.split("\t")
    best[name] = min(best[name], float(secs))
startup = dict((n, float(s)) for n, s in (l.rstrip("\n").split("\t") for l in open(startup_file)))
p50, p99, per_task_in_run = (float(x) for x in open(handoff).read().split())
try:
    airflow_version = open(version_file).read().strip().splitlines()[-1]
except (OSError, IndexError):
    airflow_version = "not run"

print()
print("| measurement (best of the checked repetitions) | sluice | Airflow %s | ratio |" % airflow_version)
print("|---|---|---|---|")
chain = best["chain"]
row = f"| chain of 200 no-op tasks, whole process (start to exit) | {chain:.2f} s ({chain / 200 * 1000:.2f} ms/task) |"
if "airflow_chain" in best:
    a = best["airflow_chain"]
    row += f" {a:.2f} s ({a / 200 * 1000:.1f} ms/task) | {a / chain:.0f}× faster |"
else:
    row += " – | – |"
print(row)
s_up, a_up = startup.get("sluice"), startup.get("airflow")
row = f"| chain, whole process − start-up (sluice {s_up:.3f} s: `sluice --version`; Airflow{f' {a_up:.2f} s' if a_up else ''}: `airflow version`) | {chain - s_up:.2f} s |"
if "airflow_chain" in best and a_up:
    a = best["airflow_chain"] - a_up
    row += f" {a:.2f} s | {a / (chain - s_up):.0f}× faster |"
else:
    row += " – | – |"
print(row)
print(f"| chain: per task inside the run (first start to last end / 200) | {per_task_in_run:.2f} ms | – | – |")
print(f"| chain: hand-off latency, end of a task → start of the next (p50 / p99) | {p50:.2f} ms / {p99:.2f} ms | – | – |")
print(f"| fan-out of 1,000 independent no-op tasks, end to end | {best['fanout']:.2f} s ({best['fanout']:.2f} ms/task) | – | – |")
print(f"| parse + validate 1,000 pipeline files (`sluice check`) | {best['check']:.2f} s | – | – |")
