//! `mysql2ddb import` mappings against the real servers: the AWS blog's purchase table both ways
//! (the DMS record-to-record rule and the grouping extension), a collect rule, the DMS rule on
//! Amazon's DynamoDB Local, and automatic mode on several tables incl. a 3-column primary key.
//! Expected items are computed here from the rows the test inserted, not by the importer.

mod common;

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

fn load_purchase(db_name: &str) -> (tempfile::TempDir, Vec<(String, String, String, i64)>) {
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

fn sorted(items: &[Item]) -> Vec<String> {
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

fn write_mapping(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
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
fn a_table_without_a_primary_key_says_how_to_map_it() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "nokey");
    conn.query_drop("CREATE TABLE events (at DATETIME, what TEXT)").unwrap();
    conn.query_drop("INSERT INTO events VALUES (NOW(), 'x')").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let out = import(run.path(), &dynalite(), &["--create-tables"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("it_nokey.events") && err.contains("no primary key") && err.contains("partition-key-name"), "{err}");
}
