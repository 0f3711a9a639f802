"""Checks a `sluice validate --format json` result against DuckDB's counts of the same file
(bench/quality/duckdb_query.py): every unexpected count, the mean, the distinct statuses, the
uniqueness verdict and the row count must agree. Exits 1 and says where they differ.

Usage: check_counts.py SLUICE_JSON DUCKDB_JSON ROWS
"""
import json
import math
import sys

try:
    s = json.load(open(sys.argv[1]))["results"]
    d = json.load(open(sys.argv[2]))
except (ValueError, KeyError) as e:
    print(f"   not a validation result: {e}")
    sys.exit(1)
rows = int(sys.argv[3])
bad = []
if d["rows"] != rows:
    bad.append(f"DuckDB counted {d['rows']} rows, not {rows}")
if len(s) != 10:
    bad.append(f"{len(s)} results, not 10")
else:
    for i in (1, 3, 4, 5, 6, 7):
        if s[i]["result"].get("element_count") != rows:
            bad.append(f"[{i}] element_count {s[i]['result'].get('element_count')}, not {rows}")
    pairs = [(1, "order_id_nulls"), (3, "total_outside"), (4, "customer_id_nulls"),
             (5, "customer_id_outside"), (6, "status_outside"), (7, "email_unmatched")]
    bad += [f"[{i}] {s[i]['result']['unexpected_count']} against {d[k]} ({k})"
            for i, k in pairs if s[i]["result"]["unexpected_count"] != d[k]]
    if not math.isclose(s[8]["result"]["observed_value"], d["total_mean"], rel_tol=1e-9):
        bad.append(f"[8] mean {s[8]['result']['observed_value']} against {d['total_mean']}")
    if s[9]["result"]["observed_value"] != d["status_distinct"]:
        bad.append(f"[9] distinct {s[9]['result']['observed_value']} against {d['status_distinct']}")
    if (d["order_id_repeats"] == 0) != s[2]["success"]:
        bad.append("[2] uniqueness disagrees")
if bad:
    print("   sluice and DuckDB disagree:\n     " + "\n     ".join(bad))
    sys.exit(1)
