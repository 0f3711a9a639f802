"""The same bids and windows as crates/sluice-stream/examples/nexmark_windows.rs and
bench/stream/bytewax_windows.py, in PyFlink (local mini-cluster, parallelism 1): q5's shape (HOP,
a 10 s window every 2 s, bids counted per auction) and q7's shape (TUMBLE, 10 s, the highest
price), both in event time with a watermark on the bid time. Prints one JSON line per query.

The bids are generated in Python (the same LCG as the others) and written to a CSV file before
any timing; each query is one SQL job (windowing TVF) from that file into a CSV file sink, read
back after the job to count the windows and sum the checksum.

Timing: "seconds" is Flink's net runtime of the job (JobExecutionResult.get_net_runtime: the job
running, without its planning, submission and the mini-cluster's start — but with reading and
parsing the CSV source and writing the CSV sink, which a file-fed Flink job cannot leave out);
"submitted_to_end_seconds" is the wall time from submitting the INSERT job (execute_sql) until it
has finished (wait()). bench/stream/run also times the whole process (JVM start included) for
every engine alike."""
import csv
import glob
import json
import os
import shutil
import sys
import tempfile
import time

from nexmark_bids import bids
from pyflink.table import EnvironmentSettings, TableEnvironment


# Event time is milliseconds since the Unix epoch; Bytewax's windows are aligned to 2024-01-01,
# which is a whole number of 10 s from the epoch, so the windows are the same.
SOURCE = """
CREATE TEMPORARY TABLE bids (
  t BIGINT, auction BIGINT, price BIGINT,
  ts AS TO_TIMESTAMP_LTZ(t, 3),
  WATERMARK FOR ts AS ts
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')
"""

QUERIES = {
    "q5": ("window_start TIMESTAMP(3), auction BIGINT, v BIGINT", """
        SELECT window_start, auction, COUNT(*) AS v
        FROM TABLE(HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
        GROUP BY window_start, window_end, auction"""),
    "q7": ("window_start TIMESTAMP(3), v BIGINT", """
        SELECT window_start, MAX(price) AS v
        FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
        GROUP BY window_start, window_end"""),
}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    wanted = sys.argv[2].split(",") if len(sys.argv) > 2 else ["q5", "q7"]
    tmp = tempfile.mkdtemp(prefix="pyflink-bench-")
    source = os.path.join(tmp, "bids.csv")
    with open(source, "w", newline="") as f:
        csv.writer(f).writerows(bids(n))
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", "1")
    config.set("table.local-time-zone", "UTC")
    env.execute_sql(SOURCE.format(path=source))
    for name, (columns, query) in QUERIES.items():
        if name not in wanted:
            continue
        out = os.path.join(tmp, name)
        env.execute_sql(f"CREATE TEMPORARY TABLE out_{name} ({columns}) WITH "
                        f"('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')")
        started = time.perf_counter()
        result = env.execute_sql(f"INSERT INTO out_{name} {query}")
        result.wait()
        seconds = time.perf_counter() - started
        # Flink's own runtime of the job, without planning and submission (it still reads the
        # CSV source and writes the CSV sink): the in-process basis beside Sluice's operator time.
        net = result.get_job_client().get_job_execution_result().result().get_net_runtime()
        windows = checksum = 0
        for part in glob.glob(os.path.join(out, "**", "*"), recursive=True):
            if os.path.isfile(part) and not os.path.basename(part).startswith("."):
                for row in csv.reader(open(part)):
                    windows += 1
                    checksum += int(row[-1])
        print(json.dumps({
            "engine": "pyflink", "query": name, "events": n, "seconds": round(net / 1000, 3),
            "submitted_to_end_seconds": round(seconds, 3),
            "events_per_s": round(n / (net / 1000)), "windows": windows, "checksum": checksum,
        }), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
