#!/usr/bin/env bash
# Quick-start smoke test, as a newcomer would do it: `make run` from this checkout with a clean
# environment (no DATABASE_URL, no REDIS_URL: the embedded PostgreSQL and valkey), the seed
# conversation POSTed until its job is completed, read back by a manage.py that has nothing set, a duplicate flagged without a second
# extraction, a longer transcript as revision 2, a webhook added with `manage.py webhooks add`
# and a chat that turns hot delivering a signed prospect.hot (issue 14's demo), then Ctrl-C (SIGINT to the process group)
# must stop everything and free ports 8000, 5555 and 6390. Then the Claude path: the fake
# Messages API server started alone, `make run` again with ANTHROPIC_BASE_URL pointing at it
# and any ANTHROPIC_API_KEY, and the seed extracted by the claude extractor (~15 s more).
# Its state (PostgreSQL cluster, valkey AOF, secret key) lives in a var/ of its own
# (NEXUS_VAR_DIR in a temporary folder, removed at the end), never in the checkout's var/.
#
#   bash .ci/smoke_quickstart.sh        (SMOKE_START_TIMEOUT=180 covers a first install)
#   SMOKE_CLAUDE=0 bash .ci/smoke_quickstart.sh   offline phase only
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=http://127.0.0.1:8000
PORTS=(8000 5555 "${NEXUS_DEV_REDIS_PORT:-6390}")
START_TIMEOUT=${SMOKE_START_TIMEOUT:-180}
JOB_TIMEOUT=${SMOKE_JOB_TIMEOUT:-60}
STOP_TIMEOUT=${SMOKE_STOP_TIMEOUT:-60}
WORK=$(mktemp -d)
LOG=$WORK/make-run.log
# A fresh var/ of its own: a first start (initdb) as a newcomer has it, and the user's own
# var/ database never gets the smoke test's sessions.
export NEXUS_VAR_DIR=$WORK/var
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

FAKE_PID=""
FAKE_PORT=${SMOKE_FAKE_PORT:-8765}
HOOK_PID=""
HOOK_PORT=${SMOKE_HOOK_PORT:-8766}

cleanup() {
    # Whatever happened, leave nothing of ours running: TERM the group, then KILL it.
    if [[ -n "$RUN_PID" ]] && kill -0 "$RUN_PID" 2>/dev/null; then
        kill -TERM -- "-$RUN_PID" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$RUN_PID" 2>/dev/null || true
    fi
    if [[ -n "$FAKE_PID" ]]; then kill "$FAKE_PID" 2>/dev/null || true; fi
    if [[ -n "$HOOK_PID" ]]; then kill "$HOOK_PID" 2>/dev/null || true; fi
    # PostgreSQL detaches from make run (pg_ctl): after a hard stop it may still run. SIGINT is
    # its fast shutdown.
    local pg_pid
    pg_pid=$(head -n 1 "$NEXUS_VAR_DIR/postgres/postmaster.pid" 2>/dev/null || true)
    if [[ -n "$pg_pid" ]] && kill -0 "$pg_pid" 2>/dev/null; then
        kill -INT "$pg_pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for port in "${PORTS[@]}"; do
    if listening "$port"; then
        fail "port $port is already in use (another \`make run\`?). Stop it and run this again."
    fi
done

# start_run [VAR=value...]: `make run` with a clean environment plus the given variables, until
# it says ready.
start_run() {
    say "starting make run (clean environment${*:+ plus $*}, log $LOG)"
    t0=$SECONDS
    # setsid: make run leads its own process group, like a terminal's foreground job; its pid
    # is the group id (setsid does not fork when the caller is not a group leader).
    # NEXUS_DEV_REDIS_PORT passes through when set (PORTS above checks the same port).
    setsid env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 NEXUS_VAR_DIR="$NEXUS_VAR_DIR" \
        ${NEXUS_DEV_REDIS_PORT:+NEXUS_DEV_REDIS_PORT="$NEXUS_DEV_REDIS_PORT"} "$@" make run >"$LOG" 2>&1 </dev/null &
    RUN_PID=$!
    until curl -fsS -o /dev/null --max-time 2 "$BASE/healthz" 2>/dev/null; do
        kill -0 "$RUN_PID" 2>/dev/null || fail "make run exited before web answered"
        (( SECONDS - t0 < START_TIMEOUT )) || fail "web did not answer /healthz within ${START_TIMEOUT}s"
        sleep 1
    done
    say "web answered /healthz after $((SECONDS - t0))s"
    # "ready" once a worker's heartbeat is in: from then on a POST is processed at once.
    until grep -q "devrun | ready in" "$LOG"; do
        kill -0 "$RUN_PID" 2>/dev/null || fail "make run exited before it was ready"
        (( SECONDS - t0 < START_TIMEOUT )) || fail "make run was not ready within ${START_TIMEOUT}s"
        sleep 0.5
    done
    say "$(grep -m1 "devrun | ready in" "$LOG")"
}

# stop_run: Ctrl-C to the process group; everything must stop and free the ports.
stop_run() {
    say "sending SIGINT to the make run process group ($RUN_PID)"
    local t2=$SECONDS rc
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
}

smoke_started=$SECONDS
start_run
PY=$PWD/.venv/bin/python

seed_body() {
    printf '{"messages":[{"role":"user","content":"Hola, me llamo Juan Pérez"},{"role":"assistant","content":"Hola Juan, ¿en qué puedo ayudarte?"},{"role":"user","content":"Quiero saber sobre las oportunidades de inversión"}],"sessionId":"%s","fingerprint":"test-fingerprint-456"}' "$1"
}
session="ci-smoke-$(date +%s)"
body=$(seed_body "$session")

# post_seed: POST the seed body; sets queue_id, post_started and post_ms.
post_seed() {
    local code post_s
    post_started=$(date +%s.%N)
    read -r code post_s < <(curl -sS -o "$WORK/post.json" -w '%{http_code} %{time_total}\n' --max-time 10 \
        -H 'Content-Type: application/json' -d "$body" "$BASE/api/nexus/producer")
    [[ "$code" == 202 ]] || fail "POST answered $code, expected 202: $(cat "$WORK/post.json")"
    queue_id=$(field "$WORK/post.json" queueId)
    post_ms=$(awk -v s="$post_s" 'BEGIN{printf "%.1f", s * 1000}')
    say "POST 202 in ${post_ms} ms (target: well under 100 ms), queueId $queue_id"
}
post_seed

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
say "job completed $(awk -v a="$post_started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s after the POST (target: within 2 s): $(cat "$WORK/job.json")"

# django EXPR: evaluate EXPR with the app's own settings (development, nothing else set: like a
# second terminal, it must reach the database make run uses).
django() {
    env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 NEXUS_VAR_DIR="$NEXUS_VAR_DIR" "$PY" manage.py shell -v 0 -c \
        "from prospects.models import Prospect; from ingestion.models import Extraction; print($1)" 2>/dev/null
}
prospect_field() { django "Prospect.objects.get(fingerprint='test-fingerprint-456').$1"; }
extractions() { django "Extraction.objects.filter(job_id='$queue_id').count()"; }
nombre=$(prospect_field nombre)
[[ "$nombre" == "Juan Pérez" ]] || fail "prospect nombre is '$nombre', expected 'Juan Pérez'"
say "prospect for test-fingerprint-456: nombre '$nombre'"

# The quick start's next step: `make superuser` (answered from the environment here), then the
# development page at / points at the prospect list; a path under /api/ that is no endpoint
# answers JSON.
env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 NEXUS_VAR_DIR="$NEXUS_VAR_DIR" \
    DJANGO_SUPERUSER_USERNAME=smoke DJANGO_SUPERUSER_EMAIL=smoke@example.test \
    DJANGO_SUPERUSER_PASSWORD=smoke-password-not-a-secret \
    make --no-print-directory superuser >"$WORK/superuser.log" 2>&1 \
    || fail "make superuser failed: $(cat "$WORK/superuser.log")"
[[ "$(django "__import__('django.contrib.auth').contrib.auth.get_user_model().objects.filter(is_superuser=True).count()")" == 1 ]] \
    || fail "make superuser created no superuser"
curl -fsS --max-time 10 "$BASE/" | grep -q "/admin/prospects/prospect/" || fail "the page at / does not list the prospects"
code=$(curl -sS -o "$WORK/404.json" -w '%{http_code}' --max-time 10 "$BASE/api/nexus/jobs")
[[ "$code" == 404 && "$(field "$WORK/404.json" error)" == not_found ]] || fail "/api/nexus/jobs answered $code: $(cat "$WORK/404.json")"
say "make superuser made the first login; / lists the prospect list; /api/nexus/jobs is a JSON 404"

code=$(curl -sS -o "$WORK/dup.json" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -d "$body" "$BASE/api/nexus/producer")
[[ "$code" == 202 && "$(field "$WORK/dup.json" duplicate)" == true ]] \
    || fail "duplicate POST answered $code without \"duplicate\": true: $(cat "$WORK/dup.json")"
sleep 1  # a task it had wrongly published would have run by now
n=$(extractions)
[[ "$n" == 1 ]] || fail "after the duplicate POST the job has $n extractions, expected 1"
say "duplicate POST answered 202 with \"duplicate\": true; still 1 extraction"

longer=$(printf '{"messages":[{"role":"user","content":"Hola, me llamo Juan Pérez"},{"role":"assistant","content":"Hola Juan, ¿en qué puedo ayudarte?"},{"role":"user","content":"Quiero saber sobre las oportunidades de inversión"},{"role":"assistant","content":"¡Genial! ¿Cómo te contacto?"},{"role":"user","content":"Mi correo es juan.perez@example.com"}],"sessionId":"%s","fingerprint":"test-fingerprint-456"}' "$session")
code=$(curl -sS -o "$WORK/longer.json" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -d "$longer" "$BASE/api/nexus/producer")
[[ "$code" == 202 ]] || fail "longer transcript answered $code: $(cat "$WORK/longer.json")"
wait_job 2
email=$(prospect_field email)
[[ "$email" == "juan.perez@example.com" ]] || fail "prospect email is '$email' after revision 2"
n=$(extractions)
[[ "$n" == 2 ]] || fail "after revision 2 the job has $n extractions, expected 2"
say "longer transcript: revision 2 completed, prospect now has the email"

# Issue 14's demo: a webhook added with the command, a chat that turns a prospect hot, and a
# signed prospect.hot that the standardwebhooks verifier (tests/fakes/webhook_receiver.py)
# accepts. The offline extractor scores name + phone 8: caliente.
listening "$HOOK_PORT" && fail "port $HOOK_PORT (the webhook receiver) is already in use"
env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 NEXUS_VAR_DIR="$NEXUS_VAR_DIR" "$PY" manage.py webhooks add \
    "http://127.0.0.1:$HOOK_PORT/hook" --events prospect.hot >"$WORK/hook-add.log" 2>&1 \
    || fail "manage.py webhooks add failed: $(cat "$WORK/hook-add.log")"
secret=$(awk '$1 == "secret" {print $2}' "$WORK/hook-add.log")
[[ "$secret" == whsec_* ]] || fail "webhooks add printed no secret: $(cat "$WORK/hook-add.log")"
"$PY" -m tests.fakes.webhook_receiver --port "$HOOK_PORT" --secret "$secret" --out "$WORK/hooks.jsonl" \
    >"$WORK/receiver.log" 2>&1 &
HOOK_PID=$!
for _ in $(seq 1 50); do listening "$HOOK_PORT" && break; sleep 0.2; done
listening "$HOOK_PORT" || fail "the webhook receiver did not start: $(cat "$WORK/receiver.log")"
hot_session="ci-smoke-hot-$(date +%s)"
chat() {
    printf '{"messages":[%s],"sessionId":"%s","fingerprint":"smoke-hot-visitor"}' "$1" "$hot_session" \
        | curl -fsS -o /dev/null --max-time 10 -H 'Content-Type: application/json' -d @- "$BASE/api/nexus/producer" \
        || fail "the chat POST was refused"
}
turn1='{"role":"user","content":"Hola, me llamo Laura Prueba"}'
chat "$turn1"
sleep 1
chat "$turn1"',{"role":"assistant","content":"Hola Laura, ¿cómo te contacto?"},{"role":"user","content":"Mi teléfono es +34 600 123 456"}'
t3=$SECONDS
until grep -q '"type": "prospect.hot"' "$WORK/hooks.jsonl" 2>/dev/null; do
    (( SECONDS - t3 < JOB_TIMEOUT )) || fail "no prospect.hot reached the receiver within ${JOB_TIMEOUT}s"
    sleep 0.2
done
hot=$(grep -m1 '"type": "prospect.hot"' "$WORK/hooks.jsonl")
[[ "$hot" == *'"verified": true'* && "$hot" == *'"answered": 200'* ]] \
    || fail "prospect.hot did not verify with standardwebhooks: $hot"
hot_id=$(django "Prospect.objects.get(fingerprint='smoke-hot-visitor').pk")
[[ "$hot" == *"\"prospect_id\": $hot_id,"* ]] || fail "prospect.hot is not for the hot prospect $hot_id: $hot"
[[ "$(grep -c . "$WORK/hooks.jsonl")" == 1 ]] || fail "the receiver got more than the one prospect.hot: $(cat "$WORK/hooks.jsonl")"
say "webhooks add + a chat that turned hot: signed prospect.hot verified by standardwebhooks in $((SECONDS - t3))s"
kill "$HOOK_PID" 2>/dev/null || true
HOOK_PID=""
stop_run

if [[ "${SMOKE_CLAUDE:-1}" != 0 ]]; then
    listening "$FAKE_PORT" && fail "port $FAKE_PORT (the fake Messages API) is already in use"
    "$PY" -m tests.fakes.claude_api --port "$FAKE_PORT" --latency 0.2 >"$WORK/fake.log" 2>&1 &
    FAKE_PID=$!
    for _ in $(seq 1 50); do listening "$FAKE_PORT" && break; sleep 0.2; done
    listening "$FAKE_PORT" || fail "the fake Messages API did not start: $(cat "$WORK/fake.log")"
    say "fake Messages API on 127.0.0.1:$FAKE_PORT"
    start_run ANTHROPIC_BASE_URL="http://127.0.0.1:$FAKE_PORT" ANTHROPIC_API_KEY=any-key
    grep -q "devrun | extractor claude" "$LOG" || fail "make run did not choose the claude extractor"
    body=$(seed_body "ci-smoke-claude-$(date +%s)")
    post_seed
    wait_job 1
    say "job completed $(awk -v a="$post_started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s after the POST"
    got=$(django "Extraction.objects.filter(job_id='$queue_id').values_list('extractor', 'model').get()")
    [[ "$got" == *"'claude'"* ]] || fail "the seed was extracted by $got, expected the claude extractor"
    calls=$(curl -fsS "http://127.0.0.1:$FAKE_PORT/_fake/stats" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["calls"])')
    (( calls >= 1 )) || fail "the fake Messages API saw no call"
    say "seed extracted through the Claude path: $got, $calls call(s) to the fake"
    stop_run
    kill "$FAKE_PID" 2>/dev/null || true
    FAKE_PID=""
fi
say "OK: quick start works end to end in $((SECONDS - smoke_started))s"
