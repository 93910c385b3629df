//! Every path of a run folder, in one place: the files at its top (manifest, each stage's
//! report), the chunk and rejects files (`names`), and the folders of the later stages (the
//! import's work folder and its dry runs, cdc's segments, spill and state, verify's re-export
//! of the source, sync's records, the locks). Stages ask here; none joins a name of its own.
//! `docs/format.md` describes what each file holds.

use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const EXPORT_REPORT: &str = "export-report.json";
pub const SYNC_REPORT: &str = "sync-report.json";
pub const IMPORT_REPORT: &str = "import-report.json";
pub const ESTIMATE_REPORT: &str = "estimate-report.json";
pub const VERIFY_REPORT: &str = "verify-report.json";
/// sync's records: the local hash cache and the multipart uploads in flight.
pub const SYNC_DIR: &str = ".sync";
pub const SYNC_HASHES: &str = "local-hashes.json";
pub const SYNC_UPLOADS: &str = "uploads.json";
/// The import's work folder (checkpoint, spill, item and rejects files).
pub const IMPORT_DIR: &str = "import";
/// The checkpoint in a work folder (the import's, or a dry run's).
pub const IMPORT_STATE: &str = "state.json";
pub const CDC_DIR: &str = "cdc";
/// verify --against-source's export of the source as it is now.
pub const VERIFY_SOURCE: &str = "verify-source";
/// One lock file per stage (`lock`).
pub const LOCK_DIR: &str = ".locks";
/// Folders that belong where the later stages run: neither uploaded by sync nor overwritten by
/// a download.
pub const LOCAL_ONLY: [&str; 4] = [IMPORT_DIR, CDC_DIR, VERIFY_SOURCE, LOCK_DIR];

/// The import's own work folder.
pub fn import_dir(run: &Path) -> PathBuf {
    run.join(IMPORT_DIR)
}

/// The work folder of another command's dry run (`verify`, `estimate`, `bench`): its own, so it
/// never touches the import's checkpoint, whatever options it maps with.
pub fn dry_run_dir(run: &Path, command: &str) -> PathBuf {
    import_dir(run).join("dry-runs").join(command)
}

/// Folder of a target's `spill`, `items` or `rejects` files in work folder `work`.
pub fn target_dir(work: &Path, target: &str, what: &str) -> PathBuf {
    work.join(what).join(super::encode_component(target))
}

pub fn cdc_dir(run: &Path) -> PathBuf {
    run.join(CDC_DIR)
}

pub fn capture_state(run: &Path) -> PathBuf {
    cdc_dir(run).join("capture.json")
}

pub fn apply_state(run: &Path) -> PathBuf {
    cdc_dir(run).join("apply.json")
}

pub fn segments_dir(run: &Path) -> PathBuf {
    cdc_dir(run).join("segments")
}

/// The records of the segments (one JSON line each, `RECORDS_PER_FILE` to a file).
pub fn records_dir(run: &Path) -> PathBuf {
    cdc_dir(run).join("records")
}

pub fn segment_path(run: &Path, index: u64) -> PathBuf {
    segments_dir(run).join(format!("{index:08}.jsonl"))
}

/// Open transactions too large for memory, until they commit.
pub fn cdc_spill_dir(run: &Path) -> PathBuf {
    cdc_dir(run).join("spill")
}

/// Changes apply could not write, one JSON line each.
pub fn cdc_rejects(run: &Path) -> PathBuf {
    cdc_dir(run).join("rejects.jsonl")
}

pub fn verify_source(run: &Path) -> PathBuf {
    run.join(VERIFY_SOURCE)
}

pub fn sync_dir(run: &Path) -> PathBuf {
    run.join(SYNC_DIR)
}

pub fn lock_path(run: &Path, stage: &str) -> PathBuf {
    run.join(LOCK_DIR).join(stage.replace(' ', "-"))
}

/// Whether a path relative to the run lies in one of the `LOCAL_ONLY` folders.
pub fn local_only(rel: &str) -> bool {
    LOCAL_ONLY.iter().any(|d| rel == *d || rel.strip_prefix(d).is_some_and(|r| r.starts_with('/')))
}
