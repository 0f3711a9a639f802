-- bench/warehouse: the demo's transform (sql/transform_orders.sql) and aggregate
-- (sql/update_sales_aggregates.sql), over every day of bench_staging.orders instead of one: the
-- same statements, the day's predicate widened. The same file is run by a sluice `sql` task and
-- by `psql -1 -f` (one transaction on both sides).
CREATE SCHEMA IF NOT EXISTS bench_analytics;
CREATE TABLE IF NOT EXISTS bench_analytics.orders_enriched (
    order_id BIGINT,
    customer_id BIGINT,
    order_date DATE,
    order_hour INTEGER,
    product_category VARCHAR(100),
    total DECIMAL(12,2),
    size_bucket VARCHAR(10),
    is_completed BOOLEAN
);
DELETE FROM bench_analytics.orders_enriched WHERE order_date >= '2024-01-01';
INSERT INTO bench_analytics.orders_enriched
SELECT
    order_id,
    customer_id,
    CAST(created_at AS DATE),
    EXTRACT(HOUR FROM created_at),
    product_category,
    total,
    CASE WHEN total < 50 THEN 'small' WHEN total < 250 THEN 'medium' ELSE 'large' END,
    status = 'completed'
FROM bench_staging.orders
WHERE CAST(created_at AS DATE) >= '2024-01-01';
CREATE TABLE IF NOT EXISTS bench_analytics.daily_sales (
    order_date DATE,
    product_category VARCHAR(100),
    orders BIGINT,
    completed_orders BIGINT,
    revenue DECIMAL(18,2),
    avg_order_value DECIMAL(18,2),
    PRIMARY KEY (order_date, product_category)
);
DELETE FROM bench_analytics.daily_sales WHERE order_date >= '2024-01-01';
INSERT INTO bench_analytics.daily_sales
SELECT
    order_date,
    product_category,
    COUNT(*),
    SUM(CASE WHEN is_completed THEN 1 ELSE 0 END),
    SUM(CASE WHEN is_completed THEN total END),
    ROUND(AVG(total), 2)
FROM bench_analytics.orders_enriched
WHERE order_date >= '2024-01-01'
GROUP BY order_date, product_category;
