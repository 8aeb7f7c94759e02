#!/usr/bin/env bash
# Fuzzes the management API against its own OpenAPI document with
# schemathesis. Starts the debug binary on 127.0.0.1 with a temporary data
# dir, seeds a subscription and an event, and mints a token that may publish.
# Then runs every operation with checks for server errors and for status
# code, content type and response schema conformance. Exits non-zero when
# schemathesis reports a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-40}
# Upper bound on the whole fuzzing run, in seconds.
TIME_LIMIT=${SCHEMATHESIS_TIME_LIMIT:-900}

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Built through a test target, so the binary shares the features that
# `cargo test` already compiled (a plain `cargo build` would recompile).
cargo test --locked --test openapi --no-run
BIN=target/debug/argus-webhooks

WORK=$(mktemp -d)
SERVICE_PID=""
RECEIVER_PID=""
cleanup() {
    for pid in $SERVICE_PID $RECEIVER_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# The same relaxations as `serve --dev`, with a fixed HS256 secret so the
# token below verifies. Generated subscription URLs point nowhere, so their
# verification fails with the documented 400.
cat >"$WORK/config.toml" <<EOF
[store]
data_dir = "$WORK/data"
fsync = false

[auth]
hs256_secret = "schemathesis-secret-0123456789abcdef"

[delivery]
allow_http = true
ssrf_exempt = ["127.0.0.1/32"]
# Fuzzed URLs must never make the service contact or resolve another host.
allowed_networks = ["127.0.0.0/8", "::1/128"]
static_dns_only = true
connect_timeout_seconds = 1
total_timeout_seconds = 2

[log]
filter = "warn"
EOF

# A receiver that passes verification, so the seeded subscriptions pass it
# and their deliveries succeed.
RECEIVER_SECRET="whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
"$BIN" listen --port 0 --secret "$RECEIVER_SECRET" >"$WORK/receiver.out" 2>&1 &
RECEIVER_PID=$!

"$BIN" serve --config "$WORK/config.toml" --listen 127.0.0.1:0 \
    >"$WORK/stdout" 2>"$WORK/service.log" &
SERVICE_PID=$!

# Prints the address from a process's "listening on http://ADDR" line.
wait_for_address() {
    local file=$1 pid=$2 address=""
    for _ in $(seq 1 300); do
        address=$(sed -n 's#^listening on http://##p' "$file" | head -n 1)
        if [ -n "$address" ]; then
            echo "$address"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "process $pid exited at start" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "process $pid did not report its address within 30 s" >&2
    return 1
}
ADDRESS=$(wait_for_address "$WORK/stdout" "$SERVICE_PID") || {
    cat "$WORK/service.log" >&2
    exit 1
}
RECEIVER=$(wait_for_address "$WORK/receiver.out" "$RECEIVER_PID") || {
    cat "$WORK/receiver.out" >&2
    exit 1
}
BASE="http://$ADDRESS"

TOKEN=$("$BIN" token --config "$WORK/config.toml" --account schemathesis \
    --scope webhooks:publish --ttl 2h)

# Posts JSON body $2 to path $1 and prints the response field at dotted path $3.
post_json() {
    curl --silent --show-error --fail-with-body --noproxy '*' \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "$2" "$BASE$1" |
        python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if key.isdigit() else value[key]
print(value)' "$3"
}

# Seed data, so operations on ids reach their logic instead of a 404: one
# subscription for every operation except delete, which gets its own, and
# one delivered event.
subscription() {
    echo '{"url":"http://'"$RECEIVER/$1"'","eventTypes":["property.created"],"secret":"'"$RECEIVER_SECRET"'"}'
}
SUBSCRIPTION_ID=$(post_json /v1/subscriptions "$(subscription hooks)" id)
DELETE_ID=$(post_json /v1/subscriptions "$(subscription deleted)" id)
event='{"eventType":"property.created","accountId":"schemathesis","resourceType":"property","resourceId":"8f14e45f-ceea-467f-a0e6-b4c2a4a6c1d2","data":{"name":"Harbour Point"}}'
EVENT_ID=$(post_json /v1/platform/events "$event" events.0.id)

cat >"$WORK/schemathesis.toml" <<EOF
[parameters]
"path.subscriptionId" = "$SUBSCRIPTION_ID"
"path.eventId" = "$EVENT_ID"

[[operations]]
include-operation-id = "deleteSubscription"
parameters = { "path.subscriptionId" = "$DELETE_ID" }
EOF

# One worker, because two run on threads, where CPython 3.11 can fail
# hypothesis's ast.parse with "AST constructor recursion depth mismatch"
# (python/cpython#106905) and end the run with an error.
status=0
timeout "$TIME_LIMIT" "$VENV/bin/st" --config-file "$WORK/schemathesis.toml" \
    run "$BASE/v1/openapi.json" \
    --url "$BASE" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color \
    --workers 1 | tee "$WORK/schemathesis.out" || status=$?

if [ "$status" -ne 0 ]; then
    echo "== service log (last 100 lines)" >&2
    tail -n 100 "$WORK/service.log" >&2
    exit "$status"
fi
# schemathesis closes with a pytest-style "N warnings in …" line, which reads
# as a run without tests, so end with the plain count of passed test cases.
passed=$(sed -n 's/.* generated, \([0-9]*\) passed.*/\1/p' "$WORK/schemathesis.out" | tail -n 1)
echo "schemathesis: ${passed:-0} passed, 0 failed"
