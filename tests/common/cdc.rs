//! `mysql2ddb cdc …` and `verify --against-source` as a user runs them, with the local servers'
//! environment, and the workload they run against a source: shared by the change-capture, managed-source and failover tests and the type-conformance suite.

use std::path::Path;
use std::process::{Command, Output};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql::prelude::Queryable;

use super::ddb::dynalite;
use super::{bin, mysql_url, services, stderr};

pub fn cdc_cmd(args: &[&str], run: &Path) -> Command {
    let env = services();
    let mut cmd = Command::new(bin());
    cmd.arg("cdc").args(args).arg("--from").arg(run);
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        cmd.env(k, &env[k]);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true").env("M2D_SOURCE", mysql_url());
    cmd
}

pub fn capture(run: &Path) -> Output {
    cdc_cmd(&["capture", "--quiet"], run).output().unwrap()
}

/// Capture renders each staged line itself, from the row image: every line of `run`'s segments,
/// read back with serde_json as apply reads it and written again by serde_json, must be the same
/// bytes (its escapes, base64, numbers and members). Returns how many lines were checked.
pub fn assert_staged_lines_as_serde_writes_them(run: &Path, what: &str) -> usize {
    let mut lines = 0;
    for entry in std::fs::read_dir(run.join("cdc/segments")).unwrap().flatten() {
        let text = std::fs::read(entry.path()).unwrap();
        for line in text.split_inclusive(|&b| b == b'\n') {
            let change: mysql2ddb::cdc::event::Change = serde_json::from_slice(line).unwrap_or_else(|e| panic!("{what}: a staged line does not read: {e}"));
            let mut again = Vec::new();
            change.to_line(&mut again);
            assert_eq!(String::from_utf8_lossy(&again), String::from_utf8_lossy(line), "{what}: a staged line serde_json writes otherwise");
            lines += 1;
        }
    }
    lines
}

pub fn apply(run: &Path, mapping: &Path) -> Output {
    apply_to(run, mapping, &dynalite())
}

pub fn apply_to(run: &Path, mapping: &Path, endpoint: &str) -> Output {
    apply_with(run, endpoint, &["--mapping", mapping.to_str().unwrap()])
}

/// `cdc apply --quiet --endpoint <endpoint> <args…>`.
pub fn apply_with(run: &Path, endpoint: &str, args: &[&str]) -> Output {
    cdc_cmd(&["apply", "--quiet", "--endpoint", endpoint], run).args(args).output().unwrap()
}

pub fn verify_against_source(run: &Path, mapping: &Path) -> Output {
    verify_against_source_at(run, mapping, &dynalite())
}

pub fn verify_against_source_at(run: &Path, mapping: &Path, endpoint: &str) -> Output {
    verify_against_source_with(run, endpoint, &["--mapping", mapping.to_str().unwrap()])
}

/// `verify --quiet --endpoint <endpoint> --against-source <local> <args…> --from <run>`.
pub fn verify_against_source_with(run: &Path, endpoint: &str, args: &[&str]) -> Output {
    verify_against_url(&mysql_url(), run, endpoint, args)
}

/// `verify --quiet --endpoint <endpoint> --against-source <url> <args…> --from <run>`.
pub fn verify_against_url(url: &str, run: &Path, endpoint: &str, args: &[&str]) -> Output {
    verify_with(run, endpoint, &[&["--against-source", url][..], args].concat())
}

/// `verify --quiet --endpoint <endpoint> <args…> --from <run>` with local credentials.
pub fn verify_with(run: &Path, endpoint: &str, args: &[&str]) -> Output {
    let env = services();
    Command::new(bin())
        .args(["verify", "--quiet", "--endpoint", endpoint])
        .args(args)
        .arg("--from")
        .arg(run)
        .envs(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"].map(|k| (k, env[k].clone())))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

pub fn ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed ({:?}): {}{}", o.status.code(), String::from_utf8_lossy(&o.stdout), stderr(o));
}

static NEXT_ROW: AtomicU64 = AtomicU64::new(100_001);

/// Random inserts, updates (quantity, value, and primary keys) and deletes, some in
/// multi-statement transactions, until `stop`.
/// (On the server at `url`.)
pub fn workload(url: String, db: String, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut conn = super::connect_to(&url);
        conn.query_drop(format!("USE `{db}`")).unwrap();
        while !stop.load(Ordering::Relaxed) {
            // One sequence for every workload of the process: a second workload on a replica
            // that holds the first one's rows never inserts a key it already has.
            let next = NEXT_ROW.fetch_add(1, Ordering::Relaxed);
            let c = fastrand::u32(0..20);
            let o = fastrand::u32(0..30);
            let p = fastrand::u32(0..8);
            let stmt = match fastrand::u32(0..9) {
                0 => format!("INSERT IGNORE INTO purchase VALUES ('c{c}', 'o{o}', 'p{p}', {})", fastrand::u32(1..99)),
                1 => format!("UPDATE purchase SET quantity = quantity + 1 WHERE customerid = 'c{c}' AND orderid = 'o{o}' LIMIT 2"),
                2 => format!("UPDATE IGNORE purchase SET productid = 'p{}' WHERE customerid = 'c{c}' AND orderid = 'o{o}' AND productid = 'p{p}'", fastrand::u32(0..8)),
                3 => format!("DELETE FROM purchase WHERE customerid = 'c{c}' AND orderid = 'o{o}' AND productid = 'p{p}'"),
                4 => format!("INSERT INTO big VALUES ({}, 'v{next}', {}.25)", u64::MAX - next, next % 1000),
                5 => format!("UPDATE big SET v = 'u{next}', amount = amount + 1 WHERE id % 17 = {}", next % 17),
                6 => "UPDATE IGNORE big SET id = id - 1000000 WHERE id = (SELECT id FROM (SELECT id FROM big ORDER BY RAND() LIMIT 1) x)".to_string(),
                7 => format!("DELETE FROM big WHERE id % 29 = {}", next % 29),
                _ => format!(
                    "START TRANSACTION; INSERT IGNORE INTO purchase VALUES ('c{c}', 'o{o}', 'p9', 1); UPDATE big SET v = 'tx{next}' WHERE id % 13 = 1; DELETE FROM purchase WHERE customerid = 'c{c}' AND orderid = 'o{}' LIMIT 1; COMMIT",
                    (o + 1) % 30
                ),
            };
            conn.query_drop(&stmt).unwrap_or_else(|e| panic!("{stmt}: {e}"));
            done.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// The tables the workload changes, seeded, in the connection's current database.
pub fn seed_tables(conn: &mut mysql::Conn) {
    conn.query_drop("CREATE TABLE purchase (customerid VARCHAR(10), orderid VARCHAR(10), productid VARCHAR(10), quantity INT NOT NULL, PRIMARY KEY (customerid, orderid, productid))").unwrap();
    conn.query_drop("INSERT INTO purchase SELECT CONCAT('c', seq % 20), CONCAT('o', seq DIV 20 % 30), CONCAT('p', seq DIV 600 % 8), seq FROM seq_1_to_2000").unwrap();
    conn.query_drop("CREATE TABLE big (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(20) NOT NULL, amount DECIMAL(10,2))").unwrap();
    conn.query_drop("INSERT INTO big SELECT 18446744073709000000 + seq, CONCAT('v', seq), seq / 4 FROM seq_1_to_500").unwrap();
}

/// Every table of `db`, record to record.
pub fn automatic_mapping(dir: &Path, db: &str) -> std::path::PathBuf {
    let p = dir.join("mapping.json");
    std::fs::write(
        &p,
        format!(r#"{{"rules": [{{"rule-type": "selection", "rule-id": "1", "rule-name": "all", "object-locator": {{"schema-name": "{db}", "table-name": "%"}}, "rule-action": "include"}}]}}"#),
    )
    .unwrap();
    p
}

