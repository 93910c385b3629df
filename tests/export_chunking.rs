//! Chunk planning against MariaDB: integer keys with gaps and negatives, composite keys,
//! VARCHAR keys under a case- and trailing-space-insensitive collation, no key at all, and
//! hostile identifiers. In every case the exported row multiset equals the table.

use crate::common;

use common::*;
use mysql::prelude::Queryable;
use mysql2ddb::source::plan::Strategy;

fn export_and_compare(conn: &mut mysql::Conn, db: &str, table: &str, args: &[&str]) -> mysql2ddb::manifest::Manifest {
    let run = tempfile::tempdir().unwrap();
    let mut all = vec!["--databases", db];
    all.extend_from_slice(args);
    assert_ok(&export(run.path(), &all));
    let m = manifest(run.path());
    let e = entry(&m, db, table);
    let expected = mysql_rows(conn, db, table, &kinds(e));
    let got = parquet_rows(run.path(), e);
    assert_eq!(got.len(), expected.len(), "row count of {table}");
    assert_eq!(got, expected, "rows of {table}");
    m
}

#[test]
fn integer_keys_with_gaps_and_negatives_are_split_into_ranges() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_int");
    conn.query_drop(format!("CREATE TABLE `{db}`.t (id BIGINT PRIMARY KEY, v VARCHAR(10))")).unwrap();
    // -5000..-1, a gap, 1..5000 every third, and a far outlier.
    conn.query_drop(format!("INSERT INTO `{db}`.t SELECT -seq, 'neg' FROM seq_1_to_5000")).unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.t SELECT seq * 3, 'pos' FROM seq_1_to_5000")).unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.t VALUES (40000, 'far'), (-9223372036854775808, 'min')")).unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.t")).unwrap();
    let m = export_and_compare(&mut conn, &db, "t", &["--chunk-rows", "1000", "--threads", "3"]);
    let e = entry(&m, &db, "t");
    assert!(e.chunks.len() >= 5, "split into several chunks, got {}", e.chunks.len());
    let rows: Vec<u64> = e.chunks.iter().map(|c| c.rows).collect();
    assert_eq!(rows.iter().sum::<u64>(), 10002);
    // The min-int outlier makes the span sparse: the planner must walk the key instead of
    // producing one chunk that holds everything.
    assert!(rows.iter().all(|&r| r <= 2000), "no chunk far above chunk-rows: {rows:?}");
}

#[test]
fn dense_integer_keys_use_arithmetic_ranges() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_dense");
    conn.query_drop(format!("CREATE TABLE `{db}`.t (id INT UNSIGNED PRIMARY KEY, v INT)")).unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.t SELECT seq, seq FROM seq_1_to_10000")).unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.t")).unwrap();
    let m = export_and_compare(&mut conn, &db, "t", &["--chunk-rows", "2500"]);
    let e = entry(&m, &db, "t");
    assert_eq!(e.strategy, Some(Strategy::IntRange));
    assert_eq!(e.chunks.len(), 4);
}

#[test]
fn composite_keys_use_keyset_ranges_without_overlap() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_composite");
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.purchase (customerid VARCHAR(20), orderid VARCHAR(20), productid VARCHAR(20), \
         quantity INT, PRIMARY KEY (customerid, orderid, productid))"
    ))
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO `{db}`.purchase SELECT CONCAT('c', seq % 37), CONCAT('o', seq % 101), CONCAT('p', seq), seq % 9 \
         FROM seq_1_to_6000"
    ))
    .unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.purchase")).unwrap();
    let m = export_and_compare(&mut conn, &db, "purchase", &["--chunk-rows", "700", "--threads", "3", "--key-bounds", "walk"]);
    let e = entry(&m, &db, "purchase");
    assert_eq!(e.strategy, Some(Strategy::Keyset));
    assert!(e.chunks.len() >= 8, "{} chunks", e.chunks.len());
    assert!(e.chunks.iter().all(|c| c.rows <= 700), "keyset chunks hold at most chunk-rows rows");
}

#[test]
fn varchar_keys_follow_the_server_collation_for_case_and_trailing_spaces() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_collation");
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.k (name VARCHAR(40) COLLATE utf8mb4_general_ci PRIMARY KEY, n INT)"
    ))
    .unwrap();
    // Distinct under the collation, but interleaving case, trailing spaces, accents and emoji.
    conn.query_drop(format!(
        "INSERT INTO `{db}`.k SELECT CONCAT(IF(seq % 2, 'Key', 'kEY'), LPAD(seq, 5, '0'), \
         IF(seq % 3 = 0, ' x', ''), IF(seq % 5 = 0, '\u{e9}', ''), IF(seq % 7 = 0, '\u{1F600}', '')), seq FROM seq_1_to_3000"
    ))
    .unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.k VALUES ('a', 1), ('B ', 2), ('c  ', 3), ('', 4)")).unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.k")).unwrap();
    for bounds in ["estimate", "walk"] {
        let m = export_and_compare(&mut conn, &db, "k", &["--chunk-rows", "250", "--threads", "2", "--key-bounds", bounds]);
        let e = entry(&m, &db, "k");
        assert!(e.chunks.len() >= 8, "{bounds}: {} chunks", e.chunks.len());
        let expected = if bounds == "walk" { Strategy::Keyset } else { Strategy::KeysetEstimated };
        assert_eq!(e.strategy, Some(expected));
    }
}

/// Rows the server read from one table so far (MariaDB's user statistics).
fn rows_read(conn: &mut mysql::Conn, db: &str, table: &str) -> u64 {
    conn.query_drop("SET GLOBAL userstat = 1").unwrap();
    let n: Option<u64> = conn
        .exec_first(
            "SELECT ROWS_READ FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .unwrap();
    n.unwrap_or(0)
}

/// The default keyset planning places boundaries from the server's row estimates: the server
/// reads the table once (the chunks), where walking the key reads it twice. Every row still
/// lands in exactly one chunk, and no chunk is far from the target size.
#[test]
fn string_keys_are_split_from_row_estimates_without_reading_the_table_twice() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_estimate");
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.purchase (customerid VARCHAR(20), orderid VARCHAR(20), productid VARCHAR(20), \
         quantity INT, PRIMARY KEY (customerid, orderid, productid))"
    ))
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO `{db}`.purchase SELECT CONCAT('c', seq DIV 20), CONCAT('o', seq DIV 4), CONCAT('p', seq), seq % 9 \
         FROM seq_1_to_60000"
    ))
    .unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.purchase")).unwrap();
    let mut read = |bounds: &str| {
        let before = rows_read(&mut conn, &db, "purchase");
        let m = export_and_compare(&mut conn, &db, "purchase", &["--chunk-rows", "5000", "--threads", "3", "--key-bounds", bounds]);
        (m, rows_read(&mut conn, &db, "purchase") - before)
    };
    let (walked, walk_read) = read("walk");
    let (m, estimate_read) = read("estimate");
    assert_eq!(entry(&walked, &db, "purchase").strategy, Some(Strategy::Keyset));
    // export_and_compare reads the table once itself, after the export. Besides the keys it
    // snaps to, the estimate counts one piece of about a quarter of a chunk exactly.
    assert!(walk_read >= 60_000 * 2 + 50_000, "the walk reads the table again: {walk_read}");
    assert!(estimate_read < 60_000 * 2 + 5_000, "estimates read no more than a chunk's worth: {estimate_read}");
    let e = entry(&m, &db, "purchase");
    assert_eq!(e.strategy, Some(Strategy::KeysetEstimated));
    let rows: Vec<u64> = e.chunks.iter().map(|c| c.rows).collect();
    // 60,000 rows at 5,000: about 12 chunks whatever the table's row estimate says (one piece is
    // counted to calibrate it; InnoDB's estimate of this table has ranged from under 25,000 to 64,000).
    assert!(rows.len() >= 8, "{rows:?}");
    assert!(rows.iter().all(|&r| r <= 5000 * 4), "no chunk far above the target: {rows:?}");
}

/// Binary keys are bisected as bytes and integer-led composite keys as numbers; a first column
/// with a single value cannot be bisected and is walked.
#[test]
fn binary_and_integer_led_keys_are_estimated_and_a_single_valued_first_column_is_walked() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_estimate_kinds");
    conn.query_drop(format!("CREATE TABLE `{db}`.b (k VARBINARY(16) PRIMARY KEY, v INT)")).unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.b SELECT UNHEX(MD5(seq)), seq FROM seq_1_to_20000")).unwrap();
    conn.query_drop(format!("CREATE TABLE `{db}`.i (a BIGINT UNSIGNED, b VARCHAR(8), PRIMARY KEY (a, b))")).unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.i SELECT seq * 1000003, 'x' FROM seq_1_to_20000")).unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.i VALUES (18446744073709551615, 'max'), (0, 'min')")).unwrap();
    conn.query_drop(format!("CREATE TABLE `{db}`.one (tenant CHAR(3), id INT, PRIMARY KEY (tenant, id))")).unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.one SELECT 'abc', seq FROM seq_1_to_20000")).unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.b, `{db}`.i, `{db}`.one")).unwrap();
    for (table, strategy) in [("b", Strategy::KeysetEstimated), ("i", Strategy::KeysetEstimated), ("one", Strategy::Keyset)] {
        let m = export_and_compare(&mut conn, &db, table, &["--chunk-rows", "2000", "--threads", "2"]);
        let e = entry(&m, &db, table);
        assert_eq!(e.strategy, Some(strategy), "{table}");
        assert!(e.chunks.len() >= 5, "{table}: {} chunks", e.chunks.len());
    }
}

#[test]
fn a_table_without_a_key_is_read_as_one_stream() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_nokey");
    conn.query_drop(format!("CREATE TABLE `{db}`.log (msg VARCHAR(20), at INT)")).unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.log SELECT 'same', 1 FROM seq_1_to_1500")).unwrap();
    let m = export_and_compare(&mut conn, &db, "log", &["--chunk-rows", "100"]);
    let e = entry(&m, &db, "log");
    assert_eq!(e.strategy, Some(Strategy::SingleStream));
    assert_eq!(e.chunks.len(), 1);
    assert_eq!(e.chunks[0].rows, 1500, "duplicate rows are all kept");
}

#[test]
fn a_unique_key_over_not_null_columns_stands_in_for_a_missing_primary_key() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_unique");
    conn.query_drop(format!("CREATE TABLE `{db}`.u (a INT NOT NULL, b INT NULL, UNIQUE KEY nb (b), UNIQUE KEY ua (a))"))
        .unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.u SELECT seq, NULL FROM seq_1_to_2000")).unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.u")).unwrap();
    let m = export_and_compare(&mut conn, &db, "u", &["--chunk-rows", "500"]);
    let e = entry(&m, &db, "u");
    assert_eq!(e.schema.key.source, "unique");
    assert_eq!(e.schema.key.columns, vec!["a"], "the nullable unique key is not usable");
    assert_eq!(e.chunks.len(), 4);
}

#[test]
fn hostile_identifiers_are_quoted_everywhere() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "we`ird db.\u{e9}");
    let table = "select `from` \"t\" 'x' \u{20ac}"; // MariaDB names allow no 4-byte UTF-8
    conn.query_drop(format!(
        "CREATE TABLE `{}`.`{}` (`key col` INT, `order` VARCHAR(10), `a``b\"c'd` INT, `\u{fc}n\u{ef}` TEXT, \
         PRIMARY KEY (`key col`, `order`))",
        db.replace('`', "``"),
        table.replace('`', "``")
    ))
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO `{}`.`{}` SELECT seq, CONCAT('o', seq), seq, 'v' FROM seq_1_to_900",
        db.replace('`', "``"),
        table.replace('`', "``")
    ))
    .unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{}`.`{}`", db.replace('`', "``"), table.replace('`', "``"))).unwrap();
    let m = export_and_compare(&mut conn, &db, table, &["--chunk-rows", "200"]);
    let e = entry(&m, &db, table);
    assert!(e.chunks.len() >= 4);
    assert!(e.chunks[0].file.starts_with("data/it_we%60ird%20db%2E%C3%A9/"), "{}", e.chunks[0].file);
}

#[test]
fn table_filters_select_and_an_unknown_table_is_named() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "filters");
    for t in ["orders", "order_items", "users"] {
        conn.query_drop(format!("CREATE TABLE `{db}`.`{t}` (id INT PRIMARY KEY)")).unwrap();
    }
    let run = tempfile::tempdir().unwrap();
    let pattern = format!("{db}.order%");
    assert_ok(&export(run.path(), &["--tables", &pattern]));
    let mut names: Vec<String> = manifest(run.path()).tables.iter().map(|t| t.schema.table.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["order_items", "orders"]);

    let missing = format!("{db}.ordres");
    let out = export(tempfile::tempdir().unwrap().path(), &["--tables", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("filter \"{missing}\" matches no table")), "{}", stderr(&out));
}

/// Keyset bounds on a composite key that starts with a long DECIMAL: decimals that are one
/// double must still split exactly. Bounds were bound as text, which a server may compare with
/// the column as doubles (two such literals compare equal here); they are now cast to the
/// column's type. (MariaDB converts a text parameter to the column's type, so the old binding
/// also passed here; the cast does not depend on it.)
#[test]
fn a_long_decimal_leading_a_composite_key_splits_without_overlap() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_decimal");
    conn.query_drop(format!("CREATE TABLE `{db}`.t (d DECIMAL(38,18), n INT, v INT, PRIMARY KEY (d, n))")).unwrap();
    // Ten decimals that are one double, 300 rows each.
    conn.query_drop(format!("INSERT INTO `{db}`.t SELECT 12345678901234567890.000000000000000001 + (seq % 10) * 0.000000000000000001, seq DIV 10, seq FROM seq_1_to_3000")).unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.t")).unwrap();
    let m = export_and_compare(&mut conn, &db, "t", &["--chunk-rows", "250", "--threads", "2"]);
    let e = entry(&m, &db, "t");
    assert!(e.chunks.len() >= 10, "split into chunks: {}", e.chunks.len());
    assert_eq!(e.chunks.iter().map(|c| c.rows).sum::<u64>(), 3000, "no row in two chunks");
}

/// Regression: lock mode said `point-in-time` for every table, but a MyISAM or Aria table has
/// no snapshot after UNLOCK TABLES. The manifest and the report now say `replay-from` for it,
/// per table, and the export warns.
#[test]
fn tables_without_snapshots_are_replay_from_in_the_manifest_and_report() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_engines");
    for (t, engine) in [("inno", "InnoDB"), ("my", "MyISAM"), ("ar", "Aria")] {
        conn.query_drop(format!("CREATE TABLE `{db}`.{t} (id INT PRIMARY KEY) ENGINE={engine}")).unwrap();
        conn.query_drop(format!("INSERT INTO `{db}`.{t} SELECT seq FROM seq_1_to_10")).unwrap();
    }
    let run = tempfile::tempdir().unwrap();
    let out = export(run.path(), &["--databases", &db, "--consistency", "lock"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("is MyISAM") && stderr(&out).contains("replay-from"), "{}", stderr(&out));
    let m = manifest(run.path());
    assert_eq!(m.snapshots[0].guarantee, "point-in-time");
    let g = |t: &str| entry(&m, &db, t).guarantee.clone();
    assert_eq!(g("inno").as_deref(), Some("point-in-time"));
    assert_eq!(g("my").as_deref(), Some("replay-from"));
    assert_eq!(g("ar").as_deref(), Some("replay-from"));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join("export-report.json")).unwrap()).unwrap();
    let in_report = |t: &str| report["tables"].as_array().unwrap().iter().find(|r| r["table"] == format!("{db}.{t}").as_str()).unwrap()["guarantee"].clone();
    assert_eq!(in_report("my"), "replay-from");
    assert_eq!(in_report("inno"), "point-in-time");
}

/// The engine estimates a range it finds (next to) empty as one row. At a tiny --chunk-rows every
/// piece looked worth splitting, and a sparse 64-bit key was bisected down to single keys: about
/// 200,000 EXPLAINs and two minutes for three rows. A piece estimated at one row is no longer split.
#[test]
fn a_tiny_chunk_size_over_a_sparse_64_bit_key_plans_from_a_few_estimates() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "chunk_sparse_u64");
    conn.query_drop("CREATE TABLE k (k BIGINT UNSIGNED PRIMARY KEY, v INT); INSERT INTO k VALUES (0, 0), (9223372036854775808, 1), (18446744073709551615, 2)").unwrap();
    let run = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["export", "--quiet", "--source", &mysql_url(), "--databases", &db, "--chunk-rows", "2", "--out"])
        .arg(run.path())
        .env("M2D_LOG", "mysql2ddb=debug")
        .output()
        .unwrap();
    assert_ok(&out);
    let log = stderr(&out);
    let asked: usize = log
        .lines()
        .find_map(|l| l.split("estimates=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no estimate count logged: {log}"));
    assert!(asked < 100, "{asked} estimates for three rows");
    assert_eq!(manifest(run.path()).tables[0].chunks.iter().map(|c| c.rows).sum::<u64>(), 3);
}
