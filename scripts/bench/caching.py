#!/usr/bin/env python3
"""What caching saves: 1,000 risk_report jobs sharing a 20,000-token context, sent through
the built-in emulator, at each hit rate, cache TTL and priming policy. Prints one Markdown
row per run: the cost as a share of the standard price (the same requests on the Messages
API without caching), the share without caching (the batch discount alone), the hit rate
seen and the wall time from the first flush to the last result.

Usage: caching.py BIN [JOBS]   (run by scripts/bench-caching.sh, which builds BIN)
Only loopback is dialled: the server listens on 127.0.0.1 and its emulator is built in.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1]
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
CONTEXT_TOKENS = 20_000
API = "/api/v1/batch"


def call(url, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read() or b"null")


def research_note(tokens):
    """About `tokens` tokens of ASCII text (four characters a token)."""
    words = "rates energy semis margins guidance credit spreads volatility duration".split()
    rng = random.Random(7)
    text = []
    while sum(len(w) + 1 for w in text) < tokens * 4:
        text.append(rng.choice(words))
    return " ".join(text)


def run(hit_rate, ttl, priming):
    work = tempfile.mkdtemp()
    port = 20000 + random.randrange(20000)
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite://{work}/bench.db",
        AI_BATCH_ADDR=f"127.0.0.1:{port}",
        AI_BATCH_SCHEDULER="false",
        AI_BATCH_EMULATOR_DELAY_SECS="2",
        AI_BATCH_EMULATOR_CACHE_HIT_RATE=str(hit_rate),
        AI_BATCH_CACHE_TTL=ttl,
        AI_BATCH_ENQUEUE_PER_SEC="1000000",
        AI_BATCH_ENQUEUE_BURST="1000000",
        AI_BATCH_READS_PER_SEC="1000000",
        AI_BATCH_READS_BURST="1000000",
        RUST_LOG="warn",
    )
    env.pop("ANTHROPIC_API_KEY", None)

    def token(user, role):
        out = subprocess.run([BIN, "token", "create", "--user", user, "--role", role],
                             env=env, check=True, capture_output=True, text=True).stdout
        return out.strip().splitlines()[-1]

    admin, trader = token("bench-admin", "admin"), token("bench-trader", "trader")
    server = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(f"{work}/server.log", "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        context = call(url, trader, "POST", f"{API}/contexts",
                       {"name": "Risk methodology", "text": research_note(CONTEXT_TOKENS)})
        context_id = context["context"]["context_id"]
        jobs = [{"job_type": "risk_report", "payload": {"ticker": f"T{i:04}", "horizon_days": 10},
                 "context_id": context_id} for i in range(JOBS)]
        call(url, trader, "POST", f"{API}/enqueue/bulk", {"jobs": jobs})

        started = time.monotonic()
        if priming:
            # A one-request batch writes the prefix; the rest go once it has ended.
            call(url, admin, "POST", f"{API}/internal/flush", {"max_jobs": 1})
            drain(url, admin)
        call(url, admin, "POST", f"{API}/internal/flush", {"max_jobs": 10_000})
        drain(url, admin)
        elapsed = time.monotonic() - started
        stats = call(url, trader, "GET", f"{API}/stats")
    finally:
        server.terminate()
        server.wait()
    assert stats["completed_jobs"] == JOBS, stats
    paid = stats["total_cost_usd"]
    standard = paid + stats["total_savings_usd"]
    without_cache = standard - stats["total_saved_by_batching_usd"]
    read, written = stats["cache_read_tokens"], stats["cache_write_tokens"]
    return {
        "paid": paid,
        "share": paid / standard,
        "share_without": without_cache / standard,
        "hit_rate_seen": read / (read + written) if read + written else 0.0,
        "seconds": elapsed,
    }


def drain(url, admin):
    """Polls every open batch until none is left."""
    for _ in range(600):
        batches = call(url, admin, "GET", f"{API}/internal/batches")
        open_ids = [b["batch_id"] for b in batches["batches"]
                    if b["batch_id"] and not b["results_collected"] and not b["error"]]
        if not open_ids:
            return
        for batch_id in open_ids:
            call(url, admin, "POST", f"{API}/internal/poll", {"batch_id": batch_id})
        time.sleep(0.5)
    raise SystemExit("batches did not end")


def main():
    print(f"# {JOBS} risk_report jobs sharing a {CONTEXT_TOKENS:,}-token context, "
          f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    print("| hit rate | writes | priming | cost / standard | without cache | "
          "hit rate seen | first flush to last result |")
    print("|---|---|---|---|---|---|---|")
    for hit_rate in (0.64, 0.30, 0.98):
        for ttl in ("5m", "1h"):
            for priming in (False, True):
                r = run(hit_rate, ttl, priming)
                print(f"| {hit_rate:.2f} | {ttl} | {'yes' if priming else 'no'} | "
                      f"{100 * r['share']:.1f}% (${r['paid']:.2f}) | {100 * r['share_without']:.1f}% | "
                      f"{100 * r['hit_rate_seen']:.1f}% | {r['seconds']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
