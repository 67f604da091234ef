#!/usr/bin/env bash
# Build the kiro2api image with podman and check it from outside the container:
#   * /healthz answers, a streamed /v1/messages completes, /metrics counts it (demo mode);
#   * the client key and the accounts come from podman secrets (*_FILE and a secret path);
#   * rotated refresh tokens land in the KIRO_STATE_DIR volume (the secret is read-only);
#   * the process runs as a non-root user and the image holds no C compiler;
#   * the HEALTHCHECK passes, SIGTERM (podman stop) exits 0 quickly;
#   * compose.yaml works with podman-compose.
#
# Usage: tests/ops/container_check.sh            (from anywhere; needs root podman)
# Exit codes: 0 passed, 77 skipped (podman unusable here; reason on stderr), other: failed.
# Environment: IMAGE (default localhost/kiro2api:check), PYTHON (default python3),
#   PODMAN_SANDBOX (path of podman-sandbox.sh; used when present to prepare podman),
#   SKIP_COMPOSE=1 to leave out the podman-compose part.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE="${IMAGE:-localhost/kiro2api:check}"
PYTHON="${PYTHON:-python3}"
SANDBOX="${PODMAN_SANDBOX:-$ROOT/../shared/tools/podman-sandbox.sh}"
RUN_ID="k2a-check-$$"
CLIENT_KEY="sk-check-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
DEMO_REFRESH_TOKEN="aorDEMO-kiro2api-simulator-demo-refresh-token"
STARTED=$SECONDS

say()  { printf '[container-check] %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
skip() { say "SKIP: $*"; exit 77; }

# ------------------------------------------------------------------ is podman usable here?
command -v podman >/dev/null || skip "podman is not installed"
[ "$(id -u)" = 0 ] || skip "needs root (only rootful podman is set up on this machine)"
WORK="$(mktemp -d)"

cleanup() {
    set +e
    podman rm -f -t 0 "$RUN_ID" >/dev/null 2>&1
    podman secret rm "$RUN_ID-key" "$RUN_ID-accounts" >/dev/null 2>&1
    podman volume rm -f "$RUN_ID-state" >/dev/null 2>&1
    if [ -f "$WORK/compose.yaml" ]; then
        (cd "$WORK" && podman-compose -p "$RUN_ID" down -v >/dev/null 2>&1)
        podman network rm -f "${RUN_ID}_default" >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -x "$SANDBOX" ]; then
    # This machine needs a prepared podman (containers.conf, a local python:3.11-slim).
    "$SANDBOX" setup >/dev/null 2>&1 || skip "podman-sandbox.sh setup failed"
    podman image exists python:3.11-slim || "$SANDBOX" base >&2 || skip "no python:3.11-slim base"
fi
podman info >/dev/null 2>&1 || skip "podman info failed: $(podman info 2>&1 | tail -1)"

# Small HTTP client on the host side (no curl dependency): prints "STATUS\nBODY".
http() {  # http METHOD URL [JSON-BODY] [KEY]
    "$PYTHON" - "$@" <<'PY'
import sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 and sys.argv[3] else None
req = urllib.request.Request(url, data=body, method=method)
req.add_header("content-type", "application/json")
if len(sys.argv) > 4:
    req.add_header("x-api-key", sys.argv[4])
try:
    with urllib.request.urlopen(req, timeout=30) as resp:
        status, data = resp.status, resp.read()
except urllib.error.HTTPError as exc:
    status, data = exc.code, exc.read()
except OSError as exc:
    status, data = 0, str(exc).encode()
sys.stdout.write(f"{status}\n{data.decode(errors='replace')}")
PY
}

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_healthy() {  # wait_healthy BASE_URL
    local deadline=$((SECONDS + 60)) out
    while [ $SECONDS -lt $deadline ]; do
        out="$(http GET "$1/healthz")"
        [ "${out%%$'\n'*}" = 200 ] && return 0
        sleep 0.5
    done
    fail "$1/healthz did not answer 200 within 60 s (last: $out)"
}

check_stream() {  # check_stream BASE_URL KEY
    local body out
    body='{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"[[sim:echo chunks=3 text=hello-from-outside]]"}]}'
    out="$(http POST "$1/v1/messages" "$body" "$2")"
    [ "${out%%$'\n'*}" = 200 ] || fail "streamed /v1/messages: ${out:0:300}"
    grep -q '^event: message_stop' <<<"$out" || fail "stream has no message_stop: ${out:0:500}"
    [ "$(grep -c '"text_delta"' <<<"$out")" = 3 ] || fail "expected 3 text deltas: ${out:0:800}"
    say "streamed /v1/messages: ok ($(grep -c '^event: ' <<<"$out") events)"
}

# ------------------------------------------------------------------ build
say "building $IMAGE from $ROOT"
if [ -x "$SANDBOX" ]; then
    "$SANDBOX" build "$ROOT" "$IMAGE" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; fail "build"; }
else
    podman build --format docker -f "$ROOT/Containerfile" -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 \
        || { tail -40 "$WORK/build.log" >&2; fail "build"; }
fi
say "built in $((SECONDS - STARTED)) s"

# ------------------------------------------------------------------ image contents
compilers="$(podman run --rm --network none "$IMAGE" sh -c \
    'for c in gcc cc c++ g++ clang tcc x86_64-linux-gnu-gcc; do command -v "$c"; done; true')"
[ -z "$compilers" ] || fail "the runtime image holds a compiler: $compilers"
say "no compiler in the image: ok"
health="$(podman image inspect -f '{{json .Config.Healthcheck}}' "$IMAGE" 2>/dev/null || true)"
grep -q healthz <<<"$health" || fail "the image has no HEALTHCHECK against /healthz ($health)"

# ------------------------------------------------------------------ run with secrets
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT"
printf '%s' "$CLIENT_KEY" | podman secret create "$RUN_ID-key" - >/dev/null
printf '[{"auth": "Social", "refreshToken": "%s"}]' "$DEMO_REFRESH_TOKEN" \
    | podman secret create "$RUN_ID-accounts" - >/dev/null
podman run -d --name "$RUN_ID" -p "127.0.0.1:$PORT:8080" \
    --secret "$RUN_ID-key" --secret "$RUN_ID-accounts" \
    -e KIRO_CLIENT_TOKEN_FILE="/run/secrets/$RUN_ID-key" \
    -e KIRO_AUTH_TOKEN="/run/secrets/$RUN_ID-accounts" \
    -e KIRO_SHUTDOWN_GRACE=5 \
    -v "$RUN_ID-state:/var/lib/kiro2api" \
    "$IMAGE" kiro2api serve --demo >/dev/null 2>"$WORK/run.err" \
    || { cat "$WORK/run.err" >&2; fail "podman run"; }
wait_healthy "$URL"
say "/healthz: ok"

out="$(http POST "$URL/v1/messages" '{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' "wrong-key")"
[ "${out%%$'\n'*}" = 401 ] || fail "a wrong key was not refused: ${out:0:200}"
check_stream "$URL" "$CLIENT_KEY"

metrics="$(http GET "$URL/metrics")"
grep -q 'kiro2api_requests_total{model="claude-sonnet-4-5",route="/v1/messages",status="200"} 1.0' \
    <<<"$metrics" || fail "/metrics does not count the stream: $(grep requests_total <<<"$metrics")"
grep -q '^kiro2api_account_state{account="0",state="active"} 1.0' <<<"$metrics" \
    || fail "/metrics lacks the account state"
say "/metrics: ok"

uid="$(podman exec "$RUN_ID" python -c 'import os; print(os.stat("/proc/1").st_uid, os.getuid())')"
[ "$uid" = "10001 10001" ] || fail "the server does not run as uid 10001 (got: $uid)"
say "runs as non-root (uid 10001): ok"

podman exec "$RUN_ID" test -s /var/lib/kiro2api/credentials.json \
    || fail "no rotated-token state file in the /var/lib/kiro2api volume"
podman exec "$RUN_ID" grep -q "$DEMO_REFRESH_TOKEN" /var/lib/kiro2api/credentials.json \
    || fail "the state file does not hold the rotated refresh token"
say "rotated refresh token saved in the volume: ok"

podman healthcheck run "$RUN_ID" >/dev/null 2>&1 || fail "podman healthcheck run reports unhealthy"
say "HEALTHCHECK: healthy"

t0=$SECONDS
podman stop -t 20 "$RUN_ID" >/dev/null 2>&1
code="$(podman inspect -f '{{.State.ExitCode}}' "$RUN_ID")"
[ "$code" = 0 ] || { podman logs "$RUN_ID" 2>&1 | tail -20 >&2; fail "exit code after SIGTERM: $code"; }
[ $((SECONDS - t0)) -lt 10 ] || fail "podman stop took $((SECONDS - t0)) s (SIGTERM ignored?)"
# Read the whole log before grepping: `podman logs | grep -q` under pipefail fails at random
# (grep exits at the first match, podman gets SIGPIPE). conmon may also still be writing the
# last lines when `podman stop` returns on a busy machine, hence the retries.
graceful=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    logs="$(podman logs "$RUN_ID" 2>&1 || true)"
    if grep -q "shutting down gracefully" <<<"$logs"; then graceful=1; break; fi
    sleep 1
done
[ -n "$graceful" ] || { podman logs "$RUN_ID" 2>&1 | tail -15 >&2; fail "no graceful shutdown in the log"; }
say "SIGTERM: exit 0 after $((SECONDS - t0)) s"

# ------------------------------------------------------------------ compose
if [ "${SKIP_COMPOSE:-0}" != 1 ]; then
    command -v podman-compose >/dev/null || skip "podman-compose is not installed (container part passed)"
    CPORT="$(free_port)"
    mkdir -p "$WORK/secrets"
    printf '%s' "$CLIENT_KEY" >"$WORK/secrets/client_token"
    printf '[{"auth": "Social", "refreshToken": "%s"}]' "$DEMO_REFRESH_TOKEN" >"$WORK/secrets/accounts.json"
    # The same file, built from the checkout and using the image just built.
    sed -e "s|context: \.|context: $ROOT|" -e "s|image: localhost/kiro2api:latest|image: $IMAGE|" \
        "$ROOT/compose.yaml" >"$WORK/compose.yaml"
    (cd "$WORK" && KIRO_DEMO=true KIRO_PUBLISH_PORT="$CPORT" \
        podman-compose -p "$RUN_ID" up -d >"$WORK/compose.log" 2>&1) \
        || { tail -30 "$WORK/compose.log" >&2; fail "podman-compose up"; }
    wait_healthy "http://127.0.0.1:$CPORT"
    check_stream "http://127.0.0.1:$CPORT" "$CLIENT_KEY"
    (cd "$WORK" && podman-compose -p "$RUN_ID" down -v >>"$WORK/compose.log" 2>&1) \
        || { tail -30 "$WORK/compose.log" >&2; fail "podman-compose down"; }
    say "podman-compose up/down: ok"
fi

say "PASSED in $((SECONDS - STARTED)) s"
