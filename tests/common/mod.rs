//! Shared helpers for the integration tests: start the real local servers once (scripts/
//! services.sh up, behind its own lock), give each test its own database, run the binary as a
//! user would, and render rows as canonical text, from MySQL (binary protocol, read here
//! independently of the exporter) and from exported Parquet/CSV chunks, so they can be compared.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine;
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use mysql2ddb::manifest::{ChunkState, Manifest, TableEntry};
use mysql2ddb::source::types::ColumnKind;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub mod cdc;
pub mod corpus;
pub mod ddb;
pub mod fake_mysql;
pub mod servers;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The exports of `scripts/services.sh env`, after starting the servers once per test binary.
pub fn services() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let up = Command::new("bash").arg(root().join("scripts/services.sh")).arg("up").status().expect("run services.sh");
        assert!(up.success(), "scripts/services.sh up failed");
        let out = Command::new("bash").arg(root().join("scripts/services.sh")).arg("env").output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect()
    })
}

pub fn mysql_url() -> String {
    services()["M2D_MYSQL_URL"].clone()
}

pub fn connect() -> Conn {
    connect_to(&mysql_url())
}

/// A session on the server at `url`, utf8mb4 and UTC.
pub fn connect_to(url: &str) -> Conn {
    let mut conn = Conn::new(mysql::Opts::from_url(url).unwrap()).expect("connect to local MariaDB");
    conn.query_drop("SET NAMES utf8mb4, time_zone = '+00:00'").unwrap();
    conn
}

/// A fresh, empty database for one test (dropped first if an earlier run left it).
pub fn fresh_db(conn: &mut Conn, name: &str) -> String {
    let db = format!("it_{name}");
    let quoted = format!("`{}`", db.replace('`', "``"));
    conn.query_drop(format!("DROP DATABASE IF EXISTS {quoted}")).unwrap();
    conn.query_drop(format!("CREATE DATABASE {quoted}")).unwrap();
    // The Sequence engine's seq_1_to_N tables resolve in the current database.
    conn.query_drop(format!("USE {quoted}")).unwrap();
    db
}

/// The local servers' AWS settings (s3s-fs for S3, path-style) on `cmd`, none of the user's.
pub fn s3_env(cmd: &mut Command) -> &mut Command {
    for (k, v) in services() {
        if k.starts_with("AWS_") || k == "M2D_S3_PATH_STYLE" {
            cmd.env(k, v);
        }
    }
    cmd.env_remove("AWS_PROFILE").env_remove("AWS_ENDPOINT_URL")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mysql2ddb")
}

/// `mysql2ddb export --source <local> --out <out> --quiet <args…>`.
pub fn export(out: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(["export", "--source", &mysql_url(), "--out"])
        .arg(out)
        .arg("--quiet")
        .args(args)
        .env_remove("MYSQL_PWD")
        .output()
        .expect("run mysql2ddb")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "export failed ({:?}): {}", o.status.code(), stderr(o));
}

pub fn manifest(run: &Path) -> Manifest {
    Manifest::load(run).unwrap().expect("manifest exists")
}

pub fn entry<'a>(m: &'a Manifest, db: &str, table: &str) -> &'a TableEntry {
    m.tables.iter().find(|t| t.schema.database == db && t.schema.table == table).expect("table in manifest")
}

fn fraction(micro: u32, fsp: u8) -> String {
    if fsp == 0 {
        String::new()
    } else {
        format!(".{}", &format!("{micro:06}")[..fsp as usize])
    }
}

fn fsp_of(kind: &ColumnKind) -> u8 {
    match kind {
        ColumnKind::DateTime { fsp } | ColumnKind::Timestamp { fsp } | ColumnKind::Time { fsp } => *fsp,
        _ => 0,
    }
}

/// Canonical text of a value as MySQL's binary protocol returns it.
pub fn render_mysql(kind: &ColumnKind, v: &Value) -> String {
    match (kind, v) {
        (_, Value::NULL) => "NULL".into(),
        (_, Value::Int(i)) => i.to_string(),
        (_, Value::UInt(u)) => u.to_string(),
        (_, Value::Float(f)) => f.to_string(),
        (_, Value::Double(d)) => d.to_string(),
        (ColumnKind::Date, Value::Date(y, m, d, ..)) => format!("{y:04}-{m:02}-{d:02}"),
        (k, Value::Date(y, m, d, h, mi, s, us)) => {
            format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}{}", fraction(*us, fsp_of(k)))
        }
        (k, Value::Time(neg, days, h, m, s, us)) => format!(
            "{}{:02}:{m:02}:{s:02}{}",
            if *neg { "-" } else { "" },
            *days * 24 + *h as u32,
            fraction(*us, fsp_of(k))
        ),
        (ColumnKind::Binary, Value::Bytes(b)) => hex::encode(b),
        (ColumnKind::Spatial, Value::Bytes(b)) => hex::encode(&b[4..]),
        (ColumnKind::Bit { .. }, Value::Bytes(b)) => b.iter().fold(0u64, |a, x| (a << 8) | *x as u64).to_string(),
        (_, Value::Bytes(b)) => String::from_utf8(b.clone()).expect("utf8 text"),
    }
}

/// Every row of `db.table` from MySQL, rendered, sorted.
pub fn mysql_rows(conn: &mut Conn, db: &str, table: &str, kinds: &[(String, ColumnKind)]) -> Vec<Vec<String>> {
    let cols: Vec<String> = kinds.iter().map(|(n, _)| format!("`{}`", n.replace('`', "``"))).collect();
    let sql = format!("SELECT {} FROM `{}`.`{}`", cols.join(", "), db.replace('`', "``"), table.replace('`', "``"));
    let mut rows: Vec<Vec<String>> = conn
        .exec_iter(sql, ())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            kinds.iter().enumerate().map(|(i, (_, k))| render_mysql(k, &r[i])).collect()
        })
        .collect();
    rows.sort();
    rows
}

pub fn kinds(e: &TableEntry) -> Vec<(String, ColumnKind)> {
    e.schema.columns.iter().map(|c| (c.name.clone(), c.kind)).collect()
}

fn render_arrow(a: &ArrayRef, i: usize, kind: &ColumnKind) -> String {
    if a.is_null(i) {
        return "NULL".into();
    }
    let ts = |v: i64, unit: &TimeUnit| {
        let nanos = match unit {
            TimeUnit::Second => v as i128 * 1_000_000_000,
            TimeUnit::Millisecond => v as i128 * 1_000_000,
            TimeUnit::Microsecond => v as i128 * 1_000,
            TimeUnit::Nanosecond => v as i128,
        };
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{}",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            fraction(t.microsecond(), fsp_of(kind))
        )
    };
    let dur = |v: i64, unit: &TimeUnit| {
        let us = match unit {
            TimeUnit::Second => v * 1_000_000,
            TimeUnit::Millisecond => v * 1_000,
            _ => v,
        };
        let m = us.unsigned_abs();
        let secs = m / 1_000_000;
        format!(
            "{}{:02}:{:02}:{:02}{}",
            if us < 0 { "-" } else { "" },
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            fraction((m % 1_000_000) as u32, fsp_of(kind))
        )
    };
    match a.data_type() {
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).to_string(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).to_string(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).to_string(),
        DataType::Float32 => a.as_primitive::<Float32Type>().value(i).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(i).to_string(),
        DataType::Decimal128(..) => a.as_primitive::<Decimal128Type>().value_as_string(i),
        DataType::Decimal256(..) => a.as_primitive::<Decimal256Type>().value_as_string(i),
        DataType::Date32 => {
            let days = a.as_primitive::<Date32Type>().value(i);
            let d = time::Date::from_julian_day(days + 2_440_588).unwrap();
            format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
        }
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i),
                _ => a.as_primitive::<TimestampMicrosecondType>().value(i),
            };
            ts(v, unit)
        }
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<DurationSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<DurationMillisecondType>().value(i),
                _ => a.as_primitive::<DurationMicrosecondType>().value(i),
            };
            dur(v, unit)
        }
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        DataType::Binary => hex::encode(a.as_binary::<i32>().value(i)),
        DataType::List(_) => {
            let list = a.as_list::<i32>().value(i);
            let s = list.as_string::<i32>();
            (0..s.len()).map(|j| s.value(j).to_string()).collect::<Vec<_>>().join(",")
        }
        other => panic!("unexpected arrow type {other}"),
    }
}

/// Every row of one table's complete Parquet chunks, rendered, sorted.
pub fn parquet_rows(run: &Path, e: &TableEntry) -> Vec<Vec<String>> {
    let kinds = kinds(e);
    let mut rows = Vec::new();
    for c in &e.chunks {
        assert_eq!(c.state, ChunkState::Complete, "chunk {} of {} complete", c.id, e.schema.table);
        let file = std::fs::File::open(run.join(&c.file)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                rows.push((0..batch.num_columns()).map(|j| render_arrow(batch.column(j), i, &kinds[j].1)).collect());
            }
        }
    }
    rows.sort();
    rows
}

/// Every row of one table's CSV chunks, decoded by the manifest's encodings, rendered, sorted.
pub fn csv_rows(run: &Path, e: &TableEntry) -> Vec<Vec<String>> {
    let kinds = kinds(e);
    let mut rows = Vec::new();
    for c in &e.chunks {
        let mut r = csv::ReaderBuilder::new().has_headers(true).from_path(run.join(&c.file)).unwrap();
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, kinds.iter().map(|k| k.0.clone()).collect::<Vec<_>>(), "CSV header names the columns");
        for rec in r.records() {
            let rec = rec.unwrap();
            rows.push(
                rec.iter()
                    .zip(&kinds)
                    .map(|(f, (_, k))| match mysql2ddb::export::csv_sink::unescape_field(f) {
                        None => "NULL".to_string(),
                        Some(s) => match k {
                            ColumnKind::Binary | ColumnKind::Spatial => {
                                hex::encode(base64::engine::general_purpose::STANDARD.decode(s).unwrap())
                            }
                            _ => s.to_string(),
                        },
                    })
                    .collect(),
            );
        }
    }
    rows.sort();
    rows
}

/// Creates a moto bucket and puts objects with the given keys (and a body naming them), with boto3.
pub fn moto_put(bucket: &str, keys: &[&str]) {
    let script = format!(
        "import boto3,sys\ns3=boto3.client('s3',endpoint_url='{}',region_name='us-east-1',aws_access_key_id='x',aws_secret_access_key='x')\n\
         try:\n    s3.create_bucket(Bucket='{bucket}')\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n    pass\n\
         for k in sys.argv[1:]:\n    s3.put_object(Bucket='{bucket}',Key=k,Body=('written from '+k).encode())\n    assert any(o['Key']==k for o in s3.list_objects_v2(Bucket='{bucket}',Prefix=k)['Contents']), k\n",
        services()["M2D_MOTO_ENDPOINT"]
    );
    let out = Command::new(&services()["M2D_PYTHON"]).arg("-c").arg(script).args(keys).output().unwrap();
    assert!(out.status.success(), "boto3 put: {}", stderr(&out));
}

/// `len` bytes of xorshift output from `seed`: a file no compression or dedup shortens.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every object of a moto bucket as (key, size), listed by boto3.
pub fn moto_objects(bucket: &str) -> Vec<(String, u64)> {
    let script = format!(
        "import boto3\ns3=boto3.client('s3',endpoint_url='{}',region_name='us-east-1',aws_access_key_id='x',aws_secret_access_key='x')\n\
         for o in s3.list_objects_v2(Bucket='{bucket}').get('Contents', []): print(o['Size'], o['Key'])\n",
        services()["M2D_MOTO_ENDPOINT"]
    );
    let out = Command::new(&services()["M2D_PYTHON"]).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "boto3 list: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split_once(' ').map(|(n, k)| (k.to_string(), n.parse().unwrap())).unwrap()).collect()
}

/// A mapping (written to `dir/mapping.json`) that groups `db.purchase` into one item per
/// (customer, order) in table `<db>_orders`, its products pivoted to quantities.
pub fn grouping_mapping(dir: &Path, db: &str) -> PathBuf {
    let p = dir.join("mapping.json");
    std::fs::write(
        &p,
        format!(
            r#"{{"rules": [
          {{"rule-type": "selection", "rule-id": "1", "rule-name": "all",
           "object-locator": {{"schema-name": "{db}", "table-name": "%"}}, "rule-action": "include"}},
          {{"rule-type": "object-mapping", "rule-id": "2", "rule-name": "orders", "rule-action": "group-records-to-item",
           "object-locator": {{"schema-name": "{db}", "table-name": "purchase"}}, "target-table-name": "{db}_orders",
           "mapping-parameters": {{"partition-key-name": "customerid", "sort-key-name": "orderid",
             "pivot": {{"name": "${{productid}}", "value": "${{quantity}}"}}}}}}]}}"#
        ),
    )
    .unwrap();
    p
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Parses what `http://ADDR/metrics` serves with Python's `prometheus_client` (an independent
/// parser): each sample as `name{label="v",…}` (labels sorted) to its value; None while
/// nothing answers there.
pub type Samples = std::collections::BTreeMap<String, f64>;

pub fn scrape(addr: &str) -> Option<Samples> {
    const PARSE: &str = r#"
import sys, json, urllib.request
from prometheus_client.parser import text_string_to_metric_families
try:
    text = urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=5).read().decode()
except OSError:
    sys.exit(3)
out = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        out[s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps(out))
"#;
    let out = Command::new(&services()["M2D_PYTHON"]).arg("-c").arg(PARSE).arg(addr).output().expect("run the venv's python");
    if out.status.code() == Some(3) {
        return None;
    }
    assert!(out.status.success(), "prometheus_client could not parse the metrics: {}", stderr(&out));
    Some(serde_json::from_slice(&out.stdout).expect("the parser's JSON"))
}
