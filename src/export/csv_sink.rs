//! CSV chunk writer (RFC 4180, header row, quoted only where needed). NULL is written as `\N`;
//! a text that consists of backslashes followed by `N` gets one more leading backslash, so
//! `\N` the string and NULL never collide. Binary and spatial values are base64; temporals use
//! MySQL's own text form; TIMESTAMP is UTC. The encodings are in the manifest (docs/format.md).

use std::io::Write;

use base64::Engine;

use crate::run::ChunkWriter;
use crate::value::row::Datum;
use crate::value::temporal::{write_datetime, write_time};
use super::SinkError;
use crate::source::schema::TableSchema;
use crate::source::types::ColumnKind;

pub const CSV_NULL: &str = "\\N";

pub struct CsvSink {
    writer: csv::Writer<ChunkWriter>,
    kinds: Vec<ColumnKind>,
    field: Vec<u8>,
}

/// True for `\N`, `\\N`, `\\\N`…: texts that need one extra backslash.
pub fn looks_like_null(s: &str) -> bool {
    s.len() >= 2 && s.ends_with('N') && s[..s.len() - 1].bytes().all(|b| b == b'\\')
}

/// The reader's side: None for NULL, else the text with the escape removed.
pub fn unescape_field(s: &str) -> Option<&str> {
    if s == CSV_NULL {
        None
    } else if looks_like_null(s) {
        Some(&s[1..])
    } else {
        Some(s)
    }
}

impl CsvSink {
    pub fn new(out: ChunkWriter, table: &TableSchema) -> Result<CsvSink, SinkError> {
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(out);
        writer.write_record(table.columns.iter().map(|c| c.name.as_bytes()))?;
        let kinds = table.columns.iter().map(|c| c.kind).collect();
        Ok(CsvSink { writer, kinds, field: Vec::with_capacity(256) })
    }

    pub fn append(&mut self, row: &[Datum]) -> Result<(), SinkError> {
        for (d, kind) in row.iter().zip(&self.kinds) {
            self.field.clear();
            let f = &mut self.field;
            match d {
                Datum::Null => f.extend_from_slice(CSV_NULL.as_bytes()),
                Datum::I64(v) => f.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
                Datum::U64(v) => f.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
                Datum::F32(v) => write!(f, "{v}")?,
                Datum::F64(v) => write!(f, "{v}")?,
                Datum::Decimal { text, .. } => f.extend_from_slice(text.as_bytes()),
                Datum::DateTime(p) => write_datetime(f, p, kind),
                Datum::Time(us) => {
                    let fsp = if let ColumnKind::Time { fsp } = kind { *fsp } else { 6 };
                    write_time(f, *us, fsp)
                }
                Datum::Text(s) | Datum::Set(s) => push_text(f, s),
                Datum::DateText(p, kind) => write_datetime(f, p, kind),
                Datum::Bytes(b) => {
                    let engine = &base64::engine::general_purpose::STANDARD;
                    f.resize(base64::encoded_len(b.len(), true).expect("a chunk value fits in memory"), 0);
                    engine.encode_slice(b, f).expect("sized for the encoding");
                }
            }
            self.writer.write_field(&self.field)?;
        }
        self.writer.write_record(None::<&[u8]>)?;
        Ok(())
    }

    pub fn finish(self) -> Result<ChunkWriter, SinkError> {
        self.writer.into_inner().map_err(|e| SinkError::Io(e.into_error()))
    }
}

fn push_text(f: &mut Vec<u8>, s: &str) {
    if looks_like_null(s) {
        f.push(b'\\');
    }
    f.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_backslash_n_texts_stay_distinct() {
        for text in ["\\N", "\\\\N", "N", "", "\\", "a\\N"] {
            let mut f = Vec::new();
            push_text(&mut f, text);
            let written = String::from_utf8(f).unwrap();
            assert_ne!(written, CSV_NULL, "text {text:?} must not read back as NULL");
            assert_eq!(unescape_field(&written), Some(text));
        }
        assert_eq!(unescape_field(CSV_NULL), None);
    }
}
