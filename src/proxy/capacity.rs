//! What the proxy lets through: provisioned write capacity per table per second and, when a
//! partition limit is set, DynamoDB's per-partition limit. A table of capacity C with a partition
//! limit P is spread over ceil(C / P) partitions; an item belongs to the partition its partition
//! key's value hashes to, so one hot key throttles its partition only, as on the real service. The
//! key schema is learnt from the CreateTable and DescribeTable answers that pass through. A write
//! refused as a whole is answered like DynamoDB does, with a ThrottlingReason telling a table's
//! limit (`TableWriteProvisionedThroughputExceeded`) from a partition's
//! (`TableWriteKeyRangeThroughputExceeded`).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::ProxyConfig;
use crate::value::attr::{item_from_json, item_wcu};

/// The reasons DynamoDB gives in a throttled write's ThrottlingReasons.
pub const TABLE_LIMIT: &str = "TableWriteProvisionedThroughputExceeded";
pub const PARTITION_LIMIT: &str = "TableWriteKeyRangeThroughputExceeded";

/// What to do with one request.
#[derive(Debug)]
pub enum Decision {
    /// Forward this body; merge these UnprocessedItems into the answer.
    Forward(Vec<u8>, Option<Value>),
    /// Answer with a ProvisionedThroughputExceededException for this reason.
    Throttle(&'static str),
}

/// One second's use of a table or a partition.
#[derive(Debug, Clone, Copy)]
struct Window {
    second: u64,
    used: u64,
    refused: u64,
}

#[derive(Default)]
struct Windows {
    tables: HashMap<String, Window>,
    partitions: HashMap<(String, u32), Window>,
    throttled_requests: u64,
}

pub struct Capacity {
    cfg: ProxyConfig,
    windows: Mutex<Windows>,
    /// Table → its partition key attribute, learnt from the server's answers.
    hash_keys: Mutex<HashMap<String, String>>,
    log: Option<Mutex<std::fs::File>>,
    partition_log: Option<Mutex<std::fs::File>>,
}

fn now_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn append(path: &Option<std::path::PathBuf>) -> std::io::Result<Option<Mutex<std::fs::File>>> {
    path.as_ref().map(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).map(Mutex::new)).transpose()
}

/// WCU of one write request of a BatchWriteItem (deletes count one unit).
fn request_wcu(req: &Value) -> u64 {
    match req.get("PutRequest").and_then(|p| p.get("Item")) {
        Some(item) => item_from_json(item).map(|i| item_wcu(&i)).unwrap_or(1),
        None => 1,
    }
}

/// WCU taken before forwarding a PutItem (by its item's size), UpdateItem or DeleteItem (one):
/// what the server reports beyond it is charged after the answer.
pub fn single_write_wcu(doc: &Value) -> u64 {
    doc.get("Item").and_then(|i| item_from_json(i).ok()).map(|i| item_wcu(&i)).unwrap_or(1)
}

/// Moves a window to `second`, logging the second it closes.
fn roll(w: &mut Window, second: u64, log: Option<&Mutex<std::fs::File>>, line: impl FnOnce(&Window) -> String) {
    if w.second != second {
        if let (Some(log), true) = (log, w.used + w.refused > 0) {
            let _ = writeln!(log.lock().unwrap_or_else(|e| e.into_inner()), "{}", line(w));
        }
        *w = Window { second, used: 0, refused: 0 };
    }
}

impl Capacity {
    pub fn new(cfg: ProxyConfig) -> std::io::Result<Capacity> {
        let (log, partition_log) = (append(&cfg.log)?, append(&cfg.partition_log)?);
        Ok(Capacity { cfg, windows: Mutex::new(Windows::default()), hash_keys: Mutex::new(HashMap::new()), log, partition_log })
    }

    fn capacity(&self, table: &str) -> u64 {
        self.cfg.table_wcu.get(table).copied().unwrap_or(self.cfg.wcu)
    }

    /// The partition a write to `table` falls in, when partitions are enforced and the key known.
    fn partition(&self, table: &str, req: &Value) -> Option<u32> {
        let per = self.cfg.partition_wcu.filter(|p| *p > 0)?;
        let count = self.capacity(table).div_ceil(per).max(1);
        let keys = self.hash_keys.lock().unwrap_or_else(|e| e.into_inner());
        let name = keys.get(table)?;
        let item = req.get("PutRequest").and_then(|p| p.get("Item")).or_else(|| req.get("DeleteRequest").and_then(|d| d.get("Key"))).or_else(|| req.get("Item")).or_else(|| req.get("Key"))?;
        let value = item.get(name)?;
        // DynamoDB hashes the key with a cryptographic hash (MD5); a linear one such as CRC-32
        // would put similar keys (`k1`, `k2`) into partitions in patterns.
        use sha2::Digest;
        let digest = sha2::Sha256::digest(value.to_string().as_bytes());
        Some((u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % count) as u32)
    }

    /// Takes `cost` from the table's (and the partition's) current second if it fits; otherwise
    /// the reason it does not.
    fn take(&self, w: &mut Windows, table: &str, partition: Option<u32>, cost: u64) -> Result<(), &'static str> {
        let sec = now_second();
        let cap = self.capacity(table);
        let t = w.tables.entry(table.to_string()).or_insert(Window { second: sec, used: 0, refused: 0 });
        roll(t, sec, self.log.as_ref(), |w| format!("{},{},{}", w.second, table, w.used));
        let table_fits = t.used + cost <= cap;
        let part = partition.map(|p| {
            let pw = w.partitions.entry((table.to_string(), p)).or_insert(Window { second: sec, used: 0, refused: 0 });
            roll(pw, sec, self.partition_log.as_ref(), |w| format!("{},{},{},{},{}", w.second, table, p, w.used, w.refused));
            pw
        });
        let partition_fits = part.as_ref().is_none_or(|pw| pw.used + cost <= self.cfg.partition_wcu.unwrap_or(u64::MAX));
        if table_fits && partition_fits {
            if let Some(pw) = part {
                pw.used += cost;
            }
            w.tables.get_mut(table).expect("window").used += cost;
            return Ok(());
        }
        if let Some(pw) = part {
            pw.refused += cost;
        }
        Err(if table_fits { PARTITION_LIMIT } else { TABLE_LIMIT })
    }

    /// Charges capacity used beyond what was taken up front (the server's own count).
    pub fn charge(&self, table: &str, extra: u64) {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = w.tables.get_mut(table) {
            t.used += extra;
        }
    }

    pub fn throttled_requests(&self) -> u64 {
        self.windows.lock().unwrap_or_else(|e| e.into_inner()).throttled_requests
    }

    /// Learns a table's partition key from a CreateTable or DescribeTable answer.
    pub fn learn(&self, answer: &[u8]) {
        let Ok(doc) = serde_json::from_slice::<Value>(answer) else { return };
        let Some(t) = doc.get("TableDescription").or_else(|| doc.get("Table")) else { return };
        let (Some(name), Some(schema)) = (t["TableName"].as_str(), t["KeySchema"].as_array()) else { return };
        if let Some(hash) = schema.iter().find(|k| k["KeyType"] == "HASH").and_then(|k| k["AttributeName"].as_str()) {
            self.hash_keys.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), hash.to_string());
        }
    }

    /// Decides a write request (other requests are forwarded as they are).
    pub fn decide(&self, target: &str, body: &[u8]) -> Decision {
        let pass = || Decision::Forward(body.to_vec(), None);
        let Ok(mut doc) = serde_json::from_slice::<Value>(body) else { return pass() };
        let random = self.cfg.throttle_probability > 0.0 && fastrand::f64() < self.cfg.throttle_probability;
        match target {
            "BatchWriteItem" => {
                let Some(items) = doc.get_mut("RequestItems").and_then(Value::as_object_mut) else { return pass() };
                let total: usize = items.values().filter_map(Value::as_array).map(Vec::len).sum();
                let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
                // A random throttle: the whole call (half the time, or always for one item) or a random part.
                if random && (total <= 1 || fastrand::bool()) {
                    w.throttled_requests += 1;
                    return Decision::Throttle(TABLE_LIMIT);
                }
                let mut unprocessed = serde_json::Map::new();
                let (mut accepted, mut reason) = (0usize, None);
                for (table, reqs) in items.iter_mut() {
                    let Some(list) = reqs.as_array_mut() else { continue };
                    let (mut keep, mut back) = (Vec::new(), Vec::new());
                    for r in list.drain(..) {
                        let taken = if random && fastrand::bool() { Err(TABLE_LIMIT) } else { self.take(&mut w, table, self.partition(table, &r), request_wcu(&r)) };
                        match taken {
                            Ok(()) => keep.push(r),
                            Err(why) => {
                                // A table's limit anywhere in the call is the call's reason.
                                reason = Some(if reason == Some(TABLE_LIMIT) { TABLE_LIMIT } else { why });
                                back.push(if self.cfg.respell_unprocessed { respell(r) } else { r });
                            }
                        }
                    }
                    accepted += keep.len();
                    *list = keep;
                    if !back.is_empty() {
                        unprocessed.insert(table.clone(), Value::Array(back));
                    }
                }
                if accepted == 0 {
                    w.throttled_requests += 1;
                    return Decision::Throttle(reason.unwrap_or(TABLE_LIMIT));
                }
                items.retain(|_, v| v.as_array().is_some_and(|a| !a.is_empty()));
                let merged = (!unprocessed.is_empty()).then_some(Value::Object(unprocessed));
                if merged.is_some() {
                    w.throttled_requests += 1;
                }
                Decision::Forward(serde_json::to_vec(&doc).expect("json"), merged)
            }
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let table = doc.get("TableName").and_then(Value::as_str).unwrap_or("").to_string();
                let partition = self.partition(&table, &doc);
                let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
                let taken = if random { Err(TABLE_LIMIT) } else { self.take(&mut w, &table, partition, single_write_wcu(&doc)) };
                if let Err(why) = taken {
                    w.throttled_requests += 1;
                    return Decision::Throttle(why);
                }
                // Ask the server what the write consumed, to charge the rest after it.
                doc["ReturnConsumedCapacity"] = json!("TOTAL");
                Decision::Forward(serde_json::to_vec(&doc).expect("json"), None)
            }
            _ => pass(),
        }
    }
}

/// A write request as a service might hand it back: string-set members in reverse order and
/// every number respelled (`7` as `7.0`, `1.5` as `15E-1`), the same values to DynamoDB.
fn respell(mut v: Value) -> Value {
    match &mut v {
        Value::Object(m) => {
            if let Some(Value::String(n)) = m.get_mut("N") {
                *n = match n.split_once('.') {
                    None if !n.contains(['e', 'E']) => format!("{n}.0"),
                    Some((i, f)) if !f.contains(['e', 'E']) => format!("{i}{f}E-{}", f.len()),
                    _ => n.clone(),
                };
            }
            if let Some(Value::Array(ss)) = m.get_mut("SS") {
                ss.reverse();
            }
            for (_, child) in m.iter_mut() {
                *child = respell(std::mem::take(child));
            }
            v
        }
        Value::Array(a) => Value::Array(a.drain(..).map(respell).collect()),
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(wcu: u64, partition_wcu: Option<u64>) -> Capacity {
        Capacity::new(ProxyConfig { wcu, partition_wcu, ..ProxyConfig::default() }).unwrap()
    }

    fn batch(keys: impl Iterator<Item = String>) -> Vec<u8> {
        let reqs: Vec<Value> = keys.map(|k| json!({"PutRequest": {"Item": {"id": {"S": k}}}})).collect();
        serde_json::to_vec(&json!({"RequestItems": {"t": reqs}})).unwrap()
    }

    /// Runs within one wall-clock second so the window does not roll over mid-test.
    fn start_of_second() {
        while SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_millis() > 700 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn forwarded(d: Decision) -> (usize, usize) {
        let Decision::Forward(body, back) = d else { panic!("throttled: {d:?}") };
        let doc: Value = serde_json::from_slice(&body).unwrap();
        (doc["RequestItems"]["t"].as_array().unwrap().len(), back.map_or(0, |b| b["t"].as_array().unwrap().len()))
    }

    #[test]
    fn capacity_splits_a_batch_into_written_and_unprocessed() {
        let p = capacity(10, None);
        start_of_second();
        assert_eq!(forwarded(p.decide("BatchWriteItem", &batch((0..25).map(|i| i.to_string())))), (10, 15));
        assert!(matches!(p.decide("BatchWriteItem", &batch((0..5).map(|i| i.to_string()))), Decision::Throttle(TABLE_LIMIT)), "nothing fits: a whole-call throttle");
        assert_eq!(p.throttled_requests(), 2);
    }

    #[test]
    fn a_hot_key_fills_its_partition_only() {
        // 4,000 WCU/s over partitions of 1,000: four partitions.
        let p = capacity(4000, Some(1000));
        p.learn(br#"{"Table": {"TableName": "t", "KeySchema": [{"AttributeName": "sk", "KeyType": "RANGE"}, {"AttributeName": "id", "KeyType": "HASH"}]}}"#);
        start_of_second();
        for _ in 0..40 {
            let _ = p.decide("BatchWriteItem", &batch(std::iter::repeat_n("hot".to_string(), 25)));
        }
        // The hot key's partition is full: more of it is refused for the partition's reason...
        assert!(matches!(p.decide("BatchWriteItem", &batch(std::iter::repeat_n("hot".to_string(), 25))), Decision::Throttle(PARTITION_LIMIT)));
        // ...while keys of the other partitions still go through (about a quarter share the hot one's).
        let (written, back) = forwarded(p.decide("BatchWriteItem", &batch((0..25).map(|i| format!("cold{i}")))));
        assert_eq!(written + back, 25);
        assert!(written >= 10 && back >= 1, "written {written}, unprocessed {back}");
    }

    #[test]
    fn respelled_requests_are_the_same_values() {
        let r = respell(json!({"PutRequest": {"Item": {"id": {"N": "7"}, "p": {"N": "1.50"}, "s": {"SS": ["a", "b"]}}}}));
        assert_eq!(r, json!({"PutRequest": {"Item": {"id": {"N": "7.0"}, "p": {"N": "150E-2"}, "s": {"SS": ["b", "a"]}}}}));
    }
}
