-- Mixed load: 80% retrieve (random note in BENCH_ID_MIN..BENCH_ID_MAX), 10% create, 5% patch,
-- 5% stats. The choice is random per request, so the split holds over any long enough run.
-- BENCH_MIX="retrieve,create,patch,stats" percentages (default "80,10,5,5") changes the split,
-- e.g. "85,10,5,0" to see what the O(notes) stats query costs the mix.
dofile((os.getenv("BENCH_HTTP_DIR") or "bench/http") .. "/common.lua")

setup = bench.setup
function init(args) bench.seed() end

local create_body = '{"title":"mix note","original_text":"Hello from the mixed benchmark.",' ..
                    '"original_language":"en"}'
local counter = 0

local split = {}
for v in string.gmatch(os.getenv("BENCH_MIX") or "80,10,5,5", "[^,]+") do
  split[#split + 1] = tonumber(v)
end
local upto_retrieve = split[1]
local upto_create = upto_retrieve + split[2]
local upto_patch = upto_create + split[3]
local total = upto_patch + split[4]

function request()
  local r = math.random(total)
  if r <= upto_retrieve then
    return wrk.format("GET", "/api/v1/notes/" .. bench.random_id() .. "/")
  elseif r <= upto_create then
    return wrk.format("POST", "/api/v1/notes/", bench.json_headers, create_body)
  elseif r <= upto_patch then
    counter = counter + 1
    return wrk.format("PATCH", "/api/v1/notes/" .. bench.random_id() .. "/", bench.json_headers,
                      '{"title":"mix patch ' .. counter .. '"}')
  end
  return wrk.format("GET", "/api/v1/stats/")
end

function done(summary, latency, requests) bench.report("mix", summary, latency) end
