//! A binlog row image's raw values (`row_image`) as the `Cell`s the export's SELECT would have
//! given. The binlog carries values by column ordinal in the server's storage form: integers
//! without sign, TIMESTAMP as epoch time, YEAR as an offset from 1900, ENUM as its index, SET as
//! its bitmask, strings as bytes in the column's own charset, CHAR(n) with its padding, BINARY(n)
//! and MariaDB's UUID/INET4/INET6 as raw bytes with their trailing 0x00 bytes stripped. Each is
//! typed here from the manifest's column schema, so a change maps to exactly the item its row
//! would import as.

use std::net::Ipv4Addr;

use super::chunk::scaled;
use super::row::parse_decimal;
use super::row_stream::StreamError;
use super::row_image::{signed, Raw};
use super::temporal::{DateTimeParts, TextBuf};
use super::Cell;
use crate::source::schema::{ColumnSchema, TableSchema};
use crate::source::types::ColumnKind;

/// Members of an `enum('a','b')` or `set('a','b')` column type, quotes undone.
pub fn members(mysql_type: &str) -> Vec<String> {
    let Some(open) = mysql_type.find('(') else { return Vec::new() };
    let body = &mysql_type[open + 1..mysql_type.rfind(')').unwrap_or(mysql_type.len())];
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut m = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    m.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        m.push(n);
                    }
                }
                c => m.push(c),
            }
        }
        out.push(m);
    }
    out
}

/// Whether the column's type, without its arguments (`binary(16)` → `binary`), is `name`. No
/// allocation: it runs for every text and binary value captured.
fn is_type(c: &ColumnSchema, name: &str) -> bool {
    c.mysql_type.split(['(', ' ']).next().is_some_and(|t| t.eq_ignore_ascii_case(name))
}

/// The `n` of `binary(n)` / `char(n)`.
fn declared_length(c: &ColumnSchema) -> Option<usize> {
    let t = &c.mysql_type;
    t[t.find('(')? + 1..t.find(')')?].trim().parse().ok()
}

/// How a charset's bytes become text. None: not one this tool decodes from the binlog.
enum TextDecoder {
    Utf8,
    Utf32,
    Encoding(&'static encoding_rs::Encoding),
}

fn decoder(charset: &str) -> Option<TextDecoder> {
    use encoding_rs::*;
    Some(match charset.to_ascii_lowercase().as_str() {
        "utf8" | "utf8mb3" | "utf8mb4" => TextDecoder::Utf8,
        "utf32" => TextDecoder::Utf32,
        // MySQL's latin1 is Windows-1252 (its five undefined bytes map to U+0081…, as here).
        "latin1" | "ascii" => TextDecoder::Encoding(WINDOWS_1252),
        "ucs2" | "utf16" => TextDecoder::Encoding(UTF_16BE),
        "utf16le" => TextDecoder::Encoding(UTF_16LE),
        "latin2" => TextDecoder::Encoding(ISO_8859_2),
        "latin5" => TextDecoder::Encoding(WINDOWS_1254),
        "latin7" => TextDecoder::Encoding(ISO_8859_13),
        "greek" => TextDecoder::Encoding(ISO_8859_7),
        "hebrew" => TextDecoder::Encoding(ISO_8859_8),
        "cp1250" => TextDecoder::Encoding(WINDOWS_1250),
        "cp1251" => TextDecoder::Encoding(WINDOWS_1251),
        "cp1256" => TextDecoder::Encoding(WINDOWS_1256),
        "cp1257" => TextDecoder::Encoding(WINDOWS_1257),
        "cp866" => TextDecoder::Encoding(IBM866),
        "koi8r" => TextDecoder::Encoding(KOI8_R),
        "koi8u" => TextDecoder::Encoding(KOI8_U),
        "tis620" => TextDecoder::Encoding(WINDOWS_874),
        "sjis" | "cp932" => TextDecoder::Encoding(SHIFT_JIS),
        "ujis" | "eucjpms" => TextDecoder::Encoding(EUC_JP),
        "euckr" => TextDecoder::Encoding(EUC_KR),
        "gbk" | "gb2312" => TextDecoder::Encoding(GBK),
        "gb18030" => TextDecoder::Encoding(GB18030),
        "big5" => TextDecoder::Encoding(BIG5),
        _ => return None,
    })
}

/// A column whose values arrive as text in a charset this tool cannot decode from the binlog
/// (capture refuses such tables up front, naming the column).
pub fn undecodable_charset(t: &TableSchema) -> Option<String> {
    t.columns.iter().find_map(|c| {
        let cs = c.charset.as_deref()?;
        let texty = matches!(c.kind, ColumnKind::Text | ColumnKind::Json | ColumnKind::Enum | ColumnKind::Set);
        (texty && decoder(cs).is_none()).then(|| {
            format!("table {}, column {}: charset {cs} is not decoded from the binlog (utf8mb4, utf8mb3, latin1, utf16/ucs2, utf32 and the common single- and multi-byte charsets are); convert the column to utf8mb4", t.display_name(), c.name)
        })
    })
}

/// MariaDB's UUID as its text. The binlog holds the 16 bytes in their natural order (MariaDB
/// 10.10 and later), with trailing 0x00 bytes stripped like any fixed-length binary string.
fn uuid_text(b: &[u8]) -> Option<String> {
    let h = hex::encode(padded(b, 16)?);
    Some(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

/// A fixed-length binary value the binlog gave without its trailing 0x00 bytes, padded back.
fn padded(b: &[u8], n: usize) -> Option<Vec<u8>> {
    (b.len() <= n).then(|| {
        let mut v = b.to_vec();
        v.resize(n, 0);
        v
    })
}

/// INET6 as MariaDB prints it (inet_ntop's rules): the first longest run of two or more zero
/// groups as `::`, and an IPv4-compatible or IPv4-mapped address with a dotted tail.
fn inet6_text(b: &[u8]) -> Option<String> {
    let b: [u8; 16] = padded(b, 16)?.try_into().ok()?;
    let words: Vec<u16> = b.chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]])).collect();
    let (mut best, mut cur): ((usize, usize), Option<(usize, usize)>) = ((0, 0), None);
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            let c = cur.get_or_insert((i, 0));
            c.1 += 1;
            if c.1 > best.1 {
                best = *c;
            }
        } else {
            cur = None;
        }
    }
    if best.1 < 2 {
        best = (usize::MAX, 0);
    }
    let ipv4_tail = best.0 == 0 && (best.1 == 6 || (best.1 == 5 && words[5] == 0xffff));
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if i == best.0 {
            out.push_str("::");
            i += best.1;
            continue;
        }
        if ipv4_tail && i == 6 {
            if !out.ends_with(':') {
                out.push(':');
            }
            out.push_str(&Ipv4Addr::new(b[12], b[13], b[14], b[15]).to_string());
            break;
        }
        if !out.is_empty() && !out.ends_with(':') {
            out.push(':');
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    Some(out)
}

/// What typing a column's binlog values needs from its schema, worked out once per table
/// (parsing `enum('a','b')`, matching the type name and finding the charset's decoder per value
/// was a fifth of capture's time).
pub struct ColumnPlan<'s> {
    c: &'s ColumnSchema,
    special: Special,
    /// ENUM and SET members, quotes undone.
    members: Vec<String>,
    /// The text columns' decoder (None: a charset capture refuses up front).
    text: Option<TextDecoder>,
}

/// Text and binary types with their own form in the binlog.
#[derive(Clone, Copy, PartialEq)]
enum Special {
    None,
    Uuid,
    Inet6,
    Inet4,
    Char,
    /// BINARY(n): padded back to n.
    Binary(usize),
}

impl<'s> ColumnPlan<'s> {
    pub fn new(c: &'s ColumnSchema) -> ColumnPlan<'s> {
        let special = match c.kind {
            ColumnKind::Text if is_type(c, "uuid") => Special::Uuid,
            ColumnKind::Text if is_type(c, "inet6") => Special::Inet6,
            ColumnKind::Text if is_type(c, "inet4") => Special::Inet4,
            ColumnKind::Text if is_type(c, "char") => Special::Char,
            ColumnKind::Binary if is_type(c, "binary") => declared_length(c).map_or(Special::None, Special::Binary),
            _ => Special::None,
        };
        let members = if matches!(c.kind, ColumnKind::Enum | ColumnKind::Set) { members(&c.mysql_type) } else { Vec::new() };
        ColumnPlan { c, special, members, text: decoder(c.charset.as_deref().unwrap_or("utf8mb4")) }
    }

    /// At least the bytes `v`'s JSON takes in a staged line (`view` then `write_json`), without
    /// typing it: sizes a large row's line before it is written.
    pub fn json_len_bound(&self, v: &Raw) -> usize {
        use super::json::escaped_len;
        let member = |m: &str| escaped_len(m.as_bytes()) + 3;
        // `{"t":` and `}` around every value but NULL.
        8 + match v {
            Raw::Null => 0,
            Raw::Int { .. } | Raw::Year(_) | Raw::DateTime(_) | Raw::Timestamp(_) | Raw::Time(_) => 40,
            // f64's text has every digit: 1e300 takes 301.
            Raw::Float(_) | Raw::Double(_) => 340,
            Raw::Decimal(t) => t.len() + 2,
            Raw::Json(t) => escaped_len(t.as_bytes()) + 2,
            Raw::Enum(i) => self.members.get((*i as usize).wrapping_sub(1)).map_or(0, |m| member(m)),
            Raw::Set(mask) => 2 + set_members(*mask, &self.members).map(member).sum::<usize>(),
            Raw::Bytes(b) => match (self.c.kind, self.special, &self.text) {
                (ColumnKind::Bit { .. }, ..) => 40,
                (ColumnKind::Binary | ColumnKind::Spatial, Special::Binary(n), _) => b.len().max(n).div_ceil(3) * 4 + 2,
                (ColumnKind::Binary | ColumnKind::Spatial, ..) => b.len().div_ceil(3) * 4 + 2,
                (_, Special::Uuid | Special::Inet4 | Special::Inet6, _) => 48,
                (_, _, Some(TextDecoder::Utf8)) => escaped_len(b) + 2,
                // Decoded to UTF-8, a byte takes at most 3; escapes counted on the raw bytes
                // (the ASCII ones are the same bytes in every charset decoded here but UTF-32,
                // which `3 ×` covers, or they count more than there are).
                _ => 3 * b.len() + escaped_len(b) - b.len() + 2,
            },
        }
    }

    /// The column's text from the binlog's bytes: borrowed where they are UTF-8 already, else
    /// decoded into `scratch`.
    fn decode_text<'x>(&self, b: &'x [u8], scratch: &'x mut String) -> Result<&'x str, String> {
        let c = self.c;
        let cs = c.charset.as_deref().unwrap_or("utf8mb4");
        let bad = || format!("column {}: the binlog's bytes are not valid {cs}", c.name);
        match self.text.as_ref().ok_or_else(|| format!("column {}: charset {cs} is not decoded from the binlog", c.name))? {
            TextDecoder::Utf8 => super::row::utf8(b).ok_or_else(bad),
            TextDecoder::Utf32 => {
                if !b.len().is_multiple_of(4) {
                    return Err(bad());
                }
                for w in b.chunks(4) {
                    scratch.push(char::from_u32(u32::from_be_bytes([w[0], w[1], w[2], w[3]])).ok_or_else(bad)?);
                }
                Ok(scratch.as_str())
            }
            TextDecoder::Encoding(e) => {
                scratch.push_str(&e.decode_without_bom_handling_and_without_replacement(b).ok_or_else(bad)?);
                Ok(scratch.as_str())
            }
        }
    }

    /// Whether a large value of this column can be rendered while it is read
    /// (`stream_json`): bytes as base64, UTF-8 text escaped. Others are typed whole.
    pub fn streams(&self) -> bool {
        self.streamed().is_some()
    }

    /// Bytes to skip before the value (a GEOMETRY's SRID), or None for text.
    fn streamed(&self) -> Option<Option<usize>> {
        match (self.c.kind, self.special, &self.text) {
            (ColumnKind::Binary, Special::None, _) => Some(Some(0)),
            (ColumnKind::Spatial, ..) => Some(Some(4)),
            (ColumnKind::Text, Special::None, Some(TextDecoder::Utf8)) | (ColumnKind::Json, _, Some(TextDecoder::Utf8)) => Some(None),
            _ => None,
        }
    }

    /// A value of `len` bytes read from `input` and written to `out` as `view` then
    /// `write_json` would, a piece at a time (only for a column that `streams`).
    pub fn stream_json(&self, len: u64, input: &mut dyn std::io::Read, out: &mut dyn std::io::Write) -> Result<(), StreamError> {
        let c = self.c;
        match self.streamed() {
            Some(Some(skip)) => {
                if len <= skip as u64 {
                    return Err(StreamError::Bad(format!("column {}: unexpected binlog value of {len} bytes for {}", c.name, c.mysql_type)));
                }
                let mut srid = [0u8; 4];
                if read_full(input, &mut srid[..skip])? < skip {
                    return Err(StreamError::Bad(format!("column {}: a value ends inside its first {skip} bytes", c.name)));
                }
                out.write_all(b"{\"b\":\"")?;
                let mut piece = vec![0u8; PIECE];
                let mut encoded = vec![0u8; PIECE / 3 * 4];
                loop {
                    let n = read_full(input, &mut piece)?;
                    if n == 0 {
                        break;
                    }
                    use base64::Engine;
                    let k = base64::engine::general_purpose::STANDARD.encode_slice(&piece[..n], &mut encoded).expect("sized for the encoding");
                    out.write_all(&encoded[..k])?;
                }
                out.write_all(b"\"}")?;
            }
            Some(None) => {
                let bad = || StreamError::Bad(format!("column {}: the binlog's bytes are not valid {}", c.name, c.charset.as_deref().unwrap_or("utf8mb4")));
                out.write_all(b"{\"t\":\"")?;
                // A character cut by a piece's end is carried into the next piece.
                let (mut piece, mut escaped, mut carry) = (vec![0u8; PIECE + 4], Vec::with_capacity(PIECE * 6), 0);
                loop {
                    let n = read_full(input, &mut piece[carry..PIECE + carry])?;
                    let total = carry + n;
                    let valid = match simdutf8::compat::from_utf8(&piece[..total]) {
                        Ok(_) => total,
                        Err(e) if e.error_len().is_none() && n > 0 => e.valid_up_to(),
                        Err(_) => return Err(bad()),
                    };
                    escaped.clear();
                    super::json::write_escaped(&mut escaped, &piece[..valid]);
                    out.write_all(&escaped)?;
                    piece.copy_within(valid..total, 0);
                    carry = total - valid;
                    if n == 0 {
                        break;
                    }
                }
                out.write_all(b"\"}")?;
            }
            None => return Err(StreamError::Bad(format!("column {}: {} values are not rendered as they are read", c.name, c.mysql_type))),
        }
        Ok(())
    }

    /// One binlog value of the column as the cell a chunk file would have given.
    pub fn cell(&self, v: Raw<'_>) -> Result<Cell, String> {
        let (mut text, mut bytes) = (String::new(), Vec::new());
        Ok(self.view(&v, &mut text, &mut bytes)?.to_cell())
    }

    /// `cell` without owning it: the value borrows from the row image, the plan (ENUM and SET
    /// members) or the scratch buffers (numbers, temporals, decoded charsets, padded binary),
    /// which the caller clears and reuses from value to value.
    pub fn view<'x>(&'x self, v: &'x Raw<'x>, text: &'x mut String, bytes: &'x mut Vec<u8>) -> Result<CellView<'x>, String> {
        let c = self.c;
        let bad = |v: &Raw| format!("column {}: unexpected binlog value {v:?} for {}", c.name, c.mysql_type);
        text.clear();
        bytes.clear();
        let num = |text: &'x mut String, s: &str| -> CellView<'x> {
            text.push_str(s);
            CellView::Num(text.as_str())
        };
        let temporal = |text: &'x mut String, t: TextBuf| -> CellView<'x> {
            text.push_str(t.as_str());
            CellView::Text(text.as_str())
        };
        Ok(match (&c.kind, v) {
            (_, Raw::Null) => CellView::Null,
            (ColumnKind::Int { unsigned: false, .. }, Raw::Int { bits, bytes: width }) => num(text, itoa::Buffer::new().format(signed(*bits, *width as usize))),
            (ColumnKind::Int { unsigned: true, .. }, Raw::Int { bits, .. }) => num(text, itoa::Buffer::new().format(*bits)),
            (ColumnKind::Year, Raw::Year(y)) => num(text, itoa::Buffer::new().format(*y)),
            (ColumnKind::Decimal { scale, .. }, Raw::Decimal(d)) => {
                // MySQL's own spelling: `0.50`, never `.50` or `-0.00`.
                let unscaled = parse_decimal(d.trim(), *scale).ok_or_else(|| bad(v))?;
                num(text, &scaled(unscaled.to_string(), *scale as i8))
            }
            (ColumnKind::Float, Raw::Float(f)) => num(text, &f.to_string()),
            (ColumnKind::Double, Raw::Double(f)) => num(text, &f.to_string()),
            (k @ (ColumnKind::Date | ColumnKind::DateTime { .. }), Raw::DateTime(p)) => temporal(text, TextBuf::datetime(p, k)),
            // 0 is the zero timestamp (1970-01-01 00:00:00 UTC itself cannot be stored).
            (k @ ColumnKind::Timestamp { .. }, Raw::Timestamp(0)) => temporal(text, TextBuf::datetime(&DateTimeParts { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, micro: 0 }, k)),
            (k @ ColumnKind::Timestamp { .. }, Raw::Timestamp(micros)) => temporal(text, TextBuf::datetime(&DateTimeParts::from_epoch_micros(*micros), k)),
            (ColumnKind::Time { fsp }, Raw::Time(micros)) => temporal(text, TextBuf::time(*micros, *fsp)),
            (ColumnKind::Text, Raw::Bytes(b)) => match self.special {
                Special::Uuid => {
                    text.push_str(&uuid_text(b).ok_or_else(|| bad(v))?);
                    CellView::Text(text.as_str())
                }
                Special::Inet6 => {
                    text.push_str(&inet6_text(b).ok_or_else(|| bad(v))?);
                    CellView::Text(text.as_str())
                }
                Special::Inet4 => match padded(b, 4) {
                    Some(p) => {
                        text.push_str(&Ipv4Addr::new(p[0], p[1], p[2], p[3]).to_string());
                        CellView::Text(text.as_str())
                    }
                    None => return Err(bad(v)),
                },
                // SELECT returns CHAR(n) without its padding.
                Special::Char => CellView::Text(self.decode_text(b, text)?.trim_end_matches(' ')),
                _ => CellView::Text(self.decode_text(b, text)?),
            },
            (ColumnKind::Json, Raw::Bytes(b)) => CellView::Text(self.decode_text(b, text)?),
            (ColumnKind::Json, Raw::Json(json)) => CellView::Text(json),
            (ColumnKind::Enum, Raw::Enum(0)) => CellView::Text(""),
            (ColumnKind::Enum, Raw::Enum(i)) => {
                CellView::Text(self.members.get(*i as usize - 1).ok_or_else(|| format!("column {}: ENUM index {i} outside {}", c.name, c.mysql_type))?)
            }
            (ColumnKind::Set, Raw::Set(mask)) => CellView::Set(*mask, &self.members),
            (ColumnKind::Binary, Raw::Bytes(b)) => match self.special {
                // SELECT returns BINARY(n) padded to n with 0x00; the binlog strips the padding.
                Special::Binary(n) if b.len() <= n => {
                    bytes.extend_from_slice(b);
                    bytes.resize(n, 0);
                    CellView::Bytes(bytes.as_slice())
                }
                Special::Binary(_) => return Err(bad(v)),
                _ => CellView::Bytes(b),
            },
            (ColumnKind::Bit { .. }, Raw::Bytes(b)) if b.len() <= 8 => num(text, itoa::Buffer::new().format(b.iter().fold(0u64, |acc, &x| acc << 8 | x as u64))),
            // The server's internal form is a 4-byte SRID followed by WKB, as SELECT returns it.
            (ColumnKind::Spatial, Raw::Bytes(b)) if b.len() > 4 => CellView::Bytes(&b[4..]),
            (_, v) => return Err(bad(v)),
        })
    }
}

/// A captured value as `ColumnPlan::view` gives it: a `Cell` that borrows its text and bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellView<'x> {
    Null,
    Num(&'x str),
    Text(&'x str),
    Bytes(&'x [u8]),
    /// The bitmask and the column's members.
    Set(u64, &'x [String]),
}

impl CellView<'_> {
    pub fn to_cell(self) -> Cell {
        match self {
            CellView::Null => Cell::Null,
            CellView::Num(s) => Cell::Num(s.to_string()),
            CellView::Text(s) => Cell::Text(s.to_string()),
            CellView::Bytes(b) => Cell::Bytes(b.to_vec()),
            CellView::Set(mask, members) => Cell::Set(set_members(mask, members).map(String::from).collect()),
        }
    }

    /// The value as a staged line holds it: exactly what serde_json writes for the cell it
    /// stands for (`"z"`, `{"n":"1"}`, `{"t":"x"}`, `{"b":"<base64>"}`, `{"s":["a"]}`).
    pub fn write_json(self, out: &mut Vec<u8>) {
        match self {
            CellView::Null => out.extend_from_slice(b"\"z\""),
            CellView::Num(s) => tagged(out, b"{\"n\":", s),
            CellView::Text(s) => tagged(out, b"{\"t\":", s),
            CellView::Bytes(b) => {
                use base64::Engine;
                out.extend_from_slice(b"{\"b\":\"");
                let at = out.len();
                out.resize(at + b.len().div_ceil(3) * 4, 0);
                let n = base64::engine::general_purpose::STANDARD.encode_slice(b, &mut out[at..]).expect("sized for the encoding");
                out.truncate(at + n);
                out.extend_from_slice(b"\"}");
            }
            CellView::Set(mask, members) => {
                out.extend_from_slice(b"{\"s\":[");
                for (i, m) in set_members(mask, members).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    super::json::write_str(out, m);
                }
                out.extend_from_slice(b"]}");
            }
        }
    }
}

/// Input bytes of a large value rendered at a time (a multiple of 3, so base64 pieces join).
const PIECE: usize = 48 << 10;

/// Reads until `buf` is full or `input` ends; the bytes read.
fn read_full(input: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl CellView<'_> {
    /// The value as `write_json` writes it, to `out`; text and bytes over `PIECE` are rendered
    /// a piece at a time, so a large value's rendering is never held whole.
    pub fn write_json_to(self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        use base64::Engine;
        match self {
            CellView::Bytes(b) if b.len() > PIECE => {
                out.write_all(b"{\"b\":\"")?;
                let mut piece = vec![0u8; PIECE / 3 * 4];
                for c in b.chunks(PIECE) {
                    let n = base64::engine::general_purpose::STANDARD.encode_slice(c, &mut piece).expect("sized for the encoding");
                    out.write_all(&piece[..n])?;
                }
                out.write_all(b"\"}")
            }
            CellView::Text(s) if s.len() > PIECE => {
                out.write_all(b"{\"t\":\"")?;
                let mut piece = Vec::with_capacity(PIECE * 6);
                for c in s.as_bytes().chunks(PIECE) {
                    piece.clear();
                    super::json::write_escaped(&mut piece, c);
                    out.write_all(&piece)?;
                }
                out.write_all(b"\"}")
            }
            small => {
                let mut line = Vec::new();
                small.write_json(&mut line);
                out.write_all(&line)
            }
        }
    }
}

fn tagged(out: &mut Vec<u8>, tag: &[u8], s: &str) {
    out.extend_from_slice(tag);
    super::json::write_str(out, s);
    out.push(b'}');
}

/// The members a SET bitmask selects, in the column's order.
fn set_members(mask: u64, members: &[String]) -> impl Iterator<Item = &str> {
    members.iter().enumerate().filter(move |(i, _)| mask >> i & 1 == 1).map(|(_, m)| m.as_str())
}

/// One binlog value of column `c` as the cell a chunk file would have given.
pub fn cell_of(c: &ColumnSchema, v: Raw<'_>) -> Result<Cell, String> {
    ColumnPlan::new(c).cell(v)
}

/// The plans of every column of `t`, in order.
pub fn table_plan(t: &TableSchema) -> Vec<ColumnPlan<'_>> {
    t.columns.iter().map(ColumnPlan::new).collect()
}

/// A column the table map gives an old temporal type code (TIMESTAMP 7, TIME 11, DATETIME 12)
/// while the schema gives it a fraction: MariaDB's pre-10.1.2 (and MySQL's pre-5.6.4) format,
/// whose row image widths grow with the fraction and which capture does not decode. Named with
/// the fix, so its values are never read at the wrong width.
pub fn old_temporal_with_fraction(t: &TableSchema, codes: &[u8]) -> Option<String> {
    t.columns.iter().zip(codes).find_map(|(c, &code)| {
        let fsp = match c.kind {
            ColumnKind::DateTime { fsp } | ColumnKind::Timestamp { fsp } | ColumnKind::Time { fsp } => fsp,
            _ => 0,
        };
        (matches!(code, 7 | 11 | 12) && fsp > 0).then(|| {
            format!(
                "table {}, column {} ({}): stored in the temporal format of tables created before MariaDB 10.1.2 / MySQL 5.6.4 (binlog type {code} with a fraction), which capture does not decode. Convert the table (SET GLOBAL mysql56_temporal_format = ON on MariaDB, then ALTER TABLE {} FORCE), then export again",
                t.display_name(),
                c.name,
                c.mysql_type,
                crate::source::qualified(&t.database, &t.table)
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ColumnKind, ty: &str, charset: Option<&str>) -> ColumnSchema {
        ColumnSchema { name: "c".into(), ordinal: 1, mysql_type: ty.into(), nullable: true, charset: charset.map(String::from), collation: None, kind }
    }

    #[test]
    fn a_view_writes_the_json_serde_writes_for_its_cell() {
        let cases: Vec<(ColumnSchema, Raw)> = vec![
            (col(ColumnKind::Int { bits: 64, unsigned: false }, "bigint(20)", None), Raw::Int { bits: u64::MAX, bytes: 8 }),
            (col(ColumnKind::Int { bits: 64, unsigned: true }, "bigint(20) unsigned", None), Raw::Int { bits: u64::MAX, bytes: 8 }),
            (col(ColumnKind::Decimal { precision: 65, scale: 30 }, "decimal(65,30)", None), Raw::Decimal("-12345678901234567890123456789012345.123456789012345678901234567890".into())),
            (col(ColumnKind::Double, "double", None), Raw::Double(-1.5e300)),
            (col(ColumnKind::Float, "float", None), Raw::Float(0.1)),
            (col(ColumnKind::Text, "varchar(20)", Some("utf8mb4")), Raw::Bytes("a\"b\\c\n\u{1}\u{7f}é🎉".as_bytes())),
            (col(ColumnKind::Text, "char(8)", Some("utf8mb4")), Raw::Bytes(b"pad  ")),
            (col(ColumnKind::Text, "varchar(20)", Some("latin1")), Raw::Bytes(&[0x63, 0x61, 0x66, 0xe9, 0x22, 0x80])),
            (col(ColumnKind::Text, "uuid", None), Raw::Bytes(&[0x12, 0x34])),
            (col(ColumnKind::Text, "inet6", None), Raw::Bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1])),
            (col(ColumnKind::Json, "json", Some("utf8mb4")), Raw::Json("{\"k\": \"v\\n\"}".into())),
            (col(ColumnKind::Enum, "enum('a','it''s')", Some("utf8mb4")), Raw::Enum(2)),
            (col(ColumnKind::Set, "set('a','b\"','c')", Some("utf8mb4")), Raw::Set(0b111)),
            (col(ColumnKind::Set, "set('a','b')", Some("utf8mb4")), Raw::Set(0)),
            (col(ColumnKind::Binary, "binary(4)", None), Raw::Bytes(&[0xff])),
            (col(ColumnKind::Binary, "varbinary(4)", None), Raw::Bytes(&[])),
            (col(ColumnKind::Bit { width: 64 }, "bit(64)", None), Raw::Bytes(&[0xff; 8])),
            (col(ColumnKind::Time { fsp: 6 }, "time(6)", None), Raw::Time(-3_020_399_000_001)),
            (col(ColumnKind::Timestamp { fsp: 0 }, "timestamp", None), Raw::Timestamp(0)),
            (col(ColumnKind::Year, "year(4)", None), Raw::Year(2155)),
            (col(ColumnKind::Text, "varchar(20)", Some("utf8mb4")), Raw::Null),
            (col(ColumnKind::Text, "varchar(20)", Some("utf8mb4")), Raw::Bytes(&[1, 2, 3, 0x1f, b'"', b'\\'])),
            (col(ColumnKind::Text, "varchar(20)", Some("latin1")), Raw::Bytes(&[1, 0x80, 0x80, 0x1f, b'"', 0xff])),
            (col(ColumnKind::Text, "varchar(20)", Some("cp1251")), Raw::Bytes(&[0xc0, 0xff, 0x88, 0x01])),
            (col(ColumnKind::Text, "varchar(20)", Some("utf32")), Raw::Bytes(&[0, 0, 0, 1, 0, 1, 0xf3, 0x09])),
        ];
        for (c, raw) in cases {
            let plan = ColumnPlan::new(&c);
            let cell = plan.cell(raw.clone()).unwrap();
            let (mut text, mut bytes, mut ours) = (String::new(), Vec::new(), Vec::new());
            plan.view(&raw, &mut text, &mut bytes).unwrap().write_json(&mut ours);
            assert!(plan.json_len_bound(&raw) >= ours.len(), "{} {raw:?}: a bound of {} for {} bytes", c.mysql_type, plan.json_len_bound(&raw), ours.len());
            let mut written = Vec::new();
            plan.view(&raw, &mut text, &mut bytes).unwrap().write_json_to(&mut written).unwrap();
            assert_eq!(written, ours, "{} {raw:?}: written to a writer", c.mysql_type);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&cell).unwrap(), "{} {raw:?}", c.mysql_type);
        }
    }

    #[test]
    fn a_large_value_written_in_pieces_is_the_value_written_whole() {
        // Lengths around the piece, with escapes and multi-byte characters across its edges.
        let text = "é\"\n😀ab\\\u{1}".repeat(PIECE / 4);
        let bytes: Vec<u8> = (0..PIECE * 2 + 1).map(|i| (i * 7 % 256) as u8).collect();
        for len in [PIECE + 1, PIECE + 2, 2 * PIECE, 2 * PIECE + 1] {
            let cut = (0..=len).rev().find(|&i| text.is_char_boundary(i)).unwrap();
            for view in [CellView::Text(&text[..cut]), CellView::Bytes(&bytes[..len])] {
                let (mut whole, mut pieces) = (Vec::new(), Vec::new());
                view.write_json(&mut whole);
                view.write_json_to(&mut pieces).unwrap();
                assert!(pieces == whole, "{len} bytes: the pieces differ from the whole");
            }
        }
    }

    #[test]
    fn enum_and_set_members_are_unquoted() {
        assert_eq!(members("enum('a','it''s','b,c')"), vec!["a", "it's", "b,c"]);
        assert_eq!(members("set('x','y','z')"), vec!["x", "y", "z"]);
    }

    #[test]
    fn numbers_years_and_sets_become_what_select_gives() {
        let u64c = col(ColumnKind::Int { bits: 64, unsigned: true }, "bigint(20) unsigned", None);
        assert_eq!(cell_of(&u64c, Raw::Int { bits: u64::MAX, bytes: 8 }).unwrap(), Cell::Num("18446744073709551615".into()));
        let i24 = col(ColumnKind::Int { bits: 24, unsigned: false }, "mediumint(9)", None);
        assert_eq!(cell_of(&i24, Raw::Int { bits: 0x80_0000, bytes: 3 }).unwrap(), Cell::Num("-8388608".into()));
        let u24 = col(ColumnKind::Int { bits: 24, unsigned: true }, "mediumint(8) unsigned", None);
        assert_eq!(cell_of(&u24, Raw::Int { bits: 0xff_ffff, bytes: 3 }).unwrap(), Cell::Num("16777215".into()));
        let year = col(ColumnKind::Year, "year(4)", None);
        assert_eq!(cell_of(&year, Raw::Year(0)).unwrap(), Cell::Num("0".into()));
        let set = col(ColumnKind::Set, "set('a','b','c','d','e','f','g','h','i')", Some("utf8mb4"));
        assert_eq!(cell_of(&set, Raw::Set(0b1_0000_0101)).unwrap(), Cell::Set(vec!["a".into(), "c".into(), "i".into()]));
        assert_eq!(cell_of(&set, Raw::Set(0)).unwrap(), Cell::Set(vec![]));
        let e = col(ColumnKind::Enum, "enum('new','paid')", Some("utf8mb4"));
        assert_eq!(cell_of(&e, Raw::Enum(2)).unwrap(), Cell::Text("paid".into()));
        assert_eq!(cell_of(&e, Raw::Enum(0)).unwrap(), Cell::Text("".into()));
        let d = col(ColumnKind::Decimal { precision: 10, scale: 2 }, "decimal(10,2)", None);
        assert_eq!(cell_of(&d, Raw::Decimal("-.50".into())).unwrap(), Cell::Num("-0.50".into()));
        assert_eq!(cell_of(&d, Raw::Decimal("-0.00".into())).unwrap(), Cell::Num("0.00".into()));
        let bit = col(ColumnKind::Bit { width: 64 }, "bit(64)", None);
        assert_eq!(cell_of(&bit, Raw::Bytes(&[0x80, 0, 0, 0, 0, 0, 0, 1])).unwrap(), Cell::Num("9223372036854775809".into()));
    }

    #[test]
    fn temporals_become_mysql_text_at_the_columns_precision() {
        let ts = col(ColumnKind::Timestamp { fsp: 0 }, "timestamp", None);
        assert_eq!(cell_of(&ts, Raw::Timestamp(1_117_020_637_000_000)).unwrap(), Cell::Text("2005-05-25 11:30:37".into()));
        assert_eq!(cell_of(&ts, Raw::Timestamp(0)).unwrap(), Cell::Text("0000-00-00 00:00:00".into()));
        let ts3 = col(ColumnKind::Timestamp { fsp: 3 }, "timestamp(3)", None);
        assert_eq!(cell_of(&ts3, Raw::Timestamp(1_120_000)).unwrap(), Cell::Text("1970-01-01 00:00:01.120".into()));
        let dt = col(ColumnKind::DateTime { fsp: 6 }, "datetime(6)", None);
        let p = DateTimeParts { year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 58, micro: 123456 };
        assert_eq!(cell_of(&dt, Raw::DateTime(p)).unwrap(), Cell::Text("2024-02-29 23:59:58.123456".into()));
        let t = col(ColumnKind::Time { fsp: 0 }, "time", None);
        assert_eq!(cell_of(&t, Raw::Time(-(26 * 3600 + 3 * 60 + 4) * 1_000_000)).unwrap(), Cell::Text("-26:03:04".into()));
    }

    #[test]
    fn text_is_decoded_from_its_charset_and_char_loses_its_padding() {
        let latin1 = col(ColumnKind::Text, "varchar(10)", Some("latin1"));
        assert_eq!(cell_of(&latin1, Raw::Bytes(&[b'c', 0xe9, 0x80])).unwrap(), Cell::Text("cé€".into()));
        let ch = col(ColumnKind::Text, "char(5)", Some("utf8mb4"));
        assert_eq!(cell_of(&ch, Raw::Bytes(b"ab   ")).unwrap(), Cell::Text("ab".into()));
        let ucs2 = col(ColumnKind::Text, "varchar(5)", Some("ucs2"));
        assert_eq!(cell_of(&ucs2, Raw::Bytes(&[0, b'a', 0x20, 0xac])).unwrap(), Cell::Text("a€".into()));
        let utf8 = col(ColumnKind::Text, "varchar(5)", Some("utf8mb4"));
        assert!(cell_of(&utf8, Raw::Bytes(&[0xff])).unwrap_err().contains("not valid utf8mb4"));
        let bin = col(ColumnKind::Binary, "binary(4)", None);
        assert_eq!(cell_of(&bin, Raw::Bytes(&[1, 2])).unwrap(), Cell::Bytes(vec![1, 2, 0, 0]));
        let varbin = col(ColumnKind::Binary, "varbinary(4)", None);
        assert_eq!(cell_of(&varbin, Raw::Bytes(&[1, 0])).unwrap(), Cell::Bytes(vec![1, 0]));
    }

    #[test]
    fn mariadb_uuid_and_inet_types_render_as_the_server_prints_them() {
        let v = hex::decode("6ccd780cbaba102695645b8c656024db").unwrap();
        assert_eq!(uuid_text(&v).unwrap(), "6ccd780c-baba-1026-9564-5b8c656024db");
        assert_eq!(uuid_text(&[]).unwrap(), "00000000-0000-0000-0000-000000000000");
        assert_eq!(inet6_text(&[]).unwrap(), "::");
        assert_eq!(inet6_text(&[0, 1]).unwrap(), "1::");
        assert_eq!(inet6_text(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]).unwrap(), "::1.2.3.4");
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(inet6_text(&one).unwrap(), "::1");
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1];
        assert_eq!(inet6_text(&mapped).unwrap(), "::ffff:192.0.2.1");
        let doc = hex::decode("20010db8000000000001000000000001").unwrap();
        assert_eq!(inet6_text(&doc).unwrap(), "2001:db8::1:0:0:1");
        let full = hex::decode("20010db8000100020003000400050006").unwrap();
        assert_eq!(inet6_text(&full).unwrap(), "2001:db8:1:2:3:4:5:6");
    }
}
