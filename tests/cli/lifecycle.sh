#!/usr/bin/env bash
# Drive full session lifecycles through the sessionflow CLI, as a shell script would: every command with
# --json, outputs parsed with a few lines of Python (jq-style; jq itself is not needed), exit codes checked,
# and an expiry through a background `sessionflow worker` stopped with SIGTERM.
#
# Environment: PYTHON (the interpreter with sessionflow installed; default python3) and WORK (an empty
# temporary folder). Prints "ok: ..." lines and exits non-zero on the first failed check.
set -euo pipefail

PYTHON=${PYTHON:-python3}
WORK=${WORK:?set WORK to an empty temporary folder}
cd "$WORK"
export SESSIONFLOW_DATABASE_URL="sqlite:///$WORK/script.db"
export SESSIONFLOW_PERFORMER=alice

sf() { "$PYTHON" -m sessionflow "$@"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# q EXPR: evaluate EXPR on the JSON document on stdin (bound to d); prints strings bare, the rest as JSON.
q() {
    "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}
# qlines EXPR: the same on JSON lines (bound to rows, a list).
qlines() {
    "$PYTHON" -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
v = eval(sys.argv[1], {"rows": rows})
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}
# expect_exit CODE CMD...: run CMD, require exit CODE, one line on stderr and no traceback.
expect_exit() {
    local want=$1; shift
    local rc=0
    "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    [ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* (stderr: $(cat "$WORK/err"))"
    ! grep -q Traceback "$WORK/err" || fail "traceback from: $*"
    [ "$(wc -l <"$WORK/err")" = 1 ] || fail "expected one stderr line from: $*, got: $(cat "$WORK/err")"
}

# --- completed: files, a refused completion, a note, a touch --------------------------------------------
doc=$(sf create --json --user u1 --workspace ws --module auth --file a.py --file b.py --metadata '{"ticket": "T-1"}')
sid=$(q 'd["id"]' <<<"$doc")
[ "$(q 'd["status"], d["version"], d["metadata"]["ticket"]' <<<"$doc")" = '["pending", 1, "T-1"]' ] || fail "create: $doc"
ok "create $sid"

[ "$(sf start "$sid" --json | q 'd["status"]')" = in_progress ] || fail "start"
[ "$(sf record-file "$sid" a.py --json | q 'd["progress"]["processed_files"]')" = 1 ] || fail "record-file"
expect_exit 4 sf complete "$sid" --json
[ "$(q 'd["code"], d["exit_code"], d["session_id"] == "'"$sid"'"' <"$WORK/err")" = '["invalid_transition", 4, true]' ] \
    || fail "refused complete: $(cat "$WORK/err")"
ok "complete refused by its guard (exit 4, one JSON error line)"

version=$(sf record-file "$sid" b.py --error "parse error" --json | q 'd["version"]')
doc=$(sf note "$sid" --file a.py --memory-id m1 --status stored --expect-version "$version" --json)
[ "$(q 'd["notes"][0]["memory_id"], d["version"]' <<<"$doc")" = "[\"m1\", $((version + 1))]" ] || fail "note: $doc"
sf touch "$sid" --json >/dev/null
doc=$(sf complete "$sid" --json)
[ "$(q 'd["status"], d["closed_by"], d["progress"]["failed_files"]' <<<"$doc")" = '["completed", "alice", ["b.py"]]' ] \
    || fail "complete: $doc"
ok "completed"

lines=$(sf history "$sid" --json)
events=$(qlines '[r["event"] for r in rows]' <<<"$lines")
[ "$events" = '["created", "started", "file_recorded", "file_recorded", "note_added", "touched", "completed"]' ] \
    || fail "history: $events"
[ "$(qlines '[r["version"] for r in rows] == list(range(1, len(rows) + 1))' <<<"$lines")" = true ] \
    || fail "history versions"
ok "history: $events"

# --- failed -------------------------------------------------------------------------------------------
sid2=$(sf create --json --user u2 | q 'd["id"]')
doc=$(sf fail "$sid2" --reason "upstream down" --json)
[ "$(q 'd["status"], d["failure_reason"]' <<<"$doc")" = '["failed", "upstream down"]' ] || fail "fail: $doc"
ok "failed with a reason"

# --- deleted ------------------------------------------------------------------------------------------
sid3=$(sf create --json | q 'd["id"]')
sf delete "$sid3" --json >/dev/null
expect_exit 3 sf show "$sid3"
[ "$(sf history "$sid3" --json | qlines '[r["event"] for r in rows]')" = '["created", "deleted"]' ] || fail "deleted history"
ok "deleted: show exits 3, history kept"

# --- errors -------------------------------------------------------------------------------------------
expect_exit 7 sf --db "sqlite:///$WORK/no/such/dir/x.db" show "$sid"
rc=0; sf show "$sid" --no-such-option >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "usage error exit $rc"
ok "exit codes: database unreachable 7, usage 2"

# --- list ---------------------------------------------------------------------------------------------
[ "$(sf --json list --status completed --status failed | qlines '[r["id"] for r in rows]')" = "[\"$sid\", \"$sid2\"]" ] \
    || fail "list"
ok "list (JSON lines, filters)"

# --- expiry through the worker ------------------------------------------------------------------------
sid4=$(sf create --json --user u4 --ttl 5s | q 'd["id"]')
sf start "$sid4" --json >/dev/null
"$PYTHON" -m sessionflow worker --json --interval 30s >"$WORK/worker.out" 2>"$WORK/worker.err" &
worker=$!
for _ in $(seq 1 120); do
    grep -q "\"session_id\":\"$sid4\"" "$WORK/worker.out" 2>/dev/null && break
    sleep 0.25
done
grep -q "\"session_id\":\"$sid4\"" "$WORK/worker.out" || { kill -TERM "$worker"; fail "the worker expired nothing"; }
kill -TERM "$worker"
rc=0; wait "$worker" || rc=$?
[ "$rc" = 0 ] || fail "worker exit code $rc after SIGTERM: $(cat "$WORK/worker.err")"
! grep -q Traceback "$WORK/worker.err" || fail "worker traceback: $(cat "$WORK/worker.err")"
[ "$(qlines '[(r["event"], r["performer_id"], r["source_state"]) for r in rows]' <"$WORK/worker.out")" \
    = '[["expired", "system", "in_progress"]]' ] || fail "worker output: $(cat "$WORK/worker.out")"
[ "$(sf show "$sid4" --json | q 'd["status"]')" = expired ] || fail "show after expiry"
[ "$(sf history "$sid4" --json | qlines '[r["event"] for r in rows]')" = '["created", "started", "expired"]' ] \
    || fail "history after expiry"
ok "worker expired $sid4 and stopped on SIGTERM with exit 0"

# --- maintenance --------------------------------------------------------------------------------------
[ "$(sf verify --json | q 'd["ok"], d["differences"]')" = '[true, []]' ] || fail "verify"
ok "verify: the projection agrees with the events"

echo "all checks passed"
