-- GET /api/personalization for ids spread over WRK_IDS visitors named WRK_PREFIX.N.
-- With WRK_RATE set (requests/s for the whole run), each connection paces itself to its
-- share of that rate, so latency is measured at a fixed offered load rather than at
-- saturation (wrk alone keeps every connection busy, where latency = connections / rate).
local count = tonumber(os.getenv("WRK_IDS") or "1000")
local prefix = os.getenv("WRK_PREFIX") or "bench"
local rate = tonumber(os.getenv("WRK_RATE") or "0")
local connections = tonumber(os.getenv("WRK_CONNECTIONS") or "1")
local path = os.getenv("WRK_PATH")
local interval = 0
if rate > 0 then interval = connections * 1000 / rate end

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed + os.time())
end

function delay()
  if interval == 0 then return 0 end
  return math.floor(interval * (0.5 + math.random()))
end

function request()
  if path then return wrk.format("GET", path) end
  return wrk.format("GET", "/api/personalization?user_id=" .. prefix .. "." .. math.random(1, count))
end

function done(summary, latency, requests)
  io.write(string.format(
    "JSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, \"non2xx\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"timeout\": %d, " ..
    "\"p50_ms\": %.2f, \"p95_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
