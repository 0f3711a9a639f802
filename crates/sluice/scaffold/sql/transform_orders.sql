-- ELT: transform in the warehouse. Rebuilds the day's enriched orders.
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS analytics.orders_enriched (
    order_id BIGINT,
    customer_id BIGINT,
    order_date DATE,
    order_hour INTEGER,
    product_category VARCHAR,
    total DECIMAL(12,2),
    size_bucket VARCHAR,
    is_completed BOOLEAN
);
DELETE FROM analytics.orders_enriched WHERE order_date = {{ ds | sql }};
INSERT INTO analytics.orders_enriched
SELECT
    order_id,
    customer_id,
    CAST(created_at AS DATE),
    hour(created_at),
    product_category,
    total,
    CASE WHEN total < 50 THEN 'small' WHEN total < 250 THEN 'medium' ELSE 'large' END,
    status = 'completed'
FROM staging.orders
WHERE CAST(created_at AS DATE) = {{ ds | sql }};
