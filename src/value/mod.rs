//! One value model, from a MySQL column to a DynamoDB attribute. Every stage passes a column's
//! value through the same few conversions, so the item `import` builds from a chunk and the item
//! `cdc apply` builds from the binlog are built by the same code:
//!
//! ```text
//! export:  result-set value ──row::decode──▶ Datum ──(export's sinks)──▶ Parquet / CSV chunk
//! import:  chunk column/field ──chunk::parquet_cell / chunk::csv_cell──▶ Cell
//! cdc:     binlog rows event ──row_image::for_each_row──▶ Raw ──binlog::ColumnPlan::view (charset, padding, fsp, members)──▶ CellView
//!          CellView ──write_json (`json`: serde_json's bytes)──▶ staged line ──(apply reads it)──▶ Cell
//!          Cell ──zero_date (the export's --zero-date policy)──▶ Cell
//! all:     Cell ──dynamo::convert (ConvertOptions)──▶ Attr ──(mapping)──▶ DynamoDB item
//! ```
//!
//! A `Cell` is a value in its canonical form for its column's kind (`ColumnKind`): numbers as
//! exact decimal text, temporals in MySQL's own text at the column's precision, text as UTF-8
//! (CHAR without its padding), bytes as the server's SELECT returns them (BINARY(n) padded to n),
//! SET as its members. `temporal` holds the calendar arithmetic; `attr` DynamoDB's values, sizes
//! and codec. Captured changes stage `Cell`s as JSON (`{"n": "1.5"}`, `{"t": "x"}`, `{"b":
//! "<base64>"}`, `{"s": ["a"]}`, `"z"` for NULL).

pub mod attr;
pub mod binlog;
pub mod chunk;
pub mod dynamo;
pub mod json;
pub mod jsonb;
pub mod reference;
pub mod row;
pub mod row_image;
pub mod row_stream;
pub mod temporal;

use std::borrow::Cow;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::source::schema::ColumnSchema;
use crate::source::types::ZeroDatePolicy;

/// One value of a row in its canonical form (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    #[serde(rename = "z")]
    Null,
    /// Integers, decimals, floats, YEAR and BIT, as exact decimal text.
    #[serde(rename = "n")]
    Num(String),
    /// Text, ENUM, JSON, UUID/INET, and temporal values in MySQL's text form.
    #[serde(rename = "t")]
    Text(String),
    #[serde(rename = "b", with = "b64")]
    Bytes(Vec<u8>),
    /// SET members (the empty set is an empty list).
    #[serde(rename = "s")]
    Set(Vec<String>),
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

impl Cell {
    /// The value as text for templates; None for NULL. Bytes render as base64.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Cell::Null => None,
            Cell::Num(s) | Cell::Text(s) => Some(Cow::Borrowed(s)),
            Cell::Bytes(b) => Some(Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b))),
            Cell::Set(v) => Some(Cow::Owned(v.join(","))),
        }
    }
}

/// Applies the export's `--zero-date` policy to a value that did not pass through the export
/// (a captured change): a DATE/DATETIME/TIMESTAMP that is not a calendar date (a zero date, a
/// zero month or day, `2023-02-31`) becomes NULL (`null`), stays MySQL's text (`string`), or
/// is refused with the reason (`reject`), exactly as the export treats it.
pub fn zero_date(col: &ColumnSchema, cell: Cell, policy: ZeroDatePolicy) -> Result<Cell, String> {
    let Cell::Text(text) = &cell else { return Ok(cell) };
    if !col.kind.is_temporal() || temporal::parse_datetime(text).is_some_and(|p| p.is_calendar_date()) {
        return Ok(cell);
    }
    match policy {
        ZeroDatePolicy::Null => Ok(Cell::Null),
        ZeroDatePolicy::String => Ok(cell),
        ZeroDatePolicy::Reject => Err(format!("column {}: {} (the export's --zero-date reject)", col.name, row::DecodeError::ZeroDate(text.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::types::ColumnKind;

    #[test]
    fn cells_stage_as_compact_json_and_round_trip() {
        let cells = vec![Cell::Null, Cell::Num("1.5".into()), Cell::Text("é".into()), Cell::Bytes(vec![0, 255]), Cell::Set(vec!["a".into()])];
        let text = serde_json::to_string(&cells).unwrap();
        assert_eq!(text, r#"["z",{"n":"1.5"},{"t":"é"},{"b":"AP8="},{"s":["a"]}]"#);
        assert_eq!(serde_json::from_str::<Vec<Cell>>(&text).unwrap(), cells);
    }

    #[test]
    fn the_zero_date_policy_treats_captured_values_as_the_export_does() {
        let col = ColumnSchema { name: "d".into(), ordinal: 1, mysql_type: "date".into(), nullable: false, charset: None, collation: None, kind: ColumnKind::Date };
        let bad = Cell::Text("2023-02-31".into());
        assert_eq!(zero_date(&col, bad.clone(), ZeroDatePolicy::Null), Ok(Cell::Null));
        assert_eq!(zero_date(&col, bad.clone(), ZeroDatePolicy::String), Ok(bad.clone()));
        assert!(zero_date(&col, bad, ZeroDatePolicy::Reject).unwrap_err().contains("2023-02-31"));
        let good = Cell::Text("2024-02-29".into());
        assert_eq!(zero_date(&col, good.clone(), ZeroDatePolicy::Reject), Ok(good));
    }
}
