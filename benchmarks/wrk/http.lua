-- wrk script of benchmarks/bench_http.py. Run with one connection per thread (-t N -c N): a thread's Lua
-- state then drives one connection, so a session's steps follow each other on it.
--
--   wrk ... -s http.lua URL -- get /constant    GET /constant, again and again
--   wrk ... -s http.lua URL -- lifecycle        POST /sessions (201, the id read from the JSON answer), then
--                                               POST /sessions/{id}/start, then POST /sessions/{id}/complete
--
-- done() prints one JSON line: requests, duration, completed sessions, errors and latency percentiles (µs).

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("number", counter)
   table.insert(threads, thread)
end

local mode, path
local step = 0
local session_id
local user
local headers = { ["Content-Type"] = "application/json" }
sessions = 0
failed = 0

function init(args)
   mode = args[1] or "get"
   path = args[2] or "/"
   user = string.format("user-%03d", (number or 0) % 100)
end

local function create_body()
   return '{"user_id":"' .. user .. '","workspace_id":"ws-bench","module_name":"bench",' ..
      '"metadata":{"client":"benchmarks","attempt":1},"ttl_seconds":3600,"performer_id":"' .. user .. '"}'
end

function request()
   if mode == "get" then
      return wrk.format("GET", path)
   end
   if step == 0 then
      return wrk.format("POST", "/sessions", headers, create_body())
   end
   local event = step == 1 and "start" or "complete"
   return wrk.format("POST", "/sessions/" .. session_id .. "/" .. event, headers,
                     '{"performer_id":"' .. user .. '"}')
end

function response(status, headers, body)
   if mode == "get" then
      return
   end
   if step == 0 then
      if status == 201 then
         session_id = string.match(body, '"id":"([^"]+)"')
         step = 1
      else
         failed = failed + 1
      end
   elseif step == 1 then
      if status == 200 then
         step = 2
      else
         failed = failed + 1
         step = 0
      end
   else
      if status == 200 then
         sessions = sessions + 1
      else
         failed = failed + 1
      end
      step = 0
   end
end

function done(summary, latency, requests)
   local total_sessions, total_failed = 0, 0
   for _, thread in ipairs(threads) do
      total_sessions = total_sessions + (thread:get("sessions") or 0)
      total_failed = total_failed + (thread:get("failed") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      '\nWRK_RESULT {"requests":%d,"duration_us":%d,"sessions":%d,"failed":%d,"errors":{"connect":%d,' ..
      '"read":%d,"write":%d,"status":%d,"timeout":%d},"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, total_sessions, total_failed, e.connect, e.read, e.write, e.status,
      e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
