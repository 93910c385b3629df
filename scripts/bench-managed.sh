#!/usr/bin/env bash
# make bench-managed: what a managed source's application feels while the export starts and
# runs, per consistency mode, against the local MariaDB.
#  1. Stall: a 30 s report SELECT on the exported table, then a 30 s batch UPDATE of another
#     table, runs; a writer INSERTs a small row every 10 ms into the exported database
#     (m2d-write-probe). Its longest statement while the export starts, for lock (FLUSH TABLES
#     WITH READ LOCK), lock-tables and stall-free.
#  2. Purge: an updater changes random rows back to back while a long export (one thread, small
#     chunks) runs; InnoDB's history list length at the export's end and its peak, for lock (one
#     snapshot held for the whole export) and stall-free (a short read view per chunk).
# Writes bench-out/managed.md (paste it into docs/benchmarks.md).
#
#   BENCH_MANAGED_ROWS   rows of the exported table (default 2000000)
#   BENCH_QUERY_SECONDS  the report query's length (default 30)
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
ROWS=${BENCH_MANAGED_ROWS:-2000000}
QUERY_S=${BENCH_QUERY_SECONDS:-30}
PROBE=$ROOT/target/release/m2d-write-probe
SQL="mariadb --no-defaults --protocol=socket --socket=$M2D_MYSQL_SOCKET -uroot"
WM=bench_managed_meta
$SQL -e "CREATE DATABASE IF NOT EXISTS $WM"

have=$($SQL -N -e "SELECT COUNT(*) FROM bench_managed.data" 2>/dev/null || echo 0)
if [ "$have" != "$ROWS" ]; then
    echo "generating $ROWS rows in database bench_managed (once)"
    $SQL -e "DROP DATABASE IF EXISTS bench_managed; CREATE DATABASE bench_managed;
      CREATE TABLE bench_managed.data (id INT PRIMARY KEY, n INT NOT NULL, pad VARCHAR(60) NOT NULL);
      CREATE TABLE bench_managed.probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL);"
    $SQL bench_managed -e "SET SESSION sql_log_bin = 0; INSERT INTO data SELECT seq, seq % 1000, REPEAT('x', 50) FROM seq_1_to_$ROWS; ANALYZE TABLE data"
fi

history_len() { $SQL -e "SHOW ENGINE INNODB STATUS\G" | sed -n 's/.*History list length \([0-9]*\).*/\1/p'; }

# --- 1. stall at the export's start ---------------------------------------------------------------
# Two long statements: a report SELECT on the exported table (MySQL's FTWRL waits for it) and a
# batch UPDATE of another table (MariaDB's FTWRL waits for running writes, not for readers).
declare -A STALL TOOK
$SQL -e "CREATE TABLE IF NOT EXISTS bench_managed.batch (id INT PRIMARY KEY, v INT NOT NULL); INSERT IGNORE INTO bench_managed.batch VALUES (1, 0)"
for kind in select update; do
    case $kind in
    select) long="SELECT SLEEP($QUERY_S) FROM bench_managed.data LIMIT 1" ;;
    update) long="UPDATE bench_managed.batch SET v = v + SLEEP($QUERY_S) WHERE id = 1" ;;
    esac
    for mode in lock lock-tables stall-free; do
        rm -rf "$OUT/managed-run" "$OUT/probe.stop"
        $SQL -e "$long" >/dev/null &
        query=$!
        sleep 1
        "$PROBE" --url "$M2D_MYSQL_URL" --sql "INSERT INTO bench_managed.probe (at) VALUES (NOW(6))" --every-ms 10 \
            --seconds $((QUERY_S + 60)) --until-file "$OUT/probe.stop" >"$OUT/probe.json" &
        probe=$!
        sleep 1
        t0=$(date +%s.%N)
        "$BIN" export --quiet --source "$M2D_MYSQL_URL" --tables bench_managed.data,bench_managed.probe \
            --out "$OUT/managed-run" --consistency "$mode" --watermark-schema $WM --threads 2
        TOOK[$kind.$mode]=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
        sleep 1
        touch "$OUT/probe.stop"
        wait $probe
        wait $query || true
        STALL[$kind.$mode]=$(python3 -c "import json; print(round(json.load(open('$OUT/probe.json'))['longest_ms'], 1))")
        echo "stall: $QUERY_S s $kind running, $mode: longest INSERT ${STALL[$kind.$mode]} ms; export ${TOOK[$kind.$mode]} s"
    done
done

# --- 2. purge under a long export ------------------------------------------------------------------
declare -A HEND HPEAK HBASE
for mode in lock stall-free; do
    rm -rf "$OUT/managed-run" "$OUT/probe.stop"
    sleep 5 # purge what the last run left
    HBASE[$mode]=$(history_len)
    "$PROBE" --url "$M2D_MYSQL_URL" --sql "UPDATE bench_managed.data SET n = n + 1 WHERE id = {rand}" --rand-max "$ROWS" --every-ms 0 \
        --seconds 600 --until-file "$OUT/probe.stop" >"$OUT/updater.json" &
    updater=$!
    ( while [ ! -e "$OUT/probe.stop" ]; do history_len; sleep 0.5; done ) >"$OUT/history.txt" &
    sampler=$!
    "$BIN" export --quiet --source "$M2D_MYSQL_URL" --databases bench_managed --tables bench_managed.data \
        --out "$OUT/managed-run" --consistency "$mode" --watermark-schema $WM --threads 1 --chunk-rows 20000
    HEND[$mode]=$(history_len)
    touch "$OUT/probe.stop"
    wait $updater $sampler
    HPEAK[$mode]=$(sort -n "$OUT/history.txt" | tail -1)
    updates=$(python3 -c "import json; print(json.load(open('$OUT/updater.json'))['statements'])")
    echo "purge: $mode: history list length ${HBASE[$mode]} before, ${HEND[$mode]} at the export's end, peak ${HPEAK[$mode]}; $updates updates"
done

{
echo "| mode | longest INSERT, $QUERY_S s SELECT running (ms) | export (s) | longest INSERT, $QUERY_S s UPDATE running (ms) | export (s) |"
echo "|---|---:|---:|---:|---:|"
for mode in lock lock-tables stall-free; do
    echo "| $mode | ${STALL[select.$mode]} | ${TOOK[select.$mode]} | ${STALL[update.$mode]} | ${TOOK[update.$mode]} |"
done
echo
echo "| mode | history list length before | at the export's end | peak |"
echo "|---|---:|---:|---:|"
for mode in lock stall-free; do echo "| $mode | ${HBASE[$mode]} | ${HEND[$mode]} | ${HPEAK[$mode]} |"; done
} | tee "$OUT/managed.md"
summary "longest write stall at export start, ${QUERY_S} s UPDATE running (ms)" "${STALL[update.stall-free]} (stall-free)" "${STALL[update.lock]} (lock)" \
    "$(python3 -c "print(f'{${STALL[update.stall-free]} / max(${STALL[update.lock]}, 0.001):.4f}x')")" "" "" "stall-free < 100 ms"
summary "InnoDB history list at the end of a long export under updates" "${HEND[stall-free]} (stall-free)" "${HEND[lock]} (lock)" \
    "$(python3 -c "print(f'{${HEND[stall-free]} / max(${HEND[lock]}, 1):.3f}x')")" "" "" "stall-free stays flat"
