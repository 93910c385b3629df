//! Upload of a run folder to `s3://bucket/prefix`, decided by content:
//! - list the prefix; an object of the same size is HEADed for its recorded SHA-256 (object
//!   metadata `sha256`, or S3's own `x-amz-checksum-sha256` of a single-part upload) and skipped
//!   when it matches; `--verify-remote` also reads the object back and hashes it, which catches
//!   an object altered at rest without its metadata;
//! - single-part uploads send `x-amz-checksum-sha256`, so S3 rejects a corrupted body (BadDigest);
//! - multipart uploads send a SHA-256 per part and record the whole-file SHA-256 in metadata.
//!   Completed parts are recorded in `.sync/uploads.json` as they finish; after a crash the
//!   rerun keeps the parts that ListParts still shows with the same size (and checksum, where
//!   the server lists one) and whose local bytes hash the same, and sends only the rest.
//!   Recorded uploads older than the stale threshold, or for content that changed, are aborted;
//! - `manifest.json` goes last, so a reader never sees a manifest naming missing chunks.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_sdk_s3::Client;
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::local::{LocalFile, STATE_DIR};
use crate::aws::s3::describe;
use super::{Counters, S3Location, Sse, SyncError, SyncOptions};
use crate::manifest::MANIFEST_FILE;
use crate::progress::Progress;

use crate::run::paths::SYNC_UPLOADS as UPLOADS_FILE;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64_to_hex(s: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD.decode(s).ok().map(hex::encode)
}

use crate::clock::now_unix;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartRecord {
    sha256_b64: String,
    etag: String,
    size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MultipartRecord {
    upload_id: String,
    sha256: String,
    size: u64,
    part_size: u64,
    started_unix: u64,
    parts: BTreeMap<i32, PartRecord>,
}

/// Durable record of multipart uploads in progress, rewritten atomically on every change.
struct UploadBook {
    path: PathBuf,
    uploads: Mutex<BTreeMap<String, MultipartRecord>>,
}

impl UploadBook {
    fn open(run: &std::path::Path) -> UploadBook {
        let path = run.join(STATE_DIR).join(UPLOADS_FILE);
        let uploads = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        UploadBook { path, uploads: Mutex::new(uploads) }
    }

    fn update(&self, f: impl FnOnce(&mut BTreeMap<String, MultipartRecord>)) -> Result<(), SyncError> {
        let mut u = self.uploads.lock().expect("upload book lock");
        f(&mut u);
        let text = serde_json::to_vec_pretty(&*u).expect("serializes");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| SyncError::local(&self.path, e))?;
        }
        crate::run::write_atomically(&self.path, &text).map_err(|e| SyncError::local(&self.path, e))
    }

    fn get(&self, key: &str) -> Option<MultipartRecord> {
        self.uploads.lock().expect("upload book lock").get(key).cloned()
    }
}

struct Ctx {
    client: Client,
    /// When this session began (uploads of the prefix started before it and not in the book
    /// are abandoned ones).
    began: std::time::SystemTime,
    dest: S3Location,
    opts: SyncOptions,
    permits: Semaphore,
    book: UploadBook,
    counters: Arc<Counters>,
    progress: Progress,
}

/// An upload session: the remote listing taken once, the upload book, the shared permits.
pub struct Uploader {
    ctx: Arc<Ctx>,
    remote: Arc<HashMap<String, u64>>,
}

impl Uploader {
    pub async fn new(
        client: Client,
        run: PathBuf,
        dest: S3Location,
        opts: SyncOptions,
        counters: Arc<Counters>,
        progress: Progress,
    ) -> Result<Uploader, SyncError> {
        let remote = list_remote(&client, &dest).await?;
        let ctx = Arc::new(Ctx {
            client,
            began: std::time::SystemTime::now(),
            permits: Semaphore::new(opts.concurrency.max(1)),
            book: UploadBook::open(&run),
            dest,
            opts,
            counters,
            progress,
        });
        Ok(Uploader { ctx, remote: Arc::new(remote) })
    }

    /// Uploads `files` that differ from what S3 holds, `manifest.json` last.
    pub async fn upload(&self, files: Vec<LocalFile>) -> Result<(), SyncError> {
        abort_stale(&self.ctx, &files).await;
        let (manifest, data): (Vec<LocalFile>, Vec<LocalFile>) = files.into_iter().partition(|f| f.rel == MANIFEST_FILE);
        futures::stream::iter(data.into_iter().map(|f| {
            let (ctx, remote) = (self.ctx.clone(), self.remote.clone());
            async move { sync_one(&ctx, &remote, f).await }
        }))
        .buffer_unordered(self.ctx.opts.concurrency.max(1) * 2)
        .try_collect::<Vec<()>>()
        .await?;
        for f in manifest {
            sync_one(&self.ctx, &self.remote, f).await?;
        }
        Ok(())
    }
}

impl Uploader {
    /// Aborts every incomplete multipart upload of the run's files that began before this
    /// session and is not in the upload book: uploads a killed run started but never recorded,
    /// or recorded ones the book lost. A server without ListMultipartUploads (s3s-fs) is skipped.
    /// Only uploads of `keys` (the run's own files) are touched, and the book is read again
    /// from disk first, so an upload another process of this run recorded meanwhile is kept.
    pub async fn abort_abandoned(&self, run: &std::path::Path, keys: &std::collections::HashSet<String>) {
        let ctx = &self.ctx;
        let book = UploadBook::open(run);
        let began = aws_sdk_s3::primitives::DateTime::from(ctx.began);
        let mut abandoned: Vec<(String, String)> = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let listed = ctx
                .client
                .list_multipart_uploads()
                .bucket(&ctx.dest.bucket)
                .prefix(ctx.dest.key(""))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let page = match listed {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!("listing incomplete multipart uploads: {}", describe("ListMultipartUploads", &e));
                    return;
                }
            };
            for u in page.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else { continue };
                let recorded = book.get(key).is_some_and(|r| r.upload_id == id) || ctx.book.get(key).is_some_and(|r| r.upload_id == id);
                if keys.contains(key) && !recorded && u.initiated().is_none_or(|t| t.secs() < began.secs()) {
                    abandoned.push((key.to_string(), id.to_string()));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        for (key, id) in abandoned {
            abort(ctx, &key, &id, "an incomplete upload of this prefix that no run records").await;
        }
    }
}

/// Aborts an upload this sync gives up on, counting it as aborted or as left on the server.
async fn abort(ctx: &Ctx, key: &str, upload_id: &str, why: &str) {
    let object = ctx.dest.with_key(key);
    match ctx.client.abort_multipart_upload().bucket(&ctx.dest.bucket).key(key).upload_id(upload_id).send().await {
        Ok(_) => {
            ctx.counters.stale_aborted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(object = %object, "aborted {why} ({upload_id})");
        }
        // The server does not know the upload (any more): nothing of it is left to abort.
        Err(e) if e.as_service_error().and_then(aws_sdk_s3::error::ProvideErrorMetadata::code) == Some("NoSuchUpload") => {
            tracing::info!(object = %object, "{why} ({upload_id}) is gone already");
        }
        Err(e) => {
            // The code, not the usual advice: for a dropped upload some servers (s3s-fs) answer
            // AccessDenied, which is no matter of permissions.
            let reason = match e.as_service_error().and_then(aws_sdk_s3::error::ProvideErrorMetadata::code) {
                Some(code) => format!("AbortMultipartUpload answered {code}"),
                None => describe("AbortMultipartUpload", &e),
            };
            tracing::warn!(object = %object, "could not abort {why} ({upload_id}): {reason}; if the server still holds its parts, they stay until a lifecycle rule (AbortIncompleteMultipartUpload) removes them");
            if let Ok(mut v) = ctx.counters.not_aborted.lock() {
                v.push(format!("{key} {upload_id}: {reason}"));
            }
        }
    }
}

/// Key → size of every object under the prefix.
pub async fn list_remote(client: &Client, loc: &S3Location) -> Result<HashMap<String, u64>, SyncError> {
    let mut out = HashMap::new();
    let mut pages = client.list_objects_v2().bucket(&loc.bucket).prefix(loc.key("")).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| SyncError::S3(describe(&format!("listing {loc}"), &e)))?;
        for o in page.contents() {
            if let Some(k) = o.key() {
                out.insert(k.to_string(), o.size().unwrap_or(0) as u64);
            }
        }
    }
    Ok(out)
}

enum Decision {
    Skip,
    Upload { replacing: bool, corrupted: bool },
}

async fn sync_one(ctx: &Ctx, remote: &HashMap<String, u64>, f: LocalFile) -> Result<(), SyncError> {
    let key = ctx.dest.key(&f.rel);
    let decision = decide(ctx, remote, &key, &f).await?;
    match decision {
        Decision::Skip => {
            ctx.counters.skipped.fetch_add(1, Ordering::Relaxed);
            ctx.progress.advance(0, f.size, 0);
        }
        Decision::Upload { replacing, corrupted } => {
            if corrupted {
                tracing::warn!(object = %ctx.dest.with_key(&key), "object content does not match its recorded SHA-256: replacing it");
                ctx.counters.corrupted.fetch_add(1, Ordering::Relaxed);
            }
            if f.size > ctx.opts.part_size {
                upload_multipart(ctx, &key, &f).await?;
            } else {
                upload_single(ctx, &key, &f).await?;
            }
            let counter = if replacing { &ctx.counters.replaced } else { &ctx.counters.uploaded };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

async fn decide(ctx: &Ctx, remote: &HashMap<String, u64>, key: &str, f: &LocalFile) -> Result<Decision, SyncError> {
    match remote.get(key) {
        None => return Ok(Decision::Upload { replacing: false, corrupted: false }),
        Some(&size) if size != f.size => return Ok(Decision::Upload { replacing: true, corrupted: false }),
        Some(_) => {}
    }
    let head = {
        let _permit = ctx.permits.acquire().await.expect("semaphore open");
        ctx.client
            .head_object()
            .bucket(&ctx.dest.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| SyncError::S3(describe(&ctx.dest.with_key(key), &e)))?
    };
    let recorded = head
        .metadata()
        .and_then(|m| m.get("sha256").cloned())
        .or_else(|| head.checksum_sha256().filter(|c| !c.contains('-')).and_then(b64_to_hex));
    if recorded.as_deref() != Some(f.sha256.as_str()) {
        return Ok(Decision::Upload { replacing: true, corrupted: false });
    }
    if ctx.opts.verify_remote && remote_sha256(ctx, key).await? != f.sha256 {
        return Ok(Decision::Upload { replacing: true, corrupted: true });
    }
    Ok(Decision::Skip)
}

/// Reads an object back and hashes it, streaming.
async fn remote_sha256(ctx: &Ctx, key: &str) -> Result<String, SyncError> {
    let _permit = ctx.permits.acquire().await.expect("semaphore open");
    let obj = ctx
        .client
        .get_object()
        .bucket(&ctx.dest.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| SyncError::S3(describe(&ctx.dest.with_key(key), &e)))?;
    let mut body = obj.body;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| SyncError::S3(format!("{}: {e}", ctx.dest.with_key(key))))? {
        hasher.update(&chunk);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn sse_of(opts: &SyncOptions) -> (Option<ServerSideEncryption>, Option<String>) {
    match &opts.sse {
        None => (None, None),
        Some(Sse::S3) => (Some(ServerSideEncryption::Aes256), None),
        Some(Sse::Kms(key)) => (Some(ServerSideEncryption::AwsKms), key.clone()),
    }
}

async fn upload_single(ctx: &Ctx, key: &str, f: &LocalFile) -> Result<(), SyncError> {
    let _permit = ctx.permits.acquire().await.expect("semaphore open");
    let body = ByteStream::from_path(&f.path).await.map_err(|e| SyncError::S3(format!("{}: {e}", f.path.display())))?;
    let sha = hex::decode(&f.sha256).expect("hex sha");
    let (sse, kms) = sse_of(&ctx.opts);
    ctx.client
        .put_object()
        .bucket(&ctx.dest.bucket)
        .key(key)
        .body(body)
        .content_length(f.size as i64)
        .checksum_sha256(b64(&sha))
        .metadata("sha256", &f.sha256)
        .set_server_side_encryption(sse)
        .set_ssekms_key_id(kms)
        // The body is protected by x-amz-checksum-sha256, which S3 verifies; hashing it a
        // second time for the signature would only cost CPU.
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(|e| SyncError::S3(describe(&format!("uploading {} to {}", f.rel, ctx.dest.with_key(key)), &e)))?;
    ctx.counters.bytes_sent.fetch_add(f.size, Ordering::Relaxed);
    ctx.progress.advance(0, f.size, f.size);
    Ok(())
}

/// SHA-256 (base64, as S3 wants it) of `len` bytes of a file from `offset`, streamed.
fn hash_region(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while uploading"));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(b64(&hasher.finalize()))
}

/// Error codes a server answers for an upload id it no longer knows: S3 says NoSuchUpload;
/// s3s-fs says AccessDenied.
const DEAD_UPLOAD: [&str; 2] = ["NoSuchUpload", "AccessDenied"];

/// How one multipart attempt failed.
enum Attempt {
    /// The recorded upload this attempt resumed is unknown to the server.
    Dead(String),
    Failed(SyncError),
}

impl From<SyncError> for Attempt {
    fn from(e: SyncError) -> Attempt {
        Attempt::Failed(e)
    }
}

/// Uploads in parts, resuming a recorded upload of the same content. If the server no longer
/// knows that upload (it expired, was aborted, or a kill came during its completion) the record
/// is dropped and the file uploaded afresh; a refusal of a fresh upload is reported as it is.
async fn upload_multipart(ctx: &Ctx, key: &str, f: &LocalFile) -> Result<(), SyncError> {
    match upload_parts(ctx, key, f, true).await {
        Ok(()) => Ok(()),
        Err(Attempt::Failed(e)) => Err(e),
        Err(Attempt::Dead(why)) => {
            let object = ctx.dest.with_key(key);
            tracing::info!(object = %object, "the recorded multipart upload is no longer known to the server ({why}); uploading afresh");
            if let Some(rec) = ctx.book.get(key) {
                abort(ctx, key, &rec.upload_id, "the recorded upload the server no longer resumes").await;
            }
            ctx.book.update(|u| {
                u.remove(key);
            })?;
            match upload_parts(ctx, key, f, false).await {
                Ok(()) => Ok(()),
                Err(Attempt::Failed(e)) => Err(e),
                Err(Attempt::Dead(why)) => Err(SyncError::S3(why)),
            }
        }
    }
}

/// A failure on a resumed upload that says its id is unknown is `Dead`: start afresh.
fn classify<E, R>(resumed: bool, what: String, e: &aws_sdk_s3::error::SdkError<E, R>) -> Attempt
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match e.code() {
        Some(code) if resumed && DEAD_UPLOAD.contains(&code) => Attempt::Dead(format!("{what}: {code}")),
        _ => Attempt::Failed(SyncError::S3(describe(&what, e))),
    }
}

async fn upload_parts(ctx: &Ctx, key: &str, f: &LocalFile, resume: bool) -> Result<(), Attempt> {
    let part_size = ctx.opts.part_size;
    let parts = f.size.div_ceil(part_size) as i32;
    let object = ctx.dest.with_key(key);
    // Reuse a recorded upload of the same content, keeping parts the server still holds.
    let mut reusable: BTreeMap<i32, PartRecord> = BTreeMap::new();
    let mut upload_id = None;
    if let Some(rec) = ctx.book.get(key).filter(|r| resume && r.sha256 == f.sha256 && r.part_size == part_size && r.size == f.size) {
        match ctx.client.list_parts().bucket(&ctx.dest.bucket).key(key).upload_id(&rec.upload_id).send().await {
            Ok(listed) => {
                for p in listed.parts() {
                    let (Some(n), Some(size)) = (p.part_number(), p.size()) else { continue };
                    if let Some(r) = rec.parts.get(&n) {
                        let checksum_ok = p.checksum_sha256().is_none_or(|c| c == r.sha256_b64);
                        if r.size == size as u64 && checksum_ok {
                            reusable.insert(n, r.clone());
                        }
                    }
                }
                upload_id = Some(rec.upload_id.clone());
            }
            Err(e) => {
                tracing::info!(object = %object, error = %describe("ListParts", &e), "the recorded upload cannot be resumed; starting a new one");
                abort(ctx, key, &rec.upload_id, "the recorded upload that could not be listed").await;
            }
        }
    }
    let resumed = upload_id.is_some();
    let upload_id = match upload_id {
        Some(id) => id,
        None => {
            let (sse, kms) = sse_of(&ctx.opts);
            let created = ctx
                .client
                .create_multipart_upload()
                .bucket(&ctx.dest.bucket)
                .key(key)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .metadata("sha256", &f.sha256)
                .set_server_side_encryption(sse)
                .set_ssekms_key_id(kms)
                .send()
                .await
                .map_err(|e| SyncError::S3(describe(&format!("starting the upload of {object}"), &e)))?;
            let id = created.upload_id().unwrap_or_default().to_string();
            let rec = MultipartRecord {
                upload_id: id.clone(),
                sha256: f.sha256.clone(),
                size: f.size,
                part_size,
                started_unix: now_unix(),
                parts: BTreeMap::new(),
            };
            ctx.book.update(|u| {
                u.insert(key.to_string(), rec);
            })?;
            id
        }
    };

    let completed: Vec<CompletedPart> = futures::stream::iter((1..=parts).map(|n| {
        let (upload_id, reusable, object) = (&upload_id, &reusable, &object);
        async move {
            let offset = (n as u64 - 1) * part_size;
            let len = part_size.min(f.size - offset);
            let _permit = ctx.permits.acquire().await.expect("semaphore open");
            // Hash the part, then stream it from the file: memory does not grow with part size.
            let path = f.path.clone();
            let sha = tokio::task::spawn_blocking(move || hash_region(&path, offset, len))
                .await
                .expect("hasher thread")
                .map_err(|e| SyncError::local(&f.path, e))?;
            if let Some(r) = reusable.get(&n).filter(|r| r.sha256_b64 == sha) {
                ctx.counters.parts_reused.fetch_add(1, Ordering::Relaxed);
                ctx.progress.advance(0, len, 0);
                return Ok(CompletedPart::builder().part_number(n).e_tag(&r.etag).checksum_sha256(sha).build());
            }
            let body = ByteStream::read_from()
                .path(&f.path)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| SyncError::S3(format!("{}: {e}", f.path.display())))?;
            let out = ctx
                .client
                .upload_part()
                .bucket(&ctx.dest.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(n)
                .content_length(len as i64)
                .checksum_sha256(&sha)
                .body(body)
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(|e| classify(resumed, format!("uploading part {n} of {object}"), &e))?;
            let etag = out.e_tag().unwrap_or_default().to_string();
            ctx.book.update(|u| {
                if let Some(rec) = u.get_mut(key) {
                    rec.parts.insert(n, PartRecord { sha256_b64: sha.clone(), etag: etag.clone(), size: len });
                }
            })?;
            ctx.counters.parts_sent.fetch_add(1, Ordering::Relaxed);
            ctx.counters.bytes_sent.fetch_add(len, Ordering::Relaxed);
            ctx.progress.advance(0, len, len);
            Ok::<_, Attempt>(CompletedPart::builder().part_number(n).e_tag(etag).checksum_sha256(sha).build())
        }
    }))
    .buffered(ctx.opts.concurrency.max(1))
    .try_collect()
    .await?;

    ctx.client
        .complete_multipart_upload()
        .bucket(&ctx.dest.bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .map_err(|e| classify(resumed, format!("completing the upload of {object}"), &e))?;
    ctx.book.update(|u| {
        u.remove(key);
    })?;
    Ok(())
}

/// Aborts recorded multipart uploads that are older than the threshold or whose file changed.
async fn abort_stale(ctx: &Ctx, files: &[LocalFile]) {
    let stale_after = ctx.opts.stale_after.unwrap_or(Duration::from_secs(24 * 3600)).as_secs();
    let records: Vec<(String, MultipartRecord)> =
        ctx.book.uploads.lock().expect("upload book lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (key, rec) in records {
        let current = files.iter().any(|f| ctx.dest.key(&f.rel) == key && f.sha256 == rec.sha256 && f.size == rec.size);
        if current && now_unix().saturating_sub(rec.started_unix) < stale_after {
            continue;
        }
        abort(ctx, &key, &rec.upload_id, "a stale multipart upload (old, or of a file that changed)").await;
        let _ = ctx.book.update(|u| {
            u.remove(&key);
        });
    }
}
