//! One value of a result row as the protocol carries it, borrowing its bytes. The export's
//! own row reader (`wire`) parses binary rows into `Cell`s in the packet buffer, and a `Value`
//! of the `mysql` crate converts to one, so `value::row::decode` serves both readers alike.

use mysql::Value;

/// One value as the protocol carries it, borrowing its bytes: the binary protocol's typed
/// forms, or bytes (strings, decimals, and every value of the text protocol).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// year, month, day, hour, minute, second, microsecond.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// negative, days, hours, minutes, seconds, microseconds.
    Time(bool, u32, u8, u8, u8, u32),
    Bytes(&'a [u8]),
}

impl<'a> From<&'a Value> for Cell<'a> {
    fn from(v: &'a Value) -> Cell<'a> {
        match v {
            Value::NULL => Cell::Null,
            Value::Int(i) => Cell::Int(*i),
            Value::UInt(u) => Cell::UInt(*u),
            Value::Float(f) => Cell::Float(*f),
            Value::Double(d) => Cell::Double(*d),
            Value::Date(y, mo, d, h, mi, s, us) => Cell::Date(*y, *mo, *d, *h, *mi, *s, *us),
            Value::Time(neg, days, h, m, s, us) => Cell::Time(*neg, *days, *h, *m, *s, *us),
            Value::Bytes(b) => Cell::Bytes(b),
        }
    }
}

impl Cell<'_> {
    /// The owned `Value` the `mysql` crate would have made of this cell.
    pub fn to_value(self) -> Value {
        match self {
            Cell::Null => Value::NULL,
            Cell::Int(i) => Value::Int(i),
            Cell::UInt(u) => Value::UInt(u),
            Cell::Float(f) => Value::Float(f),
            Cell::Double(d) => Value::Double(d),
            Cell::Date(y, mo, d, h, mi, s, us) => Value::Date(y, mo, d, h, mi, s, us),
            Cell::Time(neg, days, h, m, s, us) => Value::Time(neg, days, h, m, s, us),
            Cell::Bytes(b) => Value::Bytes(b.to_vec()),
        }
    }
}

