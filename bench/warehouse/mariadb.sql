-- The MariaDB side of bench/warehouse/run: sluice's target and the client's LOAD DATA target,
-- the demo's orders shape, no indexes.
DROP DATABASE IF EXISTS bench_wh;
CREATE DATABASE bench_wh;
CREATE TABLE bench_wh.orders_loaded (
    order_id BIGINT,
    customer_id BIGINT,
    total DECIMAL(12,2),
    created_at DATETIME(6),
    order_date DATE,
    status LONGTEXT,
    email LONGTEXT,
    product_category LONGTEXT
);
CREATE TABLE bench_wh.orders_infile LIKE bench_wh.orders_loaded;
