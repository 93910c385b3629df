#!/usr/bin/env bash
# make bench-capture: how fast `cdc capture` reads and types the binlog, against mariadb-binlog
# decoding the same events (-vv --base64-output=decode-rows) in the same run.
#  1. A table with the common column types (INT, BIGINT UNSIGNED, DECIMAL, DATETIME(6),
#     TIMESTAMP, VARCHAR utf8mb4 and latin1, CHAR, ENUM, SET, YEAR, JSON, BLOB) is exported empty,
#     so the run's position is just before the changes.
#  2. BENCH_CAPTURE_ROWS rows are inserted, then updated (two row images each), in transactions
#     of 1,000 rows.
#  3. `cdc capture` (to the binlog's end) and mariadb-binlog over the same files are timed, with
#     peak RSS, three times each (medians); then capture again with `--tx-memory-mb 1024`, so the
#     UPDATE's transaction is held in memory.
#  4. One row with a BENCH_CAPTURE_BLOB_MB (default 64) MB BLOB is captured alone, with its peak
#     RSS (what one large row costs), by capture's own binlog reader and by the mysql crate's. Writes bench-out/capture.md (paste it into docs/benchmarks.md).
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
need_gnu_time
ROWS=${BENCH_CAPTURE_ROWS:-200000}
SQL="mariadb --no-defaults --protocol=socket --socket=$M2D_MYSQL_SOCKET -uroot"
RUN=$OUT/capture-run
rm -rf "$RUN"
$SQL -e "DROP DATABASE IF EXISTS bench_capture; CREATE DATABASE bench_capture; USE bench_capture;
  CREATE TABLE t (id INT PRIMARY KEY, u BIGINT UNSIGNED, amount DECIMAL(14,2), at DATETIME(6),
    seen TIMESTAMP NULL DEFAULT NULL, name VARCHAR(60), latin VARCHAR(30) CHARACTER SET latin1, code CHAR(8),
    status ENUM('new','paid','shipped'), tags SET('a','b','c'), y YEAR, doc JSON, raw BLOB);"
"$BIN" export --quiet --source "$M2D_MYSQL_URL" --databases bench_capture --out "$RUN" >/dev/null
FILE=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['replay_from']['file'])" "$RUN/manifest.json")
POS=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['replay_from']['position'])" "$RUN/manifest.json")
for start in $(seq 0 1000 $((ROWS - 1))); do
  echo "INSERT INTO t SELECT seq, 18446744073709551615 - seq, seq / 100, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND,
    TIMESTAMP('2024-01-01') + INTERVAL seq MINUTE, CONCAT('name é ', seq), CONCAT('café ', seq), LEFT(MD5(seq), 5),
    ELT(1 + seq % 3, 'new', 'paid', 'shipped'), ELT(1 + seq % 4, '', 'a', 'a,b', 'a,b,c'), 1901 + seq % 250,
    JSON_OBJECT('k', seq, 'l', JSON_ARRAY(1, 2)), UNHEX(MD5(seq)) FROM seq_$((start + 1))_to_$((start + 1000));"
done | $SQL bench_capture
$SQL bench_capture -e "UPDATE t SET amount = amount + 1, seen = seen + INTERVAL 1 SECOND, tags = 'c';"
CHANGES=$((ROWS * 2))
LAST=$($SQL -N -e "SHOW BINARY LOGS" | tail -1 | cut -f1)
FILES=$(ls "$ROOT/.state/mariadb/binlog/" | grep -E '^mysql-bin\.[0-9]+$' | awk -v f="$FILE" -v l="$LAST" '$0 >= f && $0 <= l')

measure() { # label, command… → "seconds peak_kb"
  local log; log=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$log" "$@" >/dev/null 2>&1
  cat "$log"; rm -f "$log"
}
# Three runs of each reader, alternating; the median time and the highest peak RSS are kept.
median() { sort -n | sed -n 2p; }
ours_s=(); ours_kb=(); peer_s=(); peer_kb=()
for run in 1 2 3; do
  rm -rf "$RUN/cdc"
  read -r s kb < <(measure env M2D_SOURCE="$M2D_MYSQL_URL" "$BIN" cdc capture --quiet --from "$RUN")
  ours_s+=("$s"); ours_kb+=("$kb")
  STAGED=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['changes'])" "$RUN/cdc/capture.json")
  SHA=$(cat "$RUN"/cdc/segments/*.jsonl | sha256sum | cut -d' ' -f1)
  [ -z "${SEGMENTS_SHA:-}" ] || [ "$SHA" = "$SEGMENTS_SHA" ] || { echo "two captures staged other lines"; exit 1; }
  SEGMENTS_SHA=$SHA
  cd "$ROOT/.state/mariadb/binlog"
  read -r s kb < <(measure mariadb-binlog --no-defaults -vv --base64-output=decode-rows --start-position="$POS" $FILES)
  peer_s+=("$s"); peer_kb+=("$kb")
  cd "$ROOT"
done
OURS_S=$(printf '%s\n' "${ours_s[@]}" | median); OURS_KB=$(printf '%s\n' "${ours_kb[@]}" | sort -n | tail -1)
PEER_S=$(printf '%s\n' "${peer_s[@]}" | median); PEER_KB=$(printf '%s\n' "${peer_kb[@]}" | sort -n | tail -1)
# The whole UPDATE held in memory (no spill), for comparison.
rm -rf "$RUN/cdc"
read -r SPILL_S SPILL_KB < <(measure env M2D_SOURCE="$M2D_MYSQL_URL" "$BIN" cdc capture --quiet --tx-memory-mb 1024 --from "$RUN")
[ "$(cat "$RUN"/cdc/segments/*.jsonl | sha256sum | cut -d' ' -f1)" = "$SEGMENTS_SHA" ] || { echo "the in-memory capture staged other lines"; exit 1; }
# One row of BENCH_CAPTURE_BLOB_MB (default 64) MB captured alone: what a single large row costs.
BLOB_MB=${BENCH_CAPTURE_BLOB_MB:-64}
BIG=$OUT/capture-big-run
rm -rf "$BIG"
$SQL -e "DROP DATABASE IF EXISTS bench_capture_big; CREATE DATABASE bench_capture_big;
  CREATE TABLE bench_capture_big.t (id INT PRIMARY KEY, b LONGBLOB);"
"$BIN" export --quiet --source "$M2D_MYSQL_URL" --databases bench_capture_big --out "$BIG" >/dev/null
$SQL bench_capture_big -e "INSERT INTO t VALUES (1, REPEAT(UNHEX(MD5(1)), $BLOB_MB * 1024 * 1024 / 16));"
read -r BIG_S BIG_KB < <(measure env M2D_SOURCE="$M2D_MYSQL_URL" "$BIN" cdc capture --quiet --from "$BIG")
[ "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['changes'])" "$BIG/cdc/capture.json")" = 1 ] || { echo "the large row was not staged"; exit 1; }
BIG_SHA=$(cat "$BIG"/cdc/segments/*.jsonl | sha256sum)
# The same row through the mysql crate's stream (--binlog-reader driver), for comparison.
rm -rf "$BIG/cdc"
read -r DRV_S DRV_KB < <(measure env M2D_SOURCE="$M2D_MYSQL_URL" "$BIN" cdc capture --quiet --binlog-reader driver --from "$BIG")
[ "$(cat "$BIG"/cdc/segments/*.jsonl | sha256sum)" = "$BIG_SHA" ] || { echo "the two binlog readers staged other lines"; exit 1; }
python3 - "$OUT/capture.md" "$ROWS" "$STAGED" "$CHANGES" "$OURS_S" "$OURS_KB" "$PEER_S" "$PEER_KB" "$SPILL_S" "$SPILL_KB" "$BLOB_MB" "$BIG_S" "$BIG_KB" "$DRV_S" "$DRV_KB" <<'PY'
import sys
out, rows, staged, changes, ours_s, ours_kb, peer_s, peer_kb, spill_s, spill_kb, blob_mb, big_s, big_kb, drv_s, drv_kb = sys.argv[1:]
staged, changes = int(staged), int(changes)
ours, peer = changes / max(float(ours_s), 1e-3), changes / max(float(peer_s), 1e-3)
text = f"""| reader | row changes | seconds | changes/s | ratio | peak RSS |
|---|---|---|---|---|---|
| `cdc capture` (typed, staged, fsynced; default --tx-memory-mb 64, so the {rows}-row UPDATE spills; median of 3) | {staged} | {float(ours_s):.2f} | {ours:,.0f} | {ours / peer:.2f}x | {int(ours_kb) / 1024:.0f} MB |
| `cdc capture --tx-memory-mb 1024` (the UPDATE held in memory; the same lines staged) | {staged} | {float(spill_s):.2f} | {changes / max(float(spill_s), 1e-3):,.0f} | {changes / max(float(spill_s), 1e-3) / peer:.2f}x | {int(spill_kb) / 1024:.0f} MB |
| `mariadb-binlog -vv --base64-output=decode-rows` (to /dev/null; median of 3) | {changes} | {float(peer_s):.2f} | {peer:,.0f} | 1.00x | {int(peer_kb) / 1024:.0f} MB |
| `cdc capture` of one row with a {blob_mb} MB BLOB, alone | 1 | {float(big_s):.2f} | | | {int(big_kb) / 1024:.0f} MB |
| the same row, `--binlog-reader driver` (the mysql crate's stream; the same line staged) | 1 | {float(drv_s):.2f} | | | {int(drv_kb) / 1024:.0f} MB |
"""
open(out, "w").write(text)
print(text)
assert staged == changes, f"capture staged {staged} changes, {changes} were made"
PY
read -r ours peer ratio < <(python3 -c "c=$CHANGES; print(f'{c/max($OURS_S,1e-3):,.0f}/s', f'{c/max($PEER_S,1e-3):,.0f}/s', f'{$PEER_S/max($OURS_S,1e-3):.2f}')")
summary "cdc capture of $CHANGES row changes vs mariadb-binlog -vv" "$ours" "$peer" "$ratio" "$((OURS_KB / 1024)) MB" "$((PEER_KB / 1024)) MB" "≥ 1.0×; ours ≤ 256 MB"
summary "cdc capture --tx-memory-mb 1024 of the same changes (one $ROWS-row transaction in memory)" "$(python3 -c "print(f'{$CHANGES/max($SPILL_S,1e-3):,.0f}/s')")" "$peer" "$(python3 -c "print(f'{$PEER_S/max($SPILL_S,1e-3):.2f}')")" "$((SPILL_KB / 1024)) MB" "$((PEER_KB / 1024)) MB" "memory set by --tx-memory-mb"
