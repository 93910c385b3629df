//! `mysql2ddb export` of a table holding every MySQL type with edge values, to Parquet and to
//! CSV, read back with the parquet/csv crates and compared value by value with what MariaDB
//! returns; and the three zero-date policies.

use crate::common;

use common::*;
use mysql::prelude::Queryable;
use mysql2ddb::source::types::ColumnKind;

const CREATE: &str = "CREATE TABLE every_type (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  dec_small DECIMAL(10,2), dec_wide DECIMAL(65,30), f FLOAT, d DOUBLE,
  dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME, tm6 TIME(6), yr YEAR,
  c CHAR(10), vc VARCHAR(100), tx TEXT, bn BINARY(4), vb VARBINARY(100), bl LONGBLOB,
  b1 BIT(1), b64 BIT(64), en ENUM('small','medium','large'), st SET('red','green','blue'),
  js JSON, pt POINT, geo GEOMETRY, lat1 VARCHAR(20) CHARACTER SET latin1
) DEFAULT CHARSET = utf8mb4";

const ROWS: &[&str] = &[
    // Minimum of every width, smallest temporals, empty strings, empty SET.
    "(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
      -99999999.99, -99999999999999999999999999999999999.999999999999999999999999999999,
      -3.40282e38, -1.7976931348623157e308,
      '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000',
      '-838:59:59', '-838:59:59.000000', 1901, '', '', '', x'00000000', x'', x'', b'0', b'0',
      'small', '', '{}', POINT(0, 0), ST_GeomFromText('LINESTRING(0 0, 1 1)'), 'caf\u{e9}')",
    // Maximum of every width, 4-byte UTF-8, a 1 MB BLOB, nested JSON, full SET, BIT(64) all ones.
    "(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,
      18446744073709551615, 99999999.99,
      99999999999999999999999999999999999.999999999999999999999999999999,
      3.40282e38, 1.7976931348623157e308,
      '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999',
      '838:59:59', '838:59:59.999999', 2155, 'ab', 'emoji \u{1F600} and \u{1D11E}', REPEAT('x', 5000),
      x'ffffffff', x'00ff00', REPEAT(UNHEX('00FF7F80'), 262144), b'1', b'1111111111111111111111111111111111111111111111111111111111111111',
      'large', 'red,green,blue', '{\"a\": {\"b\": [1, 2, {\"c\": null}]}, \"s\": \"\u{e9}\u{1F600}\"}',
      POINT(-71.1, 42.3), ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 0))'), 'latin1 \u{ff}')",
    // NULL everywhere but the key.
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL)",
    // Texts that look like NULL markers or need quoting, TIME over 24 h, tiny fractions.
    "(4, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, -0.01, -0.000000000000000000000000000001, 1.5, 0.1,
      '2024-02-29', '2024-02-29 12:34:56', '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.5',
      '25:00:00', '-00:00:00.000001', 2024, '\\\\N', 'a,b \"quoted\"\nnew line', '\\\\\\\\N', x'01020304',
      x'5c4e', x'', b'1', b'1000000000000000000000000000000000000000000000000000000000000001',
      'medium', 'green', '[1, \"x\", true]', POINT(1e10, -1e-10), NULL, '')",
];

fn load(conn: &mut mysql::Conn, db: &str) {
    conn.query_drop(format!("USE `{db}`")).unwrap();
    conn.query_drop(CREATE).unwrap();
    for row in ROWS {
        conn.query_drop(format!("INSERT INTO every_type VALUES {row}")).unwrap();
    }
}

/// Zero dates need a permissive sql_mode; row 5 holds them.
fn add_zero_dates(conn: &mut mysql::Conn, db: &str) {
    conn.query_drop("SET SESSION sql_mode = ''").unwrap();
    conn.query_drop(format!(
        "INSERT INTO `{db}`.every_type (id, dt, dtm, dtm6, ts) VALUES \
         (5, '0000-00-00', '0000-00-00 00:00:00', '2020-00-15 10:00:00.5', '0000-00-00 00:00:00')"
    ))
    .unwrap();
    conn.query_drop("SET SESSION sql_mode = DEFAULT").unwrap();
}

#[test]
fn every_type_round_trips_through_parquet_value_by_value() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "types_parquet");
    load(&mut conn, &db);
    let run = tempfile::tempdir().unwrap();
    let out = export(run.path(), &["--databases", &db, "--format", "parquet"]);
    assert_ok(&out);

    let m = manifest(run.path());
    let e = entry(&m, &db, "every_type");
    let k = kinds(e);
    assert_eq!(k.iter().find(|c| c.0 == "js").unwrap().1, ColumnKind::Json, "MariaDB JSON detected");
    let expected = mysql_rows(&mut conn, &db, "every_type", &k);
    let got = parquet_rows(run.path(), e);
    assert_eq!(got.len(), ROWS.len());
    for (g, x) in got.iter().zip(&expected) {
        for (i, (gv, xv)) in g.iter().zip(x).enumerate() {
            assert_eq!(gv, xv, "row id {} column {}", x[0], k[i].0);
        }
    }
    // The Arrow schema is the lossless one the manifest promises.
    let enc = |c: &str| e.encodings.iter().find(|x| x.column == c).unwrap().arrow_type.clone();
    assert_eq!(enc("biu"), "UInt64");
    assert_eq!(enc("dec_wide"), "Decimal256(65, 30)");
    assert_eq!(enc("ts"), "Timestamp(ms, \"UTC\")");
    assert_eq!(enc("tm6"), "Duration(µs)");
    assert!(e.chunks[0].sha256.as_ref().is_some_and(|s| s.len() == 64));
}

#[test]
fn every_type_round_trips_through_csv_value_by_value() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "types_csv");
    load(&mut conn, &db);
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--format", "csv"]));
    let m = manifest(run.path());
    let e = entry(&m, &db, "every_type");
    let k = kinds(e);
    let expected = mysql_rows(&mut conn, &db, "every_type", &k);
    let got = csv_rows(run.path(), e);
    assert_eq!(got.len(), expected.len());
    for (g, x) in got.iter().zip(&expected) {
        for (i, (gv, xv)) in g.iter().zip(x).enumerate() {
            assert_eq!(gv, xv, "row id {} column {}", x[0], k[i].0);
        }
    }
    assert_eq!(m.options.csv_null.as_deref(), Some("\\N"));
}

#[test]
fn zero_dates_become_null_and_are_counted_by_default() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "zero_null");
    load(&mut conn, &db);
    add_zero_dates(&mut conn, &db);
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let m = manifest(run.path());
    let e = entry(&m, &db, "every_type");
    let got = parquet_rows(run.path(), e);
    let row5 = got.iter().find(|r| r[0] == "5").expect("row 5 exported");
    let col = |name: &str| kinds(e).iter().position(|c| c.0 == name).unwrap();
    for c in ["dt", "dtm", "dtm6", "ts"] {
        assert_eq!(row5[col(c)], "NULL", "zero date in {c} exported as NULL");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.path().join("export-report.json")).unwrap()).unwrap();
    let counts = &report["tables"][0]["policy_counts"];
    for c in ["dt", "dtm", "dtm6", "ts"] {
        assert_eq!(counts[c], 1, "zero date in {c} counted: {counts}");
    }
}

#[test]
fn zero_dates_kept_as_text_with_the_string_policy() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "zero_string");
    load(&mut conn, &db);
    add_zero_dates(&mut conn, &db);
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--zero-date", "string"]));
    let m = manifest(run.path());
    let e = entry(&m, &db, "every_type");
    let k = kinds(e);
    assert_eq!(mysql_rows(&mut conn, &db, "every_type", &k), parquet_rows(run.path(), e));
}

#[test]
fn zero_dates_rejected_go_to_the_rejects_file_and_the_exit_status_says_so() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "zero_reject");
    load(&mut conn, &db);
    add_zero_dates(&mut conn, &db);
    let run = tempfile::tempdir().unwrap();
    let out = export(run.path(), &["--databases", &db, "--zero-date", "reject"]);
    assert_eq!(out.status.code(), Some(3), "exit 3 means rows were rejected: {}", stderr(&out));
    assert!(stderr(&out).contains("1 rows could not be converted"), "{}", stderr(&out));
    let m = manifest(run.path());
    let e = entry(&m, &db, "every_type");
    let got = parquet_rows(run.path(), e);
    assert!(got.iter().all(|r| r[0] != "5"), "rejected row is not in the chunk");
    assert_eq!(got.len(), ROWS.len());
    let chunk = &e.chunks[0];
    assert_eq!(chunk.rejected_rows, 1);
    let text = std::fs::read_to_string(run.path().join(chunk.rejects_file.as_ref().unwrap())).unwrap();
    let reject: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(reject["table"], format!("{db}.every_type"));
    assert_eq!(reject["key"]["id"]["int"], 5);
    assert_eq!(reject["column"], "dt");
    assert!(reject["reason"].as_str().unwrap().contains("0000-00-00"), "{reject}");
}
