//! Download of a run folder from `s3://bucket/prefix`: the manifest first (it says what must be
//! there and each chunk's SHA-256), then every object, streamed to `<file>.partial` while hashed,
//! checked against the manifest (or, for files the manifest does not hash, the object's recorded
//! SHA-256) and renamed. A mismatch fails loudly naming the object. Files already present with
//! the right hash are kept. The manifest is written locally last.
//!
//! Only files the run's layout names are written: the manifest's chunk and rejects files and the
//! export report; other objects under the prefix are left where they are, counted and named. A
//! key (or a manifest entry) with an empty, `.` or `..` component, or an absolute or backslashed
//! path, is refused with an error naming it: nothing from the bucket is written outside the run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::aws::s3::describe;
use super::local::LocalFile;
use super::upload::list_remote;
use super::{Counters, S3Location, SyncError, SyncOptions};
use crate::manifest::{ChunkState, Manifest, MANIFEST_FILE};
use crate::progress::Progress;

pub async fn download(
    client: Client,
    src: S3Location,
    run: &Path,
    local: Vec<LocalFile>,
    opts: SyncOptions,
    counters: Arc<Counters>,
    progress: Progress,
) -> Result<(), SyncError> {
    let manifest_key = src.key(MANIFEST_FILE);
    let manifest_bytes = match client.get_object().bucket(&src.bucket).key(&manifest_key).send().await {
        Ok(o) => o.body.collect().await.map_err(|e| SyncError::S3(format!("{}: {e}", src.with_key(&manifest_key))))?.into_bytes(),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            return Err(SyncError::S3(format!(
                "{} does not exist: not a run folder, or its export has not finished uploading",
                src.with_key(&manifest_key)
            )))
        }
        Err(e) => return Err(SyncError::S3(describe(&src.with_key(&manifest_key), &e))),
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| SyncError::S3(format!("{} is not a mysql2ddb manifest: {e}", src.with_key(&manifest_key))))?;

    // What the manifest vouches for: complete chunks with their SHA-256.
    let mut expected: HashMap<String, (u64, String)> = HashMap::new();
    // Every file the run's layout names; nothing else is written.
    let mut named: std::collections::HashSet<String> = RUN_FILES.iter().map(|f| f.to_string()).collect();
    for t in &manifest.tables {
        for c in &t.chunks {
            for file in std::iter::once(&c.file).chain(c.rejects_file.as_ref()) {
                if !safe_relative(file) {
                    return Err(SyncError::S3(format!("{}: chunk file {file:?} of table {} leaves the run folder (an empty, '.' or '..' component, or an absolute path); refusing to download", src.with_key(&manifest_key), t.schema.display_name())));
                }
                named.insert(file.clone());
            }
            if let (ChunkState::Complete, Some(sha)) = (c.state, &c.sha256) {
                expected.insert(c.file.clone(), (c.bytes, sha.clone()));
            }
        }
    }
    let remote = list_remote(&client, &src).await?;
    for file in expected.keys() {
        if !remote.contains_key(&src.key(file)) {
            return Err(SyncError::S3(format!("{} is named by the manifest but missing", src.with_key(&src.key(file)))));
        }
    }
    let local: HashMap<String, LocalFile> = local.into_iter().map(|f| (f.rel.clone(), f)).collect();
    let prefix = src.key("");
    let mut objects: Vec<(String, String, u64)> = Vec::new();
    let mut unnamed = Vec::new();
    for (key, size) in &remote {
        let Some(rel) = key.strip_prefix(&prefix) else { continue };
        // Keys the run does not name are never written, whatever they look like: a console's
        // "folder" marker (`prefix/`, `x/`) or a stray `../x` is left alone. The manifest's own
        // names were checked above, so a named file cannot leave the run folder.
        if !safe_relative(rel) {
            if !rel.is_empty() {
                unnamed.push(rel.to_string());
            }
            continue;
        }
        if named.contains(rel) && rel != MANIFEST_FILE {
            objects.push((rel.to_string(), key.clone(), *size));
        } else if rel != MANIFEST_FILE && !rel.starts_with(super::local::STATE_DIR) && !super::local::local_only(rel) {
            unnamed.push(rel.to_string());
        }
    }
    if !unnamed.is_empty() {
        tracing::warn!("{} objects under {} are not part of the run and were not downloaded (first: {})", unnamed.len(), src.with_key(&prefix), unnamed[0]);
    }
    progress.add_table("download".into(), objects.iter().map(|o| o.2).sum(), 0);

    let permits = Semaphore::new(opts.concurrency.max(1));
    let (client, src, expected, local) = (&client, &src, &expected, &local);
    futures::stream::iter(objects.into_iter().map(|(rel, key, size)| {
        let (permits, counters, progress) = (&permits, &counters, &progress);
        async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            let want = match expected.get(&rel) {
                Some((_, sha)) => Some(sha.clone()),
                None => client
                    .head_object()
                    .bucket(&src.bucket)
                    .key(&key)
                    .send()
                    .await
                    .ok()
                    .and_then(|h| h.metadata().and_then(|m| m.get("sha256").cloned())),
            };
            if let (Some(l), Some(w)) = (local.get(&rel), &want) {
                if &l.sha256 == w && l.size == size {
                    counters.skipped.fetch_add(1, Ordering::Relaxed);
                    progress.advance(0, size, 0);
                    return Ok(());
                }
            }
            fetch(client, src, &key, &run.join(&rel), want.as_deref(), counters, progress).await?;
            counters.uploaded.fetch_add(1, Ordering::Relaxed);
            Ok::<(), SyncError>(())
        }
    }))
    .buffer_unordered(opts.concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await?;

    crate::run::write_atomically(&run.join(MANIFEST_FILE), &manifest_bytes)
        .map_err(|e| SyncError::local(&run.join(MANIFEST_FILE), e))?;
    Ok(())
}

/// Files of a run folder besides the manifest's chunks and rejects.
const RUN_FILES: [&str; 2] = [MANIFEST_FILE, crate::run::paths::EXPORT_REPORT];

/// Whether `rel` stays inside the folder it is joined to: relative, `/`-separated, no empty,
/// `.` or `..` component, no backslash or NUL.
pub fn safe_relative(rel: &str) -> bool {
    !rel.is_empty() && !rel.contains(['\\', '\0']) && rel.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Streams one object to `<dest>.partial`, hashing; renames only when the hash is right.
async fn fetch(
    client: &Client,
    src: &S3Location,
    key: &str,
    dest: &Path,
    want: Option<&str>,
    counters: &Counters,
    progress: &Progress,
) -> Result<(), SyncError> {
    let object = src.with_key(key);
    let out = client.get_object().bucket(&src.bucket).key(key).send().await.map_err(|e| SyncError::S3(describe(&object, &e)))?;
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|e| SyncError::local(dir, e))?;
    }
    let partial = dest.with_file_name(format!("{}.partial", dest.file_name().unwrap_or_default().to_string_lossy()));
    let mut file = tokio::fs::File::create(&partial).await.map_err(|e| SyncError::local(&partial, e))?;
    let mut body = out.body;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| SyncError::S3(format!("{object}: {e}")))? {
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| SyncError::local(&partial, e))?;
        counters.bytes_sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        progress.advance(0, chunk.len() as u64, chunk.len() as u64);
    }
    file.sync_all().await.map_err(|e| SyncError::local(&partial, e))?;
    drop(file);
    let got = hex::encode(hasher.finalize());
    if let Some(want) = want {
        if got != want {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(SyncError::Mismatch { object, expected: want.to_string(), got });
        }
    }
    tokio::fs::rename(&partial, dest).await.map_err(|e| SyncError::local(dest, e))
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn only_paths_inside_the_run_are_safe() {
        assert!(safe_relative("data/shop/orders/00001.parquet"));
        assert!(safe_relative("export-report.json"));
        for bad in ["", "../x", "data/../../x", "/etc/cron.d/x", "data//x", "./x", "data/.", "a\\..\\b", "x/"] {
            assert!(!safe_relative(bad), "{bad:?}");
        }
    }
}
