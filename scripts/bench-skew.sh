#!/usr/bin/env bash
# Part of make bench-import: grouping memory under skew. The purchase table of the grouping
# benchmark (BENCH_GROUP_ROWS rows, one item per (customer, order)) and the same rows where one
# customer holds half of them (whole orders moved to it, so both give the same items), grouped
# by `import --dry-run --memory-mb BENCH_SKEW_MEMORY_MB`: wall time and peak RSS of each. Goals
# (issue 27): the skewed run's peak RSS within --memory-mb plus the uniform run's base, its time
# within 1.5x the uniform run's. Appends to bench-out/import.md.
#
#   BENCH_GROUP_ROWS      rows (default 10000000)
#   BENCH_SKEW_MEMORY_MB  --memory-mb of both runs (default 256)
#   BENCH_SKEW_BEFORE     another mysql2ddb binary (an earlier build) to time on both, as rows
#                         of the same table
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
need_gnu_time
ROWS=${BENCH_GROUP_ROWS:-10000000}
MEM=${BENCH_SKEW_MEMORY_MB:-256}
SQL="mariadb --no-defaults --protocol=socket --socket=$M2D_MYSQL_SOCKET -uroot"

purchase_table bench_uniform "$ROWS" "CONCAT('c', seq DIV 100)" "CONCAT('p', seq)"
purchase_table bench_skew "$ROWS" "IF((seq DIV 5) % 2 = 0, 'cbig', CONCAT('c', seq DIV 100))" "CONCAT('p', seq)"

declare -A secs rss items biggest
for db in bench_uniform bench_skew; do
    run=$OUT/$db-run
    rm -rf "$run"
    "$BIN" export --quiet --source "$M2D_MYSQL_URL" --out "$run" --databases $db
    purchase_group_mapping $db "${db}_grouped" >"$OUT/$db.json"
    read -r s m < <(measure "$BIN" import --quiet --from "$run" --mapping "$OUT/$db.json" --restart --dry-run --memory-mb "$MEM")
    secs[$db]=$s; rss[$db]=$m
    if [ -n "${BENCH_SKEW_BEFORE:-}" ]; then
        read -r s m < <(measure "$BENCH_SKEW_BEFORE" import --quiet --from "$run" --mapping "$OUT/$db.json" --restart --dry-run --memory-mb "$MEM")
        secs[$db-before]=$s; rss[$db-before]=$m
    fi
    items[$db]=$(python3 -c "import json; r=json.load(open('$run/import-report.json')); print(sum(t['items'] for t in r['tables']))")
    biggest[$db]=$($SQL -N -e "SELECT ROUND(100 * MAX(n) / SUM(n), 1) FROM (SELECT COUNT(*) n FROM $db.purchase GROUP BY customerid) c")
    rm -rf "$run/import"
done
u=bench_uniform; k=bench_skew
{
echo
echo "### Grouping memory under skew: one customer with half of $ROWS rows"
echo
echo "\`make bench-import\` (its part \`scripts/bench-skew.sh\`; BENCH_GROUP_ROWS=$ROWS BENCH_SKEW_MEMORY_MB=$MEM): \`import --dry-run --memory-mb $MEM\` grouping the purchase rows into one item per (customer, order), $(nproc) threads."
echo
echo "| rows | largest customer's share | items | seconds | peak RSS | RSS − --memory-mb | time vs uniform |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| uniform (customers of 100 rows) | ${biggest[$u]} % | ${items[$u]} | ${secs[$u]} | ${rss[$u]} MB | $((rss[$u] - MEM)) MB | 1.00 |"
echo "| skewed (one customer, whole orders) | ${biggest[$k]} % | ${items[$k]} | ${secs[$k]} | ${rss[$k]} MB | $((rss[$k] - MEM)) MB | $(python3 -c "print(f'{${secs[$k]}/${secs[$u]}:.2f}')") |"
if [ -n "${BENCH_SKEW_BEFORE:-}" ]; then
    for db in $u $k; do
        echo "| $db, the earlier build (BENCH_SKEW_BEFORE) | ${biggest[$db]} % | ${items[$db]} | ${secs[$db-before]} | ${rss[$db-before]} MB | $((rss[$db-before] - MEM)) MB | $(python3 -c "print(f'{${secs[$db-before]}/${secs[$u]}:.2f}')") |"
    done
fi
} | tee -a "$OUT/import.md"
summary "group $ROWS rows, one customer 50 %, --memory-mb $MEM: time and RSS vs uniform" "${secs[$k]} s, ${rss[$k]} MB" "${secs[$u]} s, ${rss[$u]} MB" "$(python3 -c "print(f'{${secs[$k]}/${secs[$u]}:.2f}')")" "${rss[$k]} MB" "${rss[$u]} MB" "time ≤ 1.5× uniform, RSS ≤ --memory-mb + base"
