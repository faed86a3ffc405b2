-- Create: POST /api/v1/notes/ with a small JSON note (each answer is a durable insert).
dofile((os.getenv("BENCH_HTTP_DIR") or "bench/http") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/api/v1/notes/"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"bench note","original_text":"The quick brown fox jumps over the lazy dog.",' ..
           '"original_language":"en"}'

function done(summary, latency, requests) bench.report("create", summary, latency) end
