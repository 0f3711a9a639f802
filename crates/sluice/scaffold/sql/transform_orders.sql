-- ELT: transform in the warehouse. Rebuilds the day's enriched orders.
-- Written in the SQL that DuckDB, PostgreSQL and MySQL/MariaDB all accept, so the pipeline
-- runs unchanged whichever database `warehouse` names.
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS analytics.orders_enriched (
    order_id BIGINT,
    customer_id BIGINT,
    order_date DATE,
    order_hour INTEGER,
    product_category VARCHAR(100),
    total DECIMAL(12,2),
    size_bucket VARCHAR(10),
    is_completed BOOLEAN
);
DELETE FROM analytics.orders_enriched WHERE order_date = {{ ds | sql }};
INSERT INTO analytics.orders_enriched
SELECT
    order_id,
    customer_id,
    CAST(created_at AS DATE),
    EXTRACT(HOUR FROM created_at),
    product_category,
    total,
    CASE WHEN total < 50 THEN 'small' WHEN total < 250 THEN 'medium' ELSE 'large' END,
    status = 'completed'
FROM staging.orders
WHERE CAST(created_at AS DATE) = {{ ds | sql }};
