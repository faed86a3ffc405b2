-- List: GET /api/v1/notes/?limit=1000 (seed at least 1000 notes first).
dofile((os.getenv("BENCH_HTTP_DIR") or "bench/http") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/api/v1/notes/?limit=1000"
wrk.headers["Accept"] = "application/json"

function done(summary, latency, requests) bench.report("list", summary, latency) end
