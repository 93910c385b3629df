//! Resume: the binary is killed with SIGKILL mid-export, then rerun with the same command. The
//! rerun keeps the chunks that were complete (their SHA-256 still matches), redoes the rest
//! under a new snapshot, and ends with exactly the table's rows. A chunk file altered on disk
//! is detected and redone; `--restart` discards everything; an incompatible rerun is refused.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mysql::prelude::Queryable;
use mysql2ddb::manifest::ChunkState;

fn report(run: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("export-report.json")).unwrap()).unwrap()
}

fn big_table(name: &str) -> (mysql::Conn, String) {
    let mut conn = connect();
    let db = fresh_db(&mut conn, name);
    conn.query_drop("CREATE TABLE big (id INT PRIMARY KEY, a VARCHAR(60), b DOUBLE, c DATETIME(6))").unwrap();
    conn.query_drop(
        "INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 40), seq / 3, '2024-01-01' + INTERVAL seq SECOND \
         FROM seq_1_to_600000",
    )
    .unwrap();
    conn.query_drop("ANALYZE TABLE big").unwrap();
    (conn, db)
}

#[test]
fn kill_9_mid_export_then_rerun_finishes_with_exactly_the_rows() {
    let (mut conn, db) = big_table("resume_kill");
    let run = tempfile::tempdir().unwrap();
    let args = ["--databases", &db, "--chunk-rows", "20000", "--threads", "1", "--format", "csv"];
    let mut child = Command::new(bin())
        .args(["export", "--quiet", "--source", &mysql_url(), "--out"])
        .arg(run.path())
        .args(args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some chunks are complete, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = mysql2ddb::manifest::Manifest::load(run.path())
            .ok()
            .flatten()
            .map(|m| m.tables.iter().flat_map(|t| &t.chunks).filter(|c| c.state == ChunkState::Complete).count())
            .unwrap_or(0);
        if done >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "export made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let before = manifest(run.path());
    let e = entry(&before, &db, "big");
    let complete = e.chunks.iter().filter(|c| c.state == ChunkState::Complete).count();
    assert!(complete < e.chunks.len(), "killed before the end ({complete}/{} chunks)", e.chunks.len());
    assert!(!before.complete);

    // Rerun the same command.
    assert_ok(&export(run.path(), &args));
    let after = manifest(run.path());
    assert!(after.complete);
    assert_eq!(after.snapshots.len(), 2, "the rerun recorded its own snapshot");
    let r = report(run.path());
    assert_eq!(r["chunks_kept"].as_u64().unwrap() as usize, complete, "complete chunks were kept, not redone");
    let e = entry(&after, &db, "big");
    for c in &e.chunks {
        let expected_snapshot = if before.tables[0].chunks[c.id as usize - 1].state == ChunkState::Complete { 0 } else { 1 };
        assert_eq!(c.snapshot, Some(expected_snapshot), "chunk {} read under the right snapshot", c.id);
    }
    assert_eq!(mysql_rows(&mut conn, &db, "big", &kinds(e)), csv_rows(run.path(), e), "exactly the table's rows");
    let leftovers: Vec<_> = walk(run.path()).into_iter().filter(|p| p.ends_with(".partial")).collect();
    assert!(leftovers.is_empty(), "no partial files remain: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn an_altered_chunk_file_is_redone_and_the_rest_kept() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "resume_tamper");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, seq FROM seq_1_to_5000").unwrap();
    conn.query_drop("ANALYZE TABLE t").unwrap();
    let run = tempfile::tempdir().unwrap();
    let args = ["--databases", &db, "--chunk-rows", "1000"];
    assert_ok(&export(run.path(), &args));
    let first = manifest(run.path());
    let chunks = entry(&first, &db, "t").chunks.clone();
    assert_eq!(chunks.len(), 5);

    // A rerun with nothing changed writes nothing.
    assert_ok(&export(run.path(), &args));
    assert_eq!(report(run.path())["chunks_written"], 0);

    // Same size, different content: caught by the checksum, not by the size.
    let victim = run.path().join(&chunks[2].file);
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    assert_ok(&export(run.path(), &args));
    let r = report(run.path());
    assert_eq!(r["chunks_written"], 1);
    assert_eq!(r["chunks_kept"], 4);
    let after = manifest(run.path());
    let e = entry(&after, &db, "t");
    assert_eq!(e.chunks[2].sha256, chunks[2].sha256, "the redone chunk has the original content again");
    assert_eq!(mysql_rows(&mut conn, &db, "t", &kinds(e)), parquet_rows(run.path(), e));
}

#[test]
fn an_incompatible_rerun_is_refused_and_restart_starts_over() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "resume_restart");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq FROM seq_1_to_100").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let out = export(run.path(), &["--databases", &db, "--format", "csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--restart"), "{}", stderr(&out));

    conn.query_drop("ALTER TABLE t ADD COLUMN extra INT").unwrap();
    let out = export(run.path(), &["--databases", &db]);
    assert!(stderr(&out).contains(&format!("table {db}.t changed since the first run")), "{}", stderr(&out));

    // Another selection into the same folder used to merge its tables into the old run.
    let other = fresh_db(&mut connect(), "resume_restart_other");
    connect().query_drop(format!("CREATE TABLE `{other}`.u (id INT PRIMARY KEY)")).unwrap();
    let out = export(run.path(), &["--databases", &other]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("holds an export of --databases {db}")) && stderr(&out).contains("--restart"), "{}", stderr(&out));
    assert!(manifest(run.path()).tables.iter().all(|t| t.schema.database == db), "nothing merged");

    assert_ok(&export(run.path(), &["--databases", &db, "--format", "csv", "--restart"]));
    let m = manifest(run.path());
    assert!(entry(&m, &db, "t").chunks[0].file.ends_with(".csv"));
    assert!(!walk(run.path()).iter().any(|p| p.ends_with(".parquet")), "old chunks discarded");
}
