//! Binlog retention against the migration's time, on a MariaDB of the test's own that keeps
//! binary logs two hours, then as Amazon RDS reports it (`mysql.rds_show_configuration`, made
//! here as a procedure with RDS's result shape): export warns, and `estimate --source` compares
//! the time from the snapshot plus the import at the slowest rate with the retention and prints
//! the exact command that raises it.

use crate::common;

use std::process::Command;

use common::cdc::automatic_mapping;
use common::servers::PrivateServer;
use common::{bin, stderr};

#[test]
fn estimate_compares_the_binlog_retention_with_the_migration_and_prints_the_fix() {
    let server = PrivateServer::start(21, &["--binlog-expire-logs-seconds=7200".to_string()]);
    server.root(&["-e", "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_5000"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (run, mapping) = (dir.path().join("run"), automatic_mapping(dir.path(), "shop"));
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", "shop", "--source", &server.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("binary logs are kept 2.0 h (binlog_expire_logs_seconds = 7200)"), "export warns: {}", stderr(&out));

    let estimate_as = |url: &str, wcu: &str| {
        let out = Command::new(bin())
            .args(["estimate", "--quiet", "--wcu", wcu, "--source", url, "--mapping", mapping.to_str().unwrap(), "--from"])
            .arg(&run)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).lines().find(|l| l.starts_with("binlog retention:")).unwrap_or_default().to_string()
    };
    let estimate = |wcu: &str| estimate_as(&server.url(), wcu);
    // 5,000 items at 1 WCU/s: 1.4 h of import and the hour of margin, past the 2 h kept.
    let line = estimate("1");
    assert!(line.contains("binlog_expire_logs_seconds = 7200") && line.contains("TOO SHORT") && line.contains("SET GLOBAL binlog_expire_logs_seconds = 86400"), "{line}");
    assert!(estimate("10000").ends_with(": enough"), "at 10,000 WCU/s two hours are enough");

    // As RDS says it: NULL, the default, keeps nothing.
    server.root(&["-e", "CREATE PROCEDURE mysql.rds_show_configuration() SELECT 'binlog retention hours' AS name, NULL AS value, 'binlog retention hours specifies the duration in hours before binary logs are automatically deleted.' AS description"]).unwrap();
    let line = estimate("10000");
    assert!(line.contains("binlog retention hours is NULL") && line.contains("CALL mysql.rds_set_configuration('binlog retention hours', 24);"), "{line}");
    server.root(&["-e", "DROP PROCEDURE mysql.rds_show_configuration; CREATE PROCEDURE mysql.rds_show_configuration() SELECT 'binlog retention hours' AS name, '48' AS value, '' AS description"]).unwrap();
    let line = estimate("1");
    assert!(line.contains("binlog retention hours = 48") && line.ends_with(": enough"), "{line}");

    // A migration user without EXECUTE on the procedure still gets the estimate, warned that
    // the RDS setting it could not read is the one that applies there.
    server.root(&["-e", "CREATE USER 'migrator'@'%' IDENTIFIED BY 'pw'; GRANT SELECT, RELOAD, REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO 'migrator'@'%'"]).unwrap();
    let limited = format!("mysql://migrator:pw@127.0.0.1:{}", server.port);
    let line = estimate_as(&limited, "10000");
    assert!(line.contains("binlog_expire_logs_seconds = 7200") && line.contains("cannot be run by this user") && line.contains("binlog retention hours"), "{line}");
    // Without the procedure (any MariaDB): the same.
    server.root(&["-e", "DROP PROCEDURE mysql.rds_show_configuration"]).unwrap();
    let line = estimate_as(&limited, "1");
    assert!(line.contains("binlog_expire_logs_seconds = 7200") && line.contains("TOO SHORT"), "{line}");
}
