#!/usr/bin/env bash
# make bench (last step): one table of every comparison the benchmark scripts recorded with
# `summary` (bench-out/summary.tsv): mysql2ddb's figure, the peer's, the ratio, both peak RSS and
# the goal. Writes bench-out/summary.md. Each line says the day it was measured, so a partial
# rerun (`make bench-import` alone) shows which lines are older.
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
[ -s "$OUT/summary.tsv" ] || { echo "no benchmark results in $OUT/summary.tsv: run make bench first" >&2; exit 1; }
{
echo "### Summary: every ratio of \`make bench\`"
echo
echo "| comparison | mysql2ddb | peer | ratio | mysql2ddb peak RSS | peer peak RSS | goal | measured |"
echo "|---|---:|---:|---:|---:|---:|---|---|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$OUT/summary.tsv"
} | tee "$OUT/summary.md"
