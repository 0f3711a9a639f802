"""Writes the benchmark projects: a 200-task chain, a 1,000-task fan-out, 1,000 pipeline files,
and the Airflow DAG equivalent to the chain."""
import os
import sys

work = sys.argv[1]


def project(name, parallelism=16):
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "pipelines"), exist_ok=True)
    with open(os.path.join(d, "sluice.yaml"), "w") as f:
        f.write(f"name: {name}\nparallelism: {parallelism}\n")
    return d


chain = project("chain")
with open(os.path.join(chain, "pipelines", "chain.yaml"), "w") as f:
    f.write("pipeline: chain\ntasks:\n  t000: { sql: \"select 1\" }\n")
    for i in range(1, 200):
        f.write(f"  t{i:03}: {{ after: [t{i-1:03}], sql: \"select 1\" }}\n")

fanout = project("fanout")
with open(os.path.join(fanout, "pipelines", "fanout.yaml"), "w") as f:
    f.write("pipeline: fanout\nmax_active_tasks: 16\ntasks:\n")
    for i in range(1000):
        f.write(f"  t{i:04}: {{ sql: \"select 1\" }}\n")

files = project("files")
for n in range(1000):
    with open(os.path.join(files, "pipelines", f"p{n:04}.yaml"), "w") as f:
        f.write(f"""pipeline: p{n:04}
schedule: "{n % 60} {n % 24} * * *"
timezone: Europe/Berlin
start_date: 2024-01-01
catchup: false
tags: [bench]
params: {{ source: s{n} }}
defaults: {{ retries: 3, retry_delay: 5m, retry_backoff: exponential }}
tasks:
  extract: {{ shell: {{ command: "echo {{{{ ds }}}} {{{{ params.source }}}}", env: {{ DAY: "{{{{ ds_nodash }}}}" }} }} }}
  validate: {{ after: [extract], sql: "select {{{{ ds | sql }}}}" }}
  load: {{ after: [validate], sql: "select {{{{ macros.ds_add(ds, -1) | sql }}}}" }}
  transform: {{ after: [load], sql: "select 1" }}
  notify: {{ after: [transform], trigger_rule: all_done, shell: "echo done" }}
""")

dags = os.path.join(work, "airflow", "dags")
os.makedirs(dags, exist_ok=True)
with open(os.path.join(dags, "chain.py"), "w") as f:
    f.write('''from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.python import PythonOperator


def noop():
    return None


with DAG("chain", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    prev = None
    for i in range(200):
        t = PythonOperator(task_id=f"t{i:03}", python_callable=noop)
        if prev is not None:
            prev >> t
        prev = t
''')
