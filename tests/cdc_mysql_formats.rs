//! Changes capture must refuse or decode, never lose: statement-logged DML on a captured table
//! (a session with binlog_format STATEMENT), DDL under ANSI_QUOTES, EXCHANGE PARTITION, one-phase
//! XA, and tables in the temporal format of before MariaDB 10.1.2 — each against a real MariaDB.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::cdc::cdc_cmd;
use common::servers::PrivateServer;
use common::{assert_ok, bin, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;

fn capture(run: &Path) -> Output {
    cdc_cmd(&["capture", "--quiet"], run).output().unwrap()
}

fn captured(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("cdc/capture.json")).unwrap()).unwrap()
}

/// Regression: a statement-logged INSERT ended the open transaction and was dropped, so its rows
/// never reached DynamoDB. Now capture stops at it with the fix, after staging what came before;
/// the same on a table capture does not follow is no reason to stop.
#[test]
fn statement_logged_dml_on_a_captured_table_stops_capture_with_the_fix() {
    let mut c = connect();
    let db = fresh_db(&mut c, "cdc_statement_dml");
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)").unwrap();
    c.query_drop("CREATE TABLE other (id INT PRIMARY KEY)").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--tables", &format!("{db}.t")]));
    c.query_drop("INSERT INTO t VALUES (1, 1)").unwrap();
    c.query_drop("SET SESSION binlog_format = 'STATEMENT'").unwrap();
    c.query_drop("INSERT INTO other VALUES (1)").unwrap();
    let out = capture(run.path());
    assert!(out.status.success(), "DML on a table not captured: {}", stderr(&out));
    c.query_drop("INSERT INTO t VALUES (2, 2)").unwrap();
    c.query_drop("SET SESSION binlog_format = 'ROW'").unwrap();
    let out = capture(run.path());
    let e = stderr(&out);
    assert!(!out.status.success(), "statement-logged DML on t must stop capture");
    assert!(e.contains("statement-logged INSERT changes captured table") && e.contains(&format!("{db}.t")) && e.contains("binlog_format = ROW"), "{e}");
    assert_eq!(captured(run.path())["changes"], 1, "the row event before it is staged");
}

/// Regression: under ANSI_QUOTES `ALTER TABLE "t" …` was read as a string, so a column reorder
/// of a captured table went on unnoticed (apply would have put values in the wrong attributes).
#[test]
fn ddl_under_ansi_quotes_stops_capture() {
    let mut c = connect();
    let db = fresh_db(&mut c, "cdc_ansi_quotes");
    c.query_drop("CREATE TABLE t (a INT PRIMARY KEY, b INT)").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    c.query_drop("SET SESSION sql_mode = 'ANSI_QUOTES'").unwrap();
    c.query_drop(r#"ALTER TABLE "t" MODIFY b INT FIRST"#).unwrap();
    let out = capture(run.path());
    assert!(!out.status.success() && stderr(&out).contains(&format!("table {db}.t was changed by")), "{}", stderr(&out));
}

/// Regression: `ALTER TABLE a EXCHANGE PARTITION p WITH TABLE b` swaps b's rows with no row
/// events; capture took it for a change of a only.
#[test]
fn exchange_partition_stops_capture_of_the_exchanged_table() {
    let mut c = connect();
    let db = fresh_db(&mut c, "cdc_exchange");
    c.query_drop("CREATE TABLE p (id INT PRIMARY KEY, v INT) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN MAXVALUE)").unwrap();
    c.query_drop("CREATE TABLE b (id INT PRIMARY KEY, v INT)").unwrap();
    c.query_drop("INSERT INTO p VALUES (1, 1), (200, 2)").unwrap();
    c.query_drop("INSERT INTO b VALUES (5, 5)").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--tables", &format!("{db}.b")]));
    c.query_drop("ALTER TABLE p EXCHANGE PARTITION p0 WITH TABLE b").unwrap();
    let out = capture(run.path());
    assert!(!out.status.success() && stderr(&out).contains(&format!("table {db}.b was changed by")), "{}", stderr(&out));
}

/// `XA COMMIT … ONE PHASE` commits: its rows are staged, nothing is left prepared. (MySQL logs
/// it as an XA_PREPARE event with the one-phase flag: the unit test in `cdc::txn` covers that.)
#[test]
fn one_phase_xa_commits_are_staged() {
    let mut c = connect();
    let db = fresh_db(&mut c, "cdc_xa_one_phase");
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    c.query_drop("XA START 'one'").unwrap();
    c.query_drop("INSERT INTO t VALUES (1), (2)").unwrap();
    c.query_drop("XA END 'one'").unwrap();
    c.query_drop("XA COMMIT 'one' ONE PHASE").unwrap();
    let out = capture(run.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let cap = captured(run.path());
    assert_eq!(cap["changes"], 2, "{cap}");
    assert!(cap.get("prepared_xa").is_none(), "nothing waits for a commit: {cap}");
}

/// Regression: old-format temporal columns with a fraction (a table created while
/// mysql56_temporal_format was OFF, as before MariaDB 10.1.2) were read at fixed widths.
#[test]
fn old_format_temporal_columns_are_refused_naming_the_column() {
    let server = PrivateServer::start(31, &["--mysql56-temporal-format=OFF".to_string()]);
    server.root(&["-e", "CREATE DATABASE shop; USE shop; CREATE TABLE ev (id INT PRIMARY KEY, at TIME(3), seen DATETIME(2)); INSERT INTO ev VALUES (1, '10:00:00.123', '2024-01-01 00:00:00.5')"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = std::process::Command::new(bin()).args(["export", "--quiet", "--databases", "shop", "--source", &server.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    server.root(&["-e", "INSERT INTO shop.ev VALUES (2, '-01:02:03.456', '2024-02-02 12:00:00.25')"]).unwrap();
    let out = cdc_cmd(&["capture", "--quiet", "--source", &server.url()], &run).output().unwrap();
    let e = stderr(&out);
    assert!(!out.status.success() && e.contains("table shop.ev, column at (time(3)") && e.contains("before MariaDB 10.1.2"), "{e}");
}
