"""Extraction callables for the dynamic `etl_<source>` pipelines.

On the embedded default there is no MySQL, PostgreSQL or product API to read, so each source
produces deterministic sample rows for its hour. The signature is the one an Airflow
PythonOperator callable would have: keyword arguments, plus context variables by name.
"""
import csv
import os
import random


def extract_from_source(config, ts, ts_nodash, lake_root):
    rng = random.Random(f"{config['name']}:{ts}")
    folder = os.path.join(lake_root, "sources", config["name"])
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{ts_nodash}.csv")
    rows = 50 + rng.randrange(50)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "source", "value", "extracted_for"])
        for i in range(rows):
            out.writerow([i, config["name"], round(rng.uniform(1, 500), 2), ts])
    os.replace(tmp, path)  # readers never see a half-written file
    print(f"extracted {rows} rows from {config['name']} ({config.get('table') or config.get('endpoint')})")
    return {"rows": rows, "path": path}
