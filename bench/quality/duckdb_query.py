"""DuckDB's own single query over the Parquet file computing what the suite needs (the counts
behind every expectation), the near-physical limit of one scan. Prints the counts as JSON.

Usage: duckdb_query.py PARQUET   (run with the bench venv's Python)
"""
import json
import sys

import duckdb

row = duckdb.connect().execute(
    f"""
    SELECT
        count(*) AS rows,
        count(*) FILTER (WHERE order_id IS NULL) AS order_id_nulls,
        count(*) - count(DISTINCT order_id) AS order_id_repeats,
        count(*) FILTER (WHERE total IS NOT NULL AND NOT (total >= 0 AND total <= 1000000)) AS total_outside,
        count(*) FILTER (WHERE customer_id IS NULL) AS customer_id_nulls,
        count(*) FILTER (WHERE customer_id IS NOT NULL AND NOT (customer_id >= 1 AND customer_id <= 5000)) AS customer_id_outside,
        count(*) FILTER (WHERE status IS NOT NULL AND status NOT IN ('completed', 'refunded', 'pending')) AS status_outside,
        count(*) FILTER (WHERE email IS NOT NULL AND NOT regexp_matches(email, '^[^@ ]+@[^@ ]+\\.[a-z]+$')) AS email_unmatched,
        avg(total) AS total_mean,
        count(DISTINCT status) AS status_distinct
    FROM read_parquet('{sys.argv[1]}')
    """
).fetchone()
names = ["rows", "order_id_nulls", "order_id_repeats", "total_outside", "customer_id_nulls",
         "customer_id_outside", "status_outside", "email_unmatched", "total_mean", "status_distinct"]
print(json.dumps(dict(zip(names, [float(v) if not isinstance(v, int) else v for v in row]))))
