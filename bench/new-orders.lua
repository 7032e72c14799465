-- wrk script: every request is a new order under a fresh Idempotency-Key.
-- Keys are unique per wrk thread and run (thread id + counter + start time).
local counter = 0
local prefix
function init(args)
  prefix = string.format("%d-%d-", os.time(), math.random(1, 1e9))
end
wrk.method = "POST"
wrk.body = '{"symbol":"AAPL","side":"buy","quantity":100}'
wrk.headers["Content-Type"] = "application/json"
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. counter
  return wrk.format()
end
