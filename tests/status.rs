//! `mysql2ddb status --from RUN`: one view of every stage, read from the run folder while the
//! stages run, checked against what the servers say (rows counted by MariaDB, items scanned
//! from DynamoDB, changes made by the test).

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cdc::{apply_with, cdc_cmd, ok, verify_against_source_with};
use common::ddb::{drop_table, dynalite, import, scan};
use common::{assert_ok, bin, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;
use serde_json::Value;

fn status(run: &Path) -> Value {
    let out = Command::new(bin()).args(["status", "--json", "--from"]).arg(run).output().unwrap();
    assert!(out.status.success(), "status: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn status_text(run: &Path) -> String {
    let out = Command::new(bin()).args(["status", "--from"]).arg(run).output().unwrap();
    assert!(out.status.success(), "status: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_shows_every_stage_as_the_servers_see_it_and_who_is_running() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "run_status");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_500").unwrap();
    let run = tempfile::tempdir().unwrap();
    let before = status(run.path());
    assert!(before["export"].is_null() && before["import"].is_null() && before["capture"].is_null(), "{before}");
    assert!(status_text(run.path()).contains("export:  not started"));

    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "120"]));
    let count: u64 = conn.query_first(format!("SELECT COUNT(*) FROM `{db}`.t")).unwrap().unwrap();
    let s = status(run.path());
    assert_eq!(s["export"]["complete"], true);
    assert_eq!(s["export"]["rows"], count);
    assert_eq!(s["export"]["chunks_done"], s["export"]["chunks"]);
    assert!(s["export"]["chunks"].as_u64().unwrap() >= 4, "{s}");

    let table = format!("{db}_t");
    drop_table(&dynalite(), &table);
    assert_ok(&import(run.path(), &dynalite(), &["--create-tables"]));
    let s = status(run.path());
    let t = &s["import"]["tables"][0];
    assert_eq!(t["table"], table.as_str());
    assert_eq!(t["items"], scan(&dynalite(), &table).len() as u64);
    assert_eq!((t["done"].clone(), s["import"]["done"].clone()), (Value::Bool(true), Value::Bool(true)));
    assert_eq!(t["buckets_written"], t["buckets"]);

    // A following capture is shown running, with its pid.
    let mut capture = cdc_cmd(&["capture", "--quiet", "--follow"], run.path()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let s = status(run.path());
        if let Some(r) = s["running"].as_array().and_then(|r| r.iter().find(|r| r["stage"] == "cdc capture")) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "capture never shown running: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(running["holder"].as_str().unwrap().contains(&format!("pid {}", capture.id())), "{running}");
    conn.query_drop(format!("INSERT INTO `{db}`.t SELECT seq, 'new' FROM seq_1001_to_1030")).unwrap();
    conn.query_drop(format!("UPDATE `{db}`.t SET v = 'changed' WHERE id <= 10")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(run.path())["capture"]["changes"].as_u64().unwrap_or(0) < 40 {
        assert!(Instant::now() < deadline, "capture staged too little: {}", status(run.path()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = capture.kill();
    let _ = capture.wait();
    let s = status(run.path());
    assert!(s["running"].as_array().unwrap().is_empty(), "the killed capture's lock is gone: {s}");
    assert_eq!(s["capture"]["changes"], 40);
    assert!(s["apply"].is_null(), "nothing applied yet");

    ok(&apply_with(run.path(), &dynalite(), &[]), "apply");
    let s = status(run.path());
    assert_eq!((s["apply"]["changes"].clone(), s["apply"]["behind_changes"].clone(), s["apply"]["rejected"].clone()), (Value::from(40), Value::from(0), Value::from(0)));
    let v = verify_against_source_with(run.path(), &dynalite(), &[]);
    assert!(v.status.success(), "{}", stderr(&v));
    let s = status(run.path());
    assert_eq!((s["verify"]["differences"].clone(), s["verify"]["tables"].clone()), (Value::from(0), Value::from(1)));
    let text = status_text(run.path());
    for line in ["export:  complete: 1 tables, 500 rows", "— done", "capture: at ", "(40 changes", "apply:   at ", "0 behind", "verify:  0 differences in 1 tables"] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
}
