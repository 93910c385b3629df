//! The input files of DynamoDB's Import from S3: the grouped items `transform` wrote, as
//! DynamoDB JSON lines (`{"Item":{"pk":{"S":"a"},…}}`), GZIP, ZSTD or plain. Each bucket's items
//! are ordered by a hash of their whole key, so one partition key's items never arrive in a run
//! (a sorted import makes rolling hot partitions), and objects are cut at a size that keeps one
//! import under the service's 50,000-object limit. The same items always give the same bytes
//! (no timestamps in the GZIP header), so a rerun's files hash alike and are not uploaded again.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::transform::group::read_items;
use crate::value::attr::{item_to_json, Item};

/// ImportTable reads at most this many objects in one import.
pub const MAX_IMPORT_OBJECTS: u64 = 50_000;
/// Objects hold at least this much item text (uncompressed), so small tables make few objects.
pub const MIN_OBJECT_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportCompression {
    #[default]
    Gzip,
    Zstd,
    None,
}

crate::choices!(ImportCompression { "gzip" => ImportCompression::Gzip, "zstd" => ImportCompression::Zstd, "none" => ImportCompression::None });

impl ImportCompression {
    pub fn extension(self) -> &'static str {
        match self {
            ImportCompression::Gzip => "json.gz",
            ImportCompression::Zstd => "json.zst",
            ImportCompression::None => "json",
        }
    }

    pub fn sdk(self) -> aws_sdk_dynamodb::types::InputCompressionType {
        use aws_sdk_dynamodb::types::InputCompressionType as C;
        match self {
            ImportCompression::Gzip => C::Gzip,
            ImportCompression::Zstd => C::Zstd,
            ImportCompression::None => C::None,
        }
    }
}

/// Uncompressed bytes per object for `total` bytes of item text: at least `MIN_OBJECT_BYTES`,
/// and large enough that the objects number at most 90 % of `MAX_IMPORT_OBJECTS`.
pub fn object_bytes(total: u64) -> u64 {
    let most = MAX_IMPORT_OBJECTS * 9 / 10;
    MIN_OBJECT_BYTES.max(total.div_ceil(most))
}

/// A new cut when `objects` files holding `text` bytes are more than `object_bytes` allows (the
/// first cut guessed the text from the items' size): None when they fit.
pub fn recut(objects: u64, text: u64) -> Option<u64> {
    (objects > MAX_IMPORT_OBJECTS * 9 / 10).then(|| object_bytes(text))
}

/// One input line: `{"Item":{…}}` and a newline.
pub fn item_line(item: &Item) -> Vec<u8> {
    let mut line = serde_json::to_vec(&serde_json::json!({ "Item": item_to_json(item) })).expect("items serialize");
    line.push(b'\n');
    line
}

/// Orders items by a hash of their key attributes: a deterministic shuffle that scatters the
/// items of one partition key.
pub fn spread(items: &mut [Item], key_names: &[String]) {
    items.sort_by_cached_key(|item| {
        let mut h = Sha256::new();
        for name in key_names {
            if let Some(v) = item.get(name) {
                h.update(name.as_bytes());
                h.update(v.to_json().to_string().as_bytes());
            }
        }
        <[u8; 32]>::from(h.finalize())
    });
}

/// What `write` produced for one target table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub items: u64,
    /// Item text before compression: what the service prices by.
    pub bytes: u64,
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<std::fs::File>),
    Zstd(zstd::Encoder<'static, std::fs::File>),
    Plain(std::io::BufWriter<std::fs::File>),
}

impl Encoder {
    fn open(path: &Path, c: ImportCompression) -> std::io::Result<Encoder> {
        let f = std::fs::File::create(path)?;
        Ok(match c {
            ImportCompression::Gzip => Encoder::Gzip(flate2::GzBuilder::new().mtime(0).write(f, flate2::Compression::fast())),
            ImportCompression::Zstd => Encoder::Zstd(zstd::Encoder::new(f, 3)?),
            ImportCompression::None => Encoder::Plain(std::io::BufWriter::new(f)),
        })
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(b),
            Encoder::Zstd(e) => e.write_all(b),
            Encoder::Plain(e) => e.write_all(b),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let f = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Zstd(e) => e.finish()?,
            Encoder::Plain(e) => e.into_inner().map_err(|e| e.into_error())?,
        };
        f.sync_all()
    }
}

/// One bucket's lines, spread, as one text with the end of each line.
struct BucketText {
    text: Vec<u8>,
    ends: Vec<usize>,
}

fn bucket_text(items_dir: &Path, bucket: u32, key_names: &[String]) -> Result<BucketText, String> {
    let mut items = read_items(items_dir, bucket)?;
    spread(&mut items, key_names);
    let mut t = BucketText { text: Vec::new(), ends: Vec::with_capacity(items.len()) };
    for item in &items {
        t.text.extend_from_slice(&item_line(item));
        t.ends.push(t.text.len());
    }
    Ok(t)
}

/// Writes the items of `buckets` (item files in `items_dir`) into `out` as `part-NNNNN.<ext>`,
/// cutting an object once it holds `cut` bytes of item text. Files of an earlier attempt are
/// removed first. Errors name the file. A thread turns windows of buckets into text in parallel
/// while this one compresses and writes them, in bucket order (the output is deterministic).
/// GZIP is written at its fast level: Import from S3 is priced by the uncompressed size, so the
/// level only trades upload bytes against time here.
pub fn write(items_dir: &Path, buckets: &[u32], key_names: &[String], out: &Path, c: ImportCompression, cut: u64) -> Result<Written, String> {
    use rayon::prelude::*;
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).map_err(|e| err(out, e))?;
    // Buckets turned into text at once (in parallel), and waiting to be compressed.
    let window = rayon::current_num_threads().max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<BucketText, String>>(window);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for window in buckets.chunks(window) {
                let texts: Vec<Result<BucketText, String>> = window.par_iter().map(|&b| bucket_text(items_dir, b, key_names)).collect();
                for t in texts {
                    let stop = t.is_err();
                    if tx.send(t).is_err() || stop {
                        return;
                    }
                }
            }
        });
        let mut w = Written::default();
        let mut current: Option<(Encoder, PathBuf, u64)> = None;
        for t in rx {
            let t = t?;
            let mut start = 0;
            let mut lines = t.ends.iter().peekable();
            while lines.peek().is_some() {
                if current.is_none() {
                    let path = out.join(format!("part-{:05}.{}", w.files.len(), c.extension()));
                    current = Some((Encoder::open(&path, c).map_err(|e| err(&path, e))?, path.clone(), 0));
                    w.files.push(path);
                }
                let (enc, path, held) = current.as_mut().expect("opened above");
                // The lines up to the one that fills the object, written at once.
                let mut end = start;
                for &e in lines.by_ref() {
                    w.items += 1;
                    *held += (e - end) as u64;
                    end = e;
                    if *held >= cut {
                        break;
                    }
                }
                enc.write_all(&t.text[start..end]).map_err(|e| err(path, e))?;
                w.bytes += (end - start) as u64;
                start = end;
                if *held >= cut {
                    let (enc, path, _) = current.take().expect("open");
                    enc.finish().map_err(|e| err(&path, e))?;
                }
            }
        }
        if let Some((enc, path, _)) = current {
            enc.finish().map_err(|e| err(&path, e))?;
        }
        Ok(w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::attr::Attr;

    fn item(pk: &str, sk: i64) -> Item {
        [("pk".to_string(), Attr::S(pk.into())), ("sk".to_string(), Attr::N(sk.to_string())), ("v".to_string(), Attr::SS(vec!["a".into(), "b".into()]))].into_iter().collect()
    }

    #[test]
    fn objects_stay_under_the_import_limit() {
        assert_eq!(object_bytes(1_000), MIN_OBJECT_BYTES);
        for total in [10u64 << 30, 1 << 40, 20 << 40] {
            let objects = total.div_ceil(object_bytes(total));
            assert!(objects <= MAX_IMPORT_OBJECTS, "{total}: {objects}");
        }
    }

    /// Regression: the cut assumed item text is at most twice the item size; numeric items run
    /// four to five times, so a multi-TB table could be cut into more than 50,000 objects.
    #[test]
    fn files_cut_too_small_for_their_text_are_cut_again_under_the_limit() {
        let items_bytes: u64 = 1 << 40; // 1 TiB of items, 4.5 TiB of text
        let text = items_bytes * 9 / 2;
        let first = object_bytes(items_bytes * 2);
        let objects = text.div_ceil(first);
        assert!(objects > MAX_IMPORT_OBJECTS, "the first guess is too small: {objects}");
        let cut = recut(objects, text).expect("cut again");
        assert!(text.div_ceil(cut) <= MAX_IMPORT_OBJECTS * 9 / 10);
        assert_eq!(recut(100, 100 << 20), None, "files that fit are kept");
    }

    #[test]
    fn a_line_is_one_dynamodb_json_item() {
        let line = item_line(&item("a", 7));
        assert!(line.ends_with(b"\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["Item"]["pk"], serde_json::json!({"S": "a"}));
        assert_eq!(v["Item"]["sk"], serde_json::json!({"N": "7"}));
        assert_eq!(v["Item"]["v"], serde_json::json!({"SS": ["a", "b"]}));
    }

    #[test]
    fn one_partition_keys_items_are_scattered() {
        let mut items: Vec<Item> = (0..50).map(|i| item("hot", i)).chain((0..50).map(|i| item(&format!("k{i}"), 0))).collect();
        spread(&mut items, &["pk".into(), "sk".into()]);
        let hot: Vec<usize> = items.iter().enumerate().filter(|(_, it)| it["pk"] == Attr::S("hot".into())).map(|(i, _)| i).collect();
        let longest_run = hot.windows(2).fold((1, 1), |(best, cur), w| if w[1] == w[0] + 1 { (best.max(cur + 1), cur + 1) } else { (best, 1) }).0;
        assert!(longest_run < 10, "the hot key's items come {longest_run} in a row");
    }

    /// ZSTD is not read by moto: the frames are checked by decoding them here, by the zstd
    /// library (the format ImportTable documents), and cut objects hold every item once.
    #[test]
    fn files_decode_to_every_item_once_in_each_compression() {
        let dir = tempfile::tempdir().unwrap();
        let items_dir = dir.path().join("items");
        std::fs::create_dir_all(&items_dir).unwrap();
        let items: Vec<Item> = (0..300).map(|i| item(&format!("k{}", i % 40), i)).collect();
        crate::transform::group::write_interleaved(&items_dir, 0, vec![items.clone()]).unwrap();
        for c in [ImportCompression::Gzip, ImportCompression::Zstd, ImportCompression::None] {
            let out = dir.path().join(c.extension());
            let w = write(&items_dir, &[0], &["pk".into(), "sk".into()], &out, c, 4096).unwrap();
            assert!(w.files.len() > 1, "cut into several objects");
            let mut text = String::new();
            for f in &w.files {
                let raw = std::fs::read(f).unwrap();
                let plain = match c {
                    ImportCompression::Gzip => {
                        let mut s = String::new();
                        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut s).unwrap();
                        s
                    }
                    ImportCompression::Zstd => String::from_utf8(zstd::decode_all(&raw[..]).unwrap()).unwrap(),
                    ImportCompression::None => String::from_utf8(raw).unwrap(),
                };
                text.push_str(&plain);
            }
            let mut seen: Vec<String> = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["Item"]["sk"]["N"].as_str().unwrap().to_string()).collect();
            seen.sort_by_key(|s| s.parse::<i64>().unwrap());
            assert_eq!(seen, (0..300).map(|i| i.to_string()).collect::<Vec<_>>());
            assert_eq!(w.items, 300);
            let again = write(&items_dir, &[0], &["pk".into(), "sk".into()], &out, c, 4096).unwrap();
            let bytes = |w: &Written| w.files.iter().map(|f| std::fs::read(f).unwrap()).collect::<Vec<_>>();
            assert_eq!(bytes(&again), bytes(&w), "the same items give the same bytes");
        }
    }
}
