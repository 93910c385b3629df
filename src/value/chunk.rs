//! Chunk files back into `Cell`s: a Parquet column's value by its Arrow type (any time unit, so
//! runs written before a unit changed still read), a CSV field by the manifest's encoding of its
//! column. Temporal values come back in MySQL's text form at the column's precision, numbers as
//! exact text, so nothing passes through a float that was not one.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine;

use super::temporal::{civil_from_days, format_datetime, format_time, DateTimeParts};
use super::Cell;
use crate::source::types::ColumnKind;

pub fn csv_cell(text: &str, encoding: &str) -> Result<Cell, String> {
    Ok(match encoding {
        "integer" | "decimal-text" | "float-shortest-roundtrip" => Cell::Num(text.to_string()),
        "base64" | "wkb-base64" => Cell::Bytes(base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("bad base64: {e}"))?),
        "set-text" if text.is_empty() => Cell::Set(Vec::new()),
        "set-text" => Cell::Set(text.split(',').map(str::to_string).collect()),
        _ => Cell::Text(text.to_string()),
    })
}

fn to_micros(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v * 1_000_000,
        TimeUnit::Millisecond => v * 1_000,
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v / 1_000,
    }
}

/// Decimal digits with `scale` fraction digits inserted: ("-12345", 2) → "-123.45".
pub fn scaled(digits: String, scale: i8) -> String {
    if scale <= 0 {
        return digits;
    }
    let (sign, abs) = match digits.strip_prefix('-') {
        Some(a) => ("-", a),
        None => ("", digits.as_str()),
    };
    let scale = scale as usize;
    let padded = format!("{abs:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// `parquet_cell` into `cell`, reusing its buffer for strings and integers (the chunk reader's
/// hot loop: a fresh allocation per cell showed in profiles).
pub fn parquet_cell_into(a: &ArrayRef, i: usize, kind: &ColumnKind, cell: &mut Cell) -> Result<(), String> {
    use std::fmt::Write;
    fn buffer(cell: &mut Cell, num: bool) -> &mut String {
        let reusable = matches!((&*cell, num), (Cell::Num(_), true) | (Cell::Text(_), false));
        if !reusable {
            *cell = if num { Cell::Num(String::new()) } else { Cell::Text(String::new()) };
        }
        match cell {
            Cell::Num(s) | Cell::Text(s) => {
                s.clear();
                s
            }
            _ => unreachable!("set just above"),
        }
    }
    if !a.is_null(i) {
        // Writing to a String cannot fail: `is_ok` is always true.
        let written = match a.data_type() {
            DataType::Utf8 => {
                buffer(cell, false).push_str(a.as_string::<i32>().value(i));
                true
            }
            DataType::LargeUtf8 => {
                buffer(cell, false).push_str(a.as_string::<i64>().value(i));
                true
            }
            DataType::Int32 => write!(buffer(cell, true), "{}", a.as_primitive::<Int32Type>().value(i)).is_ok(),
            DataType::Int64 => write!(buffer(cell, true), "{}", a.as_primitive::<Int64Type>().value(i)).is_ok(),
            DataType::UInt32 => write!(buffer(cell, true), "{}", a.as_primitive::<UInt32Type>().value(i)).is_ok(),
            DataType::UInt64 => write!(buffer(cell, true), "{}", a.as_primitive::<UInt64Type>().value(i)).is_ok(),
            _ => false,
        };
        if written {
            return Ok(());
        }
    }
    *cell = parquet_cell(a, i, kind)?;
    Ok(())
}

pub fn parquet_cell(a: &ArrayRef, i: usize, kind: &ColumnKind) -> Result<Cell, String> {
    if a.is_null(i) {
        return Ok(Cell::Null);
    }
    let num = |s: String| Ok(Cell::Num(s));
    match a.data_type() {
        DataType::Int8 => num(a.as_primitive::<Int8Type>().value(i).to_string()),
        DataType::Int16 => num(a.as_primitive::<Int16Type>().value(i).to_string()),
        DataType::Int32 => num(a.as_primitive::<Int32Type>().value(i).to_string()),
        DataType::Int64 => num(a.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::UInt8 => num(a.as_primitive::<UInt8Type>().value(i).to_string()),
        DataType::UInt16 => num(a.as_primitive::<UInt16Type>().value(i).to_string()),
        DataType::UInt32 => num(a.as_primitive::<UInt32Type>().value(i).to_string()),
        DataType::UInt64 => num(a.as_primitive::<UInt64Type>().value(i).to_string()),
        DataType::Float32 => num(a.as_primitive::<Float32Type>().value(i).to_string()),
        DataType::Float64 => num(a.as_primitive::<Float64Type>().value(i).to_string()),
        DataType::Decimal128(_, s) => num(scaled(a.as_primitive::<Decimal128Type>().value(i).to_string(), *s)),
        DataType::Decimal256(_, s) => num(scaled(a.as_primitive::<Decimal256Type>().value(i).to_string(), *s)),
        DataType::Date32 => {
            let (y, m, d) = civil_from_days(a.as_primitive::<Date32Type>().value(i) as i64);
            Ok(Cell::Text(format!("{y:04}-{m:02}-{d:02}")))
        }
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i),
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(i),
            };
            Ok(Cell::Text(format_datetime(&DateTimeParts::from_epoch_micros(to_micros(v, unit)), kind)))
        }
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<DurationSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<DurationMillisecondType>().value(i),
                TimeUnit::Microsecond => a.as_primitive::<DurationMicrosecondType>().value(i),
                TimeUnit::Nanosecond => a.as_primitive::<DurationNanosecondType>().value(i),
            };
            let fsp = match kind {
                ColumnKind::Time { fsp } => *fsp,
                _ => 6,
            };
            Ok(Cell::Text(format_time(to_micros(v, unit), fsp)))
        }
        DataType::Utf8 => Ok(Cell::Text(a.as_string::<i32>().value(i).to_string())),
        DataType::LargeUtf8 => Ok(Cell::Text(a.as_string::<i64>().value(i).to_string())),
        DataType::Binary => Ok(Cell::Bytes(a.as_binary::<i32>().value(i).to_vec())),
        DataType::LargeBinary => Ok(Cell::Bytes(a.as_binary::<i64>().value(i).to_vec())),
        DataType::List(_) => {
            let list = a.as_list::<i32>().value(i);
            let members = list.as_string::<i32>();
            Ok(Cell::Set((0..members.len()).map(|j| members.value(j).to_string()).collect()))
        }
        other => Err(format!("unexpected Arrow type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_get_their_scale_back() {
        assert_eq!(scaled("-12345".into(), 2), "-123.45");
        assert_eq!(scaled("5".into(), 3), "0.005");
        assert_eq!(scaled("-5".into(), 3), "-0.005");
        assert_eq!(scaled("700".into(), 0), "700");
    }

    #[test]
    fn cells_read_into_a_reused_cell_equal_fresh_ones() {
        use arrow_array::{BinaryArray, Int32Array, Int64Array, StringArray, UInt64Array};
        use std::sync::Arc;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("héllo"), None, Some(""), Some("x")])),
            Arc::new(Int64Array::from(vec![Some(-5), Some(i64::MAX), None, Some(0)])),
            Arc::new(Int32Array::from(vec![Some(7), None, Some(-1), Some(3)])),
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(1), None, Some(2)])),
            Arc::new(BinaryArray::from(vec![Some(&b"\x00\x01"[..]), None, Some(&b""[..]), Some(&b"z"[..])])),
        ];
        // One cell reused across every column and row: its variant changes as the types do.
        let mut cell = Cell::Null;
        for a in &columns {
            for i in 0..a.len() {
                parquet_cell_into(a, i, &ColumnKind::Text, &mut cell).unwrap();
                assert_eq!(cell, parquet_cell(a, i, &ColumnKind::Text).unwrap(), "{} row {i}", a.data_type());
            }
        }
    }
}
