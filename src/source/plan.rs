//! Chunk planning: splits a table on its key into ranges `[lower, upper)` that cover every key
//! exactly once, and builds each chunk's SELECT.
//!
//! - `int-range`: a single integer key is cut arithmetically between MIN and MAX into about
//!   `estimated_rows / chunk_rows` ranges. When keys are sparse (span ≫ rows) it falls back to
//!   keyset boundaries, so gaps never make one chunk hold the whole table.
//! - `keyset-estimated` (default for composite or non-integer keys): boundaries placed from the
//!   server's row estimates on the key's first column, then snapped to real keys
//!   (`estimate_split`); no table scan. Falls back to `keyset` when the estimates cannot place
//!   them.
//! - `keyset`: boundaries found by walking the key in order
//!   (`WHERE key >= b ORDER BY key LIMIT 1 OFFSET chunk_rows`), exact chunk sizes at the cost of
//!   reading the table once more.
//!
//! Either way the server compares with the column collation, so case and trailing-space rules
//! are its own, and the chunks can then be read in parallel.
//! - `single-stream`: no primary key and no unique key over NOT NULL columns: one chunk.
//!
//! The first chunk has no lower bound and the last no upper bound, so a reused plan (resume)
//! still covers rows inserted since it was made.

use mysql::Value;

use super::session::Session;
use serde::{Deserialize, Serialize};

use super::estimate_split::estimated_bounds;
use super::schema::TableSchema;
use super::types::ColumnKind;
use super::{quote_ident, qualified, SourceError};

/// A key value as stored in the manifest, typed so it is sent back to the server unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyValue {
    Int(i64),
    Uint(u64),
    Double(f64),
    /// Valid UTF-8 bytes (text, decimals, temporals in MySQL's text form).
    Text(String),
    /// Bytes that are not UTF-8 (binary keys), hex-encoded.
    Hex(String),
}

impl KeyValue {
    pub fn from_value(v: &Value) -> KeyValue {
        match v {
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::Uint(*u),
            Value::Float(f) => KeyValue::Double(*f as f64),
            Value::Double(f) => KeyValue::Double(*f),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => KeyValue::Text(s.to_string()),
                Err(_) => KeyValue::Hex(hex::encode(b)),
            },
            // Temporal keys: MySQL's text form compares exactly like the value.
            other => KeyValue::Text(other.as_sql(true).trim_matches('\'').to_string()),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::Uint(u) => Value::UInt(*u),
            KeyValue::Double(f) => Value::Double(*f),
            KeyValue::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
            KeyValue::Hex(h) => Value::Bytes(hex::decode(h).unwrap_or_default()),
        }
    }
}

/// One chunk's key range: `lower` inclusive, `upper` exclusive, None = unbounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRange {
    pub lower: Option<Vec<KeyValue>>,
    pub upper: Option<Vec<KeyValue>>,
    /// Each bound is the first key of its leading column's value (`keyset-estimated` plans), so
    /// the range is one of the leading column alone: the server compares one column per row
    /// instead of the whole key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leading: bool,
}

/// How a table was split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    IntRange,
    Keyset,
    KeysetEstimated,
    SingleStream,
}

/// How keyset boundaries are found (`--key-bounds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyBounds {
    /// From the server's row estimates; falls back to `Walk` when they cannot place them.
    Estimate,
    /// Reads the key in order: exact chunk sizes, one more pass over the table.
    Walk,
}

crate::choices!(KeyBounds { "estimate" => KeyBounds::Estimate, "walk" => KeyBounds::Walk });

/// When the integer key span is this many times larger than the row estimate, ranges would be
/// mostly empty and uneven: walk the key instead.
const SPARSE_FACTOR: i128 = 20;

/// Splits `table` into chunks of about `chunk_rows` rows, reading inside the caller's snapshot.
/// Each range is handed to `emit` as soon as it is known (a keyset walk over a big table takes
/// a while; its first chunks can be exported meanwhile). Returns the strategy once all are out.
pub fn plan_table(
    conn: &mut Session,
    table: &TableSchema,
    chunk_rows: u64,
    bounds: KeyBounds,
    emit: &mut dyn FnMut(ChunkRange),
) -> Result<Strategy, SourceError> {
    let (strategy, ranges) = plan_ranges(conn, table, chunk_rows, bounds, emit)?;
    ranges.into_iter().for_each(&mut *emit);
    Ok(strategy)
}

/// Returns the strategy and the ranges not yet emitted.
fn plan_ranges(
    conn: &mut Session,
    table: &TableSchema,
    chunk_rows: u64,
    bounds: KeyBounds,
    emit: &mut dyn FnMut(ChunkRange),
) -> Result<(Strategy, Vec<ChunkRange>), SourceError> {
    let whole = vec![ChunkRange { lower: None, upper: None, leading: false }];
    if table.key.columns.is_empty() {
        return Ok((Strategy::SingleStream, whole));
    }
    let name = qualified(&table.database, &table.table);
    let ctx = |what: &str| format!("{what} of {}", table.display_name());
    let key_cols: Vec<String> = table.key.columns.iter().map(|c| quote_ident(c)).collect();
    let single_int = table.key.columns.len() == 1 && table.columns[table.key_positions()[0]].kind.is_integer();
    if single_int {
        let k = &key_cols[0];
        let row = conn
            .exec_first(&format!("SELECT MIN({k}), MAX({k}) FROM {name}"), Vec::new())
            .map_err(|e| SourceError::query(ctx("reading the key range"), e))?;
        let (min, max) = match row.as_deref() {
            Some([min, max]) if *min != Value::NULL => (as_i128(min), as_i128(max)),
            _ => return Ok((Strategy::IntRange, whole)),
        };
        let rows = table.estimated_rows.max(1) as i128;
        let span = max - min + 1;
        let n = ((rows + chunk_rows as i128 - 1) / chunk_rows.max(1) as i128).clamp(1, span);
        if span <= rows.saturating_mul(SPARSE_FACTOR) || n == 1 {
            let bounds: Vec<i128> = (1..n).map(|i| min + span * i / n).collect();
            let to_key = |b: i128| {
                vec![if b > i64::MAX as i128 { KeyValue::Uint(b as u64) } else { KeyValue::Int(b as i64) }]
            };
            return Ok((Strategy::IntRange, ranges_from_bounds(bounds.into_iter().map(to_key).collect(), false)));
        }
    }
    if table.estimated_rows <= chunk_rows {
        return Ok((Strategy::Keyset, whole));
    }
    if bounds == KeyBounds::Estimate {
        if let Some(found) = estimated_bounds(conn, table, chunk_rows)? {
            return Ok((Strategy::KeysetEstimated, ranges_from_bounds(found, true)));
        }
    }
    let cols = key_cols.join(", ");
    let mut bounds: Vec<Vec<KeyValue>> = Vec::new();
    loop {
        if bounds.len() >= 2 {
            // [b(n-2), b(n-1)) is final: hand it out while the walk goes on.
            let n = bounds.len();
            emit(ChunkRange { lower: Some(bounds[n - 2].clone()), upper: Some(bounds[n - 1].clone()), leading: false });
        } else if bounds.len() == 1 {
            emit(ChunkRange { lower: None, upper: Some(bounds[0].clone()), leading: false });
        }
        let (filter, params) = match bounds.last() {
            None => (String::new(), Vec::new()),
            Some(b) => {
                let (sql, params) = tuple_compare(&key_terms(table), ">=", b);
                (format!("WHERE {sql}"), params)
            }
        };
        let sql = format!("SELECT {cols} FROM {name} {filter} ORDER BY {cols} LIMIT 1 OFFSET {chunk_rows}");
        let row = conn.exec_first(&sql, params).map_err(|e| SourceError::query(ctx("walking the key"), e))?;
        match row {
            Some(row) => bounds.push(row.iter().map(KeyValue::from_value).collect()),
            None => break,
        }
    }
    // Everything but the last range was emitted during the walk.
    let last = ChunkRange { lower: bounds.last().cloned(), upper: None, leading: false };
    Ok((Strategy::Keyset, vec![last]))
}

fn ranges_from_bounds(bounds: Vec<Vec<KeyValue>>, leading: bool) -> Vec<ChunkRange> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lower = None;
    for b in bounds {
        out.push(ChunkRange { lower: lower.take(), upper: Some(b.clone()), leading });
        lower = Some(b);
    }
    out.push(ChunkRange { lower, upper: None, leading });
    out
}

fn as_i128(v: &Value) -> i128 {
    match v {
        Value::Int(i) => *i as i128,
        Value::UInt(u) => *u as i128,
        Value::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        _ => 0,
    }
}

/// A key column (quoted) and the placeholder its bounds are bound with. DECIMAL bounds are sent
/// as text; compared with the column as such the server converts both to DOUBLE, so two long
/// decimals that differ past the 17th digit are equal and keyset chunks overlap. They are cast
/// to the column's own type.
pub fn key_terms(table: &TableSchema) -> Vec<(String, String)> {
    table
        .key
        .columns
        .iter()
        .map(|k| {
            let placeholder = match table.columns.iter().find(|c| &c.name == k).map(|c| c.kind) {
                Some(ColumnKind::Decimal { precision, scale }) => format!("CAST(? AS DECIMAL({precision},{scale}))"),
                _ => "?".to_string(),
            };
            (quote_ident(k), placeholder)
        })
        .collect()
}

/// `(a, b) OP (x, y)` expanded into `a > x OR (a = x AND b OP y)` form, which every optimizer
/// turns into index ranges (row-constructor comparisons are not always range-optimized).
pub fn tuple_compare(cols: &[(String, String)], op: &str, vals: &[KeyValue]) -> (String, Vec<Value>) {
    let strict = if op.starts_with('>') { ">" } else { "<" };
    let mut params = Vec::new();
    fn build(cols: &[(String, String)], vals: &[KeyValue], op: &str, strict: &str, params: &mut Vec<Value>) -> String {
        let (col, ph) = &cols[0];
        if cols.len() == 1 {
            params.push(vals[0].to_value());
            return format!("{col} {op} {ph}");
        }
        params.push(vals[0].to_value());
        params.push(vals[0].to_value());
        let first = format!("{col} {strict} {ph}");
        let eq = format!("{col} = {ph}");
        let rest = build(&cols[1..], &vals[1..], op, strict, params);
        format!("({first} OR ({eq} AND {rest}))")
    }
    let sql = build(cols, vals, op, strict, &mut params);
    (sql, params)
}

/// The SELECT of one chunk with its parameters; rows come in key order.
pub fn chunk_query(table: &TableSchema, range: &ChunkRange) -> (String, Vec<Value>) {
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let key_cols: Vec<String> = table.key.columns.iter().map(|c| quote_ident(c)).collect();
    let mut filters = Vec::new();
    let mut params = Vec::new();
    let terms = key_terms(table);
    let width = if range.leading { 1 } else { terms.len() };
    if let Some(lower) = &range.lower {
        let (sql, p) = tuple_compare(&terms[..width], ">=", &lower[..width]);
        filters.push(sql);
        params.extend(p);
    }
    if let Some(upper) = &range.upper {
        let (sql, p) = tuple_compare(&terms[..width], "<", &upper[..width]);
        filters.push(sql);
        params.extend(p);
    }
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), qualified(&table.database, &table.table));
    if !filters.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&filters.join(" AND "));
    }
    if !key_cols.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&key_cols.join(", "));
    }
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_comparison_expands_lexicographically() {
        let cols: Vec<(String, String)> = ["`a`", "`b`", "`c`"].iter().map(|c| (c.to_string(), "?".to_string())).collect();
        let vals = vec![KeyValue::Int(1), KeyValue::Text("x".into()), KeyValue::Int(3)];
        let (sql, params) = tuple_compare(&cols, ">=", &vals);
        assert_eq!(sql, "(`a` > ? OR (`a` = ? AND (`b` > ? OR (`b` = ? AND `c` >= ?))))");
        assert_eq!(params.len(), 5);
    }

    #[test]
    fn decimal_bounds_are_cast_to_the_column_type() {
        use crate::source::schema::{ColumnSchema, KeySchema};
        let col = |name: &str, kind| ColumnSchema { name: name.into(), ordinal: 1, mysql_type: String::new(), nullable: false, charset: None, collation: None, kind };
        let t = TableSchema {
            database: "db".into(),
            table: "t".into(),
            columns: vec![col("d", ColumnKind::Decimal { precision: 38, scale: 18 }), col("n", ColumnKind::Int { bits: 32, unsigned: false })],
            key: KeySchema { source: "primary".into(), index: Some("PRIMARY".into()), columns: vec!["d".into(), "n".into()] },
            unique_keys: vec![],
            estimated_rows: 0,
            estimated_bytes: 0,
            engine: None,
            system_versioned: false,
            fk_cascades: Vec::new(),
        };
        let (sql, _) = tuple_compare(&key_terms(&t), "<", &[KeyValue::Text("1.5".into()), KeyValue::Int(2)]);
        assert_eq!(sql, "(`d` < CAST(? AS DECIMAL(38,18)) OR (`d` = CAST(? AS DECIMAL(38,18)) AND `n` < ?))");
    }

    #[test]
    fn a_leading_range_compares_the_first_key_column_only() {
        use crate::source::schema::{ColumnSchema, KeySchema};
        let col = |name: &str| ColumnSchema { name: name.into(), ordinal: 1, mysql_type: String::new(), nullable: false, charset: None, collation: None, kind: ColumnKind::Text };
        let t = TableSchema {
            database: "db".into(),
            table: "t".into(),
            columns: vec![col("a"), col("b")],
            key: KeySchema { source: "primary".into(), index: Some("PRIMARY".into()), columns: vec!["a".into(), "b".into()] },
            unique_keys: vec![],
            estimated_rows: 0,
            estimated_bytes: 0,
            engine: None,
            system_versioned: false,
            fk_cascades: Vec::new(),
        };
        let bound = |a: &str| Some(vec![KeyValue::Text(a.into()), KeyValue::Text("x".into())]);
        let (sql, params) = chunk_query(&t, &ChunkRange { lower: bound("c1"), upper: bound("c5"), leading: true });
        assert!(sql.ends_with("WHERE `a` >= ? AND `a` < ? ORDER BY `a`, `b`"), "{sql}");
        assert_eq!(params.len(), 2);
        let (sql, params) = chunk_query(&t, &ChunkRange { lower: bound("c1"), upper: None, leading: false });
        assert!(sql.contains("WHERE (`a` > ? OR (`a` = ? AND `b` >= ?))"), "{sql}");
        assert_eq!(params.len(), 3);
    }

    #[test]
    fn ranges_cover_everything_with_open_ends() {
        let r = ranges_from_bounds(vec![vec![KeyValue::Int(10)], vec![KeyValue::Int(20)]], false);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].lower, None);
        assert_eq!(r[1].lower, r[0].upper);
        assert_eq!(r[2].upper, None);
    }

    #[test]
    fn key_values_round_trip_through_json() {
        for v in [KeyValue::Int(-5), KeyValue::Uint(u64::MAX), KeyValue::Hex("00ff".into()), KeyValue::Text("é ".into())] {
            let back: KeyValue = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert_eq!(back, v);
        }
    }
}
