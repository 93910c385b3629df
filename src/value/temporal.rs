//! MySQL's temporal values as calendar parts and as MySQL's own text: parsing and formatting
//! (`YYYY-MM-DD HH:MM:SS[.ffffff]`, `[-]HHH:MM:SS[.ffffff]`), days since the epoch and back, and
//! the test every path applies before giving a date a typed form: a zero date, a zero month or
//! day, or a day the month does not have (stored under `ALLOW_INVALID_DATES`) has none.

use crate::source::types::ColumnKind;

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

impl DateTimeParts {
    pub fn days(&self) -> i64 {
        days_from_civil(self.year as i64, self.month as u32, self.day as u32)
    }

    pub fn epoch_micros(&self) -> i64 {
        let secs = self.days() * 86_400 + self.hour as i64 * 3600 + self.minute as i64 * 60 + self.second as i64;
        secs * 1_000_000 + self.micro as i64
    }

    /// A date the proleptic Gregorian calendar has: month 1–12, day within the month. Zero dates
    /// and `2023-02-31` (kept by `ALLOW_INVALID_DATES`) are not; they have no typed form.
    pub fn is_calendar_date(&self) -> bool {
        (1..=12).contains(&self.month) && self.day >= 1 && self.day <= days_in_month(self.year, self.month)
    }

    /// UTC calendar parts of microseconds since 1970-01-01.
    pub fn from_epoch_micros(micros: i64) -> DateTimeParts {
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
}

pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` (a `T` between date and time is accepted too).
pub fn parse_datetime(s: &str) -> Option<DateTimeParts> {
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
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
    let mut out = Vec::with_capacity(26);
    write_datetime(&mut out, p, kind);
    String::from_utf8(out).expect("digits and separators")
}

/// Where the text writers below put their bytes: a vector, or a buffer on the stack.
pub trait Put {
    fn put(&mut self, bytes: &[u8]);
}

impl Put for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A temporal value's text, rendered on the stack (at most `-838:59:59.000000` or
/// `9999-12-31 23:59:59.999999`): for a writer that takes `&str`, nothing allocated.
pub struct TextBuf {
    bytes: [u8; 32],
    len: usize,
}

impl Put for TextBuf {
    fn put(&mut self, b: &[u8]) {
        self.bytes[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
}

impl TextBuf {
    pub fn datetime(p: &DateTimeParts, kind: &ColumnKind) -> TextBuf {
        let mut t = TextBuf { bytes: [0; 32], len: 0 };
        write_datetime(&mut t, p, kind);
        t
    }

    pub fn time(micros: i64, fsp: u8) -> TextBuf {
        let mut t = TextBuf { bytes: [0; 32], len: 0 };
        write_time(&mut t, micros, fsp);
        t
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("digits and separators")
    }
}

/// `format_datetime` appended to `out`, nothing allocated.
pub fn write_datetime(out: &mut impl Put, p: &DateTimeParts, kind: &ColumnKind) {
    push_padded(out, p.year as u64, 4);
    out.put(b"-");
    push_padded(out, p.month as u64, 2);
    out.put(b"-");
    push_padded(out, p.day as u64, 2);
    let fsp = match kind {
        ColumnKind::Date => return,
        ColumnKind::DateTime { fsp } | ColumnKind::Timestamp { fsp } => *fsp,
        _ => 6,
    };
    out.put(b" ");
    push_clock(out, p.hour as u64, p.minute as u64, p.second as u64);
    push_fraction(out, p.micro, fsp);
}

/// `[-]HH:MM:SS[.f]` at `fsp` digits, hours unbounded (TIME spans ±838 hours).
pub fn format_time(micros: i64, fsp: u8) -> String {
    let mut out = Vec::with_capacity(18);
    write_time(&mut out, micros, fsp);
    String::from_utf8(out).expect("digits and separators")
}

/// `format_time` appended to `out`, nothing allocated.
pub fn write_time(out: &mut impl Put, micros: i64, fsp: u8) {
    if micros < 0 {
        out.put(b"-");
    }
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    push_clock(out, secs / 3600, secs / 60 % 60, secs % 60);
    push_fraction(out, (m % 1_000_000) as u32, fsp);
}

/// `v` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut impl Put, v: u64, width: usize) {
    // The common case (months, days, clock fields): two digits at once.
    if width == 2 && v < 100 {
        out.put(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
        return;
    }
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut rest = v;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    digits[..n].reverse();
    out.put(&b"00000000000000000000"[..width.saturating_sub(n).min(20)]);
    out.put(&digits[..n]);
}

fn push_clock(out: &mut impl Put, h: u64, m: u64, s: u64) {
    push_padded(out, h, 2);
    out.put(b":");
    push_padded(out, m, 2);
    out.put(b":");
    push_padded(out, s, 2);
}

fn push_fraction(out: &mut impl Put, micro: u32, fsp: u8) {
    if fsp > 0 {
        let mut digits = [b'0'; 6];
        let mut rest = micro;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.put(b".");
        out.put(&digits[..fsp as usize]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates_and_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1, 1, 1), -719162);
        assert_eq!(days_from_civil(9999, 12, 31), 2932896);
        for days in [-719528, -1, 0, 1, 11016, 19723, 2932896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(-719528), (0, 1, 1));
    }

    #[test]
    fn invalid_and_zero_dates_are_not_calendar_dates() {
        let p = |s: &str| parse_datetime(s).unwrap();
        assert!(p("2024-02-29").is_calendar_date());
        assert!(!p("2023-02-29").is_calendar_date());
        assert!(!p("2023-02-31").is_calendar_date());
        assert!(!p("1900-02-29").is_calendar_date());
        assert!(p("2000-02-29").is_calendar_date());
        assert!(!p("0000-00-00 00:00:00").is_calendar_date());
        assert!(!p("2023-00-10").is_calendar_date());
        assert!(!p("2023-04-31").is_calendar_date());
    }

    #[test]
    fn time_text_is_signed_and_may_exceed_a_day() {
        assert_eq!(format_time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000 - 500_000, 1), "-838:59:59.5");
        assert_eq!(parse_time("-838:59:59.5"), Some(-(838 * 3600 + 59 * 60 + 59) * 1_000_000 - 500_000));
        assert_eq!(format_time(-1, 6), "-00:00:00.000001");
    }
}
