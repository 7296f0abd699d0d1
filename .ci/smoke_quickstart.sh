#!/usr/bin/env bash
# Quick-start smoke test, as a newcomer would do it: `make run` from this checkout with a clean
# environment (no DATABASE_URL, no REDIS_URL: SQLite and the embedded valkey under var/), the
# seed conversation POSTed until its job is completed, a duplicate flagged, then Ctrl-C
# (SIGINT to the process group) must stop everything and free ports 8000, 5555 and 6390.
#
#   bash .ci/smoke_quickstart.sh        (SMOKE_START_TIMEOUT=180 covers a first install)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=http://127.0.0.1:8000
PORTS=(8000 5555 "${NEXUS_DEV_REDIS_PORT:-6390}")
START_TIMEOUT=${SMOKE_START_TIMEOUT:-180}
JOB_TIMEOUT=${SMOKE_JOB_TIMEOUT:-60}
STOP_TIMEOUT=${SMOKE_STOP_TIMEOUT:-60}
WORK=$(mktemp -d)
LOG=$WORK/make-run.log
RUN_PID=""

say() { echo "smoke | $*"; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# JSON field from a file, with whichever Python is at hand (the venv exists once make run ran).
field() { "${PY:-python3}" -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else str(v).lower() if isinstance(v,bool) else v)' "$1" "$2"; }

fail() {
    say "FAILED: $*"
    say "--- last 60 lines of the make run log ($LOG) ---"
    tail -n 60 "$LOG" 2>/dev/null || true
    exit 1
}

cleanup() {
    # Whatever happened, leave nothing of ours running: TERM the group, then KILL it.
    if [[ -n "$RUN_PID" ]] && kill -0 "$RUN_PID" 2>/dev/null; then
        kill -TERM -- "-$RUN_PID" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$RUN_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

for port in "${PORTS[@]}"; do
    if listening "$port"; then
        fail "port $port is already in use (another \`make run\`?). Stop it and run this again."
    fi
done

say "starting make run (clean environment, log $LOG)"
t0=$SECONDS
# setsid: make run leads its own process group, like a terminal's foreground job; its pid is
# the group id (setsid does not fork when the caller is not a group leader).
setsid env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 make run >"$LOG" 2>&1 </dev/null &
RUN_PID=$!

until curl -fsS -o /dev/null --max-time 2 "$BASE/healthz" 2>/dev/null; do
    kill -0 "$RUN_PID" 2>/dev/null || fail "make run exited before web answered"
    (( SECONDS - t0 < START_TIMEOUT )) || fail "web did not answer /healthz within ${START_TIMEOUT}s"
    sleep 1
done
say "web answered /healthz after $((SECONDS - t0))s"
# make run says "ready" once a worker's heartbeat is in: from then on a POST is processed at once.
until grep -q "devrun | ready in" "$LOG"; do
    kill -0 "$RUN_PID" 2>/dev/null || fail "make run exited before it was ready"
    (( SECONDS - t0 < START_TIMEOUT )) || fail "make run was not ready within ${START_TIMEOUT}s"
    sleep 0.5
done
say "$(grep -m1 "devrun | ready in" "$LOG")"
PY=$PWD/.venv/bin/python

session="ci-smoke-$(date +%s)"
body=$(printf '{"messages":[{"role":"user","content":"Hola, me llamo Juan Pérez"},{"role":"assistant","content":"Hola Juan, ¿en qué puedo ayudarte?"},{"role":"user","content":"Quiero saber sobre las oportunidades de inversión"}],"sessionId":"%s","fingerprint":"test-fingerprint-456"}' "$session")

post_started=$(date +%s.%N)
read -r code post_s < <(curl -sS -o "$WORK/post.json" -w '%{http_code} %{time_total}\n' --max-time 10 \
    -H 'Content-Type: application/json' -d "$body" "$BASE/api/nexus/producer")
[[ "$code" == 202 ]] || fail "POST answered $code, expected 202: $(cat "$WORK/post.json")"
queue_id=$(field "$WORK/post.json" queueId)
say "POST 202 in ${post_s}s, queueId $queue_id"

# wait_job REVISION: poll the public jobs endpoint until that revision is completed.
wait_job() {
    local want=$1 status="" done_rev=0 t1=$SECONDS
    until [[ "$status" == completed && "$done_rev" == "$want" ]]; do
        (( SECONDS - t1 < JOB_TIMEOUT )) || fail "job $queue_id r$want not completed within ${JOB_TIMEOUT}s (last: $status r$done_rev)"
        sleep 0.1
        curl -fsS -o "$WORK/job.json" --max-time 5 "$BASE/api/nexus/jobs/$queue_id" || continue
        status=$(field "$WORK/job.json" status)
        done_rev=$(field "$WORK/job.json" processedRevision)
        [[ "$status" != failed ]] || fail "job failed: $(cat "$WORK/job.json")"
    done
}
wait_job 1
say "job completed $(awk -v a="$post_started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s after the POST: $(cat "$WORK/job.json")"

# prospect_field FIELD: the prospect of the seed fingerprint, read with the app's own settings.
prospect_field() {
    env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 "$PY" manage.py shell -v 0 -c \
        "from prospects.models import Prospect; print(Prospect.objects.get(fingerprint='test-fingerprint-456').$1)" 2>/dev/null
}
nombre=$(prospect_field nombre)
[[ "$nombre" == "Juan Pérez" ]] || fail "prospect nombre is '$nombre', expected 'Juan Pérez'"
say "prospect for test-fingerprint-456: nombre '$nombre'"

code=$(curl -sS -o "$WORK/dup.json" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -d "$body" "$BASE/api/nexus/producer")
[[ "$code" == 202 && "$(field "$WORK/dup.json" duplicate)" == true ]] \
    || fail "duplicate POST answered $code without \"duplicate\": true: $(cat "$WORK/dup.json")"
say "duplicate POST answered 202 with \"duplicate\": true"

longer=$(printf '{"messages":[{"role":"user","content":"Hola, me llamo Juan Pérez"},{"role":"assistant","content":"Hola Juan, ¿en qué puedo ayudarte?"},{"role":"user","content":"Quiero saber sobre las oportunidades de inversión"},{"role":"assistant","content":"¡Genial! ¿Cómo te contacto?"},{"role":"user","content":"Mi correo es juan.perez@example.com"}],"sessionId":"%s","fingerprint":"test-fingerprint-456"}' "$session")
code=$(curl -sS -o "$WORK/longer.json" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -d "$longer" "$BASE/api/nexus/producer")
[[ "$code" == 202 ]] || fail "longer transcript answered $code: $(cat "$WORK/longer.json")"
wait_job 2
email=$(prospect_field email)
[[ "$email" == "juan.perez@example.com" ]] || fail "prospect email is '$email' after revision 2"
say "longer transcript: revision 2 completed, prospect now has the email"

say "sending SIGINT to the make run process group ($RUN_PID)"
t2=$SECONDS
kill -INT -- "-$RUN_PID"
while kill -0 "$RUN_PID" 2>/dev/null; do
    (( SECONDS - t2 < STOP_TIMEOUT )) || fail "make run still running ${STOP_TIMEOUT}s after SIGINT"
    sleep 0.5
done
set +e
wait "$RUN_PID"
rc=$?
set -e
RUN_PID=""
# make itself re-raises SIGINT after its recipe ends (130); the supervisor's own verdict is
# its last line, printed only after every child and valkey stopped and it exited 0.
grep -q "devrun | all processes stopped" "$LOG" || fail "make run did not report a clean stop (exit $rc)"
[[ $rc == 0 || $rc == 130 ]] || fail "make run exited $rc after SIGINT"
sleep 0.5
for port in "${PORTS[@]}"; do
    listening "$port" && fail "port $port still has a listener after make run stopped"
done
say "stopped cleanly in $((SECONDS - t2))s (make exit $rc); ports ${PORTS[*]} are free"
say "OK: quick start works end to end in $((SECONDS - t0))s"
