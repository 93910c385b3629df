//! The second half of grouping at scale: one bucket's spilled rows are folded into items by
//! their new key (whole rows for record mappings, pivoted or collected attributes for grouping
//! rules), checked (duplicate keys, colliding pivots, DynamoDB's 400 KB item limit) and written
//! to the bucket's item file, ordered so consecutive items have different partition keys.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::spill::{decode_record, FnvBuild, Record, Spill};
use crate::value::attr::{encode_attr, encode_item, item_size, item_wcu, put_bytes, Attr, CodecError, Decoder, Item, MAX_ITEM_BYTES};
use crate::mapping::compile::{Body, TargetTable};
use crate::mapping::dms::CollectAs;

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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketStats {
    pub id: u32,
    pub items: u64,
    pub wcu: u64,
    pub bytes: u64,
    pub max_item_bytes: u64,
    pub written: bool,
}

#[derive(Debug, Default)]
pub struct Grouped {
    pub stats: BucketStats,
    pub rejects: Vec<Value>,
    /// Source rows of the rejected items.
    pub rejected_rows: u64,
    pub conflicts: u64,
    pub examples: Vec<String>,
}

pub fn items_path(dir: &Path, bucket: u32) -> std::path::PathBuf {
    dir.join(format!("bucket-{bucket:05}.items"))
}

struct Acc {
    pk: Attr,
    sk: Option<Attr>,
    seq: u128,
    sources: Vec<String>,
    /// Source rows folded into the item (sources keeps the first few as examples).
    rows: u64,
    item: Item,
    /// Pivoted attribute name → seq of the row that set it.
    owners: HashMap<String, u128>,
    collected: Vec<(u128, Option<String>, Attr)>,
}

fn key_text(t: &TargetTable, pk: &Attr, sk: &Option<Attr>) -> String {
    match (&t.sort_key, sk) {
        (Some(d), Some(v)) => format!("{}={} / {}={}", t.partition_key.name, pk.display(), d.name, v.display()),
        _ => format!("{}={}", t.partition_key.name, pk.display()),
    }
}

/// Groups one bucket: reads `<spill_dir>/bucket-N.spill`, writes `<items_dir>/bucket-N.items`.
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
    let mut out = Grouped { stats: BucketStats { id: bucket, ..Default::default() }, ..Default::default() };
    let mut conflict = |out: &mut Grouped, what: String| {
        out.conflicts += 1;
        if out.examples.len() < EXAMPLES {
            out.examples.push(what);
        }
    };
    let mut groups: HashMap<Vec<u8>, Acc, FnvBuild> = HashMap::default();
    let mut d = Decoder { buf: &data };
    let key_names: Vec<&str> = std::iter::once(target.partition_key.name.as_str()).chain(target.sort_key.as_ref().map(|k| k.name.as_str())).collect();
    while !d.buf.is_empty() {
        let Record { seq, source_key, fragment } = decode_record(&mut d).map_err(|e: CodecError| format!("{}: {e}", spill_path.display()))?;
        let mut key = Vec::new();
        encode_attr(&mut key, &fragment.pk);
        if let Some(sk) = &fragment.sk {
            encode_attr(&mut key, sk);
        }
        let acc = groups.entry(key).or_insert_with(|| Acc {
            pk: fragment.pk.clone(),
            sk: fragment.sk.clone(),
            seq,
            sources: Vec::new(),
            rows: 0,
            item: Item::new(),
            owners: HashMap::new(),
            collected: Vec::new(),
        });
        let first = acc.sources.is_empty();
        match fragment.body {
            Body::Item(item) => {
                if !first {
                    let k = key_text(target, &acc.pk, &acc.sk);
                    conflict(&mut out, format!("{k}: source rows {} and {source_key}", acc.sources[0]));
                    if on_duplicate == OnDuplicate::Error || seq < acc.seq {
                        continue;
                    }
                }
                acc.seq = seq;
                acc.item = item;
            }
            Body::Pivot(name, value) => {
                if key_names.contains(&name.as_str()) {
                    let k = key_text(target, &acc.pk, &acc.sk);
                    conflict(&mut out, format!("{k}: pivoted name {name:?} (row {source_key}) collides with a key attribute"));
                    continue;
                }
                if acc.item.contains_key(&name) {
                    let k = key_text(target, &acc.pk, &acc.sk);
                    conflict(&mut out, format!("{k}: pivoted name {name:?} comes from more than one row (e.g. {source_key})"));
                    let owner = acc.owners.get(&name).copied().unwrap_or(0);
                    if on_duplicate == OnDuplicate::Error || seq < owner {
                        continue;
                    }
                }
                // Seqs are only needed to let the last row win.
                if on_duplicate == OnDuplicate::LastWins {
                    acc.owners.insert(name.clone(), seq);
                }
                acc.item.insert(name, value);
            }
            Body::Collect(k, v) => acc.collected.push((seq, k, v)),
        }
        acc.rows += 1;
        if acc.sources.len() < 3 {
            acc.sources.push(source_key);
        }
    }
    let mut by_pk: HashMap<Vec<u8>, Vec<Item>, FnvBuild> = HashMap::default();
    for (_, mut acc) in groups {
        if target.grouped {
            if let Some((attr, as_)) = collect {
                acc.collected.sort_by_key(|c| c.0);
                if let Some(v) = collected_value(target, &acc, as_, &mut out, &mut conflict, on_duplicate) {
                    acc.item.insert(attr.to_string(), v);
                }
            }
            acc.item.insert(target.partition_key.name.clone(), acc.pk.clone());
            if let (Some(d), Some(v)) = (&target.sort_key, &acc.sk) {
                acc.item.insert(d.name.clone(), v.clone());
            }
        }
        let size = item_size(&acc.item);
        if size > MAX_ITEM_BYTES {
            out.rejects.push(json!({
                "table": target.name,
                "key": key_text(target, &acc.pk, &acc.sk),
                "source_rows": acc.sources,
                "rows": acc.rows,
                "reason": format!("item is {size} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte (400 KB) item limit; its {} source rows are not written", acc.rows),
            }));
            out.rejected_rows += acc.rows;
            continue;
        }
        out.stats.items += 1;
        out.stats.wcu += item_wcu(&acc.item);
        out.stats.bytes += size as u64;
        out.stats.max_item_bytes = out.stats.max_item_bytes.max(size as u64);
        let mut pk = Vec::new();
        encode_attr(&mut pk, &acc.pk);
        by_pk.entry(pk).or_default().push(acc.item);
    }
    write_interleaved(items_dir, bucket, by_pk.into_values().collect()).map_err(|e| format!("{}: {e}", items_path(items_dir, bucket).display()))?;
    Ok(out)
}

fn collected_value(
    target: &TargetTable,
    acc: &Acc,
    as_: CollectAs,
    out: &mut Grouped,
    conflict: &mut impl FnMut(&mut Grouped, String),
    on_duplicate: OnDuplicate,
) -> Option<Attr> {
    if acc.collected.is_empty() {
        return None;
    }
    Some(match as_ {
        CollectAs::List => Attr::L(acc.collected.iter().map(|c| c.2.clone()).collect()),
        CollectAs::StringSet => {
            let mut set: Vec<String> = acc.collected.iter().map(|c| c.2.display()).collect();
            set.sort();
            set.dedup();
            Attr::SS(set)
        }
        CollectAs::Map => {
            let mut m = BTreeMap::new();
            for (_, k, v) in &acc.collected {
                let k = k.clone().unwrap_or_default();
                if m.contains_key(&k) {
                    conflict(out, format!("{}: collected key {k:?} comes from more than one row", key_text(target, &acc.pk, &acc.sk)));
                    if on_duplicate == OnDuplicate::Error {
                        continue;
                    }
                }
                m.insert(k, v.clone());
            }
            Attr::M(m)
        }
    })
}

/// Writes items round-robin across partition keys: one item of each key, then the next round.
pub(crate) fn write_interleaved(dir: &Path, bucket: u32, mut lists: Vec<Vec<Item>>) -> std::io::Result<()> {
    let path = items_path(dir, bucket);
    let partial = path.with_extension("items.partial");
    let mut buf = Vec::new();
    let mut enc = Vec::new();
    lists.iter_mut().for_each(|l| l.reverse());
    while !lists.is_empty() {
        for l in lists.iter_mut() {
            if let Some(item) = l.pop() {
                enc.clear();
                encode_item(&mut enc, &item);
                put_bytes(&mut buf, &enc);
            }
        }
        lists.retain(|l| !l.is_empty());
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
    use crate::transform::spill::Spill;
    use crate::mapping::compile::{Fragment, KeyDef, KeyType};

    fn target(grouped: bool) -> TargetTable {
        TargetTable {
            name: "t".into(),
            partition_key: KeyDef { name: "pk".into(), ty: KeyType::S },
            sort_key: Some(KeyDef { name: "sk".into(), ty: KeyType::S }),
            grouped,
        }
    }

    fn rec(seq: u128, pk: &str, sk: &str, body: Body) -> Record {
        Record { seq, source_key: format!("row{seq}"), fragment: Fragment { pk: Attr::S(pk.into()), sk: Some(Attr::S(sk.into())), body } }
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
        assert!(g.examples.iter().any(|e| e.contains("pk=c2") && e.contains("\"p1\"")), "{:?}", g.examples);
        assert!(g.examples.iter().any(|e| e.contains("collides with a key attribute")));
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
        assert_eq!(g.rejects.len(), 1);
        assert!(g.rejects[0]["reason"].as_str().unwrap().contains("400 KB"));
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
}
