-- wrk script for POST /v1/orders/route with a fresh order id per request.
-- Usage: wrk -t2 -c128 -d20s --latency -s benches/route.lua http://127.0.0.1:8181 -- ORDERS.jsonl KEY PREFIX
-- ORDERS.jsonl: orders to cycle through (ship orders only are used; the first 20,000).

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local path, key, prefix = args[1], args[2], args[3] or "wrk"
  templates = {}
  for line in io.lines(path) do
    if line:find('"mode":"ship"', 1, true) then
      -- Keep everything after the order id: `"created_at":...}`.
      local rest = line:match('^{"order_id":"[^"]*",(.*)$')
      if rest then
        templates[#templates + 1] = rest
      end
    end
    if #templates >= 20000 then break end
  end
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }
  id_prefix = prefix .. "-" .. tid .. "-"
  counter = 0
end

function request()
  counter = counter + 1
  local body = '{"order_id":"' .. id_prefix .. counter .. '",' .. templates[(counter % #templates) + 1]
  return wrk.format("POST", "/v1/orders/route", headers, body)
end

function response(status, headers, body)
  if status ~= 200 then
    errors = (errors or 0) + 1
  end
end
