#!/usr/bin/env bash
# make demo: local servers up, the sample database loaded, then the pipeline as far as it
# exists: every stage by hand (export, sync, estimate, import, verify, cdc, bench), then the
# same migration in one `migrate` command and its `status`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
eval "$(scripts/services.sh env)"
# The build `make test` uses too (same profile and features), so a test run after the demo
# compiles only the tests.
BIN=${M2D_BIN:-$ROOT/target/debug/mysql2ddb}
OUT=${M2D_DEMO_OUT:-demo-out}

echo "== loading the sample database demo_shop"
mariadb --no-defaults --protocol=socket --socket="$M2D_MYSQL_SOCKET" -uroot < scripts/sample-db.sql >/dev/null

echo "== mysql2ddb export (consistent snapshot, 4 threads, Parquet)"
"$BIN" export --source "$M2D_MYSQL_URL" --out "$OUT/run1" --databases demo_shop --threads 4 \
    --chunk-rows 4000 --restart

echo
echo "== what the run folder holds"
python3 - "$OUT/run1" <<'PY'
import json, sys, os
run = sys.argv[1]
m = json.load(open(os.path.join(run, "manifest.json")))
s = m["snapshots"][0]
b = s.get("binlog") or {}
print(f"snapshot: {s['consistency']} ({s['guarantee']}) at binlog {b.get('file')}:{b.get('position')} gtid {b.get('gtid')}")
print(f"{'table':28} {'strategy':16} {'chunks':>6} {'rows':>8} {'bytes':>10}")
for t in m["tables"]:
    rows = sum(c["rows"] for c in t["chunks"]); size = sum(c["bytes"] for c in t["chunks"])
    print(f"{t['database'] + '.' + t['table']:28} {t['strategy']:16} {len(t['chunks']):>6} {rows:>8} {size:>10}")
print(f"manifest complete: {m['complete']}; report: {os.path.join(run, 'export-report.json')}")
PY
echo
echo "== mysql2ddb sync to the local S3 server, a rerun (nothing to send), and a verified download"
mkdir -p "$M2D_S3_DATA/demo"   # s3s-fs: a bucket is a folder of its data directory
"$BIN" sync --quiet "$OUT/run1" s3://demo/migrations/run1
"$BIN" sync --quiet "$OUT/run1" s3://demo/migrations/run1
rm -rf "$OUT/run1-downloaded"
"$BIN" sync --quiet s3://demo/migrations/run1 "$OUT/run1-downloaded"
echo
echo "== mysql2ddb estimate (nothing written): items, WCU, time and cost per rate"
"$BIN" estimate --quiet --from s3://demo/migrations/run1 --spool "$OUT/run1-import" \
    --mapping examples/mapping.json --wcu 1000,4000 --hot-keys 1
echo
echo "== mysql2ddb import into the local DynamoDB (dynalite): automatic mode for every table but"
echo "   audit_log (no primary key), and purchase grouped into one item per (customer, order)"
"$BIN" import --quiet --from s3://demo/migrations/run1 --spool "$OUT/run1-import" \
    --mapping examples/mapping.json --create-tables --table-prep drop-and-create --restart --wcu 4000
echo
echo "one grouped item of demo_orders:"
scripts/ddb-get.py "$M2D_DDB_ENDPOINT" demo_orders '{"customerid": {"S": "c2"}, "orderid": {"S": "o2"}}'
echo
echo "== mysql2ddb verify: every table against what the run maps to"
"$BIN" verify --quiet --from s3://demo/migrations/run1 --spool "$OUT/run1-import" --mapping examples/mapping.json --examples 3
echo
echo "== the application keeps writing: an order changes, one is added, one goes, a customer moves;"
echo "   a TIMESTAMP (last_update, set by the server), a SET (tags) and a YEAR (member_since) change"
mariadb --no-defaults --protocol=socket --socket="$M2D_MYSQL_SOCKET" -uroot demo_shop -e "
  UPDATE purchase SET quantity = quantity + 10 WHERE customerid = 'c2' AND orderid = 'o2';
  INSERT INTO purchase SELECT 'c2', 'o2', 'p0999', 7;
  DELETE FROM purchase WHERE customerid = 'c3' AND orderid = 'o3';
  UPDATE customers SET id = 900001 WHERE id = 42;
  UPDATE customers SET member_since = 1999, vip = 1 WHERE id = 7;
  UPDATE products SET tags = 'sale,eco' WHERE sku = 'p0001';
  UPDATE orders SET placed_at = '2024-12-24 18:00:00.250000', status = 'paid' WHERE id = 3;"
echo "== mysql2ddb cdc capture (binlog from the export's position), apply, status"
rm -rf "$OUT/run1-import/cdc"   # changes staged by an earlier demo belong to its export
"$BIN" cdc capture --quiet --source "$M2D_MYSQL_URL" --from s3://demo/migrations/run1 --spool "$OUT/run1-import"
"$BIN" cdc apply --quiet --from s3://demo/migrations/run1 --spool "$OUT/run1-import" --mapping examples/mapping.json
"$BIN" cdc status --from s3://demo/migrations/run1 --spool "$OUT/run1-import" --source "$M2D_MYSQL_URL"
echo "after apply, the changed TIMESTAMP, YEAR, SET and TIMESTAMP(6) values in DynamoDB:"
scripts/ddb-get.py "$M2D_DDB_ENDPOINT" demo_shop_customers '{"id": {"N": "7"}}' member_since last_update vip
scripts/ddb-get.py "$M2D_DDB_ENDPOINT" demo_shop_products '{"sku": {"S": "p0001"}}' tags
scripts/ddb-get.py "$M2D_DDB_ENDPOINT" demo_shop_orders '{"id": {"N": "3"}}' placed_at status
echo
echo "== mysql2ddb verify --against-source: DynamoDB against the source as it is now"
"$BIN" verify --quiet --from s3://demo/migrations/run1 --spool "$OUT/run1-import" --mapping examples/mapping.json \
    --against-source "$M2D_MYSQL_URL" --examples 3
echo
echo "== mysql2ddb bench: the grouped table written at 250, 500 and 1,000 WCU/s for 4 s each,"
echo "   through the capacity proxy, projected to 1,000,000,000 source rows"
"$BIN" bench --quiet --from s3://demo/migrations/run1 --spool "$OUT/run1-import" \
    --mapping examples/mapping.json --table demo_orders --wcu 250,500,1000 --seconds 4 --out "$OUT/bench"
echo "chart: $OUT/bench/bench.png (and .svg)"
echo
echo "== the same migration in one command: mysql2ddb migrate --job (pre-flight, export, capture"
echo "   following, import, apply following, a sampled verify against the source), then status"
rm -rf "$OUT/run2"
cat > "$OUT/job.toml" <<JOB
[source]
url = "$M2D_MYSQL_URL"

[export]
out = "$OUT/run2"
databases = ["demo_shop"]
chunk_rows = 4000

[import]
mapping = "examples/mapping.json"
create_tables = true
table_prep = "drop-and-create"
wcu = 4000
JOB
"$BIN" migrate --job "$OUT/job.toml" --until-ready 2>&1 | grep -v "source URL holds a password"
"$BIN" status --from "$OUT/run2"
