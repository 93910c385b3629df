//! The Parquet chunks read as typed by the tools users point at them: pyarrow and DuckDB (PyPI,
//! installed by scripts/services.sh) read the type corpus's chunk, and every value is compared
//! with what MySQL returns for it (binary protocol, read here). Every DATE/DATETIME/TIMESTAMP
//! column is a date or timestamp type to both readers (regression: DATETIME(0) was bare INT64,
//! which both read as BIGINT).

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;

use common::corpus::{corpus_columns, create_all, insert_all, quoted};
use common::{assert_ok, connect, export, fresh_db, manifest, services, stderr};
use mysql::prelude::Queryable;
use mysql::Value;
use serde_json::{json, Value as Json};

/// Reads the chunk files with pyarrow and DuckDB; prints {reader: {"types": {…}, "rows": […]}}
/// with values in plain JSON: temporals as `YYYY-MM-DD HH:MM:SS.ffffff`, durations and BIT as
/// integers, decimals as exact text, binary as hex.
const READERS: &str = r#"
import sys, json, datetime, decimal
import pyarrow.parquet as pq
import duckdb

files = sys.argv[1:]

def plain(v):
    if isinstance(v, float):
        # As text: JSON parsers may round floats by an ulp.
        return "f:" + repr(v)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, decimal.Decimal):
        return format(v, 'f')
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc)
        return v.strftime('%Y-%m-%d %H:%M:%S.%f').rjust(26, '0')
    if isinstance(v, datetime.date):
        return v.strftime('%Y-%m-%d').rjust(10, '0')
    if isinstance(v, datetime.timedelta):
        return (v.days * 86400 + v.seconds) * 1000000 + v.microseconds
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, list):
        return [plain(x) for x in v]
    return str(v)

out = {}
tables = [pq.read_table(f) for f in files]
schema = tables[0].schema
rows = []
for t in tables:
    for r in t.to_pylist():
        rows.append({k: plain(v) for k, v in r.items()})
out["pyarrow"] = {"types": {f.name: str(f.type) for f in schema}, "rows": rows}

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
rel = con.sql("SELECT * FROM read_parquet(%s)" % json.dumps(files).replace('"', "'"))
types = {c: str(t) for c, t in zip(rel.columns, rel.types)}
rows = [{c: plain(v) for c, v in zip(rel.columns, r)} for r in rel.fetchall()]
out["duckdb"] = {"types": types, "rows": rows}
print(json.dumps(out))
"#;

fn fraction6(micro: u32) -> String {
    format!(".{micro:06}")
}

/// What a reader should show for MySQL's value of a column of `ty` (None: NULL in the chunk).
fn expected(ty: &str, v: &Value) -> Json {
    let ty = ty.to_ascii_lowercase();
    match v {
        Value::NULL => Json::Null,
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::Float(f) => json!(*f as f64),
        Value::Double(d) => json!(d),
        // Zero and invalid dates have no typed form: NULL under --zero-date null.
        Value::Date(y, m, d, ..) if *m == 0 || *d == 0 || *d > days_in(*y, *m) => Json::Null,
        Value::Date(y, m, d, ..) if ty == "date" => json!(format!("{y:04}-{m:02}-{d:02}")),
        Value::Date(y, m, d, h, mi, s, us) => json!(format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}{}", fraction6(*us))),
        Value::Time(neg, days, h, m, s, us) => {
            let micros = ((*days as i64 * 24 + *h as i64) * 3600 + *m as i64 * 60 + *s as i64) * 1_000_000 + *us as i64;
            json!(if *neg { -micros } else { micros })
        }
        Value::Bytes(b) if ty.starts_with("bit") => json!(b.iter().fold(0u64, |a, x| a << 8 | *x as u64)),
        Value::Bytes(b) if ty.starts_with("geometry") => json!(hex::encode(&b[4..])),
        Value::Bytes(b) if ty.contains("binary") || ty.contains("blob") => json!(hex::encode(b)),
        Value::Bytes(b) if ty.starts_with("set") => {
            let s = String::from_utf8(b.clone()).unwrap();
            json!(if s.is_empty() { vec![] } else { s.split(',').map(String::from).collect::<Vec<_>>() })
        }
        Value::Bytes(b) if ty.starts_with("year") => json!(String::from_utf8(b.clone()).unwrap().parse::<u64>().unwrap()),
        Value::Bytes(b) => json!(String::from_utf8(b.clone()).unwrap()),
    }
}

fn days_in(y: u16, m: u8) -> u8 {
    mysql2ddb::value::temporal::days_in_month(y, m)
}

/// Numbers compare by value (a reader may print 1e100 where MySQL gives 1E100).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64() && (x.as_i64() == y.as_i64() || x.is_f64() || y.is_f64()),
        (Json::String(f), Json::Number(y)) if f.starts_with("f:") => f[2..].parse::<f64>().ok() == y.as_f64(),
        _ => a == b,
    }
}

#[test]
fn pyarrow_and_duckdb_read_every_type_as_mysql_has_it() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "parquet_readers");
    create_all(&mut conn);
    insert_all(&mut conn);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    assert_ok(&export(&run, &["--tables", &format!("{db}.corpus"), "--format", "parquet", "--zero-date", "null"]));
    let m = manifest(&run);
    let files: Vec<String> = m.tables[0].chunks.iter().map(|c| run.join(&c.file).to_string_lossy().into_owned()).collect();

    let out = Command::new(&services()["M2D_PYTHON"]).arg("-c").arg(READERS).args(&files).output().expect("run the venv's python");
    assert!(out.status.success(), "pyarrow/duckdb: {}", stderr(&out));
    let read: Json = serde_json::from_slice(&out.stdout).unwrap();

    // MySQL's values, by id then column.
    let columns = corpus_columns();
    let names: Vec<String> = columns.iter().map(|(n, _)| quoted(n)).collect();
    let mut source: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for row in conn.exec_iter(format!("SELECT id, {} FROM corpus", names.join(", ")), ()).unwrap() {
        let row = row.unwrap().unwrap();
        let id = match row[0] {
            Value::Int(i) => i,
            ref other => panic!("id {other:?}"),
        };
        source.insert(id, row[1..].to_vec());
    }

    for reader in ["pyarrow", "duckdb"] {
        let types = &read[reader]["types"];
        for (name, ty) in &columns {
            let t = types[name].as_str().unwrap_or_default().to_ascii_lowercase();
            if ty.starts_with("DATE") || ty.starts_with("DATETIME") || ty.starts_with("TIMESTAMP") {
                assert!(t.starts_with("date") || t.starts_with("timestamp"), "{reader} reads {name} ({ty}) as {t}, not as a date or timestamp");
            }
        }
        let rows = read[reader]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), source.len(), "{reader}: every row");
        for r in rows {
            let id = r["id"].as_i64().unwrap();
            for (i, (name, ty)) in columns.iter().enumerate() {
                let want = expected(ty, &source[&id][i]);
                if reader == "duckdb" && ty == "DECIMAL(65,30)" {
                    // DuckDB's decimals stop at 38 digits: it reads wider ones as DOUBLE (docs/format.md).
                    let got = r[name].as_str().and_then(|f| f.strip_prefix("f:")).map(|f| f.parse::<f64>().unwrap());
                    let want = want.as_str().map(|s| s.parse::<f64>().unwrap());
                    assert!(got == want || got.zip(want).is_some_and(|(g, w)| ((g - w) / w).abs() < 1e-15), "{reader}: row {id}, {name}: {got:?} vs {want:?}");
                    continue;
                }
                assert!(same(&r[name], &want), "{reader}: row {id}, column {name} ({ty}): read {}, MySQL has {want}", r[name]);
            }
        }
    }
    // What each reader sees, for docs/format.md.
    eprintln!("{}", serde_json::to_string_pretty(&json!({"pyarrow": read["pyarrow"]["types"], "duckdb": read["duckdb"]["types"]})).unwrap());
}

/// Prints, per column, whether the first chunk's first row group uses a dictionary, as pyarrow
/// reads the file's metadata.
const ENCODINGS: &str = r#"
import sys, json
import pyarrow.parquet as pq
md = pq.ParquetFile(sys.argv[1]).metadata
rg = md.row_group(0)
print(json.dumps({rg.column(i).path_in_schema: list(rg.column(i).encodings) for i in range(rg.num_columns)}))
"#;

#[test]
fn columns_written_without_a_dictionary_read_the_same_in_pyarrow_and_duckdb() {
    // Past the first batch's judgement (256 values), unique columns are written without a
    // dictionary and delta-encoded: both readers must still read every value as MySQL has it.
    let mut conn = connect();
    let db = fresh_db(&mut conn, "parquet_plain");
    let columns = [
        ("name", "VARCHAR(40)"),
        ("big", "BIGINT"),
        ("at", "DATETIME(6)"),
        ("amount", "DECIMAL(20,6)"),
        ("raw", "VARBINARY(16)"),
        ("ratio", "DOUBLE"),
        ("grp", "VARCHAR(10)"),
        ("span", "TIME(6)"),
        ("day", "DATE"),
    ];
    let defs: Vec<String> = columns.iter().map(|(n, t)| format!("{} {t}", quoted(n))).collect();
    conn.query_drop(format!("CREATE TABLE t (id INT PRIMARY KEY, {})", defs.join(", "))).unwrap();
    conn.query_drop(
        "INSERT INTO t SELECT seq, IF(seq % 11 = 0, NULL, CONCAT('name ', seq, ' é')), CAST(seq AS SIGNED) * 1000003 - 5000000000,
            TIMESTAMP('2020-01-01') + INTERVAL seq * 7919 SECOND + INTERVAL seq MICROSECOND, seq / 7,
            UNHEX(MD5(seq)), seq / 3, CONCAT('g', seq % 5), SEC_TO_TIME(CAST(seq AS SIGNED) * 97 - 150000) + INTERVAL seq MICROSECOND,
            DATE('1990-01-01') + INTERVAL seq DAY FROM seq_1_to_3000",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    assert_ok(&export(&run, &["--tables", &format!("{db}.t"), "--format", "parquet", "--threads", "1"]));
    let m = manifest(&run);
    let files: Vec<String> = m.tables[0].chunks.iter().map(|c| run.join(&c.file).to_string_lossy().into_owned()).collect();
    let python = &services()["M2D_PYTHON"];

    let out = Command::new(python).arg("-c").arg(ENCODINGS).arg(&files[0]).output().expect("run the venv's python");
    assert!(out.status.success(), "pyarrow: {}", stderr(&out));
    let encodings: Json = serde_json::from_slice(&out.stdout).unwrap();
    let has = |column: &str, encoding: &str| encodings[column].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains(encoding));
    for unique in ["id", "name", "big", "at", "amount", "raw", "ratio", "span", "day"] {
        assert!(!has(unique, "DICTIONARY"), "{unique} is unique: written without a dictionary ({encodings})");
    }
    for (column, delta) in [("id", "DELTA_BINARY_PACKED"), ("big", "DELTA_BINARY_PACKED"), ("at", "DELTA_BINARY_PACKED"), ("span", "DELTA_BINARY_PACKED"), ("day", "DELTA_BINARY_PACKED"), ("name", "DELTA_BYTE_ARRAY"), ("raw", "DELTA_BYTE_ARRAY")] {
        assert!(has(column, delta), "{column}: {delta} ({encodings})");
    }
    assert!(has("grp", "DICTIONARY"), "grp repeats five values: a dictionary ({encodings})");

    let out = Command::new(python).arg("-c").arg(READERS).args(&files).output().expect("run the venv's python");
    assert!(out.status.success(), "pyarrow/duckdb: {}", stderr(&out));
    let read: Json = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<String> = columns.iter().map(|(n, _)| quoted(n)).collect();
    let mut source: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for row in conn.exec_iter(format!("SELECT id, {} FROM t", names.join(", ")), ()).unwrap() {
        let row = row.unwrap().unwrap();
        let Value::Int(id) = row[0] else { panic!("id {:?}", row[0]) };
        source.insert(id, row[1..].to_vec());
    }
    for reader in ["pyarrow", "duckdb"] {
        let rows = read[reader]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3000, "{reader}: every row");
        for r in rows {
            let id = r["id"].as_i64().unwrap();
            for (i, (name, ty)) in columns.iter().enumerate() {
                let want = expected(ty, &source[&id][i]);
                assert!(same(&r[*name], &want), "{reader}: row {id}, column {name} ({ty}): read {}, MySQL has {want}", r[*name]);
            }
        }
    }
}
