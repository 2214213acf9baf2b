-- Load for `wrk` against the serve example: POST /recommend with a
-- "currently listening" context that walks through the demo catalog's ids
-- (trk-00001 .. trk-06000), so caches see realistic variety.
--   wrk -t2 -c8 -d30s --latency -s examples/serve/wrk.lua http://127.0.0.1:8080
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local id = string.format("trk-%05d", (n * 37) % 6000 + 1)
  return wrk.format(nil, "/recommend", nil, '{"context":{"listening":{"item":"' .. id .. '"}},"k":10}')
end
