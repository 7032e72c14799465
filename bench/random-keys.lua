-- wrk script: every request is a new order under a fresh random Idempotency-Key (24 hex
-- digits, as clients that send UUIDs or random tokens do). Random keys land anywhere in
-- the key indexes; bench/new-orders.lua's counter keys land at one end of them.
wrk.method = "POST"
wrk.body = '{"symbol":"AAPL","side":"buy","quantity":100}'
wrk.headers["Content-Type"] = "application/json"
function init(args)
  math.randomseed(os.time() * 1000 + math.random(1, 1e6))
end
function request()
  wrk.headers["Idempotency-Key"] = string.format("%08x%08x%08x",
    math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  return wrk.format()
end
