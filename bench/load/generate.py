"""Writes ROWS rows of the demo's orders shape as Parquet (DuckDB's writer, default row groups,
Snappy) and as a header-less CSV of the same rows, deterministically (hashes of the row number).

Usage: generate.py ROWS PARQUET CSV   (run with the bench venv's Python, which has duckdb)
"""
import sys
import time

import duckdb

rows, parquet, csv = int(sys.argv[1]), sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
con = duckdb.connect()


def h(salt):
    return f"hash(i + {salt * 10**12})"


con.execute(
    f"""
    COPY (
        SELECT
            i + 1 AS order_id,
            (1 + {h(1)} % 5000)::BIGINT AS customer_id,
            ((500 + {h(2)} % 49500
                  + CASE WHEN {h(3)} % 20 = 0 THEN {h(4)} % 200000 ELSE 0 END)::DECIMAL(14, 0)
             / 100)::DECIMAL(12, 2) AS total,
            (DATE '2024-01-01' + (i // 100000)::INTEGER)::TIMESTAMP
                + to_seconds(({h(5)} % 86400)::BIGINT) AS created_at,
            DATE '2024-01-01' + (i // 100000)::INTEGER AS order_date,
            (['completed', 'completed', 'completed', 'refunded'])[(1 + {h(6)} % 4)::BIGINT] AS status,
            'customer' || (1 + {h(1)} % 5000) || '@example.com' AS email,
            (['books', 'electronics', 'garden', 'grocery', 'toys'])[(1 + {h(7)} % 5)::BIGINT]
                AS product_category
        FROM range({rows}) t(i)
        ORDER BY i
    ) TO '{parquet}' (FORMAT parquet)
    """
)
con.execute(f"COPY (SELECT * FROM read_parquet('{parquet}')) TO '{csv}' (FORMAT csv, HEADER false)")
print(f"   {rows:,} rows written in {time.perf_counter() - t0:.1f} s")
