//! The capacity-enforcing proxy (test and benchmark support; binary `m2d-capacity-proxy`).
//! Local DynamoDB servers never throttle, so this HTTP/1.1 proxy sits in front of one and
//! enforces a provisioned write capacity per table per second, answering as DynamoDB does when
//! it is exceeded: a BatchWriteItem gets the items that do not fit back as UnprocessedItems
//! (or a 400 ProvisionedThroughputExceededException when none fit), single writes get the 400.
//! It can also throttle a fixed share of write requests at random, and logs the WCU it let
//! through per table and second, so benchmarks measure the achieved rate on the server side.
//! Single writes are charged what the server reports they consumed (an update of a large item
//! costs its size). With `respell_unprocessed` it hands UnprocessedItems back re-serialised, as
//! a real service may: string sets in another order, numbers spelled another way.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::value::attr::{item_from_json, item_wcu};

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub upstream: String,
    /// WCU per second per table (tables not listed in `table_wcu`).
    pub wcu: u64,
    pub table_wcu: HashMap<String, u64>,
    /// Share of write requests throttled at random, 0…1.
    pub throttle_probability: f64,
    /// CSV of `second,table,wcu` let through.
    pub log: Option<std::path::PathBuf>,
    /// Hand unprocessed requests back re-serialised (sets reordered, numbers respelled).
    pub respell_unprocessed: bool,
}

#[derive(Default)]
struct Windows {
    /// (table) → (unix second, WCU used in it)
    used: HashMap<String, (u64, u64)>,
    throttled_requests: u64,
}

pub struct Proxy {
    cfg: ProxyConfig,
    windows: Mutex<Windows>,
    log: Option<Mutex<std::fs::File>>,
}

const THROTTLE_MESSAGE: &str = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.";

fn now_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
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
fn single_write_wcu(doc: &Value) -> u64 {
    doc.get("Item").and_then(|i| item_from_json(i).ok()).map(|i| item_wcu(&i)).unwrap_or(1)
}

impl Proxy {
    pub fn new(cfg: ProxyConfig) -> std::io::Result<Arc<Proxy>> {
        let log = match &cfg.log {
            Some(p) => Some(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(p)?)),
            None => None,
        };
        Ok(Arc::new(Proxy { cfg, windows: Mutex::new(Windows::default()), log }))
    }

    fn capacity(&self, table: &str) -> u64 {
        self.cfg.table_wcu.get(table).copied().unwrap_or(self.cfg.wcu)
    }

    /// Takes `cost` from the table's current second if it fits.
    fn take(&self, w: &mut Windows, table: &str, cost: u64) -> bool {
        let sec = now_second();
        let cap = self.capacity(table);
        let entry = w.used.entry(table.to_string()).or_insert((sec, 0));
        if entry.0 != sec {
            if let (Some(log), true) = (&self.log, entry.1 > 0) {
                let _ = writeln!(log.lock().unwrap_or_else(|e| e.into_inner()), "{},{},{}", entry.0, table, entry.1);
            }
            *entry = (sec, 0);
        }
        if entry.1 + cost > cap {
            return false;
        }
        entry.1 += cost;
        true
    }

    /// Charges capacity used beyond what was taken up front (the server's own count).
    fn charge(&self, table: &str, extra: u64) {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = w.used.get_mut(table) {
            entry.1 += extra;
        }
    }

    /// Decides a write request. Returns the body to forward (None: answer with a throttle
    /// error) and the unprocessed items to merge into the response.
    fn decide(&self, target: &str, body: &[u8]) -> (Option<Vec<u8>>, Option<Value>) {
        let Ok(mut doc) = serde_json::from_slice::<Value>(body) else { return (Some(body.to_vec()), None) };
        let random = self.cfg.throttle_probability > 0.0 && fastrand::f64() < self.cfg.throttle_probability;
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match target {
            "BatchWriteItem" => {
                let Some(items) = doc.get_mut("RequestItems").and_then(Value::as_object_mut) else { return (Some(body.to_vec()), None) };
                let total: usize = items.values().filter_map(Value::as_array).map(Vec::len).sum();
                // A random throttle: the whole call (half the time, or always for one item) or a random part.
                let whole = random && (total <= 1 || fastrand::bool());
                if whole {
                    w.throttled_requests += 1;
                    return (None, None);
                }
                let mut unprocessed = serde_json::Map::new();
                let mut accepted = 0usize;
                for (table, reqs) in items.iter_mut() {
                    let Some(list) = reqs.as_array_mut() else { continue };
                    let mut keep = Vec::new();
                    let mut back = Vec::new();
                    for r in list.drain(..) {
                        let drop_random = random && fastrand::bool();
                        if !drop_random && self.take(&mut w, table, request_wcu(&r)) {
                            keep.push(r);
                        } else if self.cfg.respell_unprocessed {
                            back.push(respell(r));
                        } else {
                            back.push(r);
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
                    return (None, None);
                }
                items.retain(|_, v| v.as_array().is_some_and(|a| !a.is_empty()));
                let merged = (!unprocessed.is_empty()).then_some(Value::Object(unprocessed));
                if merged.is_some() {
                    w.throttled_requests += 1;
                }
                (Some(serde_json::to_vec(&doc).expect("json")), merged)
            }
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let table = doc.get("TableName").and_then(Value::as_str).unwrap_or("").to_string();
                let cost = single_write_wcu(&doc);
                if random || !self.take(&mut w, &table, cost) {
                    w.throttled_requests += 1;
                    return (None, None);
                }
                // Ask the server what the write consumed, to charge the rest after it.
                doc["ReturnConsumedCapacity"] = json!("TOTAL");
                (Some(serde_json::to_vec(&doc).expect("json")), None)
            }
            _ => (Some(body.to_vec()), None),
        }
    }

    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (conn, _) = listener.accept().await?;
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.connection(conn).await {
                    tracing::debug!("proxy connection: {e}");
                }
            });
        }
    }

    async fn connection(&self, client: TcpStream) -> std::io::Result<()> {
        let mut client = BufReader::new(client);
        let mut upstream: Option<BufReader<TcpStream>> = None;
        loop {
            let Some((head, body)) = read_message(&mut client).await? else { return Ok(()) };
            let target = header(&head, "x-amz-target").and_then(|t| t.split('.').nth(1).map(str::to_string)).unwrap_or_default();
            let (forward, unprocessed) = self.decide(&target, &body);
            let Some(forward) = forward else {
                let err = json!({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": THROTTLE_MESSAGE});
                write_response(client.get_mut(), "HTTP/1.1 400 Bad Request", &err.to_string().into_bytes()).await?;
                continue;
            };
            let head = with_content_length(&head, forward.len());
            // An idle upstream connection may have been closed by the server: reconnect once.
            let mut reply = None;
            for _ in 0..2 {
                if upstream.is_none() {
                    upstream = Some(BufReader::new(TcpStream::connect(&self.cfg.upstream).await?));
                }
                let up = upstream.as_mut().expect("connected");
                let sent = async {
                    up.get_mut().write_all(head.as_bytes()).await?;
                    up.get_mut().write_all(&forward).await?;
                    read_message(up).await
                }
                .await;
                match sent {
                    Ok(Some(r)) => {
                        reply = Some(r);
                        break;
                    }
                    _ => upstream = None,
                }
            }
            let Some((rhead, rbody)) = reply else { return Err(std::io::Error::other("the upstream server closed the connection twice")) };
            let status = rhead.lines().next().unwrap_or("HTTP/1.1 500 Internal Server Error").to_string();
            let rbody = match unprocessed {
                Some(u) if status.contains(" 200") => {
                    let mut doc: Value = serde_json::from_slice(&rbody).unwrap_or_else(|_| json!({}));
                    doc["UnprocessedItems"] = u;
                    serde_json::to_vec(&doc).expect("json")
                }
                _ => rbody,
            };
            if matches!(target.as_str(), "PutItem" | "UpdateItem" | "DeleteItem") && status.contains(" 200") {
                let doc: Value = serde_json::from_slice(&rbody).unwrap_or_default();
                let used = doc["ConsumedCapacity"]["CapacityUnits"].as_f64().unwrap_or(0.0).ceil() as u64;
                let taken = serde_json::from_slice::<Value>(&body).map(|d| single_write_wcu(&d)).unwrap_or(1);
                let table = doc["ConsumedCapacity"]["TableName"].as_str().unwrap_or("");
                self.charge(table, used.saturating_sub(taken));
            }
            write_response(client.get_mut(), &status, &rbody).await?;
        }
    }

    pub fn throttled_requests(&self) -> u64 {
        self.windows.lock().unwrap_or_else(|e| e.into_inner()).throttled_requests
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

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn with_content_length(head: &str, len: usize) -> String {
    let mut out = String::new();
    for l in head.split("\r\n").filter(|l| !l.is_empty()) {
        if l.to_ascii_lowercase().starts_with("content-length:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str(&format!("content-length: {len}\r\n\r\n"));
    out
}

async fn write_response(w: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "{status}\r\ncontent-type: application/x-amz-json-1.0\r\nx-amz-crc32: {}\r\nx-amzn-requestid: m2d-proxy\r\ncontent-length: {}\r\n\r\n",
        crc32fast::hash(body),
        body.len()
    );
    w.write_all(head.as_bytes()).await?;
    w.write_all(body).await
}

/// Reads one HTTP/1.1 message with a Content-Length body. None at a clean end of stream.
async fn read_message(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<(String, Vec<u8>)>> {
    use tokio::io::AsyncBufReadExt;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).await?;
        if n == 0 {
            return if head.is_empty() { Ok(None) } else { Err(std::io::Error::other("truncated HTTP head")) };
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(line.trim_end_matches(['\r', '\n']));
        head.push_str("\r\n");
    }
    let len: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok(Some((head, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(wcu: u64, p: f64) -> Arc<Proxy> {
        Proxy::new(ProxyConfig { upstream: String::new(), wcu, table_wcu: HashMap::new(), throttle_probability: p, log: None, respell_unprocessed: false }).unwrap()
    }

    fn batch(n: usize) -> Vec<u8> {
        let reqs: Vec<Value> = (0..n).map(|i| json!({"PutRequest": {"Item": {"id": {"N": i.to_string()}}}})).collect();
        serde_json::to_vec(&json!({"RequestItems": {"t": reqs}})).unwrap()
    }

    #[test]
    fn capacity_splits_a_batch_into_written_and_unprocessed() {
        let p = proxy(10, 0.0);
        // Run within one wall-clock second so the window does not roll over mid-test.
        while SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_millis() > 800 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let (fwd, un) = p.decide("BatchWriteItem", &batch(25));
        let fwd: Value = serde_json::from_slice(&fwd.unwrap()).unwrap();
        assert_eq!(fwd["RequestItems"]["t"].as_array().unwrap().len(), 10);
        assert_eq!(un.unwrap()["t"].as_array().unwrap().len(), 15);
        let (fwd, _) = p.decide("BatchWriteItem", &batch(5));
        assert!(fwd.is_none(), "nothing fits: a whole-call throttle");
        assert_eq!(p.throttled_requests(), 2);
    }

    #[test]
    fn respelled_requests_are_the_same_values() {
        let r = respell(json!({"PutRequest": {"Item": {"id": {"N": "7"}, "p": {"N": "1.50"}, "s": {"SS": ["a", "b"]}}}}));
        assert_eq!(r, json!({"PutRequest": {"Item": {"id": {"N": "7.0"}, "p": {"N": "150E-2"}, "s": {"SS": ["b", "a"]}}}}));
    }
}
