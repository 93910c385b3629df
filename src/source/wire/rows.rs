//! Result rows of the binary protocol read in place: each column's wire form is worked out once
//! per statement from its definition, and each row's cells are views into the packet (`Cell`s:
//! integers and temporals decoded, strings and bytes borrowed), given the same values as the
//! `mysql` crate's `Value`s.

use mysql_common::constants::{ColumnFlags, ColumnType};

use super::WireError;
use crate::source::cell::Cell;

/// How one column's values travel in a binary row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wire {
    I8(bool),
    I16(bool),
    I32(bool),
    I64(bool),
    F32,
    F64,
    Date,
    Time,
    Null,
    Bytes,
}

impl Wire {
    /// The wire form of a column of `ty` with `flags` (the flag tells unsigned integers).
    pub fn of(ty: ColumnType, flags: ColumnFlags) -> Wire {
        let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
        match ty {
            ColumnType::MYSQL_TYPE_TINY => Wire::I8(unsigned),
            ColumnType::MYSQL_TYPE_SHORT | ColumnType::MYSQL_TYPE_YEAR => Wire::I16(unsigned),
            ColumnType::MYSQL_TYPE_LONG | ColumnType::MYSQL_TYPE_INT24 => Wire::I32(unsigned),
            ColumnType::MYSQL_TYPE_LONGLONG => Wire::I64(unsigned),
            ColumnType::MYSQL_TYPE_FLOAT => Wire::F32,
            ColumnType::MYSQL_TYPE_DOUBLE => Wire::F64,
            ColumnType::MYSQL_TYPE_TIMESTAMP
            | ColumnType::MYSQL_TYPE_DATE
            | ColumnType::MYSQL_TYPE_NEWDATE
            | ColumnType::MYSQL_TYPE_DATETIME => Wire::Date,
            ColumnType::MYSQL_TYPE_TIME => Wire::Time,
            ColumnType::MYSQL_TYPE_NULL => Wire::Null,
            _ => Wire::Bytes,
        }
    }
}

fn short() -> WireError {
    WireError::Protocol("a result row ends before its last column".into())
}

/// A length-encoded integer at the start of `b`, and the bytes it took.
pub fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    match *b.first()? {
        x @ 0..=0xfa => Some((x as u64, 1)),
        0xfc => Some((u16::from_le_bytes(b.get(1..3)?.try_into().ok()?) as u64, 3)),
        0xfd => Some((u32::from_le_bytes([*b.get(1)?, *b.get(2)?, *b.get(3)?, 0]) as u64, 4)),
        0xfe => Some((u64::from_le_bytes(b.get(1..9)?.try_into().ok()?), 9)),
        _ => None,
    }
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], WireError> {
    if rest.len() < n {
        return Err(short());
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

/// Parses one binary result row (its 0x00 header included) into `out`, one cell per column.
pub fn parse<'a>(payload: &'a [u8], columns: &[Wire], out: &mut Vec<Cell<'a>>) -> Result<(), WireError> {
    out.clear();
    let bitmap_len = (columns.len() + 7 + 2) / 8;
    let mut rest = payload.get(1..).ok_or_else(short)?;
    let bitmap = take(&mut rest, bitmap_len)?;
    for (i, wire) in columns.iter().enumerate() {
        let bit = i + 2;
        if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            out.push(Cell::Null);
            continue;
        }
        // Unsigned 8-, 16- and 32-bit values are `Int`s, as the `mysql` crate gives them.
        let cell = match *wire {
            Wire::I8(u) => {
                let b = take(&mut rest, 1)?[0];
                Cell::Int(if u { b as i64 } else { b as i8 as i64 })
            }
            Wire::I16(u) => {
                let b: [u8; 2] = take(&mut rest, 2)?.try_into().expect("2 bytes");
                Cell::Int(if u { u16::from_le_bytes(b) as i64 } else { i16::from_le_bytes(b) as i64 })
            }
            Wire::I32(u) => {
                let b: [u8; 4] = take(&mut rest, 4)?.try_into().expect("4 bytes");
                Cell::Int(if u { u32::from_le_bytes(b) as i64 } else { i32::from_le_bytes(b) as i64 })
            }
            Wire::I64(u) => {
                let b: [u8; 8] = take(&mut rest, 8)?.try_into().expect("8 bytes");
                match (u, u64::from_le_bytes(b)) {
                    (true, x) if x > i64::MAX as u64 => Cell::UInt(x),
                    (_, x) => Cell::Int(x as i64),
                }
            }
            Wire::F32 => Cell::Float(f32::from_le_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes"))),
            Wire::F64 => Cell::Double(f64::from_le_bytes(take(&mut rest, 8)?.try_into().expect("8 bytes"))),
            Wire::Date => {
                let len = take(&mut rest, 1)?[0] as usize;
                let b = take(&mut rest, len)?;
                let at = |i: usize| b.get(i).copied().unwrap_or(0);
                let (y, mo, d) = if len >= 4 { (u16::from_le_bytes([b[0], b[1]]), b[2], b[3]) } else { (0, 0, 0) };
                let (h, mi, s) = if len >= 7 { (at(4), at(5), at(6)) } else { (0, 0, 0) };
                let us = if len == 11 { u32::from_le_bytes([b[7], b[8], b[9], b[10]]) } else { 0 };
                Cell::Date(y, mo, d, h, mi, s, us)
            }
            Wire::Time => {
                let len = take(&mut rest, 1)?[0] as usize;
                let b = take(&mut rest, len)?;
                let (neg, days, h, m, s) = if len >= 8 {
                    (b[0] == 1, u32::from_le_bytes([b[1], b[2], b[3], b[4]]), b[5], b[6], b[7])
                } else {
                    (false, 0, 0, 0, 0)
                };
                let us = if len == 12 { u32::from_le_bytes([b[8], b[9], b[10], b[11]]) } else { 0 };
                Cell::Time(neg, days, h, m, s, us)
            }
            Wire::Null => Cell::Null,
            Wire::Bytes => {
                let (n, used) = lenenc(rest).ok_or_else(short)?;
                rest = &rest[used..];
                Cell::Bytes(take(&mut rest, n as usize)?)
            }
        };
        out.push(cell);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_match_the_mysql_crates_values() {
        // Built by mysql_common's own serializer for a binary row, then read back here.
        use mysql_common::proto::MySerialize;
        use mysql_common::value::{ServerSide, Value};
        let values = vec![
            Value::Int(-5),
            Value::NULL,
            Value::Int(200),
            Value::UInt(u64::MAX),
            Value::Double(1.5),
            Value::Date(2024, 2, 29, 23, 59, 58, 123456),
            Value::Time(true, 34, 22, 59, 59, 500000),
            Value::Bytes(b"caf\xc3\xa9".to_vec()),
        ];
        let columns = [Wire::I8(false), Wire::Bytes, Wire::I8(true), Wire::I64(true), Wire::F64, Wire::Date, Wire::Time, Wire::Bytes];
        let mut row = vec![0u8];
        let mut bitmap = mysql_common::packets::NullBitmap::<ServerSide>::new(values.len());
        bitmap.set(1, true);
        row.extend_from_slice(bitmap.as_ref());
        for (v, w) in values.iter().zip(columns) {
            match (v, w) {
                (Value::NULL, _) => {}
                (Value::Int(i), Wire::I8(_)) => row.push(*i as u8),
                (v, _) => v.serialize(&mut row),
            }
        }
        let mut out = Vec::new();
        parse(&row, &columns, &mut out).unwrap();
        let got: Vec<Value> = out.iter().map(|c| c.to_value()).collect();
        assert_eq!(got, values);
        assert!(parse(&row[..row.len() - 2], &columns, &mut out).is_err(), "a cut row is an error, not a short value");
    }
}
