-- Stats: GET /api/v1/stats/.
dofile((os.getenv("BENCH_HTTP_DIR") or "bench/http") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/api/v1/stats/"
wrk.headers["Accept"] = "application/json"

function done(summary, latency, requests) bench.report("stats", summary, latency) end
