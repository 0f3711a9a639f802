-- The article's orders checks (schema, nulls, range, uniqueness) as one scan.
-- A failed check raises an error, which fails the task before anything is loaded.
SELECT CASE
    WHEN count(*) = 0
        THEN error('no orders extracted for ' || {{ ds | sql }})
    WHEN count(*) FILTER (WHERE order_id IS NULL OR customer_id IS NULL OR total IS NULL) > 0
        THEN error('null order_id, customer_id or total in ' || count(*) FILTER (WHERE order_id IS NULL OR customer_id IS NULL OR total IS NULL) || ' rows')
    WHEN count(*) FILTER (WHERE total < 0 OR total > 1000000) > 0
        THEN error('total outside [0, 1000000] in ' || count(*) FILTER (WHERE total < 0 OR total > 1000000) || ' rows')
    WHEN count(*) <> count(DISTINCT order_id)
        THEN error((count(*) - count(DISTINCT order_id)) || ' duplicate order_id values')
    ELSE 'ok'
END AS verdict
FROM read_parquet({{ (lake_root ~ '/orders/' ~ ds ~ '/data.parquet') | sql }});
