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
}

impl Oversize {
    pub fn reason(&self) -> String {
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
        out.oversize.push(Oversize { key: key_text(target, first.pk, first.sk), source_rows: sources.to_vec(), rows, size });
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

/// Groups one bucket: reads `<spill_dir>/bucket-N.spill`, writes `<items_dir>/bucket-N.items`.
/// Records are read in place from the spill file; each item's records are linked in arrival
/// order (`Chains`), so nothing is allocated per record.
pub fn group_bucket(
    target: &TargetTable,
    collect: Option<(&str, CollectAs)>,
    on_duplicate: OnDuplicate,
    spill_dir: &Path,
    items_dir: &Path,
    bucket: u32,
) -> Result<Grouped, String> {
    let spill_path = Spill::path(spill_dir, bucket);
    let data = match std::fs::read(&spill_path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", spill_path.display())),
    };
    let bad = |e: CodecError| format!("{}: {e}", spill_path.display());
    // Sized up front (a pass over the length prefixes): growing them showed as rehashing and
    // copying in profiles.
    let count = {
        let (mut d, mut n) = (Decoder { buf: &data }, 0usize);
        while !d.buf.is_empty() {
            d.bytes().map_err(bad)?;
            n += 1;
        }
        n
    };
    // Records, and for each item (in first-seen order) its records.
    let mut records: Vec<RecordView> = Vec::with_capacity(count);
    let mut items = Chains::with_capacity(count);
    let mut d = Decoder { buf: &data };
    while !d.buf.is_empty() {
        let r = view_record(&mut d).map_err(bad)?;
        items.push(r.key);
        records.push(r);
    }
    let mut out = Grouped { stats: BucketStats { id: bucket, ..Default::default() }, ..Default::default() };
    let mut folder = Folder { target, collect, on_duplicate, pivots: Vec::new(), collected: Vec::new(), entries: Vec::new(), order: Vec::new(), shown: Default::default() };
    // Encoded items, and for each partition key (in first-seen order) its items.
    let mut arena: Vec<u8> = Vec::with_capacity(data.len());
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(items.lists.len());
    let mut by_pk = Chains::with_capacity(items.lists.len());
    let (mut members, mut item) = (Vec::new(), Vec::new());
    for &(head, _) in &items.lists {
        members.clear();
        members.extend(items.walk(head));
        let Some(size) = folder.fold(&records, &members, &mut out, &mut item).map_err(bad)? else { continue };
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
    let mut order = Vec::with_capacity(spans.len());
    while !cursors.is_empty() {
        for c in cursors.iter_mut() {
            order.push(*c);
            *c = by_pk.next[*c as usize];
        }
        cursors.retain(|&c| c != NONE);
    }
    let encoded = order.iter().map(|&i| &arena[spans[i as usize].0..spans[i as usize].1]);
    write_items(items_dir, bucket, encoded).map_err(|e| format!("{}: {e}", items_path(items_dir, bucket).display()))?;
    Ok(out)
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
fn write_items<'b>(dir: &Path, bucket: u32, items: impl Iterator<Item = &'b [u8]>) -> std::io::Result<()> {
    let path = items_path(dir, bucket);
    let partial = path.with_extension("items.partial");
    let mut buf = Vec::with_capacity(items.size_hint().0 * 64);
    for item in items {
        put_bytes(&mut buf, item);
    }
    // A trailer with the SHA-256 of everything before it: `read_items` refuses a damaged file.
    let digest = Sha256::digest(&buf);
    buf.extend_from_slice(TRAILER);
    buf.extend_from_slice(&digest);
    // Durable before the state says the run is grouped: a power loss must not leave a short item
    // file that a resumed import would take for the whole bucket.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&partial)?;
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    std::fs::rename(&partial, &path)?;
    std::fs::File::open(dir)?.sync_all()
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
        let g = group_bucket(&target(true), None, OnDuplicate::Error, dir.path(), dir.path(), 0).unwrap();
        assert_eq!(g.conflicts, 2, "{:?}", g.examples);
        let shown: Vec<String> = g.examples.iter().map(|e| e.render(&|seq| format!("row{seq}"))).collect();
        assert!(shown.iter().any(|e| e.contains("pk=c2") && e.contains("\"p1\"") && e.contains("row4")), "{shown:?}");
        assert!(shown.iter().any(|e| e.contains("collides with a key attribute") && e.contains("row5")), "{shown:?}");
        let items = read_items(dir.path(), 0).unwrap();
        let c1 = items.iter().find(|i| i["pk"] == Attr::S("c1".into())).unwrap();
        assert_eq!(c1.len(), 4);
        assert_eq!(c1["p2"], Attr::N("5".into()));
        let g = group_bucket(&target(true), None, OnDuplicate::LastWins, dir.path(), dir.path(), 0).unwrap();
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
        let g = group_bucket(&target(false), None, OnDuplicate::Error, dir.path(), dir.path(), 0).unwrap();
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
            let g = group_bucket(&target(grouped), collect, OnDuplicate::LastWins, dir.path(), dir.path(), 0).unwrap();
            std::fs::remove_file(Spill::path(dir.path(), 0)).unwrap();
            let got = read_items(dir.path(), 0).unwrap();
            assert_eq!(g.stats.items as usize, want.len());
            assert_eq!(g.stats.bytes, want.values().map(|i| crate::value::attr::item_size(i) as u64).sum::<u64>());
            let mut got: Vec<Item> = got;
            got.sort_by_key(|i| (i["pk"].display(), i["sk"].display()));
            assert_eq!(got, want.into_values().collect::<Vec<_>>());
        }
    }
}
