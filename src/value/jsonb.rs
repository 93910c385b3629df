//! MySQL's binary JSON (the JSON column in a MySQL row image) as the text a `SELECT` of that
//! column returns, so capture hands apply the very text the export's chunks hold: keys in the
//! order MySQL stores them (by length, then bytes), `": "` and `", "` between them, strings
//! escaped as MySQL escapes them, and the scalars only binary JSON has (opaque values) as MySQL
//! prints them: DECIMAL as its exact digits, DATE as `"2024-01-15"`, TIME and DATETIME/TIMESTAMP
//! with six fraction digits, and any other opaque value (a binary string cast to JSON) as
//! `"base64:typeNN:…"`, MySQL's own spelling.

use std::fmt::Write;

use mysql_common::binlog::jsonb::Value;
use mysql_common::binlog::time::MysqlTime;
use mysql_common::constants::ColumnType;

/// The document as MySQL's JSON text.
pub fn to_text(v: &Value<'_>) -> Result<String, String> {
    let mut out = String::new();
    write_value(v, &mut out)?;
    Ok(out)
}

fn write_value(v: &Value<'_>, out: &mut String) -> Result<(), String> {
    let io = |e: std::io::Error| format!("JSON: {e}");
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I16(x) => write!(out, "{x}").unwrap(),
        Value::U16(x) => write!(out, "{x}").unwrap(),
        Value::I32(x) => write!(out, "{x}").unwrap(),
        Value::U32(x) => write!(out, "{x}").unwrap(),
        Value::I64(x) => write!(out, "{x}").unwrap(),
        Value::U64(x) => write!(out, "{x}").unwrap(),
        Value::F64(x) => out.push_str(&double(*x)),
        Value::String(s) => string(&s.str(), out),
        Value::SmallArray(a) => array(a.iter().map(|e| e.map_err(io)), out)?,
        Value::LargeArray(a) => array(a.iter().map(|e| e.map_err(io)), out)?,
        Value::SmallObject(o) => object(o.iter().map(|e| e.map(|(k, v)| (k.value().into_owned(), v)).map_err(io)), out)?,
        Value::LargeObject(o) => object(o.iter().map(|e| e.map(|(k, v)| (k.value().into_owned(), v)).map_err(io)), out)?,
        Value::Opaque(o) => {
            let packed = || -> Result<i64, String> {
                let b = o.data_raw().first_chunk::<8>().ok_or_else(|| format!("JSON: a {:?} opaque value is shorter than 8 bytes", o.value_type()))?;
                Ok(i64::from_le_bytes(*b))
            };
            match o.value_type() {
                ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                    let d = mysql_common::binlog::decimal::Decimal::read_packed(o.data_raw(), false).map_err(io)?;
                    out.push_str(&d.to_string());
                }
                ColumnType::MYSQL_TYPE_DATE => {
                    let t = MysqlTime::from_int64_date_packed(packed()?);
                    write!(out, "\"{:04}-{:02}-{:02}\"", t.year, t.month, t.day).unwrap();
                }
                ColumnType::MYSQL_TYPE_TIME => {
                    let t = MysqlTime::from_int64_time_packed(packed()?);
                    write!(out, "\"{}{:02}:{:02}:{:02}.{:06}\"", if t.neg { "-" } else { "" }, t.hour, t.minute, t.second, t.second_part).unwrap();
                }
                ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_TIMESTAMP => {
                    let t = MysqlTime::from_int64_datetime_packed(packed()?);
                    write!(out, "\"{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}\"", t.year, t.month, t.day, t.hour, t.minute, t.second, t.second_part).unwrap();
                }
                // Any other type (a binary string cast to JSON): as MySQL prints it.
                other => {
                    use base64::Engine;
                    write!(out, "\"base64:type{}:{}\"", other as u8, base64::engine::general_purpose::STANDARD.encode(o.data_raw())).unwrap();
                }
            }
        }
    }
    Ok(())
}

fn array<'a>(items: impl Iterator<Item = Result<Value<'a>, String>>, out: &mut String) -> Result<(), String> {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_value(&item?, out)?;
    }
    out.push(']');
    Ok(())
}

fn object<'a>(items: impl Iterator<Item = Result<(String, Value<'a>), String>>, out: &mut String) -> Result<(), String> {
    out.push('{');
    for (i, item) in items.enumerate() {
        let (k, v) = item?;
        if i > 0 {
            out.push_str(", ");
        }
        string(&k, out);
        out.push_str(": ");
        write_value(&v, out)?;
    }
    out.push('}');
    Ok(())
}

/// A string as MySQL's JSON text escapes it.
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A double as MySQL prints one in JSON (`my_gcvt` with its widest field, then `.0` when neither
/// a point nor an exponent was written): the shortest digits that read back, in fixed notation
/// while the decimal point falls within 10^-15 … 10^15 of them (`MAX_DECPT_FOR_F_FORMAT`, 15),
/// else as `d.ddde-N` with no `+` and no padding: `2.0`, `0.00001`, `100000000000000.0`, `1e15`,
/// `1.5e-16`, `1e100`.
fn double(x: f64) -> String {
    const MAX_DECPT_FOR_F_FORMAT: i32 = 15;
    if !x.is_finite() {
        return x.to_string(); // JSON holds none; a damaged document must not panic here
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} writes an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let (len, decpt) = (digits.len() as i32, exp.parse::<i32>().expect("an integer exponent") + 1);
    let mut out = String::from(if x.is_sign_negative() { "-" } else { "" });
    if (decpt > -MAX_DECPT_FOR_F_FORMAT && decpt <= MAX_DECPT_FOR_F_FORMAT) || (decpt > MAX_DECPT_FOR_F_FORMAT && len > decpt) {
        if decpt <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat(-decpt as usize));
            out.push_str(&digits);
        } else if decpt < len {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        } else {
            out.push_str(&digits);
            out.push_str(&"0".repeat((decpt - len) as usize));
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if len > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push_str(&(decpt - 1).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value<'_> {
        mysql_common::io::ParseBuf(bytes).parse(()).unwrap()
    }

    #[test]
    fn scalars_and_strings_are_spelt_as_mysql_prints_them() {
        assert_eq!(double(2.0), "2.0");
        assert_eq!(double(1e100), "1e100");
        assert_eq!(double(-0.5), "-0.5");
        // Regression: Rust's own rule wrote 1e15 as 1000000000000000.0 and 0.00001 as 1e-5. MySQL
        // (my_gcvt, MAX_DECPT_FOR_F_FORMAT = 15) writes fixed notation for a decimal point
        // within 10^-15 … 10^15 and `e` notation outside it.
        for (x, mysql) in [
            (1e15, "1e15"),
            (1e14, "100000000000000.0"),
            (123456789012345.6, "123456789012345.6"),
            (1234567890123456.8, "1234567890123456.8"),
            (1.2345678901234567e16, "1.2345678901234568e16"),
            (0.00001, "0.00001"),
            (1e-15, "0.000000000000001"),
            (1.5e-16, "1.5e-16"),
            (-2.5e-300, "-2.5e-300"),
            (1.7976931348623157e308, "1.7976931348623157e308"),
            (0.1, "0.1"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
        ] {
            assert_eq!(double(x), mysql, "{x:e}");
        }
        let mut s = String::new();
        string("a\"b\\c\nd\u{1}é", &mut s);
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn a_small_object_keeps_the_stored_key_order_and_mysql_separators() {
        // {"a": 1, "bb": [true, null]} in binary JSON: type 0 (small object), 2 members.
        let mut doc = vec![0x00u8];
        let body: Vec<u8> = {
            let mut b = Vec::new();
            b.extend(2u16.to_le_bytes()); // count
            let size_at = b.len();
            b.extend(0u16.to_le_bytes()); // size, set below
            // key entries: offset u16, length u16
            let keys_start = 4 + 2 * 4 + 2 * 3; // header + key entries + value entries
            b.extend((keys_start as u16).to_le_bytes());
            b.extend(1u16.to_le_bytes());
            b.extend((keys_start as u16 + 1).to_le_bytes());
            b.extend(2u16.to_le_bytes());
            // value entries: type u8, inlined value or offset u16
            b.push(0x05); // int16 inlined
            b.extend(1u16.to_le_bytes());
            let array_at = keys_start + 3;
            b.push(0x02); // small array
            b.extend((array_at as u16).to_le_bytes());
            b.extend(b"abb");
            // the array: count 2, size, two inlined literals (true 0x01, null 0x00)
            let arr_start = b.len();
            b.extend(2u16.to_le_bytes());
            b.extend(0u16.to_le_bytes());
            b.push(0x04);
            b.extend(1u16.to_le_bytes());
            b.push(0x04);
            b.extend(0u16.to_le_bytes());
            let arr_len = (b.len() - arr_start) as u16;
            b[arr_start + 2..arr_start + 4].copy_from_slice(&arr_len.to_le_bytes());
            let len = b.len() as u16;
            b[size_at..size_at + 2].copy_from_slice(&len.to_le_bytes());
            b
        };
        doc.extend(body);
        assert_eq!(to_text(&parse(&doc)).unwrap(), r#"{"a": 1, "bb": [true, null]}"#);
    }
}
