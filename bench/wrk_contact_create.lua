-- wrk script for bench/http_write.py: one unique email + Idempotency-Key per request.
--
-- Usage: wrk ... -s bench/wrk_contact_create.lua <url> -- <path> <run_prefix> <api_key> <expect_id>
--   path       e.g. /v1/contact.create or /echo
--   run_prefix random per wrk invocation, so warm-up and rounds never reuse an email/key
--   expect_id  "1" to count 200 responses whose body lacks "id" as bad (krabs), "0" for echo
-- done() prints a single "WRK_JSON {...}" line that http_write.py parses.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  path = args[1] or "/v1/contact.create"
  prefix = args[2] or "run"
  api_key = args[3] or ""
  expect_id = (args[4] or "1") == "1"
  counter = 0
  non200 = 0
  bad_body = 0
  first_error = ""
  headers = {
    ["Authorization"] = "Bearer " .. api_key,
    ["Content-Type"] = "application/json",
  }
end

function request()
  counter = counter + 1
  local uniq = string.format("%s-%d-%d", prefix, tid, counter)
  headers["Idempotency-Key"] = "bench-" .. uniq
  local body = string.format(
    '{"display_name": "Ada %d", "identities": [{"kind": "email", "value": "ada%d-%s@bench.krabs.dev"}]}',
    counter, counter, uniq)
  return wrk.format("POST", path, headers, body)
end

function response(status, resp_headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_error == "" then
      first_error = tostring(status) .. " " .. string.sub(body or "", 1, 200)
    end
  elseif expect_id and not string.find(body or "", '"id"', 1, true) then
    bad_body = bad_body + 1
  end
end

local function json_str(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local n200, bad, first = 0, 0, ""
  for _, t in ipairs(threads) do
    n200 = n200 + t:get("non200")
    bad = bad + t:get("bad_body")
    if first == "" then first = t:get("first_error") end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non200": %d, "bad_body": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"first_error": %s}\n',
    summary.requests, summary.duration, n200, bad,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, json_str(first)))
end
