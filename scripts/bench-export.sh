#!/usr/bin/env bash
# make bench-export: export throughput of mysql2ddb against mydumper and ConnectorX, same
# server, same tables, 4 threads each, in one run. Prints rows/s, the ratios and peak RSS, and
# writes bench-out/export.md (paste it into docs/benchmarks.md).
#
#   BENCH_ROWS   rows per table (default 5000000)
#   BENCH_THREADS threads / partitions for every tool (default 4)
#   BENCH_ROUNDS  rounds of every tool; medians are reported (default 3)
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
ROWS=${BENCH_ROWS:-5000000}
THREADS=${BENCH_THREADS:-4}

# --- peers: mydumper (Debian), ConnectorX + pyarrow (PyPI, in a venv), GNU time -----------------
need=()
command -v mydumper >/dev/null || need+=(mydumper)
[ -x /usr/bin/time ] || need+=(time)
python3 -c 'import venv' 2>/dev/null && python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
VENV=$STATE/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import connectorx, pyarrow' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet connectorx==0.4.6 pyarrow
fi

SQL="mariadb --no-defaults --protocol=socket --socket=$M2D_MYSQL_SOCKET -uroot"
USER_PASS=${M2D_MYSQL_URL#mysql://}; USER_PASS=${USER_PASS%@*}
DB_USER=${USER_PASS%%:*}; DB_PASS=${USER_PASS#*:}
PORT=${M2D_MYSQL_URL##*:}

# --- data: the seed's purchase table (3-column string key) and a mixed-type orders table ---------
have=$($SQL -N -e "SELECT COUNT(*) FROM bench.orders" 2>/dev/null || echo 0)
if [ "$have" != "$ROWS" ]; then
    echo "generating 2 × $ROWS rows in database bench (once)"
    $SQL -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench;
      CREATE TABLE bench.purchase (customerid VARCHAR(20) NOT NULL, orderid VARCHAR(20) NOT NULL,
        productid VARCHAR(20) NOT NULL, quantity INT NOT NULL, PRIMARY KEY (customerid, orderid, productid));
      CREATE TABLE bench.orders (id BIGINT PRIMARY KEY, customer_id INT UNSIGNED NOT NULL,
        status ENUM('new','paid','shipped','cancelled') NOT NULL, amount DECIMAL(12,2) NOT NULL,
        tax DECIMAL(10,4), created_at DATETIME(6) NOT NULL, updated_at TIMESTAMP NULL, ship_date DATE,
        weight FLOAT, score DOUBLE, note VARCHAR(64), flags SET('gift','express','fragile') NOT NULL,
        is_test TINYINT(1) NOT NULL);"
    step=1000000
    for ((lo = 1; lo <= ROWS; lo += step)); do
        hi=$((lo + step - 1)); [ $hi -gt "$ROWS" ] && hi=$ROWS
        $SQL bench -e "SET SESSION sql_log_bin = 0;
          INSERT INTO purchase SELECT CONCAT('c', seq DIV 100), CONCAT('o', seq DIV 5), CONCAT('p', seq), seq % 9 + 1
            FROM seq_${lo}_to_${hi};
          INSERT INTO orders SELECT seq, seq % 100000, ELT(1 + seq % 4, 'new','paid','shipped','cancelled'),
            (seq % 100000) / 100, (seq % 10000) / 10000, TIMESTAMP('2020-01-01') + INTERVAL seq SECOND,
            IF(seq % 3 = 0, NULL, TIMESTAMP('2021-01-01') + INTERVAL seq SECOND), DATE('2020-01-01') + INTERVAL seq % 2000 DAY,
            seq / 7, seq / 13, IF(seq % 4 = 0, NULL, CONCAT('note for order ', seq)), ELT(1 + seq % 3, '', 'gift', 'express,fragile'),
            seq % 2 FROM seq_${lo}_to_${hi};"
    done
    $SQL -e "ANALYZE TABLE bench.purchase, bench.orders" >/dev/null
fi

# --- runs -----------------------------------------------------------------------------------------
# The server's CPU seconds so far (user + system, from /proc), to charge each run its share.
SERVER_PID=$(cat "$STATE/mariadb/mariadbd.pid" 2>/dev/null || pgrep -o -x mariadbd)
TICKS=$(getconf CLK_TCK)
server_cpu() { awk -v hz="$TICKS" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SERVER_PID/stat"; }

# time_it NAME CMD…: runs CMD under GNU time; prints "seconds peak_kb client_cpu_s server_cpu_s".
time_it() {
    local name=$1; shift
    sync
    local before; before=$(server_cpu)
    /usr/bin/time -f "%e %M %U %S" -o "$OUT/$name.time" "$@" >"$OUT/$name.log" 2>&1 || {
        echo "$name failed:"; tail -n 20 "$OUT/$name.log"; exit 1; }
    local after; after=$(server_cpu)
    tail -n 1 "$OUT/$name.time" | awk -v b="$before" -v a="$after" '{printf "%s %s %.2f %.2f\n", $1, $2, $3 + $4, a - b}'
}

# Each round runs every tool once per table, the tools one after another; the figures are the
# medians over the rounds (this machine's times vary by up to 50 % between runs) and the
# highest peak RSS.
ROUNDS=${BENCH_ROUNDS:-3}
results=()
for round in $(seq 1 "$ROUNDS"); do
for table in purchase orders; do
    rm -rf "$OUT/m2d-$table" "$OUT/m2d-one-$table" "$OUT/m2d-driver-$table" "$OUT/mydumper-$table" "$OUT/cx-$table.parquet"
    # Read the table once first: after other benchmarks its pages may have left the buffer pool,
    # and whichever tool went first would read them from disk for the others.
    $SQL -N -e "SELECT COUNT(*) FROM bench.$table FORCE INDEX (PRIMARY)" >/dev/null
    m2d=$(time_it "m2d-$table" "$BIN" export --quiet --source "$M2D_MYSQL_URL" --out "$OUT/m2d-$table" \
        --tables "bench.$table" --threads "$THREADS" --restart)
    grep -q '"fast row reader' "$OUT/m2d-$table/export-report.json" || { echo "the fast row reader did not serve the export"; exit 1; }
    # The same export as one query, as mydumper 0.10 reads a string key it cannot cut: it shows
    # what the ranged chunk queries cost the server (each row's range is checked again).
    one=$(time_it "m2d-one-$table" "$BIN" export --quiet --source "$M2D_MYSQL_URL" --out "$OUT/m2d-one-$table" \
        --tables "bench.$table" --threads "$THREADS" --restart --chunk-rows $((ROWS * 2)))
    drv=$(time_it "m2d-driver-$table" "$BIN" export --quiet --source "$M2D_MYSQL_URL" --out "$OUT/m2d-driver-$table" \
        --tables "bench.$table" --threads "$THREADS" --restart --row-reader driver)
    mkdir -p "$OUT/mydumper-$table"
    myd=$(time_it "mydumper-$table" mydumper -h 127.0.0.1 -P "$PORT" -u "$DB_USER" -p "$DB_PASS" \
        -t "$THREADS" -r 500000 -B bench -T "$table" -o "$OUT/mydumper-$table")
    ls "$OUT/mydumper-$table"/bench.$table.*sql 2>/dev/null | grep -qv schema || { echo "mydumper wrote no data for $table"; exit 1; }
    part=$([ "$table" = orders ] && echo id || echo quantity)
    cx=$(time_it "cx-$table" "$VENV/bin/python" -c "
import connectorx as cx, pyarrow.parquet as pq
t = cx.read_sql('mysql://$DB_USER:$DB_PASS@127.0.0.1:$PORT/bench', 'SELECT * FROM $table',
                partition_on='$part', partition_num=$THREADS, return_type='arrow')
pq.write_table(t, '$OUT/cx-$table.parquet', compression='zstd')
assert t.num_rows == $ROWS, t.num_rows
")
    results+=("$table $m2d $drv $myd $cx $one")
done
done
# One line per table: for each tool, the median seconds, the highest peak KB, the median client
# and server CPU seconds.
mapfile -t results < <(printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics
rows = {}
for line in sys.stdin:
    f = line.split()
    rows.setdefault(f[0], []).append([float(x) for x in f[1:]])
for table in ("purchase", "orders"):
    runs = rows[table]
    out = [table]
    for tool in range(5):
        cols = [r[tool * 4:tool * 4 + 4] for r in runs]
        med = lambda i: statistics.median(c[i] for c in cols)
        out += [f"{med(0):.2f}", f"{max(c[1] for c in cols):.0f}", f"{med(2):.2f}", f"{med(3):.2f}"]
    print(" ".join(out))
')

# --- table ----------------------------------------------------------------------------------------
{
    echo "Export of $ROWS rows per table, $THREADS threads each, MariaDB $($SQL -N -e 'SELECT VERSION()') on loopback, $(nproc) cores."
    echo "Command: \`BENCH_ROWS=$ROWS make bench-export\` ($(date -u +%Y-%m-%d)). Each table is read once before the tools run, so none starts on a cold buffer pool."
    echo "CPU per row: the tool's user + system time (GNU time) and the server's (mariadbd in /proc) during that run, in µs. Medians of $ROUNDS rounds (peak RSS: the highest)."
    echo
    echo "| table | tool | seconds | rows/s | peak RSS MB | client CPU µs/row | server CPU µs/row | mysql2ddb speed ÷ peer |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for r in "${results[@]}"; do
        read -r table ms mk mc msv ds dk dc dsv ys yk yc ysv cs ck cc csv os ok oc osv <<<"$r"
        awk -v t="$table" -v n="$ROWS" -v ms="$ms" -v mk="$mk" -v mc="$mc" -v msv="$msv" -v ds="$ds" -v dk="$dk" -v dc="$dc" -v dsv="$dsv" \
            -v ys="$ys" -v yk="$yk" -v yc="$yc" -v ysv="$ysv" -v cs="$cs" -v ck="$ck" -v cc="$cc" -v csv="$csv" \
            -v os="$os" -v ok="$ok" -v oc="$oc" -v osv="$osv" 'BEGIN {
            u = 1e6 / n;
            printf "| %s | mysql2ddb (Parquet, zstd; fast row reader) | %.2f | %.0f | %.0f | %.2f | %.2f | 1.00 |\n", t, ms, n/ms, mk/1024, mc*u, msv*u;
            printf "| %s | mysql2ddb as one query (--chunk-rows past the table) | %.2f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", t, os, n/os, ok/1024, oc*u, osv*u, os/ms;
            printf "| %s | mysql2ddb --row-reader driver (before) | %.2f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", t, ds, n/ds, dk/1024, dc*u, dsv*u, ds/ms;
            printf "| %s | mydumper 0.10 (SQL files, -r 500000) | %.2f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", t, ys, n/ys, yk/1024, yc*u, ysv*u, ys/ms;
            printf "| %s | ConnectorX 0.4.6 + pyarrow (Parquet, zstd) | %.2f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", t, cs, n/cs, ck/1024, cc*u, csv*u, cs/ms;
        }'
    done
} | tee "$OUT/export.md"
for r in "${results[@]}"; do
    read -r table ms mk mc msv ds dk dc dsv ys yk yc ysv cs ck cc csv os ok oc osv <<<"$r"
    f() { python3 -c "print($1)"; }
    summary "export $table ($ROWS rows, $THREADS threads): rows/s vs mydumper (SQL text)" \
        "$(f "f'{$ROWS/$ms:,.0f}'")" "$(f "f'{$ROWS/$ys:,.0f}'")" "$(f "f'{$ys/$ms:.2f}'")" "$((mk / 1024)) MB" "$((yk / 1024)) MB" "≥ 1.0×; ours ≤ 300 MB"
    summary "export $table ($ROWS rows) as one query: rows/s vs mydumper (SQL text)" \
        "$(f "f'{$ROWS/$os:,.0f}'")" "$(f "f'{$ROWS/$ys:,.0f}'")" "$(f "f'{$ys/$os:.2f}'")" "$((ok / 1024)) MB" "$((yk / 1024)) MB" "(what chunking costs)"
    summary "export $table ($ROWS rows, $THREADS threads): rows/s vs ConnectorX + pyarrow" \
        "$(f "f'{$ROWS/$ms:,.0f}'")" "$(f "f'{$ROWS/$cs:,.0f}'")" "$(f "f'{$cs/$ms:.2f}'")" "$((mk / 1024)) MB" "$((ck / 1024)) MB" "≥ 1.2×"
    summary "export $table ($ROWS rows, $THREADS threads): client CPU µs/row vs the server's" \
        "$(f "f'{$mc*1e6/$ROWS:.2f}'")" "$(f "f'{$msv*1e6/$ROWS:.2f}'")" "$(f "f'{$msv/max($mc,0.01):.2f}'")" "" "" "client ≤ server"
done
