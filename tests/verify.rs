//! `mysql2ddb verify` after a real import: a clean load has 0 differences; each injected fault
//! (an item deleted, an extra item, an attribute changed, a pivoted attribute removed from a
//! grouped item) is found and reported with its key.

use crate::common;

use std::collections::HashMap;
use std::process::Output;

use aws_sdk_dynamodb::types::AttributeValue;
use common::ddb::{client, drop_table, dynalite, import, runtime};
use common::{assert_ok, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use serde_json::Value;

fn verify(run: &std::path::Path, mapping: &str) -> (Output, Value) {
    verify_with(run, &["--mapping", mapping])
}

fn verify_with(run: &std::path::Path, args: &[&str]) -> (Output, Value) {
    let out = common::cdc::verify_with(run, &dynalite(), args);
    let report = serde_json::from_slice(&std::fs::read(run.join("verify-report.json")).unwrap_or_default()).unwrap_or(Value::Null);
    (out, report)
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[test]
fn verify_passes_a_clean_load_and_finds_every_injected_fault() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "verify");
    conn.query_drop("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, balance DECIMAL(10,2) NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO customers SELECT seq, CONCAT('n', seq), seq * 1.5 FROM seq_1_to_300").unwrap();
    conn.query_drop("CREATE TABLE purchase (customerid VARCHAR(10), orderid VARCHAR(10), productid VARCHAR(10), quantity INT NOT NULL, PRIMARY KEY (customerid, orderid, productid))").unwrap();
    conn.query_drop("INSERT INTO purchase SELECT CONCAT('c', seq DIV 9), CONCAT('o', seq DIV 3), CONCAT('p', seq % 3), seq FROM seq_0_to_299").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let mapping = run.path().join("mapping.json");
    std::fs::write(
        &mapping,
        r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "rule-name": "all",
           "object-locator": {"schema-name": "it_verify", "table-name": "%"}, "rule-action": "include"},
          {"rule-type": "object-mapping", "rule-id": "2", "rule-name": "orders", "rule-action": "group-records-to-item",
           "object-locator": {"schema-name": "it_verify", "table-name": "purchase"}, "target-table-name": "it_verify_orders",
           "mapping-parameters": {"partition-key-name": "customerid", "sort-key-name": "orderid",
             "pivot": {"name": "${productid}", "value": "${quantity}"}}}]}"#,
    )
    .unwrap();
    let mapping = mapping.to_str().unwrap();
    for t in ["it_verify_customers", "it_verify_orders"] {
        drop_table(&dynalite(), t);
    }
    let out = import(run.path(), &dynalite(), &["--mapping", mapping, "--create-tables", "--wcu", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let (out, report) = verify(run.path(), mapping);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 differences"));
    assert_eq!(report["tables"][0]["expected_items"], report["tables"][0]["actual_items"]);
    // Regression: with more than one bucket, scanned items of a sort-key table were filed by
    // partition key alone and compared in the wrong bucket (thousands of false differences).
    let (out, report) = verify_with(run.path(), &["--mapping", mapping, "--bucket-rows", "7"]);
    assert!(out.status.success(), "many buckets: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(table_of(&report, "it_verify_orders")["expected_items"].as_u64(), Some(100));

    runtime().block_on(async {
        let c = client(&dynalite());
        c.delete_item().table_name("it_verify_customers").key("id", AttributeValue::N("7".into())).send().await.unwrap();
        let extra: HashMap<String, AttributeValue> = [("id".to_string(), AttributeValue::N("9999".into())), ("name".to_string(), s("ghost"))].into();
        c.put_item().table_name("it_verify_customers").set_item(Some(extra)).send().await.unwrap();
        c.update_item().table_name("it_verify_customers").key("id", AttributeValue::N("8".into()))
            .update_expression("SET #n = :v").expression_attribute_names("#n", "name").expression_attribute_values(":v", s("changed"))
            .send().await.unwrap();
        c.update_item().table_name("it_verify_orders").key("customerid", s("c1")).key("orderid", s("o4"))
            .update_expression("REMOVE p1").send().await.unwrap();
    });
    let (out, report) = verify(run.path(), mapping);
    assert_eq!(out.status.code(), Some(4), "differences found: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let table = |name: &str| report["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap().clone();
    let customers = table("it_verify_customers");
    assert_eq!((customers["missing"].as_u64(), customers["extra"].as_u64(), customers["differing"].as_u64()), (Some(1), Some(1), Some(1)), "{customers}");
    let orders = table("it_verify_orders");
    assert_eq!((orders["missing"].as_u64(), orders["extra"].as_u64(), orders["differing"].as_u64()), (Some(0), Some(0), Some(1)), "{orders}");
    assert!(text.contains("id=7 missing"), "{text}");
    assert!(text.contains("id=9999 extra"), "{text}");
    assert!(text.contains(r#"id=8 attribute differs name: expected {"S":"n8"}, found {"S":"changed"}"#), "{text}");
    assert!(text.contains(r#"customerid=c1 / orderid=o4 attribute missing p1: expected {"N":"13"}, found -"#), "{text}");
    assert!(text.contains("4 differences"), "{text}");
    let (out, small) = verify_with(run.path(), &["--mapping", mapping, "--bucket-rows", "7"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(small["tables"], report["tables"], "the same differences in many buckets");

    // Keyed reads: the whole set by key finds the missing and changed items (not the extra one);
    // a 30% sample reads about 30% of the keys and the same keys every time.
    let (out, report) = verify_with(run.path(), &["--mapping", mapping, "--sample", "100%"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let customers = table_of(&report, "it_verify_customers");
    assert_eq!((customers["missing"].as_u64(), customers["extra"].as_u64(), customers["differing"].as_u64()), (Some(1), Some(0), Some(1)), "{customers}");
    assert_eq!(customers["expected_items"].as_u64(), Some(300));
    assert_eq!(table_of(&report, "it_verify_orders")["differing"].as_u64(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 differences in a 100.00% sample"));
    let (_, first) = verify_with(run.path(), &["--mapping", mapping, "--sample", "0.3"]);
    let (_, second) = verify_with(run.path(), &["--mapping", mapping, "--sample", "30%"]);
    let n = table_of(&first, "it_verify_customers")["expected_items"].as_u64().unwrap();
    assert!((60..=120).contains(&n), "a 30% sample of 300 items read {n}");
    assert_eq!(first["tables"], second["tables"], "the sample is drawn by key hash, the same each run");
    let (out, _) = verify_with(run.path(), &["--mapping", mapping, "--sample", "150%"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--sample 150%"), "{}", stderr(&out));
}

fn table_of(report: &Value, name: &str) -> Value {
    report["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap_or_else(|| panic!("no table {name} in {report}")).clone()
}

#[test]
fn against_source_compares_with_the_server_as_it_is_now() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "verify_src");
    conn.query_drop("CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner VARCHAR(20) NOT NULL, balance DECIMAL(12,2) NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO accounts SELECT seq, CONCAT('o', seq), seq / 4 FROM seq_1_to_2000").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "300"]));
    drop_table(&dynalite(), "it_verify_src_accounts");
    let out = import(run.path(), &dynalite(), &["--create-tables", "--wcu", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let url = common::mysql_url();
    let (out, _) = verify_with(run.path(), &["--against-source", &url]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));

    // The source moves on after the export: the run still matches, the source no longer does.
    conn.query_drop("UPDATE accounts SET balance = balance + 1 WHERE id = 1500").unwrap();
    conn.query_drop("DELETE FROM accounts WHERE id = 3").unwrap();
    let (out, _) = verify_with(run.path(), &[]);
    assert!(out.status.success(), "against the run: {}", String::from_utf8_lossy(&out.stdout));
    let (out, report) = verify_with(run.path(), &["--against-source", &url]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let t = &report["tables"][0];
    assert_eq!((t["missing"].as_u64(), t["extra"].as_u64(), t["differing"].as_u64()), (Some(0), Some(1), Some(1)), "{t}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains(r#"id=1500 attribute differs balance: expected {"N":"376"}, found {"N":"375"}"#), "{text}");
    assert!(text.contains("id=3 extra"), "{text}");
}
