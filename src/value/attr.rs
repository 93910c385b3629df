//! DynamoDB attribute values as this tool holds them between mapping and writing: `Attr`, with
//! DynamoDB's item-size rules (the basis of every WCU figure: pacing, estimate, the capacity
//! proxy), a compact binary codec for spill and item files, and the wire JSON form
//! (`{"S": "…"}`) used by reports and the proxy. Numbers stay exact text throughout.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Value};

/// DynamoDB's item size limit, attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// One write capacity unit covers an item of up to 1 KB.
pub const WCU_BYTES: usize = 1024;

pub type Item = BTreeMap<String, Attr>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attr {
    S(String),
    /// Exact decimal text, validated by `number::check`.
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    SS(Vec<String>),
    M(BTreeMap<String, Attr>),
    L(Vec<Attr>),
}

/// Size of a number as DynamoDB counts it: 1 byte, plus one per two significant digits, plus
/// one for some digit/exponent parities and for a sign (the rule dynalite reproduces).
pub fn number_size(text: &str) -> usize {
    let neg = text.starts_with('-');
    let body = text.trim_start_matches(['-', '+']);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // Leading zeros, then significant digits (the digits of int and frac read as one string,
    // without allocating it: this runs for every number of every item).
    let digits = int.bytes().chain(frac.bytes());
    let lead = digits.clone().take_while(|&b| b == b'0').count();
    let total = int.len() + frac.len();
    let trail = frac.bytes().rev().chain(int.bytes().rev()).take_while(|&b| b == b'0').count();
    if lead == total {
        return 1;
    }
    let n = total - lead - trail;
    // Exponent of the first significant digit (Big.js `e`).
    let e = int.len() as i64 - 1 - lead as i64 + exp;
    1 + n.div_ceil(2) + usize::from(n.is_multiple_of(2) && e % 2 == 0) + usize::from(neg)
}

impl Attr {
    /// Bytes the value counts for in an item (without its name).
    pub fn size(&self) -> usize {
        match self {
            Attr::S(s) => s.len(),
            Attr::N(n) => number_size(n),
            Attr::B(b) => b.len(),
            Attr::Bool(_) | Attr::Null => 1,
            Attr::SS(v) => v.iter().map(String::len).sum(),
            Attr::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + v.size()).sum::<usize>(),
            Attr::L(l) => 3 + l.iter().map(|v| 1 + v.size()).sum::<usize>(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Attr::S(_) => "S",
            Attr::N(_) => "N",
            Attr::B(_) => "B",
            Attr::Bool(_) => "BOOL",
            Attr::Null => "NULL",
            Attr::SS(_) => "SS",
            Attr::M(_) => "M",
            Attr::L(_) => "L",
        }
    }

    /// DynamoDB's wire JSON, e.g. `{"N": "12"}`.
    pub fn to_json(&self) -> Value {
        match self {
            Attr::S(s) => json!({ "S": s }),
            Attr::N(n) => json!({ "N": n }),
            Attr::B(b) => json!({ "B": base64::engine::general_purpose::STANDARD.encode(b) }),
            Attr::Bool(b) => json!({ "BOOL": b }),
            Attr::Null => json!({ "NULL": true }),
            Attr::SS(v) => json!({ "SS": v }),
            Attr::M(m) => json!({ "M": m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<_, _>>() }),
            Attr::L(l) => json!({ "L": l.iter().map(Attr::to_json).collect::<Vec<_>>() }),
        }
    }

    /// Parses the wire JSON form. NS and BS sets are read as lists of their members' types.
    pub fn from_json(v: &Value) -> Result<Attr, String> {
        let (ty, val) = v.as_object().and_then(|o| o.iter().next()).ok_or_else(|| format!("not an attribute value: {v}"))?;
        let text = || val.as_str().map(str::to_string).ok_or_else(|| format!("{ty} needs a string: {val}"));
        let strings = || -> Result<Vec<String>, String> {
            val.as_array()
                .ok_or_else(|| format!("{ty} needs a list"))?
                .iter()
                .map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("{ty} member not a string")))
                .collect()
        };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("bad base64: {e}"));
        Ok(match ty.as_str() {
            "S" => Attr::S(text()?),
            "N" => Attr::N(text()?),
            "B" => Attr::B(b64(&text()?)?),
            "BOOL" => Attr::Bool(val.as_bool().ok_or("BOOL needs true/false")?),
            "NULL" => Attr::Null,
            "SS" => Attr::SS(strings()?),
            "NS" => Attr::L(strings()?.into_iter().map(Attr::N).collect()),
            "BS" => Attr::L(strings()?.iter().map(|s| b64(s).map(Attr::B)).collect::<Result<_, _>>()?),
            "M" => Attr::M(
                val.as_object()
                    .ok_or("M needs an object")?
                    .iter()
                    .map(|(k, v)| Attr::from_json(v).map(|a| (k.clone(), a)))
                    .collect::<Result<_, _>>()?,
            ),
            "L" => Attr::L(val.as_array().ok_or("L needs a list")?.iter().map(Attr::from_json).collect::<Result<_, _>>()?),
            other => return Err(format!("unknown attribute type {other}")),
        })
    }

    /// The value as text, for messages and composite keys.
    pub fn display(&self) -> String {
        match self {
            Attr::S(s) | Attr::N(s) => s.clone(),
            other => other.to_json().to_string(),
        }
    }
}

/// Size of an item as DynamoDB counts it: every attribute name plus its value.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

/// Write capacity units one put of the item costs: its size rounded up to whole kilobytes.
pub fn item_wcu(item: &Item) -> u64 {
    size_wcu(item_size(item))
}

/// Write capacity units of a put of an item of `size` bytes (`item_size`).
pub fn size_wcu(size: usize) -> u64 {
    size.div_ceil(WCU_BYTES).max(1) as u64
}

pub fn item_to_json(item: &Item) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

pub fn item_from_json(v: &Value) -> Result<Item, String> {
    v.as_object()
        .ok_or_else(|| format!("an item is an object: {v}"))?
        .iter()
        .map(|(k, v)| Attr::from_json(v).map(|a| (k.clone(), a)))
        .collect()
}

// ---- binary codec: tag byte, LEB128 lengths --------------------------------------------------

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub fn encode_attr(out: &mut Vec<u8>, a: &Attr) {
    match a {
        Attr::S(s) => {
            out.push(0);
            put_bytes(out, s.as_bytes());
        }
        Attr::N(n) => {
            out.push(1);
            put_bytes(out, n.as_bytes());
        }
        Attr::B(b) => {
            out.push(2);
            put_bytes(out, b);
        }
        Attr::Bool(b) => out.push(if *b { 4 } else { 3 }),
        Attr::Null => out.push(5),
        Attr::SS(v) => {
            out.push(6);
            put_varint(out, v.len() as u64);
            v.iter().for_each(|s| put_bytes(out, s.as_bytes()));
        }
        Attr::M(m) => {
            out.push(7);
            encode_item(out, m);
        }
        Attr::L(l) => {
            out.push(8);
            put_varint(out, l.len() as u64);
            l.iter().for_each(|x| encode_attr(out, x));
        }
    }
}

pub fn encode_item(out: &mut Vec<u8>, item: &Item) {
    put_varint(out, item.len() as u64);
    for (k, v) in item {
        put_bytes(out, k.as_bytes());
        encode_attr(out, v);
    }
}

/// Reads values written by `encode_*` from a byte slice.
pub struct Decoder<'a> {
    pub buf: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt spill or item file: {0}")]
pub struct CodecError(pub &'static str);

impl<'a> Decoder<'a> {
    pub fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or(CodecError("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError("varint too long"))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.varint()? as usize;
        if self.buf.len() < n {
            return Err(CodecError("truncated bytes"));
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    pub fn string(&mut self) -> Result<String, CodecError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| CodecError("bad utf-8"))
    }

    pub fn attr(&mut self) -> Result<Attr, CodecError> {
        let (&tag, rest) = self.buf.split_first().ok_or(CodecError("truncated attribute"))?;
        self.buf = rest;
        Ok(match tag {
            0 => Attr::S(self.string()?),
            1 => Attr::N(self.string()?),
            2 => Attr::B(self.bytes()?.to_vec()),
            3 => Attr::Bool(false),
            4 => Attr::Bool(true),
            5 => Attr::Null,
            6 => {
                let n = self.varint()?;
                Attr::SS((0..n).map(|_| self.string()).collect::<Result<_, _>>()?)
            }
            7 => Attr::M(self.item()?),
            8 => {
                let n = self.varint()?;
                Attr::L((0..n).map(|_| self.attr()).collect::<Result<_, _>>()?)
            }
            _ => return Err(CodecError("unknown attribute tag")),
        })
    }

    /// Reads one encoded attribute without building it: its bytes (tag included) and the size
    /// DynamoDB counts for it, the same as `Attr::size` of the decoded value.
    pub fn attr_bytes(&mut self) -> Result<(&'a [u8], usize), CodecError> {
        let start = self.buf;
        let size = self.attr_size()?;
        Ok((&start[..start.len() - self.buf.len()], size))
    }

    fn attr_size(&mut self) -> Result<usize, CodecError> {
        let (&tag, rest) = self.buf.split_first().ok_or(CodecError("truncated attribute"))?;
        self.buf = rest;
        Ok(match tag {
            0 | 2 => self.bytes()?.len(),
            1 => number_size(std::str::from_utf8(self.bytes()?).map_err(|_| CodecError("bad utf-8"))?),
            3..=5 => 1,
            6 => {
                let n = self.varint()?;
                (0..n).map(|_| self.bytes().map(<[u8]>::len)).sum::<Result<usize, _>>()?
            }
            7 => {
                let n = self.varint()?;
                3 + (0..n).map(|_| Ok(1 + self.bytes()?.len() + self.attr_size()?)).sum::<Result<usize, CodecError>>()?
            }
            8 => {
                let n = self.varint()?;
                3 + (0..n).map(|_| Ok(1 + self.attr_size()?)).sum::<Result<usize, CodecError>>()?
            }
            _ => return Err(CodecError("unknown attribute tag")),
        })
    }

    pub fn item(&mut self) -> Result<Item, CodecError> {
        let n = self.varint()?;
        let mut item = Item::new();
        for _ in 0..n {
            let k = self.string()?;
            item.insert(k, self.attr()?);
        }
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_sizes_follow_dynamodb_rules() {
        // Values checked against dynalite's Big.js-based accounting.
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("1"), 2);
        assert_eq!(number_size("12"), 2);
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("-123"), 4);
        assert_eq!(number_size("1.50"), 3);
        assert_eq!(number_size("0.001"), 2);
        assert_eq!(number_size("1000"), 2);
        assert_eq!(number_size("18446744073709551615"), 11);
        assert_eq!(number_size("-0.5"), 3);
        assert_eq!(number_size("99.99"), 3);
    }

    /// The first implementation (it collected the digits into a String), kept as the reference.
    fn number_size_reference(text: &str) -> usize {
        let neg = text.starts_with('-');
        let body = text.trim_start_matches(['-', '+']);
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], body[i + 1..].parse::<i64>().unwrap_or(0)),
            None => (body, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits: String = int.chars().chain(frac.chars()).collect();
        let lead = digits.len() - digits.trim_start_matches('0').len();
        let sig = digits.trim_matches('0');
        if sig.is_empty() {
            return 1;
        }
        let e = int.len() as i64 - 1 - lead as i64 + exp;
        let n = sig.len();
        1 + n.div_ceil(2) + usize::from(n.is_multiple_of(2) && e % 2 == 0) + usize::from(neg)
    }

    #[test]
    fn encoded_attributes_are_sized_without_decoding() {
        let attrs = [
            Attr::S("héllo".into()),
            Attr::N("-12.50".into()),
            Attr::B(vec![1, 2, 3]),
            Attr::Bool(true),
            Attr::Null,
            Attr::SS(vec!["a".into(), "bcd".into()]),
            Attr::M(BTreeMap::from([("k".into(), Attr::N("7".into())), ("list".into(), Attr::L(vec![Attr::S("x".into()), Attr::Null]))])),
        ];
        let mut buf = Vec::new();
        attrs.iter().for_each(|a| encode_attr(&mut buf, a));
        let mut d = Decoder { buf: &buf };
        for a in &attrs {
            let (bytes, size) = d.attr_bytes().unwrap();
            assert_eq!(size, a.size(), "{a:?}");
            assert_eq!(Decoder { buf: bytes }.attr().unwrap(), *a);
        }
        assert!(d.buf.is_empty());
        assert!(Decoder { buf: &buf[..buf.len() - 1] }.attr_bytes().is_ok());
        assert!(Decoder { buf: &[9] }.attr_bytes().is_err());
    }

    #[test]
    fn number_size_without_allocation_agrees_with_the_reference() {
        let parts = ["", "0", "00", "1", "10", "100", "105", "0010", "9990", "12345", "000123000"];
        let mut n = 0;
        for sign in ["", "-", "+"] {
            for int in parts {
                for frac in parts {
                    for exp in ["", "e3", "E-2", "e0", "e-17"] {
                        let text = if frac.is_empty() { format!("{sign}{int}{exp}") } else { format!("{sign}{int}.{frac}{exp}") };
                        if int.is_empty() && frac.is_empty() {
                            continue;
                        }
                        assert_eq!(number_size(&text), number_size_reference(&text), "{text}");
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 1000);
    }

    #[test]
    fn sizes_count_names_and_documents() {
        let mut item = Item::new();
        item.insert("id".into(), Attr::S("abc".into()));
        item.insert("m".into(), Attr::M(BTreeMap::from([("k".into(), Attr::Bool(true))])));
        item.insert("l".into(), Attr::L(vec![Attr::Null, Attr::S("xy".into())]));
        // id: 2+3; m: 1 + (3 + 1+1+1); l: 1 + (3 + 1+1 + 1+2)
        assert_eq!(item_size(&item), 5 + 7 + 9);
        assert_eq!(item_wcu(&item), 1);
        item.insert("big".into(), Attr::B(vec![0; 2000]));
        assert_eq!(item_wcu(&item), 2);
    }

    #[test]
    fn codec_and_wire_json_round_trip() {
        let mut item = Item::new();
        item.insert("s".into(), Attr::S("é\"x".into()));
        item.insert("n".into(), Attr::N("-12345678901234567890.5".into()));
        item.insert("b".into(), Attr::B(vec![0, 255, 7]));
        item.insert("ss".into(), Attr::SS(vec!["a".into(), "b".into()]));
        item.insert("doc".into(), Attr::M(BTreeMap::from([("l".into(), Attr::L(vec![Attr::Bool(false), Attr::Null]))])));
        let mut buf = Vec::new();
        encode_item(&mut buf, &item);
        let back = Decoder { buf: &buf }.item().unwrap();
        assert_eq!(back, item);
        assert_eq!(item_from_json(&item_to_json(&item)).unwrap(), item);
        assert!(Decoder { buf: &buf[..buf.len() - 1] }.item().is_err());
    }
}
