-- Shared helpers for the transnotes wrk scenarios. Each scenario script loads this file with
-- dofile(); BENCH_HTTP_DIR names its folder (run.sh sets it; default: bench/http from the repo root).
--
-- Environment read by the scenarios (all optional):
--   BENCH_NOTE_ID            the note the retrieve scenario reads (default 1)
--   BENCH_ID_MIN/BENCH_ID_MAX the id range the mix and patch scenarios pick from (default 1..1000)
--   BENCH_NAME               label printed in the result line (default: the scenario's name)

bench = {}

function bench.env_int(name, default)
  local v = tonumber(os.getenv(name) or "")
  if v == nil then return default end
  return math.floor(v)
end

bench.id_min = bench.env_int("BENCH_ID_MIN", 1)
bench.id_max = bench.env_int("BENCH_ID_MAX", 1000)

-- Each wrk thread runs its own Lua state; give each a distinct random stream.
local thread_counter = 0
function bench.setup(thread)
  thread_counter = thread_counter + 1
  thread:set("bench_thread_id", thread_counter)
end

function bench.seed()
  local tid = bench_thread_id or 0
  math.randomseed(os.time() * 1000 + tid * 7919)
  -- LuaJIT's first values after seeding are poorly mixed; discard a few.
  for _ = 1, 10 do math.random() end
end

function bench.random_id()
  return math.random(bench.id_min, bench.id_max)
end

bench.json_headers = { ["Content-Type"] = "application/json" }

-- With auth on, run.sh logs in a bench user and passes its access token: every request carries it
-- (wrk.format with an explicit header table ignores wrk.headers, so both get it).
local token = os.getenv("BENCH_TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
  bench.json_headers["Authorization"] = "Bearer " .. token
end

-- One machine-readable line per run; run.sh parses it. Latencies are in milliseconds.
-- Non-2xx/3xx answers and socket errors are reported so a fast run of errors can't pass as good.
function bench.report(name, summary, latency)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH scenario=%s req_s=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f " ..
    "requests=%d non2xx=%d socket_errors=%d\n",
    os.getenv("BENCH_NAME") or name, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.status, socket_errors))
end
