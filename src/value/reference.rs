//! The temporal conversions computed a second way, for `verify`: dates are parsed and formatted
//! by the `time` crate and epoch seconds are written by placing the decimal point in the digits
//! of an exact count of nanoseconds, so a slip in the writer's calendar arithmetic (`temporal`,
//! `dynamo::convert`) shows as a difference instead of agreeing with itself.

use time::format_description::{well_known::Iso8601, BorrowedFormatItem};
use time::macros::format_description;
use time::{Date, PrimitiveDateTime};

use super::attr::Attr;
use super::dynamo::{fraction_digits, TemporalAs};
use crate::source::types::ColumnKind;

const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");
const DATETIME: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]");

/// A DATE, DATETIME or TIMESTAMP value (MySQL's text) as `convert` must write it under `temporal`.
pub fn temporal(kind: &ColumnKind, text: &str, temporal: TemporalAs) -> Result<Attr, String> {
    let parsed = match kind {
        ColumnKind::Date => Date::parse(text, DATE).map(|d| d.midnight()),
        _ => PrimitiveDateTime::parse(text, DATETIME),
    };
    let Ok(at) = parsed else {
        // Not a date of the calendar (zero or invalid): text under iso, no epoch value.
        return match temporal {
            TemporalAs::Iso => Ok(Attr::S(text.to_string())),
            TemporalAs::Epoch => Err(format!("date {text:?} is not in the calendar (a zero or invalid date) and has no epoch value")),
        };
    };
    let fsp = fraction_digits(kind);
    Ok(match temporal {
        TemporalAs::Iso => Attr::S(iso(kind, at, fsp)),
        TemporalAs::Epoch => Attr::N(point(at.assume_utc().unix_timestamp_nanos(), fsp)),
    })
}

fn iso(kind: &ColumnKind, at: PrimitiveDateTime, fsp: usize) -> String {
    if matches!(kind, ColumnKind::Date) {
        return at.date().format(DATE).unwrap_or_default();
    }
    // The well-known ISO 8601 form, its nine fraction digits cut to the column's precision.
    let full = at.assume_utc().format(&Iso8601::DEFAULT).unwrap_or_default();
    let (date_time, rest) = full.split_once('.').unwrap_or((&full, ""));
    let date_time = date_time.strip_prefix('+').unwrap_or(date_time);
    let mut s = date_time.to_string();
    if fsp > 0 {
        s.push('.');
        s.push_str(&rest[..fsp]);
    }
    if matches!(kind, ColumnKind::Timestamp { .. }) {
        s.push('Z');
    }
    s
}

/// Nanoseconds as seconds with `fsp` fraction digits: the digits of the magnitude, the point
/// put in front of the last `fsp` of them.
fn point(nanos: i128, fsp: usize) -> String {
    let digits = (nanos.unsigned_abs() / 10u128.pow(9 - fsp as u32)).to_string();
    let digits = format!("{digits:0>width$}", width = fsp + 1);
    let (int, frac) = digits.split_at(digits.len() - fsp);
    let sign = if nanos < 0 { "-" } else { "" };
    if fsp == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::dynamo::{convert, ConvertOptions};
    use crate::source::schema::ColumnSchema;
    use crate::value::Cell;

    fn col(kind: ColumnKind) -> ColumnSchema {
        ColumnSchema { name: "c".into(), ordinal: 1, mysql_type: "datetime".into(), nullable: true, charset: None, collation: None, kind }
    }

    #[test]
    fn epoch_seconds_before_1970_keep_their_fraction_positive_toward_zero() {
        let k = ColumnKind::DateTime { fsp: 3 };
        assert_eq!(temporal(&k, "1969-12-31 23:59:59.500", TemporalAs::Epoch), Ok(Attr::N("-0.500".into())));
        assert_eq!(temporal(&k, "1969-07-20 20:17:40.250", TemporalAs::Epoch), Ok(Attr::N("-14182939.750".into())));
        assert_eq!(temporal(&ColumnKind::Date, "1969-12-31", TemporalAs::Epoch), Ok(Attr::N("-86400".into())));
        assert_eq!(temporal(&ColumnKind::Timestamp { fsp: 6 }, "2038-01-19 03:14:07.999999", TemporalAs::Iso), Ok(Attr::S("2038-01-19T03:14:07.999999Z".into())));
        assert!(temporal(&k, "2023-02-31 00:00:00.000", TemporalAs::Epoch).is_err());
    }

    #[test]
    fn the_writer_agrees_with_the_reference_across_the_calendar() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for fsp in 0..=6u8 {
            for kind in [ColumnKind::DateTime { fsp }, ColumnKind::Timestamp { fsp }, ColumnKind::Date] {
                for _ in 0..400 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let micros = (seed % 315_537_897_600_000_000) as i64 - 62_135_596_800_000_000;
                    let p = crate::value::temporal::DateTimeParts::from_epoch_micros(micros);
                    let text = crate::value::temporal::format_datetime(&p, &kind);
                    for t in [TemporalAs::Iso, TemporalAs::Epoch] {
                        let opts = ConvertOptions { temporal: t, ..Default::default() };
                        let writer = convert(&col(kind), &Cell::Text(text.clone()), &opts).unwrap().unwrap();
                        assert_eq!(Ok(writer), temporal(&kind, &text, t), "{text} as {t:?}");
                    }
                }
            }
        }
    }
}
