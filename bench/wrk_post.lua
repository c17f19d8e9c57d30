-- POSTs a post-call webhook with a fresh call id each time, so every request is new work (no duplicates).
local counter = 0
local thread_id = 0
local prefix = "bench"

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  prefix = string.format("%s-%04x", os.getenv("BENCH_PREFIX") or "bench", tid or 0)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  counter = counter + 1
  local body = string.format(
    '{"direction":"outbound","uuid":"%s-%012d","destination":"France","duration":6,"charge":"0.822",' ..
    '"date":"2023-08-21T06:43:36.000Z","disposition":"answered","from":"14302287001","to":"33170363950",' ..
    '"per_minute":"0.027"}', prefix, counter)
  return wrk.format(nil, nil, nil, body)
end
