-- Extract the day's orders from the raw landing zone into the lake as Parquet.
-- Re-running overwrites the same file: the extract is idempotent.
COPY (
    SELECT order_id, customer_id, total, created_at, status, email, product_category
    FROM read_csv(
        {{ (lake_root ~ '/raw/orders/' ~ ds ~ '.csv') | sql }},
        header = true,
        columns = {
            'order_id': 'BIGINT', 'customer_id': 'BIGINT', 'total': 'DECIMAL(12,2)',
            'created_at': 'TIMESTAMP', 'status': 'VARCHAR', 'email': 'VARCHAR',
            'product_category': 'VARCHAR'
        }
    )
    WHERE CAST(created_at AS DATE) = {{ ds | sql }}
) TO {{ (lake_root ~ '/orders/' ~ ds ~ '.parquet') | sql }} (FORMAT parquet);
