-- wrk script: every request retries one key whose order is already placed.
wrk.method = "POST"
wrk.body = '{"symbol":"AAPL","side":"buy","quantity":100}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "bench-replay"
