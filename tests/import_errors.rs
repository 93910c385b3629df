//! Import failures that must be loud: two rows mapping to one DynamoDB key (reported with
//! examples before anything is written, or resolved by --on-duplicate last-wins), an item over
//! DynamoDB's 400 KB limit (rejected with its size), and an existing table with another key.

use crate::common;

use common::ddb::{drop_table, dynalite, import, scan, table_exists};
use common::{assert_ok, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use mysql2ddb::value::attr::Attr;
use serde_json::Value;

fn mapping(dir: &std::path::Path, db: &str, target: &str, params: &str, action: &str) -> String {
    let text = format!(
        r#"{{"rules": [
          {{"rule-type": "selection", "rule-id": "1", "rule-name": "1",
           "object-locator": {{"schema-name": "{db}", "table-name": "%"}}, "rule-action": "include"}},
          {{"rule-type": "object-mapping", "rule-id": "2", "rule-name": "ByCustomer", "rule-action": "{action}",
           "object-locator": {{"schema-name": "{db}", "table-name": "%"}}, "target-table-name": "{target}",
           "mapping-parameters": {params}}}]}}"#
    );
    let p = dir.join("mapping.json");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn duplicate_target_keys_stop_the_import_with_examples_or_last_wins() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "dupes");
    conn.query_drop("CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(10) NOT NULL, total INT NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO orders SELECT seq, CONCAT('c', seq % 10), seq FROM seq_1_to_100").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "30"]));
    let m = mapping(run.path(), &db, "it_dupes", r#"{"partition-key-name": "customer"}"#, "map-record-to-record");
    drop_table(&dynalite(), "it_dupes");
    let out = import(run.path(), &dynalite(), &["--mapping", &m, "--create-tables"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("90 rows map to a DynamoDB key") && err.contains("last-wins"), "{err}");
    // Each example names two source rows by their primary key, read back from the chunks: rows
    // of the same customer (id % 10), and each example a different customer.
    let mut customers = std::collections::HashSet::new();
    for line in err.lines().filter(|l| l.contains("source rows")) {
        let ids: Vec<u32> = line.split("id=").skip(1).map(|p| p.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()).collect();
        assert_eq!(ids.len(), 2, "{line}");
        assert_eq!(ids[0] % 10, ids[1] % 10, "{line}");
        assert!(line.contains(&format!("customer=c{}:", ids[0] % 10)), "{line}");
        assert!(customers.insert(ids[0] % 10), "one example per key: {err}");
    }
    assert!(customers.len() >= 5, "{err}");
    assert!(!table_exists(&dynalite(), "it_dupes"), "nothing was written, not even the table");

    let out = import(run.path(), &dynalite(), &["--mapping", &m, "--create-tables", "--on-duplicate", "last-wins"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let items = scan(&dynalite(), "it_dupes");
    assert_eq!(items.len(), 10);
    let c3 = items.iter().find(|i| i["customer"] == Attr::S("c3".into())).unwrap();
    assert_eq!(c3["id"], Attr::N("93".into()), "the last row in source key order wins");
}

#[test]
fn an_item_over_400_kb_is_rejected_with_its_size() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "big");
    conn.query_drop("CREATE TABLE parts (doc INT, part INT, body LONGBLOB, PRIMARY KEY (doc, part))").unwrap();
    // doc 1: two 250 KB parts fold into one 500 KB item; doc 2: two small parts.
    conn.query_drop("INSERT INTO parts VALUES (1, 1, REPEAT('a', 256000)), (1, 2, REPEAT('b', 256000)), (2, 1, 'x'), (2, 2, 'y')").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let m = mapping(
        run.path(),
        &db,
        "it_big",
        r#"{"partition-key-name": "doc", "pivot": {"name": "part${part}", "value": "${body}"}}"#,
        "group-records-to-item",
    );
    drop_table(&dynalite(), "it_big");
    let out = import(run.path(), &dynalite(), &["--mapping", &m, "--create-tables"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let items = scan(&dynalite(), "it_big");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["part2"], Attr::B(b"y".to_vec()));
    let text = std::fs::read_to_string(run.path().join("import/rejects/it_big.jsonl")).unwrap();
    let rejects: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["key"], "doc=1");
    assert_eq!(rejects[0]["rows"], 2, "the item folded two source rows");
    assert_eq!(rejects[0]["source_rows"], serde_json::json!(["doc=1, part=1", "doc=1, part=2"]), "the rows, read back from the chunks");
    assert!(stderr(&out).contains("2 source rows were rejected"), "both rows are counted, not the one item: {}", stderr(&out));
    let reason = rejects[0]["reason"].as_str().unwrap();
    // "doc" + N(1) = 3 + 2 bytes, then "part1"/"part2" + 256,000 bytes each.
    let size = 3 + 2 + 2 * (5 + 256_000);
    assert!(reason.contains(&format!("{size} bytes")) && reason.contains("400 KB"), "{reason}");
}

#[test]
fn an_existing_table_with_another_key_is_a_clear_error() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "keyclash");
    conn.query_drop("CREATE TABLE a (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("INSERT INTO a VALUES (1)").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    drop_table(&dynalite(), "it_keyclash_a");
    let m = mapping(run.path(), &db, "it_keyclash_a", r#"{"partition-key-name": "other", "attribute-mappings": [{"target-attribute-name": "other", "attribute-type": "scalar", "attribute-sub-type": "string", "value": "k${id}"}]}"#, "map-record-to-record");
    assert!(import(run.path(), &dynalite(), &["--mapping", &m, "--create-tables"]).status.success());
    let out = import(run.path(), &dynalite(), &["--create-tables"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("it_keyclash_a exists with partition key other (S)") && err.contains("partition key id (N)"), "{err}");
    // Regression: the key check ran before the drop, so the flag its message recommends could
    // not fix it. Now the table is dropped and created with the mapping's key.
    let out = import(run.path(), &dynalite(), &["--create-tables", "--table-prep", "drop-and-create"]);
    assert!(out.status.success(), "drop-and-create replaces a table of another key: {}", stderr(&out));
    let items = common::ddb::scan(&dynalite(), "it_keyclash_a");
    assert_eq!(items.len(), 1);
    assert!(items[0].contains_key("id") && !items[0].contains_key("other"), "{:?}", items[0]);
}

/// Regression: seven bytes overwritten at offset 100 of a Parquet chunk decoded into wrong rows
/// (a duplicate key here; in other data silently wrong values). The chunk is checked against the
/// manifest's SHA-256 before it is read, and the failure names the file.
#[test]
fn a_damaged_local_chunk_is_refused_naming_the_file() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "damaged_chunk");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('value ', seq) FROM seq_1_to_500").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let m = common::manifest(run.path());
    let chunk = &m.tables[0].chunks[0].file;
    let path = run.path().join(chunk);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100..107].copy_from_slice(b"damaged");
    std::fs::write(&path, bytes).unwrap();
    drop_table(&dynalite(), "it_damaged_chunk_t");
    for args in [vec!["--create-tables", "--wcu", "0"], vec!["--dry-run"]] {
        let out = import(run.path(), &dynalite(), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(chunk.as_str()) && err.contains("SHA-256"), "{err}");
    }
    assert!(!table_exists(&dynalite(), "it_damaged_chunk_t") || scan(&dynalite(), "it_damaged_chunk_t").is_empty(), "nothing written");
}

/// Regression: the grouped item files were written once and read back for writing unchecked. An
/// item file damaged between grouping (here `import --dry-run`) and writing is now refused,
/// naming the file, before anything is written.
#[test]
fn a_damaged_item_file_is_refused_naming_the_file() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "damaged_items");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('value ', seq) FROM seq_1_to_300").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    drop_table(&dynalite(), "it_damaged_items_t");
    assert_ok(&import(run.path(), &dynalite(), &["--dry-run"]));
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                files(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut all = Vec::new();
    files(run.path(), &mut all);
    let items: Vec<std::path::PathBuf> = all.into_iter().filter(|p| p.extension().is_some_and(|e| e == "items")).collect();
    assert!(!items.is_empty(), "the dry run grouped into item files");
    let mut bytes = std::fs::read(&items[0]).unwrap();
    bytes[40] ^= 0x20;
    std::fs::write(&items[0], bytes).unwrap();
    let out = import(run.path(), &dynalite(), &["--create-tables", "--wcu", "0"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let name = items[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&name) && err.contains("SHA-256"), "{err}");
    assert!(!table_exists(&dynalite(), "it_damaged_items_t") || scan(&dynalite(), "it_damaged_items_t").len() < 300, "not all written");
}

/// Regression: a JSON value DynamoDB cannot store (an empty object key — refused by DynamoDB
/// Local — or a number of more than 38 digits) aborted the import part-way through writing,
/// blaming the first item of the batch. Each is now a rejected row with its reason, found before
/// anything is written, and the other rows land. (Nesting deeper than 32 levels is refused the
/// same way; MariaDB's own JSON check stops at 32 levels, so its test is a unit test.)
#[test]
fn json_values_dynamodb_cannot_store_are_rejected_per_row_on_dynamodb_local() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "bad_json");
    conn.query_drop("CREATE TABLE docs (id INT PRIMARY KEY, doc JSON)").unwrap();
    conn.query_drop("INSERT INTO docs VALUES (2, '{\"\": 1}'), (3, '[123456789012345678901234567890123456789]'), (4, '{\"ok\": [1, 2]}')").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let local = common::ddb::ddblocal();
    drop_table(&local, "it_bad_json_docs");
    let out = import(run.path(), &local, &["--create-tables", "--json", "native"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let items = scan(&local, "it_bad_json_docs");
    assert_eq!(items.len(), 1, "only the storable row is written");
    let text = std::fs::read_to_string(run.path().join("import/rejects/it_bad_json_docs.jsonl")).unwrap();
    let reasons: Vec<String> = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["reason"].as_str().unwrap().to_string()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("empty key")) && reasons.iter().any(|r| r.contains("38 significant digits")), "{reasons:?}");
}
