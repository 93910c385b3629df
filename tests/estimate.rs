//! `mysql2ddb estimate` against what DynamoDB (dynalite) actually charges: on hand-checked items
//! around the 1 KB boundaries, and on a table of mixed sizes, the estimated WCU equals the
//! capacity the import consumed; a partition key with most of the writes is warned about.

use crate::common;

use std::process::Command;

use common::ddb::{drop_table, dynalite, import};
use common::{assert_ok, bin, connect, export, fresh_db, services, stderr};
use mysql::prelude::Queryable;
use serde_json::Value;

fn estimate(run: &std::path::Path, args: &[&str]) -> (String, Value) {
    let out = Command::new(bin()).args(["estimate", "--quiet", "--from"]).arg(run).args(args).env("AWS_REGION", &services()["AWS_REGION"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = serde_json::from_slice(&std::fs::read(run.join("estimate-report.json")).unwrap()).unwrap();
    (String::from_utf8(out.stdout).unwrap(), report)
}

fn consumed(run: &std::path::Path, table: &str) -> f64 {
    let r: Value = serde_json::from_slice(&std::fs::read(run.join("import-report.json")).unwrap()).unwrap();
    r["tables"].as_array().unwrap().iter().find(|t| t["table"] == table).unwrap()["wcu_consumed"].as_f64().unwrap()
}

#[test]
fn estimated_wcu_equals_what_dynamodb_charges() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "estimate");
    // Item = "id" + N (2 bytes) + "v" + text: 5 + len bytes. 1019 -> 1024 B (1 WCU), 1020 -> 1025 B
    // (2 WCU), 2043 -> 2048 B (2 WCU), 2044 -> 2049 B (3 WCU): 8 WCU by hand.
    conn.query_drop("CREATE TABLE hand (id INT PRIMARY KEY, v TEXT NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO hand VALUES (1, REPEAT('a', 1019)), (2, REPEAT('b', 1020)), (3, REPEAT('c', 2043)), (4, REPEAT('d', 2044))").unwrap();
    conn.query_drop("CREATE TABLE mixed (id INT PRIMARY KEY, customer VARCHAR(10) NOT NULL, v TEXT, amount DECIMAL(12,3))").unwrap();
    conn.query_drop("INSERT INTO mixed SELECT seq, IF(seq % 4 = 0, 'other', 'big'), REPEAT('x', seq * 37 % 3000), seq * 1.5 FROM seq_1_to_2000").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));

    let (_, report) = estimate(run.path(), &[]);
    let table = |name: &str| report["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap().clone();
    assert_eq!(table("it_estimate_hand")["wcu"], 8);
    assert_eq!(table("it_estimate_hand")["max_item_bytes"], 2049);

    for t in ["it_estimate_hand", "it_estimate_mixed"] {
        drop_table(&dynalite(), t);
    }
    let out = import(run.path(), &dynalite(), &["--create-tables", "--wcu", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(consumed(run.path(), "it_estimate_hand"), 8.0, "dynalite charges what we computed by hand");
    let est = table("it_estimate_mixed")["wcu"].as_f64().unwrap();
    let got = consumed(run.path(), "it_estimate_mixed");
    assert!(est > 2000.0, "items span several KB: {est}");
    assert!((est - got).abs() / got <= 0.01, "estimate {est} WCU vs consumed {got}");
}

#[test]
fn a_hot_partition_key_is_warned_about() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "hotkey");
    conn.query_drop("CREATE TABLE events (id INT PRIMARY KEY, customer VARCHAR(10) NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO events SELECT seq, IF(seq % 10 < 6, 'big', CONCAT('c', seq)) FROM seq_1_to_1000").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let mapping = run.path().join("m.json");
    std::fs::write(
        &mapping,
        r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1",
          "object-locator": {"schema-name": "it_hotkey", "table-name": "%"}, "rule-action": "include"},
          {"rule-type": "object-mapping", "rule-id": "2", "rule-name": "byCustomer", "rule-action": "map-record-to-record",
           "object-locator": {"schema-name": "it_hotkey", "table-name": "events"}, "target-table-name": "it_hot",
           "mapping-parameters": {"partition-key-name": "customer", "sort-key-name": "id"}}]}"#,
    )
    .unwrap();
    let (text, report) = estimate(run.path(), &["--mapping", mapping.to_str().unwrap(), "--wcu", "1000,4000"]);
    let t = &report["tables"][0];
    assert_eq!(t["hot_keys"][0]["partition_key"], "big");
    assert!((t["hot_keys"][0]["share"].as_f64().unwrap() - 0.6).abs() < 1e-9);
    assert!(t["loads"][0]["warnings"].as_array().unwrap().is_empty(), "600 WCU/s on one key at 1000 is fine");
    assert_eq!(t["loads"][1]["warnings"].as_array().unwrap().len(), 1, "2400 WCU/s on one key at 4000 is not");
    assert!(text.contains("warning: partition key big takes 60.0 % of the writes"), "{text}");
    assert!(t["loads"][1]["provisioned_cost"].as_f64().unwrap() > 0.0 && t["on_demand_cost"].as_f64().is_some());
}
