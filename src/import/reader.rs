//! Reads chunk files back into rows of `Cell`s: the typed values the mapping converts. Parquet
//! columns are read by their Arrow type, CSV fields by the manifest's encoding of the column.
//! Temporal values come back in MySQL's text form at the column's precision, numbers as exact
//! text, so nothing passes through a float that was not one.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine;

use crate::export::csv_sink::unescape_field;
use crate::export::datum::{format_datetime, format_time, DateTimeParts};
use crate::manifest::TableEntry;
use crate::source::types::ColumnKind;

/// One value of a row, as read from a chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// Integers, decimals, floats, YEAR and BIT, as exact decimal text.
    Num(String),
    /// Text, ENUM, JSON, and temporal values in MySQL's text form.
    Text(String),
    Bytes(Vec<u8>),
    /// SET members (the empty set is an empty list).
    Set(Vec<String>),
}

impl Cell {
    /// The value as text for templates; None for NULL. Bytes render as base64.
    pub fn text(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match self {
            Cell::Null => None,
            Cell::Num(s) | Cell::Text(s) => Some(Cow::Borrowed(s)),
            Cell::Bytes(b) => Some(Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b))),
            Cell::Set(v) => Some(Cow::Owned(v.join(","))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ReadError {
    pub file: String,
    pub reason: String,
}

/// Calls `row(index_in_chunk, cells)` for every row of a chunk file, in file order.
pub fn read_chunk(
    run: &Path,
    table: &TableEntry,
    file: &str,
    mut row: impl FnMut(u64, &[Cell]) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let err = |reason: String| ReadError { file: file.to_string(), reason };
    let f = File::open(run.join(file)).map_err(|e| err(e.to_string()))?;
    if file.ends_with(".csv") {
        read_csv(f, table, file, &mut row)
    } else {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|e| err(e.to_string()))?;
        let kinds: Vec<ColumnKind> = table.schema.columns.iter().map(|c| c.kind).collect();
        let mut index = 0u64;
        let mut cells = vec![Cell::Null; kinds.len()];
        for batch in reader {
            let batch = batch.map_err(|e| err(e.to_string()))?;
            if batch.num_columns() != kinds.len() {
                return Err(err(format!("{} columns, the manifest lists {}", batch.num_columns(), kinds.len())));
            }
            for i in 0..batch.num_rows() {
                for (c, cell) in cells.iter_mut().enumerate() {
                    *cell = parquet_cell(batch.column(c), i, &kinds[c]).map_err(|r| err(format!("column {}: {r}", table.schema.columns[c].name)))?;
                }
                row(index, &cells)?;
                index += 1;
            }
        }
        Ok(())
    }
}

fn read_csv(f: File, table: &TableEntry, file: &str, row: &mut impl FnMut(u64, &[Cell]) -> Result<(), ReadError>) -> Result<(), ReadError> {
    let err = |reason: String| ReadError { file: file.to_string(), reason };
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(std::io::BufReader::new(f));
    let mut record = csv::StringRecord::new();
    let mut cells = vec![Cell::Null; table.schema.columns.len()];
    let mut index = 0u64;
    while rdr.read_record(&mut record).map_err(|e| err(e.to_string()))? {
        if record.len() != cells.len() {
            return Err(err(format!("row {}: {} fields, expected {}", index + 1, record.len(), cells.len())));
        }
        for (c, cell) in cells.iter_mut().enumerate() {
            let enc = table.encodings.get(c).map(|e| e.csv.as_str()).unwrap_or("text");
            *cell = match unescape_field(&record[c]) {
                None => Cell::Null,
                Some(text) => csv_cell(text, enc).map_err(|r| err(format!("row {}, column {}: {r}", index + 1, table.schema.columns[c].name)))?,
            };
        }
        row(index, &cells)?;
        index += 1;
    }
    Ok(())
}

fn csv_cell(text: &str, encoding: &str) -> Result<Cell, String> {
    Ok(match encoding {
        "integer" | "decimal-text" | "float-shortest-roundtrip" => Cell::Num(text.to_string()),
        "base64" | "wkb-base64" => Cell::Bytes(base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("bad base64: {e}"))?),
        "set-text" if text.is_empty() => Cell::Set(Vec::new()),
        "set-text" => Cell::Set(text.split(',').map(str::to_string).collect()),
        _ => Cell::Text(text.to_string()),
    })
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's civil_from_days).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn to_micros(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v * 1_000_000,
        TimeUnit::Millisecond => v * 1_000,
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v / 1_000,
    }
}

fn parts_from_micros(micros: i64) -> DateTimeParts {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rest / 1_000_000;
    DateTimeParts {
        year: y as u16,
        month: m as u8,
        day: d as u8,
        hour: (secs / 3600) as u8,
        minute: (secs / 60 % 60) as u8,
        second: (secs % 60) as u8,
        micro: (rest % 1_000_000) as u32,
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

fn parquet_cell(a: &ArrayRef, i: usize, kind: &ColumnKind) -> Result<Cell, String> {
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
            Ok(Cell::Text(format_datetime(&parts_from_micros(to_micros(v, unit)), kind)))
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
    fn civil_dates_round_trip() {
        for days in [-719528, -1, 0, 1, 11016, 19723, 2932896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(crate::export::datum::days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-719528), (0, 1, 1));
    }

    #[test]
    fn decimals_get_their_scale_back() {
        assert_eq!(scaled("-12345".into(), 2), "-123.45");
        assert_eq!(scaled("5".into(), 3), "0.005");
        assert_eq!(scaled("-5".into(), 3), "-0.005");
        assert_eq!(scaled("700".into(), 0), "700");
    }
}
