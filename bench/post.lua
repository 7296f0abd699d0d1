-- wrk script: POST realistic 1-2 KB conversations, a new session on every request, so each
-- request does the producer's full work (INSERT + publish), the same as the floor view.
local words = {"hola", "me", "llamo", "quiero", "saber", "sobre", "la", "oportunidad", "de",
  "negocio", "trabajo", "en", "una", "empresa", "tengo", "tiempo", "familia", "precio",
  "inversion", "gracias", "por", "favor", "como", "funciona", "el", "plan", "mensual"}
local counter = 0
local started = 0

function setup(thread)
  started = started + 1
  thread:set("tid", started)
end

local function sentence(n)
  local out = {}
  for i = 1, n do out[i] = words[math.random(#words)] end
  return table.concat(out, " ")
end

local function body(session)
  local msgs = {}
  local turns = math.random(4, 6)
  for i = 1, turns do
    local role = (i % 2 == 1) and "user" or "assistant"
    msgs[i] = string.format('{"role":"%s","content":"%s"}', role, sentence(math.random(25, 45)))
  end
  return string.format(
    '{"messages":[%s],"sessionId":"%s","fingerprint":"fp-%s","metadata":{"url":"https://example.com/oportunidad","userAgent":"Mozilla/5.0 (bench)","timestamp":"2026-01-01T00:00:00Z"}}',
    table.concat(msgs, ","), session, session)
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  prefix = (args[1] or "wrk") .. "-" .. tostring(tid or 0)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

-- Every request comes from a visitor of its own behind one proxy (the bench runs with
-- NEXUS_NUM_PROXIES=1), so the per-IP throttle does its production work without one loopback
-- address hitting its limit.
local function visitor_ip()
  return string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
end

function request()
  counter = counter + 1
  wrk.headers["X-Forwarded-For"] = visitor_ip()
  return wrk.format(nil, nil, nil, body(prefix .. "-" .. counter))
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    'WRKJSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"errors":%d,"non2xx":%d}\n',
    summary.requests, secs, summary.requests / secs, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
