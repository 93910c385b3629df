//! The first half of grouping at scale: every mapped row (a `Fragment`) is appended to one of a
//! target table's bucket files on local disk, chosen by a hash of its item's key (partition key
//! and sort key), so that all rows of one item land in one bucket, and the items of one partition
//! key (a tenant, a big customer) spread over all buckets instead of filling one: a bucket fits in
//! memory when it is grouped whatever the skew (and `group` splits one that does not). Rows are
//! buffered per bucket and appended in blocks; each record is length-prefixed. A record carries
//! its place in the source (`row_seq`), not the row's key text: the few rows an error message
//! names are looked up in their chunks afterwards (`source_rows`), which halves what is spilled.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::value::attr::{encode_attr, encode_item, put_bytes, put_varint, CodecError, Decoder};
#[cfg(test)]
use crate::value::attr::Attr;
use crate::mapping::compile::{Body, Fragment};

/// A row's place in the source order: table, chunk, row index, each with room to spare (a chunk
/// may hold more than 2^28 rows), so later rows win and lists keep their order.
pub fn row_seq(table: usize, chunk: u32, row: u64) -> u128 {
    ((table as u128) << 96) | ((chunk as u128) << 64) | row as u128
}

/// A spilled row: its fragment and its place in the source (`row_seq`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u128,
    pub fragment: Fragment,
}

/// The table, chunk id and row index a `row_seq` packs.
pub fn seq_parts(seq: u128) -> (usize, u32, u64) {
    ((seq >> 96) as usize, (seq >> 64) as u32, seq as u64)
}

/// A spilled record read in place: slices of the spill buffer, nothing decoded.
pub struct RecordView<'a> {
    pub seq: u128,
    /// The encoded partition key and sort key, one slice: equal slices mean the same item.
    pub key: &'a [u8],
    pub pk: &'a [u8],
    pub sk: Option<&'a [u8]>,
    pub body: BodyView<'a>,
}

/// A fragment's body, encoded: an item (`encode_item`), or names and attributes (`encode_attr`)
/// each with the size DynamoDB counts for the attribute.
pub enum BodyView<'a> {
    Item(&'a [u8]),
    Pivot { name: &'a [u8], value: &'a [u8], size: usize },
    Collect { key: Option<&'a [u8]>, value: &'a [u8] },
}

/// The bucket of an item's key: FNV-1a over its encoded form (`record_key`), stable across runs
/// and builds.
pub fn bucket_of(f: &Fragment, buckets: u32) -> u32 {
    let mut body = Vec::with_capacity(64);
    let key = encode_body(&mut body, &Record { seq: 0, fragment: f.clone() });
    (fnv1a(&body[key]) % buckets as u64) as u32
}

/// The encoded item key (partition key, then the sort key's flag and value) of a record body:
/// the bytes a record's bucket is a hash of, and the `key` of `RecordView`.
pub fn record_key(body: &[u8]) -> Result<&[u8], CodecError> {
    let mut d = Decoder { buf: body };
    d.varint()?;
    d.varint()?;
    let start = d.buf;
    d.attr_bytes()?;
    if byte(&mut d)? == 1 {
        d.attr_bytes()?;
    }
    Ok(&start[..start.len() - d.buf.len()])
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// A word-at-a-time hash for the grouping's maps (keys are short encoded attributes, not chosen
/// by an attacker): a multiply-rotate over 8-byte words, then a finalizer so the top bits the
/// table probes by are mixed. FNV, byte by byte, and SipHash both showed in profiles.
#[derive(Default)]
pub struct WordHash(u64);

impl std::hash::Hasher for WordHash {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51afd7ed558ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ceb9fe1a85ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517cc1b727220a95;
        let mut h = self.0;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(K);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 59)).wrapping_mul(K);
        }
        self.0 = h;
    }
}

pub type WordBuild = std::hash::BuildHasherDefault<WordHash>;

pub fn encode_record(out: &mut Vec<u8>, r: &Record) {
    let mut body = Vec::new();
    encode_body(&mut body, r);
    put_bytes(out, &body);
}

/// A record's body (what `encode_record` length-prefixes) into `body`, cleared first; returns
/// where its encoded item key lies in it (the spill's bucket is a hash of those bytes).
fn encode_body(body: &mut Vec<u8>, r: &Record) -> std::ops::Range<usize> {
    body.clear();
    put_varint(body, (r.seq >> 64) as u64);
    put_varint(body, r.seq as u64);
    let key_start = body.len();
    encode_attr(body, &r.fragment.pk);
    match &r.fragment.sk {
        Some(sk) => {
            body.push(1);
            encode_attr(body, sk);
        }
        None => body.push(0),
    }
    let key = key_start..body.len();
    match &r.fragment.body {
        Body::Item(item) => {
            body.push(0);
            encode_item(body, item);
        }
        Body::Pivot(name, v) => {
            body.push(1);
            put_bytes(body, name.as_bytes());
            encode_attr(body, v);
        }
        Body::Collect(map_key, v) => {
            body.push(match map_key {
                Some(_) => 3,
                None => 2,
            });
            if let Some(k) = map_key {
                put_bytes(body, k.as_bytes());
            }
            encode_attr(body, v);
        }
    }
    key
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
    Ok(Record { seq, fragment: Fragment { pk, sk, body } })
}

/// Reads the next record in place (the grouping's hot loop: no allocation per record).
pub fn view_record<'a>(d: &mut Decoder<'a>) -> Result<RecordView<'a>, CodecError> {
    let mut d = Decoder { buf: d.bytes()? };
    let seq = (u128::from(d.varint()?) << 64) | u128::from(d.varint()?);
    let key_start = d.buf;
    let (pk, _) = d.attr_bytes()?;
    let sk = if byte(&mut d)? == 1 { Some(d.attr_bytes()?.0) } else { None };
    let key = &key_start[..key_start.len() - d.buf.len()];
    let body = match byte(&mut d)? {
        0 => BodyView::Item(d.buf),
        1 => {
            let name = d.bytes()?;
            let (value, size) = d.attr_bytes()?;
            BodyView::Pivot { name, value, size }
        }
        2 => BodyView::Collect { key: None, value: d.attr_bytes()?.0 },
        3 => {
            let key = Some(d.bytes()?);
            BodyView::Collect { key, value: d.attr_bytes()?.0 }
        }
        _ => return Err(CodecError("unknown record body")),
    };
    Ok(RecordView { seq, key, pk, sk, body })
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
    scratch: Vec<u8>,
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
        SpillBuffer { spill: self, buffers: vec![Vec::new(); self.buckets as usize], held: 0, scratch: Vec::with_capacity(256) }
    }

    fn append(&self, bucket: u32, bytes: &[u8]) -> std::io::Result<()> {
        let _guard = self.locks[bucket as usize].lock().unwrap_or_else(|e| e.into_inner());
        let mut f = OpenOptions::new().create(true).append(true).open(Self::path(&self.dir, bucket))?;
        f.write_all(bytes)
    }
}

impl SpillBuffer<'_> {
    pub fn push(&mut self, r: &Record) -> std::io::Result<()> {
        let key = encode_body(&mut self.scratch, r);
        let b = (fnv1a(&self.scratch[key]) % self.spill.buckets as u64) as usize;
        let before = self.buffers[b].len();
        put_bytes(&mut self.buffers[b], &self.scratch);
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
            Record { seq: row_seq(1, 2, (1 << 28) + 5), fragment: Fragment { pk: Attr::N("1".into()), sk: None, body: Body::Item(Item::from([("a".into(), Attr::S("x".into()))])) } },
            Record { seq: 8, fragment: Fragment { pk: Attr::S("c1|o1".into()), sk: Some(Attr::S("o1".into())), body: Body::Pivot("p1".into(), Attr::N("3".into())) } },
            Record { seq: 9, fragment: Fragment { pk: Attr::S("c1".into()), sk: None, body: Body::Collect(Some("p".into()), Attr::Null) } },
            Record { seq: 10, fragment: Fragment { pk: Attr::B(vec![1]), sk: None, body: Body::Collect(None, Attr::S("v".into())) } },
        ];
        let mut buf = Vec::new();
        recs.iter().for_each(|r| encode_record(&mut buf, r));
        let mut d = Decoder { buf: &buf };
        let back: Vec<Record> = (0..recs.len()).map(|_| decode_record(&mut d).unwrap()).collect();
        assert_eq!(back, recs);
        assert!(d.buf.is_empty());
        assert_eq!(bucket_of(&recs[1].fragment, 64), bucket_of(&recs[1].fragment.clone(), 64));
        // A spill buffer puts each record in its partition key's bucket.
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::create(dir.path().to_path_buf(), 7).unwrap();
        let mut buf = spill.buffer();
        recs.iter().for_each(|r| buf.push(r).unwrap());
        buf.flush().unwrap();
        for r in &recs {
            let data = std::fs::read(Spill::path(dir.path(), bucket_of(&r.fragment, 7))).unwrap();
            let mut d = Decoder { buf: &data };
            let found = std::iter::from_fn(|| (!d.buf.is_empty()).then(|| decode_record(&mut d).unwrap())).any(|x| x == *r);
            assert!(found, "{r:?} is not in its bucket");
        }
        let spread: std::collections::HashSet<u32> = (0..1000).map(|i| bucket_of(&Fragment { pk: Attr::N(i.to_string()), sk: None, body: Body::Collect(None, Attr::Null) }, 16)).collect();
        assert_eq!(spread.len(), 16);
        // One partition key's items (one big customer) spread over the buckets too.
        let one_pk = |i: u32| Fragment { pk: Attr::S("big".into()), sk: Some(Attr::N(i.to_string())), body: Body::Collect(None, Attr::Null) };
        let spread: std::collections::HashSet<u32> = (0..1000).map(|i| bucket_of(&one_pk(i), 16)).collect();
        assert_eq!(spread.len(), 16);
        let mut body = Vec::new();
        let key = encode_body(&mut body, &Record { seq: 5, fragment: one_pk(3) });
        assert_eq!(record_key(&body).unwrap(), &body[key]);
    }
}
