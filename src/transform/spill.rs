//! The first half of grouping at scale: every mapped row (a `Fragment`) is appended to one of a
//! target table's bucket files on local disk, chosen by a hash of its partition key, so that all
//! rows of one item land in one bucket and a bucket fits in memory when it is grouped. Rows are
//! buffered per bucket and appended in blocks; each record is length-prefixed.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::value::attr::{encode_attr, encode_item, put_bytes, put_varint, Attr, CodecError, Decoder};
use crate::mapping::compile::{Body, Fragment};

/// A row's place in the source order: table, chunk, row index, each with room to spare (a chunk
/// may hold more than 2^28 rows), so later rows win and lists keep their order.
pub fn row_seq(table: usize, chunk: u32, row: u64) -> u128 {
    ((table as u128) << 96) | ((chunk as u128) << 64) | row as u128
}

/// A spilled row: its fragment, its order in the source (`row_seq`) and its source key.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u128,
    pub source_key: String,
    pub fragment: Fragment,
}

/// The bucket of a partition key: FNV-1a over its encoded form (stable across runs and builds).
pub fn bucket_of(pk: &Attr, buckets: u32) -> u32 {
    let mut bytes = Vec::with_capacity(32);
    encode_attr(&mut bytes, pk);
    (fnv1a(&bytes) % buckets as u64) as u32
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// FNV-1a as a `Hasher`, for the grouping maps keyed by short encoded keys (SipHash showed in
/// profiles; the keys are not attacker-chosen).
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let start = if self.0 == 0 { 0xcbf29ce484222325u64 } else { self.0 };
        self.0 = bytes.iter().fold(start, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    }
}

pub type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

pub fn encode_record(out: &mut Vec<u8>, r: &Record) {
    let mut body = Vec::with_capacity(128);
    put_varint(&mut body, (r.seq >> 64) as u64);
    put_varint(&mut body, r.seq as u64);
    put_bytes(&mut body, r.source_key.as_bytes());
    encode_attr(&mut body, &r.fragment.pk);
    match &r.fragment.sk {
        Some(sk) => {
            body.push(1);
            encode_attr(&mut body, sk);
        }
        None => body.push(0),
    }
    match &r.fragment.body {
        Body::Item(item) => {
            body.push(0);
            encode_item(&mut body, item);
        }
        Body::Pivot(name, v) => {
            body.push(1);
            put_bytes(&mut body, name.as_bytes());
            encode_attr(&mut body, v);
        }
        Body::Collect(key, v) => {
            body.push(match key {
                Some(_) => 3,
                None => 2,
            });
            if let Some(k) = key {
                put_bytes(&mut body, k.as_bytes());
            }
            encode_attr(&mut body, v);
        }
    }
    put_bytes(out, &body);
}

fn byte(d: &mut Decoder) -> Result<u8, CodecError> {
    let (&b, rest) = d.buf.split_first().ok_or(CodecError("truncated record"))?;
    d.buf = rest;
    Ok(b)
}

pub fn decode_record(d: &mut Decoder) -> Result<Record, CodecError> {
    let body = d.bytes()?;
    let mut d = Decoder { buf: body };
    let seq = (u128::from(d.varint()?) << 64) | u128::from(d.varint()?);
    let source_key = d.string()?;
    let pk = d.attr()?;
    let sk = if byte(&mut d)? == 1 { Some(d.attr()?) } else { None };
    let body = match byte(&mut d)? {
        0 => Body::Item(d.item()?),
        1 => {
            let name = d.string()?;
            Body::Pivot(name, d.attr()?)
        }
        2 => Body::Collect(None, d.attr()?),
        3 => {
            let k = d.string()?;
            Body::Collect(Some(k), d.attr()?)
        }
        _ => return Err(CodecError("unknown record body")),
    };
    Ok(Record { seq, source_key, fragment: Fragment { pk, sk, body } })
}

/// Bucket files of one target table, shared by the chunk workers.
pub struct Spill {
    dir: PathBuf,
    pub buckets: u32,
    locks: Vec<Mutex<()>>,
}

/// What one chunk worker buffers before appending to the shared files.
pub struct SpillBuffer<'a> {
    spill: &'a Spill,
    buffers: Vec<Vec<u8>>,
    held: usize,
}

const FLUSH_BUCKET_BYTES: usize = 256 * 1024;
const FLUSH_TOTAL_BYTES: usize = 16 * 1024 * 1024;

impl Spill {
    pub fn create(dir: PathBuf, buckets: u32) -> std::io::Result<Spill> {
        std::fs::create_dir_all(&dir)?;
        Ok(Spill { dir, buckets, locks: (0..buckets).map(|_| Mutex::new(())).collect() })
    }

    pub fn path(dir: &Path, bucket: u32) -> PathBuf {
        dir.join(format!("bucket-{bucket:05}.spill"))
    }

    pub fn buffer(&self) -> SpillBuffer<'_> {
        SpillBuffer { spill: self, buffers: vec![Vec::new(); self.buckets as usize], held: 0 }
    }

    fn append(&self, bucket: u32, bytes: &[u8]) -> std::io::Result<()> {
        let _guard = self.locks[bucket as usize].lock().unwrap_or_else(|e| e.into_inner());
        let mut f = OpenOptions::new().create(true).append(true).open(Self::path(&self.dir, bucket))?;
        f.write_all(bytes)
    }
}

impl SpillBuffer<'_> {
    pub fn push(&mut self, r: &Record) -> std::io::Result<()> {
        let b = bucket_of(&r.fragment.pk, self.spill.buckets) as usize;
        let before = self.buffers[b].len();
        encode_record(&mut self.buffers[b], r);
        self.held += self.buffers[b].len() - before;
        if self.buffers[b].len() >= FLUSH_BUCKET_BYTES {
            self.held -= self.buffers[b].len();
            self.spill.append(b as u32, &self.buffers[b])?;
            self.buffers[b].clear();
        }
        if self.held >= FLUSH_TOTAL_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        for (b, buf) in self.buffers.iter_mut().enumerate() {
            if !buf.is_empty() {
                self.spill.append(b as u32, buf)?;
                buf.clear();
            }
        }
        self.held = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::attr::Item;

    #[test]
    fn row_order_holds_past_2_pow_28_rows_in_a_chunk() {
        // The old packing (row in 28 bits) made this row equal to the next chunk's first one.
        assert!(row_seq(0, 3, 1 << 28) < row_seq(0, 4, 0));
        assert!(row_seq(0, 3, (1 << 28) + 1) > row_seq(0, 3, 1 << 28));
        assert!(row_seq(0, u32::MAX, u64::MAX) < row_seq(1, 0, 0));
    }

    #[test]
    fn records_round_trip_and_keys_choose_stable_buckets() {
        let recs = vec![
            Record { seq: row_seq(1, 2, (1 << 28) + 5), source_key: "{\"id\":\"1\"}".into(), fragment: Fragment { pk: Attr::N("1".into()), sk: None, body: Body::Item(Item::from([("a".into(), Attr::S("x".into()))])) } },
            Record { seq: 8, source_key: "k".into(), fragment: Fragment { pk: Attr::S("c1|o1".into()), sk: Some(Attr::S("o1".into())), body: Body::Pivot("p1".into(), Attr::N("3".into())) } },
            Record { seq: 9, source_key: "k".into(), fragment: Fragment { pk: Attr::S("c1".into()), sk: None, body: Body::Collect(Some("p".into()), Attr::Null) } },
            Record { seq: 10, source_key: "k".into(), fragment: Fragment { pk: Attr::B(vec![1]), sk: None, body: Body::Collect(None, Attr::S("v".into())) } },
        ];
        let mut buf = Vec::new();
        recs.iter().for_each(|r| encode_record(&mut buf, r));
        let mut d = Decoder { buf: &buf };
        let back: Vec<Record> = (0..recs.len()).map(|_| decode_record(&mut d).unwrap()).collect();
        assert_eq!(back, recs);
        assert!(d.buf.is_empty());
        assert_eq!(bucket_of(&Attr::S("c1".into()), 64), bucket_of(&Attr::S("c1".into()), 64));
        let spread: std::collections::HashSet<u32> = (0..1000).map(|i| bucket_of(&Attr::N(i.to_string()), 16)).collect();
        assert_eq!(spread.len(), 16);
    }
}
