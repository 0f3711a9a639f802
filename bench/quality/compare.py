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
def numbers_as_floats(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, list, dict)):
        return v
    if isinstance(v, list):
        return [numbers_as_floats(x) for x in v]
    if isinstance(v, dict):
        return {k: numbers_as_floats(x) for k, x in v.items()}
    return float(v)


def identity(r):
    c = r["expectation_config"]
    # GE adds its batch id and writes some whole-number bounds as floats.
    kwargs = {k: numbers_as_floats(v) for k, v in c["kwargs"].items() if k != "batch_id"}
    return (c.get("expectation_type") or c.get("type"), json.dumps(kwargs, sort_keys=True))


# GE does not keep the suite's order in its results; pair them by expectation and arguments.
others = {identity(r): r for r in b["results"]}
for i, x in enumerate(a["results"]):
    kind = identity(x)[0]
    y = others.get(identity(x))
    if y is None:
        problems.append(f"[{i}] {kind}: no result with the same arguments")
        continue
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
