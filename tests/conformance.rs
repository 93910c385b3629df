//! Type conformance from MySQL column to DynamoDB attribute, against the real MariaDB and
//! dynalite. A corpus of what real schemas carry (every integer width at both ends, DECIMAL(65,30),
//! FLOAT/DOUBLE extremes, every temporal type at fsp 0–6 with negative TIME, zero and invalid
//! dates, YEAR, ENUM, SET, UUID, INET4/6, BIT(1…64), JSON with duplicate keys, binary strings,
//! CHAR padding, utf8mb4/utf8mb3/latin1 text, GEOMETRY, NULL everywhere) plus one table per key
//! kind is exported, imported, then deleted, inserted again and updated after the snapshot and
//! carried over by `cdc capture` + `cdc apply`:
//! - a DELETE removes exactly its item;
//! - the item apply builds for an INSERTed row equals exactly the item the import built;
//! - an UPDATE to the values of another row gives the item importing those values gave;
//! - a row DynamoDB cannot hold is rejected on both paths;
//! - `verify --against-source` then finds 0 differences.
//!
//! Run for Parquet and CSV, binlog checksums on and off, and each `--zero-date` policy.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::RwLock;

use common::cdc::{apply_with, capture, ok, verify_against_source_with};
use common::ddb::{drop_table, dynalite, import, scan};
use common::corpus::{corpus_columns, corpus_rows, create_all, insert_all, key_tables, quoted, table_names};
use common::{connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use mysql2ddb::value::attr::{Attr, Item};

/// Checksums are a server-wide setting: a variant that turns them off runs alone.
static CHECKSUMS: RwLock<()> = RwLock::new(());

/// Every item of every target table, by table and then by the item's key attribute.
fn items(db: &str) -> BTreeMap<String, BTreeMap<String, Item>> {
    let mut out = BTreeMap::new();
    for t in table_names() {
        let key = if t == "corpus" { "id" } else { "k" };
        let by_key: BTreeMap<String, Item> = scan(&dynalite(), &format!("{db}_{t}")).into_iter().map(|i| (format!("{:?}", i[key]), i)).collect();
        out.insert(t, by_key);
    }
    out
}

/// The `id`s a rejects file (JSON lines with a `key` object) names for the corpus table.
fn rejected_ids(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["table"].as_str().is_some_and(|t| t.ends_with(".corpus")))
        .map(|r| r["key"]["id"].to_string().chars().filter(|c| c.is_ascii_digit()).collect())
        .collect()
}

fn read_dir_text(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else { return String::new() };
    entries.flatten().map(|e| if e.path().is_dir() { read_dir_text(&e.path()) } else { std::fs::read_to_string(e.path()).unwrap_or_default() }).collect()
}

fn capture_and_apply(run: &Path, args: &[&str], what: &str) {
    ok(&capture(run), &format!("capture ({what})"));
    let out = apply_with(run, &dynalite(), args);
    assert!(matches!(out.status.code(), Some(0 | 3)), "apply ({what}) failed: {}", stderr(&out));
}

struct Variant {
    name: &'static str,
    format: &'static str,
    checksums: bool,
    zero_date: &'static str,
    /// Conversion options given to import, apply and verify alike.
    convert: &'static [&'static str],
}

fn conformance(v: Variant) {
    let (_shared, _alone) = if v.checksums { (Some(CHECKSUMS.read().unwrap()), None) } else { (None, Some(CHECKSUMS.write().unwrap())) };
    let mut conn = connect();
    let _restore = (!v.checksums).then(|| {
        conn.query_drop("SET GLOBAL binlog_checksum = 'NONE'").unwrap();
        Restore
    });
    let db = fresh_db(&mut conn, &format!("conf_{}", v.name));
    create_all(&mut conn);
    insert_all(&mut conn);
    for t in table_names() {
        drop_table(&dynalite(), &format!("{db}_{t}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = export(&run, &["--databases", &db, "--format", v.format, "--zero-date", v.zero_date]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "export: {}", stderr(&out));
    let mut args = vec!["--create-tables", "--wcu", "0"];
    args.extend(v.convert);
    let out = import(&run, &dynalite(), &args);
    assert!(matches!(out.status.code(), Some(0 | 3)), "import: {}", stderr(&out));
    let imported = items(&db);
    assert_eq!(imported["corpus"].len() + rejected_ids(&read_dir_text(&run.join("import/rejects"))).len() + rejected_ids(&read_dir_text(&run.join("rejects"))).len(), 11, "every corpus row is an item or a reject");
    let rejected_by_import: BTreeSet<String> =
        rejected_ids(&read_dir_text(&run.join("import/rejects"))).union(&rejected_ids(&read_dir_text(&run.join("rejects")))).cloned().collect();
    for id in ["8", "9", "10", "11"] {
        assert!(rejected_by_import.contains(id), "{}: row {id} (outside DynamoDB's number range) is rejected by the import: {rejected_by_import:?}", v.name);
    }
    assert!(read_dir_text(&run.join("import/rejects")).contains("outside DynamoDB's number range"), "the reason is given");
    let apply_args: Vec<&str> = v.convert.to_vec();

    // A DELETE removes exactly its item: half the rows first, then the rest.
    conn.query_drop(format!("USE {}", quoted(&db))).unwrap();
    conn.query_drop("DELETE FROM corpus WHERE id % 2 = 1").unwrap();
    for (name, _, _) in key_tables() {
        conn.query_drop(format!("DELETE FROM k_{name} WHERE v % 2 = 1")).unwrap();
    }
    capture_and_apply(&run, &apply_args, "deletes");
    let after = items(&db);
    for (t, by_key) in &imported {
        let expected: BTreeMap<String, Item> =
            by_key.iter().filter(|(_, i)| if t == "corpus" { n(&i["id"]) % 2 == 0 } else { n(&i["v"]) % 2 == 0 }).map(|(k, i)| (k.clone(), i.clone())).collect();
        assert_eq!(after[t], expected, "{}: after deleting the odd rows of {t}", v.name);
    }
    conn.query_drop("DELETE FROM corpus").unwrap();
    for (name, _, _) in key_tables() {
        conn.query_drop(format!("DELETE FROM k_{name}")).unwrap();
    }
    capture_and_apply(&run, &apply_args, "deletes");
    assert!(items(&db).values().all(|t| t.is_empty()), "{}: every item deleted", v.name);

    // The same rows INSERTed after the snapshot: exactly the items the import built.
    let before_inserts = std::fs::read_to_string(run.join("cdc/rejects.jsonl")).unwrap_or_default().len();
    insert_all(&mut conn);
    capture_and_apply(&run, &apply_args, "inserts");
    let applied = items(&db);
    for (t, by_key) in &imported {
        for (k, item) in by_key {
            assert_eq!(applied[t].get(k), Some(item), "{}: table {t}, key {k}: cdc apply's item differs from the import's", v.name);
        }
        assert_eq!(applied[t].len(), by_key.len(), "{}: table {t}: {:?} vs {:?}", v.name, applied[t].keys().collect::<Vec<_>>(), by_key.keys().collect::<Vec<_>>());
    }
    let cdc_rejects = std::fs::read_to_string(run.join("cdc/rejects.jsonl")).unwrap_or_default();
    assert_eq!(rejected_ids(&cdc_rejects[before_inserts..]), rejected_by_import, "{}: cdc apply rejects the rows the export and import rejected", v.name);

    // An UPDATE to the values of another row gives the item importing those values gave.
    let rows = corpus_rows();
    let columns = corpus_columns();
    for (i, (id, _)) in rows.iter().enumerate() {
        let (next_id, next) = &rows[(i + 1) % rows.len()];
        let set: Vec<String> = columns.iter().map(|(c, _)| format!("{} = {}", quoted(c), next.get(c).map(String::as_str).unwrap_or("NULL"))).collect();
        conn.query_drop(format!("UPDATE corpus SET {} WHERE id = {id}", set.join(", "))).unwrap_or_else(|e| panic!("update {id} to {next_id}: {e}"));
    }
    capture_and_apply(&run, &apply_args, "updates");
    let updated = items(&db);
    let by_id: BTreeMap<u32, &Item> = imported["corpus"].values().map(|i| (n(&i["id"]) as u32, i)).collect();
    for (i, (id, _)) in rows.iter().enumerate() {
        let next_id = rows[(i + 1) % rows.len()].0;
        let expected = by_id.get(&next_id).map(|item| {
            let mut item = (*item).clone();
            item.insert("id".into(), Attr::N(id.to_string()));
            item
        });
        let got = updated["corpus"].values().find(|item| n(&item["id"]) as u32 == *id);
        assert_eq!(got, expected.as_ref(), "{}: row {id} updated to the values of row {next_id}", v.name);
    }

    let lines = common::cdc::assert_staged_lines_as_serde_writes_them(&run, v.name);
    assert!(lines > 30, "{}: {lines} staged lines checked", v.name);

    let out = verify_against_source_with(&run, &dynalite(), v.convert);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("\n0 differences"), "{}: verify --against-source after apply: {text}{}", v.name, stderr(&out));
    // Rows the mapping rejects are not in DynamoDB: verify says so and exits 3, never a silent 0.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("verify-report.json")).unwrap()).unwrap();
    let rejected = report["rejected_rows"].as_u64().unwrap() + report["rejected_changes"].as_u64().unwrap();
    let want = if rejected > 0 { 3 } else { 0 };
    assert_eq!(out.status.code(), Some(want), "{}: {text}", v.name);
    assert_eq!(rejected > 0, text.contains("not in DynamoDB although in the source"), "{}: {text}", v.name);
    if !v.checksums {
        let checksum: Option<String> = conn.query_first("SELECT @@GLOBAL.binlog_checksum").unwrap();
        assert_eq!(checksum.as_deref(), Some("NONE"), "the changes were written without checksums");
    }
}

/// A number attribute as an integer.
fn n(a: &Attr) -> i64 {
    match a {
        Attr::N(s) => s.parse().unwrap(),
        other => panic!("not a number: {other:?}"),
    }
}

struct Restore;
impl Drop for Restore {
    fn drop(&mut self) {
        let _ = connect().query_drop("SET GLOBAL binlog_checksum = 'CRC32'");
    }
}

#[test]
fn parquet_with_checksums_and_zero_dates_as_null() {
    conformance(Variant { name: "pq_crc_null", format: "parquet", checksums: true, zero_date: "null", convert: &[] });
}

#[test]
fn parquet_without_checksums_and_zero_dates_as_strings() {
    conformance(Variant { name: "pq_none_string", format: "parquet", checksums: false, zero_date: "string", convert: &[] });
}

#[test]
fn csv_without_checksums_and_zero_dates_rejected() {
    conformance(Variant { name: "csv_none_reject", format: "csv", checksums: false, zero_date: "reject", convert: &[] });
}

#[test]
fn csv_with_checksums_zero_dates_as_strings_and_epoch_temporals() {
    conformance(Variant { name: "csv_crc_string_epoch", format: "csv", checksums: true, zero_date: "string", convert: &["--temporal", "epoch", "--nulls", "null"] });
}
