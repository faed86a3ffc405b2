-- Patch: PATCH the title of an existing note picked at random from BENCH_ID_MIN..BENCH_ID_MAX
-- (spread over many rows so the run measures the update path, not one row's lock).
dofile((os.getenv("BENCH_HTTP_DIR") or "bench/http") .. "/common.lua")

setup = bench.setup
function init(args) bench.seed() end

local counter = 0
function request()
  counter = counter + 1
  return wrk.format("PATCH", "/api/v1/notes/" .. bench.random_id() .. "/", bench.json_headers,
                    '{"title":"patched ' .. counter .. '"}')
end

function done(summary, latency, requests) bench.report("patch", summary, latency) end
