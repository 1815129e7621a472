-- POST {"kwargs":{"x":1}} to the URL, and print one machine-readable line at
-- the end (bench/run parses it): requests, duration, errors, latency
-- percentiles in microseconds.
--   wrk -t2 -c16 -d10s --latency -s bench/post.lua URL
-- BENCH_AUTH (env) adds "Authorization: Bearer <it>"; BENCH_CLOSE=1 sends
-- "Connection: close" (wrk then connects again for every request).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"kwargs":{"x":1}}'
wrk.headers["Content-Type"] = "application/json"
-- BENCH_CLOSE=1: no keep-alive, a new connection (and TLS handshake) per call
if os.getenv("BENCH_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d connect_err=%d read_err=%d write_err=%d " ..
    "status_err=%d timeout_err=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.0f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
