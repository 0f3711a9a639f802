-- Daily sales per category, replaced for the day on every run.
CREATE TABLE IF NOT EXISTS analytics.daily_sales (
    order_date DATE,
    product_category VARCHAR,
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
    count(*),
    count(*) FILTER (WHERE is_completed),
    sum(total) FILTER (WHERE is_completed),
    round(avg(total), 2)
FROM analytics.orders_enriched
WHERE order_date = {{ ds | sql }}
GROUP BY ALL;
