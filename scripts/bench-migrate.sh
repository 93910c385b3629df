#!/usr/bin/env bash
# make bench-migrate: does `migrate` cost more than the separate commands on the same run?
# A grouped purchase table of BENCH_MIGRATE_ROWS rows goes to dynalite both ways, BENCH_RUNS
# times each, alternating: the separate commands in the order a user types them (export,
# import, cdc capture, cdc apply, verify --sample 1% --against-source), and `migrate --job
# --until-ready` with the same settings (which runs the same stages, capture and apply
# following in threads of their own). Wall time and peak RSS (GNU time) of each; the separate
# commands' peak RSS is the largest of theirs. Writes bench-out/migrate.md.
#
#   BENCH_MIGRATE_ROWS  rows of bench_migrate.purchase (default 500000)
#   BENCH_RUNS          runs of each (default 2)
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
need_gnu_time
ROWS=${BENCH_MIGRATE_ROWS:-500000}
RUNS=${BENCH_RUNS:-2}
DB=bench_migrate
purchase_table $DB "$ROWS" "CONCAT('c', seq DIV 50)" "CONCAT('p', seq % 50)"
purchase_group_mapping $DB bench_migrate_orders >"$OUT/migrate-mapping.json"
RUN=$OUT/migrate-run
cat >"$OUT/migrate-job.toml" <<JOB
[source]
url = "$M2D_MYSQL_URL"

[export]
out = "$RUN"
databases = ["$DB"]

[import]
mapping = "$OUT/migrate-mapping.json"
create_tables = true
table_prep = "drop-and-create"
wcu = 0
JOB
JOB=$OUT/migrate-job.toml

separate() {
    local peak=0 secs=0 t rss i
    local -a steps=(
        "export" "import" "cdc capture" "cdc apply" "verify --sample 1% --against-source $M2D_MYSQL_URL"
    )
    for i in "${!steps[@]}"; do
        local -a cmd
        read -r -a cmd <<<"${steps[$i]}"
        cmd+=(--job "$JOB" --quiet)
        [ "$i" -gt 0 ] && cmd+=(--from "$RUN")
        read -r t rss < <(measure "$BIN" "${cmd[@]}")
        secs=$(awk -v a="$secs" -v b="$t" 'BEGIN {print a + b}'); [ "$rss" -gt "$peak" ] && peak=$rss
    done
    echo "$secs $peak"
}

echo "| run | separate commands s | peak RSS MB | migrate s | peak RSS MB | migrate / separate |" >"$OUT/migrate.md"
echo "|---|---|---|---|---|---|" >>"$OUT/migrate.md"
total_s=0; total_m=0; rss_s=0; rss_m=0
for i in $(seq 1 "$RUNS"); do
    rm -rf "$RUN"; read -r s srss < <(separate)
    rm -rf "$RUN"; read -r m mrss < <(measure "$BIN" migrate --job "$JOB" --until-ready --quiet)
    printf "| %d | %.1f | %d | %.1f | %d | %.2f |\n" "$i" "$s" "$srss" "$m" "$mrss" "$(awk -v a="$m" -v b="$s" 'BEGIN {print a / b}')" | tee -a "$OUT/migrate.md"
    total_s=$(awk -v a="$total_s" -v b="$s" 'BEGIN {print a + b}'); total_m=$(awk -v a="$total_m" -v b="$m" 'BEGIN {print a + b}')
    [ "$srss" -gt "$rss_s" ] && rss_s=$srss; [ "$mrss" -gt "$rss_m" ] && rss_m=$mrss
done
ratio=$(awk -v a="$total_m" -v b="$total_s" 'BEGIN {print a / b}')
summary "migrate ($ROWS rows, grouped, to dynalite): time vs the separate commands" \
    "$(printf %.1f "$total_m") s" "$(printf %.1f "$total_s") s" "$(printf %.2f "$ratio")" "$rss_m" "$rss_s" "≈ 1.0 (same within noise)"
echo "migrate / separate commands over $RUNS runs: $(printf %.2f "$ratio")"
