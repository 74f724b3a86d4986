#!/usr/bin/env bash
# The demo's memory under load: 30 s of wrk against a recorded route (PUT /v1/config as a
# member: 403, `security.access.denied`), with 8 clients searching the audit API at the same
# time when there is a store (NOSEARCH=1 leaves them out). Prints the resident set before
# and after, its peak (VmHWM) and the request rates.
#
#   cargo build --release -p audit-examples --bin demo
#   benches/demo_rss.sh none 3811
#   benches/demo_rss.sh sqlite:audit.db 3812
#
# Needs wrk, curl and python3. The demo runs in a fresh temporary directory.
set -u
STORE=$1; PORT=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
D=$(mktemp -d); cd $D
$ROOT/target/release/demo --addr 127.0.0.1:$PORT --store $STORE > demo.log 2>&1 &
PID=$!
for i in $(seq 50); do curl -s -o /dev/null localhost:$PORT/ready && break; sleep 0.2; done
TOKEN=$(curl -s -X POST localhost:$PORT/auth/login -H 'content-type: application/json' -d '{"email":"member@acme.test","password":"member-password"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
ADMIN=$(curl -s -X POST localhost:$PORT/auth/login -H 'content-type: application/json' -d '{"email":"admin@acme.test","password":"admin-password"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
B=$(grep VmRSS /proc/$PID/status | awk '{print $2}')
cat > put.lua <<L
wrk.method = "PUT"
wrk.body = '{"retentionDays":7}'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $TOKEN"
L
wrk -t2 -c16 -d30s -s put.lua http://127.0.0.1:$PORT/v1/config > wrk1.txt 2>&1 &
W1=$!
if [ "$STORE" != "none" ] && [ -z "${NOSEARCH:-}" ]; then
  wrk -t1 -c8 -d30s -H "authorization: Bearer $ADMIN" "http://127.0.0.1:$PORT/api/audit/logs?eventType=security.*&limit=100" > wrk2.txt 2>&1 &
fi
wait $W1; sleep 1
A=$(grep VmRSS /proc/$PID/status | awk '{print $2}'); H=$(grep VmHWM /proc/$PID/status | awk '{print $2}')
echo "store=$STORE rss_before_kb=$B rss_after_kb=$A hwm_kb=$H put_rps=$(grep Requests/sec wrk1.txt | awk '{print $2}') search_rps=$(grep Requests/sec wrk2.txt 2>/dev/null | awk '{print $2}')"
kill -TERM $PID; wait $PID 2>/dev/null
cd /; rm -rf "$D"
