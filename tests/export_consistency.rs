//! Consistency: a writer commits transactions while the export runs. Each transaction moves
//! money between two accounts (the total never changes), appends an event and bumps a counter,
//! then the writer notes the binlog position after its commit. The export must equal the
//! database as of the position recorded in the manifest: exactly the transactions committed at
//! or before it, across every table and every parallel chunk; under the global lock and under
//! LOCK TABLES on the exported tables. Stall-free must hold at least every transaction before it.
//! (Alone in its test binary so no other test writes to the binlog meanwhile.)

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use mysql::prelude::Queryable;

const ACCOUNTS: u64 = 20_000;

#[test]
#[ignore = "needs the server to itself (global settings, a quiet binlog): `make test` runs it alone"]
fn export_equals_the_database_at_the_recorded_binlog_position() {
    exported_under_writes("lock", &[]);
}

/// LOCK TABLES … READ on the exported tables only (what a managed server's user may do) is as
/// point-in-time as the global lock.
#[test]
#[ignore = "needs the server to itself (global settings, a quiet binlog): `make test` runs it alone"]
fn lock_tables_export_equals_the_database_at_the_recorded_binlog_position() {
    exported_under_writes("lock-tables", &[]);
}

/// Stall-free holds no lock and no long snapshot; what it proves is that no transaction
/// committed before the recorded position is missing from the chunks (later ones may be there:
/// the catch-up replays them).
#[test]
#[ignore = "needs the server to itself (global settings, a quiet binlog): `make test` runs it alone"]
fn stall_free_export_holds_every_transaction_before_the_recorded_position() {
    conn_drop("CREATE DATABASE IF NOT EXISTS it_m2d_meta");
    exported_under_writes("stall-free", &["--watermark-schema", "it_m2d_meta"]);
}

fn conn_drop(sql: &str) {
    connect().query_drop(sql).unwrap();
}

fn exported_under_writes(mode: &str, extra: &[&str]) {
    let mut conn = connect();
    let db = fresh_db(&mut conn, &format!("consistency_{}", mode.replace('-', "_")));
    conn.query_drop("CREATE TABLE acct (id INT PRIMARY KEY, balance BIGINT NOT NULL)").unwrap();
    conn.query_drop("CREATE TABLE events (seq INT PRIMARY KEY, note VARCHAR(40))").unwrap();
    conn.query_drop("CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL)").unwrap();
    conn.query_drop(format!("INSERT INTO acct SELECT seq, 100 FROM seq_1_to_{ACCOUNTS}")).unwrap();
    conn.query_drop("INSERT INTO counter VALUES (1, 0)").unwrap();
    conn.query_drop("ANALYZE TABLE acct").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, committed, db) = (stop.clone(), committed.clone(), db.clone());
        std::thread::spawn(move || {
            let mut w = connect();
            w.query_drop(format!("USE `{db}`")).unwrap();
            let mut positions: Vec<(u64, (String, u64))> = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 100_000 {
                i += 1;
                let (a, b) = (1 + (i * 7919) % ACCOUNTS, 1 + (i * 104_729) % ACCOUNTS);
                w.query_drop("START TRANSACTION").unwrap();
                w.exec_drop("UPDATE acct SET balance = balance - 7 WHERE id = ?", (a,)).unwrap();
                w.exec_drop("UPDATE acct SET balance = balance + 7 WHERE id = ?", (b,)).unwrap();
                w.exec_drop("INSERT INTO events VALUES (?, CONCAT('move ', ?))", (i, i)).unwrap();
                w.exec_drop("UPDATE counter SET n = ? WHERE id = 1", (i,)).unwrap();
                w.query_drop("COMMIT").unwrap();
                let row: mysql::Row = w.query_first("SHOW MASTER STATUS").unwrap().unwrap();
                positions.push((i, (row.get(0).unwrap(), row.get(1).unwrap())));
                committed.store(i, Ordering::Relaxed);
            }
            positions
        })
    };
    while committed.load(Ordering::Relaxed) < 200 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let run = tempfile::tempdir().unwrap();
    let out = export(run.path(), &[&["--databases", &db, "--threads", "4", "--chunk-rows", "1500", "--consistency", mode][..], extra].concat());
    let at_export_end = committed.load(Ordering::Relaxed);
    while committed.load(Ordering::Relaxed) < at_export_end + 100 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let positions = writer.join().unwrap();
    assert_ok(&out);

    let m = manifest(run.path());
    let stall_free = mode == "stall-free";
    assert_eq!(m.snapshots[0].guarantee, if stall_free { "replay-from" } else { "point-in-time" });
    let p = m.replay_from.clone().expect("binlog position recorded");
    let before = |f: &String, pos: u64| (f.as_str(), pos) <= (p.file.as_str(), p.position);
    let k = positions.iter().filter(|(_, (f, pos))| before(f, *pos)).count() as u64;
    assert!(k >= 200 && k < positions.len() as u64, "snapshot taken while the writer ran (k = {k})");

    let acct = parquet_rows(run.path(), entry(&m, &db, "acct"));
    assert!(entry(&m, &db, "acct").chunks.len() >= 10, "read by several chunks in parallel");
    if stall_free {
        let counter: u64 = parquet_rows(run.path(), entry(&m, &db, "counter"))[0][1].parse().unwrap();
        assert!(counter >= k, "the counter read after the barrier holds every transaction before the position ({counter} < {k})");
        let events: std::collections::BTreeSet<u64> = parquet_rows(run.path(), entry(&m, &db, "events")).iter().map(|r| r[0].parse().unwrap()).collect();
        let missing: Vec<u64> = (1..=k).filter(|i| !events.contains(i)).collect();
        assert!(missing.is_empty(), "events committed before the position are missing: {missing:?}");
        return;
    }
    let total: i64 = acct.iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert_eq!(total, 100 * ACCOUNTS as i64, "money is conserved across parallel chunks");
    let counter = parquet_rows(run.path(), entry(&m, &db, "counter"));
    assert_eq!(counter[0][1], k.to_string(), "counter equals transactions committed before the position");
    let mut events: Vec<u64> =
        parquet_rows(run.path(), entry(&m, &db, "events")).iter().map(|r| r[0].parse().unwrap()).collect();
    events.sort();
    assert_eq!(events, (1..=k).collect::<Vec<_>>(), "exactly the events committed before the position");

    // Replaying the writer's first k transactions on the initial state gives the exported balances.
    let mut balances = vec![100i64; ACCOUNTS as usize + 1];
    for i in 1..=k {
        let (a, b) = (1 + (i * 7919) % ACCOUNTS, 1 + (i * 104_729) % ACCOUNTS);
        balances[a as usize] -= 7;
        balances[b as usize] += 7;
    }
    for r in &acct {
        let id: usize = r[0].parse().unwrap();
        assert_eq!(r[1], balances[id].to_string(), "balance of account {id}");
    }
}

/// Regression: stall-free's proof is the watermark's commit read back from the binlog, and a
/// binlog filter (`binlog_ignore_db`, `binlog_do_db`) that leaves its schema or an exported
/// schema out was not looked at. Now the export is refused, naming the schema and the filter.
#[test]
fn stall_free_is_refused_when_a_binlog_filter_leaves_a_schema_out() {
    let server = common::servers::PrivateServer::start(43, &["--binlog-ignore-db=wm".to_string()]);
    server.root(&["-e", "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1); CREATE DATABASE wm; CREATE DATABASE other"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let export_with = |watermark: &str, out: &str| {
        std::process::Command::new(bin())
            .args(["export", "--quiet", "--databases", "shop", "--consistency", "stall-free", "--watermark-schema", watermark, "--source", &server.url(), "--out"])
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let out = export_with("wm", "ignored");
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("leaves out schema `wm`") && stderr(&out).contains("binlog_ignore_db: wm"), "{}", stderr(&out));
    let out = export_with("other", "logged");
    assert!(out.status.success(), "a watermark schema the binlog logs: {}", stderr(&out));
}
