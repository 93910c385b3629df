//! Every JSON file of a run (checkpoints, capture and apply state, each stage's report) read and
//! written one way: pretty JSON, written whole under its final name or not at all (a sibling
//! `.tmp`, synced, renamed), its folder made first; a file that is not there reads as None, one
//! that cannot be read or parsed is a `RunError` naming it.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::RunError;

/// The file at `path`, or None when there is none.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RunError> {
    let file = |reason: String| RunError::File { path: path.to_path_buf(), reason };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| file(format!("not the JSON this version writes: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file(e.to_string())),
    }
}

/// Writes `value` to `path` whole.
pub fn write<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    super::write_atomically(path, &serde_json::to_vec_pretty(value).expect("run files serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_none_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdc/apply.json");
        assert!(read::<serde_json::Value>(&path).unwrap().is_none());
        write(&path, &serde_json::json!({"changes": 3})).unwrap();
        assert_eq!(read::<serde_json::Value>(&path).unwrap().unwrap()["changes"], 3);
        std::fs::write(&path, b"{\"changes\": ").unwrap();
        let e = read::<serde_json::Value>(&path).unwrap_err().to_string();
        assert!(e.contains("cdc/apply.json") && e.contains("not the JSON"), "{e}");
    }
}
