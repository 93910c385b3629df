//! Errors a user meets, checked as the user sees them: one clear line, non-zero exit, no
//! password printed. Connection refused, wrong password, missing privileges (naming the
//! privilege and the mode that avoids it), a table dropped between runs, bad flags.

use crate::common;

use std::process::Command;

use common::*;
use mysql::prelude::Queryable;

fn export_as(url: &str, out: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["export", "--quiet", "--source", url, "--out"])
        .arg(out)
        .args(args)
        .env_remove("MYSQL_PWD")
        .env("HOME", out) // no ~/.my.cnf
        .output()
        .unwrap()
}

fn port() -> String {
    mysql_url().rsplit(':').next().unwrap().to_string()
}

#[test]
fn connection_refused_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = export_as("mysql://someone:hunter2@127.0.0.1:1", dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot connect to mysql://someone@127.0.0.1:1: connection refused"), "{err}");
    assert!(!err.contains("hunter2"), "password printed: {err}");
}

#[test]
fn a_wrong_password_says_access_denied_and_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mysql://m2d:not-the-password@127.0.0.1:{}", port());
    let out = export_as(&url, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("access denied"), "{err}");
    assert!(!err.contains("not-the-password"), "password printed: {err}");
}

#[test]
fn missing_privileges_are_named_with_the_mode_that_avoids_them() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "privileges");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq FROM seq_1_to_50").unwrap();
    conn.query_drop("DROP USER IF EXISTS 'reader'@'%'").unwrap();
    conn.query_drop("CREATE USER 'reader'@'%' IDENTIFIED BY 'reader-pw'").unwrap();
    conn.query_drop(format!("GRANT SELECT ON `{db}`.* TO 'reader'@'%'")).unwrap();
    let url = format!("mysql://reader:reader-pw@127.0.0.1:{}", port());
    let dir = tempfile::tempdir().unwrap();

    // auto tries every mode and names what each lacks, and the ways out.
    let out = export_as(&url, dir.path(), &["--databases", &db]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no consistency mode is allowed for user reader"), "{err}");
    assert!(err.contains("needs LOCK TABLES") && err.contains("needs RELOAD") && err.contains("needs BINLOG MONITOR"), "{err}");
    assert!(err.contains("--watermark-schema") && err.contains("--consistency none"), "{err}");

    let out = export_as(&url, dir.path(), &["--databases", &db, "--consistency", "lock"]);
    let err = stderr(&out);
    assert!(err.contains("FLUSH TABLES WITH READ LOCK needs the RELOAD privilege") && err.contains("--consistency lock-tables"), "{err}");

    let out = export_as(&url, dir.path(), &["--databases", &db, "--consistency", "no-lock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("needs the BINLOG MONITOR (REPLICATION CLIENT) privilege"), "{}", stderr(&out));

    // With the binlog readable, no-lock works and says what it guarantees.
    conn.query_drop("GRANT BINLOG MONITOR ON *.* TO 'reader'@'%'").unwrap();
    let out = export_as(&url, dir.path(), &["--databases", &db, "--consistency", "no-lock", "--threads", "2"]);
    assert_ok(&out);
    let m = manifest(dir.path());
    assert_eq!(m.snapshots[0].guarantee, "replay-from");
    assert!(m.replay_from.is_some());
    assert_eq!(entry(&m, &db, "t").chunks.iter().map(|c| c.rows).sum::<u64>(), 50);
    let text = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    assert!(!text.contains("reader-pw"), "no password in the manifest");
}

#[test]
fn a_table_dropped_before_the_rerun_is_named() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "dropped");
    conn.query_drop("CREATE TABLE gone (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("INSERT INTO gone SELECT seq FROM seq_1_to_100").unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&export(dir.path(), &["--databases", &db]));
    // Make the run unfinished, as if killed, then drop the table.
    let mut m = manifest(dir.path());
    m.tables[0].chunks[0].state = mysql2ddb::manifest::ChunkState::Pending;
    m.store(dir.path()).unwrap();
    conn.query_drop("CREATE TABLE other (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("DROP TABLE gone").unwrap();
    let out = export(dir.path(), &["--databases", &db]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("table {db}.gone was dropped")), "{}", stderr(&out));
}

#[test]
fn bad_usage_exits_2_and_help_lists_the_options() {
    let out = Command::new(bin()).args(["export", "--out", "x"]).env_remove("M2D_SOURCE").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no source: give --source"), "{}", stderr(&out));

    let out = Command::new(bin()).args(["export", "--format", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let help = Command::new(bin()).args(["export", "--help"]).output().unwrap();
    let text = String::from_utf8(help.stdout).unwrap();
    for flag in ["--source", "--out", "--format", "--threads", "--chunk-rows", "--consistency", "--zero-date", "--restart", "--job"] {
        assert!(text.contains(flag), "--help mentions {flag}");
    }
}

#[test]
fn a_job_file_drives_the_export_and_flags_override_it() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "jobfile");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq FROM seq_1_to_30").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[source]\nurl = \"{}\"\n\n[export]\nout = \"{}\"\nformat = \"csv\"\ndatabases = [\"{db}\"]\nthreads = 2\n",
            mysql_url(),
            run.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin()).args(["export", "--quiet", "--job"]).arg(&job).output().unwrap();
    assert_ok(&out);
    let m = manifest(&run);
    assert_eq!(m.options.format, mysql2ddb::manifest::ChunkFormat::Csv);
    assert_eq!(m.tables.len(), 1);
}

#[test]
fn disk_full_names_the_file_and_a_rerun_with_space_resumes() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "diskfull");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(100))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000").unwrap();
    conn.query_drop("ANALYZE TABLE t").unwrap();
    // A 512 KiB tmpfs holds the first chunks of the ~2 MB CSV export, then fills up.
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"]).arg(dir.path()).status();
    assert!(mounted.is_ok_and(|s| s.success()), "mounting a small tmpfs needs root, as `make test` runs");
    let run = dir.path().join("run");
    let args = ["--databases", &db, "--format", "csv", "--chunk-rows", "2000", "--threads", "1"];
    let out = export(&run, &args);
    let m = manifest(&run);
    // Keep what the full disk holds, as if space were freed, then resume from it.
    let moved = tempfile::tempdir().unwrap();
    let copied = Command::new("cp").arg("-a").arg(&run).arg(moved.path()).status().unwrap();
    let _ = Command::new("umount").arg(dir.path()).status();
    assert!(copied.success());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("disk full writing"), "{err}");
    assert!(err.contains(&format!("table {db}.t")), "{err}");
    assert!(!m.complete, "nothing partial is taken for complete");
    let kept = m.tables[0].chunks.iter().filter(|c| c.state == mysql2ddb::manifest::ChunkState::Complete).count();
    assert!(kept >= 1, "some chunks fit before the disk filled");

    let resumed = moved.path().join("run");
    assert_ok(&export(&resumed, &args));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(resumed.join("export-report.json")).unwrap()).unwrap();
    assert_eq!(r["chunks_kept"].as_u64().unwrap() as usize, kept);
    let m = manifest(&resumed);
    let e = entry(&m, &db, "t");
    assert_eq!(csv_rows(&resumed, e), mysql_rows(&mut conn, &db, "t", &kinds(e)));
}

#[test]
fn the_password_can_come_from_mysql_pwd_and_is_not_written_anywhere() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "mysql_pwd");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq FROM seq_1_to_10").unwrap();
    let url = mysql_url();
    let (without_pw, pw) = {
        let rest = url.strip_prefix("mysql://").unwrap();
        let (cred, host) = rest.split_once('@').unwrap();
        let (user, pw) = cred.split_once(':').unwrap();
        (format!("mysql://{user}@{host}"), pw.to_string())
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["export", "--source", &without_pw, "--databases", &db, "--out"])
        .arg(dir.path())
        .env("MYSQL_PWD", &pw)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(!stderr(&out).contains(&pw), "password in the log");
    for f in ["manifest.json", "export-report.json"] {
        assert!(!std::fs::read_to_string(dir.path().join(f)).unwrap().contains(&pw), "password in {f}");
    }
}
