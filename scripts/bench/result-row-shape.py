#!/usr/bin/env python3
"""Does a result stored in a table of its own make SQLite's ingest write cheaper? (issue 22,
item 4a). Builds the real schema from migrations/sqlite, marks 20,000 jobs processing, then
writes their results 1,000 at a time as the ingest does (one multi-row UPDATE ... FROM VALUES,
guarded by batch and status), either into the job row or into a `job_results` table beside
an UPDATE of the small columns. Prints the median chunk time of each, twice, side by side.
    python3 scripts/bench/result-row-shape.py [result-words]   (default 30: ~1 KB a result)
"""
import glob, json, os, random, sqlite3, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOBS, CHUNK = 20_000, 1_000
WORDS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
RESULT = json.dumps({"id": "msg_x", "type": "message", "role": "assistant",
                     "model": "claude-sonnet-4-5",
                     "content": [{"type": "text", "text": "lorem ipsum dolor sit " * WORDS}],
                     "stop_reason": "end_turn", "usage": {"input_tokens": 512, "output_tokens": 300}})


def seeded(path):
    db = sqlite3.connect(path, isolation_level=None)
    for migration in sorted(glob.glob(os.path.join(ROOT, "migrations/sqlite/*.sql"))):
        db.executescript(open(migration).read())
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("INSERT INTO users (id, name, role, created_at) VALUES ('u', 'u', 'trader', 0)")
    db.execute("CREATE TABLE job_results (job_id TEXT PRIMARY KEY, result TEXT NOT NULL) WITHOUT ROWID")
    db.execute("BEGIN")
    for i in range(JOBS):
        payload = json.dumps({"portfolio_id": f"P-{i}", "notes": "quarterly review of risk " * 3,
                              "holdings": [{"ticker": random.choice(["NVDA", "AAPL", "MSFT"]),
                                            "weight": 0.1 * k} for k in range(8)]})
        db.execute("INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, request_hash, "
                   "batch_id, created_at, updated_at) VALUES (?, 'u', 'risk_report', 'processing', 5, ?, "
                   "'h', 'B', ?, ?)", (f"job-{i:08d}", payload, i, i))
    db.execute("COMMIT")
    return db


def ingest(db, own_table):
    times = []
    for start in range(0, JOBS, CHUNK):
        values = ",".join(["(?, ?, ?, ?)"] * CHUNK)
        binds = [x for i in range(start, start + CHUNK) for x in (f"job-{i:08d}", RESULT, 512, 300)]
        began = time.perf_counter()
        db.execute("BEGIN")
        guard = "FROM v WHERE jobs.id = v.id AND +jobs.batch_id = 'B' AND jobs.status = 'processing' RETURNING jobs.id"
        if own_table:
            db.execute(f"WITH v (id, result, i, o) AS (VALUES {values}) "
                       "INSERT INTO job_results SELECT id, result FROM v", binds)
            db.execute(f"WITH v (id, result, i, o) AS (VALUES {values}) UPDATE jobs SET status = 'completed', "
                       f"input_tokens = v.i, output_tokens = v.o, completed_at = 1, updated_at = 1 {guard}",
                       binds).fetchall()
        else:
            db.execute(f"WITH v (id, result, i, o) AS (VALUES {values}) UPDATE jobs SET status = 'completed', "
                       f"result = v.result, input_tokens = v.i, output_tokens = v.o, completed_at = 1, "
                       f"updated_at = 1 {guard}", binds).fetchall()
        db.execute("COMMIT")
        times.append((time.perf_counter() - began) * 1000)
    return sorted(times)[len(times) // 2], sum(times)


print(f"# result-row-shape.py, SQLite {sqlite3.sqlite_version}, result {len(RESULT)} bytes, "
      f"{JOBS} jobs in chunks of {CHUNK}")
print("| where the result goes | median chunk (ms) | all chunks (ms) |")
print("|---|---|---|")
with tempfile.TemporaryDirectory() as work:
    for run, own_table in enumerate([False, True, False, True]):
        median, total = ingest(seeded(os.path.join(work, f"{run}.db")), own_table)
        where = "a table of its own" if own_table else "the job row (today)"
        print(f"| {where} | {median:.1f} | {total:.0f} |")
