-- wrk script: every request is a new limit order under a fresh Idempotency-Key, as
-- tenant "t5000" (bench/limits.sh gives that tenant a token and every control).
local counter = 0
local prefix
function init(args)
  prefix = string.format("%d-%d-", os.time(), math.random(1, 1e9))
end
wrk.method = "POST"
wrk.body = '{"symbol":"AAPL","side":"buy","quantity":100,"type":"limit","limitPrice":"101.25","timeInForce":"day"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. counter
  return wrk.format()
end
