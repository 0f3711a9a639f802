"""Validates a Parquet file with Great Expectations 1.x on pandas (the whole file in a
DataFrame, as GE's pandas engine works) and writes the result JSON.

Usage: ge_validate.py SUITE_JSON PARQUET OUT_JSON   (run with the GE venv's Python)
"""
import decimal
import json
import sys

import great_expectations as gx
import pandas as pd
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

suite_path, parquet, out = sys.argv[1:4]
spec = json.load(open(suite_path))
df = pd.read_parquet(parquet)
# pandas reads Parquet decimals as Python Decimal objects, which every pandas operation then
# handles one object at a time (minutes per million rows); a GE user would make them floats.
for name in df.columns:
    first = df[name].dropna().head(1)
    if df[name].dtype == object and len(first) and isinstance(first.iloc[0], decimal.Decimal):
        df[name] = df[name].astype("float64")
context = gx.get_context(mode="ephemeral")
batch = (
    context.data_sources.add_pandas("bench")
    .add_dataframe_asset("orders")
    .add_batch_definition_whole_dataframe("all")
    .get_batch(batch_parameters={"dataframe": df})
)
suite = gx.ExpectationSuite(name=spec["expectation_suite_name"])
for e in spec["expectations"]:
    suite.add_expectation_configuration(
        ExpectationConfiguration(type=e["expectation_type"], kwargs=e["kwargs"])
    )
result = batch.validate(suite, result_format="SUMMARY")
json.dump(result.to_json_dict(), open(out, "w"), default=str)
