//! `Cell`s to DynamoDB attribute values under the conversion options, typed by the manifest's
//! column kinds: numbers stay exact text (N), temporals become ISO-8601 text (or epoch seconds),
//! JSON becomes native maps and lists (numbers kept exact by a small parser of our own), SET
//! becomes a string set. A value that cannot be represented (a number outside DynamoDB's range, a
//! date the calendar lacks as epoch seconds) is an error whose text ends up in the rejects file,
//! on the import's path and on cdc apply's alike.

use serde::{Deserialize, Serialize};

use super::attr::Attr;
use super::temporal::parse_datetime;
use super::Cell;
use crate::source::schema::ColumnSchema;
use crate::source::types::ColumnKind;

/// DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 … 9.99…E+125.
pub const MAX_NUMBER_DIGITS: usize = 38;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TemporalAs {
    /// ISO-8601 text: `2024-01-02`, `2024-01-02T03:04:05.123456`, TIMESTAMP with `Z`.
    #[default]
    Iso,
    /// Seconds since 1970-01-01 as N, with the column's fraction digits.
    Epoch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum JsonAs {
    /// Native M / L / S / N / BOOL / NULL.
    #[default]
    Native,
    /// The JSON text as S.
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NullAs {
    /// NULL columns become absent attributes.
    #[default]
    Omit,
    /// NULL columns become `{"NULL": true}`.
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WideDecimal {
    /// DECIMAL values beyond 38 significant digits become S (exact text).
    #[default]
    String,
    /// Rows holding such a value go to the rejects file.
    Reject,
}

crate::choices!(TemporalAs { "iso" => TemporalAs::Iso, "epoch" => TemporalAs::Epoch });
crate::choices!(JsonAs { "native" => JsonAs::Native, "string" => JsonAs::String });
crate::choices!(NullAs { "omit" => NullAs::Omit, "null" => NullAs::Null });
crate::choices!(WideDecimal { "string" => WideDecimal::String, "reject" => WideDecimal::Reject });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConvertOptions {
    pub temporal: TemporalAs,
    pub json: JsonAs,
    pub nulls: NullAs,
    pub wide_decimal: WideDecimal,
    /// TINYINT(1) columns as BOOL.
    pub tinyint1_as_bool: bool,
    /// Temporal values computed by `reference` instead (verify's expected values).
    #[serde(skip)]
    pub reference_temporal: bool,
}

/// Checks DynamoDB's number limits; Ok(false) when there are too many significant digits.
pub fn number_fits(text: &str) -> Result<bool, String> {
    let body = text.trim_start_matches(['-', '+']);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a decimal number"));
    }
    // Leading and trailing zeros of the digits of int and frac read as one string (counted in
    // place: this runs for every number of every row).
    let total = int.len() + frac.len();
    let lead = int.bytes().chain(frac.bytes()).take_while(|&b| b == b'0').count();
    if lead == total {
        return Ok(true);
    }
    let trail = frac.bytes().rev().chain(int.bytes().rev()).take_while(|&b| b == b'0').count();
    let e = int.len() as i64 - 1 - lead as i64;
    if !(-130..=125).contains(&e) {
        return Err(format!("{text} is outside DynamoDB's number range (1E-130 to 1E+126)"));
    }
    Ok(total - lead - trail <= MAX_NUMBER_DIGITS)
}

/// A number DynamoDB stores as N: within its range and at most 38 significant digits.
pub fn check_number(text: &str) -> Result<(), String> {
    match number_fits(text)? {
        true => Ok(()),
        false => Err(format!("{text} has more than {MAX_NUMBER_DIGITS} significant digits (DynamoDB's N limit)")),
    }
}

/// A decimal in canonical text: no leading or trailing zeros, no `-0`.
pub fn canonical_number(n: &str) -> String {
    let (neg, body) = match n.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, n.trim_start_matches('+')),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    if int.is_empty() && frac.is_empty() {
        return "0".into();
    }
    if neg {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A zero date or one the calendar lacks (kept as text by `--zero-date string`).
fn is_zero_date(s: &str) -> bool {
    !parse_datetime(s).is_some_and(|p| p.is_calendar_date())
}

/// Converts one column value. Ok(None): the attribute is absent (NULL, empty set).
pub fn convert(col: &ColumnSchema, cell: &Cell, opts: &ConvertOptions) -> Result<Option<Attr>, String> {
    let text = match cell {
        Cell::Null => return Ok(match opts.nulls {
            NullAs::Omit => None,
            NullAs::Null => Some(Attr::Null),
        }),
        Cell::Bytes(b) => return Ok(Some(Attr::B(b.clone()))),
        Cell::Set(v) if v.is_empty() => return Ok(None),
        Cell::Set(v) => return Ok(Some(Attr::SS(v.clone()))),
        Cell::Num(s) | Cell::Text(s) => s,
    };
    Ok(Some(match col.kind {
        ColumnKind::Int { bits: 8, .. } if opts.tinyint1_as_bool && col.mysql_type.starts_with("tinyint(1)") => match text.as_str() {
            "0" => Attr::Bool(false),
            "1" => Attr::Bool(true),
            _ => return Err(format!("{text} is not a boolean: only 0 and 1 are (--tinyint1-as-bool; TINYINT(1) holds -128 to 127, so leave the flag off to keep every value as a number)")),
        },
        ColumnKind::Int { .. } | ColumnKind::Year | ColumnKind::Bit { .. } | ColumnKind::Float | ColumnKind::Double => {
            check_number(text)?;
            Attr::N(text.clone())
        }
        ColumnKind::Decimal { .. } => match (number_fits(text)?, opts.wide_decimal) {
            (true, _) => Attr::N(text.clone()),
            (false, WideDecimal::String) => Attr::S(text.clone()),
            (false, WideDecimal::Reject) => {
                return Err(format!("{text} has more than {MAX_NUMBER_DIGITS} significant digits (DynamoDB's N limit; --wide-decimal string keeps it as text)"))
            }
        },
        ColumnKind::Date | ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => temporal(col, text, opts)?,
        ColumnKind::Json => match opts.json {
            JsonAs::String => Attr::S(text.clone()),
            JsonAs::Native => json_to_attr(text)?,
        },
        ColumnKind::Set => {
            // '' is the empty set: DynamoDB sets hold no empty string.
            let members: Vec<String> = text.split(',').filter(|m| !m.is_empty()).map(str::to_string).collect();
            if members.is_empty() {
                return Ok(None);
            }
            Attr::SS(members)
        }
        _ => Attr::S(text.clone()),
    }))
}

fn temporal(col: &ColumnSchema, text: &str, opts: &ConvertOptions) -> Result<Attr, String> {
    if opts.reference_temporal {
        return super::reference::temporal(&col.kind, text, opts.temporal);
    }
    if is_zero_date(text) {
        return match opts.temporal {
            TemporalAs::Iso => Ok(Attr::S(text.to_string())),
            TemporalAs::Epoch => Err(format!("date {text:?} is not in the calendar (a zero or invalid date) and has no epoch value")),
        };
    }
    Ok(match opts.temporal {
        TemporalAs::Iso => {
            let mut s = text.replacen(' ', "T", 1);
            if matches!(col.kind, ColumnKind::Timestamp { .. }) {
                s.push('Z');
            }
            Attr::S(s)
        }
        TemporalAs::Epoch => {
            let p = parse_datetime(text).ok_or_else(|| format!("{text:?} is not a date/time"))?;
            Attr::N(epoch_text(p.epoch_micros(), fraction_digits(&col.kind)))
        }
    })
}

/// Fraction digits a temporal column carries (DATE none).
pub fn fraction_digits(kind: &ColumnKind) -> usize {
    match kind {
        ColumnKind::DateTime { fsp } | ColumnKind::Timestamp { fsp } => *fsp as usize,
        _ => 0,
    }
}

/// Signed seconds since the epoch with `fsp` fraction digits: sign, then the magnitude's whole
/// seconds and fraction (`-500000` µs is `-0.5`, not the floor `-1` plus `.5`).
fn epoch_text(micros: i64, fsp: usize) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let (secs, frac) = (m / 1_000_000, m % 1_000_000);
    match fsp {
        0 => format!("{sign}{secs}"),
        _ => format!("{sign}{secs}.{}", &format!("{frac:06}")[..fsp]),
    }
}

/// JSON text to a native attribute value, numbers kept as their exact text.
pub fn json_to_attr(text: &str) -> Result<Attr, String> {
    let mut p = JsonParser { s: text.as_bytes(), i: 0, depth: 0 };
    let v = p.value().map_err(|e| match e {
        NESTED_TOO_DEEP | EMPTY_KEY => format!("the JSON value cannot be stored in DynamoDB: {e} (--json string keeps it as text)"),
        e => format!("invalid JSON at byte {}: {e}", p.i),
    })?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("invalid JSON: trailing text at byte {}", p.i));
    }
    Ok(v)
}

/// DynamoDB nests maps and lists 32 levels deep at most.
const MAX_NESTING: usize = 32;
const NESTED_TOO_DEEP: &str = "objects and arrays nest deeper than 32 levels (DynamoDB's limit)";
const EMPTY_KEY: &str = "an object has an empty key (DynamoDB refuses empty attribute names)";

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
    /// Objects and arrays open around the current value.
    depth: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Attr, &'static str> {
        self.ws();
        if matches!(self.s.get(self.i), Some(b'{' | b'[')) {
            self.depth += 1;
            if self.depth > MAX_NESTING {
                return Err(NESTED_TOO_DEEP);
            }
            let v = self.any();
            self.depth -= 1;
            return v;
        }
        self.any()
    }

    fn any(&mut self) -> Result<Attr, &'static str> {
        match self.s.get(self.i) {
            None => Err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut m = std::collections::BTreeMap::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Attr::M(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    if k.is_empty() {
                        return Err(EMPTY_KEY);
                    }
                    self.ws();
                    if !self.eat(":") {
                        return Err("expected ':'");
                    }
                    // MariaDB resolves a duplicate key to its first value (JSON_EXTRACT, JSON_VALUE).
                    let v = self.value()?;
                    m.entry(k).or_insert(v);
                    self.ws();
                    if self.eat("}") {
                        return Ok(Attr::M(m));
                    }
                    if !self.eat(",") {
                        return Err("expected ',' or '}'");
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut l = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Attr::L(l));
                }
                loop {
                    l.push(self.value()?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(Attr::L(l));
                    }
                    if !self.eat(",") {
                        return Err("expected ',' or ']'");
                    }
                }
            }
            Some(b'"') => Ok(Attr::S(self.string()?)),
            Some(_) if self.eat("true") => Ok(Attr::Bool(true)),
            Some(_) if self.eat("false") => Ok(Attr::Bool(false)),
            Some(_) if self.eat("null") => Ok(Attr::Null),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| "bad number")?;
                if t.is_empty() {
                    return Err("unexpected character");
                }
                Ok(Attr::N(normalize_json_number(t).ok_or("number out of DynamoDB's range (more than 38 significant digits, or beyond 1E-130 … 9.99E+125)")?))
            }
        }
    }

    fn string(&mut self) -> Result<String, &'static str> {
        if !self.eat("\"") {
            return Err("expected a string");
        }
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|_| "bad UTF-8"),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) && self.eat("\\u") {
                                let lo = self.hex4()?;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3ff);
                            }
                            char::from_u32(cp).ok_or("bad \\u escape")?
                        }
                        _ => return Err("bad escape"),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|_| "bad hex")?, 16).map_err(|_| "bad hex")
    }
}

/// JSON numbers with an exponent are rewritten as plain decimals (DynamoDB accepts both, but
/// exact text comparison in verify needs one form).
fn normalize_json_number(t: &str) -> Option<String> {
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    if exp == 0 {
        return matches!(number_fits(mant), Ok(true)).then(|| mant.to_string());
    }
    let neg = mant.starts_with('-');
    let body = mant.trim_start_matches(['-', '+']);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exp;
    if !(-140..=140).contains(&point) {
        return None;
    }
    let s = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    };
    let s = if neg { format!("-{s}") } else { s };
    matches!(number_fits(&s), Ok(true)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_against_dynamodb_limits() {
        assert_eq!(number_fits("-123.4500"), Ok(true));
        assert_eq!(number_fits(&"9".repeat(38)), Ok(true));
        assert_eq!(number_fits(&"9".repeat(39)), Ok(false));
        assert_eq!(number_fits(&format!("1{}", "0".repeat(100))), Ok(true));
        assert!(number_fits(&format!("1{}", "0".repeat(130))).is_err());
        assert!(number_fits("12a").is_err());
        // Zeros on both sides do not count as digits; the range is that of the first
        // significant digit.
        assert_eq!(number_fits(&format!("000{}000.000", "9".repeat(35))), Ok(true));
        assert_eq!(number_fits(&format!("0.{}1{}", "0".repeat(20), "2".repeat(37))), Ok(true));
        assert_eq!(number_fits(&format!("0.{}1{}", "0".repeat(20), "2".repeat(38))), Ok(false));
        assert_eq!(number_fits(&format!("0.{}1", "0".repeat(129))), Ok(true));
        assert!(number_fits(&format!("0.{}1", "0".repeat(130))).is_err());
        assert_eq!(number_fits("-0.000"), Ok(true));
        assert_eq!(number_fits("100.001"), Ok(true));
    }

    #[test]
    fn json_becomes_native_values_with_exact_numbers() {
        let a = json_to_attr(r#"{"a": [1, 2.50, true, null, "x\u00e9"], "b": {"c": 12345678901234567890123}, "e": 1.5e3}"#).unwrap();
        let Attr::M(m) = a else { panic!() };
        assert_eq!(m["a"], Attr::L(vec![Attr::N("1".into()), Attr::N("2.50".into()), Attr::Bool(true), Attr::Null, Attr::S("xé".into())]));
        assert_eq!(m["b"], Attr::M([("c".to_string(), Attr::N("12345678901234567890123".into()))].into()));
        assert_eq!(m["e"], Attr::N("1500".into()));
        assert!(json_to_attr("{\"a\": }").is_err());
        let dup = json_to_attr(r#"{"k": "first", "k": "second", "m": {"x": 1, "x": 2}}"#).unwrap();
        assert_eq!(dup, Attr::M([("k".to_string(), Attr::S("first".into())), ("m".to_string(), Attr::M([("x".to_string(), Attr::N("1".into()))].into()))].into()));
        assert!(json_to_attr("[1] x").is_err());
        // Regression: 39+ significant digits inside JSON passed and DynamoDB refused the batch.
        assert!(json_to_attr(&format!("[{}]", "1".repeat(39))).unwrap_err().contains("38 significant digits"));
        // DynamoDB nests 32 levels at most and refuses empty attribute names in maps.
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(json_to_attr(&nest(32)).is_ok());
        assert!(json_to_attr(&nest(33)).unwrap_err().contains("32 levels"));
        assert!(json_to_attr(r#"{"a": {"": 1}}"#).unwrap_err().contains("empty key"));
        assert!(json_to_attr(&format!("[{}e5]", "1".repeat(39))).is_err());
    }
}
