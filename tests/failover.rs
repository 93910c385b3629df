//! Failover: two MariaDB servers of the test's own in GTID replication (`log_slave_updates`), as
//! an RDS Multi-AZ pair or an Aurora cluster is. The workload and a ledger writer (ids 1, 2, …,
//! insert only) run on the primary; export and import, then capture follows the primary and is
//! killed with SIGKILL at random moments. Writes stop, the replica catches up and is promoted,
//! the old primary is gone; the writers go on against the new primary, and `cdc capture --source
//! <new primary>` resumes by GTID (its files are other files of the same names), killed again
//! at random moments. After apply, `verify --against-source <new primary>` finds 0
//! differences, and every ledger id is in exactly one of the export and the captured inserts:
//! nothing missed, nothing captured twice. And an export from a (read-only) replica is captured
//! from the primary by GTID.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cdc::{apply, automatic_mapping, cdc_cmd, ok, seed_tables, workload};
use common::ddb::{drop_table, dynalite, import};
use common::servers::PrivateServer;
use common::{bin, stderr};
use mysql::prelude::Queryable;

/// Inserts ledger rows with ids from `next` on, one every few milliseconds, until `stop`.
fn ledger(url: String, db: String, next: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = common::connect_to(&url);
        while !stop.load(Ordering::Relaxed) {
            let id = next.load(Ordering::Relaxed);
            c.exec_drop(format!("INSERT INTO `{db}`.ledger VALUES (?, CONCAT('n', ?))"), (id, id)).unwrap();
            next.store(id + 1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(3));
        }
    })
}

struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn writers(url: &str, db: &str, next: &Arc<AtomicU64>, done: &Arc<AtomicU64>) -> Writers {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = vec![workload(url.to_string(), db.into(), stop.clone(), done.clone()), ledger(url.to_string(), db.into(), next.clone(), stop.clone())];
    Writers { stop, threads }
}

impl Writers {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

fn capture_from(run: &Path, url: &str, follow: bool) -> Command {
    let mut args = vec!["capture", "--quiet", "--source", url];
    if follow {
        args.push("--follow");
    }
    cdc_cmd(&args, run)
}

/// `cdc capture --follow --source url`, killed with SIGKILL after a random moment.
fn capture_killed(run: &Path, url: &str) {
    let mut child = capture_from(run, url, true).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(fastrand::u64(50..1200)));
    child.kill().unwrap();
    child.wait().unwrap();
}

fn verify_against(run: &Path, url: &str, mapping: &Path) -> Output {
    common::cdc::verify_against_url(url, run, &dynalite(), &["--mapping", mapping.to_str().unwrap()])
}

/// A primary (server id 1) with the workload's tables and a ledger in database `db` (its name
/// also names the DynamoDB tables, so tests running at once keep apart), and a
/// GTID replica (server id 2, `replica_args`) whose binlog has a history of its own (its files are
/// other files: two fresh servers would write byte-identical binlogs and hide that); the
/// DynamoDB tables dropped. Returns them with a folder, the run and the mapping in it.
fn pair(db: &str, replica_args: &[String]) -> (PrivateServer, PrivateServer, tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let primary = PrivateServer::start(1, &[]);
    let replica = PrivateServer::start(2, replica_args);
    replica.root(&["-e", "FLUSH BINARY LOGS; FLUSH BINARY LOGS"]).unwrap();
    replica.replicate_from(&primary);
    let mut c = primary.conn();
    c.query_drop(format!("CREATE DATABASE `{db}`")).unwrap();
    c.query_drop(format!("USE `{db}`")).unwrap();
    seed_tables(&mut c);
    c.query_drop("CREATE TABLE ledger (id BIGINT PRIMARY KEY, note VARCHAR(20) NOT NULL)").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (run, mapping) = (dir.path().join("run"), automatic_mapping(dir.path(), db));
    for t in ["purchase", "big", "ledger"] {
        drop_table(&dynalite(), &format!("{db}_{t}"));
    }
    (primary, replica, dir, run, mapping)
}

/// The ledger ids of every captured insert, in segment order.
fn captured_ledger_inserts(run: &Path, ledger_table: usize) -> Vec<u64> {
    let mut files: Vec<_> = std::fs::read_dir(run.join("cdc/segments")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut ids = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let c: serde_json::Value = serde_json::from_str(line).unwrap();
            if c["table"] == ledger_table && c["op"] == "insert" {
                ids.push(c["after"][0]["n"].as_str().unwrap().parse().unwrap());
            }
        }
    }
    ids
}

#[test]
fn capture_resumes_by_gtid_on_the_promoted_replica_when_killed_around_the_switch() {
    let db = "failover";
    let (primary, replica, _dir, run, mapping) = pair(db, &[]);
    let (next, done) = (Arc::new(AtomicU64::new(1)), Arc::new(AtomicU64::new(0)));

    let on_primary = writers(&primary.url(), db, &next, &done);
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", db, "--threads", "2", "--source", &primary.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "export: {}", stderr(&out));
    ok(&import(&run, &dynalite(), &["--mapping", mapping.to_str().unwrap(), "--create-tables", "--wcu", "0"]), "import");
    for _ in 0..4 {
        capture_killed(&run, &primary.url());
    }
    // The switch: writes stop, the replica catches up, is promoted; the old primary is gone.
    on_primary.stop();
    replica.catch_up_with(&primary);
    capture_killed(&run, &primary.url());
    let old_identity = primary.root(&["-e", "SELECT @@server_id"]).unwrap();
    drop(primary);
    replica.promote();
    let on_replica = writers(&replica.url(), db, &next, &done);
    for _ in 0..8 {
        capture_killed(&run, &replica.url());
    }
    on_replica.stop();
    assert!(done.load(Ordering::Relaxed) > 200, "the workload ran");
    ok(&capture_from(&run, &replica.url(), false).output().unwrap(), "capture from the promoted replica");
    let cap: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("cdc/capture.json")).unwrap()).unwrap();
    assert_eq!(cap["server"], "server_id=2", "positions now belong to the new primary (old: {old_identity})");
    assert!(cap["next"]["gtid"].as_str().unwrap().contains("0-2-"), "the GTID set moved on with the new primary's transactions: {cap}");
    ok(&apply(&run, &mapping), "apply");

    let out = verify_against(&run, &replica.url(), &mapping);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.contains("\n0 differences"), "verify against the new primary: {text}{}", stderr(&out));

    let m = common::manifest(&run);
    let ledger_index = m.tables.iter().position(|t| t.schema.table == "ledger").unwrap();
    let exported: Vec<u64> = common::parquet_rows(&run, &m.tables[ledger_index]).iter().map(|r| r[0].parse().unwrap()).collect();
    let captured = captured_ledger_inserts(&run, ledger_index);
    let mut all: Vec<u64> = exported.iter().chain(captured.iter()).copied().collect();
    all.sort_unstable();
    let written = next.load(Ordering::Relaxed) - 1;
    assert!(!captured.is_empty() && !exported.is_empty(), "ids both exported ({}) and captured ({})", exported.len(), captured.len());
    assert_eq!(all, (1..=written).collect::<Vec<_>>(), "every ledger id once: exported or captured, never both, never twice");
}

/// Export from a replica (its own position and GTID set), capture from the primary: the
/// replica's offsets mean nothing there, so capture starts by GTID; the target equals the
/// primary.
#[test]
fn an_export_from_a_replica_is_captured_from_the_primary_by_gtid() {
    let db = "from_replica";
    let (primary, replica, dir, run, mapping) = pair(db, &["--read-only=ON".to_string()]);
    let (next, done) = (Arc::new(AtomicU64::new(1)), Arc::new(AtomicU64::new(0)));
    let on_primary = writers(&primary.url(), db, &next, &done);
    std::thread::sleep(Duration::from_millis(300));
    replica.catch_up_with(&primary);
    // Stall-free would write its watermark on the replica: refused there, with the way out.
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", db, "--consistency", "stall-free", "--watermark-schema", db, "--source", &replica.url(), "--out"]).arg(dir.path().join("refused")).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("read-only (a replica?)"), "{}", stderr(&out));
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", db, "--source", &replica.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "export from the replica: {}", stderr(&out));
    let m = common::manifest(&run);
    assert_eq!(m.snapshots[0].server.as_deref(), Some("server_id=2"));
    ok(&import(&run, &dynalite(), &["--mapping", mapping.to_str().unwrap(), "--create-tables", "--wcu", "0"]), "import");
    std::thread::sleep(Duration::from_millis(500));
    on_primary.stop();
    ok(&capture_from(&run, &primary.url(), false).output().unwrap(), "capture from the primary");
    ok(&apply(&run, &mapping), "apply");
    let out = verify_against(&run, &primary.url(), &mapping);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.contains("\n0 differences"), "verify against the primary: {text}{}", stderr(&out));
}

/// Regression: an export resumed on another server (after a failover) took the replay position
/// with the lowest file name among its snapshots; the promoted replica's files sort lower than
/// the old primary's, so replay started after the changes made between the two snapshots. Now
/// positions of two servers are ordered by GTID set. And stall-free was refused on a replica only
/// when read_only was on: a writable replica is refused too.
#[test]
fn an_export_resumed_on_the_promoted_replica_replays_from_the_old_primary_s_position() {
    let db = "resumed_on_replica";
    let (primary, replica, dir, run, _) = pair(db, &[]);
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", db, "--consistency", "stall-free", "--watermark-schema", db, "--source", &replica.url(), "--out"]).arg(dir.path().join("refused")).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("the server is a replica"), "{}", stderr(&out));
    // The primary's binlog files are further on than the replica's.
    primary.root(&["-e", "FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS"]).unwrap();
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", db, "--source", &primary.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // As if the export had been killed before the purchase table's chunks.
    let path = run.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for t in m["tables"].as_array_mut().unwrap() {
        if t["table"] == "purchase" {
            assert!(!t["chunks"].as_array().unwrap().is_empty());
            for c in t["chunks"].as_array_mut().unwrap() {
                c["state"] = "pending".into();
                c["snapshot"] = serde_json::Value::Null;
            }
        }
    }
    m["complete"] = false.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    primary.conn().query_drop(format!("INSERT INTO `{db}`.ledger VALUES (1, 'between')")).unwrap();
    replica.catch_up_with(&primary);
    let out = Command::new(bin()).args(["export", "--databases", db, "--source", &replica.url(), "--out"]).arg(&run).env("M2D_LOG", "info").output().unwrap();
    assert!(out.status.success(), "the export resumed on the replica: {}", stderr(&out));
    let m = common::manifest(&run);
    assert_eq!(m.snapshots.len(), 2, "{}", stderr(&out));
    assert_eq!((m.snapshots[0].server.as_deref(), m.snapshots[1].server.as_deref()), (Some("server_id=1"), Some("server_id=2")));
    let (first, second) = (m.snapshots[0].binlog.clone().unwrap(), m.snapshots[1].binlog.clone().unwrap());
    assert!(second.file < first.file, "the replica's file sorts lower: {second:?} {first:?}");
    assert_eq!(m.replay_from, Some(first), "replay starts at the old primary's snapshot, the earlier by GTID");
}

/// Regression: a GTID resume on another server checked nothing. A replica promoted while behind
/// was resumed on (what capture had read there is missing, and would come back later as new),
/// and a server that purged what capture still needs gave a raw stream error naming the old
/// server's file. Now the first is refused, and the second says to export again and how to keep
/// binary logs longer.
#[test]
fn a_gtid_resume_is_refused_on_a_server_that_is_behind_or_purged_what_capture_needs() {
    let db = "resume_checks";
    let (primary, replica, _dir, run, _) = pair(db, &[]);
    replica.catch_up_with(&primary);
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", db, "--source", &primary.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The replica falls behind; capture reads the primary's newer transactions.
    replica.root(&["-e", "STOP SLAVE"]).unwrap();
    primary.conn().query_drop(format!("INSERT INTO `{db}`.ledger VALUES (1, 'a'), (2, 'b')")).unwrap();
    ok(&capture_from(&run, &primary.url(), false).output().unwrap(), "capture from the primary");
    let out = capture_from(&run, &replica.url(), false).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("has not executed every transaction capture has read"), "{}", stderr(&out));
    // Caught up, it is fine.
    replica.root(&["-e", "START SLAVE"]).unwrap();
    replica.catch_up_with(&primary);
    ok(&capture_from(&run, &replica.url(), false).output().unwrap(), "capture from the caught-up replica");
    // New writes reach the replica, which then purges the binlog files that hold them.
    primary.conn().query_drop(format!("INSERT INTO `{db}`.ledger VALUES (3, 'c')")).unwrap();
    replica.catch_up_with(&primary);
    replica.root(&["-e", "FLUSH BINARY LOGS; FLUSH BINARY LOGS"]).unwrap();
    let files = replica.root(&["-N", "-e", "SHOW BINARY LOGS"]).unwrap();
    let last = files.lines().last().unwrap().split_whitespace().next().unwrap().to_string();
    // The server purges a file only once its binlog checkpoint has moved past it.
    for _ in 0..50 {
        replica.root(&["-e", &format!("PURGE BINARY LOGS TO '{last}'")]).unwrap();
        if replica.root(&["-N", "-e", "SHOW BINARY LOGS"]).unwrap().lines().count() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(replica.root(&["-N", "-e", "SHOW BINARY LOGS"]).unwrap().lines().count(), 1, "the replica purged its older files");
    let out = capture_from(&run, &replica.url(), false).output().unwrap();
    let e = stderr(&out);
    assert!(!out.status.success() && e.contains("purged transactions capture has not read yet") && e.contains("Export again"), "{e}");
}

/// Regression: cutover compared capture's position with the cutover source's by file name. After
/// a failover, capture standing at the old primary's position (nothing read on the new one yet)
/// looked further on than the new primary, whose files sort lower, and cutover went on while the
/// new primary had a change capture had not read. Positions of two servers now compare by GTID
/// set: cutover waits for capture to read it there.
#[test]
fn cutover_on_the_new_primary_waits_for_its_changes_by_gtid_set() {
    let db = "cutover_failover";
    let (primary, replica, _dir, run, mapping) = pair(db, &[]);
    primary.root(&["-e", "FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS"]).unwrap();
    replica.catch_up_with(&primary);
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", db, "--source", &primary.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&import(&run, &dynalite(), &["--mapping", mapping.to_str().unwrap(), "--create-tables", "--wcu", "0"]), "import");
    ok(&capture_from(&run, &primary.url(), false).output().unwrap(), "capture from the primary");
    ok(&apply(&run, &mapping), "apply");
    replica.catch_up_with(&primary);
    replica.promote();
    replica.conn().query_drop(format!("INSERT INTO `{db}`.ledger VALUES (1, 'after')")).unwrap();
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("cdc/capture.json")).unwrap()).unwrap();
    let theirs = replica.root(&["-N", "-e", "SHOW MASTER STATUS"]).unwrap();
    assert!(theirs.split_whitespace().next().unwrap() < state["next"]["file"].as_str().unwrap(), "the new primary's file sorts lower: {theirs} vs {state}");
    let cutover = |timeout: &str| cdc_cmd(&["cutover", "--source", &replica.url(), "--max-lag", "30s", "--quiet-period", "1s", "--timeout", timeout], &run).output().unwrap();
    let out = cutover("6");
    assert!(!out.status.success() && stderr(&out).contains("capture to reach the source's position"), "cutover must wait for the new primary's change: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    ok(&capture_from(&run, &replica.url(), false).output().unwrap(), "capture from the new primary");
    ok(&apply(&run, &mapping), "apply");
    ok(&cutover("60"), "cutover once the change is captured and applied");
}
