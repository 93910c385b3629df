//! The open transaction's changes, held in memory up to a bound (`cdc capture --tx-memory-mb`)
//! and appended past it to a spill file in `cdc/spill/` (JSON lines, the segments' format), so a
//! transaction of millions of rows costs capture disk, not memory. `ROLLBACK TO` a savepoint
//! cuts the memory part or the file. At commit the transaction becomes a `Committed`: the spill
//! file, then the changes still in memory, which the stager copies into its next segment with
//! the commit's position. Spill files live only until that segment is recorded; a capture that
//! starts removes any left by one that was killed (it resumes before their transactions).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::event::{Change, Staged};
use super::CdcError;

/// How a spilled change's line starts: its `at` (the commit's position) is not known yet.
const UNSET_AT: &[u8] = b"{\"at\":\"\",";

pub fn spill_dir(run: &Path) -> PathBuf {
    crate::run::paths::cdc_spill_dir(run)
}

/// Removes the spill files a killed capture left.
pub fn remove_leftovers(run: &Path) -> Result<(), CdcError> {
    let dir = spill_dir(run);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CdcError::io(&dir, e)),
    }
}

/// The spilled part of a transaction.
#[derive(Debug)]
pub struct Spilled {
    pub path: PathBuf,
    pub changes: u64,
    /// Commit time of its last change.
    pub last_ts: u32,
}

impl Spilled {
    /// Copies the spilled changes to `out` with `at` set, calling `wrote` with each piece
    /// written (for the segment's hash). A line is streamed through the read buffer, never held
    /// whole: one line can be a large row's, and holding it would cost its size again. A line's
    /// last piece ends with its newline, and no other piece holds one.
    pub fn copy_to(&self, at: &str, out: &mut impl Write, mut wrote: impl FnMut(&[u8])) -> Result<(), CdcError> {
        let io = |e: std::io::Error| CdcError::io(&self.path, e);
        let damaged = |reason: String| CdcError::Damaged { path: self.path.clone(), reason };
        let mut reader = BufReader::with_capacity(1 << 20, File::open(&self.path).map_err(io)?);
        let head = [b"{\"at\":", serde_json::to_string(at).expect("a string serializes").as_bytes(), b","].concat();
        let mut n = 0u64;
        while !reader.fill_buf().map_err(io)?.is_empty() {
            let mut start = [0u8; UNSET_AT.len()];
            match reader.read_exact(&mut start) {
                Ok(()) if start == UNSET_AT => {}
                Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => return Err(io(e)),
                _ => return Err(damaged(format!("line {} does not start as a spilled change", n + 1))),
            }
            out.write_all(&head).map_err(io)?;
            wrote(&head);
            loop {
                let buf = reader.fill_buf().map_err(io)?;
                if buf.is_empty() {
                    return Err(damaged(format!("line {} ends before its newline", n + 1)));
                }
                let (len, end) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                out.write_all(&buf[..len]).map_err(io)?;
                wrote(&buf[..len]);
                reader.consume(len);
                if end {
                    break;
                }
            }
            n += 1;
        }
        if n != self.changes {
            return Err(damaged(format!("{n} changes where {} were spilled", self.changes)));
        }
        Ok(())
    }

    fn read_all(&self) -> Result<Vec<Staged>, CdcError> {
        let io = |e: std::io::Error| CdcError::io(&self.path, e);
        let reader = BufReader::new(File::open(&self.path).map_err(io)?);
        reader
            .lines()
            .map(|l| {
                let l = l.map_err(io)?;
                let c: Change = serde_json::from_str(&l).map_err(|e| CdcError::Damaged { path: self.path.clone(), reason: e.to_string() })?;
                Ok(Staged::from_change(&c))
            })
            .collect()
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A committed transaction: the spilled changes first, then `changes`, all at `at`.
#[derive(Debug, Default)]
pub struct Committed {
    /// The commit's position (the lines get it as they are written).
    pub at: String,
    pub spilled: Option<Spilled>,
    pub changes: Vec<Staged>,
}

impl Committed {
    pub fn len(&self) -> u64 {
        self.spilled.as_ref().map_or(0, |s| s.changes) + self.changes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn last_ts(&self) -> Option<u32> {
        self.changes.last().map(|c| c.ts).or(self.spilled.as_ref().map(|s| s.last_ts))
    }
}

struct SpillFile {
    path: PathBuf,
    out: BufWriter<File>,
    changes: u64,
    last_ts: u32,
}

/// The open transaction.
#[derive(Default)]
pub struct OpenTx {
    dir: PathBuf,
    /// Bytes of changes held in memory before they go to the spill file (0: never spill).
    limit: usize,
    mem: Vec<Staged>,
    mem_bytes: usize,
    file: Option<SpillFile>,
    /// Names the next spill file.
    seq: u64,
}

impl std::fmt::Debug for OpenTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenTx {{ in memory: {}, spilled: {} }}", self.mem.len(), self.file.as_ref().map_or(0, |s| s.changes))
    }
}

impl OpenTx {
    /// Spills to files in `dir` past `limit` bytes in memory (0: never).
    pub fn new(dir: PathBuf, limit: usize) -> OpenTx {
        OpenTx { dir, limit, ..OpenTx::default() }
    }

    pub fn len(&self) -> usize {
        self.file.as_ref().map_or(0, |s| s.changes as usize) + self.mem.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds changes; past the bound, the ones in memory go to the spill file.
    pub fn extend(&mut self, changes: Vec<Staged>) -> Result<(), CdcError> {
        self.mem_bytes += changes.iter().map(Staged::bytes).sum::<usize>();
        self.mem.extend(changes);
        if self.limit > 0 && self.mem_bytes > self.limit {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), CdcError> {
        if self.file.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| CdcError::io(&self.dir, e))?;
            self.seq += 1;
            let path = self.dir.join(format!("tx-{}-{}.jsonl", std::process::id(), self.seq));
            let f = File::create(&path).map_err(|e| CdcError::io(&path, e))?;
            tracing::debug!("the open transaction passed the memory bound: spilling it to {}", path.display());
            self.file = Some(SpillFile { path, out: BufWriter::with_capacity(1 << 20, f), changes: 0, last_ts: 0 });
        }
        let s = self.file.as_mut().expect("just made");
        for c in self.mem.drain(..) {
            c.write_to(b"\"\"", &mut s.out, |_| {}).map_err(|e| CdcError::io(&s.path, e))?;
            s.changes += 1;
            s.last_ts = c.ts;
        }
        self.mem_bytes = 0;
        Ok(())
    }

    /// Drops every change after the first `len` (`ROLLBACK TO` a savepoint taken at `len`).
    pub fn truncate(&mut self, len: usize) -> Result<(), CdcError> {
        let spilled = self.file.as_ref().map_or(0, |s| s.changes as usize);
        if len >= spilled {
            self.mem.truncate(len - spilled);
            self.mem_bytes = self.mem.iter().map(Staged::bytes).sum();
            return Ok(());
        }
        self.mem.clear();
        self.mem_bytes = 0;
        let s = self.file.as_mut().expect("spilled changes are in a file");
        let io = |e: std::io::Error| CdcError::io(&s.path, e);
        s.out.flush().map_err(io)?;
        // The byte where change `len` starts: savepoints are rare, so the lines are counted.
        let mut reader = BufReader::new(File::open(&s.path).map_err(io)?);
        let (mut offset, mut buf) = (0u64, Vec::new());
        for _ in 0..len {
            buf.clear();
            offset += reader.read_until(b'\n', &mut buf).map_err(io)? as u64;
        }
        let f = s.out.get_mut();
        f.set_len(offset).map_err(io)?;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        s.changes = len as u64;
        // `buf` holds the last line kept.
        s.last_ts = if len > 0 { serde_json::from_slice::<Change>(&buf).map_err(|e| CdcError::Damaged { path: s.path.clone(), reason: e.to_string() })?.ts } else { 0 };
        Ok(())
    }

    /// Drops the transaction (`ROLLBACK`).
    pub fn clear(&mut self) {
        self.mem.clear();
        self.mem_bytes = 0;
        if let Some(s) = self.file.take() {
            drop(s.out);
            let _ = std::fs::remove_file(&s.path);
        }
    }

    /// The transaction, closed: the spill file flushed and handed over (not synced: a crash
    /// before its segment is named loses only the spill, and capture reads the transaction again).
    pub fn take(&mut self) -> Result<Committed, CdcError> {
        let changes = std::mem::take(&mut self.mem);
        self.mem_bytes = 0;
        let spilled = match self.file.take() {
            None => None,
            Some(s) => {
                let path = s.path.clone();
                let last_ts = s.last_ts;
                let f = s.out.into_inner().map_err(|e| CdcError::io(&path, e.into_error()))?;
                drop(f);
                Some(Spilled { path, changes: s.changes, last_ts })
            }
        };
        Ok(Committed { at: String::new(), spilled, changes })
    }

    /// The whole transaction in memory (an XA PREPARE keeps it in capture.json).
    pub fn take_in_memory(&mut self) -> Result<Vec<Staged>, CdcError> {
        let Committed { spilled, changes, .. } = self.take()?;
        let mut all = match &spilled {
            Some(s) => {
                let v = s.read_all()?;
                s.remove();
                v
            }
            None => Vec::new(),
        };
        all.extend(changes);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::event::Op;
    use crate::value::Cell;

    fn typed(id: u32) -> Change {
        Change { at: String::new(), ts: id, table: 0, op: Op::Update, before: Some(vec![Cell::Num(id.to_string())]), after: Some(vec![Cell::Text("x\ny".repeat(20))]), query: None }
    }

    fn change(id: u32) -> Staged {
        Staged::from_change(&typed(id))
    }

    /// The staged lines of a committed transaction, as the stager writes them.
    fn staged(tx: &Committed) -> Vec<Change> {
        let mut out = Vec::new();
        if let Some(s) = &tx.spilled {
            let mut lines = 0;
            s.copy_to(&tx.at, &mut out, |piece| {
                let newlines = piece.iter().filter(|&&b| b == b'\n').count();
                assert!(newlines == 0 || newlines == 1 && piece.ends_with(b"\n"), "a newline only at a piece's end");
                lines += newlines as u64;
            })
            .unwrap();
            assert_eq!(lines, s.changes);
        }
        let mut all: Vec<Change> = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
        all.extend(tx.changes.iter().map(|c| Change { at: tx.at.clone(), ..c.change().unwrap() }));
        all
    }

    #[test]
    fn past_the_bound_changes_go_to_the_file_and_come_back_in_order_with_the_commit_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = OpenTx::new(dir.path().join("spill"), 2_000);
        for id in 0..100 {
            tx.extend(vec![change(id)]).unwrap();
        }
        assert_eq!(tx.len(), 100);
        let mut done = tx.take().unwrap();
        let spilled = done.spilled.as_ref().expect("past 2,000 bytes the transaction spilled");
        assert!(spilled.changes > 50 && spilled.changes < 100, "the last changes stay in memory: {} spilled", spilled.changes);
        done.at = "bin.000001:42".into();
        let all = staged(&done);
        assert_eq!(all, (0..100).map(|id| Change { at: "bin.000001:42".into(), ..typed(id) }).collect::<Vec<_>>());
        assert_eq!(done.last_ts(), Some(99));
        assert_eq!(done.len(), 100);
    }

    #[test]
    fn rollback_to_a_savepoint_cuts_the_memory_part_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = OpenTx::new(dir.path().join("spill"), 2_000);
        tx.extend((0..60).map(change).collect()).unwrap();
        tx.extend((60..63).map(change).collect()).unwrap();
        // Inside the part still in memory.
        tx.truncate(61).unwrap();
        assert_eq!(tx.len(), 61);
        // Inside the file: the savepoint was taken before anything spilled.
        tx.truncate(25).unwrap();
        assert_eq!(tx.len(), 25);
        tx.extend((100..105).map(change).collect()).unwrap();
        let mut done = tx.take().unwrap();
        assert_eq!(done.spilled.as_ref().unwrap().changes, 25);
        assert_eq!(done.last_ts(), Some(104));
        done.at = "f:1".into();
        let ids: Vec<u32> = staged(&done).iter().map(|c| c.ts).collect();
        assert_eq!(ids, (0..25).chain(100..105).collect::<Vec<_>>());
        // Cut to nothing: an empty file, then more changes.
        let mut tx = OpenTx::new(dir.path().join("spill"), 2_000);
        tx.extend((0..60).map(change).collect()).unwrap();
        tx.truncate(0).unwrap();
        tx.extend(vec![change(7)]).unwrap();
        let mut done = tx.take().unwrap();
        done.at = "f:2".into();
        assert_eq!(staged(&done).iter().map(|c| c.ts).collect::<Vec<_>>(), vec![7]);
    }

    #[test]
    fn a_rollback_removes_the_file_and_a_prepare_takes_everything_back_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("spill");
        let mut tx = OpenTx::new(spill.clone(), 2_000);
        tx.extend((0..60).map(change).collect()).unwrap();
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 1);
        tx.clear();
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
        assert!(tx.is_empty());
        tx.extend((0..60).map(change).collect()).unwrap();
        tx.extend(vec![change(60)]).unwrap();
        let all = tx.take_in_memory().unwrap();
        assert_eq!(all.iter().map(|c| c.ts).collect::<Vec<_>>(), (0..61).collect::<Vec<_>>());
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    }

    #[test]
    fn a_large_row_s_line_in_its_own_file_is_spilled_and_staged_as_the_same_bytes() {
        use crate::source::types::ColumnKind;
        let col = crate::source::schema::ColumnSchema { name: "b".into(), ordinal: 1, mysql_type: "longblob".into(), nullable: true, charset: None, collation: None, kind: ColumnKind::Binary };
        let plan = [crate::value::binlog::ColumnPlan::new(&col)];
        let blob: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("spill");
        let image = [crate::value::row_image::Raw::Bytes(&blob)];
        let row = |spool: Option<&Path>| Staged::row(5, 0, Op::Insert, &plan, [None, Some(&image[..])], &mut Default::default(), spool).unwrap();
        let want = Change { at: "f:9".into(), ..row(None).change().unwrap() };
        // Spilled past a bound of one byte, then staged from the spill file.
        let mut tx = OpenTx::new(spill.clone(), 1);
        tx.extend(vec![change(1), row(Some(&spill)), change(3)]).unwrap();
        let mut done = tx.take().unwrap();
        done.at = "f:9".into();
        assert_eq!(staged(&done), vec![Change { at: "f:9".into(), ..typed(1) }, want.clone(), Change { at: "f:9".into(), ..typed(3) }]);
        let left: Vec<_> = std::fs::read_dir(&spill).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "only the spill file is left, the line's own file went once copied: {left:?}");
        // Held in memory (no bound), it is staged the same.
        let mut tx = OpenTx::new(spill.clone(), 0);
        tx.extend(vec![row(Some(&spill))]).unwrap();
        let mut done = tx.take().unwrap();
        done.at = "f:9".into();
        assert_eq!(staged(&done), vec![want]);
    }

    #[test]
    fn a_spilled_line_larger_than_the_read_buffer_is_copied_in_pieces_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = OpenTx::new(dir.path().join("spill"), 1);
        let big = Change { after: Some(vec![Cell::Text("é\"\\".repeat(1 << 20))]), ..typed(2) };
        tx.extend(vec![change(1), Staged::from_change(&big), change(3)]).unwrap();
        let mut done = tx.take().unwrap();
        done.at = "mysql-bin.000001:99".into();
        let s = done.spilled.as_ref().unwrap();
        let (mut out, mut pieces, mut hashed) = (Vec::new(), 0, Vec::new());
        s.copy_to(&done.at, &mut out, |p| {
            pieces += 1;
            hashed.extend_from_slice(p);
        })
        .unwrap();
        let mut want = Vec::new();
        for c in [typed(1), big, typed(3)] {
            let mut line = Vec::new();
            Change { at: done.at.clone(), ..c }.to_line(&mut line);
            want.extend(line);
        }
        assert!(out == want, "the lines serde_json writes for the changes with their position");
        assert!(hashed == want, "every byte written was handed to the hash, once, in order");
        assert!(pieces > 3 * 2 + 2, "the large line went through in pieces ({pieces})");
        // A last line cut before its newline is damage, not a change.
        let text = std::fs::read(&s.path).unwrap();
        std::fs::write(&s.path, &text[..text.len() - 1]).unwrap();
        let err = s.copy_to(&done.at, &mut Vec::new(), |_| {}).unwrap_err().to_string();
        assert!(err.contains("line 3 ends before its newline"), "{err}");
    }

    #[test]
    fn a_changed_spill_file_is_named_not_staged() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = OpenTx::new(dir.path().join("spill"), 1);
        tx.extend((0..3).map(change).collect()).unwrap();
        let done = tx.take().unwrap();
        let s = done.spilled.as_ref().unwrap();
        let text = std::fs::read_to_string(&s.path).unwrap();
        std::fs::write(&s.path, text.replacen("{\"at\":\"\",", "{\"at\":\"x\",", 1)).unwrap();
        let err = s.copy_to("f:1", &mut Vec::new(), |_| {}).unwrap_err().to_string();
        assert!(err.contains(&s.path.display().to_string()), "{err}");
    }
}
