"""Hand-off latency in a chain: from a task's try ending to its successor's try starting."""
import sqlite3
import sys
from datetime import datetime

db, pipeline = sys.argv[1], sys.argv[2]
rows = sqlite3.connect(db).execute(
    "SELECT t.task, t.started_at, t.ended_at FROM task_tries t JOIN runs r ON r.id = t.run "
    "WHERE r.pipeline = ? ORDER BY t.task", (pipeline,)).fetchall()
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
gaps = sorted(ts(rows[i + 1][1]) - ts(rows[i][2]) for i in range(len(rows) - 1))
q = lambda p: gaps[min(len(gaps) - 1, int(p * len(gaps)))] * 1000
span = ts(rows[-1][2]) - ts(rows[0][1])
print(f"{q(0.5):.3f}\t{q(0.99):.3f}\t{span * 1000 / len(rows):.3f}")
