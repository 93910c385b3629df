//! Decoding one MySQL value into a typed `Datum`, the single place where server values become
//! typed: integers by signedness, DECIMAL as exact text plus its unscaled integer (never f64),
//! temporals as calendar parts (zero dates are reported, not guessed), TIME as a signed
//! duration, BIT from big-endian bytes, spatial values as WKB. Both chunk writers consume
//! `Datum`s, so Parquet and CSV can never disagree on a value.

use arrow_buffer::i256;
use mysql::Value;

use crate::source::types::{ColumnKind, ZeroDatePolicy};

/// A decoded value, borrowing text and bytes from the row.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum<'a> {
    Null,
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Decimal { text: &'a str, unscaled: i256 },
    DateTime(DateTimeParts),
    /// TIME as microseconds, signed.
    Time(i64),
    Text(&'a str),
    /// A SET's members, comma-separated; "" is the empty set.
    Set(&'a str),
    Bytes(&'a [u8]),
    /// A temporal value rendered as text (the `string` zero-date policy).
    OwnedText(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeParts {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micro: u32,
}

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// A zero date or a date with a zero month/day: no lossless Arrow form. Carries its text.
    ZeroDate(String),
    Invalid(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::ZeroDate(text) => write!(f, "zero date {text:?} has no lossless typed form"),
            DecodeError::Invalid(why) => f.write_str(why),
        }
    }
}

fn invalid(kind: &ColumnKind, v: &Value) -> DecodeError {
    let shown = match v {
        Value::Bytes(b) => format!("{:?}", String::from_utf8_lossy(&b[..b.len().min(64)])),
        other => format!("{other:?}"),
    };
    DecodeError::Invalid(format!("value {shown} does not fit {kind:?}"))
}

fn text<'a>(kind: &ColumnKind, v: &'a Value) -> Result<&'a str, DecodeError> {
    match v {
        Value::Bytes(b) => std::str::from_utf8(b).map_err(|_| DecodeError::Invalid("text is not valid UTF-8".into())),
        other => Err(invalid(kind, other)),
    }
}

/// Decodes `v` of a column of `kind` (binary or text protocol values both accepted).
pub fn decode<'a>(kind: &ColumnKind, v: &'a Value, zero_date: ZeroDatePolicy) -> Result<Datum<'a>, DecodeError> {
    if let Value::NULL = v {
        return Ok(Datum::Null);
    }
    let bad = || invalid(kind, v);
    Ok(match kind {
        ColumnKind::Int { unsigned: true, .. } | ColumnKind::Year => match v {
            Value::UInt(u) => Datum::U64(*u),
            Value::Int(i) if *i >= 0 => Datum::U64(*i as u64),
            Value::Bytes(_) => Datum::U64(text(kind, v)?.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnKind::Int { unsigned: false, .. } => match v {
            Value::Int(i) => Datum::I64(*i),
            Value::UInt(u) if *u <= i64::MAX as u64 => Datum::I64(*u as i64),
            Value::Bytes(_) => Datum::I64(text(kind, v)?.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnKind::Decimal { scale, .. } => {
            let t = text(kind, v)?;
            let unscaled = parse_decimal(t, *scale).ok_or_else(bad)?;
            Datum::Decimal { text: t, unscaled }
        }
        ColumnKind::Float => match v {
            Value::Float(f) => Datum::F32(*f),
            Value::Double(d) => Datum::F32(*d as f32),
            _ => Datum::F32(text(kind, v)?.parse().map_err(|_| bad())?),
        },
        ColumnKind::Double => match v {
            Value::Double(d) => Datum::F64(*d),
            Value::Float(f) => Datum::F64(*f as f64),
            _ => Datum::F64(text(kind, v)?.parse().map_err(|_| bad())?),
        },
        ColumnKind::Date | ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => {
            let parts = match v {
                Value::Date(year, month, day, hour, minute, second, micro) => DateTimeParts {
                    year: *year,
                    month: *month,
                    day: *day,
                    hour: *hour,
                    minute: *minute,
                    second: *second,
                    micro: *micro,
                },
                _ => parse_datetime(text(kind, v)?).ok_or_else(bad)?,
            };
            let zero = parts.month == 0 || parts.day == 0;
            match zero_date {
                ZeroDatePolicy::String => Datum::OwnedText(format_datetime(&parts, kind)),
                _ if zero => return Err(DecodeError::ZeroDate(format_datetime(&parts, kind))),
                _ => Datum::DateTime(parts),
            }
        }
        ColumnKind::Time { .. } => match v {
            Value::Time(neg, days, h, m, s, us) => {
                let secs = ((*days as i64 * 24 + *h as i64) * 60 + *m as i64) * 60 + *s as i64;
                let micros = secs * 1_000_000 + *us as i64;
                Datum::Time(if *neg { -micros } else { micros })
            }
            _ => Datum::Time(parse_time(text(kind, v)?).ok_or_else(bad)?),
        },
        ColumnKind::Text | ColumnKind::Enum | ColumnKind::Json => Datum::Text(text(kind, v)?),
        ColumnKind::Set => Datum::Set(text(kind, v)?),
        ColumnKind::Binary => match v {
            Value::Bytes(b) => Datum::Bytes(b),
            _ => return Err(bad()),
        },
        ColumnKind::Spatial => match v {
            // The server's internal form is a 4-byte little-endian SRID followed by WKB.
            Value::Bytes(b) if b.len() >= 5 => Datum::Bytes(&b[4..]),
            _ => return Err(bad()),
        },
        ColumnKind::Bit { .. } => match v {
            Value::Bytes(b) if b.len() <= 8 => Datum::U64(b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)),
            Value::UInt(u) => Datum::U64(*u),
            Value::Int(i) => Datum::U64(*i as u64),
            _ => return Err(bad()),
        },
    })
}

/// Exact decimal text (`-123.4500`) to its unscaled integer at `scale`. None when malformed.
pub fn parse_decimal(text: &str, scale: u8) -> Option<i256> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if frac.len() > scale as usize || (int_part.is_empty() && frac.is_empty()) {
        return None;
    }
    let all = int_part.bytes().chain(frac.bytes());
    let pad = scale as usize - frac.len();
    let value = if int_part.len() + scale as usize <= 37 {
        // Fast path: fits in i128 with room to spare.
        let mut acc: i128 = 0;
        for c in all {
            if !c.is_ascii_digit() {
                return None;
            }
            acc = acc * 10 + (c - b'0') as i128;
        }
        i256::from_i128(acc * 10i128.pow(pad as u32))
    } else {
        let ten = i256::from_i128(10);
        let mut acc = i256::ZERO;
        for c in all {
            if !c.is_ascii_digit() {
                return None;
            }
            acc = acc.checked_mul(ten)?.checked_add(i256::from_i128((c - b'0') as i128))?;
        }
        for _ in 0..pad {
            acc = acc.checked_mul(ten)?;
        }
        acc
    };
    Some(if neg { value.checked_neg()? } else { value })
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`.
pub fn parse_datetime(s: &str) -> Option<DateTimeParts> {
    let (date, time) = s.split_once(' ').unwrap_or((s, "00:00:00"));
    let mut d = date.split('-');
    let (year, month, day) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let (hour, minute, second) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let micro = if frac.is_empty() { 0 } else { format!("{frac:0<6}").get(..6)?.parse().ok()? };
    Some(DateTimeParts { year, month, day, hour, minute, second, micro })
}

/// `[-]HHH:MM:SS[.ffffff]` to signed microseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut t = hms.split(':');
    let (h, m, sec): (i64, i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let micro: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").get(..6)?.parse().ok()? };
    let v = ((h * 60 + m) * 60 + sec) * 1_000_000 + micro;
    Some(if neg { -v } else { v })
}

/// MySQL's own text form of a temporal value at the column's fractional precision.
pub fn format_datetime(p: &DateTimeParts, kind: &ColumnKind) -> String {
    let date = format!("{:04}-{:02}-{:02}", p.year, p.month, p.day);
    let fsp = match kind {
        ColumnKind::Date => return date,
        ColumnKind::DateTime { fsp } | ColumnKind::Timestamp { fsp } => *fsp,
        _ => 6,
    };
    let mut s = format!("{date} {:02}:{:02}:{:02}", p.hour, p.minute, p.second);
    push_fraction(&mut s, p.micro, fsp);
    s
}

/// `[-]HH:MM:SS[.f]` at `fsp` digits, hours unbounded (TIME spans ±838 hours).
pub fn format_time(micros: i64, fsp: u8) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    let mut s = format!("{sign}{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    push_fraction(&mut s, (m % 1_000_000) as u32, fsp);
    s
}

fn push_fraction(s: &mut String, micro: u32, fsp: u8) {
    if fsp > 0 {
        let digits = format!("{micro:06}");
        s.push('.');
        s.push_str(&digits[..fsp as usize]);
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

impl DateTimeParts {
    pub fn days(&self) -> i64 {
        days_from_civil(self.year as i64, self.month as u32, self.day as u32)
    }

    pub fn epoch_micros(&self) -> i64 {
        let secs = self.days() * 86_400 + self.hour as i64 * 3600 + self.minute as i64 * 60 + self.second as i64;
        secs * 1_000_000 + self.micro as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly_at_any_width() {
        assert_eq!(parse_decimal("-123.45", 4), Some(i256::from_i128(-1234500)));
        let wide = "99999999999999999999999999999999999.999999999999999999999999999999";
        let v = parse_decimal(wide, 30).unwrap();
        assert_eq!(v.to_string(), wide.replace('.', ""));
        assert_eq!(parse_decimal("1.2.3", 2), None);
        assert_eq!(parse_decimal("1.234", 2), None, "more digits than the scale is malformed");
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1, 1, 1), -719162);
        assert_eq!(days_from_civil(9999, 12, 31), 2932896);
    }

    #[test]
    fn zero_dates_follow_the_policy() {
        let v = Value::Date(0, 0, 0, 0, 0, 0, 0);
        let k = ColumnKind::Date;
        assert_eq!(decode(&k, &v, ZeroDatePolicy::Null), Err(DecodeError::ZeroDate("0000-00-00".into())));
        assert_eq!(decode(&k, &v, ZeroDatePolicy::String), Ok(Datum::OwnedText("0000-00-00".into())));
    }

    #[test]
    fn time_is_signed_and_may_exceed_a_day() {
        let v = Value::Time(true, 34, 22, 59, 59, 500000);
        let Ok(Datum::Time(us)) = decode(&ColumnKind::Time { fsp: 1 }, &v, ZeroDatePolicy::Null) else { panic!() };
        assert_eq!(format_time(us, 1), "-838:59:59.5");
        assert_eq!(parse_time("-838:59:59.5"), Some(us));
    }

    #[test]
    fn bit_bytes_are_big_endian_and_spatial_drops_the_srid() {
        let k = ColumnKind::Bit { width: 64 };
        let v = Value::Bytes(vec![0x80, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(decode(&k, &v, ZeroDatePolicy::Null), Ok(Datum::U64(0x8000_0000_0000_0001)));
        let p = Value::Bytes(vec![0, 0, 0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(decode(&ColumnKind::Spatial, &p, ZeroDatePolicy::Null), Ok(Datum::Bytes(&[1, 1, 0, 0, 0][..])));
    }
}
