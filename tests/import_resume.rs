//! Import under pressure: through the capacity proxy with 30 % of write calls throttled every
//! item lands exactly once (DynamoDB's consumed capacity equals one write per item) and the
//! retries are counted; and kill -9 in the middle of an import, then a rerun that skips the
//! finished buckets, leaves the table equal to the source.

use crate::common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::ddb::{drop_table, dynalite, import, import_cmd, scan, ProxyProcess};
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
