//! A value of the export's result set (binary or text protocol) as a typed `Datum` that borrows
//! from the row: integers by signedness, DECIMAL as exact text plus its unscaled integer (never
//! f64), temporals as calendar parts (zero dates and dates the calendar lacks are reported, not
//! moved), TIME as a signed duration, BIT from big-endian bytes, spatial values as WKB. Both
//! chunk writers consume `Datum`s, so Parquet and CSV can never disagree on a value.
//!
//! Decoding starts from a `Cell`, a borrowed view of one value as the protocol carries it. The
//! `mysql` crate's `Value` and the export's own row reader (`source::wire`) both give `Cell`s
//! (`source::cell`),
//! so the two read paths share every rule below and cannot write different files.

use arrow_buffer::i256;

use super::temporal::{format_datetime, parse_datetime, parse_time, DateTimeParts};
pub use crate::source::cell::Cell;
use crate::source::types::{ColumnKind, ZeroDatePolicy};

/// A decoded value, borrowing text and bytes from the row.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum<'a> {
    Null,
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    /// DECIMAL as exact text, checked to be one at `scale` (`parse_decimal` gives its unscaled
    /// integer where a writer needs it). Kept small: a row's datums are copied per cell.
    Decimal { text: &'a str, scale: u8 },
    DateTime(DateTimeParts),
    /// TIME as microseconds, signed.
    Time(i64),
    Text(&'a str),
    /// A SET's members, comma-separated; "" is the empty set.
    Set(&'a str),
    Bytes(&'a [u8]),
    /// A temporal value to be written as MySQL's text of a column of that kind (the `string`
    /// zero-date policy); the writers render it without allocating.
    DateText(DateTimeParts, ColumnKind),
}

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// A zero date, a zero month/day, or a day the month lacks (`ALLOW_INVALID_DATES`): no
    /// lossless typed form. Carries its text.
    ZeroDate(String),
    Invalid(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::ZeroDate(text) => write!(f, "date {text:?} is not in the calendar (a zero or invalid date) and has no lossless typed form"),
            DecodeError::Invalid(why) => f.write_str(why),
        }
    }
}

fn invalid(kind: &ColumnKind, v: Cell) -> DecodeError {
    let shown = match v {
        Cell::Bytes(b) => format!("{:?}", String::from_utf8_lossy(&b[..b.len().min(64)])),
        other => format!("{:?}", other.to_value()),
    };
    DecodeError::Invalid(format!("value {shown} does not fit {kind:?}"))
}

fn text<'a>(kind: &ColumnKind, v: Cell<'a>) -> Result<&'a str, DecodeError> {
    match v {
        Cell::Bytes(b) => utf8(b).ok_or_else(|| DecodeError::Invalid("text is not valid UTF-8".into())),
        other => Err(invalid(kind, other)),
    }
}

/// `b` as UTF-8 text. Most cells are short ASCII: they are checked eight bytes at a time
/// here, since simdutf8 hands inputs under 64 bytes to std's check, whose per-call setup
/// cost 4–6 % of the export's client CPU. Longer or non-ASCII text goes to simdutf8.
pub fn utf8(b: &[u8]) -> Option<&str> {
    if b.len() <= 64 && ascii(b) {
        // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(b) });
    }
    simdutf8::basic::from_utf8(b).ok()
}

/// Whether every byte of `b` is ASCII, eight at a time.
fn ascii(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    let mut high = 0u64;
    for w in &mut words {
        high |= u64::from_le_bytes(w.try_into().expect("8 bytes"));
    }
    for &x in words.remainder() {
        high |= x as u64;
    }
    high & 0x8080_8080_8080_8080 == 0
}

/// Decodes `v` of a column of `kind` (binary or text protocol values both accepted).
pub fn decode<'a>(kind: &ColumnKind, v: Cell<'a>, zero_date: ZeroDatePolicy) -> Result<Datum<'a>, DecodeError> {
    if let Cell::Null = v {
        return Ok(Datum::Null);
    }
    let bad = || invalid(kind, v);
    Ok(match kind {
        ColumnKind::Int { unsigned: true, .. } | ColumnKind::Year => match v {
            Cell::UInt(u) => Datum::U64(u),
            Cell::Int(i) if i >= 0 => Datum::U64(i as u64),
            Cell::Bytes(_) => Datum::U64(text(kind, v)?.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnKind::Int { unsigned: false, .. } => match v {
            Cell::Int(i) => Datum::I64(i),
            Cell::UInt(u) if u <= i64::MAX as u64 => Datum::I64(u as i64),
            Cell::Bytes(_) => Datum::I64(text(kind, v)?.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnKind::Decimal { scale, .. } => {
            let t = text(kind, v)?;
            if !is_decimal(t, *scale) {
                return Err(bad());
            }
            Datum::Decimal { text: t, scale: *scale }
        }
        ColumnKind::Float => match v {
            Cell::Float(f) => Datum::F32(f),
            Cell::Double(d) => Datum::F32(d as f32),
            _ => Datum::F32(text(kind, v)?.parse().map_err(|_| bad())?),
        },
        ColumnKind::Double => match v {
            Cell::Double(d) => Datum::F64(d),
            Cell::Float(f) => Datum::F64(f as f64),
            _ => Datum::F64(text(kind, v)?.parse().map_err(|_| bad())?),
        },
        ColumnKind::Date | ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => {
            let parts = match v {
                Cell::Date(year, month, day, hour, minute, second, micro) => {
                    DateTimeParts { year, month, day, hour, minute, second, micro }
                }
                _ => parse_datetime(text(kind, v)?).ok_or_else(bad)?,
            };
            let zero = !parts.is_calendar_date();
            match zero_date {
                ZeroDatePolicy::String => Datum::DateText(parts, *kind),
                _ if zero => return Err(DecodeError::ZeroDate(format_datetime(&parts, kind))),
                _ => Datum::DateTime(parts),
            }
        }
        ColumnKind::Time { .. } => match v {
            Cell::Time(neg, days, h, m, s, us) => {
                let secs = ((days as i64 * 24 + h as i64) * 60 + m as i64) * 60 + s as i64;
                let micros = secs * 1_000_000 + us as i64;
                Datum::Time(if neg { -micros } else { micros })
            }
            _ => Datum::Time(parse_time(text(kind, v)?).ok_or_else(bad)?),
        },
        ColumnKind::Text | ColumnKind::Enum | ColumnKind::Json => Datum::Text(text(kind, v)?),
        ColumnKind::Set => Datum::Set(text(kind, v)?),
        ColumnKind::Binary => match v {
            Cell::Bytes(b) => Datum::Bytes(b),
            _ => return Err(bad()),
        },
        ColumnKind::Spatial => match v {
            // The server's internal form is a 4-byte little-endian SRID followed by WKB.
            Cell::Bytes(b) if b.len() >= 5 => Datum::Bytes(&b[4..]),
            _ => return Err(bad()),
        },
        ColumnKind::Bit { .. } => match v {
            Cell::Bytes(b) if b.len() <= 8 => Datum::U64(b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)),
            Cell::UInt(u) => Datum::U64(u),
            Cell::Int(i) => Datum::U64(i as u64),
            _ => return Err(bad()),
        },
    })
}

/// Sign, integer digits and fraction digits of a decimal's text; None unless it is an
/// optional sign, then digits with at most one point among them, at least one digit in all.
/// One pass over the bytes (a `split_once` per value showed in the export's profile).
fn decimal_parts(text: &str) -> Option<(bool, &[u8], &[u8])> {
    let b = text.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let mut dot = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {}
            b'.' if dot.is_none() => dot = Some(i),
            _ => return None,
        }
    }
    let (int_part, frac) = match dot {
        Some(i) => (&digits[..i], &digits[i + 1..]),
        None => (digits, &digits[digits.len()..]),
    };
    (!int_part.is_empty() || !frac.is_empty()).then_some((neg, int_part, frac))
}

/// Whether `parse_decimal(text, scale)` reads `text`, checked without computing the integer:
/// at most `scale` digits after the point, and no more than the 76 digits an i256 holds once
/// scaled.
pub fn is_decimal(text: &str, scale: u8) -> bool {
    decimal_parts(text).is_some_and(|(_, int_part, frac)| frac.len() <= scale as usize && int_part.len() + scale as usize <= 76)
}

/// Exact decimal text (`-123.4500`) to its unscaled integer at `scale`. None when malformed.
pub fn parse_decimal(text: &str, scale: u8) -> Option<i256> {
    let (neg, int_part, frac) = decimal_parts(text)?;
    if frac.len() > scale as usize {
        return None;
    }
    let all = int_part.iter().chain(frac);
    let pad = scale as usize - frac.len();
    let value = if int_part.len() + scale as usize <= 37 {
        // Fast path: fits in i128 with room to spare.
        let acc = all.fold(0i128, |acc, c| acc * 10 + (c - b'0') as i128);
        i256::from_i128(acc * 10i128.pow(pad as u32))
    } else {
        let ten = i256::from_i128(10);
        let mut acc = i256::ZERO;
        for c in all {
            acc = acc.checked_mul(ten)?.checked_add(i256::from_i128((c - b'0') as i128))?;
        }
        for _ in 0..pad {
            acc = acc.checked_mul(ten)?;
        }
        acc
    };
    Some(if neg { value.checked_neg()? } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql::Value;
    use crate::value::temporal::format_time;

    #[test]
    fn text_is_checked_as_std_checks_it_at_every_length_and_byte_position() {
        // Every length around the word size and the short-text cut, with a byte that is not
        // ASCII at each position: a lead byte alone, a whole "é", a stray continuation byte.
        for len in 0..80 {
            let plain: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(utf8(&plain), std::str::from_utf8(&plain).ok(), "ASCII of {len} bytes");
            for at in 0..len {
                for odd in [&[0xc3u8][..], &[0xc3, 0xa9], &[0x80], &[0xff]] {
                    let mut b = plain.clone();
                    b.splice(at..at + 1, odd.iter().copied());
                    assert_eq!(utf8(&b), std::str::from_utf8(&b).ok(), "{b:?}");
                }
            }
        }
    }

    #[test]
    fn a_datum_stays_small() {
        // Every cell's datum is copied into the row's vector: it was 64 bytes with a decimal's
        // i256 in it, and that copy was a tenth of the export's client time.
        assert!(std::mem::size_of::<Datum>() <= 32, "{} bytes", std::mem::size_of::<Datum>());
    }

    #[test]
    fn decimals_parse_exactly_at_any_width() {
        assert_eq!(parse_decimal("-123.45", 4), Some(i256::from_i128(-1234500)));
        let wide = "99999999999999999999999999999999999.999999999999999999999999999999";
        let v = parse_decimal(wide, 30).unwrap();
        assert_eq!(v.to_string(), wide.replace('.', ""));
        assert_eq!(parse_decimal("1.2.3", 2), None);
        assert_eq!(parse_decimal("1.234", 2), None, "more digits than the scale is malformed");
        for (text, scale) in [("-123.45", 4), ("+1", 0), ("1.", 2), (".5", 1), ("", 2), (".", 2), ("1.2.3", 2), ("1.234", 2), ("1e5", 2), ("-", 0), (wide, 30), (&"9".repeat(77), 0)] {
            assert_eq!(is_decimal(text, scale), parse_decimal(text, scale).is_some(), "{text:?} at scale {scale}");
        }
    }

    #[test]
    fn zero_dates_follow_the_policy() {
        let v = Value::Date(0, 0, 0, 0, 0, 0, 0);
        let k = ColumnKind::Date;
        assert_eq!(decode(&k, (&v).into(), ZeroDatePolicy::Null), Err(DecodeError::ZeroDate("0000-00-00".into())));
        assert_eq!(decode(&k, (&v).into(), ZeroDatePolicy::String), Ok(Datum::DateText(DateTimeParts { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, micro: 0 }, k)));
        // Stored under ALLOW_INVALID_DATES: kept as text or reported, never moved to March 3rd.
        let invalid = Value::Date(2023, 2, 31, 0, 0, 0, 0);
        assert_eq!(decode(&k, (&invalid).into(), ZeroDatePolicy::Null), Err(DecodeError::ZeroDate("2023-02-31".into())));
        assert_eq!(decode(&k, (&invalid).into(), ZeroDatePolicy::String), Ok(Datum::DateText(DateTimeParts { year: 2023, month: 2, day: 31, hour: 0, minute: 0, second: 0, micro: 0 }, k)));
    }

    #[test]
    fn time_is_signed_and_may_exceed_a_day() {
        let v = Value::Time(true, 34, 22, 59, 59, 500000);
        let Ok(Datum::Time(us)) = decode(&ColumnKind::Time { fsp: 1 }, (&v).into(), ZeroDatePolicy::Null) else { panic!() };
        assert_eq!(format_time(us, 1), "-838:59:59.5");
        assert_eq!(parse_time("-838:59:59.5"), Some(us));
    }

    #[test]
    fn bit_bytes_are_big_endian_and_spatial_drops_the_srid() {
        let k = ColumnKind::Bit { width: 64 };
        let v = Value::Bytes(vec![0x80, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(decode(&k, (&v).into(), ZeroDatePolicy::Null), Ok(Datum::U64(0x8000_0000_0000_0001)));
        let p = Value::Bytes(vec![0, 0, 0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(decode(&ColumnKind::Spatial, (&p).into(), ZeroDatePolicy::Null), Ok(Datum::Bytes(&[1, 1, 0, 0, 0][..])));
    }
}
