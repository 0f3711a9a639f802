CREATE TABLE IF NOT EXISTS analytics.daily (day DATE PRIMARY KEY, orders BIGINT);
DELETE FROM analytics.daily WHERE day = {{ ds | sql }};
INSERT INTO analytics.daily SELECT day, count(*) FROM staging.orders GROUP BY day;
