//! MySQL column types as discovered from information_schema, reduced to the `ColumnKind` that
//! decides how a value is decoded and how it is encoded in chunk files (Arrow type for Parquet,
//! text form for CSV). The kind is recorded in the manifest so every later stage reads it back.

use arrow_schema::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};

/// The decoded shape of a MySQL column. Widths and precisions are kept so encodings are lossless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnKind {
    /// TINYINT (8), SMALLINT (16), MEDIUMINT (24), INT (32), BIGINT (64).
    Int { bits: u8, unsigned: bool },
    /// DECIMAL(p, s): MySQL allows p ≤ 65, s ≤ 30 (MariaDB s ≤ 38).
    Decimal { precision: u8, scale: u8 },
    Float,
    Double,
    Date,
    /// DATETIME(fsp), a wall-clock value without time zone.
    DateTime { fsp: u8 },
    /// TIMESTAMP(fsp), read with the session time zone set to UTC.
    Timestamp { fsp: u8 },
    /// TIME(fsp): a signed duration, -838:59:59 … 838:59:59.
    Time { fsp: u8 },
    Year,
    /// CHAR, VARCHAR, *TEXT and types the server renders as text (UUID, INET6…), as utf8mb4.
    Text,
    Enum,
    /// SET: exported as a list of its members; the empty set is an empty list, not NULL.
    Set,
    /// JSON (MySQL's type, or MariaDB's LONGTEXT with a json_valid() check).
    Json,
    /// BINARY, VARBINARY, *BLOB.
    Binary,
    /// BIT(n), n ≤ 64, as an unsigned integer.
    Bit { width: u8 },
    /// GEOMETRY and its subtypes, as WKB (the server's 4-byte SRID prefix removed).
    Spatial,
}

/// How temporal values without a lossless Arrow form (zero dates such as `0000-00-00`, or a
/// zero month/day) are exported. The choice is recorded in the manifest and counted per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDatePolicy {
    /// Export NULL and count the value in the report.
    Null,
    /// Export DATE/DATETIME/TIMESTAMP columns as text in MySQL's own format, zero dates included.
    String,
    /// Send the row to the rejects file.
    Reject,
}

crate::choices!(ZeroDatePolicy { "null" => ZeroDatePolicy::Null, "string" => ZeroDatePolicy::String, "reject" => ZeroDatePolicy::Reject });

impl ColumnKind {
    /// Derives the kind from information_schema.COLUMNS. `is_json` comes from a MariaDB
    /// `json_valid()` check constraint. Returns None for a type this tool does not know.
    pub fn from_information_schema(
        data_type: &str,
        column_type: &str,
        precision: Option<u64>,
        scale: Option<u64>,
        datetime_precision: Option<u64>,
        has_charset: bool,
        is_json: bool,
    ) -> Option<ColumnKind> {
        let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
        let fsp = datetime_precision.unwrap_or(0).min(6) as u8;
        let kind = match data_type.to_ascii_lowercase().as_str() {
            "tinyint" => ColumnKind::Int { bits: 8, unsigned },
            "smallint" => ColumnKind::Int { bits: 16, unsigned },
            "mediumint" => ColumnKind::Int { bits: 24, unsigned },
            "int" | "integer" => ColumnKind::Int { bits: 32, unsigned },
            "bigint" => ColumnKind::Int { bits: 64, unsigned },
            "decimal" | "numeric" => ColumnKind::Decimal {
                precision: precision.unwrap_or(10).clamp(1, 65) as u8,
                scale: scale.unwrap_or(0).min(38) as u8,
            },
            "float" => ColumnKind::Float,
            "double" | "real" | "double precision" => ColumnKind::Double,
            "date" => ColumnKind::Date,
            "datetime" => ColumnKind::DateTime { fsp },
            "timestamp" => ColumnKind::Timestamp { fsp },
            "time" => ColumnKind::Time { fsp },
            "year" => ColumnKind::Year,
            "json" => ColumnKind::Json,
            "longtext" | "text" | "mediumtext" | "tinytext" if is_json => ColumnKind::Json,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ColumnKind::Text,
            "uuid" | "inet4" | "inet6" => ColumnKind::Text,
            "enum" => ColumnKind::Enum,
            "set" => ColumnKind::Set,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                ColumnKind::Binary
            }
            "bit" => ColumnKind::Bit { width: precision.unwrap_or(1).clamp(1, 64) as u8 },
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => ColumnKind::Spatial,
            _ if has_charset => ColumnKind::Text,
            _ => return None,
        };
        Some(kind)
    }

    pub fn is_integer(&self) -> bool {
        matches!(self, ColumnKind::Int { .. })
    }

    pub fn is_temporal(&self) -> bool {
        matches!(self, ColumnKind::Date | ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. })
    }

    /// The Arrow type this kind is written as in Parquet chunks.
    pub fn arrow_type(&self, zero_date: ZeroDatePolicy) -> DataType {
        if self.is_temporal() && zero_date == ZeroDatePolicy::String {
            return DataType::Utf8;
        }
        match *self {
            ColumnKind::Int { bits, unsigned } => match (bits, unsigned) {
                (8, false) => DataType::Int8,
                (8, true) => DataType::UInt8,
                (16, false) => DataType::Int16,
                (16, true) => DataType::UInt16,
                (24 | 32, false) => DataType::Int32,
                (24 | 32, true) => DataType::UInt32,
                (_, false) => DataType::Int64,
                (_, true) => DataType::UInt64,
            },
            ColumnKind::Decimal { precision, scale } if precision <= 38 => {
                DataType::Decimal128(precision, scale as i8)
            }
            ColumnKind::Decimal { precision, scale } => DataType::Decimal256(precision, scale as i8),
            ColumnKind::Float => DataType::Float32,
            ColumnKind::Double => DataType::Float64,
            ColumnKind::Date => DataType::Date32,
            ColumnKind::DateTime { fsp } => DataType::Timestamp(time_unit(fsp), None),
            ColumnKind::Timestamp { fsp } => DataType::Timestamp(time_unit(fsp), Some("UTC".into())),
            // No Parquet logical type spans ±838 hours: INT64 microseconds (Arrow's duration).
            ColumnKind::Time { .. } => DataType::Duration(TimeUnit::Microsecond),
            ColumnKind::Year => DataType::UInt16,
            ColumnKind::Text | ColumnKind::Enum | ColumnKind::Json => DataType::Utf8,
            ColumnKind::Set => {
                DataType::List(std::sync::Arc::new(Field::new("item", DataType::Utf8, false)))
            }
            ColumnKind::Binary | ColumnKind::Spatial => DataType::Binary,
            ColumnKind::Bit { .. } => DataType::UInt64,
        }
    }

    /// How the value is written in CSV chunks (documented in docs/format.md).
    pub fn csv_encoding(&self, zero_date: ZeroDatePolicy) -> &'static str {
        match self {
            ColumnKind::Int { .. } | ColumnKind::Year | ColumnKind::Bit { .. } => "integer",
            ColumnKind::Decimal { .. } => "decimal-text",
            ColumnKind::Float | ColumnKind::Double => "float-shortest-roundtrip",
            ColumnKind::Date => "date-text",
            ColumnKind::DateTime { .. } => "datetime-text",
            ColumnKind::Timestamp { .. } if zero_date == ZeroDatePolicy::String => "datetime-text",
            ColumnKind::Timestamp { .. } => "datetime-text-utc",
            ColumnKind::Time { .. } => "time-text",
            ColumnKind::Text | ColumnKind::Enum => "text",
            ColumnKind::Json => "json-text",
            ColumnKind::Set => "set-text",
            ColumnKind::Binary => "base64",
            ColumnKind::Spatial => "wkb-base64",
        }
    }
}

/// Milliseconds for fsp 0–3, microseconds for fsp 4–6. Parquet has no seconds unit: Arrow's
/// `Timestamp(Second)` is written as bare INT64, which pyarrow and DuckDB read as BIGINT.
pub fn time_unit(fsp: u8) -> TimeUnit {
    match fsp {
        0..=3 => TimeUnit::Millisecond,
        _ => TimeUnit::Microsecond,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(data_type: &str, column_type: &str) -> Option<ColumnKind> {
        ColumnKind::from_information_schema(data_type, column_type, Some(65), Some(30), Some(6), false, false)
    }

    #[test]
    fn integer_widths_and_signedness_follow_the_column_type() {
        assert_eq!(kind("bigint", "bigint(20) unsigned"), Some(ColumnKind::Int { bits: 64, unsigned: true }));
        assert_eq!(kind("mediumint", "mediumint(9)"), Some(ColumnKind::Int { bits: 24, unsigned: false }));
        assert_eq!(
            ColumnKind::Int { bits: 24, unsigned: true }.arrow_type(ZeroDatePolicy::Null),
            DataType::UInt32
        );
    }

    #[test]
    fn wide_decimals_use_decimal256() {
        let k = kind("decimal", "decimal(65,30)").unwrap();
        assert_eq!(k.arrow_type(ZeroDatePolicy::Null), DataType::Decimal256(65, 30));
        let narrow = ColumnKind::Decimal { precision: 38, scale: 2 };
        assert_eq!(narrow.arrow_type(ZeroDatePolicy::Null), DataType::Decimal128(38, 2));
    }

    #[test]
    fn mariadb_json_is_longtext_with_a_check() {
        let k = ColumnKind::from_information_schema("longtext", "longtext", None, None, None, true, true);
        assert_eq!(k, Some(ColumnKind::Json));
    }

    #[test]
    fn string_zero_date_policy_makes_temporal_columns_text() {
        assert_eq!(ColumnKind::Date.arrow_type(ZeroDatePolicy::String), DataType::Utf8);
        assert_eq!(ColumnKind::Time { fsp: 0 }.arrow_type(ZeroDatePolicy::String), DataType::Duration(TimeUnit::Microsecond));
    }

    #[test]
    fn seconds_precision_temporals_are_milliseconds_in_parquet() {
        // Regression: DATETIME(0) was Timestamp(Second), bare INT64 that DuckDB read as BIGINT.
        assert_eq!(ColumnKind::DateTime { fsp: 0 }.arrow_type(ZeroDatePolicy::Null), DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(ColumnKind::Timestamp { fsp: 0 }.arrow_type(ZeroDatePolicy::Null), DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())));
        assert_eq!(ColumnKind::DateTime { fsp: 4 }.arrow_type(ZeroDatePolicy::Null), DataType::Timestamp(TimeUnit::Microsecond, None));
    }

    #[test]
    fn unknown_binary_type_is_refused() {
        assert_eq!(ColumnKind::from_information_schema("weird", "weird", None, None, None, false, false), None);
    }
}
