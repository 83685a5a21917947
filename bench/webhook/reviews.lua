-- wrk script: POST a rotating set of AdmissionReview bodies and check every answer.
-- BODY_LIST (a file listing body files, one a line) and MUTATE_PATH come from the environment.
-- Every body is built so that the webhook patches it: an answer without "allowed":true and a
-- JSONPatch is counted as a failure ("bad"), as is any status other than 200.

local bodies = {}
local threads = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

for line in io.lines(os.getenv("BODY_LIST")) do
  bodies[#bodies + 1] = read(line)
end

local path = os.getenv("MUTATE_PATH") or "/mutate/bench"
local index = 0
bad = 0  -- globals: done() reads them per thread with thread:get()
ok = 0

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  index = math.random(#bodies) - 1
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[index])
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"allowed":%s*true')
     and string.find(body, '"patchType":%s*"JSONPatch"') then
    ok = ok + 1
  else
    bad = bad + 1
    if bad <= 3 then
      io.stderr:write("bad answer " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local good, wrong = 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("ok")
    wrong = wrong + thread:get("bad")
  end
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "ok": %d, "bad": %d, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max, good, wrong,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
