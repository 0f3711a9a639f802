-- The PostgreSQL side of bench/load/run: the source table for extracts and the load targets,
-- all of the demo's orders shape, without indexes (a bulk load into a bare table on every side).
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.orders (
    order_id bigint,
    customer_id bigint,
    total numeric(12,2),
    created_at timestamp,
    order_date date,
    status text,
    email text,
    product_category text
);
-- sluice's target (created here so that every repetition replaces the same kind of table) and
-- the target of psql's \copy.
CREATE TABLE bench.orders_loaded (LIKE bench.orders);
CREATE TABLE bench.orders_copy (LIKE bench.orders);
