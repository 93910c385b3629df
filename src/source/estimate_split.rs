//! Keyset boundaries from the server's row estimates, without reading the table.
//!
//! Walking a key with `LIMIT 1 OFFSET n` reads every row once before the export reads it again;
//! on the seed's string-keyed table that walk cost the server as much CPU as mydumper's whole
//! dump. Here the key's first column is cut by bisection between its MIN and MAX: each piece's
//! size comes from `EXPLAIN` (the engine's index dives, a few pages each), pieces are split until
//! each is a fraction of a chunk, and a boundary is placed where the running total crosses each
//! chunk's share. Each boundary is then snapped to the first real key at or after that point
//! whose first column is strictly greater than the previous boundary's, so the ranges cover every
//! key exactly once whatever the estimates say: estimates decide only how even the chunks are.
//! Each boundary is then the first key of its first column's value, so a chunk's SELECT compares
//! that column alone (`ChunkRange::leading`), which costs the server less than the whole key's
//! lexicographic comparison.
//!
//! How many chunks: the table's own row estimate (information_schema) can be off by a factor of
//! two or more, so the largest piece, about a quarter of a chunk, is counted exactly, and the
//! ratio of its count to its estimate sets the number of chunks.
//!
//! Estimates are only proportional below the engine's cap (InnoDB answers at most half the
//! table for one range), so pieces are first split below a quarter of the table. The first
//! column is bisected as an integer, as bytes (binary strings), or as characters (printable
//! ASCII when its MIN and MAX are, any code point otherwise). Anything else, a first column with
//! one value, or a lopsided result returns `None`, and the caller walks the key.

use mysql::Value;

use super::session::Session;
use super::plan::KeyValue;
use super::schema::{ColumnSchema, TableSchema};
use super::types::ColumnKind;
use super::{qualified, quote_ident, SourceError};

/// Pieces are split until each holds at most this fraction of a chunk.
const PIECES_PER_CHUNK: f64 = 4.0;
/// Gives up (and walks the key) past this many EXPLAINs.
const MAX_ESTIMATES: usize = 200_000;
/// The smallest estimate worth splitting: engines answer 1 for a range they find (next to) empty.
const MIN_ESTIMATE: f64 = 1.0;
/// Longest bisection point, in characters or bytes.
const MAX_DIGITS: usize = 32;
/// A chunk estimated above this many times its share makes the result lopsided.
const LOPSIDED: f64 = 4.0;

/// A point of the first column's value space.
#[derive(Debug, Clone, PartialEq)]
enum Point {
    Int(i128),
    /// Digits of a string, most significant first, in the space's base.
    Digits(Vec<u32>),
}

/// How the first column's values map to points.
#[derive(Debug, Clone, PartialEq)]
enum Space {
    Int,
    Bytes,
    /// Printable ASCII in the column collation's order, one character per distinct weight
    /// (the first digit, a space, sorts like the end of a string under PAD SPACE).
    Chars(Vec<char>),
}

impl Space {
    fn base(&self) -> u32 {
        match self {
            Space::Int => 0,
            Space::Bytes => 256,
            Space::Chars(alphabet) => alphabet.len() as u32,
        }
    }

    fn point(&self, v: &Value) -> Option<Point> {
        Some(match (self, v) {
            (Space::Int, Value::Int(i)) => Point::Int(*i as i128),
            (Space::Int, Value::UInt(u)) => Point::Int(*u as i128),
            (Space::Int, Value::Bytes(b)) => Point::Int(std::str::from_utf8(b).ok()?.parse().ok()?),
            (Space::Bytes, Value::Bytes(b)) => Point::Digits(b.iter().map(|&x| x as u32).collect()),
            // Only the column's MIN and MAX become points; a character outside the alphabet
            // (not ASCII) counts as its last digit, which only widens the bisected span.
            (Space::Chars(alphabet), Value::Bytes(b)) => Point::Digits(
                String::from_utf8_lossy(b)
                    .chars()
                    .map(|c| {
                        let at = alphabet.iter().position(|&a| a == c).or_else(|| alphabet.iter().position(|a| a.eq_ignore_ascii_case(&c)));
                        at.unwrap_or(alphabet.len() - 1) as u32
                    })
                    .collect(),
            ),
            _ => return None,
        })
    }

    fn value(&self, p: &Point) -> Value {
        match (self, p) {
            (_, Point::Int(i)) if *i > i64::MAX as i128 => Value::UInt(*i as u64),
            (_, Point::Int(i)) => Value::Int(*i as i64),
            (Space::Bytes, Point::Digits(d)) => Value::Bytes(d.iter().map(|&x| x as u8).collect()),
            (Space::Chars(alphabet), Point::Digits(d)) => {
                Value::Bytes(d.iter().map(|&x| alphabet[x as usize]).collect::<String>().into_bytes())
            }
            (Space::Int, Point::Digits(_)) => Value::NULL,
        }
    }

    /// The point halfway between `a` and `b`, or None when none lies strictly between.
    fn mid(&self, a: &Point, b: &Point) -> Option<Point> {
        let m = match (a, b) {
            (Point::Int(a), Point::Int(b)) => Point::Int(a + (b - a) / 2),
            (Point::Digits(a), Point::Digits(b)) => Point::Digits(mid_digits(a, b, self.base())),
            _ => return None,
        };
        (m != *a && m != *b).then_some(m)
    }
}

/// `(a + b) / 2` of two digit strings read as fractions in `base` (so "b" lies between "a" and
/// "c", and "ab" between "a" and "b"), at most `MAX_DIGITS` long.
fn mid_digits(a: &[u32], b: &[u32], base: u32) -> Vec<u32> {
    let len = (a.len().max(b.len()) + 1).min(MAX_DIGITS);
    let digit = |s: &[u32], i: usize| s.get(i).copied().unwrap_or(0) as u64;
    let base = base as u64;
    // Sum, least significant first, with the carry out in front.
    let mut sum = vec![0u64; len + 1];
    let mut carry = 0;
    for i in (0..len).rev() {
        let s = digit(a, i) + digit(b, i) + carry;
        sum[i + 1] = s % base;
        carry = s / base;
    }
    sum[0] = carry;
    // Halve, most significant first; the carry digit folds into the first.
    let mut out = Vec::with_capacity(len);
    let mut rem = sum[0];
    for &d in &sum[1..] {
        let cur = rem * base + d;
        out.push((cur / 2) as u32);
        rem = cur % 2;
    }
    while out.len() > 1 && out.last() == Some(&0) {
        out.pop();
    }
    out
}

/// One piece of the first column: `[lo, hi)`, `hi` None for "to the end".
struct Piece {
    lo: Point,
    hi: Option<Point>,
    rows: f64,
}

struct Estimator<'a> {
    conn: &'a mut Session,
    table: &'a TableSchema,
    space: Space,
    column: String,
    name: String,
    max: Point,
    asked: usize,
}

impl Estimator<'_> {
    /// `FROM t WHERE first >= ? [AND first < ?]` for `[lo, hi)`, with its parameters.
    fn range(&self, lo: &Point, hi: Option<&Point>) -> (String, Vec<Value>) {
        let c = &self.column;
        let mut sql = format!("FROM {} WHERE {c} >= ?", self.name);
        let mut params = vec![self.space.value(lo)];
        if let Some(hi) = hi {
            sql.push_str(&format!(" AND {c} < ?"));
            params.push(self.space.value(hi));
        }
        (sql, params)
    }

    /// The engine's estimate of rows with `lo <= first < hi`.
    fn rows(&mut self, lo: &Point, hi: Option<&Point>) -> Result<Option<f64>, SourceError> {
        self.asked += 1;
        if self.asked > MAX_ESTIMATES {
            return Ok(None);
        }
        let (range, params) = self.range(lo, hi);
        let sql = format!("EXPLAIN SELECT 1 {range}");
        let ctx = || format!("estimating key ranges of {}", self.table.display_name());
        let result = self.conn.exec(&sql, params).map_err(|e| SourceError::query(ctx(), e))?;
        let mut rows = 0.0;
        for i in 0..result.rows.len() {
            rows += match result.get(i, "rows") {
                Some(Value::Int(i)) => *i as f64,
                Some(Value::UInt(u)) => *u as f64,
                Some(Value::Bytes(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0.0),
                _ => 0.0,
            };
        }
        Ok(Some(rows))
    }

    /// Rows per estimated row, from the largest piece counted exactly (None if it holds none).
    fn count_largest(&mut self, pieces: &[Piece]) -> Result<Option<f64>, SourceError> {
        let Some(p) = pieces.iter().filter(|p| p.rows > 0.0).max_by(|a, b| a.rows.total_cmp(&b.rows)) else { return Ok(None) };
        let (range, params) = self.range(&p.lo, p.hi.as_ref());
        let sql = format!("SELECT COUNT(*) {range}");
        let ctx = || format!("counting a key range of {}", self.table.display_name());
        let row = self.conn.exec_first(&sql, params).map_err(|e| SourceError::query(ctx(), e))?;
        let n = row.and_then(|r| r.into_iter().next()).and_then(|v| mysql::from_value_opt::<u64>(v).ok());
        Ok(n.filter(|&n| n > 0).map(|n| n as f64 / p.rows))
    }

    /// Splits `piece` at midpoints until every part is at most `limit` rows or cannot be split.
    /// Parts come out in key order.
    fn split(&mut self, piece: Piece, limit: f64, out: &mut Vec<Piece>) -> Result<bool, SourceError> {
        let mut stack = vec![piece];
        while let Some(p) = stack.pop() {
            let upper = p.hi.clone().unwrap_or_else(|| self.max.clone());
            // The engine estimates a range it finds next to nothing in as one row: splitting such a
            // piece tells nothing more (a tiny --chunk-rows over a sparse 64-bit key split every
            // piece down to single keys, 200,000 estimates and minutes of planning).
            let mid = if p.rows > limit.max(MIN_ESTIMATE) { self.space.mid(&p.lo, &upper) } else { None };
            let Some(mid) = mid else {
                out.push(p);
                continue;
            };
            let (Some(left), Some(right)) = (self.rows(&p.lo, Some(&mid))?, self.rows(&mid, p.hi.as_ref())?) else {
                return Ok(false);
            };
            stack.push(Piece { lo: mid.clone(), hi: p.hi, rows: right });
            stack.push(Piece { lo: p.lo, hi: Some(mid), rows: left });
        }
        Ok(true)
    }
}

/// The space a first column is bisected in, or None for kinds without one.
fn space_of(conn: &mut Session, column: &ColumnSchema) -> Result<Option<Space>, mysql::Error> {
    Ok(match column.kind {
        k if k.is_integer() => Some(Space::Int),
        ColumnKind::Binary => Some(Space::Bytes),
        ColumnKind::Text => alphabet(conn, column)?.map(Space::Chars),
        _ => None,
    })
}

/// Printable ASCII sorted by the server under the column's collation, keeping one character per
/// weight (`a` and `A` are one digit under a case-insensitive collation).
fn alphabet(conn: &mut Session, column: &ColumnSchema) -> Result<Option<Vec<char>>, mysql::Error> {
    let name_ok = |n: &Option<String>| n.as_deref().is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !name_ok(&column.charset) || !name_ok(&column.collation) {
        return Ok(None);
    }
    let (cs, coll) = (column.charset.as_deref().unwrap_or_default(), column.collation.as_deref().unwrap_or_default());
    let chars: Vec<String> = (0x20u8..0x7f).map(|b| format!("SELECT CONVERT(X'{b:02X}' USING {cs}) COLLATE {coll} AS c")).collect();
    let sql = format!("SELECT c, WEIGHT_STRING(c) FROM ({}) t ORDER BY c, WEIGHT_STRING(c)", chars.join(" UNION ALL "));
    let rows: Vec<(String, Vec<u8>)> = conn
        .query(&sql)?
        .rows
        .into_iter()
        .filter_map(|r| match <[Value; 2]>::try_from(r) {
            Ok([c, w]) => Some((mysql::from_value_opt::<String>(c).ok()?, mysql::from_value_opt::<Vec<u8>>(w).ok()?)),
            Err(_) => None,
        })
        .collect();
    let mut out: Vec<char> = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    for (c, weight) in rows {
        if last.as_ref() != Some(&weight) {
            out.extend(c.chars().next());
            last = Some(weight);
        }
    }
    Ok((out.len() >= 2).then_some(out))
}

/// Boundaries for about `estimated_rows / chunk_rows` chunks, or None when the estimates cannot
/// place them (the caller then walks the key).
pub fn estimated_bounds(conn: &mut Session, table: &TableSchema, chunk_rows: u64) -> Result<Option<Vec<Vec<KeyValue>>>, SourceError> {
    let chunks = table.estimated_rows.div_ceil(chunk_rows.max(1));
    let Some(first) = table.key.columns.first() else { return Ok(None) };
    let Some(column_schema) = table.columns.iter().find(|c| &c.name == first) else { return Ok(None) };
    if chunks < 2 {
        return Ok(None);
    }
    let name = qualified(&table.database, &table.table);
    let column = quote_ident(first);
    let ctx = |what: &str| format!("{what} of {}", table.display_name());
    let ends = conn
        .exec_first(&format!("SELECT MIN({column}), MAX({column}) FROM {name}"), Vec::new())
        .map_err(|e| SourceError::query(ctx("reading the key range"), e))?;
    let Some([min, max]) = ends.and_then(|r| <[Value; 2]>::try_from(r).ok()) else { return Ok(None) };
    let Some(space) = space_of(conn, column_schema).map_err(|e| SourceError::query(ctx("ordering the key's characters"), e))? else {
        return Ok(None);
    };
    let (Some(lo), Some(hi)) = (space.point(&min), space.point(&max)) else { return Ok(None) };
    if lo == hi {
        return Ok(None);
    }
    let mut est = Estimator { conn, table, space, column, name, max: hi, asked: 0 };

    // Below the engine's cap first, then to a fraction of a chunk.
    let Some(all) = est.rows(&lo, None)? else { return Ok(None) };
    let mut coarse = Vec::new();
    if !est.split(Piece { lo, hi: None, rows: all }, table.estimated_rows as f64 / 4.0, &mut coarse)? {
        return Ok(None);
    }
    let total: f64 = coarse.iter().map(|p| p.rows).sum();
    let mut share = total / chunks as f64;
    let mut pieces = Vec::new();
    for p in coarse {
        if !est.split(p, share / PIECES_PER_CHUNK, &mut pieces)? {
            return Ok(None);
        }
    }
    // How many chunks: the table's row estimate can be off by a factor of two or more. The
    // largest piece (about a quarter of a chunk) counted exactly says how many rows an estimated
    // row stands for; with that, the pieces are split again if the chunks must be smaller.
    if let Some(real) = est.count_largest(&pieces)? {
        let chunks = (total * real).div_euclid(chunk_rows as f64) as u64 + 1;
        share = total / chunks.max(1) as f64;
        let coarse = std::mem::take(&mut pieces);
        for p in coarse {
            if !est.split(p, share / PIECES_PER_CHUNK, &mut pieces)? {
                return Ok(None);
            }
        }
    }

    let rows: Vec<f64> = pieces.iter().map(|p| p.rows).collect();
    let (cuts, sizes) = cut_points(&rows, share);
    let largest = sizes.iter().copied().fold(0.0, f64::max) / share;
    tracing::debug!(
        table = %table.display_name(), estimates = est.asked, pieces = pieces.len(), chunks = sizes.len(),
        largest_share = largest, "keyset bounds from row estimates"
    );
    if cuts.is_empty() || largest > LOPSIDED {
        return Ok(None);
    }

    // Each cut snapped to the first real key past it, its first column above the last bound's.
    let key_cols: Vec<String> = table.key.columns.iter().map(|c| quote_ident(c)).collect();
    let cols = key_cols.join(", ");
    let mut bounds = Vec::<Vec<KeyValue>>::new();
    for i in cuts {
        let Some(at) = &pieces[i].hi else { continue };
        let mut params = vec![est.space.value(at)];
        let mut sql = format!("SELECT {cols} FROM {} WHERE {} >= ?", est.name, est.column);
        if let Some(prev) = bounds.last() {
            sql.push_str(&format!(" AND {} > ?", est.column));
            params.push(prev[0].to_value());
        }
        sql.push_str(&format!(" ORDER BY {cols} LIMIT 1"));
        let row = est.conn.exec_first(&sql, params).map_err(|e| SourceError::query(ctx("placing a chunk boundary"), e))?;
        let Some(row) = row else { break };
        bounds.push(row.iter().map(KeyValue::from_value).collect());
    }
    Ok((!bounds.is_empty()).then_some(bounds))
}

/// Where the chunks end: after piece `i` whenever the running total of `rows` reaches the next
/// multiple of `share` (never after the last piece). Returns those indices and each chunk's
/// estimated rows.
fn cut_points(rows: &[f64], share: f64) -> (Vec<usize>, Vec<f64>) {
    let (mut cuts, mut sizes) = (Vec::new(), Vec::new());
    let (mut acc, mut in_chunk) = (0.0, 0.0);
    for (i, r) in rows.iter().enumerate() {
        acc += r;
        in_chunk += r;
        if i + 1 < rows.len() && acc >= share * (cuts.len() + 1) as f64 {
            cuts.push(i);
            sizes.push(in_chunk);
            in_chunk = 0.0;
        }
    }
    sizes.push(in_chunk);
    (cuts, sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u32> {
        s.bytes().map(|b| b as u32 - 0x20).collect()
    }

    fn text(d: &[u32]) -> String {
        d.iter().map(|&x| char::from_u32(x + 0x20).unwrap()).collect()
    }

    #[test]
    fn the_midpoint_of_two_strings_lies_between_them() {
        let base = 0x5f;
        for (a, b) in [("a", "c"), ("c1", "c9999"), ("abc", "abd"), ("a", "b"), ("c14498", "c18999"), ("A", "zzzz")] {
            let m = text(&mid_digits(&digits(a), &digits(b), base));
            assert!(a < m.as_str() && m.as_str() < b, "{a} < {m} < {b}");
        }
        assert_eq!(text(&mid_digits(&digits("a"), &digits("c"), base)), "b");
    }

    #[test]
    fn bisection_of_a_string_space_converges_on_any_point() {
        // Bisecting towards a target must reach it within a few dozen steps, and stop once no
        // point lies strictly between the two ends.
        let space = Space::Chars((0x20u8..0x7f).map(char::from).collect());
        let target = digits("c15550");
        let (mut a, mut b) = (Point::Digits(digits("c0")), Point::Digits(digits("c9999")));
        let mut steps = 0;
        while let Some(m) = space.mid(&a, &b) {
            let Point::Digits(d) = &m else { unreachable!() };
            if *d < target { a = m } else { b = m }
            steps += 1;
            assert!(steps <= MAX_DIGITS * 7, "no convergence");
        }
        let Point::Digits(lo) = a else { unreachable!() };
        assert!(text(&lo).starts_with("c1555"), "{}", text(&lo));
    }

    #[test]
    fn cuts_fall_where_the_running_total_crosses_each_share() {
        // Eight even pieces, shares of two: a cut after every second piece, none after the last.
        let (cuts, sizes) = cut_points(&[1.0; 8], 2.0);
        assert_eq!(cuts, vec![1, 3, 5]);
        assert_eq!(sizes, vec![2.0; 4]);
        // A piece that cannot be split holds several shares: one cut after it, its size says so.
        let (cuts, sizes) = cut_points(&[1.0, 9.0, 1.0, 1.0], 2.0);
        assert_eq!(cuts, vec![1, 2]);
        assert_eq!(sizes, vec![10.0, 1.0, 1.0]);
        assert!(sizes.iter().copied().fold(0.0, f64::max) / 2.0 > LOPSIDED);
        // Nothing to cut.
        assert_eq!(cut_points(&[5.0], 2.0), (vec![], vec![5.0]));
        assert_eq!(cut_points(&[], 2.0), (vec![], vec![0.0]));
    }

    #[test]
    fn integer_and_byte_points_round_trip_through_values() {
        assert_eq!(Space::Int.point(&Value::UInt(u64::MAX)), Some(Point::Int(u64::MAX as i128)));
        assert_eq!(Space::Int.value(&Point::Int(u64::MAX as i128)), Value::UInt(u64::MAX));
        assert_eq!(Space::Int.value(&Point::Int(-3)), Value::Int(-3));
        let b = Value::Bytes(vec![0, 255, 7]);
        assert_eq!(Space::Bytes.value(&Space::Bytes.point(&b).unwrap()), b);
        assert_eq!(Space::Int.mid(&Point::Int(4), &Point::Int(5)), None);
        assert_eq!(Space::Int.mid(&Point::Int(-10), &Point::Int(10)), Some(Point::Int(0)));
    }
}
