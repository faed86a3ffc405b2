-- Cached retrieve: GET one existing note again and again (BENCH_NOTE_ID, default 1).
-- No request() hook: wrk sends one prebuilt request, so the client costs as little as possible
-- (the same script drives the nginx ceiling run).
dofile((os.getenv("BENCH_HTTP_DIR") or "bench/http") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/api/v1/notes/" .. bench.env_int("BENCH_NOTE_ID", 1) .. "/"
wrk.headers["Accept"] = "application/json"

function done(summary, latency, requests) bench.report("retrieve", summary, latency) end
