//! A multi-day job survives its surroundings alone: a second process on the run folder,
//! DynamoDB restarting mid-import, the source restarting or not answering under capture and
//! export, kills of a multipart upload and of a paced import, a full disk. Each test kills,
//! restarts or stops a real server (or mounts a small tmpfs) and checks the final state.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cdc::{cdc_cmd, ok};
use common::ddb::{drop_table, dynalite, import, import_cmd, scan};
use common::servers::PrivateServer;
use common::{assert_ok, bin, connect, export, fresh_db, stderr};
use mysql::prelude::Queryable;

/// Waits until `check` holds, or fails saying `what`.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn json(path: &Path) -> serde_json::Value {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_second_writer_of_a_run_folder_is_refused_naming_the_holder_and_the_lock_dies_with_it() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "one_writer");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_400").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));

    let mut first = cdc_cmd(&["capture", "--quiet", "--follow"], run.path()).stderr(Stdio::null()).spawn().unwrap();
    let lock = run.path().join(".locks/cdc-capture");
    wait_for("the capture's lock", Duration::from_secs(20), || std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid")));
    let second = cdc_cmd(&["capture", "--quiet"], run.path()).output().unwrap();
    assert!(!second.status.success(), "a second capture was accepted");
    let err = stderr(&second);
    assert!(err.contains("another `mysql2ddb cdc capture`") && err.contains(&format!("pid {}", first.id())), "{err}");
    // Killed (as a supervisor restarting a hung process does), the lock goes with it.
    kill(&mut first);
    ok(&cdc_cmd(&["capture", "--quiet"], run.path()).output().unwrap(), "capture after the holder died");

    // Two imports: the second is refused while the first (paced) writes.
    let table = format!("{db}_t");
    drop_table(&dynalite(), &table);
    let mut paced = import_cmd(run.path(), &dynalite(), &["--create-tables", "--wcu", "40"]).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the import's lock", Duration::from_secs(30), || std::fs::read_to_string(run.path().join(".locks/import")).is_ok_and(|s| s.contains(&format!("pid {}", paced.id()))));
    let other = import(run.path(), &dynalite(), &["--create-tables"]);
    assert!(!other.status.success() && stderr(&other).contains("another `mysql2ddb import`"), "{}", stderr(&other));
    assert!(paced.wait().unwrap().success());
    assert_eq!(scan(&dynalite(), &table).len(), 400);
}

/// dynalite on a port and a data folder of its own, so it can be killed and started again
/// with its tables.
struct PrivateDynalite {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl PrivateDynalite {
    fn start() -> PrivateDynalite {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Self::launch(dir.path(), port);
        PrivateDynalite { port, dir, child }
    }

    fn launch(dir: &Path, port: u16) -> Child {
        let cli: PathBuf = common::root().join(".state/npm/node_modules/dynalite/cli.js");
        let child = Command::new("node")
            .arg(cli)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--path"])
            .arg(dir.join("db"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("dynalite", Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        child
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn crash_and_restart(&mut self, down: Duration) {
        kill(&mut self.child);
        std::thread::sleep(down);
        self.child = Self::launch(self.dir.path(), self.port);
    }
}

impl Drop for PrivateDynalite {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

#[test]
fn an_import_goes_on_alone_when_dynamodb_restarts_mid_write() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "ddb_restart");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let mut ddb = PrivateDynalite::start();
    // 3,000 items at 300 WCU/s: about 10 s of writing, DynamoDB gone for 5 s of it.
    let importing = import_cmd(run.path(), &ddb.endpoint(), &["--create-tables", "--wcu", "300"]).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    ddb.crash_and_restart(Duration::from_secs(5));
    let out = importing.wait_with_output().unwrap();
    assert!(out.status.success(), "the import stopped ({:?}): {}", out.status.code(), stderr(&out));
    assert_eq!(scan(&ddb.endpoint(), &format!("{db}_t")).len(), 3000);
    let report: serde_json::Value = json(&run.path().join("import-report.json"));
    assert!(report["tables"][0]["retries"].as_u64().unwrap_or(0) > 0, "the outage was retried: {report}");
}

/// Changes staged so far by capture (cdc/capture.json).
fn staged_changes(run: &Path) -> u64 {
    json(&run.join("cdc/capture.json"))["changes"].as_u64().unwrap_or(0)
}

#[test]
fn capture_follow_reconnects_when_the_source_restarts_or_stops_answering() {
    let mut server = PrivateServer::start(61, &[]);
    server.root(&["-e", "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_100"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = Command::new(bin()).args(["export", "--quiet", "--databases", "shop", "--source", &server.url(), "--out"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = dir.path().join("capture.log");
    let mut capture = cdc_cmd(&["capture", "--follow", "--source-timeout", "3", "--reconnect-for", "120", "--source", &server.url()], &run)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let batch = |server: &PrivateServer, from: u32| {
        server.root(&["shop", "-e", &format!("INSERT INTO t SELECT seq, seq FROM seq_{from}_to_{}", from + 49)]).unwrap();
    };
    batch(&server, 1000);
    wait_for("the first changes", Duration::from_secs(30), || staged_changes(&run) >= 50);
    server.crash_and_restart(Duration::from_secs(3));
    batch(&server, 2000);
    wait_for("the changes after the restart", Duration::from_secs(60), || staged_changes(&run) >= 100);
    // Stopped (SIGSTOP) for longer than the read bound: named, then reconnected.
    server.pause(true);
    std::thread::sleep(Duration::from_secs(8));
    server.pause(false);
    batch(&server, 3000);
    wait_for("the changes after the pause", Duration::from_secs(90), || staged_changes(&run) >= 150);
    assert!(capture.try_wait().unwrap().is_none(), "capture stopped");
    kill(&mut capture);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("connecting again") && said.contains("did not answer for 3 s") && said.contains("reconnected"), "{said}");
    assert_eq!(staged_changes(&run), 150, "every change once");

    // Without a reconnect budget, a lost source ends capture saying so.
    let mut once = cdc_cmd(&["capture", "--follow", "--reconnect-for", "0", "--source", &server.url()], &run).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    server.crash_and_restart(Duration::from_secs(1));
    let out = wait_output(&mut once, Duration::from_secs(30));
    assert!(out.contains("did not come back") && out.contains("--reconnect-for"), "{out}");
}

/// The stderr of a child that must end within `limit`.
fn wait_output(child: &mut Child, limit: Duration) -> String {
    wait_for("the process to end", limit, || child.try_wait().unwrap().is_some());
    let mut s = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut s).unwrap();
    s
}

#[test]
fn an_export_whose_source_stops_answering_names_the_table_and_chunk_and_a_rerun_finishes() {
    let server = PrivateServer::start(62, &[]);
    server.root(&["-e", "CREATE DATABASE shop; USE shop; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(100)); INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_300000"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cmd = || {
        let mut c = Command::new(bin());
        c.args(["export", "--quiet", "--databases", "shop", "--chunk-rows", "2000", "--threads", "1", "--source-timeout", "3", "--source", &server.url(), "--out"]).arg(&run);
        c
    };
    let mut exporting = cmd().stderr(Stdio::piped()).spawn().unwrap();
    let chunks = run.join("data/shop/t");
    wait_for("a first chunk", Duration::from_secs(60), || std::fs::read_dir(&chunks).is_ok_and(|d| d.filter_map(Result::ok).any(|e| e.path().extension().is_some_and(|x| x == "parquet"))));
    server.pause(true);
    let err = wait_output(&mut exporting, Duration::from_secs(60));
    server.pause(false);
    assert!(err.contains("table shop.t, chunk") && err.contains("did not answer for 3 s") && err.contains("Rerun the same command"), "{err}");
    let out = cmd().output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&run.join("export-report.json"));
    assert_eq!(report["rows"], 300_000);
    assert!(json(&run.join("manifest.json"))["snapshots"].as_array().unwrap().len() <= 2, "one snapshot per run that wrote chunks");
}

#[test]
fn a_killed_paced_import_resumes_inside_its_bucket() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "paced_kills");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let table = format!("{db}_t");
    drop_table(&dynalite(), &table);
    let state = run.path().join("import/state.json");
    let batches = || json(&state)["targets"][0]["buckets"].as_array().map(|b| b.iter().map(|b| b["batches_written"].as_u64().unwrap_or(0)).sum::<u64>()).unwrap_or(0);
    // One bucket of 3,000 items at 100 WCU/s: 30 s. Each run is killed as soon as it has kept a
    // checkpoint past the last one (one is kept every 5 s), however slowly it started, and what
    // it kept must outlive the kill with the bucket still unfinished.
    let written = || json(&state)["targets"][0]["buckets"].as_array().is_some_and(|b| b.iter().all(|b| b["written"] == true));
    let mut last = 0;
    for kill_no in 1..=3 {
        let mut child = import_cmd(run.path(), &dynalite(), &["--create-tables", "--wcu", "100", "--bucket-rows", "1000000"]).stderr(Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while batches() <= last {
            assert!(child.try_wait().unwrap().is_none(), "kill {kill_no}: the import ended before it kept a checkpoint");
            assert!(std::time::Instant::now() < deadline, "kill {kill_no}: no checkpoint within the bucket in 90 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        kill(&mut child);
        let now = batches();
        assert!(now > last && !written(), "kill {kill_no}: the progress kept within the bucket ({last} → {now} batches) outlives the kill");
        last = now;
    }
    assert_ok(&import(run.path(), &dynalite(), &["--create-tables", "--wcu", "100", "--bucket-rows", "1000000"]));
    assert_eq!(scan(&dynalite(), &table).len(), 3000);
    let report = json(&run.path().join("import-report.json"));
    assert!(report["tables"][0]["items_written"].as_u64().unwrap() < 3000 - 25 * last / 2, "the last run wrote what was left: {report}");
}

#[test]
fn sync_aborts_every_multipart_upload_it_abandons() {
    let run = tempfile::tempdir().unwrap();
    std::fs::write(run.path().join("manifest.json"), b"{}").unwrap();
    std::fs::create_dir_all(run.path().join("data")).unwrap();
    std::fs::write(run.path().join("data/big.bin"), common::pseudo_random_bytes(40 << 20, 0x2545F4914F6CDD1D)).unwrap();
    let bucket = format!("abandoned-{}", fastrand::u32(..));
    common::moto_put(&bucket, &[]);
    // An upload a killed run started but never recorded.
    let py = |code: &str| -> String {
        let script = format!(
            "import boto3\ns3=boto3.client('s3',endpoint_url='{}',region_name='us-east-1',aws_access_key_id='x',aws_secret_access_key='x')\n{code}",
            common::services()["M2D_MOTO_ENDPOINT"]
        );
        let out = Command::new(&common::services()["M2D_PYTHON"]).arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "boto3: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    py(&format!("s3.create_multipart_upload(Bucket='{bucket}', Key='run/data/big.bin')"));
    std::thread::sleep(Duration::from_millis(1100));
    let sync = || {
        let mut c = Command::new(bin());
        common::s3_env(&mut c).env("AWS_ENDPOINT_URL_S3", &common::services()["M2D_MOTO_ENDPOINT"]);
        c.args(["sync", "--quiet", "--part-size-mb", "5", "--concurrency", "1"]).arg(run.path()).arg(format!("s3://{bucket}/run"));
        c
    };
    // Each run is killed as soon as it has recorded one more part, so it dies in the middle of
    // the upload however fast the machine (kills at fixed times missed it: a fast machine had
    // finished the whole sync, stale upload aborted, before the first one).
    let book = run.path().join(".sync/uploads.json");
    let parts = || -> usize {
        json(&book).as_object().map_or(0, |uploads| uploads.values().map(|u| u["parts"].as_object().map_or(0, |p| p.len())).sum())
    };
    for _ in 0..3 {
        let before = parts();
        let mut child = sync().stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while parts() <= before && child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let finished = child.try_wait().unwrap().is_some();
        kill(&mut child);
        assert!(!finished, "the sync ended before it recorded a part: the test could not kill it mid-upload");
    }
    assert!(parts() < 8, "the killed runs did not finish the upload between them ({} of 8 parts)", parts());
    let out = sync().output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let left = py(&format!("print(len(s3.list_multipart_uploads(Bucket='{bucket}', Prefix='run/').get('Uploads', [])))"));
    assert_eq!(left.trim(), "0", "no incomplete upload of the run is left");
    let report = json(&run.path().join("sync-report.json"));
    assert!(report["stale_uploads_aborted"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["uploads_not_aborted"], serde_json::json!([]));
}

#[test]
fn a_full_disk_under_the_import_names_the_table_and_the_way_out() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mut conn = connect();
    let db = fresh_db(&mut conn, "full_disk");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, REPEAT('x', 2000) FROM seq_1_to_8000").unwrap();
    let mount = tempfile::tempdir().unwrap();
    let status = Command::new("mount").args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"]).arg(mount.path()).status().unwrap();
    assert!(status.success(), "mount a tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.path().to_path_buf());
    let run = mount.path().join("run");
    assert_ok(&export(&run, &["--databases", &db]));
    // 16 MB of rows to spill on a 6 MB disk.
    let out = import(&run, &dynalite(), &["--dry-run"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("{db}.t")) && err.contains("disk is full") && err.contains("rerun the same command"), "{err}");
}
