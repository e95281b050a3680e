#!/usr/bin/env bash
# The collector's load benchmark (issue 13): wrk (Debian's package, installed if missing) against
# a release segment-collector on 127.0.0.1, both on this machine's cores, default flush interval
# (20 ms), every 200 durable (written and fsynced). Two runs: single-message requests to
# /v1/track (~250-byte bodies) and 100-message requests to /v1/batch (~25 KB bodies), not
# gzipped. Prints requests/s, messages/s, p50/p99 latency to the 200 and the collector's peak
# RSS, then checks that the archives hold exactly one line per message answered 200.
# Not a test: the figures depend on the machine.
# Usage: scripts/collector-bench.sh [SECONDS [CONFIG]]  (CONFIG: a collector.yml for the other
# settings, e.g. flush.interval_ms or archives.gzip_level; the script sets listen, out, sources)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
config=()
[ -n "${2:-}" ] && config=(--config "$(realpath "$2")")
if ! command -v wrk >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -q wrk >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q wrk >/dev/null; }
fi
swift build -c release --product segment-collector >/dev/null
bin="$(swift build -c release --show-bin-path)/segment-collector"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# ~250-byte messages as a server library sends them.
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def message(i):
    return {"type": "track", "event": "Product Viewed", "userId": f"user-{i:06d}",
            "properties": {"product_id": f"sku-{i:05d}", "price": 19.99, "currency": "EUR"},
            "context": {"library": {"name": "analytics-python"}},
            "timestamp": "2026-11-28T10:00:00.000Z", "messageId": f"bench-{i:08d}-0000-0000-000000000000"}
single = json.dumps(message(1), separators=(",", ":"))
batch = json.dumps({"batch": [message(i) for i in range(100)], "sentAt": "2026-11-28T10:00:00.100Z"}, separators=(",", ":"))
for name, body in [("single", single), ("batch", batch)]:
    path = f"/v1/{'track' if name == 'single' else 'batch'}"
    lua = f'''wrk.method = "POST"
wrk.path = "{path}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic QkVOQ0hfS0VZOg=="
wrk.body = {json.dumps(body)}
'''
    open(f"{work}/{name}.lua", "w").write(lua)
    print(f"{name}: {len(body)} bytes per request")
PY

run() {
    local name="$1" per="$2"
    local out="$work/out-$name"
    "$bin" "${config[@]}" --listen 127.0.0.1:0 --out "$out" --source BENCH_KEY=bench --log-level warning >"$work/$name.port" 2>"$work/$name.err" &
    local pid=$!
    for _ in $(seq 1 100); do grep -q listening "$work/$name.port" 2>/dev/null && break; sleep 0.1; done
    local port; port="$(sed -n 's/listening on 127.0.0.1://p' "$work/$name.port")"
    timeout $((seconds + 30)) wrk -t2 -c16 -d"${seconds}s" --latency -s "$work/$name.lua" "http://127.0.0.1:$port" >"$work/$name.wrk"
    local rss; rss="$(awk '/VmHWM/ {print $2}' /proc/$pid/status)"
    kill -TERM "$pid"
    wait "$pid"
    python3 - "$work/$name.wrk" "$per" "$rss" "$out" "$name" <<'PY'
import glob, gzip, re, sys
text, per, rss, out, name = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
requests = int(re.search(r"(\d+) requests in", text).group(1))
seconds = float(re.search(r"requests in ([\d.]+)s", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
bad = int(bad.group(1)) if bad else 0
def ms(label):
    m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
lines = sum(sum(1 for _ in gzip.open(f)) for f in glob.glob(f"{out}/segment-logs/*/*/*.gz"))
ok = requests - bad
print(f"{name:6} {requests / seconds:9.0f} requests/s {ok * per / seconds:9.0f} messages/s  "
      f"p50 {ms('50'):.2f} ms  p99 {ms('99'):.2f} ms  peak RSS {rss / 1024:.0f} MB  non-200: {bad}")
# wrk counts the requests whose answers arrived; those still in flight when it stopped may
# have been written too, so the archives may hold a few more, never fewer.
if lines < ok * per:
    print(f"FAIL {name}: {ok * per} messages answered 200 but only {lines} lines in the archives")
    sys.exit(1)
print(f"       archives hold {lines} lines for {ok * per} messages answered 200")
PY
}

echo "segment-collector $(uname -m), $(nproc) cores, wrk -t2 -c16 -d${seconds}s"
run single 1
run batch 100
