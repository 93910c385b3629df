//! A captured change as it is staged: the binlog coordinate after its transaction, the commit
//! time, the table, and the row images as `Cell`s, the same typed values the import reads from
//! chunk files, so apply maps them with the import's code. Binlog values arrive by column ordinal
//! (MariaDB logs no column names by default) and are typed here from the manifest's schema:
//! unsigned integers fixed from their signed form, ENUM indexes and SET bitmasks turned into
//! their members, temporals into MySQL's text form.

use mysql::Value;
use serde::{Deserialize, Serialize};

use crate::export::datum::{format_datetime, format_time, DateTimeParts};
use crate::import::reader::{civil_from_days, Cell};
use crate::source::schema::{ColumnSchema, TableSchema};
use crate::source::types::ColumnKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// A statement that changes a captured table's definition: apply stops at it.
    Ddl,
}

/// One staged change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `file:position` of the end of the transaction that holds the change.
    pub at: String,
    /// Commit time on the source, Unix seconds.
    pub ts: u32,
    /// Index of the table in the manifest.
    pub table: usize,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Vec<StagedCell>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<StagedCell>>,
    /// The statement, for `Ddl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// `Cell` as staged (JSON): `null`, `{"n": "12.5"}`, `{"t": "text"}`, `{"b": "<base64>"}`,
/// `{"s": ["a", "b"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StagedCell {
    #[serde(rename = "n")]
    Num(String),
    #[serde(rename = "t")]
    Text(String),
    #[serde(rename = "b", with = "b64")]
    Bytes(Vec<u8>),
    #[serde(rename = "s")]
    Set(Vec<String>),
    #[serde(rename = "z")]
    Null,
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

impl StagedCell {
    pub fn from_cell(c: Cell) -> StagedCell {
        match c {
            Cell::Null => StagedCell::Null,
            Cell::Num(n) => StagedCell::Num(n),
            Cell::Text(t) => StagedCell::Text(t),
            Cell::Bytes(b) => StagedCell::Bytes(b),
            Cell::Set(s) => StagedCell::Set(s),
        }
    }

    pub fn into_cell(self) -> Cell {
        match self {
            StagedCell::Null => Cell::Null,
            StagedCell::Num(n) => Cell::Num(n),
            StagedCell::Text(t) => Cell::Text(t),
            StagedCell::Bytes(b) => Cell::Bytes(b),
            StagedCell::Set(s) => Cell::Set(s),
        }
    }
}

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

/// (year, month, day, hour, minute, second, microsecond) as the binlog gives them.
type Civil = (u16, u8, u8, u8, u8, u8, u32);

fn datetime((year, month, day, hour, minute, second, micro): Civil, kind: &ColumnKind) -> String {
    format_datetime(&DateTimeParts { year, month, day, hour, minute, second, micro }, kind)
}

/// One binlog value of column `c` as the cell a chunk file would have given.
pub fn cell_of(c: &ColumnSchema, v: Value) -> Result<Cell, String> {
    let bad = |v: &Value| format!("column {}: unexpected binlog value {v:?} for {}", c.name, c.mysql_type);
    Ok(match (&c.kind, v) {
        (_, Value::NULL) => Cell::Null,
        (ColumnKind::Int { bits, unsigned }, Value::Int(i)) => {
            if *unsigned && i < 0 {
                let wrapped = i as i128 + (1i128 << bits);
                Cell::Num(wrapped.to_string())
            } else {
                Cell::Num(i.to_string())
            }
        }
        (ColumnKind::Int { .. } | ColumnKind::Year, Value::UInt(u)) => Cell::Num(u.to_string()),
        (ColumnKind::Year, Value::Int(i)) => Cell::Num(i.to_string()),
        (ColumnKind::Decimal { .. }, Value::Bytes(b)) => Cell::Num(String::from_utf8_lossy(&b).into_owned()),
        (ColumnKind::Float, Value::Float(f)) => Cell::Num(f.to_string()),
        (ColumnKind::Float, Value::Double(f)) => Cell::Num((f as f32).to_string()),
        (ColumnKind::Double, Value::Double(f)) => Cell::Num(f.to_string()),
        (ColumnKind::Double, Value::Float(f)) => Cell::Num((f as f64).to_string()),
        (k @ (ColumnKind::Date | ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. }), Value::Date(y, mo, d, h, mi, s, us)) => Cell::Text(datetime((y, mo, d, h, mi, s, us), k)),
        (k @ ColumnKind::Timestamp { .. }, Value::Int(secs)) => {
            let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
            let t = secs.rem_euclid(86_400);
            Cell::Text(datetime((y as u16, mo as u8, d as u8, (t / 3600) as u8, (t / 60 % 60) as u8, (t % 60) as u8, 0), k))
        }
        (ColumnKind::Time { fsp }, Value::Time(neg, days, h, m, s, us)) => {
            let micros = ((days as i64 * 24 + h as i64) * 3600 + m as i64 * 60 + s as i64) * 1_000_000 + us as i64;
            Cell::Text(format_time(if neg { -micros } else { micros }, *fsp))
        }
        (ColumnKind::Text | ColumnKind::Json, Value::Bytes(b)) => Cell::Text(String::from_utf8_lossy(&b).into_owned()),
        (ColumnKind::Enum, Value::Int(i)) => match i {
            0 => Cell::Text(String::new()),
            i => Cell::Text(members(&c.mysql_type).get(i as usize - 1).cloned().ok_or_else(|| format!("column {}: ENUM index {i} outside {}", c.name, c.mysql_type))?),
        },
        (ColumnKind::Enum, Value::Bytes(b)) => Cell::Text(String::from_utf8_lossy(&b).into_owned()),
        (ColumnKind::Set, Value::Int(mask)) => {
            let all = members(&c.mysql_type);
            Cell::Set(all.into_iter().enumerate().filter(|(i, _)| (mask as u64) >> i & 1 == 1).map(|(_, m)| m).collect())
        }
        (ColumnKind::Binary, Value::Bytes(b)) => Cell::Bytes(b),
        (ColumnKind::Bit { .. }, Value::Bytes(b)) => Cell::Num(b.iter().fold(0u64, |acc, &x| acc << 8 | x as u64).to_string()),
        (ColumnKind::Bit { .. }, Value::Int(i)) => Cell::Num((i as u64).to_string()),
        (ColumnKind::Spatial, Value::Bytes(b)) => Cell::Bytes(if b.len() > 4 { b[4..].to_vec() } else { b }),
        (_, v) => return Err(bad(&v)),
    })
}

/// A whole binlog row image (values by ordinal) as staged cells.
pub fn row_of(t: &TableSchema, values: Vec<Option<Value>>) -> Result<Vec<StagedCell>, String> {
    if values.len() != t.columns.len() {
        return Err(format!(
            "table {}: the binlog row has {} columns, the export's schema {} (was the table altered? rerun the export)",
            t.display_name(),
            values.len(),
            t.columns.len()
        ));
    }
    t.columns.iter().zip(values).map(|(c, v)| cell_of(c, v.unwrap_or(Value::NULL)).map(StagedCell::from_cell)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ColumnKind, ty: &str) -> ColumnSchema {
        ColumnSchema { name: "c".into(), ordinal: 1, mysql_type: ty.into(), nullable: true, charset: None, collation: None, kind }
    }

    #[test]
    fn enum_and_set_members_are_unquoted() {
        assert_eq!(members("enum('a','it''s','b,c')"), vec!["a", "it's", "b,c"]);
        assert_eq!(members("set('x','y','z')"), vec!["x", "y", "z"]);
    }

    #[test]
    fn binlog_values_become_the_cells_a_chunk_gives() {
        let u64c = col(ColumnKind::Int { bits: 64, unsigned: true }, "bigint(20) unsigned");
        assert_eq!(cell_of(&u64c, Value::Int(-1)).unwrap(), Cell::Num("18446744073709551615".into()));
        let i32c = col(ColumnKind::Int { bits: 32, unsigned: false }, "int(11)");
        assert_eq!(cell_of(&i32c, Value::Int(-2147483648)).unwrap(), Cell::Num("-2147483648".into()));
        let dt = col(ColumnKind::DateTime { fsp: 6 }, "datetime(6)");
        assert_eq!(cell_of(&dt, Value::Date(2024, 2, 29, 23, 59, 58, 123456)).unwrap(), Cell::Text("2024-02-29 23:59:58.123456".into()));
        let e = col(ColumnKind::Enum, "enum('new','paid')");
        assert_eq!(cell_of(&e, Value::Int(2)).unwrap(), Cell::Text("paid".into()));
        let s = col(ColumnKind::Set, "set('a','b','c')");
        assert_eq!(cell_of(&s, Value::Int(0b101)).unwrap(), Cell::Set(vec!["a".into(), "c".into()]));
        let t = col(ColumnKind::Time { fsp: 0 }, "time");
        assert_eq!(cell_of(&t, Value::Time(true, 1, 2, 3, 4, 0)).unwrap(), Cell::Text("-26:03:04".into()));
        let d = col(ColumnKind::Decimal { precision: 10, scale: 2 }, "decimal(10,2)");
        assert_eq!(cell_of(&d, Value::Bytes(b"-12.50".to_vec())).unwrap(), Cell::Num("-12.50".into()));
    }

    #[test]
    fn staged_cells_round_trip_through_json() {
        let cells = vec![StagedCell::Null, StagedCell::Num("1.5".into()), StagedCell::Text("é".into()), StagedCell::Bytes(vec![0, 255]), StagedCell::Set(vec!["a".into()])];
        let text = serde_json::to_string(&cells).unwrap();
        assert_eq!(serde_json::from_str::<Vec<StagedCell>>(&text).unwrap(), cells);
    }
}
