//! Conversion of every column type to DynamoDB attribute values, checked against hand-written
//! expectations after a real import into dynalite (from Parquet and from CSV chunks, which must
//! agree), the conversion options, and rows rejected with their reason.

use crate::common;

use common::ddb::{drop_table, dynalite, import, scan};
use common::{assert_ok, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use mysql2ddb::value::attr::{item_to_json, Attr, Item};
use serde_json::{json, Value};

const CREATE: &str = "CREATE TABLE t (
  id INT PRIMARY KEY, ti1 TINYINT(1), biu BIGINT UNSIGNED, bi BIGINT, dec_small DECIMAL(10,2),
  dec_wide DECIMAL(65,30), f FLOAT, d DOUBLE, dt DATE, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(6),
  yr YEAR, vc VARCHAR(100), en ENUM('small','large'), st SET('red','green','blue'), js JSON,
  vb VARBINARY(10), b64 BIT(64), pt POINT, emp VARCHAR(5))";

const ROWS: &str = "(1, 1, 18446744073709551615, -9223372036854775808, -12.50,
   12345678901234567890123456789012345.123456789012345678901234567891, 1.5, 0.1,
   '2024-02-29', '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.500', '-838:59:59.000000', 2024,
   'caf\u{e9} \u{1F600}', 'large', 'red,blue', '{\"a\": [1, 2.5, true, null], \"n\": 12345678901234567890123}',
   x'00ff', b'1111111111111111111111111111111111111111111111111111111111111111', POINT(1, 2), ''),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, 0, 0, 0, 0, 0, 0, 0, '1970-01-01', '1970-01-01 00:00:00', NULL, '00:00:00', 1901, 'x', 'small', '', '[]',
   x'', b'0', NULL, NULL)";

fn point_wkb(x: f64, y: f64) -> Vec<u8> {
    let mut v = vec![1, 1, 0, 0, 0];
    v.extend_from_slice(&x.to_le_bytes());
    v.extend_from_slice(&y.to_le_bytes());
    v
}

/// The item of row 1 with default options, written by hand from DynamoDB's type rules.
fn row1_expected() -> Value {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    json!({
        "id": {"N": "1"}, "ti1": {"N": "1"}, "biu": {"N": "18446744073709551615"}, "bi": {"N": "-9223372036854775808"},
        "dec_small": {"N": "-12.5"},
        // 65 significant digits: more than DynamoDB's 38, kept exact as text (--wide-decimal string).
        "dec_wide": {"S": "12345678901234567890123456789012345.123456789012345678901234567891"},
        "f": {"N": "1.5"}, "d": {"N": "0.1"},
        "dt": {"S": "2024-02-29"}, "dtm6": {"S": "2024-02-29T12:34:56.000001"}, "ts": {"S": "2024-02-29T12:34:56.500Z"},
        "tm": {"S": "-838:59:59.000000"}, "yr": {"N": "2024"}, "vc": {"S": "caf\u{e9} \u{1F600}"}, "en": {"S": "large"},
        "st": {"SS": ["blue", "red"]},
        "js": {"M": {"a": {"L": [{"N": "1"}, {"N": "2.5"}, {"BOOL": true}, {"NULL": true}]}, "n": {"N": "12345678901234567890123"}}},
        "vb": {"B": b64(&[0, 255])}, "b64": {"N": "18446744073709551615"}, "pt": {"B": b64(&point_wkb(1.0, 2.0))},
        "emp": {"S": ""},
    })
}

/// Items as JSON with string sets sorted (DynamoDB does not keep their order).
fn normalized(items: &[Item]) -> Vec<Value> {
    fn norm(a: &Attr) -> Attr {
        match a {
            Attr::SS(v) => {
                let mut v = v.clone();
                v.sort();
                Attr::SS(v)
            }
            Attr::M(m) => Attr::M(m.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
            Attr::L(l) => Attr::L(l.iter().map(norm).collect()),
            other => other.clone(),
        }
    }
    let mut v: Vec<Value> = items.iter().map(|i| item_to_json(&i.iter().map(|(k, v)| (k.clone(), norm(v))).collect())).collect();
    v.sort_by_key(|i| i["id"]["N"].as_str().unwrap().parse::<i64>().unwrap());
    v
}

fn setup(name: &str, format: &str) -> (tempfile::TempDir, String) {
    let mut conn = connect();
    let db = fresh_db(&mut conn, name);
    conn.query_drop(CREATE).unwrap();
    conn.query_drop(format!("INSERT INTO t VALUES {ROWS}")).unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--format", format]));
    (run, format!("{db}_t"))
}

#[test]
fn every_type_converts_the_same_from_parquet_and_csv() {
    for format in ["parquet", "csv"] {
        let (run, table) = setup(&format!("conv_{format}"), format);
        drop_table(&dynalite(), &table);
        let out = import(run.path(), &dynalite(), &["--create-tables"]);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        let items = normalized(&scan(&dynalite(), &table));
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], row1_expected(), "{format}: row 1");
        assert_eq!(items[1], json!({"id": {"N": "2"}}), "{format}: NULLs are absent attributes");
        assert_eq!(items[2]["st"], Value::Null, "{format}: the empty SET is absent");
        assert_eq!(items[2]["js"], json!({"L": []}));
        assert_eq!(items[2]["vb"], json!({"B": ""}), "empty binary outside keys");
        assert_eq!(items[2]["dtm6"], json!({"S": "1970-01-01T00:00:00.000000"}));
    }
}

#[test]
fn conversion_options_change_the_types() {
    let (run, table) = setup("conv_opts", "parquet");
    drop_table(&dynalite(), &table);
    let out = import(
        run.path(),
        &dynalite(),
        &["--create-tables", "--temporal", "epoch", "--json", "string", "--nulls", "null", "--tinyint1-as-bool"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let items = normalized(&scan(&dynalite(), &table));
    assert_eq!(items[0]["ti1"], json!({"BOOL": true}));
    assert_eq!(items[2]["ti1"], json!({"BOOL": false}));
    assert_eq!(items[0]["dt"], json!({"N": "1709164800"}));
    assert_eq!(items[0]["dtm6"], json!({"N": "1709210096.000001"}));
    assert_eq!(items[0]["ts"], json!({"N": "1709210096.5"}));
    assert_eq!(items[0]["js"]["S"].as_str().map(|s| s.contains("\"n\": 12345678901234567890123")), Some(true));
    assert_eq!(items[1]["vc"], json!({"NULL": true}));
    assert_eq!(items[1].as_object().unwrap().len(), 21, "every column present, as NULL");
}

#[test]
fn rejected_rows_go_to_the_rejects_file_with_their_reason() {
    let (run, table) = setup("conv_reject", "parquet");
    let mut conn = connect();
    conn.query_drop("CREATE TABLE it_conv_reject.keys_t (k VARCHAR(10) PRIMARY KEY, v INT)").unwrap();
    conn.query_drop("INSERT INTO it_conv_reject.keys_t VALUES ('', 1), ('a', 2)").unwrap();
    let run2 = tempfile::tempdir().unwrap();
    assert_ok(&export(run2.path(), &["--databases", "it_conv_reject"]));
    drop(run);
    for t in [&table, "it_conv_reject_keys_t"] {
        drop_table(&dynalite(), t);
    }
    let out = import(run2.path(), &dynalite(), &["--create-tables", "--wide-decimal", "reject"]);
    assert_eq!(out.status.code(), Some(3), "rows rejected: {}", stderr(&out));
    assert_eq!(scan(&dynalite(), &table).len(), 2, "row 1 (65-digit decimal) rejected, the others written");
    assert_eq!(scan(&dynalite(), "it_conv_reject_keys_t").len(), 1);
    let read = |name: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(run2.path().join("import/rejects").join(name)).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let wide = read(&format!("{table}.jsonl"));
    assert_eq!(wide.len(), 1);
    assert_eq!(wide[0]["table"], "it_conv_reject.t");
    assert_eq!(wide[0]["key"], json!({"id": "1"}));
    assert!(wide[0]["reason"].as_str().unwrap().contains("dec_wide") && wide[0]["reason"].as_str().unwrap().contains("38"), "{}", wide[0]);
    let keys = read("it_conv_reject_keys_t.jsonl");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["key"], json!({"k": ""}));
    assert!(keys[0]["reason"].as_str().unwrap().contains("\"k\" is empty"), "{}", keys[0]);
    let report: Value = serde_json::from_slice(&std::fs::read(run2.path().join("import-report.json")).unwrap()).unwrap();
    assert_eq!(report["rejected_rows"], 2);
}
