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
//! Run for Parquet and CSV, binlog checksums on and off, and each `--zero-date` policy.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::RwLock;

use common::cdc::{apply_with, capture, ok, verify_against_source_with};
use common::ddb::{drop_table, dynalite, import, scan};
use common::{connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use mysql2ddb::value::attr::{Attr, Item};

const FSPS: [usize; 7] = [0, 1, 2, 3, 4, 5, 6];

/// Checksums are a server-wide setting: a variant that turns them off runs alone.
static CHECKSUMS: RwLock<()> = RwLock::new(());

/// The corpus table's columns (after `id`), all nullable.
fn corpus_columns() -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> = [
        ("i8", "TINYINT"),
        ("u8", "TINYINT UNSIGNED"),
        ("i16", "SMALLINT"),
        ("u16", "SMALLINT UNSIGNED"),
        ("i24", "MEDIUMINT"),
        ("u24", "MEDIUMINT UNSIGNED"),
        ("i32", "INT"),
        ("u32", "INT UNSIGNED"),
        ("i64", "BIGINT"),
        ("u64", "BIGINT UNSIGNED"),
        ("dec65", "DECIMAL(65,30)"),
        ("dec10", "DECIMAL(10,2)"),
        ("f32", "FLOAT"),
        ("f64", "DOUBLE"),
        ("d", "DATE"),
        ("y", "YEAR"),
        ("e", "ENUM('','a','b c','it''s','é')"),
        ("st", "SET('a','b','c','d','e','f','g','h','i','j')"),
        ("uu", "UUID"),
        ("ip6", "INET6"),
        ("ip4", "INET4"),
        ("bit1", "BIT(1)"),
        ("bit7", "BIT(7)"),
        ("bit8", "BIT(8)"),
        ("bit64", "BIT(64)"),
        ("j", "JSON"),
        ("bin16", "BINARY(16)"),
        ("vbin", "VARBINARY(32)"),
        ("blb", "BLOB"),
        ("ch", "CHAR(10)"),
        ("v4", "VARCHAR(64) CHARACTER SET utf8mb4"),
        ("v3", "VARCHAR(64) CHARACTER SET utf8mb3"),
        ("l1", "VARCHAR(64) CHARACTER SET latin1"),
        ("tx", "TEXT"),
        ("g", "GEOMETRY"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), t.to_string()))
    .collect();
    for n in FSPS {
        cols.push((format!("dt{n}"), format!("DATETIME({n})")));
        cols.push((format!("ts{n}"), format!("TIMESTAMP({n}) NULL DEFAULT NULL")));
        cols.push((format!("tm{n}"), format!("TIME({n})")));
    }
    cols
}

/// `.ddd` with `fsp` of `digits`, or nothing at fsp 0.
fn frac(fsp: usize, digits: &str) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", &digits[..fsp])
    }
}

type Row = (u32, BTreeMap<String, String>);

fn row(id: u32, pairs: &[(&str, &str)], temporal: impl Fn(usize) -> Vec<(String, String)>) -> Row {
    let mut m: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for n in FSPS {
        m.extend(temporal(n));
    }
    (id, m)
}

fn no_temporal(_: usize) -> Vec<(String, String)> {
    Vec::new()
}

/// Rows as SQL literals by column; columns left out are NULL.
fn corpus_rows() -> Vec<Row> {
    vec![
        row(
            1,
            &[
                ("i8", "-128"), ("u8", "0"), ("i16", "-32768"), ("u16", "0"), ("i24", "-8388608"), ("u24", "0"),
                ("i32", "-2147483648"), ("u32", "0"), ("i64", "-9223372036854775808"), ("u64", "0"),
                ("dec65", "'-99999999999999999999999999999999999.999999999999999999999999999999'"), ("dec10", "-99999999.99"),
                ("f32", "-3.40282e38"), ("f64", "-9.99e125"), ("d", "'1000-01-01'"), ("y", "1901"), ("e", "''"), ("st", "''"),
                ("uu", "'00000000-0000-0000-0000-000000000000'"), ("ip6", "'::'"), ("ip4", "'0.0.0.0'"),
                ("bit1", "b'0'"), ("bit7", "b'0'"), ("bit8", "0"), ("bit64", "0"), ("j", "'{}'"),
                ("bin16", "X'00000000000000000000000000000000'"), ("vbin", "X''"), ("blb", "X''"),
                ("ch", "''"), ("v4", "''"), ("v3", "''"), ("l1", "''"), ("tx", "''"), ("g", "ST_GeomFromText('POINT(0 0)')"),
            ],
            |n| {
                vec![
                    (format!("dt{n}"), format!("'1000-01-01 00:00:00{}'", frac(n, "000000"))),
                    (format!("ts{n}"), format!("'1970-01-01 00:00:01{}'", frac(n, "000000"))),
                    (format!("tm{n}"), format!("'-838:59:59{}'", frac(n, "000000"))),
                ]
            },
        ),
        row(
            2,
            &[
                ("i8", "127"), ("u8", "255"), ("i16", "32767"), ("u16", "65535"), ("i24", "8388607"), ("u24", "16777215"),
                ("i32", "2147483647"), ("u32", "4294967295"), ("i64", "9223372036854775807"), ("u64", "18446744073709551615"),
                ("dec65", "'99999999999999999999999999999999999.999999999999999999999999999999'"), ("dec10", "99999999.99"),
                ("f32", "3.40282e38"), ("f64", "9.99e125"), ("d", "'9999-12-31'"), ("y", "2155"), ("e", "'it''s'"),
                ("st", "'a,b,c,d,e,f,g,h,i,j'"), ("uu", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"),
                ("ip6", "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'"), ("ip4", "'255.255.255.255'"),
                ("bit1", "b'1'"), ("bit7", "b'1111111'"), ("bit8", "255"), ("bit64", "0xFFFFFFFFFFFFFFFF"),
                ("j", r#"'{"a": [1, 2.50, true, null, "x\u00e9"], "b": {"c": 12345678901234567890123, "e": 1.5e3}}'"#),
                ("bin16", "X'ffffffffffffffffffffffffffffffff'"), ("vbin", "X'ff00'"), ("blb", "X'00ff7f80c3a90a0d22'"),
                ("ch", "'abc   '"), ("v4", "'😀 𝄞 emoji, 4-byte'"), ("v3", "'ünïcödé ñ'"), ("l1", "'café ÿ €'"),
                ("tx", "REPEAT('ü', 3000)"), ("g", "ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))', 4326)"),
            ],
            |n| {
                vec![
                    (format!("dt{n}"), format!("'9999-12-31 23:59:59{}'", frac(n, "999999"))),
                    (format!("ts{n}"), format!("'2038-01-19 03:14:07{}'", frac(n, "999999"))),
                    (format!("tm{n}"), "'838:59:59'".to_string()),
                ]
            },
        ),
        // NULL in every nullable column.
        row(3, &[], no_temporal),
        row(
            4,
            &[
                ("i8", "-1"), ("u8", "1"), ("i16", "-1"), ("u16", "1"), ("i24", "-1"), ("u24", "1"), ("i32", "-1"), ("u32", "1"),
                ("i64", "-1"), ("u64", "9223372036854775808"), ("dec65", "'0.000000000000000000000000000001'"), ("dec10", "-0.50"),
                ("f32", "1.5"), ("f64", "0.1"), ("d", "'2024-02-29'"), ("y", "2000"), ("e", "'é'"), ("st", "'j,a'"),
                ("uu", "'6ccd780c-baba-1026-9564-5b8c656024db'"), ("ip6", "'::ffff:192.0.2.1'"), ("ip4", "'192.0.2.1'"),
                ("bit1", "b'1'"), ("bit7", "b'1000000'"), ("bit8", "b'10000000'"), ("bit64", "0x8000000000000001"),
                // MariaDB resolves a duplicate key to its first value.
                ("j", r#"'{"a": 1, "a": 2, "d": {"k": "first", "k": "second"}, "l": []}'"#),
                ("bin16", "X'0102030405060708090a0b0c0d0e0f00'"), ("vbin", "X'000100'"), ("blb", "X'00'"),
                ("ch", "'a b  '"), ("v4", r#"'tab	here, newline
 and "quotes", comma'"#), ("v3", r"'\\N'"), ("l1", "'é'"), ("tx", "'N'"),
                ("g", "ST_GeomFromText('LINESTRING(0 0,1 1,2 1)')"),
            ],
            |n| {
                let neg = if n == 0 { "'-00:00:01'".to_string() } else { format!("'-00:00:00.{}1'", "0".repeat(n - 1)) };
                vec![
                    (format!("dt{n}"), format!("'2024-02-29 12:34:56{}'", frac(n, "123456"))),
                    (format!("ts{n}"), format!("'2024-02-29 12:34:56{}'", frac(n, "123456"))),
                    (format!("tm{n}"), neg),
                ]
            },
        ),
        // Zero dates (the default sql_mode allows them), and YEAR 0000.
        row(5, &[("d", "'0000-00-00'"), ("y", "0"), ("i32", "5"), ("v4", "'zero dates'")], |n| {
            vec![(format!("dt{n}"), "'0000-00-00 00:00:00'".into()), (format!("ts{n}"), "'0000-00-00 00:00:00'".into())]
        }),
        // Invalid dates kept by ALLOW_INVALID_DATES.
        row(6, &[("d", "'2023-02-31'"), ("i32", "6")], |n| vec![(format!("dt{n}"), format!("'2023-02-30 10:00:00{}'", frac(n, "250000")))]),
        // A zero month or day.
        row(7, &[("d", "'2023-00-15'"), ("dt0", "'2023-05-00 00:00:00'"), ("i32", "7")], no_temporal),
        // Outside DynamoDB's number range (1E-130 … 9.99E+125): rejected on both paths.
        row(8, &[("f64", "1.7976931348623157e308"), ("i32", "8")], no_temporal),
        row(9, &[("f64", "-2.2250738585072014e-308"), ("i32", "9")], no_temporal),
        row(10, &[("f32", "1e-45"), ("f64", "4.9406564584124654e-324"), ("i32", "10")], no_temporal),
        // A JSON number of 40 significant digits has no DynamoDB form either.
        row(11, &[("j", r#"'{"big": 1234567890123456789012345678901234567890}'"#), ("i32", "11")], no_temporal),
    ]
}

/// Key tables: `k_<name>` (k <type> PRIMARY KEY, v INT) with these keys.
fn key_tables() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        ("int", "INT", vec!["-2147483648", "0", "2147483647"]),
        ("u64", "BIGINT UNSIGNED", vec!["0", "9223372036854775808", "18446744073709551615"]),
        ("dec", "DECIMAL(38,10)", vec!["'-9999999999999999999999999999.9999999999'", "'0.0000000001'", "'1.5'"]),
        ("dbl", "DOUBLE", vec!["-1.5", "0", "1e100"]),
        ("flt", "FLOAT", vec!["-1.5", "0.1", "3.4e38"]),
        ("date", "DATE", vec!["'1000-01-01'", "'2024-02-29'", "'9999-12-31'", "'0000-00-00'", "'2023-02-31'"]),
        ("dt", "DATETIME(6)", vec!["'1000-01-01 00:00:00'", "'2024-02-29 12:34:56.123456'", "'0000-00-00 00:00:00'"]),
        ("ts", "TIMESTAMP(3)", vec!["'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999'"]),
        ("time", "TIME(6)", vec!["'-838:59:59'", "'00:00:00'", "'-00:00:00.000001'", "'838:59:59'"]),
        ("year", "YEAR", vec!["0", "1901", "2155"]),
        ("enum", "ENUM('','a','é')", vec!["''", "'a'", "'é'"]),
        ("uuid", "UUID", vec!["'00000000-0000-0000-0000-000000000000'", "'6ccd780c-baba-1026-9564-5b8c656024db'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"]),
        ("inet6", "INET6", vec!["'::'", "'::1'", "'ffff::'", "'::ffff:10.0.0.1'"]),
        ("inet4", "INET4", vec!["'0.0.0.0'", "'10.0.0.1'"]),
        ("bit", "BIT(64)", vec!["0", "1", "0xFFFFFFFFFFFFFFFF"]),
        ("bin", "BINARY(16)", vec!["X'0102030405060708090a0b0c0d0e0f00'", "X'00000000000000000000000000000000'", "X'ff'"]),
        ("vbin", "VARBINARY(16)", vec!["X'00'", "X'0000'", "X'01'"]),
        ("char", "CHAR(10)", vec!["'a'", "'b c  '"]),
        ("latin1", "VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_bin", vec!["'é'", "'e'", "'€'"]),
        ("utf8mb3", "VARCHAR(10) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin", vec!["'ü'", "'u'"]),
        ("utf8mb4", "VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", vec!["'😀'", "'𝄞'", "'x'"]),
    ]
}

/// The corpus table and every key table.
fn table_names() -> Vec<String> {
    std::iter::once("corpus".to_string()).chain(key_tables().into_iter().map(|(n, _, _)| format!("k_{n}"))).collect()
}

fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn insert_sql(table: &str, row: &Row) -> String {
    let (id, vals) = row;
    let names: Vec<String> = std::iter::once("`id`".to_string()).chain(vals.keys().map(|k| quoted(k))).collect();
    let values: Vec<String> = std::iter::once(id.to_string()).chain(vals.values().cloned()).collect();
    format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), values.join(", "))
}

/// Rows inserted into every table, in the order given.
fn insert_all(conn: &mut mysql::Conn) {
    for r in corpus_rows() {
        conn.query_drop(insert_sql("corpus", &r)).unwrap_or_else(|e| panic!("{}: {e}", insert_sql("corpus", &r)));
    }
    for (name, _, keys) in key_tables() {
        for (v, k) in keys.iter().enumerate() {
            conn.query_drop(format!("INSERT INTO k_{name} VALUES ({k}, {v})")).unwrap_or_else(|e| panic!("k_{name} {k}: {e}"));
        }
    }
}

fn create_all(conn: &mut mysql::Conn) {
    let cols: Vec<String> = corpus_columns().iter().map(|(n, t)| format!("{} {t}", quoted(n))).collect();
    conn.query_drop(format!("CREATE TABLE corpus (id INT PRIMARY KEY, {})", cols.join(", "))).unwrap();
    for (name, ty, _) in key_tables() {
        conn.query_drop(format!("CREATE TABLE k_{name} (k {ty} NOT NULL PRIMARY KEY, v INT NOT NULL)")).unwrap();
    }
}

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
    conn.query_drop("SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ALLOW_INVALID_DATES'").unwrap();
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
    conn.query_drop("SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ALLOW_INVALID_DATES'").unwrap();
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

    let out = verify_against_source_with(&run, &dynalite(), v.convert);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.contains("\n0 differences"), "{}: verify --against-source after apply: {text}{}", v.name, stderr(&out));
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
