#!/usr/bin/env bash
# make bench-cdc: binlog capture + apply against the local MariaDB and dynalite.
#  1. A table of BENCH_CDC_ROWS rows is exported and imported (automatic mode); `cdc capture
#     --follow` and `cdc apply --follow` run in the background.
#  2. For each source rate (row changes/s: 60 % updates, 20 % inserts, 20 % deletes, sent by
#     m2d-changegen as an application user), for BENCH_SECONDS: the apply rate, the highest lag
#     (seconds and changes behind, from `cdc status --json` each 0.5 s), and the catch-up time
#     after the source stops.
#  3. Cutover under 1,000 changes/s: `cdc cutover --read-only --max-lag 1s`, the write pause it
#     needed (from the final position until everything up to it is applied).
# Writes bench-out/cdc.md (paste it into docs/benchmarks.md).
#
#   BENCH_CDC_RATES  source rates (default "200 1000 5000")
#   BENCH_SECONDS    seconds of changes per rate (default 20)
#   BENCH_CDC_ROWS   rows of the table (default 100000)
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
need_gnu_time
RATES=${BENCH_CDC_RATES:-"200 1000 5000"}
SECS=${BENCH_SECONDS:-20}
ROWS=${BENCH_CDC_ROWS:-100000}
GEN=$ROOT/target/release/m2d-changegen
export M2D_SOURCE=$M2D_MYSQL_URL
SQL="mariadb --no-defaults --protocol=socket --socket=$M2D_MYSQL_SOCKET -uroot"
APP_URL="mysql://m2d_app:m2d-app-pass@${M2D_MYSQL_URL##*@}/bench_cdc"

echo "== bench_cdc.t: $ROWS rows; an application user without SUPER (read_only applies to it)"
$SQL -e "SET GLOBAL read_only = OFF; DROP DATABASE IF EXISTS bench_cdc; CREATE DATABASE bench_cdc;
  CREATE TABLE bench_cdc.t (id BIGINT PRIMARY KEY, v VARCHAR(40) NOT NULL, n INT NOT NULL);
  USE bench_cdc; SET SESSION sql_log_bin = 0; INSERT INTO t SELECT seq, CONCAT('v', seq), 0 FROM seq_1_to_$ROWS; SET SESSION sql_log_bin = 1;
  CREATE USER IF NOT EXISTS 'm2d_app'@'%' IDENTIFIED BY 'm2d-app-pass';
  CREATE USER IF NOT EXISTS 'm2d_app'@'localhost' IDENTIFIED BY 'm2d-app-pass';
  GRANT SELECT, INSERT, UPDATE, DELETE ON bench_cdc.* TO 'm2d_app'@'%';
  GRANT SELECT, INSERT, UPDATE, DELETE ON bench_cdc.* TO 'm2d_app'@'localhost';"
RUN=$OUT/cdc-run
rm -rf "$RUN"
"$BIN" export --quiet --source "$M2D_MYSQL_URL" --out "$RUN" --databases bench_cdc
"$BIN" import --quiet --from "$RUN" --create-tables --table-prep drop-and-create --wcu 0 >/dev/null

"$BIN" cdc capture --quiet --follow --from "$RUN" >"$OUT/cdc-capture.log" 2>&1 &
CAP=$!
"$BIN" cdc apply --quiet --follow --from "$RUN" >"$OUT/cdc-apply.log" 2>&1 &
APP=$!
trap 'kill $CAP $APP 2>/dev/null || true; $SQL -e "SET GLOBAL read_only = OFF" || true' EXIT

status() { "$BIN" cdc status --json --from "$RUN"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

{
echo
echo "### Change capture and apply: lag at a steady source rate"
echo
echo "\`BENCH_CDC_RATES=\"$RATES\" BENCH_SECONDS=$SECS make bench-cdc\`; table of $ROWS rows, automatic mode, apply with 32 calls in flight (puts and deletes 25 a call), unpaced; applied/s = changes applied ÷ (sending time + catch-up)."
echo
echo "| source changes/s (asked) | sent/s | applied/s | highest lag | most changes behind | catch-up after the source stopped |"
echo "|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT/cdc.md"
for r in $RATES; do
    sleep 1
    a0=$(status | field applied_changes)
    t0=$(date +%s.%N)
    "$GEN" --source "$APP_URL" --table t --rate "$r" --seconds "$SECS" --range "$ROWS" >"$OUT/changegen.txt" &
    gen=$!
    maxlag=0; maxbehind=0
    while kill -0 $gen 2>/dev/null; do
        s=$(status)
        lag=$(echo "$s" | field lag_seconds); behind=$(echo "$s" | field behind_changes)
        [ "$lag" -gt "$maxlag" ] && maxlag=$lag
        [ "$behind" -gt "$maxbehind" ] && maxbehind=$behind
        sleep 0.5
    done
    wait $gen
    stopped=$(date +%s.%N)
    src_pos=$("$BIN" cdc status --json --from "$RUN" --source "$M2D_MYSQL_URL" | field source_at)
    # Caught up: capture at the source's end and nothing staged left to apply.
    while :; do
        s=$(status)
        [ "$(echo "$s" | field behind_changes)" = 0 ] && [ "$(echo "$s" | field captured_to)" = "$src_pos" ] && break
        sleep 0.1
    done
    done_t=$(date +%s.%N)
    a1=$(status | field applied_changes)
    sent=$(awk '{print $1}' "$OUT/changegen.txt")
    python3 - "$r" "$sent" "$SECS" "$a0" "$a1" "$t0" "$done_t" "$stopped" "$maxlag" "$maxbehind" <<'PY' | tee -a "$OUT/cdc.md"
import sys
r, sent, secs, a0, a1, t0, done, stopped, lag, behind = sys.argv[1:]
applied, took = int(a1) - int(a0), float(done) - float(t0)
print(f"| {r} | {int(sent) / float(secs):.0f} | {applied / took:.0f} | {lag} s | {behind} | {float(done) - float(stopped):.2f} s |")
PY
    summary "cdc apply at $r source changes/s: highest lag, changes behind" "$maxlag s, $maxbehind behind" "—" "—" "" "" "keeps up (lag stays flat)"
done

# --- cutover under load ------------------------------------------------------------------------
"$GEN" --source "$APP_URL" --table t --rate 1000 --seconds 60 --range "$ROWS" >"$OUT/changegen.txt" &
gen=$!
sleep 5
"$BIN" cdc cutover --from "$RUN" --source "$M2D_MYSQL_URL" --read-only --max-lag 1s --timeout 120 | tee "$OUT/cutover.txt"
wait $gen || true
pause=$(sed -n 's/.*after a \([0-9.]*\) s write pause.*/\1/p' "$OUT/cutover.txt")
$SQL -e "SET GLOBAL read_only = OFF"
{
echo
echo "Cutover under 1,000 changes/s (\`cdc cutover --read-only --max-lag 1s\`): write pause $pause s (goal < 5 s). The workload: $(cat "$OUT/changegen.txt")."
} | tee -a "$OUT/cdc.md"
summary "cdc cutover under 1,000 changes/s: write pause" "$pause s" "—" "—" "" "" "< 5 s"

# --- a week of trickle segments ------------------------------------------------------------------
# capture.json once held every segment's record; now it holds a count and the newest record, and
# the records go into files of 10,000 lines. m2d-cdc-state times one segment's state work at the
# first hour and after a week of half-second segments, and the old single list at both points.
/usr/bin/time -v "$ROOT/target/release/m2d-cdc-state" --dir "$OUT/cdc-state" >"$OUT/cdc-state.json" 2>"$OUT/cdc-state.time"
rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2 / 1024}' "$OUT/cdc-state.time")
python3 - "$OUT/cdc-state.json" "$rss" <<'PY' | tee -a "$OUT/cdc.md"
import json, sys
r = json.load(open(sys.argv[1]))
print()
print("### A week of trickle segments: state work per segment, first hour vs after a week")
print()
print(f"`scripts/bench-cdc.sh` (its last part: `target/release/m2d-cdc-state --dir DIR`): {r['segments_hour']:,} segments (an hour of one per 0.5 s), then {r['segments_week']:,} (a week); each figure the mean over 300 segments; peak RSS {sys.argv[2]} MB (the old list's week built in memory).")
print()
print("| per segment | first hour | after a week | week ÷ hour |")
print("|---|---:|---:|---:|")
for what, k in [("capture: append the record (synced), store capture.json", "capture"), ("apply: load capture.json, read the next record", "apply"), ("cdc status", "status")]:
    h, w = r[f"{k}_ms_hour"], r[f"{k}_ms_week"]
    print(f"| {what} | {h:.3f} ms | {w:.3f} ms | {w / h:.2f} |")
print(f"| capture.json | {r['capture_json_bytes_hour']} B | {r['capture_json_bytes_week']} B | |")
print(f"| peer, the old list in capture.json: store | {r['list_store_ms_hour']:.1f} ms | {r['list_store_ms_week']:.0f} ms | {r['list_store_ms_week'] / r['list_store_ms_hour']:.0f} |")
print(f"| peer, the old list: load (apply, status, cutover) | {r['list_load_ms_hour']:.1f} ms | {r['list_load_ms_week']:.0f} ms | {r['list_load_ms_week'] / r['list_load_ms_hour']:.0f} |")
print(f"| peer, the old list's capture.json | {r['list_bytes_hour'] / 1e6:.1f} MB | {r['list_bytes_week'] / 1e6:.0f} MB | |")
print()
print(f"The records of the week take {r['records_bytes_week'] / 1e6:.0f} MB in {r['segments_week'] // r['records_per_file'] + 1} files; each is read once by apply.")
PY
w=$(python3 -c "import json; r=json.load(open('$OUT/cdc-state.json')); print(f\"{r['capture_ms_week']/r['capture_ms_hour']:.2f} (capture), {r['apply_ms_week']/r['apply_ms_hour']:.2f} (apply), {r['status_ms_week']/r['status_ms_hour']:.2f} (status)\")")
summary "cdc state after a week of trickle segments: per-segment time, week ÷ first hour" "$w" "old list: ×$(python3 -c "import json; r=json.load(open('$OUT/cdc-state.json')); print(round(r['list_store_ms_week']/r['list_store_ms_hour']))") store" "—" "$rss MB" "" "≈ 1 (as fast as the first hour)"
