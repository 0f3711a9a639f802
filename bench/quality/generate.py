"""Writes ROWS rows of the demo's orders shape (order_id, customer_id, total, created_at, status,
email) as Parquet with DuckDB's writer, deterministically (hashes of the row number). About one
row in a thousand breaks the suite (a negative total, an unknown status or a malformed e-mail),
so every engine has unexpected values to count.

Usage: generate.py ROWS PARQUET   (run with the bench venv's Python, which has duckdb)
"""
import sys
import time

import duckdb

rows, parquet = int(sys.argv[1]), sys.argv[2]
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
            CASE WHEN {h(8)} % 1000 = 0 THEN -1.00
                 ELSE ((500 + {h(2)} % 49500)::DECIMAL(14, 0) / 100) END::DECIMAL(12, 2) AS total,
            TIMESTAMP '2024-01-01' + to_seconds((i // 10)::BIGINT) AS created_at,
            CASE WHEN {h(9)} % 1000 = 0 THEN 'lost'
                 ELSE (['completed', 'completed', 'completed', 'refunded', 'pending'])[(1 + {h(6)} % 5)::BIGINT]
            END AS status,
            CASE WHEN {h(10)} % 1000 = 0 THEN 'customer' || (1 + {h(1)} % 5000) || ' at example.com'
                 ELSE 'customer' || (1 + {h(1)} % 5000) || '@example.com' END AS email
        FROM range({rows}) t(i)
        ORDER BY i
    ) TO '{parquet}' (FORMAT parquet)
    """
)
print(f"   {rows:,} rows written in {time.perf_counter() - t0:.1f} s")
