-- The PostgreSQL side of bench/warehouse/run: the staged orders the transform reads, and the
-- load targets (the demo's orders shape, no indexes).
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_staging CASCADE;
DROP SCHEMA IF EXISTS bench_analytics CASCADE;
CREATE SCHEMA bench_staging;
CREATE TABLE bench_staging.orders (
    order_id bigint,
    customer_id bigint,
    total numeric(12,2),
    created_at timestamp,
    order_date date,
    status text,
    email text,
    product_category text
);
CREATE TABLE bench_staging.loaded_tls (LIKE bench_staging.orders);
CREATE TABLE bench_staging.loaded_plain (LIKE bench_staging.orders);
