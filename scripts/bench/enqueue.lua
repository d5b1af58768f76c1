-- wrk: POST one job per request, authenticated with $TOKEN.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"job_type": "risk_report", "payload": {"ticker": "AAPL", "positions": [{"symbol": "AAPL", "qty": 120}]}, "priority": 60}'
