//! The bytes of a binlog rows event, parsed into raw values by the table map's column types and
//! metadata: the null bitmap, then each present column in its storage form (integers without
//! sign, DECIMAL in MySQL's binary form, DATETIME2/TIMESTAMP2/TIME2 packed with their fraction,
//! ENUM/SET by index and bitmask, strings and BLOBs with their length prefix). Parsed here rather
//! than by the mysql crate, which panics on a negative TIME(1)/TIME(2) with a fraction (and
//! wraps to a wrong value in release builds). `binlog::cell_of` types each value by the schema.

use mysql::binlog::events::{RowsEventData, TableMapEvent};

use super::temporal::DateTimeParts;

/// A value as the row image stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    Null,
    /// Little-endian bits of an integer `bytes` wide: the schema says whether it is signed.
    Int { bits: u64, bytes: u8 },
    Float(f32),
    Double(f64),
    /// DECIMAL as the crate's exact text.
    Decimal(String),
    /// YEAR: 0 or 1901–2155.
    Year(u16),
    /// DATE, DATETIME: calendar parts as stored (zero and invalid dates included).
    DateTime(DateTimeParts),
    /// TIMESTAMP: microseconds since the epoch, UTC; 0 is the zero timestamp.
    Timestamp(i64),
    /// TIME: signed microseconds.
    Time(i64),
    Bytes(&'a [u8]),
    /// ENUM index (0 is the error value '').
    Enum(u64),
    /// SET bitmask.
    Set(u64),
    /// MySQL's binary JSON, as the JSON text a SELECT returns (`value::jsonb`).
    Json(String),
}

/// A column's type in the table map: its type code and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    pub code: u8,
    pub meta: Vec<u8>,
}

// Type codes (MySQL's enum_field_types).
const DECIMAL_OLD: u8 = 0;
const TINY: u8 = 1;
const SHORT: u8 = 2;
const LONG: u8 = 3;
const FLOAT: u8 = 4;
const DOUBLE: u8 = 5;
const TIMESTAMP: u8 = 7;
const LONGLONG: u8 = 8;
const INT24: u8 = 9;
const DATE: u8 = 10;
const TIME: u8 = 11;
const DATETIME: u8 = 12;
const YEAR: u8 = 13;
const NEWDATE: u8 = 14;
const VARCHAR: u8 = 15;
const BIT: u8 = 16;
const TIMESTAMP2: u8 = 17;
const DATETIME2: u8 = 18;
const TIME2: u8 = 19;
const VECTOR: u8 = 242;
const JSON: u8 = 245;
const NEWDECIMAL: u8 = 246;
const ENUM: u8 = 247;
const SET: u8 = 248;
const TINY_BLOB: u8 = 249;
const BLOB: u8 = 252;
const VAR_STRING: u8 = 253;
const STRING: u8 = 254;
const GEOMETRY: u8 = 255;

/// The table map's column types with their metadata.
pub fn column_types(tme: &TableMapEvent<'_>) -> Result<Vec<ColumnType>, String> {
    (0..tme.columns_count() as usize)
        .map(|i| {
            let code = tme.get_raw_column_type(i).map_err(|e| format!("column {}: {e}", i + 1))?.map(|t| t as u8).ok_or_else(|| format!("column {}: no type in the table map", i + 1))?;
            let meta = tme.get_column_metadata(i).ok_or_else(|| format!("column {}: no metadata in the table map", i + 1))?.to_vec();
            Ok(ColumnType { code, meta })
        })
        .collect()
}

/// Before and after images of one row (None where the event has no such image).
pub type RowImages<'a> = (Option<Vec<Raw<'a>>>, Option<Vec<Raw<'a>>>);

/// Every row of a rows event.
pub fn rows<'a>(ev: &'a RowsEventData<'a>, types: &[ColumnType]) -> Result<Vec<RowImages<'a>>, String> {
    let mut out = Vec::new();
    for_each_row(ev, types, |b, a| {
        out.push((b.map(<[Raw]>::to_vec), a.map(<[Raw]>::to_vec)));
        Ok(())
    })?;
    Ok(out)
}

/// Each row of a rows event, its before and after images handed to `f` in two vectors kept
/// from row to row (nothing allocated per row but what a DECIMAL or JSON value needs).
pub fn for_each_row<'a>(ev: &'a RowsEventData<'a>, types: &[ColumnType], mut f: impl FnMut(Option<&[Raw<'a>]>, Option<&[Raw<'a>]>) -> Result<(), String>) -> Result<(), String> {
    if let RowsEventData::PartialUpdateRowsEvent(_) = ev {
        return Err("a partial JSON update (binlog_row_value_options = PARTIAL_JSON): set binlog_row_value_options = '' so rows are logged whole".into());
    }
    let n = ev.num_columns() as usize;
    if n != types.len() {
        return Err(format!("the rows event has {n} columns, its table map {}", types.len()));
    }
    // Every column in each image the event has (binlog_row_image = FULL).
    let full = |all: Option<bool>| -> Result<bool, String> {
        match all {
            None => Ok(false),
            Some(true) => Ok(true),
            Some(false) => Err("the row image lacks columns: set binlog_row_image = FULL".into()),
        }
    };
    let (has_before, has_after) = (full(ev.columns_before_image().map(|b| (0..n).all(|i| b[i])))?, full(ev.columns_after_image().map(|b| (0..n).all(|i| b[i])))?);
    let mut buf = ev.rows_data();
    let (mut before, mut after) = (Vec::with_capacity(n), Vec::with_capacity(n));
    while !buf.is_empty() {
        if has_before {
            image(&mut buf, types, &mut before)?;
        }
        if has_after {
            image(&mut buf, types, &mut after)?;
        }
        f(has_before.then_some(before.as_slice()), has_after.then_some(after.as_slice()))?;
    }
    Ok(())
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err(format!("the row image ends early ({} bytes left, {n} needed)", buf.len()));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, &x| acc << 8 | x as u64)
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| acc << 8 | x as u64)
}

/// Sign-extends the low `bytes` bytes of `v`.
pub fn signed(v: u64, bytes: usize) -> i64 {
    let shift = 64 - 8 * bytes as u32;
    ((v << shift) as i64) >> shift
}

fn image<'a>(buf: &mut &'a [u8], types: &[ColumnType], out: &mut Vec<Raw<'a>>) -> Result<(), String> {
    out.clear();
    let nulls = take(buf, types.len().div_ceil(8))?;
    for (i, t) in types.iter().enumerate() {
        out.push(if nulls[i / 8] >> (i % 8) & 1 == 1 { Raw::Null } else { value(buf, t).map_err(|e| format!("column {}: {e}", i + 1))? });
    }
    Ok(())
}

/// Fraction digits' bytes for a temporal type's `fsp`.
fn frac_bytes(fsp: u8) -> usize {
    (fsp as usize).div_ceil(2)
}

/// A fraction stored in `frac_bytes(fsp)` big-endian bytes, as microseconds.
fn frac_micros(b: &[u8]) -> i64 {
    match b.len() {
        0 => 0,
        1 => signed(be(b), 1) * 10_000,
        2 => signed(be(b), 2) * 100,
        _ => signed(be(b), 3),
    }
}

fn length_prefixed<'a>(buf: &mut &'a [u8], prefix: usize) -> Result<&'a [u8], String> {
    let len = le(take(buf, prefix)?) as usize;
    take(buf, len)
}

pub(crate) fn value<'a>(buf: &mut &'a [u8], t: &ColumnType) -> Result<Raw<'a>, String> {
    let meta = |i: usize| t.meta.get(i).copied().unwrap_or(0);
    Ok(match t.code {
        TINY | SHORT | INT24 | LONG | LONGLONG => {
            let bytes = match t.code {
                TINY => 1,
                SHORT => 2,
                INT24 => 3,
                LONG => 4,
                _ => 8,
            };
            Raw::Int { bits: le(take(buf, bytes)?), bytes: bytes as u8 }
        }
        FLOAT => Raw::Float(f32::from_le_bytes(take(buf, 4)?.try_into().expect("4 bytes"))),
        DOUBLE => Raw::Double(f64::from_le_bytes(take(buf, 8)?.try_into().expect("8 bytes"))),
        NEWDECIMAL => {
            let d = mysql_common::binlog::decimal::Decimal::read_bin(&mut *buf, meta(0) as usize, meta(1) as usize, false).map_err(|e| format!("DECIMAL: {e}"))?;
            Raw::Decimal(d.to_string())
        }
        YEAR => Raw::Year(match take(buf, 1)?[0] {
            0 => 0,
            y => 1900 + y as u16,
        }),
        DATE | NEWDATE => {
            let v = le(take(buf, 3)?);
            Raw::DateTime(DateTimeParts { year: (v >> 9) as u16, month: (v >> 5 & 15) as u8, day: (v & 31) as u8, hour: 0, minute: 0, second: 0, micro: 0 })
        }
        DATETIME => {
            let v = le(take(buf, 8)?);
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            let p = DateTimeParts { year: (d / 10_000) as u16, month: (d / 100 % 100) as u8, day: (d % 100) as u8, hour: (t / 10_000) as u8, minute: (t / 100 % 100) as u8, second: (t % 100) as u8, micro: 0 };
            Raw::DateTime(p)
        }
        DATETIME2 => {
            let int = be(take(buf, 5)?) as i64 - 0x80_0000_0000;
            let micro = frac_micros(take(buf, frac_bytes(meta(0)))?);
            let (ymd, hms) = (int >> 17, int & 0x1_ffff);
            let (ym, day) = (ymd >> 5, ymd & 31);
            let p = DateTimeParts {
                year: (ym / 13) as u16,
                month: (ym % 13) as u8,
                day: day as u8,
                hour: (hms >> 12) as u8,
                minute: (hms >> 6 & 63) as u8,
                second: (hms & 63) as u8,
                micro: micro as u32,
            };
            Raw::DateTime(p)
        }
        TIMESTAMP => Raw::Timestamp(le(take(buf, 4)?) as i64 * 1_000_000),
        TIMESTAMP2 => {
            let secs = be(take(buf, 4)?) as i64;
            let frac = take(buf, frac_bytes(meta(0)))?;
            // Unsigned here (a timestamp is never negative).
            let micro = match frac.len() {
                0 => 0,
                1 => be(frac) as i64 * 10_000,
                2 => be(frac) as i64 * 100,
                _ => be(frac) as i64,
            };
            Raw::Timestamp(secs * 1_000_000 + micro)
        }
        TIME => {
            let v = signed(le(take(buf, 3)?), 3);
            let (neg, v) = (v < 0, v.unsigned_abs() as i64);
            let micros = ((v / 10_000) * 3600 + (v / 100 % 100) * 60 + v % 100) * 1_000_000;
            Raw::Time(if neg { -micros } else { micros })
        }
        TIME2 => {
            let fsp = meta(0);
            // Packed as (hms << 24) + microseconds, offset to be unsigned; a negative value's
            // fraction is stored as its complement (MySQL's my_time_packed_from_binary).
            let packed: i64 = if fsp >= 5 {
                be(take(buf, 6)?) as i64 - 0x8000_0000_0000
            } else {
                let mut int = be(take(buf, 3)?) as i64 - 0x80_0000;
                let fb = take(buf, frac_bytes(fsp))?;
                let mut frac = be(fb) as i64;
                if int < 0 && frac > 0 {
                    int += 1;
                    frac -= 1 << (8 * fb.len());
                }
                let unit = match fb.len() {
                    0 => 0,
                    1 => 10_000,
                    _ => 100,
                };
                (int << 24) + frac * unit
            };
            let (neg, p) = (packed < 0, packed.unsigned_abs() as i64);
            let (hms, us) = (p >> 24, p % (1 << 24));
            let micros = (((hms >> 12) & 0x3ff) * 3600 + (hms >> 6 & 63) * 60 + (hms & 63)) * 1_000_000 + us;
            Raw::Time(if neg { -micros } else { micros })
        }
        BIT => {
            let bits = meta(1) as usize * 8 + meta(0) as usize;
            Raw::Bytes(take(buf, bits.div_ceil(8))?)
        }
        STRING | ENUM | SET => {
            let (m0, m1) = (meta(0), meta(1));
            let real = if m0 != 0 && m0 & 0x30 != 0x30 { m0 | 0x30 } else { m0 };
            match real {
                ENUM => Raw::Enum(le(take(buf, m1 as usize)?)),
                SET => Raw::Set(le(take(buf, m1 as usize)?)),
                _ => {
                    let max = if m0 == 0 { u16::from_le_bytes([m0, m1]) as usize } else if m0 & 0x30 != 0x30 { m1 as usize | (((m0 & 0x30) ^ 0x30) as usize) << 4 } else { m1 as usize };
                    Raw::Bytes(length_prefixed(buf, if max < 256 { 1 } else { 2 })?)
                }
            }
        }
        VARCHAR | VAR_STRING => {
            let max = u16::from_le_bytes([meta(0), meta(1)]) as usize;
            Raw::Bytes(length_prefixed(buf, if max < 256 { 1 } else { 2 })?)
        }
        TINY_BLOB..=BLOB | GEOMETRY | VECTOR => Raw::Bytes(length_prefixed(buf, meta(0).clamp(1, 4) as usize)?),
        JSON => {
            let bytes = length_prefixed(buf, meta(0).clamp(1, 4) as usize)?;
            let v: mysql_common::binlog::jsonb::Value<'_> = mysql_common::io::ParseBuf(bytes).parse(()).map_err(|e| format!("JSON: {e}"))?;
            Raw::Json(super::jsonb::to_text(&v)?)
        }
        DECIMAL_OLD => return Err("the pre-5.0 DECIMAL type is not supported: ALTER the column to DECIMAL".into()),
        other => return Err(format!("binlog column type {other} is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(code: u8, meta: &[u8]) -> ColumnType {
        ColumnType { code, meta: meta.to_vec() }
    }

    fn one(code: u8, meta: &[u8], bytes: &[u8]) -> Raw<'static> {
        let leaked: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
        let mut buf = leaked;
        let v = value(&mut buf, &t(code, meta)).unwrap();
        assert!(buf.is_empty(), "every byte read");
        v
    }

    #[test]
    fn negative_time_with_a_fraction_keeps_its_sign_and_digits() {
        // -00:00:00.1 as TIME(1): MySQL stores int -1 (0x7fffff) and fraction 0x100 - 10.
        assert_eq!(one(TIME2, &[1], &[0x7f, 0xff, 0xff, 0xf6]), Raw::Time(-100_000));
        // -838:59:59 as TIME(0).
        let hms: i64 = (838 << 12) | (59 << 6) | 59;
        let stored = (0x80_0000 - hms) as u32;
        assert_eq!(one(TIME2, &[0], &stored.to_be_bytes()[1..]), Raw::Time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000));
        // 00:00:01.5 as TIME(6).
        let packed = (0x8000_0000_0000i64 + ((1i64) << 24) + 500_000) as u64;
        assert_eq!(one(TIME2, &[6], &packed.to_be_bytes()[2..]), Raw::Time(1_500_000));
    }

    #[test]
    fn strings_enums_and_sets_follow_the_string_metadata() {
        // CHAR(10) utf8mb4 (max 40 bytes): one length byte.
        assert_eq!(one(STRING, &[STRING, 40], &[2, b'a', b'b']), Raw::Bytes(b"ab"));
        assert_eq!(one(STRING, &[ENUM, 1], &[3]), Raw::Enum(3));
        assert_eq!(one(STRING, &[SET, 2], &[0x05, 0x02]), Raw::Set(0x205));
        // CHAR(255) utf8mb4 (1020 bytes): the length's high bits live in the first metadata byte.
        let m0 = STRING ^ (((1020 >> 8) as u8 & 0x3) << 4);
        assert_eq!(one(STRING, &[m0, (1020 & 0xff) as u8], &[1, 0, b'x']), Raw::Bytes(b"x"));
    }

    #[test]
    fn integers_dates_and_timestamps_decode_from_their_storage() {
        assert_eq!(one(INT24, &[], &[0xff, 0xff, 0xff]), Raw::Int { bits: 0xff_ffff, bytes: 3 });
        assert_eq!(signed(0xff_ffff, 3), -1);
        assert_eq!(one(YEAR, &[], &[0]), Raw::Year(0));
        assert_eq!(one(YEAR, &[], &[255]), Raw::Year(2155));
        let date = (2023u64 << 9) | (2 << 5) | 31;
        assert_eq!(one(NEWDATE, &[], &date.to_le_bytes()[..3]), Raw::DateTime(DateTimeParts { year: 2023, month: 2, day: 31, hour: 0, minute: 0, second: 0, micro: 0 }));
        assert_eq!(one(TIMESTAMP2, &[3], &[0, 0, 0, 1, 0x04, 0xb0]), Raw::Timestamp(1_120_000));
    }
}
