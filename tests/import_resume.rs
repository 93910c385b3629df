//! Import under pressure: through the capacity proxy with 30 % of write calls throttled every
//! item lands exactly once (DynamoDB's consumed capacity equals one write per item) and the
//! retries are counted; and kill -9 in the middle of an import (while it writes, and while it
//! spills and groups rows into items), then a rerun, leaves the table equal to the source.

use crate::common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::ddb::{drop_table, dynalite, import, import_cmd, runtime, scan, ProxyProcess};
use common::{assert_ok, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use mysql2ddb::value::attr::Attr;
use serde_json::Value;

fn source(name: &str, rows: u32) -> (tempfile::TempDir, String) {
    let mut conn = connect();
    let db = fresh_db(&mut conn, name);
    conn.query_drop("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)").unwrap();
    conn.query_drop(format!("INSERT INTO items SELECT seq, CONCAT('value-', seq * 7) FROM seq_1_to_{rows}")).unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "1000"]));
    (run, format!("{db}_items"))
}

/// id → v of every item of the table.
fn table_contents(table: &str) -> BTreeMap<u32, String> {
    scan(&dynalite(), table)
        .into_iter()
        .map(|i| match (&i["id"], &i["v"]) {
            (Attr::N(id), Attr::S(v)) => (id.parse().unwrap(), v.clone()),
            other => panic!("unexpected item {other:?}"),
        })
        .collect()
}

fn expected(rows: u32) -> BTreeMap<u32, String> {
    (1..=rows).map(|i| (i, format!("value-{}", i * 7))).collect()
}

fn report(run: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(run.join("import-report.json")).unwrap()).unwrap()
}

#[test]
fn with_30_percent_throttles_every_item_lands_exactly_once() {
    let (run, table) = source("throttled", 800);
    drop_table(&dynalite(), &table);
    let proxy = ProxyProcess::start(500, 0.3);
    let out = import(run.path(), &proxy.endpoint, &["--create-tables", "--wcu", "400", "--concurrency", "8"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table_contents(&table), expected(800));
    let r = &report(run.path())["tables"][0];
    assert_eq!(r["items_written"], 800);
    assert_eq!(r["wcu_consumed"].as_f64(), Some(800.0), "one 1-WCU write per item: nothing written twice");
    assert!(r["throttles"].as_u64().unwrap() > 0 && r["retries"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn unprocessed_items_handed_back_respelled_are_still_written() {
    // A service may hand UnprocessedItems back re-serialised (`7` as `7.0`): they are the same
    // requests by primary key and must be sent again, not counted as written.
    let (run, table) = source("respelled", 600);
    drop_table(&dynalite(), &table);
    let proxy = ProxyProcess::start_with(300, 0.3, &["--respell-unprocessed"]);
    let out = import(run.path(), &proxy.endpoint, &["--create-tables", "--wcu", "250", "--concurrency", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table_contents(&table), expected(600));
    let r = &report(run.path())["tables"][0];
    assert_eq!(r["items_written"], 600);
    assert!(r["throttles"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn kill_9_mid_import_then_rerun_gives_the_same_table() {
    let rows = 6000;
    let (run, table) = source("killed", rows);
    drop_table(&dynalite(), &table);
    let args = ["--create-tables", "--wcu", "1500", "--bucket-rows", "500"];
    let mut child = import_cmd(run.path(), &dynalite(), &args).stderr(Stdio::null()).spawn().unwrap();
    let state_path = run.path().join("import/state.json");
    let written = |st: &Value| st["targets"][0]["buckets"].as_array().map(|b| b.iter().filter(|b| b["written"] == true).count()).unwrap_or(0);
    let start = Instant::now();
    loop {
        let st: Value = std::fs::read(&state_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
        if written(&st) >= 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "import made no progress");
        assert!(child.try_wait().unwrap().is_none(), "import ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let st: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let buckets = st["targets"][0]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 12);
    let done_items: u64 = buckets.iter().filter(|b| b["written"] == true).map(|b| b["items"].as_u64().unwrap()).sum();
    assert!(done_items > 0 && done_items < rows as u64, "killed mid-way: {done_items} items in finished buckets");

    let out = import(run.path(), &dynalite(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table_contents(&table), expected(rows));
    let r = &report(run.path())["tables"][0];
    assert_eq!(r["items"], rows);
    assert_eq!(r["items_written"].as_u64().unwrap() + done_items, rows as u64, "the rerun wrote exactly the unfinished buckets");
}

#[test]
fn a_hot_partition_key_is_slowed_on_its_own_and_every_item_lands_once() {
    // 30 % of the rows share one partition key. The proxy spreads 1,200 WCU/s over partitions of
    // 300 (DynamoDB's per-partition limit, scaled down), so that key's partition throttles long
    // before the table does.
    let mut conn = connect();
    let db = fresh_db(&mut conn, "hotkey");
    conn.query_drop("CREATE TABLE events (pk VARCHAR(20) NOT NULL, sk INT NOT NULL, v VARCHAR(40) NOT NULL, PRIMARY KEY (pk, sk))").unwrap();
    conn.query_drop("INSERT INTO events SELECT IF(seq % 10 < 3, 'hot', CONCAT('k', seq)), seq, CONCAT('value-', seq) FROM seq_1_to_3000").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let table = format!("{db}_events");
    drop_table(&dynalite(), &table);
    let proxy = ProxyProcess::start_with(1200, 0.0, &["--partition-wcu", "300"]);
    let out = import(run.path(), &proxy.endpoint, &["--create-tables", "--wcu", "1200", "--concurrency", "16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let items = scan(&dynalite(), &table);
    assert_eq!(items.len(), 3000);
    let hot = items.iter().filter(|i| i["pk"] == Attr::S("hot".into())).count();
    assert_eq!(hot, 900);
    let r = &report(run.path())["tables"][0];
    assert_eq!(r["items_written"], 3000);
    assert_eq!(r["wcu_consumed"].as_f64(), Some(3000.0), "one write per item: nothing written twice");
    assert!(r["key_throttles"].as_u64().unwrap() > 0, "the hot key was throttled on its own: {r}");
}

/// Files in a folder of the import's work folder (`import/<what>/<target>/`).
fn files_in(run: &std::path::Path, what: &str) -> usize {
    let Ok(targets) = std::fs::read_dir(run.join("import").join(what)) else { return 0 };
    targets.flatten().filter_map(|t| std::fs::read_dir(t.path()).ok()).map(|d| d.flatten().filter(|f| f.metadata().map(|m| m.len() > 0).unwrap_or(false)).count()).sum()
}

/// Starts the import and kills it (SIGKILL) once `ready` holds; returns whether it was still
/// before the end of grouping then.
fn import_killed_when(run: &std::path::Path, args: &[&str], ready: impl Fn() -> bool) -> bool {
    let mut child = import_cmd(run, &dynalite(), args).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while !ready() && child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "import made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let grouped = std::fs::read(run.join("import/state.json")).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()).map(|s| s["grouped"] == true).unwrap_or(false);
    let _ = child.kill();
    child.wait().unwrap();
    !grouped
}

/// kill -9 while the import spills the rows by bucket, and again while it groups them into
/// items, then a full run: every (customer, order) is one item holding every product of it.
#[test]
fn kill_9_while_spilling_and_grouping_then_rerun_gives_every_item_once() {
    const ROWS: u32 = 200_000;
    let mut conn = connect();
    let db = fresh_db(&mut conn, "killed_grouping");
    conn.query_drop("CREATE TABLE purchase (customerid VARCHAR(10), orderid VARCHAR(10), productid VARCHAR(12), quantity INT NOT NULL, PRIMARY KEY (customerid, orderid, productid))").unwrap();
    conn.query_drop(format!("INSERT INTO purchase SELECT CONCAT('c', seq % 500), CONCAT('o', seq DIV 500 % 40), CONCAT('p', seq), seq % 9 + 1 FROM seq_1_to_{ROWS}")).unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "20000"]));
    let table = format!("{db}_orders");
    let mapping = common::grouping_mapping(run.path(), &db);
    drop_table(&dynalite(), &table);
    let m = mapping.to_str().unwrap();
    let args = ["--create-tables", "--mapping", m, "--bucket-rows", "5000"];

    let spilling = import_killed_when(run.path(), &args, || files_in(run.path(), "spill") > 0);
    assert!(spilling, "the first kill came before grouping ended");
    // The rerun starts over (spilling had not finished); killed once it has grouped a bucket.
    let grouping = import_killed_when(run.path(), &args, || files_in(run.path(), "items") > 0);
    assert!(grouping, "the second kill came after a bucket was grouped and before the last");
    let out = import(run.path(), &dynalite(), &args);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut expected: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for seq in 1..=ROWS {
        let key = (format!("c{}", seq % 500), format!("o{}", seq / 500 % 40));
        expected.entry(key).or_default().insert(format!("p{seq}"), (seq % 9 + 1).to_string());
    }
    let mut got: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for item in scan(&dynalite(), &table) {
        let (Attr::S(c), Attr::S(o)) = (&item["customerid"], &item["orderid"]) else { panic!("keys of {item:?}") };
        let products = item
            .iter()
            .filter(|(k, _)| k.as_str() != "customerid" && k.as_str() != "orderid")
            .map(|(k, v)| match v {
                Attr::N(n) => (k.clone(), n.clone()),
                other => panic!("{k}: {other:?}"),
            })
            .collect();
        assert!(got.insert((c.clone(), o.clone()), products).is_none(), "one item per key");
    }
    assert_eq!(got.len(), expected.len(), "items");
    assert!(got == expected, "every product of every order, once");
    let r = &report(run.path())["tables"][0];
    assert_eq!(r["items"], expected.len() as u64, "{r}");
}

/// The one BatchWriteItem loop (`aws::batch_write`) under partial answers, for each of its three
/// callers, through the capacity proxy throttling 30 % of calls (whole or in part) and handing
/// UnprocessedItems back respelled: the import's puts, `cdc apply`'s batched puts and deletes,
/// and `--table-prep truncate`'s deletes each end with exactly the source's items.
#[test]
fn import_apply_and_truncate_write_every_item_through_partial_answers() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "one_writer");
    conn.query_drop("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO items SELECT seq, CONCAT('value-', seq * 7) FROM seq_1_to_700").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let table = format!("{db}_items");
    drop_table(&dynalite(), &table);
    let proxy = ProxyProcess::start_with(100_000, 0.3, &["--respell-unprocessed"]);
    let out = import(run.path(), &proxy.endpoint, &["--create-tables", "--wcu", "0", "--concurrency", "4"]);
    assert!(out.status.success(), "import: {}", stderr(&out));
    assert_eq!(table_contents(&table), expected(700));

    // Inserts and deletes, applied in batches through the same proxy.
    conn.query_drop("INSERT INTO items SELECT seq, CONCAT('value-', seq * 7) FROM seq_701_to_1000").unwrap();
    conn.query_drop("DELETE FROM items WHERE id % 3 = 0").unwrap();
    let out = common::cdc::capture(run.path());
    assert!(out.status.success(), "capture: {}", stderr(&out));
    let out = common::cdc::apply_with(run.path(), &proxy.endpoint, &[]);
    assert!(out.status.success(), "apply: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let now: BTreeMap<u32, String> = expected(1000).into_iter().filter(|(id, _)| id % 3 != 0).collect();
    assert_eq!(table_contents(&table), now);

    // A rerun with --restart --table-prep truncate deletes every item first, through the proxy.
    runtime().block_on(async {
        let c = common::ddb::client(&dynalite());
        c.put_item().table_name(&table).item("id", aws_sdk_dynamodb::types::AttributeValue::N("5000".into())).item("v", aws_sdk_dynamodb::types::AttributeValue::S("stray".into())).send().await.unwrap();
    });
    let out = import(run.path(), &proxy.endpoint, &["--restart", "--table-prep", "truncate", "--wcu", "0", "--concurrency", "4"]);
    assert!(out.status.success(), "truncate and import: {}", stderr(&out));
    assert_eq!(table_contents(&table), expected(700), "the stray item and the applied changes are gone: the table is the run's again");
}
