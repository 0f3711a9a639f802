"""Compares two validation results expectation by expectation: success, unexpected_count and
observed_value must agree (floats to 1e-9 relative). Exits 1 and says where they differ.

Usage: compare.py SLUICE_JSON OTHER_JSON NAME
"""
import json
import math
import sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
name = sys.argv[3]
problems = []
if len(a["results"]) != len(b["results"]):
    problems.append(f"{len(a['results'])} results against {len(b['results'])}")
for i, (x, y) in enumerate(zip(a["results"], b["results"])):
    kind = x["expectation_config"].get("expectation_type") or x["expectation_config"].get("type")
    if x["success"] != y["success"]:
        problems.append(f"[{i}] {kind}: success {x['success']} against {y['success']}")
    for key in ("unexpected_count", "observed_value", "element_count", "missing_count"):
        u, v = x["result"].get(key), y["result"].get(key)
        if u is None or v is None:
            continue
        if isinstance(u, (int, float)) and isinstance(v, (int, float)):
            same = math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9)
        else:
            same = u == v
        if not same:
            problems.append(f"[{i}] {kind}: {key} {u!r} against {v!r}")
if problems:
    print(f"   sluice and {name} disagree:")
    for p in problems:
        print(f"     {p}")
    sys.exit(1)
print(f"   sluice and {name} agree on all {len(a['results'])} expectations")
