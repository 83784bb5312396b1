#!/usr/bin/env bash
# Requests per second for the public pages with wrk, against the same server's
# cheapest page (no database) as the baseline measured in the same run.
#   bash bench/bench_pages.sh        (make bench runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
tmp=$(mktemp -d)
port=${BENCH_PORT:-5091}
export DATABASE_URL="sqlite:///$tmp/bench.db" OUTBOX_DIR="$tmp/outbox" SECRET_KEY=bench
.venv/bin/flask --app funnel db upgrade >/dev/null
.venv/bin/flask --app funnel serve --port "$port" --no-worker >"$tmp/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/check-your-inbox" >/dev/null && break; sleep 0.2; done

rps() {  # requests/s for one path
  wrk -t2 -c8 -d5s "http://127.0.0.1:$port$1" | awk '/Requests\/sec/ {print $2}'
}
base=$(rps /check-your-inbox)
printf '%-34s %10s req/s\n' "/check-your-inbox (baseline)" "$base"
for path in / /free-plan; do
  r=$(rps "$path")
  printf '%-34s %10s req/s  %5.2fx baseline (counts a visit: one insert)\n' "$path" "$r" \
    "$(echo "$r / $base" | bc -l)"
done
