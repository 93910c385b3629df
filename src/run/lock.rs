//! One writer per stage per run folder: `.locks/<stage>` holds an exclusive `flock` for as long
//! as the process runs (the kernel drops it when the process dies, kill -9 included) and says
//! who holds it (pid, host, command, since when). A second `export`, `import`, `cdc capture` or
//! `cdc apply` on the same folder is refused naming the holder, instead of both writing the
//! same checkpoint, segment or chunk.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The folder of the lock files inside a run folder (never synced).
pub use super::paths::LOCK_DIR;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("another `mysql2ddb {stage}` is writing this run folder ({holder}): wait for it to end, or stop it first; two would write the same files")]
    Held { stage: String, holder: String },
}

/// Held while the stage runs; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct StageLock {
    _file: File,
}

/// Takes the lock of `stage` (`export`, `import`, `cdc capture`, …) in run folder `run`.
pub fn acquire(run: &Path, stage: &str) -> Result<StageLock, LockError> {
    let path = super::paths::lock_path(run, stage);
    let dir = path.parent().expect("a lock file has a folder");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LockError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io(&path))?;
    if !try_lock(&file).map_err(io(&path))? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let holder = if holder.is_empty() { "its holder wrote nothing yet".to_string() } else { holder.to_string() };
        return Err(LockError::Held { stage: stage.to_string(), holder });
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "this host".into());
    let line = format!("pid {} on {host}, since {}", std::process::id(), crate::clock::now_rfc3339());
    file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(line.as_bytes())).and_then(|_| file.sync_all()).map_err(io(&path))?;
    Ok(StageLock { _file: file })
}

/// Waits for, then takes, the lock of a step two stages may both run on one folder, one after
/// the other: the download of an s3:// run into a spool (apply and verify both fetch it when
/// `migrate` runs them side by side; the second finds it up to date).
pub fn wait(run: &Path, step: &str) -> Result<StageLock, LockError> {
    use std::os::fd::AsRawFd;
    let path = super::paths::lock_path(run, step);
    let io = |source| LockError::Io { path: path.clone(), source };
    std::fs::create_dir_all(path.parent().expect("a lock file has a folder")).map_err(io)?;
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    loop {
        // SAFETY: flock on a descriptor this File owns; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(StageLock { _file: file });
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(io(err));
        }
    }
}

/// Who holds `stage`'s lock on `run` now (its file's text), without touching the lock: the
/// kernel's table of `flock`s (/proc/locks) names the file's inode while a process holds it.
pub fn holder(run: &Path, stage: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = super::paths::lock_path(run, stage);
    let inode = std::fs::metadata(&path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let held = locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(5).and_then(|id| id.rsplit(':').next()).and_then(|i| i.parse::<u64>().ok()) == Some(inode)
    });
    held.then(|| std::fs::read_to_string(&path).unwrap_or_default().trim().to_string())
}

/// Fails naming the holder when any of `stages` is running on `run` (for a change that would
/// pull the folder from under them, such as `export --restart`).
pub fn check_free(run: &Path, stages: &[&str]) -> Result<(), LockError> {
    for stage in stages {
        if super::paths::lock_path(run, stage).exists() {
            drop(acquire(run, stage)?);
        }
    }
    Ok(())
}

/// An exclusive, non-blocking `flock`: Ok(false) when another open file holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this File owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_naming_the_first_and_the_lock_goes_with_it() {
        let run = tempfile::tempdir().unwrap();
        let first = acquire(run.path(), "cdc capture").unwrap();
        let err = acquire(run.path(), "cdc capture").unwrap_err().to_string();
        assert!(err.contains("mysql2ddb cdc capture") && err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(acquire(run.path(), "cdc apply").is_ok(), "another stage has its own lock");
        assert!(holder(run.path(), "cdc capture").is_some_and(|h| h.contains(&format!("pid {}", std::process::id()))));
        drop(first);
        assert_eq!(holder(run.path(), "cdc capture"), None, "seen as free once released");
        assert!(acquire(run.path(), "cdc capture").is_ok());
    }
}
