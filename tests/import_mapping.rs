//! `mysql2ddb import` mappings against the real servers: the AWS blog's purchase table both ways
//! (the DMS record-to-record rule and the grouping extension), a collect rule, the DMS rule on
//! Amazon's DynamoDB Local, and automatic mode on several tables incl. a 3-column primary key.
//! Expected items are computed here from the rows the test inserted, not by the importer.

use crate::common;

use std::collections::BTreeMap;

use common::ddb::{ddblocal, drop_table, dynalite, import, scan};
use common::{assert_ok, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use mysql2ddb::value::attr::{item_to_json, Attr, Item};

/// (customerid, orderid, productid, quantity) rows of the blog's purchase table.
fn purchase_rows() -> Vec<(String, String, String, i64)> {
    let mut rows = Vec::new();
    for c in 1..=20 {
        for o in 1..=3 {
            for p in 1..=5 {
                if (c + o + p) % 3 != 0 {
                    rows.push((format!("c{c:03}"), format!("o{o}"), format!("p{p}"), (c * o * p) % 17 + 1));
                }
            }
        }
    }
    rows
}

pub(crate) fn load_purchase(db_name: &str) -> (tempfile::TempDir, Vec<(String, String, String, i64)>) {
    let mut conn = connect();
    let db = fresh_db(&mut conn, db_name);
    conn.query_drop(
        "CREATE TABLE purchase (customerid VARCHAR(20) NOT NULL, orderid VARCHAR(20) NOT NULL, productid VARCHAR(20) NOT NULL,
         quantity INT NOT NULL, PRIMARY KEY (customerid, orderid, productid))",
    )
    .unwrap();
    let rows = purchase_rows();
    let values: Vec<String> = rows.iter().map(|(c, o, p, q)| format!("('{c}','{o}','{p}',{q})")).collect();
    conn.query_drop(format!("INSERT INTO purchase VALUES {}", values.join(","))).unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "50"]));
    (run, rows)
}

pub(crate) fn sorted(items: &[Item]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|i| item_to_json(i).to_string()).collect();
    v.sort();
    v
}

fn s(v: &str) -> Attr {
    Attr::S(v.into())
}

fn n(v: i64) -> Attr {
    Attr::N(v.to_string())
}

const BLOG_DMS_RULE: &str = r#"{
  "rules": [
    {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
     "object-locator": {"schema-name": "DB", "table-name": "%"}, "rule-action": "include"},
    {"rule-type": "object-mapping", "rule-id": "2", "rule-name": "TransformToDDB",
     "rule-action": "map-record-to-record",
     "object-locator": {"schema-name": "DB", "table-name": "purchase"},
     "target-table-name": "TARGET",
     "mapping-parameters": {
       "partition-key-name": "customer_orderid",
       "sort-key-name": "productid",
       "exclude-columns": ["customerid", "orderid"],
       "attribute-mappings": [
         {"target-attribute-name": "customer_orderid", "attribute-type": "scalar",
          "attribute-sub-type": "string", "value": "${customerid}|${orderid}"},
         {"target-attribute-name": "productid", "attribute-type": "scalar",
          "attribute-sub-type": "string", "value": "${productid}"}
       ]
     }}
  ]
}"#;

pub(crate) fn write_mapping(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("mapping.json");
    std::fs::write(&p, text).unwrap();
    p
}

fn dms_expected(rows: &[(String, String, String, i64)]) -> Vec<String> {
    let items: Vec<Item> = rows
        .iter()
        .map(|(c, o, p, q)| Item::from([("customer_orderid".into(), s(&format!("{c}|{o}"))), ("productid".into(), s(p)), ("quantity".into(), n(*q))]))
        .collect();
    sorted(&items)
}

#[test]
fn the_blog_purchase_rule_works_as_written_on_dynalite_and_dynamodb_local() {
    let (run, rows) = load_purchase("blog_dms");
    let mapping = write_mapping(run.path(), &BLOG_DMS_RULE.replace("DB", "it_blog_dms").replace("TARGET", "it_blog_purchase"));
    for endpoint in [dynalite(), ddblocal()] {
        drop_table(&endpoint, "it_blog_purchase");
        let out = import(run.path(), &endpoint, &["--mapping", mapping.to_str().unwrap(), "--create-tables", "--restart", "--wcu", "0"]);
        assert!(out.status.success(), "{endpoint}: {}", stderr(&out));
        let items = scan(&endpoint, "it_blog_purchase");
        assert_eq!(sorted(&items), dms_expected(&rows), "{endpoint}");
    }
}

#[test]
fn the_blog_grouping_rule_pivots_products_into_one_item_per_order() {
    let (run, rows) = load_purchase("blog_group");
    let mapping = write_mapping(
        run.path(),
        r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
           "object-locator": {"schema-name": "it_blog_group", "table-name": "purchase"}, "rule-action": "include"},
          {"rule-type": "object-mapping", "rule-id": "3", "rule-name": "GroupOrders", "rule-action": "group-records-to-item",
           "object-locator": {"schema-name": "it_blog_group", "table-name": "purchase"},
           "target-table-name": "it_blog_grouped",
           "mapping-parameters": {"partition-key-name": "customerid", "sort-key-name": "orderid",
             "pivot": {"name": "${productid}", "value": "${quantity}"}}}]}"#,
    );
    drop_table(&dynalite(), "it_blog_grouped");
    let out = import(run.path(), &dynalite(), &["--mapping", mapping.to_str().unwrap(), "--create-tables", "--restart", "--bucket-rows", "40"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut expected: BTreeMap<(String, String), Item> = BTreeMap::new();
    for (c, o, p, q) in &rows {
        let item = expected.entry((c.clone(), o.clone())).or_insert_with(|| Item::from([("customerid".into(), s(c)), ("orderid".into(), s(o))]));
        item.insert(p.clone(), n(*q));
    }
    let expected: Vec<Item> = expected.into_values().collect();
    let items = scan(&dynalite(), "it_blog_grouped");
    assert_eq!(items.len(), expected.len(), "one item per (customer, order)");
    assert_eq!(sorted(&items), sorted(&expected));
}

#[test]
fn a_collect_rule_builds_a_map_per_customer() {
    let (run, rows) = load_purchase("blog_collect");
    let mapping = write_mapping(
        run.path(),
        r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
           "object-locator": {"schema-name": "it_blog_collect", "table-name": "purchase"}, "rule-action": "include"},
          {"rule-type": "object-mapping", "rule-id": "3", "rule-name": "ByCustomer", "rule-action": "group-records-to-item",
           "object-locator": {"schema-name": "it_blog_collect", "table-name": "purchase"},
           "target-table-name": "it_blog_by_customer",
           "mapping-parameters": {"partition-key-name": "customerid",
             "collect": {"target-attribute-name": "products", "as": "map", "key": "${orderid}/${productid}", "value": "${quantity}"}}}]}"#,
    );
    drop_table(&dynalite(), "it_blog_by_customer");
    let out = import(run.path(), &dynalite(), &["--mapping", mapping.to_str().unwrap(), "--create-tables", "--restart"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut expected: BTreeMap<String, BTreeMap<String, Attr>> = BTreeMap::new();
    for (c, o, p, q) in &rows {
        expected.entry(c.clone()).or_default().insert(format!("{o}/{p}"), n(*q));
    }
    let expected: Vec<Item> = expected.into_iter().map(|(c, m)| Item::from([("customerid".into(), s(&c)), ("products".into(), Attr::M(m))])).collect();
    assert_eq!(sorted(&scan(&dynalite(), "it_blog_by_customer")), sorted(&expected));
}

#[test]
fn automatic_mode_writes_one_item_per_row_including_a_three_column_key() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "auto");
    conn.query_drop("CREATE TABLE single (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL, note TEXT NULL)").unwrap();
    conn.query_drop("INSERT INTO single SELECT seq, CONCAT('n', seq), IF(seq % 2 = 0, NULL, 'x') FROM seq_1_to_700").unwrap();
    conn.query_drop("CREATE TABLE pair (a INT, b VARCHAR(10), v INT NOT NULL, PRIMARY KEY (a, b))").unwrap();
    conn.query_drop("INSERT INTO pair SELECT seq % 7, CONCAT('b', seq), seq FROM seq_1_to_300").unwrap();
    conn.query_drop("CREATE TABLE triple (x INT, y VARCHAR(10), z VARCHAR(10), v INT NOT NULL, PRIMARY KEY (x, y, z))").unwrap();
    // Without escaping, ('a#b','c') and ('a','b#c') would make the same composite sort key.
    conn.query_drop(r"INSERT INTO triple VALUES (1, 'a#b', 'c', 1), (1, 'a', 'b#c', 2), (1, 'a\\', '#c', 3), (2, 'a', 'b', 4)").unwrap();
    conn.query_drop("INSERT INTO triple SELECT seq, 'y', CONCAT('z', seq), seq FROM seq_10_to_99").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "100"]));
    for t in ["it_auto_single", "it_auto_pair", "it_auto_triple"] {
        drop_table(&dynalite(), t);
    }
    let out = import(run.path(), &dynalite(), &["--create-tables"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (table, rows) in [("it_auto_single", 700), ("it_auto_pair", 300), ("it_auto_triple", 94)] {
        let count: u64 = conn.query_first(format!("SELECT COUNT(*) FROM {}", &table[8..])).unwrap().unwrap();
        assert_eq!(count, rows);
        assert_eq!(scan(&dynalite(), table).len() as u64, rows, "{table}: one item per row, none lost");
    }
    let single = scan(&dynalite(), "it_auto_single");
    let seven = single.iter().find(|i| i["id"] == n(7)).unwrap();
    assert_eq!(item_to_json(seven).to_string(), r#"{"id":{"N":"7"},"name":{"S":"n7"},"note":{"S":"x"}}"#);
    assert!(!single.iter().find(|i| i["id"] == n(8)).unwrap().contains_key("note"), "NULL is an absent attribute");
    let triple = scan(&dynalite(), "it_auto_triple");
    let sk: Vec<&Attr> = triple.iter().filter(|i| i["x"] == n(1)).map(|i| &i["y#z"]).collect();
    assert_eq!(sk.len(), 3);
    for want in [r"a\#b#c", r"a#b\#c", r"a\\#\#c"] {
        assert!(sk.contains(&&s(want)), "{want} in {sk:?}");
    }
}

#[test]
fn a_table_without_a_primary_key_is_skipped_and_says_how_to_map_it() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "nokey");
    conn.query_drop("CREATE TABLE events (at DATETIME, what TEXT)").unwrap();
    conn.query_drop("INSERT INTO events VALUES (NOW(), 'x')").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let out = import(run.path(), &dynalite(), &["--create-tables"]);
    assert_eq!(out.status.code(), Some(5), "skipped, not fatal: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("it_nokey.events") && err.contains("no primary key") && err.contains("partition-key-name"), "{err}");
}

/// Automatic mode on names DynamoDB does not allow: a database with a space (`weird db`.`order`
/// became an error asking for a template no template could satisfy), a table name over 255 bytes
/// once templated; tables it cannot key (no key, a SET key) are skipped and named, not fatal.
#[test]
fn automatic_mode_names_any_table_and_skips_those_it_cannot_key() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "weird db");
    conn.query_drop("CREATE TABLE `order` (id INT PRIMARY KEY, v VARCHAR(10))").unwrap();
    conn.query_drop("INSERT INTO `order` VALUES (1, 'a'), (2, 'b')").unwrap();
    conn.query_drop("CREATE TABLE nokey (v VARCHAR(10))").unwrap();
    conn.query_drop("INSERT INTO nokey VALUES ('x')").unwrap();
    conn.query_drop("CREATE TABLE setkey (s SET('a','b') NOT NULL PRIMARY KEY)").unwrap();
    conn.query_drop("INSERT INTO setkey VALUES ('a,b')").unwrap();
    // 40 three-byte characters (identifiers are utf8mb3; MariaDB's own file names stop near 50):
    // 360 bytes once percent-encoded as a file name.
    let emoji = "€".repeat(40);
    conn.query_drop(format!("CREATE TABLE `{emoji}` (id INT PRIMARY KEY)")).unwrap();
    conn.query_drop(format!("INSERT INTO `{emoji}` VALUES (7)")).unwrap();
    let emoji_target = format!("it_weird_db_{}", "_".repeat(40));
    drop_table(&dynalite(), "it_weird_db_order");
    drop_table(&dynalite(), &emoji_target);
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));

    let out = import(run.path(), &dynalite(), &["--create-tables", "--wcu", "0"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "tables were skipped: {err}");
    assert!(err.contains("it_weird db.order -> DynamoDB table it_weird_db_order"), "{err}");
    assert!(err.contains("skipped table it_weird db.nokey") && err.contains("object-mapping rule"), "{err}");
    assert!(err.contains("skipped table it_weird db.setkey") && err.contains("set('a','b')"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join("import-report.json")).unwrap()).unwrap();
    assert_eq!(
        report["names"],
        serde_json::json!([{"source": "it_weird db.order", "target": "it_weird_db_order"}, {"source": format!("it_weird db.{emoji}"), "target": emoji_target}]),
        "{report}"
    );
    assert_eq!(scan(&dynalite(), &emoji_target).len(), 1);
    let skipped: Vec<&str> = report["skipped"].as_array().unwrap().iter().map(|s| s["table"].as_str().unwrap()).collect();
    assert_eq!(skipped, ["it_weird db.nokey", "it_weird db.setkey"]);
    let items = scan(&dynalite(), "it_weird_db_order");
    assert_eq!(sorted(&items), sorted(&[
        BTreeMap::from([("id".to_string(), n(1)), ("v".to_string(), s("a"))]),
        BTreeMap::from([("id".to_string(), n(2)), ("v".to_string(), s("b"))]),
    ]));

    // A template that makes a name over DynamoDB's 255 bytes: shortened with a hash suffix.
    let template = "{database}_{table}_".repeat(16);
    let out = import(run.path(), &dynalite(), &["--create-tables", "--wcu", "0", "--table-name-template", &template]);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join("import-report.json")).unwrap()).unwrap();
    let target = report["names"][0]["target"].as_str().unwrap_or_else(|| panic!("{report} {}", stderr(&out))).to_string();
    assert_eq!(target.len(), 255, "{target}: {}", stderr(&out));
    assert!(target.starts_with("it_weird_db_order_it_weird_db_order_"), "{target}");
    assert_eq!(scan(&dynalite(), &target).len(), 2, "{}", stderr(&out));
    drop_table(&dynalite(), &target);
}

/// Two source tables whose names differ only in characters DynamoDB does not allow end up with
/// one target name: an error naming both, before any table is created or written.
#[test]
fn two_tables_on_one_automatic_name_are_an_error_naming_both() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "names collide");
    conn.query_drop("CREATE TABLE `a b` (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("CREATE TABLE `a_b` (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("INSERT INTO `a b` VALUES (1)").unwrap();
    conn.query_drop("INSERT INTO `a_b` VALUES (2)").unwrap();
    drop_table(&dynalite(), "it_names_collide_a_b");
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let out = import(run.path(), &dynalite(), &["--create-tables", "--wcu", "0"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("it_names collide.a b") && err.contains("it_names collide.a_b") && err.contains("it_names_collide_a_b"), "{err}");
    assert!(!common::ddb::table_exists(&dynalite(), "it_names_collide_a_b"), "nothing was created");
}

/// Regression: an object-mapping rule with a typo in its table name was ignored and the table
/// imported in automatic mode; it is an error naming the rule, before anything is written.
#[test]
fn an_object_rule_matching_no_table_is_an_error_naming_the_rule() {
    let (run, _) = load_purchase("typo_rule");
    let text = BLOG_DMS_RULE.replace("DB", "it_typo_rule").replace("TARGET", "it_typo_rule_out").replace("\"purchase\"", "\"purchse\"");
    let mapping = write_mapping(run.path(), &text);
    drop_table(&dynalite(), "it_typo_rule_purchase");
    let out = import(run.path(), &dynalite(), &["--mapping", mapping.to_str().unwrap(), "--create-tables"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("rule TransformTo") && err.contains("purchse") && err.contains("it_typo_rule.purchase"), "{err}");
    assert!(!common::ddb::table_exists(&dynalite(), "it_typo_rule_purchase"), "nothing imported in automatic mode");
}

/// Regression: buckets were chosen by partition key alone, so one big customer's rows all went
/// to one bucket, read whole into memory however large. Now its items spread over the buckets
/// (the items of one (customer, order) still together), and the table comes out the same.
#[test]
fn one_customer_with_most_of_the_rows_is_spread_over_the_buckets_and_grouped_whole() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "skewed");
    conn.query_drop("CREATE TABLE purchase (customerid VARCHAR(20) NOT NULL, orderid VARCHAR(20) NOT NULL, productid VARCHAR(20) NOT NULL, quantity INT NOT NULL, PRIMARY KEY (customerid, orderid, productid))").unwrap();
    // 3,000 rows in orders of three products; two orders in three are the big customer's.
    let rows: Vec<(String, String, String, i64)> = (0..3000i64).map(|i| (if (i / 3) % 3 == 2 { format!("c{}", i / 30) } else { "big".into() }, format!("o{}", i / 3), format!("p{}", i % 3), i % 7 + 1)).collect();
    let values: Vec<String> = rows.iter().map(|(c, o, p, q)| format!("('{c}','{o}','{p}',{q})")).collect();
    conn.query_drop(format!("INSERT INTO purchase VALUES {}", values.join(","))).unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "500"]));
    let rule = r#"{"rules": [
      {"rule-type": "selection", "rule-id": "1", "rule-name": "1", "object-locator": {"schema-name": "DB", "table-name": "purchase"}, "rule-action": "include"},
      {"rule-type": "object-mapping", "rule-id": "2", "rule-name": "g", "rule-action": "group-records-to-item",
       "object-locator": {"schema-name": "DB", "table-name": "purchase"}, "target-table-name": "it_skewed",
       "mapping-parameters": {"partition-key-name": "customerid", "sort-key-name": "orderid", "pivot": {"name": "${productid}", "value": "${quantity}"}}}]}"#;
    let mapping = write_mapping(run.path(), &rule.replace("DB", &db));
    drop_table(&dynalite(), "it_skewed");
    let out = import(run.path(), &dynalite(), &["--mapping", mapping.to_str().unwrap(), "--create-tables", "--bucket-rows", "300", "--wcu", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join("import/state.json")).unwrap()).unwrap();
    let counts: Vec<u64> = state["targets"][0]["buckets"].as_array().unwrap().iter().map(|b| b["items"].as_u64().unwrap()).collect();
    assert_eq!(counts.len(), 10, "3,000 rows, 300 a bucket: {counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), 1000);
    // Uniform within what hashing gives: the big customer's 667 items are not in one bucket.
    assert!(counts.iter().all(|&c| c < 200), "{counts:?}");
    let mut expected: BTreeMap<(String, String), Item> = BTreeMap::new();
    for (c, o, p, q) in &rows {
        let item = expected.entry((c.clone(), o.clone())).or_insert_with(|| Item::from([("customerid".into(), s(c)), ("orderid".into(), s(o))]));
        item.insert(p.clone(), n(*q));
    }
    let expected: Vec<Item> = expected.into_values().collect();
    assert_eq!(sorted(&scan(&dynalite(), "it_skewed")), sorted(&expected));
}
