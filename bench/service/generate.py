"""The benchmark's project: metadata on PostgreSQL; fan-outs of 400 no-op tasks and of 400 tasks
that wait 50 ms; a chain of 100 no-op tasks."""
import os
import sys

root, url = sys.argv[1], sys.argv[2]
os.makedirs(f"{root}/pipelines", exist_ok=True)
with open(f"{root}/sluice.yaml", "w") as f:
    f.write(f"name: service-bench\nparallelism: 64\nmetadata: {url}\n")
noop = "{ shell: { command: \"true\" } }"
with open(f"{root}/pipelines/fanout.yaml", "w") as f:
    f.write("pipeline: fanout\nschedule: none\nstart_date: 2024-01-01\nmax_active_tasks: 64\ntasks:\n")
    for i in range(400):
        f.write(f"  t{i:03}: {noop}\n")
# Tasks that wait (on a database, an API): 50 ms each, where more workers mean more at once.
with open(f"{root}/pipelines/waits.yaml", "w") as f:
    f.write("pipeline: waits\nschedule: none\nstart_date: 2024-01-01\nmax_active_tasks: 64\ntasks:\n")
    for i in range(400):
        f.write(f"  t{i:03}: {{ shell: {{ command: \"sleep 0.05\" }} }}\n")
with open(f"{root}/pipelines/chain.yaml", "w") as f:
    f.write("pipeline: chain\nschedule: none\nstart_date: 2024-01-01\ntasks:\n")
    for i in range(100):
        after = f", after: [t{i - 1:03}]" if i else ""
        f.write(f"  t{i:03}: {{ shell: {{ command: \"true\" }}{after} }}\n")
