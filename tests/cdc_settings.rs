//! The server-settings check before capture, against the real MariaDB: with the binlog in
//! STATEMENT format, capture refuses to start and says what to change. (A file of its own: it
//! changes a global setting, and test binaries run one at a time.)

mod common;

use std::process::Command;

use common::{assert_ok, bin, connect, export, fresh_db, mysql_url, stderr};
use mysql::prelude::Queryable;

/// Puts ROW back even when the test fails.
struct RowFormatAgain;

impl Drop for RowFormatAgain {
    fn drop(&mut self) {
        connect().query_drop("SET GLOBAL binlog_format = 'ROW'").unwrap();
    }
}

#[test]
fn statement_format_is_refused_with_the_fix() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "cdc_settings");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));

    let _restore = RowFormatAgain;
    conn.query_drop("SET GLOBAL binlog_format = 'STATEMENT'").unwrap();
    let out = Command::new(bin()).args(["cdc", "capture", "--quiet", "--source", &mysql_url(), "--from"]).arg(run.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("binlog_format is STATEMENT"), "{err}");
    assert!(err.contains("SET GLOBAL binlog_format = 'ROW'"), "the message says what to change: {err}");
    assert!(!err.contains("m2d-local-pass"), "no password in messages: {err}");
    assert!(!run.path().join("cdc/capture.json").exists(), "nothing was captured");
}
