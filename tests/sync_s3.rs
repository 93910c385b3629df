//! `mysql2ddb sync` and `export --out s3://…` against the real s3s-fs started by scripts/:
//! a rerun sends nothing, a same-size content change is sent, an object altered inside the
//! server's folder is found and replaced, kill -9 during a multipart upload resumes with earlier
//! parts reused (and a recorded upload the server dropped is started afresh), downloads are
//! verified against the manifest and a tampered object is named; against moto's server, which
//! stores keys literally, a download refuses keys that would leave the run folder.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mysql::prelude::Queryable;
use sha2::{Digest, Sha256};

fn sync(args: &[&str]) -> Output {
    s3_env(Command::new(bin()).arg("sync").arg("--quiet").args(args)).output().unwrap()
}

/// A fresh bucket in s3s-fs (a bucket is a folder of its data directory).
fn bucket(name: &str) -> (String, PathBuf) {
    let dir = PathBuf::from(&services()["M2D_S3_DATA"]).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (name.to_string(), dir)
}

fn report(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("sync-report.json")).unwrap()).unwrap()
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// A small real run folder exported from MariaDB.
fn run_folder(name: &str) -> tempfile::TempDir {
    let mut conn = connect();
    let db = fresh_db(&mut conn, name);
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(50))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('value ', seq) FROM seq_1_to_20000").unwrap();
    conn.query_drop("ANALYZE TABLE t").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db, "--chunk-rows", "4000", "--format", "csv"]));
    run
}

fn chunk_files(run: &Path) -> Vec<String> {
    manifest(run).tables.iter().flat_map(|t| t.chunks.iter().map(|c| c.file.clone())).collect()
}

#[test]
fn rerun_sends_nothing_and_a_same_size_change_is_sent() {
    let run = run_folder("sync_rerun");
    let (b, data) = bucket("sync-rerun");
    let dest = format!("s3://{b}/migrations/run1");
    let out = sync(&[run.path().to_str().unwrap(), &dest]);
    assert_ok(&out);
    let files = chunk_files(run.path());
    let r = report(run.path());
    assert_eq!(r["transferred"].as_u64().unwrap() as usize, files.len() + 2, "chunks + manifest + export report");
    for f in &files {
        assert_eq!(sha256_file(&data.join("migrations/run1").join(f)), sha256_file(&run.path().join(f)), "{f}");
    }

    assert_ok(&sync(&[run.path().to_str().unwrap(), &dest]));
    let r = report(run.path());
    assert_eq!(r["transferred"], 0);
    assert_eq!(r["replaced"], 0);
    assert_eq!(r["bytes"], 0, "a rerun with nothing changed uploads zero bytes");

    // Same size, different bytes.
    let victim = run.path().join(&files[1]);
    let mut bytes = std::fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n - 3] = if bytes[n - 3] == b'9' { b'8' } else { b'9' };
    std::thread::sleep(Duration::from_millis(10));
    std::fs::write(&victim, &bytes).unwrap();
    assert_ok(&sync(&[run.path().to_str().unwrap(), &dest]));
    let r = report(run.path());
    assert_eq!(r["replaced"], 1, "{r}");
    assert_eq!(r["transferred"], 0);
    assert_eq!(r["bytes"].as_u64().unwrap() as usize, n, "only that file was sent");
    assert_eq!(sha256_file(&data.join("migrations/run1").join(&files[1])), sha256_file(&victim));
}

#[test]
fn an_object_altered_on_the_server_is_found_and_replaced() {
    let run = run_folder("sync_corrupt");
    let (b, data) = bucket("sync-corrupt");
    let dest = format!("s3://{b}/run");
    assert_ok(&sync(&[run.path().to_str().unwrap(), &dest]));
    let file = chunk_files(run.path())[0].clone();
    let object = data.join("run").join(&file);
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[10] ^= 0x20;
    std::fs::write(&object, &bytes).unwrap();

    assert_ok(&sync(&["--verify-remote", run.path().to_str().unwrap(), &dest]));
    let r = report(run.path());
    assert_eq!(r["corrupted"], 1, "{r}");
    assert_eq!(r["replaced"], 1);
    assert_eq!(sha256_file(&object), sha256_file(&run.path().join(&file)), "object repaired");
}

/// A run folder holding one 120 MiB file (24 parts of 5 MiB), its SHA-256, and a sync to
/// `bucket` killed with SIGKILL after four parts were recorded.
fn killed_multipart_upload(bucket_name: &str) -> (tempfile::TempDir, String, PathBuf, String) {
    let run = tempfile::tempdir().unwrap();
    std::fs::write(run.path().join("manifest.json"), b"{}").unwrap();
    std::fs::create_dir_all(run.path().join("data")).unwrap();
    let big = common::pseudo_random_bytes(120 << 20, 0x9E3779B97F4A7C15);
    std::fs::write(run.path().join("data/big.bin"), &big).unwrap();
    let want = hex::encode(Sha256::digest(&big));
    drop(big);
    let (b, data) = bucket(bucket_name);
    let dest = format!("s3://{b}/run");
    let mut child = s3_env(Command::new(bin()).arg("sync").arg("--quiet").args(MULTIPART).arg(run.path()).arg(&dest))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let book = run.path().join(".sync/uploads.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let parts = std::fs::read(&book)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["run/data/big.bin"]["parts"].as_object().map(|p| p.len()))
            .unwrap_or(0);
        if parts >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "upload made no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!data.join("run/data/big.bin").exists(), "killed before completion");
    (run, want, data, dest)
}

const MULTIPART: [&str; 4] = ["--part-size-mb", "5", "--concurrency", "1"];

fn sync_multipart(run: &Path, dest: &str) -> Output {
    let mut args = MULTIPART.to_vec();
    args.extend([run.to_str().unwrap(), dest]);
    sync(&args)
}

#[test]
fn kill_9_during_a_multipart_upload_resumes_with_earlier_parts() {
    let (run, want, data, dest) = killed_multipart_upload("sync-multipart");
    assert_ok(&sync_multipart(run.path(), &dest));
    let r = report(run.path());
    assert!(r["parts_reused"].as_u64().unwrap() >= 4, "earlier parts reused: {r}");
    assert_eq!(r["parts_reused"].as_u64().unwrap() + r["parts_sent"].as_u64().unwrap(), 24, "{r}");
    assert_eq!(sha256_file(&data.join("run/data/big.bin")), want, "final object is the file");
}

/// Regression: when the server no longer knew the recorded upload (it dropped it, or a kill
/// came during CompleteMultipartUpload), every rerun reused the dead upload id and failed with
/// "access denied (check the bucket policy and the IAM permissions)". The dead upload is now
/// dropped and the file uploaded afresh.
#[test]
fn a_recorded_upload_the_server_dropped_is_started_afresh() {
    let (run, want, data, dest) = killed_multipart_upload("sync-dead-upload");
    // The server forgets the upload (s3s-fs keeps one `.upload-<id>.json` per open upload).
    let root = PathBuf::from(&services()["M2D_S3_DATA"]);
    let book: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join(".sync/uploads.json")).unwrap()).unwrap();
    let id = book["run/data/big.bin"]["upload_id"].as_str().unwrap().to_string();
    std::fs::remove_file(root.join(format!(".upload-{id}.json"))).unwrap();
    let out = sync_multipart(run.path(), &dest);
    assert_ok(&out);
    assert!(!stderr(&out).contains("permission"), "{}", stderr(&out));
    assert_eq!(sha256_file(&data.join("run/data/big.bin")), want, "final object is the file");
    let book: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path().join(".sync/uploads.json")).unwrap()).unwrap();
    assert!(book.get("run/data/big.bin").is_none(), "the finished upload is no longer recorded: {book}");
}

#[test]
fn download_verifies_every_file_and_names_a_tampered_object() {
    let run = run_folder("sync_download");
    let (b, data) = bucket("sync-download");
    let dest = format!("s3://{b}/r1");
    assert_ok(&sync(&[run.path().to_str().unwrap(), &dest]));

    let fresh = tempfile::tempdir().unwrap();
    let target = fresh.path().join("run1");
    assert_ok(&sync(&[&dest, target.to_str().unwrap()]));
    for f in chunk_files(run.path()) {
        assert_eq!(sha256_file(&target.join(&f)), sha256_file(&run.path().join(&f)), "{f}");
    }
    assert_eq!(std::fs::read(target.join("manifest.json")).unwrap(), std::fs::read(run.path().join("manifest.json")).unwrap());

    let file = chunk_files(run.path())[2].clone();
    let object = data.join("r1").join(&file);
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&object, bytes).unwrap();
    let other = fresh.path().join("run2");
    let out = sync(&[&dest, other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("s3://{b}/r1/{file} does not match the manifest")), "{err}");
    assert!(!other.join(&file).exists(), "the bad file is not kept");
    assert!(!other.join("manifest.json").exists(), "no manifest for an unverified folder");
}

#[test]
fn a_missing_bucket_is_named() {
    let run = run_folder("sync_nobucket");
    let out = sync(&[run.path().to_str().unwrap(), "s3://no-such-bucket-here/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the bucket does not exist"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&services()["AWS_SECRET_ACCESS_KEY"]), "secret never printed");
}

#[test]
fn export_to_s3_uploads_every_chunk_and_the_manifest() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "export_s3");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v DOUBLE)").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, seq / 3 FROM seq_1_to_30000").unwrap();
    conn.query_drop("ANALYZE TABLE t").unwrap();
    let (b, data) = bucket("export-s3");
    let spool = tempfile::tempdir().unwrap();
    let out = s3_env(Command::new(bin()).args(["export", "--quiet", "--source", &mysql_url()]))
        .args(["--databases", &db, "--chunk-rows", "5000", "--out", &format!("s3://{b}/migrations/run1"), "--spool"])
        .arg(spool.path())
        .output()
        .unwrap();
    assert_ok(&out);
    let remote = data.join("migrations/run1");
    let m = manifest(&remote);
    assert!(m.complete);
    let e = entry(&m, &db, "t");
    assert!(e.chunks.len() >= 5);
    for c in &e.chunks {
        assert_eq!(Some(sha256_file(&remote.join(&c.file))), c.sha256, "chunk {} in the bucket matches", c.id);
    }
    assert_eq!(parquet_rows(&remote, e), mysql_rows(&mut conn, &db, "t", &kinds(e)));
}

#[test]
fn refused_credentials_are_said_plainly_and_never_printed() {
    let run = run_folder("sync_badcreds");
    bucket("sync-badcreds");
    let out = s3_env(Command::new(bin()).arg("sync").arg("--quiet"))
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
        .arg(run.path())
        .arg("s3://sync-badcreds/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the credentials were refused"), "{err}");
    assert!(!err.contains("wrong-secret-value"), "secret printed: {err}");
}

/// moto's server as the S3 endpoint (it stores keys literally, `..` and `//` included).
fn moto_sync(args: &[&str]) -> Output {
    let moto = services()["M2D_MOTO_ENDPOINT"].clone();
    s3_env(Command::new(bin()).arg("sync").arg("--quiet").args(args)).env("AWS_ENDPOINT_URL_S3", moto).output().unwrap()
}

/// Regression: download wrote every object under the prefix to `run.join(key − prefix)`, so a
/// key such as `run1/../../x` or `run1//etc/x` landed outside the run folder. Objects the run
/// does not name are not written, whatever their key; a folder marker (`run1/`, `run1/notes/`,
/// what the S3 console's "Create folder" makes) used to abort every download and is skipped now.
#[test]
fn download_writes_only_the_runs_files_and_skips_keys_it_does_not_name() {
    let run = run_folder("sync_traversal");
    let bucket = format!("m2d-traversal-{}", std::process::id());
    moto_put(&bucket, &[]);
    let out = moto_sync(&[run.path().to_str().unwrap(), &format!("s3://{bucket}/run1")]);
    assert!(out.status.success(), "upload to moto: {}", stderr(&out));

    // An object the run does not name is left in the bucket.
    moto_put(&bucket, &["run1/notes/readme.txt"]);
    let base = tempfile::tempdir().unwrap();
    let dest = base.path().join("a/b/run");
    let out = moto_sync(&[&format!("s3://{bucket}/run1"), dest.to_str().unwrap()]);
    assert!(out.status.success(), "download: {}", stderr(&out));
    for f in chunk_files(run.path()) {
        assert!(dest.join(&f).is_file(), "{f} downloaded");
    }
    assert!(!dest.join("notes").exists(), "an object the run does not name is not written");

    // Keys that would leave the folder, and folder markers: not the run's, so left alone.
    for key in ["run1/../../escaped.txt", "run1//tmp/escaped.txt", "run1/", "run1/notes/"] {
        let bucket = format!("{bucket}-{}", key.len());
        moto_put(&bucket, &[]);
        let out = moto_sync(&[run.path().to_str().unwrap(), &format!("s3://{bucket}/run1")]);
        assert!(out.status.success(), "upload to moto: {}", stderr(&out));
        moto_put(&bucket, &[key]);
        let dest = base.path().join(format!("x{}/y/run", key.len()));
        let out = moto_sync(&[&format!("s3://{bucket}/run1"), dest.to_str().unwrap()]);
        assert!(out.status.success(), "{key}: the download goes on: {}", stderr(&out));
        for f in chunk_files(run.path()) {
            assert!(dest.join(&f).is_file(), "{key}: {f} downloaded");
        }
        assert!(!base.path().join(format!("x{}/escaped.txt", key.len())).exists(), "{key}: nothing written outside the run");
    }
    assert!(!Path::new("/tmp/escaped.txt").exists());
}

/// Regression: with no credentials anywhere in the chain, sync said "cannot reach the S3
/// endpoint". It now says no credentials were found, and how to give them.
#[test]
fn missing_credentials_are_named_as_such() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["sync", "--quiet", "s3://some-bucket/run1"])
        .arg(home.path().join("run"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_S3", &services()["M2D_S3_ENDPOINT"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no usable AWS credentials") && !err.contains("cannot reach"), "{err}");
}
