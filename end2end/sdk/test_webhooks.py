"""The README's webhook check, run as written: a real `ai-batch serve` delivers a job's
webhook to a receiver here, and the `standardwebhooks` library (the Standard Webhooks
project's own) verifies it; a tampered body or another secret does not pass.
"""

import http.server
import json
import os
import pathlib
import queue
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("AI_BATCH_BIN", str(ROOT / "target" / "debug" / "ai-batch"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method="GET", token=None, body=None):
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def server():
    port = free_port()
    work = tempfile.mkdtemp()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite://{work}/hooks.db",
        "AI_BATCH_ADDR": f"127.0.0.1:{port}",
        "AI_BATCH_PROVIDER": "emulator",
        "AI_BATCH_EMULATOR_DELAY_SECS": "1",
        "AI_BATCH_AUTO_FLUSH_MIN_JOBS": "1",
        "AI_BATCH_POLL_INTERVAL_SECS": "1",
        "AI_BATCH_SCHEDULER_TICK_MS": "200",
        "AI_BATCH_WEBHOOK_ALLOW_HTTP_LOOPBACK": "true",
        "AI_BATCH_PRICES": str(ROOT / "config" / "prices.toml"),
        "RUST_LOG": "warn",
    }
    proc = subprocess.Popen([BIN, "serve"], stdout=subprocess.PIPE, text=True, env=env)
    token = None
    for line in proc.stdout:
        if line.startswith("aib_"):
            token = line.strip()
            break
    assert token, "the first start prints the admin's token"
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            call(f"{url}/healthz")
            break
        except OSError:
            time.sleep(0.1)
    yield url, token
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def receiver():
    deliveries = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            deliveries.put((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/hook", deliveries
    httpd.shutdown()


def test_a_delivery_verifies_with_the_standard_webhooks_library(server, receiver):
    url, token = server
    hook, deliveries = receiver
    secret = call(f"{url}/api/v1/webhooks/secret", "POST", token, {})["secret"]
    job = call(f"{url}/api/v1/batch/enqueue", "POST", token,
               {"job_type": "risk_report", "payload": {"ticker": "AAPL"}, "callback_url": hook})["job"]
    headers, body = deliveries.get(timeout=60)

    # As the README shows it.
    delivered = Webhook(secret).verify(body, headers)
    assert delivered["id"] == job["id"]
    assert delivered["status"] == "completed"
    assert headers["webhook-id"] == f"msg_{job['id']}"

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"completed", b"cancelled"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(body, headers)
