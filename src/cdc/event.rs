//! A captured change as it is staged: the binlog coordinate after its transaction, the commit
//! time, the table, and the row images as `Cell`s (typed by `value::binlog` from the manifest's
//! schema), the same values the import reads from chunk files, so apply maps them with the
//! import's code. Apply reads a `Change`; capture holds a `Staged`, the same line already
//! rendered but for the position, which only the commit gives, so a row's values are never
//! owned one by one on their way from the row image to the segment.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::large_line::{LineFile, LineWriter};
use super::CdcError;
use crate::value::binlog::{CellView, ColumnPlan};
use crate::value::row_image::Raw;
use crate::value::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// A statement that changes a captured table's definition: apply stops at it.
    Ddl,
}

/// One staged change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `file:position` of the end of the transaction that holds the change.
    pub at: String,
    /// Commit time on the source, Unix seconds.
    pub ts: u32,
    /// Index of the table in the manifest.
    pub table: usize,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Vec<Cell>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Cell>>,
    /// The statement, for `Ddl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl Change {
    /// The change as its segment line (JSON and a newline) in `line`, which is cleared first.
    /// Capture's segments and spill files both write lines this way, so a spilled line differs
    /// from the staged one only by its `at`.
    pub fn to_line(&self, line: &mut Vec<u8>) {
        line.clear();
        serde_json::to_writer(&mut *line, self).expect("changes serialize");
        line.push(b'\n');
    }
}

/// How a line starts before its `at`.
const AT: &[u8] = b"{\"at\":";

/// Unused bytes a rendered line may keep in its buffer (small rows keep their first 256).
const SLACK: usize = 4096;

/// A row whose values' bytes pass this has its line's buffer sized up front, by its column
/// plans' bounds (`ColumnPlan::json_len_bound`).
const SIZED_ABOVE: usize = 16 << 10;

/// A row whose values' bytes pass this has its line written to a file (`large_line`), given a
/// folder for it: the line of a 1 MiB BLOB is 1.4 MB, of a 1 GiB one 1.4 GB.
pub const LINE_FILE_ABOVE: usize = 1 << 20;

/// The bytes a value carries in the row image, where it can be large.
fn raw_len(v: &Raw) -> usize {
    match v {
        Raw::Bytes(b) => b.len(),
        Raw::Json(s) | Raw::Decimal(s) => s.len(),
        _ => 0,
    }
}

/// A change as capture holds it until its transaction commits: the line it stages, rendered
/// but for its `at`. `Change::to_line` and `Staged::write_line` give the same bytes for the
/// same change.
#[derive(Debug, Clone, PartialEq)]
pub struct Staged {
    pub ts: u32,
    pub table: usize,
    pub op: Op,
    /// The statement of a `Ddl` change, where capture looks for it.
    pub query: Option<String>,
    /// The line after `{"at":"…",` up to its closing brace, without the newline.
    body: Body,
}

/// Where a staged line's body is: in memory, or a large row's in its file (shared by clones,
/// removed with the last).
#[derive(Debug, Clone, PartialEq)]
enum Body {
    Line(Vec<u8>),
    File(Arc<LineFile>),
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Ddl => "ddl",
        }
    }
}

impl Staged {
    /// A change rendered by serde (statements, and what capture.json kept).
    pub fn from_change(c: &Change) -> Staged {
        let mut line = Vec::new();
        Change { at: String::new(), ..c.clone() }.to_line(&mut line);
        let body = Body::Line(line[AT.len() + 3..line.len() - 1].to_vec());
        Staged { ts: c.ts, table: c.table, op: c.op, query: c.query.clone(), body }
    }

    /// A row change rendered from its `before` and `after` images (None where the event has
    /// none), each value typed by its column's plan into `scratch` and written in place. A
    /// large row's line goes to a file in `spool` where one is given.
    pub fn row(ts: u32, table: usize, op: Op, plan: &[ColumnPlan], images: [Option<&[Raw]>; 2], scratch: &mut (String, Vec<u8>), spool: Option<&Path>) -> Result<Staged, String> {
        // A line with a large value is sized before it is written: grown by doubling, its buffer
        // would hold the value twice over while it moved. A small row's values are not looked at.
        let raw: usize = images.iter().flatten().flat_map(|v| v.iter()).map(raw_len).sum();
        if let Some(dir) = spool.filter(|_| raw > LINE_FILE_ABOVE) {
            // Into its file from the first byte.
            let mut line = LineOut::new(Some(dir), 0);
            let written = render(&mut line, ts, table, op, plan, images, scratch, |out, v| v.write_json_to(out));
            if let Some(e) = line.failure() {
                return Err(format!("a large row's line: {e}"));
            }
            match written {
                Err(Failed::Value(e)) => return Err(e),
                Err(Failed::Io(e)) => return Err(format!("a large row's line: {e}")),
                Ok(()) => return line.staged(ts, table, op).map_err(|e| format!("a large row's line: {e}")),
            }
        }
        let capacity = match raw > SIZED_ABOVE {
            true => 256 + images.iter().flatten().flat_map(|v| plan.iter().zip(v.iter())).map(|(p, v)| p.json_len_bound(v)).sum::<usize>(),
            false => 256,
        };
        let mut body = Vec::with_capacity(capacity);
        let written = render(&mut body, ts, table, op, plan, images, scratch, |out, v| {
            v.write_json(out);
            Ok(())
        });
        match written {
            Ok(()) => {}
            Err(Failed::Value(e)) => return Err(e),
            Err(Failed::Io(e)) => unreachable!("writing to memory does not fail: {e}"),
        }
        // A large value's last push can double the buffer: give back what the line does not use.
        if body.capacity() - body.len() > SLACK {
            body.shrink_to_fit();
        }
        Ok(Staged { ts, table, op, query: None, body: Body::Line(body) })
    }

    /// Writes the line with `at` (already a JSON string) and its newline to `out`, each piece
    /// also shown to `seen` (a segment's hash). A line in a file is copied in pieces.
    pub fn write_to(&self, at_json: &[u8], out: &mut impl Write, mut seen: impl FnMut(&[u8])) -> std::io::Result<()> {
        let mut put = |piece: &[u8]| {
            seen(piece);
            out.write_all(piece)
        };
        put(AT)?;
        put(at_json)?;
        put(b",")?;
        match &self.body {
            Body::Line(body) => put(body)?,
            Body::File(file) => file.copy(&mut put)?,
        }
        put(b"\n")
    }

    /// About the memory the change holds: its line's buffer and the structure around it.
    pub fn bytes(&self) -> usize {
        let body = match &self.body {
            Body::Line(b) => b.capacity(),
            Body::File(f) => f.path.as_os_str().len(),
        };
        96 + body + self.query.as_ref().map_or(0, String::len)
    }

    /// The change this line stands for, read back as apply reads it (a line in a file is read
    /// whole).
    pub fn change(&self) -> std::io::Result<Change> {
        let mut line = Vec::new();
        self.write_to(b"\"\"", &mut line, |_| {})?;
        serde_json::from_slice(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// Why a row's body could not be written: a value its plan refused, or the writer failed.
enum Failed {
    Value(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for Failed {
    fn from(e: std::io::Error) -> Failed {
        Failed::Io(e)
    }
}

/// Writes a row's body (`"ts":…,"table":…,"op":…,"before":[…],"after":[…]}`) to `out`, each
/// value by `value`.
#[allow(clippy::too_many_arguments)]
fn render<W: Write>(
    out: &mut W,
    ts: u32,
    table: usize,
    op: Op,
    plan: &[ColumnPlan],
    images: [Option<&[Raw]>; 2],
    scratch: &mut (String, Vec<u8>),
    mut value: impl FnMut(&mut W, CellView) -> std::io::Result<()>,
) -> Result<(), Failed> {
    write_head(out, ts, table, op)?;
    for (after, image) in [false, true].into_iter().zip(images) {
        let Some(values) = image else { continue };
        open_image(out, after)?;
        for (i, (p, v)) in plan.iter().zip(values).enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            value(out, p.view(v, &mut scratch.0, &mut scratch.1).map_err(Failed::Value)?)?;
        }
        out.write_all(b"]")?;
    }
    out.write_all(b"}")?;
    Ok(())
}

/// A row's line up to its images: `"ts":…,"table":…,"op":"…"`. Its images follow, each
/// opened by `open_image` and closed by `]`, then the line's `}`.
pub fn write_head(out: &mut impl Write, ts: u32, table: usize, op: Op) -> std::io::Result<()> {
    out.write_all(b"\"ts\":")?;
    out.write_all(itoa::Buffer::new().format(ts).as_bytes())?;
    out.write_all(b",\"table\":")?;
    out.write_all(itoa::Buffer::new().format(table).as_bytes())?;
    out.write_all(b",\"op\":\"")?;
    out.write_all(op.name().as_bytes())?;
    out.write_all(b"\"")
}

/// `,"before":[` or `,"after":[`.
pub fn open_image(out: &mut impl Write, after: bool) -> std::io::Result<()> {
    out.write_all(if after { b",\"after\":[" } else { b",\"before\":[" })
}

/// A line being rendered by parts (`write_head`, …): in memory until it passes `file_above`
/// bytes, then in a file of its own in `spool`, where one is given.
pub struct LineOut<'a> {
    mem: Vec<u8>,
    file: Option<LineWriter>,
    spool: Option<&'a Path>,
    file_above: usize,
    /// The first write that failed, and where (a full disk is the disk's, not the source's).
    failed: Option<(std::path::PathBuf, std::io::Error)>,
}

impl<'a> LineOut<'a> {
    pub fn new(spool: Option<&'a Path>, file_above: usize) -> LineOut<'a> {
        LineOut { mem: Vec::with_capacity(256), file: None, spool, file_above, failed: None }
    }

    /// The rendered line as a staged change.
    pub fn staged(self, ts: u32, table: usize, op: Op) -> Result<Staged, CdcError> {
        let body = match self.file {
            Some(w) => {
                let path = w.path().to_path_buf();
                Body::File(Arc::new(w.finish().map_err(|e| CdcError::io(&path, e))?))
            }
            None => Body::Line(self.mem),
        };
        Ok(Staged { ts, table, op, query: None, body })
    }

    /// The first write that failed: the file (or the folder it was to be made in) and why.
    pub fn failure(&mut self) -> Option<CdcError> {
        self.failed.take().map(|(path, e)| CdcError::io(&path, e))
    }

    fn write_line(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(w) = &mut self.file {
            return w.out().write(b);
        }
        self.mem.extend_from_slice(b);
        if let Some(dir) = self.spool.filter(|_| self.mem.len() > self.file_above) {
            let mut w = LineWriter::create(dir)?;
            w.out().write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(w);
        }
        Ok(b.len())
    }
}

impl Write for LineOut<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let written = self.write_line(b);
        if let (Err(e), None) = (&written, &self.failed) {
            let path = match &self.file {
                Some(w) => w.path().to_path_buf(),
                None => self.spool.map(Path::to_path_buf).unwrap_or_default(),
            };
            // Kept as the system gave it, so a full disk is still told as one.
            let kept = e.raw_os_error().map_or_else(|| std::io::Error::new(e.kind(), e.to_string()), std::io::Error::from_raw_os_error);
            self.failed = Some((path, kept));
        }
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// In capture.json (prepared XA transactions) a staged change is kept as the change it stands
/// for, so older state files read the same.
impl Serialize for Staged {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.change().map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Staged {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Staged, D::Error> {
        Change::deserialize(d).map(|c| Staged::from_change(&c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_rendered_from_its_image_is_the_line_serde_writes_for_its_change() {
        let cols: Vec<crate::source::schema::ColumnSchema> = [("id", "int(11)", crate::source::types::ColumnKind::Int { bits: 32, unsigned: false }), ("name", "varchar(9)", crate::source::types::ColumnKind::Text)]
            .iter()
            .map(|(name, ty, kind)| crate::source::schema::ColumnSchema { name: name.to_string(), ordinal: 1, mysql_type: ty.to_string(), nullable: true, charset: Some("utf8mb4".into()), collation: None, kind: *kind })
            .collect();
        let plans: Vec<ColumnPlan> = cols.iter().map(ColumnPlan::new).collect();
        let before = [Raw::Int { bits: 7, bytes: 4 }, Raw::Bytes(b"a\tb")];
        let after = [Raw::Int { bits: 7, bytes: 4 }, Raw::Null];
        for (op, images) in [(Op::Insert, [None, Some(&after)]), (Op::Update, [Some(&before), Some(&after)]), (Op::Delete, [Some(&before), None])] {
            let staged = Staged::row(1_700_000_000, 3, op, &plans, images.map(|i| i.map(|v| &v[..])), &mut Default::default(), None).unwrap();
            let typed = |image: Option<&[Raw; 2]>| image.map(|values| plans.iter().zip(values.iter()).map(|(p, v)| p.cell(v.clone()).unwrap()).collect());
            let change = Change { at: "bin.000002:77".into(), ts: 1_700_000_000, table: 3, op, before: typed(images[0]), after: typed(images[1]), query: None };
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            staged.write_to(br#""bin.000002:77""#, &mut ours, |_| {}).unwrap();
            change.to_line(&mut theirs);
            assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
            // capture.json keeps it as the change, and reads it back the same.
            let kept: Staged = serde_json::from_str(&serde_json::to_string(&staged).unwrap()).unwrap();
            assert_eq!(kept, staged);
        }
    }

    #[test]
    fn a_large_value_is_counted_at_about_its_line_not_at_a_doubled_buffer() {
        let col = crate::source::schema::ColumnSchema { name: "t".into(), ordinal: 1, mysql_type: "longtext".into(), nullable: true, charset: Some("utf8mb4".into()), collation: None, kind: crate::source::types::ColumnKind::Text };
        let plan = ColumnPlan::new(&col);
        let big = vec![b'x'; 3 << 20];
        let staged = Staged::row(0, 0, Op::Insert, &[plan], [None, Some(&[Raw::Bytes(&big)])], &mut Default::default(), None).unwrap();
        let mut line = Vec::new();
        staged.write_to(b"\"\"", &mut line, |_| {}).unwrap();
        assert!(staged.bytes() <= line.len() + SLACK + 96, "{} bytes counted for a line of {}", staged.bytes(), line.len());
    }

    #[test]
    fn a_large_row_s_line_is_sized_before_it_is_written() {
        // Grown by doubling, a buffer is shrunk to the line at the end (capacity = length); one
        // sized ahead keeps the few bytes its estimate had to spare. Binary and escape-heavy text.
        let col = |name: &str, ty: &str, kind| crate::source::schema::ColumnSchema { name: name.into(), ordinal: 1, mysql_type: ty.into(), nullable: true, charset: Some("utf8mb4".into()), collation: None, kind };
        let cols = [col("b", "longblob", crate::source::types::ColumnKind::Binary), col("t", "longtext", crate::source::types::ColumnKind::Text)];
        let plans: Vec<ColumnPlan> = cols.iter().map(ColumnPlan::new).collect();
        let (blob, text) = (vec![0xffu8; 1 << 20], "é\"\n\\".repeat(1 << 18));
        for values in [[Raw::Bytes(&blob), Raw::Null], [Raw::Null, Raw::Bytes(text.as_bytes())], [Raw::Bytes(&blob), Raw::Bytes(text.as_bytes())]] {
            let staged = Staged::row(0, 0, Op::Update, &plans, [Some(&values), Some(&values)], &mut Default::default(), None).unwrap();
            let Body::Line(body) = &staged.body else { panic!("no folder for large lines was given") };
            let spare = body.capacity() - body.len();
            assert!(spare > 0 && spare <= 1024, "{spare} bytes to spare on a line of {}", body.len());
        }
    }

    #[test]
    fn a_large_row_s_line_goes_to_a_file_with_the_bytes_it_would_have_in_memory() {
        let col = |name: &str, ty: &str, kind| crate::source::schema::ColumnSchema { name: name.into(), ordinal: 1, mysql_type: ty.into(), nullable: true, charset: Some("utf8mb4".into()), collation: None, kind };
        use crate::source::types::ColumnKind;
        let cols = [col("id", "int(11)", ColumnKind::Int { bits: 32, unsigned: false }), col("b", "longblob", ColumnKind::Binary), col("t", "longtext", ColumnKind::Text)];
        let plans: Vec<ColumnPlan> = cols.iter().map(ColumnPlan::new).collect();
        let blob: Vec<u8> = (0..(LINE_FILE_ABOVE + 7)).map(|i| (i * 31 % 256) as u8).collect();
        let text = "é\"\n\\😀 ok".repeat(50_000);
        let before = [Raw::Int { bits: 1, bytes: 4 }, Raw::Null, Raw::Bytes(b"small")];
        let after = [Raw::Int { bits: 1, bytes: 4 }, Raw::Bytes(&blob), Raw::Bytes(text.as_bytes())];
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spill");
        let images = [Some(&before[..]), Some(&after[..])];
        let in_memory = Staged::row(9, 2, Op::Update, &plans, images, &mut Default::default(), None).unwrap();
        let in_file = Staged::row(9, 2, Op::Update, &plans, images, &mut Default::default(), Some(&spool)).unwrap();
        let Body::File(file) = &in_file.body else { panic!("a row of {} bytes stayed in memory", blob.len() + text.len()) };
        let path = file.path.clone();
        assert!(in_file.bytes() < 1024, "a line in a file counts {} bytes of memory", in_file.bytes());
        let (mut a, mut b, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        in_memory.write_to(b"\"f:1\"", &mut a, |_| {}).unwrap();
        in_file.write_to(b"\"f:1\"", &mut b, |p| seen.extend_from_slice(p)).unwrap();
        assert!(a == b && b == seen, "the line from the file differs from the line in memory");
        assert_eq!(in_file.change().unwrap(), in_memory.change().unwrap());
        // Small rows stay in memory with a folder given.
        let small = Staged::row(9, 2, Op::Insert, &plans, [None, Some(&before[..])], &mut Default::default(), Some(&spool)).unwrap();
        assert!(matches!(small.body, Body::Line(_)));
        let copy = in_file.clone();
        drop(in_file);
        assert!(path.exists(), "a clone still holds the line");
        drop(copy);
        assert!(!path.exists(), "the line's file goes with its last handle");
    }

    #[test]
    fn a_line_that_cannot_be_written_says_where() {
        // Its folder would be inside a file: making the line's file fails at the bound.
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-folder");
        std::fs::write(&blocker, b"").unwrap();
        let spool = blocker.join("spill");
        let mut line = LineOut::new(Some(&spool), 100);
        write_head(&mut line, 1, 2, Op::Insert).unwrap();
        assert!(line.write_all(&[b'x'; 200]).is_err());
        let err = line.failure().expect("the failure is kept").to_string();
        assert!(err.starts_with(&spool.display().to_string()), "{err}");
        assert!(line.failure().is_none(), "taken once");
    }
}
