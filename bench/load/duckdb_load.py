"""The DuckDB peer: a fresh database file, the orders table, and
`INSERT INTO t SELECT * FROM read_parquet(…)`, then close (which checkpoints), as sluice's load
into the warehouse does in one transaction.

Usage: duckdb_load.py DATABASE PARQUET EXPECTED_ROWS
"""
import sys
import time

import duckdb

database, parquet, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
con = duckdb.connect(database)
con.execute(
    """
    CREATE TABLE t (
        order_id BIGINT,
        customer_id BIGINT,
        total DECIMAL(12, 2),
        created_at TIMESTAMP,
        order_date DATE,
        status VARCHAR,
        email VARCHAR,
        product_category VARCHAR
    )
    """
)
con.execute(f"INSERT INTO t SELECT * FROM read_parquet('{parquet}')")
rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
con.close()
print(f"rows={rows} seconds={time.perf_counter() - t0:.3f}")
sys.exit(0 if rows == expected else 1)
