-- Mixed load: 80% retrieve (random note in BENCH_ID_MIN..BENCH_ID_MAX), 10% create, 5% patch,
-- 5% stats. The choice is random per request, so the split holds over any long enough run.
dofile((os.getenv("BENCH_HTTP_DIR") or "bench/http") .. "/common.lua")

setup = bench.setup
function init(args) bench.seed() end

local create_body = '{"title":"mix note","original_text":"Hello from the mixed benchmark.",' ..
                    '"original_language":"en"}'
local counter = 0

function request()
  local r = math.random(100)
  if r <= 80 then
    return wrk.format("GET", "/api/v1/notes/" .. bench.random_id() .. "/")
  elseif r <= 90 then
    return wrk.format("POST", "/api/v1/notes/", bench.json_headers, create_body)
  elseif r <= 95 then
    counter = counter + 1
    return wrk.format("PATCH", "/api/v1/notes/" .. bench.random_id() .. "/", bench.json_headers,
                      '{"title":"mix patch ' .. counter .. '"}')
  end
  return wrk.format("GET", "/api/v1/stats/")
end

function done(summary, latency, requests) bench.report("mix", summary, latency) end
