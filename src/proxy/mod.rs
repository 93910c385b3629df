//! The capacity-enforcing proxy (test and benchmark support; binary `m2d-capacity-proxy`).
//! Local DynamoDB servers never throttle, so this HTTP/1.1 proxy sits in front of one and
//! enforces a provisioned write capacity per table per second (and, optionally, DynamoDB's
//! per-partition limit; see `capacity`), answering as DynamoDB does when it is exceeded: a
//! BatchWriteItem gets the items that do not fit back as UnprocessedItems (or a 400
//! ProvisionedThroughputExceededException with its ThrottlingReasons when none fit), single
//! writes get the 400. It can also throttle a fixed share of write requests at random, and logs
//! the WCU it let through per table and second, so benchmarks measure the achieved rate on the
//! server side. Single writes are charged what the server reports they consumed (an update of a
//! large item costs its size). With `respell_unprocessed` it hands UnprocessedItems back
//! re-serialised, as a real service may. With `null_writes` it is the null endpoint of the write
//! ceiling benchmark: every write is answered with success at once and only counted. With
//! `imports` it plays what moto's server leaves out of Import from S3 (`imports`).

mod capacity;
pub mod imports;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use capacity::{single_write_wcu, Capacity, Decision};
pub use capacity::{PARTITION_LIMIT, TABLE_LIMIT};

#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub upstream: String,
    /// WCU per second per table (tables not listed in `table_wcu`).
    pub wcu: u64,
    pub table_wcu: HashMap<String, u64>,
    /// DynamoDB's per-partition write limit (1,000 WCU/s), when enforced.
    pub partition_wcu: Option<u64>,
    /// Share of write requests throttled at random, 0…1.
    pub throttle_probability: f64,
    /// CSV of `second,table,wcu` let through.
    pub log: Option<std::path::PathBuf>,
    /// CSV of `second,table,partition,wcu,refused_wcu` (with `partition_wcu`).
    pub partition_log: Option<std::path::PathBuf>,
    /// Hand unprocessed requests back re-serialised (sets reordered, numbers respelled).
    pub respell_unprocessed: bool,
    /// Answer every write with success at once, without forwarding it (the null endpoint).
    pub null_writes: bool,
    /// Honour ImportTable's ClientToken and answer ListImports (see `imports`), with these faults.
    pub imports: Option<imports::ImportFaults>,
}

pub struct Proxy {
    cfg: ProxyConfig,
    capacity: Capacity,
    /// Write requests (items of a batch, single writes) answered by the null endpoint.
    null_items: AtomicU64,
    imports: Option<imports::Imports>,
}

const THROTTLE_MESSAGE: &str = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.";

const WRITES: &[&str] = &["BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem"];

/// The write requests in a BatchWriteItem body (one for a single write), counted without parsing
/// the JSON (the SDKs write it compact; an attribute's value is never an object with an Item).
fn write_requests(target: &str, body: &[u8]) -> u64 {
    if target != "BatchWriteItem" {
        return 1;
    }
    [&br#""PutRequest":{"Item""#[..], &br#""DeleteRequest":{"Key""#[..]].iter().map(|n| body.windows(n.len()).filter(|w| w == n).count() as u64).sum()
}

impl Proxy {
    pub fn new(cfg: ProxyConfig) -> std::io::Result<Arc<Proxy>> {
        let imports = cfg.imports.clone().map(imports::Imports::new);
        Ok(Arc::new(Proxy { capacity: Capacity::new(cfg.clone())?, cfg, null_items: AtomicU64::new(0), imports }))
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
        client.set_nodelay(true)?;
        let mut client = BufReader::new(client);
        let mut upstream: Option<BufReader<TcpStream>> = None;
        loop {
            let Some((head, body)) = read_message(&mut client).await? else { return Ok(()) };
            let target = header(&head, "x-amz-target").and_then(|t| t.split('.').nth(1).map(str::to_string)).unwrap_or_default();
            if self.cfg.null_writes && WRITES.contains(&target.as_str()) {
                self.null_items.fetch_add(write_requests(&target, &body), Ordering::Relaxed);
                let answer: &[u8] = if target == "BatchWriteItem" { br#"{"UnprocessedItems":{}}"# } else { b"{}" };
                write_response(client.get_mut(), "HTTP/1.1 200 OK", answer).await?;
                continue;
            }
            if let Some(step) = self.imports.as_ref().and_then(|i| i.step(&target, &body)) {
                let i = self.imports.as_ref().expect("imports");
                let (status, answer) = match step {
                    imports::Step::Answer(doc) => ("HTTP/1.1 200 OK".to_string(), doc.to_string().into_bytes()),
                    imports::Step::Forward => {
                        let (rhead, rbody) = call(&mut upstream, &self.cfg.upstream, &head, &body).await?;
                        let status = rhead.lines().next().unwrap_or_default().to_string();
                        let rbody = if status.contains(" 200") { i.answered(&target, &body, &rbody) } else { rbody };
                        (status, rbody)
                    }
                    imports::Step::Describe(arn) => {
                        let describe = head.replacen(&format!(".{target}"), ".DescribeImport", 1);
                        let (rhead, rbody) = call(&mut upstream, &self.cfg.upstream, &describe, json!({ "ImportArn": arn }).to_string().as_bytes()).await?;
                        (rhead.lines().next().unwrap_or_default().to_string(), i.answered("DescribeImport", &[], &rbody))
                    }
                };
                if i.lose_answer(&target) {
                    return Ok(());
                }
                write_response(client.get_mut(), &status, &answer).await?;
                continue;
            }
            let (forward, unprocessed) = match self.capacity.decide(&target, &body) {
                Decision::Forward(f, u) => (f, u),
                Decision::Throttle(reason) => {
                    let err = json!({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": THROTTLE_MESSAGE,
                        "ThrottlingReasons": [{"reason": reason, "resource": "arn:aws:dynamodb:local:000000000000:table/proxied"}]});
                    write_response(client.get_mut(), "HTTP/1.1 400 Bad Request", &err.to_string().into_bytes()).await?;
                    continue;
                }
            };
            let (rhead, rbody) = call(&mut upstream, &self.cfg.upstream, &head, &forward).await?;
            let status = rhead.lines().next().unwrap_or("HTTP/1.1 500 Internal Server Error").to_string();
            if matches!(target.as_str(), "CreateTable" | "DescribeTable") && status.contains(" 200") {
                self.capacity.learn(&rbody);
            }
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
                self.capacity.charge(table, used.saturating_sub(taken));
            }
            write_response(client.get_mut(), &status, &rbody).await?;
        }
    }

    pub fn throttled_requests(&self) -> u64 {
        self.capacity.throttled_requests()
    }

    /// Write requests the null endpoint answered.
    pub fn null_items(&self) -> u64 {
        self.null_items.load(Ordering::Relaxed)
    }
}

/// Sends one request upstream on the connection kept in `upstream` and reads its answer. An idle
/// connection may have been closed by the server: reconnect once.
async fn call(upstream: &mut Option<BufReader<TcpStream>>, addr: &str, head: &str, body: &[u8]) -> std::io::Result<(String, Vec<u8>)> {
    let head = with_content_length(head, body.len());
    for _ in 0..2 {
        if upstream.is_none() {
            let up = TcpStream::connect(addr).await?;
            up.set_nodelay(true)?;
            *upstream = Some(BufReader::new(up));
        }
        let up = upstream.as_mut().expect("connected");
        let sent = async {
            up.get_mut().write_all(head.as_bytes()).await?;
            up.get_mut().write_all(body).await?;
            read_message(up).await
        }
        .await;
        match sent {
            Ok(Some(r)) => {
                // A server that says it closes may keep the socket open a while, answering
                // nothing more on it (moto's): never send on it again.
                if header(&r.0, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                    *upstream = None;
                }
                return Ok(r);
            }
            _ => *upstream = None,
        }
    }
    Err(std::io::Error::other("the upstream server closed the connection twice"))
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
    // One write: a head and a body written apart wait on Nagle's algorithm for the peer's
    // delayed ACK (40 ms on Linux) whenever the connection is not TCP_NODELAY.
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    w.write_all(&message).await
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

    #[test]
    fn the_null_endpoint_counts_the_requests_of_a_batch() {
        let body = br#"{"RequestItems":{"t":[{"PutRequest":{"Item":{}}},{"DeleteRequest":{"Key":{}}},{"PutRequest":{"Item":{"PutRequest":{"S":"x"}}}}]}}"#;
        // An attribute named like a request is not one.
        assert_eq!(write_requests("BatchWriteItem", body), 3);
        assert_eq!(write_requests("PutItem", b"{}"), 1);
    }
}
