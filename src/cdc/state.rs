//! The staged changes' files in the run folder: `cdc/segments/NNNNNNNN.jsonl` (written by
//! capture, immutable once counted), `cdc/records/NNNNNNNN.jsonl` (the segments' records, a line
//! each: changes, SHA-256, binlog span; a file per 10,000 segments, NNNNNNNN the first),
//! `cdc/capture.json` (how many segments are counted, the newest one's record, and the binlog
//! position capture resumes from) and `cdc/apply.json` (how far apply got). The JSON files are
//! written whole and renamed into place; a record is appended and synced before capture.json
//! counts it, and a line past the count (a capture killed in between) is cut off by the next
//! capture. capture.json stays the same size however long capture runs (a week of half-second
//! segments is over a million records), so storing and reading it cost the same in the first
//! hour and after a week; apply reads the records with `Records`, each line once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CdcError;
use crate::source::snapshot::BinlogPosition;

pub use crate::run::paths::{cdc_dir, segment_path};

/// Segments whose records share a file.
pub const RECORDS_PER_FILE: u64 = 10_000;

/// The file segment `index`'s record is a line of.
pub fn records_path(run: &Path, index: u64) -> PathBuf {
    let first = (index.max(1) - 1) / RECORDS_PER_FILE * RECORDS_PER_FILE + 1;
    crate::run::paths::records_dir(run).join(format!("{first:08}.jsonl"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// 1, 2, …: the file `segments/{index:08}.jsonl`.
    pub index: u64,
    pub changes: u64,
    pub sha256: String,
    pub first_at: String,
    pub last_at: String,
    /// Commit time of the segment's last change, Unix seconds.
    pub last_ts: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CaptureState {
    /// The export's position this capture began at (`replay_from`): ties cdc/ to that export.
    #[serde(default)]
    pub began_at: BinlogPosition,
    /// Where the next capture starts: after the last transaction staged (or merely read).
    pub next: BinlogPosition,
    /// The server `next.file` and offset belong to (`source::position::server_identity`); on any
    /// other server capture resumes by `next.gtid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Segments staged: `segments/00000001.jsonl` to this one.
    #[serde(default)]
    pub segment_count: u64,
    /// The newest segment's record (its commit time is what status measures lag by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_segment: Option<SegmentInfo>,
    /// The records of a capture begun by an earlier version, which kept them all here: read as
    /// they are, never grown (later segments have their record in `records/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentInfo>,
    pub changes: u64,
    pub updated_at: String,
    /// Changes of XA transactions prepared (before `next`) but not yet committed, by xid: staged
    /// when their XA COMMIT is read.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub prepared_xa: std::collections::BTreeMap<String, Vec<super::event::Staged>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyState {
    /// Segments fully applied (the next one to read is `segments + 1`).
    pub segments: u64,
    /// Changes of the next segment already applied (when apply stopped inside it, at a DDL).
    pub offset: u64,
    pub changes: u64,
    pub rejected: u64,
    /// Binlog position and commit time of the last change applied.
    pub last_at: Option<String>,
    pub last_ts: Option<u32>,
    pub updated_at: String,
    /// The import generation (`ImportState::generation`) these changes were applied after.
    #[serde(default)]
    pub import_generation: Option<u64>,
    /// Length of `rejects.jsonl` when this state was stored: lines past it were written by an
    /// apply killed before it recorded them, and are written again by the rerun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejects_bytes: Option<u64>,
}

fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, CdcError> {
    crate::run::json::read(path).map_err(|crate::run::RunError::File { path, reason }| CdcError::Damaged { path, reason })
}

fn store<T: Serialize>(path: &Path, v: &T) -> Result<(), CdcError> {
    crate::run::json::write(path, v).map_err(|e| CdcError::io(path, e))
}

impl CaptureState {
    pub fn load(run: &Path) -> Result<Option<CaptureState>, CdcError> {
        load(&crate::run::paths::capture_state(run))
    }

    pub fn store(&self, run: &Path) -> Result<(), CdcError> {
        store(&crate::run::paths::capture_state(run), self)
    }

    /// How many segments are staged.
    pub fn staged(&self) -> u64 {
        self.segment_count.max(self.segments.len() as u64)
    }

    /// The newest segment's record.
    pub fn newest(&self) -> Option<&SegmentInfo> {
        self.last_segment.as_ref().or(self.segments.last())
    }

    /// Appends a new segment's record (its file written already) and syncs it; counted when
    /// this state is stored next.
    pub fn record(&mut self, run: &Path, info: SegmentInfo) -> Result<(), CdcError> {
        debug_assert_eq!(info.index, self.staged() + 1);
        let path = records_path(run, info.index);
        let io = |e: std::io::Error| CdcError::io(&path, e);
        let dir = path.parent().expect("in records/");
        let new = !path.exists();
        if new {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut line = serde_json::to_vec(&info).expect("record serializes");
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        std::io::Write::write_all(&mut f, &line).map_err(io)?;
        f.sync_data().map_err(io)?;
        if new {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.segment_count = info.index;
        self.last_segment = Some(info);
        Ok(())
    }

    /// Cuts the records past the count off (appended by a capture killed before it stored
    /// capture.json): the segments they name are written again.
    pub fn drop_uncounted_records(&self, run: &Path) -> Result<(), CdcError> {
        let count = self.staged();
        let dir = crate::run::paths::records_dir(run);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
        for e in entries.flatten() {
            let path = e.path();
            let first: Option<u64> = path.file_stem().and_then(|n| n.to_str()).and_then(|n| n.parse().ok());
            let Some(first) = first.filter(|_| path.extension().is_some_and(|x| x == "jsonl")) else { continue };
            if first > count {
                std::fs::remove_file(&path).map_err(|e| CdcError::io(&path, e))?;
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| CdcError::io(&path, e))?;
            let mut keep = 0;
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                match serde_json::from_slice::<SegmentInfo>(line) {
                    Ok(info) if info.index <= count && line.ends_with(b"\n") => keep += line.len(),
                    _ => break,
                }
            }
            if keep < bytes.len() {
                let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| CdcError::io(&path, e))?;
                f.set_len(keep as u64).and_then(|_| f.sync_all()).map_err(|e| CdcError::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// Reads the segments' records, each line once: the lines of one records file are kept, and
/// only what was appended since is read when a newer segment is asked for.
#[derive(Debug, Default)]
pub struct Records {
    path: PathBuf,
    read: u64,
    lines: Vec<SegmentInfo>,
}

impl Records {
    /// Segment `index`'s record as `capture` counts it; None past the count.
    pub fn get(&mut self, capture: &CaptureState, run: &Path, index: u64) -> Result<Option<SegmentInfo>, CdcError> {
        if index == 0 || index > capture.staged() {
            return Ok(None);
        }
        if let Some(info) = capture.segments.get(index as usize - 1) {
            return Ok(Some(info.clone()));
        }
        let path = records_path(run, index);
        if path != self.path {
            *self = Records { path: path.clone(), read: 0, lines: Vec::new() };
        }
        let damaged = |reason: String| CdcError::Damaged { path: path.clone(), reason };
        let at = |lines: &[SegmentInfo]| lines.first().and_then(|f| index.checked_sub(f.index)).and_then(|i| lines.get(i as usize)).cloned();
        if at(&self.lines).is_none() {
            use std::io::{Read, Seek};
            let mut f = std::fs::File::open(&path).map_err(|e| CdcError::io(&path, e))?;
            f.seek(std::io::SeekFrom::Start(self.read)).map_err(|e| CdcError::io(&path, e))?;
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(|e| CdcError::io(&path, e))?;
            for line in bytes.split_inclusive(|b| *b == b'\n').take_while(|l| l.ends_with(b"\n")) {
                let info: SegmentInfo = serde_json::from_slice(line).map_err(|e| damaged(e.to_string()))?;
                // A line past capture.json's count is not durable yet: a capture that restarts
                // cuts it and writes that segment again, so it is never kept here.
                if info.index > capture.staged() {
                    break;
                }
                self.read += line.len() as u64;
                self.lines.push(info);
            }
        }
        let info = at(&self.lines).ok_or_else(|| damaged(format!("capture.json counts {} segments, and segment {index}'s record is not here", capture.staged())))?;
        if info.index != index {
            return Err(damaged(format!("segment {index}'s line is segment {}'s record", info.index)));
        }
        Ok(Some(info))
    }
}

impl ApplyState {
    pub fn load(run: &Path) -> Result<Option<ApplyState>, CdcError> {
        load(&crate::run::paths::apply_state(run))
    }

    pub fn store(&self, run: &Path) -> Result<(), CdcError> {
        store(&crate::run::paths::apply_state(run), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(index: u64) -> SegmentInfo {
        SegmentInfo { index, changes: index % 7 + 1, sha256: format!("{index:064x}"), first_at: format!("b.000001:{index}"), last_at: format!("b.000001:{}", index + 1), last_ts: index as u32 }
    }

    /// Regression: capture.json held one record per segment (a trickle's half-second segments
    /// made it grow by ~40 MB a day, rewritten twice a second and re-read by apply and status).
    #[test]
    fn capture_json_stays_the_same_size_however_many_segments_are_counted() {
        let run = tempfile::tempdir().unwrap();
        let mut st = CaptureState::default();
        for i in 1..=3 {
            st.record(run.path(), info(i)).unwrap();
        }
        st.store(run.path()).unwrap();
        let small = std::fs::metadata(crate::run::paths::capture_state(run.path())).unwrap().len();
        // Far on (the records before left out), across the line between two records files.
        let run = tempfile::tempdir().unwrap();
        st.segment_count = RECORDS_PER_FILE - 2;
        for i in RECORDS_PER_FILE - 1..=RECORDS_PER_FILE + 3 {
            st.record(run.path(), info(i)).unwrap();
        }
        st.store(run.path()).unwrap();
        let later = std::fs::metadata(crate::run::paths::capture_state(run.path())).unwrap().len();
        assert!(later <= small + 64, "{small} bytes, then {later} (only numbers grew)");
        let st = CaptureState::load(run.path()).unwrap().unwrap();
        assert_eq!((st.staged(), st.newest().map(|s| s.index)), (RECORDS_PER_FILE + 3, Some(RECORDS_PER_FILE + 3)));
        let mut r = Records::default();
        for i in RECORDS_PER_FILE - 1..=RECORDS_PER_FILE + 3 {
            assert_eq!(r.get(&st, run.path(), i).unwrap(), Some(info(i)), "segment {i}");
        }
        assert_eq!(r.get(&st, run.path(), RECORDS_PER_FILE + 4).unwrap(), None, "past the count");
        assert!(records_path(run.path(), RECORDS_PER_FILE + 1).ends_with("00010001.jsonl"));
    }

    #[test]
    fn records_past_the_count_are_cut_off_and_appended_ones_read_once() {
        let run = tempfile::tempdir().unwrap();
        let mut st = CaptureState::default();
        st.record(run.path(), info(1)).unwrap();
        st.store(run.path()).unwrap();
        let mut r = Records::default();
        assert_eq!(r.get(&st, run.path(), 1).unwrap(), Some(info(1)));
        // A capture killed after appending 2 (and half of 3) and before storing capture.json.
        let counted = st.clone();
        st.record(run.path(), info(2)).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(records_path(run.path(), 3)).unwrap();
        std::io::Write::write_all(&mut f, br#"{"index":3,"chan"#).unwrap();
        assert_eq!(r.get(&counted, run.path(), 2).unwrap(), None, "not counted");
        counted.drop_uncounted_records(run.path()).unwrap();
        let text = std::fs::read_to_string(records_path(run.path(), 1)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        // Capture goes on from the count; the reader reads on from where it was.
        let mut st = counted;
        st.record(run.path(), info(2)).unwrap();
        assert_eq!(r.get(&st, run.path(), 2).unwrap(), Some(info(2)));
        assert_eq!(r.lines.len(), 2);
    }

    /// Regression: apply --follow read (and kept) a whole line past the count; the restarted
    /// capture cut it and wrote that segment again, and apply stopped with a false "damaged".
    #[test]
    fn a_record_past_the_count_is_not_kept_so_a_restarted_capture_s_rewrite_is_read() {
        let run = tempfile::tempdir().unwrap();
        let mut st = CaptureState::default();
        st.record(run.path(), info(1)).unwrap();
        st.store(run.path()).unwrap();
        let counted = st.clone();
        st.record(run.path(), info(2)).unwrap();
        let mut r = Records::default();
        assert_eq!(r.get(&counted, run.path(), 1).unwrap(), Some(info(1)));
        counted.drop_uncounted_records(run.path()).unwrap();
        let mut st = counted;
        let rewritten = SegmentInfo { sha256: "f".repeat(64), ..info(2) };
        st.record(run.path(), rewritten.clone()).unwrap();
        assert_eq!(r.get(&st, run.path(), 2).unwrap(), Some(rewritten));
    }

    #[test]
    fn a_capture_begun_by_an_earlier_version_keeps_its_records_in_capture_json() {
        let run = tempfile::tempdir().unwrap();
        let mut st = CaptureState { segments: vec![info(1), info(2)], ..Default::default() };
        assert_eq!(st.staged(), 2);
        st.record(run.path(), info(3)).unwrap();
        let mut r = Records::default();
        assert_eq!((r.get(&st, run.path(), 2).unwrap(), r.get(&st, run.path(), 3).unwrap()), (Some(info(2)), Some(info(3))));
        assert_eq!(st.segments.len(), 2, "never grown");
    }
}
