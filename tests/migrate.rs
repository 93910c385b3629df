//! `mysql2ddb migrate --job job.toml`: the whole plan in one process, under writes and after
//! kill -9 at several points, ends with DynamoDB equal to the source (verify against the source,
//! after the changes made past "ready" are applied by the separate commands).

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cdc::{apply_with, capture, ok, seed_tables, verify_against_source_with, workload};
use common::ddb::{drop_table, dynalite};
use common::{bin, connect, free_port, fresh_db, mysql_url, scrape, services, stderr};
use mysql::prelude::Queryable;

fn job(dir: &Path, db: &str) -> std::path::PathBuf {
    let run = dir.join("run");
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nurl = \"{}\"\n\n[export]\nout = \"{}\"\ndatabases = [\"{db}\"]\nchunk_rows = 300\n\n[import]\ncreate_tables = true\nendpoint = \"{}\"\n",
            mysql_url(),
            run.display(),
            dynalite()
        ),
    )
    .unwrap();
    path
}

fn migrate(job: &Path, args: &[&str]) -> Command {
    let env = services();
    let mut cmd = Command::new(bin());
    cmd.args(["migrate", "--job"]).arg(job).args(args);
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        cmd.env(k, &env[k]);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true").env("AWS_ENDPOINT_URL_DYNAMODB", dynalite());
    cmd
}

#[test]
fn migrate_of_a_quiet_source_is_ready_without_waiting_for_changes() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "migrate_quiet");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, 'x' FROM seq_1_to_50").unwrap();
    drop_table(&dynalite(), &format!("{db}_t"));
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = until_ready(&job(dir.path(), &db));
    assert!(out.status.success() && stderr(&out).contains("ready for cutover: 0 differences"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(120), "ready took {:?}", started.elapsed());
}

fn until_ready(job: &Path) -> Output {
    migrate(job, &["--until-ready"]).output().unwrap()
}

/// After "ready", the changes made since are captured and applied by the separate commands,
/// then DynamoDB must equal the source.
fn converged(run: &Path) {
    ok(&capture(run), "capture");
    ok(&apply_with(run, &dynalite(), &[]), "apply");
    let v = verify_against_source_with(run, &dynalite(), &[]);
    assert!(v.status.success(), "verify against the source: {}{}", String::from_utf8_lossy(&v.stdout), stderr(&v));
}

#[test]
fn migrate_runs_the_whole_plan_under_writes_and_is_ready_for_cutover() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "migrate_once");
    seed_tables(&mut conn);
    for t in ["purchase", "big"] {
        drop_table(&dynalite(), &format!("{db}_{t}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &db);
    let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let writer = workload(mysql_url(), db.clone(), stop.clone(), done.clone());
    let addr = format!("127.0.0.1:{}", free_port());
    let child = migrate(&job, &["--until-ready", "--metrics-addr", &addr]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The writes go on through the export and the import, and stop before the sampled verify;
    // the metrics are read by prometheus_client meanwhile.
    let run = dir.path().join("run");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = None;
    while !run.join("import-report.json").exists() {
        assert!(Instant::now() < deadline, "the import never finished");
        let following = |m: &common::Samples| m.get(r#"m2d_stage_running{stage="cdc capture"}"#) == Some(&1.0) && m.get(r#"m2d_stage_done{stage="export"}"#) == Some(&1.0);
        if let Some(m) = scrape(&addr).filter(following) {
            seen = Some(m);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = seen.expect("migrate's metrics show the export done and capture following while the import runs");
    let exported: f64 = m.iter().filter(|(k, _)| k.starts_with("m2d_rows_exported_total{")).map(|(_, v)| v).sum();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("export-report.json")).unwrap()).unwrap();
    assert_eq!(exported, report["rows"].as_f64().unwrap(), "rows exported, as the export's report counts them");
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    let said = stderr(&out);
    for step in ["pre-flight", "export:", "import:", "ready for cutover: 0 differences"] {
        assert!(said.contains(step), "{step:?} in:\n{said}");
    }
    assert!(done.load(Ordering::Relaxed) > 0, "the workload wrote during the migration");
    converged(&dir.path().join("run"));
}

#[test]
fn migrate_killed_during_export_import_and_apply_continues_where_each_stage_stands() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "migrate_kills");
    seed_tables(&mut conn);
    conn.query_drop("INSERT INTO big SELECT 18446744073000000000 + seq, CONCAT('w', seq), seq FROM seq_1_to_30000").unwrap();
    for t in ["purchase", "big"] {
        drop_table(&dynalite(), &format!("{db}_{t}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let job = job(dir.path(), &db);
    // Kill points: once the export has written chunks, once the import has begun writing, and
    // once apply follows; the source changes after each.
    let kill_when = |what: &str, ready: &dyn Fn() -> bool| {
        let mut child = migrate(&job, &[]).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready() {
            assert!(child.try_wait().unwrap().is_none(), "migrate ended before {what}");
            assert!(Instant::now() < deadline, "never reached {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    kill_when("export chunks", &|| std::fs::read_dir(run.join(format!("data/{db}/big"))).is_ok_and(|d| d.count() >= 3));
    conn.query_drop("UPDATE big SET v = 'after-first-kill' WHERE id % 7 = 0").unwrap();
    kill_when("import writes", &|| run.join("import/state.json").exists() && std::fs::read_to_string(run.join("import/state.json")).is_ok_and(|s| s.contains("\"prepared\": true")));
    conn.query_drop("DELETE FROM purchase WHERE quantity % 5 = 0").unwrap();
    kill_when("apply following", &|| run.join("cdc/apply.json").exists());
    conn.query_drop("UPDATE purchase SET quantity = quantity + 100 WHERE quantity % 7 = 0").unwrap();
    let out = until_ready(&job);
    assert!(out.status.success(), "migrate after two kills: {}", stderr(&out));
    assert!(stderr(&out).contains("ready for cutover: 0 differences"), "{}", stderr(&out));
    converged(&run);
}

#[test]
fn migrate_of_an_s3_run_loads_through_import_from_s3_when_the_estimate_advises_it_and_the_job_allows_it() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "migrate_s3");
    seed_tables(&mut conn);
    let moto = services()["M2D_MOTO_ENDPOINT"].clone();
    for t in ["purchase", "big"] {
        drop_table(&moto, &format!("{db}_{t}"));
    }
    let bucket = format!("m2d-migrate-{}", std::process::id());
    common::moto_put(&bucket, &[]);
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "[source]\nurl = \"{}\"\n\n[export]\nout = \"s3://{bucket}/run\"\nspool = \"{}\"\ndatabases = [\"{db}\"]\nchunk_rows = 300\n\n[import]\ncreate_tables = true\nendpoint = \"{moto}\"\n\n[migrate]\nallow_s3_import = true\n",
            mysql_url(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let out = migrate(&job, &["--until-ready"]).env("AWS_ENDPOINT_URL_S3", &moto).env("AWS_ENDPOINT_URL_DYNAMODB", &moto).env("M2D_S3_PATH_STYLE", "1").output().unwrap();
    let said = stderr(&out);
    assert!(out.status.success(), "migrate: {said}");
    for step in ["pre-flight: binlog retention", "estimate: ", "import: Import from S3, as the estimate advises for every table", "ready for cutover: 0 differences"] {
        assert!(said.contains(step), "{step:?} in:\n{said}");
    }
    // The run is on S3 (manifest and chunks uploaded), and each table came from an import.
    let keys: Vec<String> = common::moto_objects(&bucket).into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&"run/manifest.json".to_string()), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with(&format!("run/data/{db}/purchase/"))), "{keys:?}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("spool/import-report.json")).unwrap()).unwrap();
    for t in report["tables"].as_array().unwrap() {
        assert!(t["s3_import"]["status"] == "COMPLETED" && t["s3_import"]["import_arn"].as_str().is_some_and(|a| a.contains("/import/")), "{t}");
    }
    // Rows the server counts are the items moto holds.
    for (t, target) in [("purchase", format!("{db}_purchase")), ("big", format!("{db}_big"))] {
        let rows: u64 = conn.query_first(format!("SELECT COUNT(*) FROM `{db}`.`{t}`")).unwrap().unwrap();
        assert_eq!(common::ddb::scan(&moto, &target).len() as u64, rows, "{target}");
    }
    // A run killed during its last upload (the manifest goes last) is complete in the spool but
    // not on S3: the rerun sends what is missing instead of taking the export as done.
    let delete = format!(
        "import boto3\nboto3.client('s3',endpoint_url='{moto}',region_name='us-east-1',aws_access_key_id='x',aws_secret_access_key='x').delete_object(Bucket='{bucket}',Key='run/manifest.json')\n"
    );
    let out = std::process::Command::new(&services()["M2D_PYTHON"]).arg("-c").arg(delete).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = migrate(&job, &["--until-ready"]).env("AWS_ENDPOINT_URL_S3", &moto).env("AWS_ENDPOINT_URL_DYNAMODB", &moto).env("M2D_S3_PATH_STYLE", "1").output().unwrap();
    let said = stderr(&out);
    assert!(out.status.success(), "migrate again: {said}");
    assert!(said.contains("export: complete already; ") && said.contains("that were missing") && said.contains("import: continuing through Import from S3"), "{said}");
    assert!(common::moto_objects(&bucket).iter().any(|(k, _)| k == "run/manifest.json"));
}

#[test]
fn migrate_refuses_before_exporting_when_the_binlog_would_be_purged_before_capture_reads_it() {
    let server = common::servers::PrivateServer::start(61, &["--binlog-expire-logs-seconds=600".to_string()]);
    server.root(&["-e", "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1)"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let job = dir.path().join("job.toml");
    std::fs::write(&job, format!("[source]\nurl = \"{}\"\n\n[export]\nout = \"{}\"\ndatabases = [\"shop\"]\n\n[import]\nendpoint = \"{}\"\n", server.url(), run.display(), dynalite())).unwrap();
    let out = migrate(&job, &["--until-ready"]).output().unwrap();
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("binlog retention") && said.contains("TOO SHORT") && said.contains("SET GLOBAL binlog_expire_logs_seconds"), "{said}");
    assert!(!run.join("manifest.json").exists(), "nothing exported before the pre-flight passed");
}
