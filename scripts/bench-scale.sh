#!/usr/bin/env bash
# Part of make bench-import: how each stage grows with the rows. The purchase table (one item per
# (customer, order), products pivoted) at BENCH_SCALE_ROWS rows each (default 1M, 2M and 4M):
# export, import (unpaced, into dynalite) and a full verify (a Scan of every item against the
# run), each stage's wall time and peak RSS, and the time per million rows against the smallest
# size's. Goal (issue 31): every stage linear in the rows (time per row within 1.3x of the
# smallest size's), peak RSS flat (bounded by the settings, not the table). Appends to
# bench-out/import.md.
#
#   BENCH_SCALE_ROWS   space-separated sizes (default "1000000 2000000 4000000")
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
need_gnu_time
SIZES=${BENCH_SCALE_ROWS:-1000000 2000000 4000000}
AWS=(--endpoint "$M2D_DDB_ENDPOINT")

# drop_table NAME: DeleteTable on the local DynamoDB (dynalite takes any signature).
drop_table() {
    python3 - "$M2D_DDB_ENDPOINT" "$1" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=json.dumps({"TableName": sys.argv[2]}).encode(), headers={
    "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.DeleteTable",
    "Authorization": "AWS4-HMAC-SHA256 Credential=m2dlocal/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
    "X-Amz-Date": "20260101T000000Z"})
urllib.request.urlopen(req).read()
PY
}

declare -A secs rss items
for rows in $SIZES; do
    db=bench_scale_$rows
    purchase_table $db "$rows" "CONCAT('c', seq DIV 100)" "CONCAT('p', seq % 5)"
    run=$OUT/$db-run
    table=${db}_grouped
    rm -rf "$run"
    purchase_group_mapping $db "$table" >"$OUT/$db.json"
    echo "== $rows rows: export, import, verify"
    read -r secs[export-$rows] rss[export-$rows] < <(measure "$BIN" export --quiet --source "$M2D_MYSQL_URL" --out "$run" --databases $db)
    read -r secs[import-$rows] rss[import-$rows] < <(measure "$BIN" import --quiet --from "$run" --mapping "$OUT/$db.json" "${AWS[@]}" --create-tables --table-prep drop-and-create --wcu 0)
    read -r secs[verify-$rows] rss[verify-$rows] < <(measure "$BIN" verify --quiet --from "$run" --mapping "$OUT/$db.json" "${AWS[@]}")
    items[$rows]=$(python3 -c "import json; r=json.load(open('$run/verify-report.json')); print(r['differences'], sum(t['actual_items'] for t in r['tables']))")
    rm -rf "$run"
    drop_table "$table" # dynalite holds its tables in memory: leave the server as it was

done
first=${SIZES%% *}
{
echo
echo "### How the stages grow with the rows: purchase at $(echo $SIZES | sed 's/ /, /g') rows"
echo
echo "\`make bench-import\` (its part \`scripts/bench-scale.sh\`; BENCH_SCALE_ROWS=\"$SIZES\"): export (default threads and chunks), import (unpaced, grouped into one item per (customer, order), into dynalite) and a full \`verify\` (a Scan of every item against the run), $(nproc) threads. Growth: seconds per million rows against the $first-row run's."
echo
echo "| rows | items (verify differences) | export s / RSS | import s / RSS | verify s / RSS | export growth | import growth | verify growth |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for rows in $SIZES; do
    read -r diffs n <<<"${items[$rows]}"
    g() { python3 -c "print(f'{(${secs[$1-$rows]}/$rows)/(${secs[$1-$first]}/$first):.2f}')"; }
    echo "| $rows | $n ($diffs) | ${secs[export-$rows]} / ${rss[export-$rows]} MB | ${secs[import-$rows]} / ${rss[import-$rows]} MB | ${secs[verify-$rows]} / ${rss[verify-$rows]} MB | $(g export) | $(g import) | $(g verify) |"
done
} | tee -a "$OUT/import.md"
last=${SIZES##* }
for stage in export import verify; do
    summary "$stage of $last purchase rows: time per row vs $first rows" "${secs[$stage-$last]} s, ${rss[$stage-$last]} MB" "${secs[$stage-$first]} s, ${rss[$stage-$first]} MB" "$(python3 -c "print(f'{(${secs[$stage-$last]}/$last)/(${secs[$stage-$first]}/$first):.2f}')")" "${rss[$stage-$last]} MB" "${rss[$stage-$first]} MB" "linear (≤ 1.3×), RSS flat"
done
