-- A misspelt keyword on line 3: reported at its line and column in the file.
DELETE FROM analytics.daily WHERE day = {{ ds | sql }};
INSERT INTO analytics.daily SELEC day, count(*) FROM staging.orders GROUP BY day;
