//! A rows event read as it arrives, for an event too large to hold: its post-header, then each
//! row's images value by value, through a window of the input that holds what one small value
//! needs. A BLOB, TEXT or GEOMETRY value over the caller's bound can be handed over as a
//! stream of its bytes instead (`Visit::stream`); anything else is read whole and typed by
//! `row_image`'s own decoding, so both readers give the same values. The input is the event
//! after its common header, up to (not including) its checksum, which the caller checks.

use std::io::{self, BufRead, Read};

use super::row_image::{self, ColumnType, Raw};

use crate::source::wire::binlog::{DELETE_V1, DELETE_V2, UPDATE_V1, UPDATE_V2, WRITE_V1, WRITE_V2};

/// Binlog type codes whose values are length-prefixed by their metadata and can be large.
const TINY_BLOB: u8 = 249;
const BLOB: u8 = 252;
const GEOMETRY: u8 = 255;

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
        // Every column in each image (binlog_row_image = FULL), as `row_image` requires.
        for _ in &images {
            let bits = w.take(columns.div_ceil(8))?;
            if (0..columns).any(|i| bits[i / 8] >> (i % 8) & 1 == 0) {
                return Err(StreamError::Bad("the row image lacks columns: set binlog_row_image = FULL".into()));
            }
        }
        Ok(RowsEvent { table_id, columns, images, input: w })
    }

    /// Reads every row, typing each value by `types`; a BLOB-family value over `inline` bytes
    /// that `visit` streams is handed over as its bytes.
    pub fn rows(mut self, types: &[ColumnType], inline: usize, visit: &mut dyn Visit) -> Result<(), StreamError> {
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
                    if matches!(t.code, TINY_BLOB..=BLOB | GEOMETRY) {
                        let prefix = t.meta.first().copied().unwrap_or(0).clamp(1, 4) as usize;
                        let len = le(w.peek(prefix)?);
                        if len as usize > inline && visit.streams(i) {
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
