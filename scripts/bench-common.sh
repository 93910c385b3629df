# Sourced by every scripts/bench-*.sh: the repository root as the working folder, where results
# go (BENCH_OUT, default bench-out/), the release binaries, and the local servers' addresses.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${BENCH_OUT:-$ROOT/bench-out}
STATE=${M2D_STATE:-$ROOT/.state}
BIN=$ROOT/target/release/mysql2ddb
eval "$(scripts/services.sh env)"
export AWS_EC2_METADATA_DISABLED=true
mkdir -p "$OUT"

# summary WHAT OURS PEER RATIO OURS_RSS PEER_RSS GOAL: records one comparison for the summary table
# `make bench` prints at its end (scripts/bench-summary.sh). One line per WHAT in
# $OUT/summary.tsv, replaced when that comparison is measured again, stamped with the date.
summary() {
    local what=$1; shift
    touch "$OUT/summary.tsv"
    awk -F'\t' -v w="$what" '$1 != w' "$OUT/summary.tsv" >"$OUT/summary.tsv.new"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$what" "$1" "$2" "$3" "$4" "$5" "$6" "$(date -u +%F)" >>"$OUT/summary.tsv.new"
    mv "$OUT/summary.tsv.new" "$OUT/summary.tsv"
}

# GNU time (peak RSS), installed from Debian when missing.
need_gnu_time() {
    [ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
}

# measure CMD…: runs it (its output discarded, stderr kept in $OUT/cmd.err and shown if it fails)
# and prints "seconds peak_rss_mb".
measure() {
    /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/cmd.err" || { cat "$OUT/cmd.err" >&2; exit 1; }
    awk '{printf "%s %.0f\n", $1, $2 / 1024}' "$OUT/time.txt"
}

# purchase_table DB ROWS CUSTOMER PRODUCT: DB.purchase with ROWS rows (generated from seq, a million
# at a time, kept out of the binlog), customerid and productid the SQL expressions given, five rows an
# order; nothing is done when it already has ROWS rows.
purchase_table() {
    local db=$1 rows=$2 cust=$3 prod=$4 lo hi
    local sql="mariadb --no-defaults --protocol=socket --socket=$M2D_MYSQL_SOCKET -uroot"
    [ "$($sql -N -e "SELECT COUNT(*) FROM $db.purchase" 2>/dev/null || echo 0)" = "$rows" ] && return 0
    echo "== generating $db.purchase ($rows rows)"
    $sql -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db;
      CREATE TABLE $db.purchase (customerid VARCHAR(20) NOT NULL, orderid VARCHAR(20) NOT NULL,
        productid VARCHAR(20) NOT NULL, quantity INT NOT NULL, PRIMARY KEY (customerid, orderid, productid));"
    for ((lo = 1; lo <= rows; lo += 1000000)); do
        hi=$((lo + 999999)); [ $hi -gt "$rows" ] && hi=$rows
        $sql $db -e "SET SESSION sql_log_bin = 0; INSERT INTO purchase
          SELECT $cust, CONCAT('o', seq DIV 5), $prod, seq % 9 + 1 FROM seq_${lo}_to_${hi};"
    done
    $sql -e "ANALYZE TABLE $db.purchase" >/dev/null
}

# purchase_group_mapping DB TARGET: the grouping rule of the purchase benchmarks (one item per
# (customer, order), products pivoted to their quantities) for DB.purchase into TARGET.
purchase_group_mapping() {
    cat <<JSON
{"rules": [
  {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
   "object-locator": {"schema-name": "$1", "table-name": "purchase"}, "rule-action": "include"},
  {"rule-type": "object-mapping", "rule-id": "2", "rule-name": "group", "rule-action": "group-records-to-item",
   "object-locator": {"schema-name": "$1", "table-name": "purchase"}, "target-table-name": "$2",
   "mapping-parameters": {"partition-key-name": "customerid", "sort-key-name": "orderid",
     "pivot": {"name": "\${productid}", "value": "\${quantity}"}}}]}
JSON
}
