-- Idempotent load: delete the day's partition, then insert it, in one transaction
-- (all statements of a sql task run in one transaction).
CREATE SCHEMA IF NOT EXISTS staging;
CREATE TABLE IF NOT EXISTS staging.orders (
    order_id BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    total DECIMAL(12,2) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    status VARCHAR,
    email VARCHAR,
    product_category VARCHAR
);
DELETE FROM staging.orders WHERE CAST(created_at AS DATE) = {{ ds | sql }};
INSERT INTO staging.orders
SELECT * FROM read_parquet({{ (lake_root ~ '/orders/' ~ ds ~ '.parquet') | sql }});
