//! The second half of grouping at scale: one bucket's spilled rows are folded into items by
//! their new key (whole rows for record mappings, pivoted or collected attributes for grouping
//! rules), checked (duplicate keys, colliding pivots, DynamoDB's 400 KB item limit) and written
//! to the bucket's item file, ordered so consecutive items have different partition keys.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::spill::{view_record, BodyView, RecordView, Spill, WordBuild};
use crate::mapping::compile::TargetTable;
use crate::mapping::dms::CollectAs;
use crate::value::attr::{encode_attr, put_bytes, put_varint, size_wcu, Attr, CodecError, Decoder, Item, MAX_ITEM_BYTES};

/// What to do when two source rows map to the same DynamoDB key (or a pivot name repeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnDuplicate {
    /// Stop before anything is written and list examples.
    #[default]
    Error,
    /// Keep the row that comes last in source key order.
    LastWins,
}

crate::choices!(OnDuplicate { "error" => OnDuplicate::Error, "last-wins" => OnDuplicate::LastWins });

/// Conflict examples kept per bucket.
const EXAMPLES: usize = 5;
/// Source rows an oversize item's reject names.
const SOURCE_EXAMPLES: usize = 3;
/// The end of a linked list of records or items.
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketStats {
    pub id: u32,
    pub items: u64,
    pub wcu: u64,
    pub bytes: u64,
    pub max_item_bytes: u64,
    pub written: bool,
    /// Of a bucket being written: its first batches written without a gap (a rerun skips them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batches_written: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Two or more rows claiming one item or attribute. The rows are named by their place in the
/// source (`row_seq`); `render` turns them into key text once they are looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The item's key, as `pk=… / sk=…`.
    pub key: String,
    pub kind: ConflictKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConflictKind {
    /// The item's first row and a later one map to the same key.
    Rows(u128, u128),
    /// A row's pivoted name is a key attribute's name.
    PivotIsKey(String, u128),
    /// A pivoted name comes from more than one row (this one among them).
    PivotTwice(String, u128),
    /// A collected map key comes from more than one row.
    CollectTwice(String),
}

impl Conflict {
    pub fn rows(&self) -> Vec<u128> {
        match &self.kind {
            ConflictKind::Rows(a, b) => vec![*a, *b],
            ConflictKind::PivotIsKey(_, r) | ConflictKind::PivotTwice(_, r) => vec![*r],
            ConflictKind::CollectTwice(_) => Vec::new(),
        }
    }

    pub fn render(&self, row: &dyn Fn(u128) -> String) -> String {
        let k = &self.key;
        match &self.kind {
            ConflictKind::Rows(a, b) => format!("{k}: source rows {} and {}", row(*a), row(*b)),
            ConflictKind::PivotIsKey(name, r) => format!("{k}: pivoted name {name:?} (row {}) collides with a key attribute", row(*r)),
            ConflictKind::PivotTwice(name, r) => format!("{k}: pivoted name {name:?} comes from more than one row (e.g. {})", row(*r)),
            ConflictKind::CollectTwice(name) => format!("{k}: collected key {name:?} comes from more than one row"),
        }
    }
}

/// An item over DynamoDB's 400 KB limit: not written, its source rows counted as rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Oversize {
    pub key: String,
    /// The first few of its rows (`row_seq`).
    pub source_rows: Vec<u128>,
    pub rows: u64,
    pub size: usize,
    /// Too large to hold for grouping: `size` is its records' bytes, not the item's.
    pub unfolded: bool,
}

impl Oversize {
    pub fn reason(&self) -> String {
        if self.unfolded {
            return format!(
                "the item's {} source rows hold {} bytes, more than the grouping memory of a bucket (--memory-mb): it is not grouped, as no item from them can be under DynamoDB's {MAX_ITEM_BYTES}-byte (400 KB) item limit unless its rows repeat attributes (--on-duplicate last-wins); its rows are not written",
                self.rows, self.size
            );
        }
        format!("item is {} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte (400 KB) item limit; its {} source rows are not written", self.size, self.rows)
    }
}

#[derive(Debug, Default)]
pub struct Grouped {
    pub stats: BucketStats,
    pub oversize: Vec<Oversize>,
    /// Source rows of the oversize items.
    pub rejected_rows: u64,
    pub conflicts: u64,
    pub examples: Vec<Conflict>,
}

pub fn items_path(dir: &Path, bucket: u32) -> std::path::PathBuf {
    dir.join(format!("bucket-{bucket:05}.items"))
}

fn key_text(t: &TargetTable, pk: &[u8], sk: Option<&[u8]>) -> String {
    let show = |b: &[u8]| Decoder { buf: b }.attr().map(|a| a.display()).unwrap_or_else(|e| format!("<{e}>"));
    match (&t.sort_key, sk) {
        (Some(d), Some(v)) => format!("{}={} / {}={}", t.partition_key.name, show(pk), d.name, show(v)),
        _ => format!("{}={}", t.partition_key.name, show(pk)),
    }
}

/// One item's attribute while it is folded: name, encoded value, the size DynamoDB counts.
type Entry3<'a> = (&'a [u8], Cow<'a, [u8]>, usize);

/// A collected row: its place in the source, its map key, its encoded value.
type Collected<'a> = (u128, Option<&'a [u8]>, &'a [u8]);

/// Folds one key's records into an item; reused across the bucket's items.
struct Folder<'a> {
    target: &'a TargetTable,
    collect: Option<(&'a str, CollectAs)>,
    on_duplicate: OnDuplicate,
    pivots: Vec<(&'a [u8], &'a [u8], usize, u128)>,
    collected: Vec<Collected<'a>>,
    entries: Vec<Entry3<'a>>,
    /// The entries kept, in name order (reused per item).
    order: Vec<usize>,
    /// The item being folded has given an example already.
    shown: std::cell::Cell<bool>,
}

impl<'a> Folder<'a> {
    /// Counts a conflict; the first of each item becomes an example, so that the examples show
    /// different keys.
    fn conflict(&self, out: &mut Grouped, first: &RecordView<'a>, kind: ConflictKind) {
        out.conflicts += 1;
        if out.examples.len() < EXAMPLES && !self.shown.replace(true) {
            out.examples.push(Conflict { key: key_text(self.target, first.pk, first.sk), kind });
        }
    }

    fn is_key_name(&self, name: &[u8]) -> bool {
        name == self.target.partition_key.name.as_bytes() || self.target.sort_key.as_ref().is_some_and(|k| name == k.name.as_bytes())
    }

    /// Folds the records `members` (arrival order) into `item` (encoded); returns its size, or
    /// None when it is over the limit (recorded in `out.oversize`).
    fn fold(&mut self, records: &[RecordView<'a>], members: &[u32], out: &mut Grouped, item: &mut Vec<u8>) -> Result<Option<usize>, CodecError> {
        let first = &records[members[0] as usize];
        let (mut rows, mut sources) = (0u64, Vec::new());
        let mut base: Option<(u128, &'a [u8])> = None;
        self.pivots.clear();
        self.collected.clear();
        self.shown.set(false);
        for &m in members {
            let r = &records[m as usize];
            rows += 1;
            if sources.len() < SOURCE_EXAMPLES {
                sources.push(r.seq);
            }
            match r.body {
                BodyView::Item(bytes) => match base {
                    None => base = Some((r.seq, bytes)),
                    Some((seq, _)) => {
                        self.conflict(out, first, ConflictKind::Rows(first.seq, r.seq));
                        rows -= 1;
                        if self.on_duplicate == OnDuplicate::LastWins && r.seq > seq {
                            base = Some((r.seq, bytes));
                        }
                    }
                },
                BodyView::Pivot { name, value, size } => {
                    if self.is_key_name(name) {
                        self.conflict(out, first, ConflictKind::PivotIsKey(String::from_utf8_lossy(name).into_owned(), r.seq));
                        rows -= 1;
                        continue;
                    }
                    self.pivots.push((name, value, size, r.seq));
                }
                BodyView::Collect { key, value } => self.collected.push((r.seq, key, value)),
            }
        }
        // A record mapping's item, as it was spilled.
        if let (Some((_, bytes)), true, true, false) = (base, self.pivots.is_empty(), self.collected.is_empty(), self.target.grouped) {
            let size = item_entries(bytes, |_, _, _| ())?;
            return Ok(finish(self.target, out, first, &sources, rows, size, || {
                item.clear();
                item.extend_from_slice(bytes);
            }));
        }
        self.entries.clear();
        if let Some((_, bytes)) = base {
            let entries = &mut self.entries;
            item_entries(bytes, |name, value, size| entries.push((name, Cow::Borrowed(value), size)))?;
        }
        let from_item = self.entries.len();
        // Pivots by name (stable: arrival order within a name); the first of a name, or the
        // last in source order with last-wins, is kept.
        self.pivots.sort_by(|a, b| a.0.cmp(b.0));
        let mut i = 0;
        while i < self.pivots.len() {
            let name = self.pivots[i].0;
            let j = i + self.pivots[i..].iter().take_while(|p| p.0 == name).count();
            let mut keep = self.pivots[i];
            for &p in &self.pivots[i + 1..j] {
                self.conflict(out, first, ConflictKind::PivotTwice(String::from_utf8_lossy(name).into_owned(), p.3));
                rows -= 1;
                if self.on_duplicate == OnDuplicate::LastWins && p.3 > keep.3 {
                    keep = p;
                }
            }
            match self.entries[..from_item].binary_search_by(|e| e.0.cmp(name)) {
                Ok(at) => {
                    self.conflict(out, first, ConflictKind::PivotTwice(String::from_utf8_lossy(name).into_owned(), keep.3));
                    rows -= 1;
                    if self.on_duplicate == OnDuplicate::LastWins {
                        self.entries[at] = (name, Cow::Borrowed(keep.1), keep.2);
                    }
                }
                Err(_) => self.entries.push((name, Cow::Borrowed(keep.1), keep.2)),
            }
            i = j;
        }
        if self.target.grouped {
            if let Some((attr, as_)) = self.collect {
                if let Some(v) = self.collected_value(out, first, as_)? {
                    let mut bytes = Vec::new();
                    encode_attr(&mut bytes, &v);
                    self.entries.push((attr.as_bytes(), Cow::Owned(bytes), v.size()));
                }
            }
            let pk = Decoder { buf: first.pk }.attr_bytes()?.1;
            self.entries.push((self.target.partition_key.name.as_bytes(), Cow::Borrowed(first.pk), pk));
            if let (Some(d), Some(sk)) = (&self.target.sort_key, first.sk) {
                let size = Decoder { buf: sk }.attr_bytes()?.1;
                self.entries.push((d.name.as_bytes(), Cow::Borrowed(sk), size));
            }
        }
        // One value per name, the one added last (key attributes over everything).
        let (entries, order) = (&self.entries, &mut self.order);
        order.clear();
        order.extend(0..entries.len());
        order.sort_by(|&a, &b| entries[a].0.cmp(entries[b].0).then(b.cmp(&a)));
        order.dedup_by(|b, a| entries[*a].0 == entries[*b].0);
        let size = order.iter().map(|&e| entries[e].0.len() + entries[e].2).sum();
        Ok(finish(self.target, out, first, &sources, rows, size, || {
            item.clear();
            put_varint(item, order.len() as u64);
            for &e in order.iter() {
                put_bytes(item, entries[e].0);
                item.extend_from_slice(&entries[e].1);
            }
        }))
    }

    fn collected_value(&mut self, out: &mut Grouped, first: &RecordView<'a>, as_: CollectAs) -> Result<Option<Attr>, CodecError> {
        if self.collected.is_empty() {
            return Ok(None);
        }
        self.collected.sort_by_key(|c| c.0);
        let value = |b: &[u8]| Decoder { buf: b }.attr();
        Ok(Some(match as_ {
            CollectAs::List => Attr::L(self.collected.iter().map(|c| value(c.2)).collect::<Result<_, _>>()?),
            CollectAs::StringSet => {
                let mut set: Vec<String> = self.collected.iter().map(|c| value(c.2).map(|a| a.display())).collect::<Result<_, _>>()?;
                set.sort();
                set.dedup();
                Attr::SS(set)
            }
            CollectAs::Map => {
                let mut m = BTreeMap::new();
                for &(_, k, v) in &self.collected {
                    let k = k.map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                    if m.contains_key(&k) {
                        self.conflict(out, first, ConflictKind::CollectTwice(k.clone()));
                        if self.on_duplicate == OnDuplicate::Error {
                            continue;
                        }
                    }
                    m.insert(k, value(v)?);
                }
                Attr::M(m)
            }
        }))
    }
}

/// Records an item over the limit, or encodes it.
fn finish(target: &TargetTable, out: &mut Grouped, first: &RecordView, sources: &[u128], rows: u64, size: usize, encode: impl FnOnce()) -> Option<usize> {
    if size > MAX_ITEM_BYTES {
        out.oversize.push(Oversize { key: key_text(target, first.pk, first.sk), source_rows: sources.to_vec(), rows, size, unfolded: false });
        out.rejected_rows += rows;
        return None;
    }
    encode();
    Some(size)
}

/// Walks an encoded item's attributes (in name order, as `encode_item` writes them); returns
/// the item's size.
fn item_entries<'a>(bytes: &'a [u8], mut each: impl FnMut(&'a [u8], &'a [u8], usize)) -> Result<usize, CodecError> {
    let mut d = Decoder { buf: bytes };
    let mut total = 0;
    for _ in 0..d.varint()? {
        let name = d.bytes()?;
        let (value, size) = d.attr_bytes()?;
        total += name.len() + size;
        each(name, value, size);
    }
    Ok(total)
}

/// Entries (numbered 0, 1, … as they are pushed) in lists by key, the lists in first-seen order
/// of their keys and each list linked through `next`: a bucket's records by item, and its items
/// by partition key, with no allocation per list.
struct Chains<'a> {
    index: HashMap<&'a [u8], u32, WordBuild>,
    /// Each list's first and last entry.
    lists: Vec<(u32, u32)>,
    /// The entry after each entry in its list, or NONE.
    next: Vec<u32>,
}

impl<'a> Chains<'a> {
    fn with_capacity(n: usize) -> Chains<'a> {
        Chains { index: HashMap::with_capacity_and_hasher(n, Default::default()), lists: Vec::new(), next: Vec::with_capacity(n) }
    }

    /// Appends the next entry to the list of `key`.
    fn push(&mut self, key: &'a [u8]) {
        let i = self.next.len() as u32;
        self.next.push(NONE);
        match self.index.entry(key) {
            Entry::Occupied(e) => {
                let l = &mut self.lists[*e.get() as usize];
                self.next[l.1 as usize] = i;
                l.1 = i;
            }
            Entry::Vacant(e) => {
                e.insert(self.lists.len() as u32);
                self.lists.push((i, i));
            }
        }
    }

    /// The entries of the list starting at `head`, in order.
    fn walk(&self, head: u32) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(Some(head), |&e| Some(self.next[e as usize]).filter(|&n| n != NONE))
    }
}

/// Memory grouping takes per byte of spill file it holds: the file, a view of each record
/// (~100 bytes for records of ~30), the maps linking them, the encoded items.
pub const GROUP_EXPANSION: u64 = 6;
/// Parts a bucket too large for its memory is split into at most, per level.
const MAX_PARTS: u64 = 1024;

/// Groups one bucket: reads `<spill_dir>/bucket-N.spill`, writes `<items_dir>/bucket-N.items`,
/// holding at most about `budget` bytes. A spill file that would take more is split first (by
/// another hash of the item key, streamed, so one item's records stay together) and its parts
/// grouped one after the other into the same item file; an item whose records alone exceed
/// the budget (hundreds of times DynamoDB's 400 KB) is rejected as oversize without being held.
pub fn group_bucket(
    target: &TargetTable,
    collect: Option<(&str, CollectAs)>,
    on_duplicate: OnDuplicate,
    spill_dir: &Path,
    items_dir: &Path,
    bucket: u32,
    budget: u64,
) -> Result<Grouped, String> {
    let spill_path = Spill::path(spill_dir, bucket);
    let mut out = Grouped { stats: BucketStats { id: bucket, ..Default::default() }, ..Default::default() };
    let path = items_path(items_dir, bucket);
    let mut w = ItemsWriter::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let g = Grouping { target, collect, on_duplicate, budget };
    g.file(&spill_path, 0, &mut out, &mut w)?;
    w.finish().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

/// What grouping a bucket needs at every level of splitting.
struct Grouping<'t> {
    target: &'t TargetTable,
    collect: Option<(&'t str, CollectAs)>,
    on_duplicate: OnDuplicate,
    budget: u64,
}

impl Grouping<'_> {
    /// Groups one spill file (a bucket, or a part of one) into `w`.
    fn file(&self, path: &Path, depth: u32, out: &mut Grouped, w: &mut ItemsWriter) -> Result<(), String> {
        let size = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if size.saturating_mul(GROUP_EXPANSION) <= self.budget || depth >= 4 {
            let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            return self.data(&data, path, out, w);
        }
        let parts = (size * GROUP_EXPANSION).div_ceil(self.budget.max(1)).saturating_mul(2).clamp(2, MAX_PARTS);
        let (files, one_key) = split(path, depth, parts).map_err(|e| format!("{}: {e}", path.display()))?;
        for f in &files {
            if one_key.is_none() {
                self.file(f, depth + 1, out, w)?;
            }
            let _ = std::fs::remove_file(f);
        }
        if let Some(oversize) = one_key {
            // One item's records, more than the memory for a bucket: no item of that size can
            // be under 400 KB (unless its rows repeat attributes under last-wins).
            out.rejected_rows += oversize.rows;
            let key = key_text(self.target, oversize.pk.as_deref().unwrap_or_default(), oversize.sk.as_deref());
            out.oversize.push(Oversize { key, ..Oversize::from(oversize) });
        }
        Ok(())
    }

    /// Groups records held in memory: each item's records are linked in arrival order
    /// (`Chains`), read in place, so nothing is allocated per record.
    fn data(&self, data: &[u8], path: &Path, out: &mut Grouped, w: &mut ItemsWriter) -> Result<(), String> {
        let bad = |e: CodecError| format!("{}: {e}", path.display());
        // Sized up front (a pass over the length prefixes): growing them showed as rehashing and
        // copying in profiles.
        let count = {
            let (mut d, mut n) = (Decoder { buf: data }, 0usize);
            while !d.buf.is_empty() {
                d.bytes().map_err(bad)?;
                n += 1;
            }
            n
        };
        // Records, and for each item (in first-seen order) its records.
        let mut records: Vec<RecordView> = Vec::with_capacity(count);
        let mut items = Chains::with_capacity(count);
        let mut d = Decoder { buf: data };
        while !d.buf.is_empty() {
            let r = view_record(&mut d).map_err(bad)?;
            items.push(r.key);
            records.push(r);
        }
        let (target, collect, on_duplicate) = (self.target, self.collect, self.on_duplicate);
        let mut folder = Folder { target, collect, on_duplicate, pivots: Vec::new(), collected: Vec::new(), entries: Vec::new(), order: Vec::new(), shown: Default::default() };
        // Encoded items, and for each partition key (in first-seen order) its items.
        let mut arena: Vec<u8> = Vec::with_capacity(data.len());
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(items.lists.len());
        let mut by_pk = Chains::with_capacity(items.lists.len());
        let (mut members, mut item) = (Vec::new(), Vec::new());
        for &(head, _) in &items.lists {
            members.clear();
            members.extend(items.walk(head));
            let Some(size) = folder.fold(&records, &members, out, &mut item).map_err(bad)? else { continue };
            out.stats.items += 1;
            out.stats.wcu += size_wcu(size);
            out.stats.bytes += size as u64;
            out.stats.max_item_bytes = out.stats.max_item_bytes.max(size as u64);
            spans.push((arena.len(), arena.len() + item.len()));
            arena.extend_from_slice(&item);
            by_pk.push(records[head as usize].pk);
        }
        // Round robin: one item of each partition key, then the next round.
        let mut cursors: Vec<u32> = by_pk.lists.iter().map(|l| l.0).collect();
        while !cursors.is_empty() {
            for c in cursors.iter_mut() {
                let (a, b) = spans[*c as usize];
                w.push(&arena[a..b]).map_err(|e| format!("{}: {e}", w.path.display()))?;
                *c = by_pk.next[*c as usize];
            }
            cursors.retain(|&c| c != NONE);
        }
        Ok(())
    }
}

/// One item's records met while splitting: how many, the first few, their bytes, its key.
#[derive(Debug, Default)]
struct OneKey {
    pk: Option<Vec<u8>>,
    sk: Option<Vec<u8>>,
    rows: u64,
    bytes: u64,
    source_rows: Vec<u128>,
}

impl From<OneKey> for Oversize {
    fn from(k: OneKey) -> Oversize {
        Oversize { key: String::new(), source_rows: k.source_rows, rows: k.rows, size: k.bytes as usize, unfolded: true }
    }
}

/// Splits a spill file into `parts` files beside it by a hash of each record's item key salted
/// by `depth`, streamed with a small buffer per part. When every record has one item key, the
/// parts are not kept and that key's records are described instead.
fn split(path: &Path, depth: u32, parts: u64) -> std::io::Result<(Vec<std::path::PathBuf>, Option<OneKey>)> {
    use std::io::{BufRead, BufReader, BufWriter, Read, Write};
    let files: Vec<std::path::PathBuf> = (0..parts).map(|i| path.with_extension(format!("spill.{depth}.{i}"))).collect();
    let mut writers = files.iter().map(|f| std::fs::File::create(f).map(|f| BufWriter::with_capacity(64 << 10, f))).collect::<std::io::Result<Vec<_>>>()?;
    let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let (mut body, mut framed) = (Vec::new(), Vec::new());
    let mut first_key: Option<Vec<u8>> = None;
    let mut one = OneKey::default();
    let mut same = true;
    let bad = |e: CodecError| std::io::Error::other(e.to_string());
    let mut salted = format!("split{depth}:").into_bytes();
    let salt = salted.len();
    while !r.fill_buf()?.is_empty() {
        // A length prefix (LEB128), then the record's body.
        let (mut len, mut shift) = (0u64, 0);
        loop {
            let mut b = [0u8];
            r.read_exact(&mut b)?;
            len |= u64::from(b[0] & 0x7f) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        body.resize(len as usize, 0);
        r.read_exact(&mut body)?;
        let key = super::spill::record_key(&body).map_err(bad)?;
        match &first_key {
            None => first_key = Some(key.to_vec()),
            Some(k) => same &= k.as_slice() == key,
        }
        if same {
            one.rows += 1;
            one.bytes += len;
            if one.source_rows.len() < SOURCE_EXAMPLES {
                let mut d = Decoder { buf: &body };
                let seq = (u128::from(d.varint().map_err(bad)?) << 64) | u128::from(d.varint().map_err(bad)?);
                one.source_rows.push(seq);
            }
        }
        salted.truncate(salt);
        salted.extend_from_slice(key);
        let part = (super::spill::fnv1a(&salted) % parts) as usize;
        framed.clear();
        put_bytes(&mut framed, &body);
        writers[part].write_all(&framed)?;
    }
    for w in writers {
        w.into_inner().map_err(|e| e.into_error())?;
    }
    if same {
        if let Some(k) = first_key {
            let mut d = Decoder { buf: &k };
            let pk = d.attr_bytes().map_err(bad)?.0.to_vec();
            let sk = if d.buf.first() == Some(&1) {
                d.buf = &d.buf[1..];
                Some(d.attr_bytes().map_err(bad)?.0.to_vec())
            } else {
                None
            };
            one.pk = Some(pk);
            one.sk = sk;
            return Ok((files, Some(one)));
        }
    }
    Ok((files, None))
}

/// An item file written as it is grouped: each item length-prefixed and hashed as it comes, the
/// SHA-256 trailer at the end; durable before it takes its name.
struct ItemsWriter {
    path: std::path::PathBuf,
    partial: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    framed: Vec<u8>,
}

impl ItemsWriter {
    fn create(path: &Path) -> std::io::Result<ItemsWriter> {
        let partial = path.with_extension("items.partial");
        let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial)?);
        Ok(ItemsWriter { path: path.to_path_buf(), partial, file, hasher: Sha256::new(), framed: Vec::new() })
    }

    fn push(&mut self, item: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.framed.clear();
        put_bytes(&mut self.framed, item);
        self.hasher.update(&self.framed);
        self.file.write_all(&self.framed)
    }

    /// Durable before the state says the run is grouped: a power loss must not leave a short
    /// item file that a resumed import would take for the whole bucket.
    fn finish(self) -> std::io::Result<()> {
        use std::io::Write;
        let mut file = self.file;
        file.write_all(TRAILER)?;
        file.write_all(&self.hasher.finalize())?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&self.partial, &self.path)?;
        std::fs::File::open(self.path.parent().expect("in a folder"))?.sync_all()
    }
}

/// Writes items round-robin across partition keys: one item of each key, then the next round
/// (`Item`s grouped by partition key; the grouping builds the order itself and calls `write_items`).
#[cfg(test)]
pub(crate) fn write_interleaved(dir: &Path, bucket: u32, mut lists: Vec<Vec<Item>>) -> std::io::Result<()> {
    let mut encoded = Vec::new();
    lists.iter_mut().for_each(|l| l.reverse());
    while !lists.is_empty() {
        for l in lists.iter_mut() {
            if let Some(item) = l.pop() {
                let mut enc = Vec::new();
                crate::value::attr::encode_item(&mut enc, &item);
                encoded.push(enc);
            }
        }
        lists.retain(|l| !l.is_empty());
    }
    write_items(dir, bucket, encoded.iter().map(Vec::as_slice))
}

/// Writes a bucket's item file from encoded items (`encode_item`), in the order given, with
/// its checksum trailer; durable before it takes its name.
#[cfg(test)]
fn write_items<'b>(dir: &Path, bucket: u32, items: impl Iterator<Item = &'b [u8]>) -> std::io::Result<()> {
    let mut w = ItemsWriter::create(&items_path(dir, bucket))?;
    for item in items {
        w.push(item)?;
    }
    w.finish()
}

/// Marks the checksum at the end of an item file.
const TRAILER: &[u8] = b"M2D-SHA256";

/// Reads a bucket's item file, checking it against its SHA-256 trailer.
pub fn read_items(dir: &Path, bucket: u32) -> Result<Vec<Item>, String> {
    let path = items_path(dir, bucket);
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body_len = data.len().checked_sub(TRAILER.len() + 32).filter(|&n| &data[n..n + TRAILER.len()] == TRAILER);
    let Some(n) = body_len else {
        return Err(format!("{}: no checksum trailer (truncated or damaged): run the import with --restart to group again", path.display()));
    };
    if Sha256::digest(&data[..n])[..] != data[n + TRAILER.len()..] {
        return Err(format!("{}: does not match its SHA-256 (damaged since it was grouped): run the import with --restart to group again", path.display()));
    }
    let mut d = Decoder { buf: &data[..n] };
    let mut items = Vec::new();
    while !d.buf.is_empty() {
        let bytes = d.bytes().map_err(|e| format!("{}: {e}", path.display()))?;
        items.push(Decoder { buf: bytes }.item().map_err(|e| format!("{}: {e}", path.display()))?);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::compile::{Body, Fragment, KeyDef, KeyType};
    use crate::transform::spill::{Record, Spill};

    fn target(grouped: bool) -> TargetTable {
        TargetTable {
            name: "t".into(),
            partition_key: KeyDef { name: "pk".into(), ty: KeyType::S },
            sort_key: Some(KeyDef { name: "sk".into(), ty: KeyType::S }),
            grouped,
        }
    }

    fn rec(seq: u128, pk: &str, sk: &str, body: Body) -> Record {
        Record { seq, fragment: Fragment { pk: Attr::S(pk.into()), sk: Some(Attr::S(sk.into())), body } }
    }

    fn spill(dir: &Path, recs: &[Record]) {
        let s = Spill::create(dir.to_path_buf(), 1).unwrap();
        let mut b = s.buffer();
        recs.iter().for_each(|r| b.push(r).unwrap());
        b.flush().unwrap();
    }

    #[test]
    fn pivots_fold_into_one_item_and_collisions_are_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let piv = |n: &str, q: &str| Body::Pivot(n.into(), Attr::N(q.into()));
        spill(dir.path(), &[rec(1, "c1", "o1", piv("p1", "2")), rec(2, "c1", "o1", piv("p2", "5")), rec(3, "c2", "o1", piv("p1", "1")), rec(4, "c2", "o1", piv("p1", "9")), rec(5, "c3", "o1", piv("pk", "1"))]);
        let g = group_bucket(&target(true), None, OnDuplicate::Error, dir.path(), dir.path(), 0, 1 << 30).unwrap();
        assert_eq!(g.conflicts, 2, "{:?}", g.examples);
        let shown: Vec<String> = g.examples.iter().map(|e| e.render(&|seq| format!("row{seq}"))).collect();
        assert!(shown.iter().any(|e| e.contains("pk=c2") && e.contains("\"p1\"") && e.contains("row4")), "{shown:?}");
        assert!(shown.iter().any(|e| e.contains("collides with a key attribute") && e.contains("row5")), "{shown:?}");
        let items = read_items(dir.path(), 0).unwrap();
        let c1 = items.iter().find(|i| i["pk"] == Attr::S("c1".into())).unwrap();
        assert_eq!(c1.len(), 4);
        assert_eq!(c1["p2"], Attr::N("5".into()));
        let g = group_bucket(&target(true), None, OnDuplicate::LastWins, dir.path(), dir.path(), 0, 1 << 30).unwrap();
        assert_eq!(g.stats.items, 3);
        let items = read_items(dir.path(), 0).unwrap();
        assert_eq!(items.iter().find(|i| i["pk"] == Attr::S("c2".into())).unwrap()["p1"], Attr::N("9".into()));
    }

    #[test]
    fn oversize_items_are_rejected_and_items_interleave_partition_keys() {
        let dir = tempfile::tempdir().unwrap();
        let item = |pk: &str, sk: &str, big: usize| Body::Item(Item::from([("pk".into(), Attr::S(pk.into())), ("sk".into(), Attr::S(sk.into())), ("v".into(), Attr::B(vec![0; big]))]));
        let mut recs = Vec::new();
        for i in 0..6 {
            recs.push(rec(i, "a", &format!("{i}"), item("a", &format!("{i}"), 1)));
        }
        recs.push(rec(10, "b", "0", item("b", "0", 1)));
        recs.push(rec(11, "b", "1", item("b", "1", 1)));
        recs.push(rec(12, "c", "0", item("c", "0", MAX_ITEM_BYTES)));
        spill(dir.path(), &recs);
        let g = group_bucket(&target(false), None, OnDuplicate::Error, dir.path(), dir.path(), 0, 1 << 30).unwrap();
        assert_eq!(g.oversize.len(), 1);
        assert!(g.oversize[0].reason().contains("400 KB"));
        assert_eq!(g.oversize[0].source_rows, vec![12]);
        let pks: Vec<String> = read_items(dir.path(), 0).unwrap().iter().map(|i| i["pk"].display()).collect();
        // One byte changed: refused, naming the file.
        let path = items_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(read_items(dir.path(), 0).unwrap_err().contains("bucket-00000.items: does not match its SHA-256"));
        assert_eq!(pks.len(), 8);
        assert_ne!(pks[0], pks[1], "{pks:?}");
        assert_ne!(pks[2], pks[3], "{pks:?}");
    }

    /// A small deterministic generator (the tests need no crate for it).
    fn lcg(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn grouping_in_place_agrees_with_folding_decoded_items() {
        // Rows arrive out of source order (as parallel chunk workers spill them), with repeated
        // pivot names, repeated record keys and collected lists; last-wins makes every outcome
        // depend on source order only, so a plain fold over decoded rows is the reference.
        let dir = tempfile::tempdir().unwrap();
        let mut rng = 7u64;
        let mut seqs: Vec<u128> = (0..3000).collect();
        for i in (1..seqs.len()).rev() {
            seqs.swap(i, lcg(&mut rng) as usize % (i + 1));
        }
        let keys = |rng: &mut u64| (format!("c{}", lcg(rng) % 40), format!("o{}", lcg(rng) % 3));
        let mut rng2 = 11u64;
        let pivots: Vec<Record> = seqs.iter().map(|&seq| {
            let (pk, sk) = keys(&mut rng2);
            rec(seq, &pk, &sk, Body::Pivot(format!("p{}", lcg(&mut rng2) % 6), Attr::N(seq.to_string())))
        }).collect();
        let items: Vec<Record> = seqs.iter().map(|&seq| {
            let (pk, sk) = keys(&mut rng2);
            let item = Item::from([("pk".into(), Attr::S(pk.clone())), ("sk".into(), Attr::S(sk.clone())), ("v".into(), Attr::N(seq.to_string())), ("b".into(), Attr::B(vec![seq as u8; 3]))]);
            rec(seq, &pk, &sk, Body::Item(item))
        }).collect();
        let lists: Vec<Record> = seqs.iter().map(|&seq| {
            let (pk, sk) = keys(&mut rng2);
            rec(seq, &pk, &sk, Body::Collect(None, Attr::N(seq.to_string())))
        }).collect();
        for (recs, grouped, collect) in [(&pivots, true, None), (&items, false, None), (&lists, true, Some(("all", CollectAs::List)))] {
            let mut want: BTreeMap<(String, String), Item> = BTreeMap::new();
            let mut sorted = recs.clone();
            sorted.sort_by_key(|r| r.seq);
            let mut lists: BTreeMap<(String, String), Vec<Attr>> = BTreeMap::new();
            for r in &sorted {
                let k = (r.fragment.pk.display(), r.fragment.sk.as_ref().unwrap().display());
                let item = want.entry(k.clone()).or_default();
                match &r.fragment.body {
                    Body::Item(i) => *item = i.clone(),
                    Body::Pivot(n, v) => drop(item.insert(n.clone(), v.clone())),
                    Body::Collect(_, v) => lists.entry(k).or_default().push(v.clone()),
                }
            }
            for ((pk, sk), item) in want.iter_mut() {
                if grouped {
                    item.insert("pk".into(), Attr::S(pk.clone()));
                    item.insert("sk".into(), Attr::S(sk.clone()));
                }
                if let Some(l) = lists.remove(&(pk.clone(), sk.clone())) {
                    item.insert("all".into(), Attr::L(l));
                }
            }
            spill(dir.path(), recs);
            let g = group_bucket(&target(grouped), collect, OnDuplicate::LastWins, dir.path(), dir.path(), 0, 1 << 30).unwrap();
            std::fs::remove_file(Spill::path(dir.path(), 0)).unwrap();
            let got = read_items(dir.path(), 0).unwrap();
            assert_eq!(g.stats.items as usize, want.len());
            assert_eq!(g.stats.bytes, want.values().map(|i| crate::value::attr::item_size(i) as u64).sum::<u64>());
            let mut got: Vec<Item> = got;
            got.sort_by_key(|i| (i["pk"].display(), i["sk"].display()));
            assert_eq!(got, want.into_values().collect::<Vec<_>>());
        }
    }

    /// Regression: a bucket was read whole into memory however large, so one big customer's rows
    /// (all in one bucket, chosen by partition key) took as much memory as they were large.
    #[test]
    fn a_bucket_larger_than_its_memory_is_grouped_in_parts_into_the_same_items() {
        let recs: Vec<Record> = (0..3000u128)
            .map(|i| rec(i, "big", &format!("o{}", i / 3), Body::Pivot(format!("p{}", i % 3), Attr::N(i.to_string()))))
            .chain((0..300u128).map(|i| rec(10_000 + i, &format!("c{i}"), "o", Body::Pivot("p".into(), Attr::N("1".into())))))
            .collect();
        let whole = tempfile::tempdir().unwrap();
        spill(whole.path(), &recs);
        let a = group_bucket(&target(true), None, OnDuplicate::Error, whole.path(), whole.path(), 0, 1 << 30).unwrap();
        let parts = tempfile::tempdir().unwrap();
        spill(parts.path(), &recs);
        let size = std::fs::metadata(Spill::path(parts.path(), 0)).unwrap().len();
        // A twentieth of what the bucket needs held whole: split, and split again.
        let b = group_bucket(&target(true), None, OnDuplicate::Error, parts.path(), parts.path(), 0, size * GROUP_EXPANSION / 20).unwrap();
        assert_eq!((a.stats.items, a.stats.bytes, a.stats.wcu), (b.stats.items, b.stats.bytes, b.stats.wcu));
        assert_eq!(a.stats.items, 1300);
        let key = |i: &Item| (i["pk"].display(), i["sk"].display());
        let (mut x, mut y) = (read_items(whole.path(), 0).unwrap(), read_items(parts.path(), 0).unwrap());
        x.sort_by_key(key);
        y.sort_by_key(key);
        assert_eq!(x, y);
        let left: Vec<_> = std::fs::read_dir(parts.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.contains(".spill.")).collect();
        assert!(left.is_empty(), "the parts are removed: {left:?}");
    }

    #[test]
    fn one_item_whose_rows_exceed_the_memory_is_rejected_without_being_held() {
        let mut recs: Vec<Record> = (0..2000u128).map(|i| rec(i, "big", "o1", Body::Pivot(format!("p{i}"), Attr::S("x".repeat(40))))).collect();
        recs.push(rec(5000, "small", "o1", Body::Pivot("p".into(), Attr::N("1".into()))));
        let dir = tempfile::tempdir().unwrap();
        spill(dir.path(), &recs[..2000]);
        let size = std::fs::metadata(Spill::path(dir.path(), 0)).unwrap().len();
        let g = group_bucket(&target(true), None, OnDuplicate::Error, dir.path(), dir.path(), 0, size).unwrap();
        assert_eq!((g.stats.items, g.rejected_rows, g.oversize.len()), (0, 2000, 1));
        let o = &g.oversize[0];
        assert!(o.unfolded && o.key == "pk=big / sk=o1" && o.source_rows == vec![0, 1, 2], "{o:?}");
        assert!(o.reason().contains("2000 source rows") && o.reason().contains("--memory-mb"), "{}", o.reason());
        // Beside a small item, in one bucket: split off, the small one grouped.
        let dir = tempfile::tempdir().unwrap();
        spill(dir.path(), &recs);
        let g = group_bucket(&target(true), None, OnDuplicate::Error, dir.path(), dir.path(), 0, size).unwrap();
        assert_eq!((g.stats.items, g.rejected_rows), (1, 2000));
    }
}
