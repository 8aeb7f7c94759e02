#!/usr/bin/env bash
# Checks the shipped dashboard, scrape config and alerting rules against a real
# Prometheus: installs Debian's prometheus package, runs promtool on
# dashboards/prometheus.yml and dashboards/alerts.yml, starts the service with
# a delivery workload (one endpoint that accepts, one that returns 500), lets a
# Prometheus on 127.0.0.1 scrape it every second, and sends every PromQL
# expression of the dashboard and the rules to Prometheus' query API through
# .ci/check_promql.py. Every process it starts is stopped by its pid on exit.
#
# Needs root for apt-get (skipped when promtool and prometheus are on PATH),
# python3 with PyYAML, and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# Seconds that check_promql.py keeps retrying dashboard queries without data.
WAIT_SECONDS=${PROMQL_WAIT_SECONDS:-120}
# Upper bound on the workload loop, in seconds; it also stops when the checks end.
WORKLOAD_SECONDS=${WORKLOAD_SECONDS:-300}

work=$(mktemp -d)
pids=()
created_policy=""

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$created_policy" ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    if [[ $status -ne 0 ]]; then
        for log in service listen failing prometheus workload; do
            if [[ -s "$work/$log.log" ]]; then
                echo "--- last lines of $log.log"
                tail -n 40 "$work/$log.log"
            fi
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

echo "== install prometheus"
# PROMETHEUS_INSTALL=always runs apt-get even when both tools are on PATH.
if [[ "${PROMETHEUS_INSTALL:-}" == always ]] ||
    ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    # The package's maintainer scripts would start a system Prometheus; a
    # policy-rc.d that returns 101 forbids it, so only the one below runs.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=yes
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends prometheus
fi
prometheus --version | head -n 1

echo "== promtool check config / rules"
promtool check config dashboards/prometheus.yml
promtool check rules dashboards/alerts.yml

echo "== build the service"
# The test build, not cargo build: dev-dependencies switch on extra features,
# so alternating the two would recompile the workspace each time.
cargo test --workspace --locked --no-run
bin="$repo/target/debug/argus-webhooks"

# Waits up to 30 s for a process to print "listening on http://ADDR" into
# $1 and prints ADDR.
wait_for_address() {
    local log=$1 pid=$2 address=""
    for _ in $(seq 300); do
        address=$(sed -n 's/^listening on http:\/\///p' "$log" | head -n 1)
        if [[ -n "$address" ]]; then
            echo "$address"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the process writing $log exited" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "no listening line in $log after 30 s" >&2
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

echo "== start the service"
jwt_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
cat >"$work/service.toml" <<EOF
[store]
data_dir = "$work/data"
fsync = false

[auth]
hs256_secret = "$jwt_secret"

[delivery]
allow_http = true
ssrf_exempt = ["127.0.0.1/32"]
# Fuzzed URLs must never make the service contact or resolve another host.
allowed_networks = ["127.0.0.0/8", "::1/128"]
static_dns_only = true
time_scale = 0.01

[log]
format = "json"
filter = "info"
EOF
"$bin" serve --config "$work/service.toml" --listen 127.0.0.1:0 \
    >"$work/service.out" 2>"$work/service.log" &
pids+=($!)
service=$(wait_for_address "$work/service.out" "${pids[-1]}")
echo "service on $service"

# A receiver that accepts every signed event.
secret=$(python3 -c 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(32)).decode())')
"$bin" listen --port 0 --secret "$secret" >"$work/listen.log" 2>&1 &
pids+=($!)
listen=$(wait_for_address "$work/listen.log" "${pids[-1]}")

# An endpoint that passes verification and returns 500 for every event.
cat >"$work/failing.py" <<'EOF'
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Failing(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            message = json.loads(body)
        except ValueError:
            message = {}
        if isinstance(message, dict) and message.get("type") == "webhook.verification":
            answer = json.dumps({"challenge": message.get("challenge")}).encode()
            self.send_response(200)
        else:
            answer = b'{"error": "failing on purpose"}'
            self.send_response(500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Failing)
print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
EOF
python3 "$work/failing.py" >"$work/failing.log" 2>&1 &
pids+=($!)
failing=$(wait_for_address "$work/failing.log" "${pids[-1]}")

token() {
    "$bin" token --config "$work/service.toml" --account "$1" ${2:+--scope "$2"}
}
user_token=$(token ci-observability)
publisher_token=$(token platform webhooks:publish)

api() {
    local method=$1 path=$2 token=$3 body=${4:-}
    curl -sS --fail-with-body -X "$method" "http://$service$path" \
        -H "authorization: Bearer $token" -H 'content-type: application/json' \
        ${body:+--data "$body"}
}

echo "== create subscriptions"
api POST /v1/subscriptions "$user_token" \
    "{\"url\": \"http://$listen/hooks\", \"secret\": \"$secret\", \"eventTypes\": [\"property.created\", \"lease.updated\"]}" >/dev/null
api POST /v1/subscriptions "$user_token" \
    "{\"url\": \"http://$failing/hooks\", \"eventTypes\": [\"lease.updated\"], \"retryPolicy\": {\"maxRetries\": 1, \"retryIntervalSeconds\": 10, \"backoffMultiplier\": 1}}" >/dev/null
paused=$(api POST /v1/subscriptions "$user_token" \
    "{\"url\": \"http://$listen/paused\", \"secret\": \"$secret\", \"eventTypes\": [\"tenant.created\"]}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
api POST "/v1/subscriptions/$paused/pause" "$user_token" >/dev/null

echo "== start the workload"
workload() {
    local deadline=$((SECONDS + WORKLOAD_SECONDS))
    while ((SECONDS < deadline)); do
        for type in property.created lease.updated tenant.created; do
            api POST /v1/platform/events "$publisher_token" \
                "{\"eventType\": \"$type\", \"accountId\": \"ci-observability\", \"resourceType\": \"${type%%.*}\", \"resourceId\": \"$(python3 -c 'import uuid; print(uuid.uuid4())')\", \"data\": {\"source\": \"ci\"}}" \
                >/dev/null || echo "publish failed"
        done
        # Some 404 responses for the API error panel.
        curl -sS -o /dev/null "http://$service/v1/no-such-route" || true
        api GET /v1/events "$user_token" >/dev/null || echo "list failed"
        sleep 0.5
    done
}
workload >"$work/workload.log" 2>&1 &
pids+=($!)

echo "== start prometheus"
prometheus_port=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $repo/dashboards/alerts.yml
scrape_configs:
  - job_name: argus-webhooks
    metrics_path: /metrics
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["$service"]
EOF
promtool check config "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" \
    --web.listen-address="127.0.0.1:$prometheus_port" \
    --storage.tsdb.path="$work/prometheus-data" \
    >"$work/prometheus.log" 2>&1 &
pids+=($!)

echo "== check every PromQL expression"
python3 .ci/check_promql.py --prometheus "http://127.0.0.1:$prometheus_port" \
    --dashboard dashboards/argus-webhooks.json --rules dashboards/alerts.yml \
    --wait "$WAIT_SECONDS" --retry-every 2

echo "== the scrape target is up"
up=$(curl -sS "http://127.0.0.1:$prometheus_port/api/v1/query" --data-urlencode 'query=up{job="argus-webhooks"}' |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "missing")')
if [[ "$up" != "1" ]]; then
    echo "up{job=\"argus-webhooks\"} is $up, expected 1"
    exit 1
fi
echo "prometheus checks passed"
