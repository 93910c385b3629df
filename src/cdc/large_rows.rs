//! A rows event too large to hold, classified as capture's own reader hands it over
//! (`source::wire::binlog::LargeRows`): read row by row from the connection
//! (`value::row_stream`), each value rendered into its row's staged line as it is read, a
//! large BLOB or UTF-8 TEXT value a piece at a time (`ColumnPlan::stream_json`), and a line
//! past `LINE_FILE_ABOVE` written to its own file (`large_line`). So neither the event, nor a
//! row, nor its line is ever held whole: capture's memory does not grow with the event's
//! size. The lines are the ones `Staged::row` renders from a whole event (a test requires it
//! of every rows event in MySQL's binlog files, at tiny sizes; another of MariaDB's, against
//! the `mysql` crate's stream).

use std::path::Path;

use super::event::{open_image, write_head, LineOut, Op, Staged};
use super::CdcError;
use crate::value::binlog::ColumnPlan;
use crate::value::row_image::Raw;
use crate::value::row_stream::{Image, StreamError, Visit};

/// A value over this many bytes is rendered as it is read, where its column allows.
pub const INLINE: usize = 256 << 10;

/// Renders rows into staged lines as a rows event is read.
pub struct Lines<'c> {
    plan: &'c [ColumnPlan<'c>],
    scratch: &'c mut (String, Vec<u8>),
    spool: Option<&'c Path>,
    /// A line past this many bytes goes to its file.
    file_above: usize,
    ts: u32,
    table: usize,
    op: Op,
    /// The row being rendered (begun at its first image, so an image is open while it is
    /// there), and how many values its open image has.
    line: Option<LineOut<'c>>,
    values: usize,
    /// Each row's change as it is rendered; without it they gather in `staged`.
    emit: Option<&'c mut Emit<'c>>,
    pub staged: Vec<Staged>,
    /// What `emit` failed with.
    failed: Option<CdcError>,
}

/// What takes a large event's changes one by one (the open transaction).
pub type Emit<'c> = dyn FnMut(Staged) -> Result<(), CdcError> + 'c;

impl<'c> Lines<'c> {
    pub fn new(plan: &'c [ColumnPlan<'c>], scratch: &'c mut (String, Vec<u8>), spool: Option<&'c Path>, file_above: usize, (ts, table, op): (u32, usize, Op)) -> Lines<'c> {
        Lines { plan, scratch, spool, file_above, ts, table, op, line: None, values: 0, emit: None, staged: Vec::new(), failed: None }
    }

    /// Hands each row's change to `emit` as soon as it is rendered, so an event of many rows
    /// is not gathered either.
    pub fn emitting(self, emit: &'c mut Emit<'c>) -> Lines<'c> {
        Lines { emit: Some(emit), ..self }
    }

    /// The line being written, a comma written before every value but an image's first.
    fn next_value(&mut self) -> Result<&mut LineOut<'c>, StreamError> {
        let line = self.line.as_mut().ok_or_else(|| StreamError::Bad("a value before its row's image".into()))?;
        if self.values > 0 {
            std::io::Write::write_all(line, b",")?;
        }
        self.values += 1;
        Ok(line)
    }

    /// What stopped the rows, where it was not the event: a write of a line that failed (a full
    /// disk), or the open transaction refusing a change.
    pub fn failure(&mut self) -> Option<CdcError> {
        self.failed.take().or_else(|| self.line.as_mut().and_then(LineOut::failure))
    }

    fn plan(&self, column: usize) -> Result<&'c ColumnPlan<'c>, StreamError> {
        self.plan.get(column).ok_or_else(|| StreamError::Bad(format!("column {} is past the table's {}", column + 1, self.plan.len())))
    }
}

impl Visit for Lines<'_> {
    fn image(&mut self, image: Image) -> Result<(), StreamError> {
        use std::io::Write;
        let line = match &mut self.line {
            // The row's before image is open: close it.
            Some(line) => {
                line.write_all(b"]")?;
                line
            }
            None => {
                let mut line = LineOut::new(self.spool, self.file_above);
                write_head(&mut line, self.ts, self.table, self.op)?;
                self.line.insert(line)
            }
        };
        open_image(line, image == Image::After)?;
        self.values = 0;
        Ok(())
    }

    fn value(&mut self, column: usize, v: Raw<'_>) -> Result<(), StreamError> {
        let plan = self.plan(column)?;
        // The scratch is borrowed by the view while the line is written: take it out meanwhile.
        let mut scratch = std::mem::take(self.scratch);
        let written = match plan.view(&v, &mut scratch.0, &mut scratch.1) {
            Ok(view) => self.next_value().and_then(|line| Ok(view.write_json_to(line)?)),
            Err(e) => Err(StreamError::Bad(e)),
        };
        *self.scratch = scratch;
        written
    }

    fn streams(&self, column: usize) -> bool {
        self.plan.get(column).is_some_and(ColumnPlan::streams)
    }

    fn stream(&mut self, column: usize, len: u64, input: &mut dyn std::io::Read) -> Result<(), StreamError> {
        let plan = self.plan(column)?;
        plan.stream_json(len, input, self.next_value()?)
    }

    fn row_end(&mut self) -> Result<(), StreamError> {
        use std::io::Write;
        let mut line = self.line.take().ok_or_else(|| StreamError::Bad("a row without an image".into()))?;
        line.write_all(b"]}")?;
        let staged = match line.staged(self.ts, self.table, self.op) {
            Ok(s) => s,
            Err(e) => {
                self.failed = Some(e);
                return Err(StreamError::Bad("a large row's line could not be written".into()));
            }
        };
        match self.emit.as_mut() {
            None => self.staged.push(staged),
            Some(emit) => {
                if let Err(e) = emit(staged) {
                    self.failed = Some(e);
                    return Err(StreamError::Bad("the open transaction refused a change".into()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::schema::ColumnSchema;
    use crate::source::types::ColumnKind;
    use crate::value::row_image::ColumnType;
    use crate::value::row_stream::{RowsEvent, Trickle};

    fn col(name: &str, ty: &str, charset: Option<&str>, kind: ColumnKind) -> ColumnSchema {
        ColumnSchema { name: name.into(), ordinal: 1, mysql_type: ty.into(), nullable: true, charset: charset.map(String::from), collation: None, kind }
    }

    fn blob(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    /// Renders `body` (an UPDATE_ROWS v1 event's, after its header) as it arrives.
    fn streamed(plans: &[ColumnPlan], types: &[ColumnType], body: &[u8], piece: usize, inline: usize, spool: &Path, file_above: usize) -> Result<Vec<u8>, StreamError> {
        let mut input = Trickle(body, piece);
        let rows = RowsEvent::open(24, 8, 10, &mut input)?;
        let mut scratch = Default::default();
        let mut lines = Lines::new(plans, &mut scratch, Some(spool), file_above, (7, 1, Op::Update));
        rows.rows(types, inline, &mut lines)?;
        let mut out = Vec::new();
        for s in &lines.staged {
            s.write_to(b"\"f:9\"", &mut out, |_| {})?;
        }
        Ok(out)
    }

    #[test]
    fn a_row_rendered_as_it_arrives_is_the_line_rendered_from_the_whole_row_at_every_size() {
        let cols = [
            col("id", "int(11)", None, ColumnKind::Int { bits: 32, unsigned: false }),
            col("b", "longblob", None, ColumnKind::Binary),
            col("t", "longtext", Some("utf8mb4"), ColumnKind::Text),
            col("l", "longtext", Some("latin1"), ColumnKind::Text),
            col("g", "geometry", None, ColumnKind::Spatial),
            col("j", "longtext", Some("utf8mb4"), ColumnKind::Json),
        ];
        let plans: Vec<ColumnPlan> = cols.iter().map(ColumnPlan::new).collect();
        let t = |code: u8| ColumnType { code, meta: if code == 3 { vec![] } else { vec![4] } };
        let types = [t(3), t(252), t(252), t(252), t(255), t(252)];
        let bytes: Vec<u8> = (0..100_003).map(|i| (i * 7 % 256) as u8).collect();
        let text = "é\"\n\\😀 ok\u{1}".repeat(9_000);
        let latin: Vec<u8> = (0..60_000).map(|i| if i % 5 == 0 { 0xe9 } else { b'a' + (i % 26) as u8 }).collect();
        let mut geometry = vec![0, 0, 0, 0];
        geometry.extend(&bytes[..70_000]);
        let json = format!("{{\"k\": \"{}\"}}", "v\\n".repeat(30_000));
        // Before: id, NULL BLOB, short text; after: every value large.
        let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0, 6, 0x3f, 0x3f];
        body.extend([0b10_0010, 5, 0, 0, 0]);
        body.extend(blob(b"short"));
        body.extend(blob(b"x"));
        body.extend(blob(&geometry[..9]));
        body.push(0);
        body.extend(5u32.to_le_bytes());
        for v in [&bytes[..], text.as_bytes(), &latin, &geometry, json.as_bytes()] {
            body.extend(blob(v));
        }
        let before = [Raw::Int { bits: 5, bytes: 4 }, Raw::Null, Raw::Bytes(b"short"), Raw::Bytes(b"x"), Raw::Bytes(&geometry[..9]), Raw::Null];
        let after = [Raw::Int { bits: 5, bytes: 4 }, Raw::Bytes(&bytes), Raw::Bytes(text.as_bytes()), Raw::Bytes(&latin), Raw::Bytes(&geometry), Raw::Bytes(json.as_bytes())];
        let whole = Staged::row(7, 1, Op::Update, &plans, [Some(&before), Some(&after)], &mut Default::default(), None).unwrap();
        let mut want = Vec::new();
        whole.write_to(b"\"f:9\"", &mut want, |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (piece, inline, file_above) in [(1, 0, 0), (7, 1, 64), (1 << 16, 0, usize::MAX), (3, usize::MAX, 1 << 20), (1 << 20, 1000, 0)] {
            let got = streamed(&plans, &types, &body, piece, inline, dir.path(), file_above).unwrap();
            assert!(got == want, "{piece}-byte reads, values inline up to {inline}, lines to files past {file_above}: the line differs");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the lines' files went with their lines");

        // Text that is not UTF-8, or ends inside a character, is refused while it streams.
        for broken in [&[b'a', 0xff, b'b'][..], &[b'a', 0xc3][..]] {
            // Only `t` in each image: its text broken before, "ok" after.
            let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0, 6, 0x3f, 0x3f, 0b11_1011];
            body.extend(blob(broken));
            body.push(0b11_1011);
            body.extend(blob(b"ok"));
            let err = streamed(&plans, &types, &body, 1, 0, dir.path(), 0).unwrap_err();
            assert!(matches!(&err, StreamError::Bad(why) if why.contains("column t: the binlog's bytes are not valid utf8mb4")), "{err:?}");
        }
    }
}
