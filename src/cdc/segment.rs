//! Reading a staged segment for `cdc apply`. Its SHA-256 is checked first, in one streaming
//! pass, so a damaged segment applies nothing. Then its lines are parsed on a thread of their
//! own and handed over in slices, each already prepared (mapped to writes) by the caller's
//! closure: parsing and mapping overlap the writes of the slice before, and however large a
//! segment's transactions are, only a few slices are in memory. A DDL change ends the stream.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::Scope;

use sha2::{Digest, Sha256};

use super::event::{Change, Op};
use super::CdcError;

/// Slices parsed ahead of the one being applied.
const AHEAD: usize = 1;
const BUFFER: usize = 1 << 20;

/// What the reader hands over, in segment order.
pub enum Slice<T> {
    /// Changes `first..first + changes.len()` of the segment, and what `prepare` made of them.
    Changes { first: usize, changes: Vec<Change>, prepared: T },
    /// The segment's DDL change at `index`; nothing after it is read.
    Ddl { index: usize, change: Change },
}

/// Checks the segment at `path` against the SHA-256 capture recorded.
pub fn verify(path: &Path, sha256: &str) -> Result<(), CdcError> {
    let mut file = std::fs::File::open(path).map_err(|e| CdcError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = file.read(&mut buf).map_err(|e| CdcError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if hex::encode(hasher.finalize()) != sha256 {
        return Err(CdcError::Damaged {
            path: path.to_path_buf(),
            reason: format!(
                "the segment does not match its SHA-256 in capture.json; nothing after it was applied. It was changed after capture wrote it (or two captures wrote it at once). The way out: stop capture and apply, move the staged changes aside (mv {cdc} {cdc}.damaged), then run `mysql2ddb cdc capture` (it captures again from the export's position, while the source still holds those binlogs; if they are purged, export again) and `mysql2ddb cdc apply` (it applies every change again; its writes are idempotent)",
                cdc = path.parent().and_then(Path::parent).map(|p| p.display().to_string()).unwrap_or_else(|| "RUN/cdc".into())
            ),
        });
    }
    Ok(())
}

/// Streams the changes of a verified segment from index `skip` in slices of at most `slice`,
/// parsed and prepared on a thread of `scope`.
pub fn read_slices<'scope, T, F>(scope: &'scope Scope<'scope, '_>, path: PathBuf, skip: usize, slice: usize, prepare: F) -> Receiver<Result<Slice<T>, CdcError>>
where
    T: Send + 'scope,
    F: Fn(&[Change]) -> T + Send + 'scope,
{
    let (tx, rx) = sync_channel(AHEAD);
    scope.spawn(move || {
        let send_changes = |first: usize, changes: Vec<Change>| {
            let prepared = prepare(&changes);
            tx.send(Ok(Slice::Changes { first, changes, prepared })).is_ok()
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return drop(tx.send(Err(CdcError::io(&path, e)))),
        };
        let mut reader = BufReader::with_capacity(BUFFER, file);
        let (mut line, mut index, mut first) = (Vec::new(), 0usize, skip);
        let mut changes = Vec::with_capacity(slice.min(65_536));
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return drop(tx.send(Err(CdcError::io(&path, e)))),
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if text.is_empty() {
                continue;
            }
            index += 1;
            if index <= skip {
                continue;
            }
            let change: Change = match serde_json::from_slice(text) {
                Ok(c) => c,
                Err(e) => {
                    let reason = format!("line {index}: {e}");
                    return drop(tx.send(Err(CdcError::Damaged { path: path.clone(), reason })));
                }
            };
            if change.op == Op::Ddl {
                if !changes.is_empty() && !send_changes(first, std::mem::take(&mut changes)) {
                    return;
                }
                return drop(tx.send(Ok(Slice::Ddl { index: index - 1, change })));
            }
            changes.push(change);
            if changes.len() == slice {
                if !send_changes(first, std::mem::take(&mut changes)) {
                    return;
                }
                first = index;
            }
        }
        if !changes.is_empty() {
            send_changes(first, changes);
        }
    });
    rx
}
