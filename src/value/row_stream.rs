//! A rows event read as it arrives, for an event too large to hold: its post-header, then each
//! row's images value by value, through a window of the input that holds what one small value
//! needs. A BLOB, TEXT or GEOMETRY value over the caller's bound can be handed over as a
//! stream of its bytes instead (`Visit::stream`); anything else is read whole and typed by
//! `row_image`'s own decoding, so both readers give the same values. The input is the event
//! after its common header, up to (not including) its checksum, which the caller checks.

use std::io::{self, BufRead, Read};

use super::row_image::{self, ColumnType, Raw};

use crate::source::wire::binlog::{DELETE_V1, DELETE_V2, UPDATE_V1, UPDATE_V2, WRITE_V1, WRITE_V2};

/// Binlog type codes whose values are length-prefixed by their metadata and can be large:
/// the BLOB family and GEOMETRY (their bytes are the value, so they can be streamed), and
/// MySQL's binary JSON and VECTOR (read whole: JSON is decoded as a whole).
const TINY_BLOB: u8 = 249;
const BLOB: u8 = 252;
const GEOMETRY: u8 = 255;
const JSON: u8 = 245;
const VECTOR: u8 = 242;

/// The most bytes a value that is not a BLOB takes (a VARCHAR of 65,535 and its length).
const SMALL_VALUE: usize = 65_537;
/// Bytes read ahead at a time.
const WINDOW: usize = 256 << 10;

/// Why the event could not be read: its input failed, or its bytes are wrong.
#[derive(Debug)]
pub enum StreamError {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> StreamError {
        StreamError::Io(e)
    }
}

impl From<String> for StreamError {
    fn from(e: String) -> StreamError {
        StreamError::Bad(e)
    }
}

/// Which image of a row a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    Before,
    After,
}

/// What receives the rows, in order: each row's images, each image's values.
pub trait Visit {
    /// An image of a new row (`Before` first where a row has both).
    fn image(&mut self, image: Image) -> Result<(), StreamError>;
    fn value(&mut self, column: usize, v: Raw<'_>) -> Result<(), StreamError>;
    /// Whether a large value of `column` is wanted as a stream; if not it is read whole.
    fn streams(&self, column: usize) -> bool;
    /// A large value's `len` bytes, read from `input` (what it leaves unread is skipped).
    fn stream(&mut self, column: usize, len: u64, input: &mut dyn Read) -> Result<(), StreamError>;
    /// The row's images are all given.
    fn row_end(&mut self) -> Result<(), StreamError>;
}

/// The event's post-header and column bitmaps, read: where its rows begin.
pub struct RowsEvent<'r> {
    pub table_id: u64,
    pub columns: usize,
    pub images: Vec<Image>,
    /// Whether each image has every column (binlog_row_image = FULL); `rows` refuses one that
    /// lacks some, after the caller has seen whether the table is one it reads at all.
    full: bool,
    input: Window<'r>,
}

impl<'r> RowsEvent<'r> {
    /// Reads the post-header of a rows event of `kind` from `input`. As the format description
    /// gives it: `post_header` is the event type's post-header length (6: a 4-byte table id, on
    /// old servers), and one as long as a v2 WRITE_ROWS event's (`v2_post_header`) carries
    /// extra data, as mysql_common reads it.
    pub fn open(kind: u8, post_header: u8, v2_post_header: u8, input: &'r mut dyn BufRead) -> Result<RowsEvent<'r>, StreamError> {
        let mut w = Window { input, buf: Vec::new(), at: 0 };
        let table_id = le(w.take(if post_header == 6 { 4 } else { 6 })?);
        w.take(2)?; // flags
        if post_header == v2_post_header {
            let extra = le(w.take(2)?) as usize;
            w.take(extra.saturating_sub(2))?;
        }
        let columns = w.lenenc()? as usize;
        let images = match kind {
            WRITE_V1 | WRITE_V2 => vec![Image::After],
            DELETE_V1 | DELETE_V2 => vec![Image::Before],
            UPDATE_V1 | UPDATE_V2 => vec![Image::Before, Image::After],
            other => return Err(StreamError::Bad(format!("event type {other} is not a rows event"))),
        };
        let mut full = true;
        for _ in &images {
            let bits = w.take(columns.div_ceil(8))?;
            full &= (0..columns).all(|i| bits[i / 8] >> (i % 8) & 1 == 1);
        }
        Ok(RowsEvent { table_id, columns, images, full, input: w })
    }

    /// Reads every row, typing each value by `types`; a BLOB-family value over `inline` bytes
    /// that `visit` streams is handed over as its bytes.
    pub fn rows(mut self, types: &[ColumnType], inline: usize, visit: &mut dyn Visit) -> Result<(), StreamError> {
        // Every column in each image (binlog_row_image = FULL), as `row_image` requires.
        if !self.full {
            return Err(StreamError::Bad("the row image lacks columns: set binlog_row_image = FULL".into()));
        }
        if types.len() != self.columns {
            return Err(StreamError::Bad(format!("the rows event has {} columns, its table map {}", self.columns, types.len())));
        }
        let w = &mut self.input;
        while w.more()? {
            for &image in &self.images {
                visit.image(image)?;
                let nulls = w.take(types.len().div_ceil(8))?.to_vec();
                for (i, t) in types.iter().enumerate() {
                    let col = |e: String| StreamError::Bad(format!("column {}: {e}", i + 1));
                    if nulls[i / 8] >> (i % 8) & 1 == 1 {
                        visit.value(i, Raw::Null)?;
                        continue;
                    }
                    let streamable = matches!(t.code, TINY_BLOB..=BLOB | GEOMETRY);
                    if streamable || matches!(t.code, JSON | VECTOR) {
                        let prefix = t.meta.first().copied().unwrap_or(0).clamp(1, 4) as usize;
                        let len = le(w.peek(prefix)?);
                        if streamable && len as usize > inline && visit.streams(i) {
                            w.take(prefix)?;
                            let mut value = w.value_reader(len);
                            visit.stream(i, len, &mut value)?;
                            io::copy(&mut value, &mut io::sink())?;
                            continue;
                        }
                        w.fill(prefix + len as usize)?;
                    } else {
                        w.fill_upto(SMALL_VALUE)?;
                    }
                    let mut rest = &w.buf[w.at..];
                    let before = rest.len();
                    let v = row_image::value(&mut rest, t).map_err(col)?;
                    let used = before - rest.len();
                    visit.value(i, v)?;
                    w.at += used;
                }
            }
            visit.row_end()?;
        }
        Ok(())
    }
}

/// The input, read ahead into a buffer from which small values are parsed in place.
struct Window<'r> {
    input: &'r mut dyn BufRead,
    buf: Vec<u8>,
    at: usize,
}

impl<'r> Window<'r> {
    fn short(&self, n: usize) -> StreamError {
        StreamError::Bad(format!("the row image ends early ({} bytes left, {n} needed)", self.buf.len() - self.at))
    }

    /// Reads ahead until `n` bytes are at hand or the input ends.
    fn fill_upto(&mut self, n: usize) -> Result<(), StreamError> {
        if self.buf.len() - self.at >= n {
            return Ok(());
        }
        self.buf.drain(..self.at);
        self.at = 0;
        let want = n.max(WINDOW);
        while self.buf.len() < n {
            let got = self.input.fill_buf()?;
            if got.is_empty() {
                break;
            }
            let k = got.len().min(want - self.buf.len());
            self.buf.extend_from_slice(&got[..k]);
            self.input.consume(k);
        }
        Ok(())
    }

    fn fill(&mut self, n: usize) -> Result<(), StreamError> {
        self.fill_upto(n)?;
        if self.buf.len() - self.at < n {
            return Err(self.short(n));
        }
        Ok(())
    }

    fn peek(&mut self, n: usize) -> Result<&[u8], StreamError> {
        self.fill(n)?;
        Ok(&self.buf[self.at..self.at + n])
    }

    fn take(&mut self, n: usize) -> Result<&[u8], StreamError> {
        self.fill(n)?;
        self.at += n;
        Ok(&self.buf[self.at - n..self.at])
    }

    fn lenenc(&mut self) -> Result<u64, StreamError> {
        Ok(match self.take(1)?[0] {
            x @ 0..=0xfa => x as u64,
            0xfc => le(self.take(2)?),
            0xfd => le(self.take(3)?),
            0xfe => le(self.take(8)?),
            other => return Err(StreamError::Bad(format!("a length-encoded integer starts {other:#x}"))),
        })
    }

    /// Whether any byte is left.
    fn more(&mut self) -> Result<bool, StreamError> {
        Ok(self.at < self.buf.len() || !self.input.fill_buf()?.is_empty())
    }

    /// The next `len` bytes as a reader: what the window holds, then the input.
    fn value_reader(&mut self, len: u64) -> ValueReader<'_, 'r> {
        ValueReader { window: self, left: len }
    }
}

/// One large value's bytes.
struct ValueReader<'w, 'r> {
    window: &'w mut Window<'r>,
    left: u64,
}

impl Read for ValueReader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || out.is_empty() {
            return Ok(0);
        }
        let w = &mut *self.window;
        let n = if w.at < w.buf.len() {
            let n = (w.buf.len() - w.at).min(out.len()).min(self.left as usize);
            out[..n].copy_from_slice(&w.buf[w.at..w.at + n]);
            w.at += n;
            n
        } else {
            let got = w.input.fill_buf()?;
            if got.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("the row image ends {} bytes into a large value", self.left)));
            }
            let n = got.len().min(out.len()).min(self.left as usize);
            out[..n].copy_from_slice(&got[..n]);
            w.input.consume(n);
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, &x| acc << 8 | x as u64)
}

/// A slice handed out at most `piece` bytes at a time (a socket giving little at once).
#[cfg(test)]
pub(crate) struct Trickle<'a>(pub &'a [u8], pub usize);

#[cfg(test)]
impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.len().min(out.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
impl BufRead for Trickle<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(&self.0[..self.0.len().min(self.1)])
    }
    fn consume(&mut self, n: usize) {
        self.0 = &self.0[n..];
    }
}

/// A visitor that writes down what it is given, a line each: the image, `column: value` (a
/// streamed value read whole, as the bytes it stands for), `end` after each row.
#[cfg(test)]
pub(crate) struct Collect(pub Vec<String>);

#[cfg(test)]
impl Visit for Collect {
    fn image(&mut self, image: Image) -> Result<(), StreamError> {
        self.0.push(format!("{image:?}"));
        Ok(())
    }
    fn value(&mut self, column: usize, v: Raw<'_>) -> Result<(), StreamError> {
        self.0.push(format!("{column}: {v:?}"));
        Ok(())
    }
    fn streams(&self, _: usize) -> bool {
        true
    }
    fn stream(&mut self, column: usize, len: u64, input: &mut dyn Read) -> Result<(), StreamError> {
        let mut b = Vec::new();
        input.read_to_end(&mut b)?;
        assert_eq!(b.len() as u64, len, "a streamed value is its length");
        self.0.push(format!("{column}: {:?}", Raw::Bytes(&b)));
        Ok(())
    }
    fn row_end(&mut self) -> Result<(), StreamError> {
        self.0.push("end".into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mysql_json_value_past_the_small_values_bound_is_read_whole_at_every_size() {
        // A WRITE_ROWS v1 event of (INT, JSON, LONGBLOB): a JSON string of 100,000 characters
        // (binary JSON: type 0x0c, its length in 7-bit groups, the bytes), then a BLOB.
        let text = "é\"x".repeat(25_000);
        let mut jsonb = vec![0x0c];
        let mut n = text.len();
        while n >= 0x80 {
            jsonb.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        jsonb.push(n as u8);
        jsonb.extend_from_slice(text.as_bytes());
        let blob = vec![7u8; 300_000];
        let mut row = vec![0u8, 9, 0, 0, 0];
        row.extend((jsonb.len() as u32).to_le_bytes());
        row.extend(&jsonb);
        row.extend((blob.len() as u32).to_le_bytes());
        row.extend(&blob);
        let types = [ColumnType { code: 3, meta: vec![] }, ColumnType { code: JSON, meta: vec![4] }, ColumnType { code: BLOB, meta: vec![4] }];
        let mut whole = &row[1..];
        let mut want = vec!["After".to_string()];
        want.extend(types.iter().enumerate().map(|(i, t)| format!("{i}: {:?}", row_image::value(&mut whole, t).unwrap())));
        want.push("end".into());
        assert!(want[2].contains("Json") && want[2].len() > 100_000, "{}", &want[2][..40]);
        let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0, 3, 0b111];
        body.extend(&row);
        for (piece, inline) in [(1, 0), (5, 1000), (1 << 20, usize::MAX), (70_000, 0)] {
            let mut input = Trickle(&body, piece);
            let mut got = Collect(Vec::new());
            RowsEvent::open(WRITE_V1, 8, 10, &mut input).unwrap().rows(&types, inline, &mut got).unwrap();
            assert!(got.0 == want, "{piece}-byte reads, values inline up to {inline}");
        }
    }

    #[test]
    fn an_image_that_lacks_columns_is_refused_only_when_its_rows_are_read() {
        // An UPDATE whose before image has one column of two (binlog_row_image = MINIMAL).
        let body = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0b01, 0b11, 0, 1, 0, 0, 0];
        let types = [ColumnType { code: 3, meta: vec![] }, ColumnType { code: 3, meta: vec![] }];
        let mut input = Trickle(&body, 4);
        let event = RowsEvent::open(UPDATE_V1, 8, 10, &mut input).expect("a table not read is skipped, whatever its images");
        match event.rows(&types, 0, &mut Collect(Vec::new())) {
            Err(StreamError::Bad(why)) => assert!(why.contains("set binlog_row_image = FULL"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
