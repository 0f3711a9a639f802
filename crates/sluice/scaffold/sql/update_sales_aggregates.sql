-- Daily sales per category, replaced for the day on every run (the same SQL on DuckDB,
-- PostgreSQL and MySQL/MariaDB).
CREATE TABLE IF NOT EXISTS analytics.daily_sales (
    order_date DATE,
    product_category VARCHAR(100),
    orders BIGINT,
    completed_orders BIGINT,
    revenue DECIMAL(18,2),
    avg_order_value DECIMAL(18,2),
    PRIMARY KEY (order_date, product_category)
);
DELETE FROM analytics.daily_sales WHERE order_date = {{ ds | sql }};
INSERT INTO analytics.daily_sales
SELECT
    order_date,
    product_category,
    COUNT(*),
    SUM(CASE WHEN is_completed THEN 1 ELSE 0 END),
    SUM(CASE WHEN is_completed THEN total END),
    ROUND(AVG(total), 2)
FROM analytics.orders_enriched
WHERE order_date = {{ ds | sql }}
GROUP BY order_date, product_category;
