//! Stage one, second half: `mysql2ddb sync` between a local run folder and `s3://bucket/prefix`,
//! in either direction, deciding what to transfer by content (SHA-256), resuming multipart
//! uploads after a crash, and writing `sync-report.json`. Hands a verified run folder (in S3 or
//! on the import host) to the import stage.

mod download;
pub mod local;
pub mod upload;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use crate::progress::Progress;
pub use crate::aws::s3::S3Options;

/// Smallest part S3 accepts (except the last): 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 << 20;

#[derive(Debug, Error)]
pub enum SyncError {
    #[error("{0}")]
    S3(String),
    #[error("{path}: {source}{}", crate::run::disk_full_hint(source))]
    Local { path: PathBuf, source: std::io::Error },
    #[error("{object} does not match the manifest: SHA-256 {got}, expected {expected}")]
    Mismatch { object: String, expected: String, got: String },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Lock(#[from] crate::run::lock::LockError),
}

impl SyncError {
    pub fn local(path: &Path, source: std::io::Error) -> SyncError {
        SyncError::Local { path: path.to_path_buf(), source }
    }
}

/// `s3://bucket/prefix`, prefix without leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// The default local copy of the run: `.mysql2ddb-spool/<bucket>/<prefix, percent-encoded>`.
    /// Encoding keeps prefixes apart that replacing `/` would merge (`a/b` and `a_b`).
    pub fn default_spool(&self) -> std::path::PathBuf {
        let prefix = self.prefix.trim_end_matches('/');
        let name = if prefix.is_empty() { "_".to_string() } else { crate::run::encode_component(prefix) };
        std::path::PathBuf::from(".mysql2ddb-spool").join(crate::run::encode_component(&self.bucket)).join(name)
    }

    pub fn parse(s: &str) -> Option<S3Location> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(S3Location { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() })
    }

    /// The object key of a run-relative path.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    pub fn with_key(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SseMode {
    /// SSE-S3 (AES256).
    Aes256,
    /// SSE-KMS, with --sse-kms-key-id or the account's default key.
    Kms,
}

crate::choices!(SseMode { "aes256" => SseMode::Aes256, "kms" => SseMode::Kms });

#[derive(Debug, Clone)]
pub enum Sse {
    S3,
    Kms(Option<String>),
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub concurrency: usize,
    pub part_size: u64,
    pub sse: Option<Sse>,
    pub verify_remote: bool,
    pub stale_after: Option<Duration>,
    pub s3: S3Options,
    pub quiet: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            concurrency: crate::defaults::SYNC_CONCURRENCY,
            part_size: crate::defaults::PART_SIZE_MB << 20,
            sse: None,
            verify_remote: false,
            stale_after: None,
            s3: S3Options::default(),
            quiet: false,
        }
    }
}

/// A run by where it lives: a local folder, or s3://bucket/prefix with the local copy it is
/// downloaded (and verified) into before a stage reads it.
#[derive(Debug, Clone)]
pub struct RunSource {
    pub from: String,
    /// The local copy of an s3:// run (None: the default spool folder).
    pub spool: Option<PathBuf>,
    pub sync: SyncOptions,
}

impl RunSource {
    /// The local run folder with `stage`'s lock taken before anything in it is written (an
    /// s3:// run is downloaded under the lock, so a second process cannot overwrite the chunks
    /// a first one reads).
    pub fn local_locked(&self, stage: &str) -> Result<(PathBuf, crate::run::lock::StageLock), SyncError> {
        let dir = match S3Location::parse(&self.from) {
            Some(loc) => {
                let dir = self.spool.clone().unwrap_or_else(|| loc.default_spool());
                std::fs::create_dir_all(&dir).map_err(|e| SyncError::local(&dir, e))?;
                dir
            }
            // A folder that is not there is named by the stage's own check, not created here.
            None if !std::path::Path::new(&self.from).is_dir() => return Err(SyncError::Usage(format!("{}: no such run folder", self.from))),
            None => PathBuf::from(&self.from),
        };
        let lock = crate::run::lock::acquire(&dir, stage)?;
        Ok((self.local()?, lock))
    }

    /// The local folder of the run without downloading anything: the folder itself, or an
    /// s3:// run's spool, where the stages that ran here keep their state.
    pub fn local_dir(&self) -> PathBuf {
        match S3Location::parse(&self.from) {
            Some(loc) => self.spool.clone().unwrap_or_else(|| loc.default_spool()),
            None => PathBuf::from(&self.from),
        }
    }

    /// The local run folder, downloading an s3:// run first.
    pub fn local(&self) -> Result<PathBuf, SyncError> {
        match S3Location::parse(&self.from) {
            Some(loc) => {
                let dir = self.spool.clone().unwrap_or_else(|| loc.default_spool());
                std::fs::create_dir_all(&dir).map_err(|e| SyncError::local(&dir, e))?;
                let _one_at_a_time = crate::run::lock::wait(&dir, "download")?;
                download_dir(&loc, &dir, &self.sync)?;
                Ok(dir)
            }
            None => Ok(PathBuf::from(&self.from)),
        }
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    pub uploaded: AtomicU64,
    pub replaced: AtomicU64,
    pub corrupted: AtomicU64,
    pub skipped: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub parts_sent: AtomicU64,
    pub parts_reused: AtomicU64,
    /// Multipart uploads this sync gave up on and the server aborted.
    pub stale_aborted: AtomicU64,
    /// Those the server would not abort (`key upload-id: why`): storage left for a lifecycle rule.
    pub not_aborted: std::sync::Mutex<Vec<String>>,
}

/// `sync-report.json`. For a download, `transferred` counts objects fetched.
#[derive(Debug, Serialize)]
pub struct SyncReport {
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    pub files: usize,
    /// New objects sent (upload) or files fetched (download).
    pub transferred: u64,
    /// Objects that existed with other content and were replaced.
    pub replaced: u64,
    /// Of those, objects whose content no longer matched their recorded SHA-256.
    pub corrupted: u64,
    pub skipped: u64,
    pub bytes: u64,
    pub parts_sent: u64,
    pub parts_reused: u64,
    /// Incomplete multipart uploads this sync abandoned (a recorded one the server no longer
    /// resumes, a stale or changed one, one a killed run started but never recorded) and aborted.
    pub stale_uploads_aborted: u64,
    /// Abandoned uploads the server refused to abort, `key upload-id: why`: their parts stay
    /// billed until a lifecycle rule (AbortIncompleteMultipartUpload) removes them.
    pub uploads_not_aborted: Vec<String>,
    pub duration_seconds: f64,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

/// `mysql2ddb sync FROM TO`: exactly one side is `s3://…`.
pub fn run(from: &str, to: &str, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    match (S3Location::parse(from), S3Location::parse(to)) {
        (None, Some(dest)) => {
            let _lock = Path::new(from).is_dir().then(|| crate::run::lock::acquire(Path::new(from), "sync")).transpose()?;
            upload_dir(Path::new(from), &dest, opts)
        }
        (Some(src), None) => {
            std::fs::create_dir_all(to).map_err(|e| SyncError::local(Path::new(to), e))?;
            let _lock = crate::run::lock::acquire(Path::new(to), "sync")?;
            let _one_at_a_time = crate::run::lock::wait(Path::new(to), "download")?;
            download_dir(&src, Path::new(to), opts)
        }
        _ => Err(SyncError::Usage("one side of sync must be a local folder and the other s3://bucket/prefix".into())),
    }
}

pub fn upload_dir(run: &Path, dest: &S3Location, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    if !run.join(crate::manifest::MANIFEST_FILE).exists() {
        return Err(SyncError::Usage(format!("{} has no manifest.json: not a run folder", run.display())));
    }
    upload_folder(run, dest, opts)
}

/// Uploads every file of a folder (a run, or the import files of `import --via s3-import`),
/// deciding by SHA-256 and resuming multipart uploads.
pub fn upload_folder(run: &Path, dest: &S3Location, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let files = local::scan(run).map_err(|e| SyncError::local(run, e))?;
    let keys: std::collections::HashSet<String> = files.iter().map(|f| dest.key(&f.rel)).collect();
    let counters = Arc::new(Counters::default());
    let progress = Progress::bytes("upload", opts.quiet);
    progress.add_table("upload".into(), files.iter().map(|f| f.size).sum(), 0);
    let n = files.len();
    runtime().block_on(async {
        let client = crate::aws::s3::build(&opts.s3).await;
        let uploader =
            upload::Uploader::new(client, run.to_path_buf(), dest.clone(), opts.clone(), counters.clone(), progress.clone())
                .await?;
        uploader.upload(files).await?;
        // Every file is up: no upload of the prefix started before this sync is still needed.
        uploader.abort_abandoned(run, &keys).await;
        Ok::<(), SyncError>(())
    })?;
    progress.finish();
    let report = report("upload", run.display().to_string(), dest.to_string(), n, &counters, started);
    write_report(run, &report)?;
    Ok(report)
}

pub fn download_dir(src: &S3Location, run: &Path, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    std::fs::create_dir_all(run).map_err(|e| SyncError::local(run, e))?;
    let local = local::scan(run).map_err(|e| SyncError::local(run, e))?;
    let counters = Arc::new(Counters::default());
    let progress = Progress::bytes("download", opts.quiet);
    runtime().block_on(async {
        let client = crate::aws::s3::build(&opts.s3).await;
        download::download(client, src.clone(), run, local, opts.clone(), counters.clone(), progress.clone()).await
    })?;
    progress.finish();
    let files = (counters.uploaded.load(Ordering::Relaxed) + counters.skipped.load(Ordering::Relaxed)) as usize;
    let report = report("download", src.to_string(), run.display().to_string(), files, &counters, started);
    write_report(run, &report)?;
    Ok(report)
}

/// A run-relative file to upload, with its size and SHA-256 when already known.
type QueuedFile = (String, Option<(u64, String)>);

/// Uploads chunk files of a running export as soon as each is complete, from its own thread.
/// `finish` waits for what was queued; the export then syncs the whole folder, manifest last.
pub struct ChunkUploader {
    tx: Option<std::sync::mpsc::Sender<QueuedFile>>,
    handle: Option<std::thread::JoinHandle<Result<u64, SyncError>>>,
}

impl ChunkUploader {
    pub fn spawn(run: &Path, dest: &S3Location, opts: &SyncOptions) -> ChunkUploader {
        let (tx, rx) = std::sync::mpsc::channel::<QueuedFile>();
        let (run, dest, opts) = (run.to_path_buf(), dest.clone(), opts.clone());
        let handle = std::thread::spawn(move || {
            runtime().block_on(async move {
                let client = crate::aws::s3::build(&opts.s3).await;
                let counters = Arc::new(Counters::default());
                let uploader =
                    upload::Uploader::new(client, run.clone(), dest, opts, counters.clone(), Progress::bytes("upload", true))
                        .await?;
                while let Ok((rel, known)) = rx.recv() {
                    let path = run.join(&rel);
                    let (size, sha256) = match known {
                        Some(k) => k,
                        None => {
                            let h = crate::run::hash_file(&path).map_err(|e| SyncError::local(&path, e))?;
                            (h.bytes, h.sha256)
                        }
                    };
                    let file = local::LocalFile { rel, path, size, sha256 };
                    uploader.upload(vec![file]).await?;
                }
                Ok(counters.uploaded.load(Ordering::Relaxed))
            })
        });
        ChunkUploader { tx: Some(tx), handle: Some(handle) }
    }

    /// Queues a run-relative file for upload, with its size and SHA-256 when the caller already
    /// computed them (the export hashes each chunk as it writes it); otherwise it is hashed here.
    pub fn chunk_done(&self, rel: &str, known: Option<(u64, String)>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((rel.to_string(), known));
        }
    }

    /// Waits for queued uploads; returns how many objects were sent.
    pub fn finish(mut self) -> Result<u64, SyncError> {
        drop(self.tx.take());
        self.handle.take().expect("joined once").join().expect("uploader thread")
    }
}

fn report(direction: &'static str, from: String, to: String, files: usize, c: &Counters, started: Instant) -> SyncReport {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    SyncReport {
        direction,
        from,
        to,
        files,
        transferred: get(&c.uploaded),
        replaced: get(&c.replaced),
        corrupted: get(&c.corrupted),
        skipped: get(&c.skipped),
        bytes: get(&c.bytes_sent),
        parts_sent: get(&c.parts_sent),
        parts_reused: get(&c.parts_reused),
        stale_uploads_aborted: get(&c.stale_aborted),
        uploads_not_aborted: c.not_aborted.lock().map(|v| v.clone()).unwrap_or_default(),
        duration_seconds: started.elapsed().as_secs_f64(),
    }
}

fn write_report(run: &Path, report: &SyncReport) -> Result<(), SyncError> {
    let path = run.join(local::SYNC_REPORT);
    crate::run::json::write(&path, report).map_err(|e| SyncError::local(&path, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_spools_keep_prefixes_apart() {
        let spool = |p: &str| S3Location { bucket: "b".into(), prefix: p.into() }.default_spool();
        assert_ne!(spool("a/b/"), spool("a_b/"));
        assert_eq!(spool("a/b/"), std::path::PathBuf::from(".mysql2ddb-spool/b/a%2Fb"));
    }

    use super::*;

    #[test]
    fn s3_locations_parse_with_and_without_prefix() {
        let l = S3Location::parse("s3://b/migrations/run1/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("b", "migrations/run1"));
        assert_eq!(l.key("manifest.json"), "migrations/run1/manifest.json");
        assert_eq!(S3Location::parse("s3://b").unwrap().key("x"), "x");
        assert!(S3Location::parse("s3:///x").is_none());
        assert!(S3Location::parse("./run1").is_none());
    }
}
