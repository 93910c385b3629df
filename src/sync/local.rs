//! The local side of a sync: the files of a run folder (no `.partial` leftovers, no sync state),
//! and their SHA-256s. Hashes are cached in `.sync/local-hashes.json` by size and modification
//! time, so a rerun with nothing changed reads no file, and a file whose content changed (even at
//! the same size) is hashed again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::run::hash_file;

pub use crate::run::paths::{local_only, SYNC_DIR as STATE_DIR, SYNC_HASHES as HASH_CACHE, SYNC_REPORT};

#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Relative path with `/` separators, e.g. `data/shop/orders/00001.parquet`.
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct CachedHash {
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
        if rel == STATE_DIR || rel == SYNC_REPORT || local_only(&rel) || rel.ends_with(".partial") || rel.ends_with(".tmp") {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else {
            out.push((rel, path));
        }
    }
    Ok(())
}

/// Every file of the run folder with its size and SHA-256 (hashed in parallel where the cache
/// does not vouch for it).
pub fn scan(root: &Path) -> std::io::Result<Vec<LocalFile>> {
    let mut paths = Vec::new();
    walk(root, root, &mut paths)?;
    paths.sort();
    let cache_path = root.join(STATE_DIR).join(HASH_CACHE);
    let cache: BTreeMap<String, CachedHash> =
        std::fs::read(&cache_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let hashed: Vec<(LocalFile, CachedHash)> = paths
        .par_iter()
        .map(|(rel, path)| {
            let meta = std::fs::metadata(path)?;
            let (size, mtime) = (meta.len(), mtime_ns(&meta));
            let sha256 = match cache.get(rel) {
                Some(c) if c.size == size && c.mtime_ns == mtime => c.sha256.clone(),
                _ => hash_file(path)?.sha256,
            };
            let entry = CachedHash { size, mtime_ns: mtime, sha256: sha256.clone() };
            Ok((LocalFile { rel: rel.clone(), path: path.clone(), size, sha256 }, entry))
        })
        .collect::<std::io::Result<_>>()?;
    let new_cache: BTreeMap<String, CachedHash> = hashed.iter().map(|(f, c)| (f.rel.clone(), c.clone())).collect();
    if new_cache != cache {
        std::fs::create_dir_all(root.join(STATE_DIR))?;
        crate::run::write_atomically(&cache_path, &serde_json::to_vec(&new_cache).expect("serializes"))?;
    }
    Ok(hashed.into_iter().map(|(f, _)| f).collect())
}

/// Records hashes computed elsewhere (the export hashes each chunk as it writes it) for files
/// whose size still matches, so the next scan need not read them.
pub fn remember(root: &Path, known: &[(String, u64, String)]) -> std::io::Result<()> {
    let cache_path = root.join(STATE_DIR).join(HASH_CACHE);
    let mut cache: BTreeMap<String, CachedHash> =
        std::fs::read(&cache_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    for (rel, size, sha256) in known {
        if let Ok(meta) = std::fs::metadata(root.join(rel)) {
            if meta.len() == *size {
                cache.insert(rel.clone(), CachedHash { size: *size, mtime_ns: mtime_ns(&meta), sha256: sha256.clone() });
            }
        }
    }
    std::fs::create_dir_all(root.join(STATE_DIR))?;
    crate::run::write_atomically(&cache_path, &serde_json::to_vec(&cache).expect("serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_stages_working_folders_stay_local() {
        assert!(local_only("import/state.json") && local_only("cdc/segments/00000001.jsonl") && local_only("verify-source/manifest.json"));
        assert!(!local_only("importer.csv") && !local_only("data/shop/import/00001.parquet") && !local_only("import-report.json"));
        let dir = tempfile::tempdir().unwrap();
        for f in ["data/a.parquet", "import/state.json", "cdc/capture.json", "manifest.json"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let mut rels: Vec<String> = scan(dir.path()).unwrap().into_iter().map(|f| f.rel).collect();
        rels.sort();
        assert_eq!(rels, ["data/a.parquet", "manifest.json"]);
    }

    #[test]
    fn same_size_change_is_rehashed_and_partials_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/a")).unwrap();
        std::fs::write(dir.path().join("data/a/1.csv"), b"aaaa").unwrap();
        std::fs::write(dir.path().join("data/a/2.csv.partial"), b"x").unwrap();
        let first = scan(dir.path()).unwrap();
        assert_eq!(first.len(), 1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("data/a/1.csv"), b"bbbb").unwrap();
        let second = scan(dir.path()).unwrap();
        assert_eq!(second[0].size, 4);
        assert_ne!(first[0].sha256, second[0].sha256, "content change at the same size is seen");
    }
}
