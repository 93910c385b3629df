//! The same answer at every size. One dataset — a grouped mapping with a sort key (purchase),
//! tables in automatic mode (a BIGINT UNSIGNED key near 2^64, a table of every common type, a
//! table of large blobs) — runs through the whole pipeline under several sizes: chunk rows,
//! export threads, bucket rows, capture's segment cut, and a sync to S3 in 5 MiB parts and back.
//! Every configuration must reach the same DynamoDB state, `verify` (from the run, and against
//! the source after a change workload touching every type) must find 0 differences in each, and
//! the same two differences injected into DynamoDB must be found in each. Sizes that make many
//! chunks, buckets and segments from a few thousand rows keep it inside `make test`.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_dynamodb::types::AttributeValue;
use common::cdc::{apply_with, cdc_cmd, ok, seed_tables, verify_against_source_with};
use common::ddb::{client, drop_table, dynalite, import, runtime, scan};
use common::{bin, connect, fresh_db, services, stderr};
use mysql::prelude::Queryable;

struct Config {
    name: &'static str,
    export: &'static [&'static str],
    /// Mapping sizes, given to import, apply and verify alike.
    map: &'static [&'static str],
    capture: &'static [&'static str],
    /// Sync the run to S3 in parts of this many MiB, and work from a copy synced back.
    part_mb: Option<&'static str>,
}

const CONFIGS: [Config; 3] = [
    Config { name: "base", export: &[], map: &[], capture: &[], part_mb: None },
    Config { name: "tiny", export: &["--chunk-rows", "37", "--threads", "1"], map: &["--bucket-rows", "23"], capture: &["--segment-changes", "3"], part_mb: None },
    Config { name: "four", export: &["--chunk-rows", "257", "--threads", "4"], map: &["--bucket-rows", "101"], capture: &["--segment-changes", "40"], part_mb: Some("5") },
];

const TABLES: [&str; 4] = ["orders", "big", "typed", "blobs"];

fn typed_table(c: &mut mysql::Conn) {
    c.query_drop(
        "CREATE TABLE typed (id INT PRIMARY KEY, i8 TINYINT, u64 BIGINT UNSIGNED, d DECIMAL(65,30), f FLOAT, g DOUBLE, dt DATETIME(6), \
         ts TIMESTAMP(3) NULL, dd DATE, tm TIME(6), y YEAR, e ENUM('a','b','é'), st SET('x','y','z'), j JSON, bt BIT(64), vb VARBINARY(32), \
         tx TEXT CHARACTER SET utf8mb4, l1 VARCHAR(20) CHARACTER SET latin1, ch CHAR(8), u UUID)",
    )
    .unwrap();
    c.query_drop(
        "INSERT INTO typed SELECT seq, CAST(seq % 256 AS SIGNED) - 128, 18446744073709551615 - seq, seq / 7, seq / 4, seq * 1.5e10, \
         TIMESTAMP('2024-02-29 23:59:59.999999') + INTERVAL seq SECOND, TIMESTAMP('2001-01-01 00:00:00.125') + INTERVAL seq MINUTE, \
         DATE('1969-07-20') + INTERVAL seq DAY, SEC_TO_TIME(CAST(seq AS SIGNED) * 61 - 30000) + INTERVAL 250 MICROSECOND, 1901 + seq % 255, \
         ELT(1 + seq % 3, 'a', 'b', 'é'), ELT(1 + seq % 4, '', 'x', 'x,y', 'x,y,z'), JSON_OBJECT('n', seq, 'half', seq / 2, 'tags', JSON_ARRAY('t', seq % 3)), \
         seq * 1000003, UNHEX(LPAD(HEX(seq), 8, '0')), CONCAT('text ', seq, ' 😀'), CONCAT('é', seq), CONCAT('c', seq % 10), \
         CONCAT('6ccd780c-baba-1026-9564-', LPAD(HEX(seq), 12, '0')) FROM seq_1_to_1000",
    )
    .unwrap();
    c.query_drop("UPDATE typed SET i8 = NULL, d = NULL, j = NULL, tx = '', st = NULL WHERE id % 11 = 0").unwrap();
}

fn blobs_table(c: &mut mysql::Conn) {
    c.query_drop("CREATE TABLE blobs (id INT PRIMARY KEY, body MEDIUMBLOB NOT NULL)").unwrap();
    for id in 1..=45 {
        let body: Vec<u8> = (0..150_000).map(|_| fastrand::u8(..)).collect();
        c.exec_drop("INSERT INTO blobs VALUES (?, ?)", (id, body)).unwrap();
    }
}

/// Changes on every table and type, some in multi-statement transactions, one touching hundreds
/// of rows at once (more than any segment cut).
fn workload(c: &mut mysql::Conn) {
    let statements = [
        "INSERT INTO purchase VALUES ('c1', 'o99', 'p1', 5), ('c2', 'o98', 'p2', 6), ('new', 'o1', 'p1', 7)",
        "UPDATE purchase SET quantity = quantity + 100 WHERE customerid = 'c3'",
        "DELETE FROM purchase WHERE customerid = 'c4' AND orderid = 'o5'",
        "UPDATE purchase SET orderid = 'o77' WHERE customerid = 'c5' AND orderid = 'o6'",
        "UPDATE purchase SET productid = 'p7' WHERE customerid = 'c6' AND orderid = 'o7' AND productid = 'p0'",
        "START TRANSACTION; INSERT INTO big VALUES (18446744073709551615, 'max', 1.25); UPDATE big SET v = 'moved', amount = NULL WHERE id % 7 = 0; DELETE FROM big WHERE id % 13 = 0; COMMIT",
        "UPDATE big SET id = id - 1000000 WHERE id = 18446744073709000001",
        "INSERT INTO typed (id, i8, u64, d, f, g, dt, ts, dd, tm, y, e, st, j, bt, vb, tx, l1, ch, u) VALUES \
         (5001, -128, 18446744073709551615, '-99999999999999999999999999999999999.999999999999999999999999999999', -3.5, 1e120, '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01.5', '1000-01-01', '-838:59:59', 2155, 'é', 'x,z', '{\"a\": [1, 2.5, null, true], \"b\": \"\\u00e9\"}', 18446744073709551615, X'00ff00', '', 'ÿ', 'pad', 'ffffffff-ffff-ffff-ffff-ffffffffffff'), \
         (5002, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        "UPDATE typed SET i8 = IF(i8 = -128, 127, -i8), u64 = u64 - 1, d = d + 0.000000000000000000000000000001, f = f * 2, g = -g, dt = dt + INTERVAL 1 MICROSECOND, \
         ts = ts + INTERVAL 1 SECOND, dd = dd - INTERVAL 1 DAY, tm = tm - INTERVAL 1 SECOND, y = 2000, e = 'é', st = 'y', j = JSON_SET(COALESCE(j, '{}'), '$.changed', TRUE), \
         bt = bt ^ 1, vb = X'', tx = CONCAT(COALESCE(tx, ''), '𝄞'), l1 = 'ü', ch = 'z', u = '00000000-0000-0000-0000-000000000001' WHERE id % 50 = 1 AND id < 5000",
        "UPDATE typed SET f = NULL, g = NULL, dt = NULL, ts = NULL, dd = NULL, tm = NULL, y = NULL, e = NULL, bt = NULL, vb = NULL, l1 = NULL, ch = NULL, u = NULL WHERE id % 50 = 2",
        "UPDATE typed SET tx = CONCAT('bulk ', id) WHERE id <= 300",
        "DELETE FROM typed WHERE id % 97 = 0",
        "UPDATE blobs SET body = UNHEX('00ff') WHERE id = 3",
        "DELETE FROM blobs WHERE id = 4",
    ];
    for s in statements {
        c.query_drop(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

fn target(cfg: &Config, table: &str) -> String {
    format!("it_same_{}_{table}", cfg.name)
}

fn mapping(dir: &Path, db: &str, cfg: &Config) -> PathBuf {
    let p = dir.join(format!("mapping-{}.json", cfg.name));
    let text = format!(
        r#"{{"rules": [
          {{"rule-type": "selection", "rule-id": "1", "rule-name": "all", "object-locator": {{"schema-name": "{db}", "table-name": "%"}}, "rule-action": "include"}},
          {{"rule-type": "object-mapping", "rule-id": "2", "rule-name": "orders", "rule-action": "group-records-to-item",
           "object-locator": {{"schema-name": "{db}", "table-name": "purchase"}}, "target-table-name": "{}",
           "mapping-parameters": {{"partition-key-name": "customerid", "sort-key-name": "orderid", "pivot": {{"name": "${{productid}}", "value": "${{quantity}}"}}}}}}]}}"#,
        target(cfg, "orders")
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// The mapping flags of a configuration: its mapping file, its table names, its sizes.
fn map_args(map: &Path, cfg: &Config) -> Vec<String> {
    let mut args = vec!["--mapping".to_string(), map.display().to_string(), "--table-name-template".into(), format!("it_same_{}_{{table}}", cfg.name)];
    args.extend(cfg.map.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn s3_sync(from: &str, to: &str, args: &[&str]) -> Output {
    common::s3_env(Command::new(bin()).args(["sync", "--quiet", from, to]).args(args)).output().unwrap()
}

/// A table's items as comparable text: canonical values, in key order.
fn state(table: &str) -> Vec<String> {
    let mut items: Vec<String> = scan(&dynalite(), table)
        .iter()
        .map(|item| format!("{:?}", item.iter().map(|(k, v)| (k.clone(), mysql2ddb::verify::canonical(v))).collect::<BTreeMap<_, _>>()))
        .collect();
    items.sort();
    items
}

fn differences(out: &Output) -> u64 {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.strip_suffix(" differences").and_then(|n| n.trim().parse().ok())).unwrap_or(u64::MAX)
}

#[test]
fn every_size_gives_the_same_dynamodb_state_and_verify_agrees() {
    let mut c = connect();
    let db = fresh_db(&mut c, "same_answer");
    seed_tables(&mut c);
    typed_table(&mut c);
    blobs_table(&mut c);
    c.query_drop("ANALYZE TABLE purchase, big, typed, blobs").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("it-same-{}", std::process::id());
    std::fs::create_dir_all(PathBuf::from(&services()["M2D_S3_DATA"]).join(&bucket)).unwrap();

    // Every run exported from the same state, then imported and verified from its chunks.
    let mut runs = Vec::new();
    for cfg in &CONFIGS {
        let mut run = dir.path().join(cfg.name).join("run");
        let out = Command::new(bin()).args(["export", "--quiet", "--databases", &db, "--source", &common::mysql_url(), "--out"]).arg(&run).args(cfg.export).output().unwrap();
        ok(&out, &format!("{}: export", cfg.name));
        if let Some(part) = cfg.part_mb {
            let blob = common::manifest(&run).tables.iter().find(|t| t.schema.table == "blobs").unwrap().chunks.iter().map(|c| c.bytes).max().unwrap();
            assert!(blob > 5 << 20, "{}: a chunk file of {blob} bytes is sent in more than one part", cfg.name);
            let dest = format!("s3://{bucket}/{}", cfg.name);
            ok(&s3_sync(run.to_str().unwrap(), &dest, &["--part-size-mb", part, "--concurrency", "2"]), "sync up");
            let back = dir.path().join(cfg.name).join("synced");
            ok(&s3_sync(&dest, back.to_str().unwrap(), &[]), "sync down");
            run = back;
        }
        let map = mapping(dir.path(), &db, cfg);
        let args = map_args(&map, cfg);
        for t in TABLES {
            drop_table(&dynalite(), &target(cfg, t));
        }
        ok(&import(&run, &dynalite(), &[&strs(&args)[..], &["--create-tables", "--wcu", "0"]].concat()), &format!("{}: import", cfg.name));
        // Regression: verify of the sort-key table found thousands of false differences once
        // the table spanned more than one bucket.
        let out = common::cdc::verify_with(&run, &dynalite(), &strs(&args));
        assert_eq!(differences(&out), 0, "{}: verify from the run: {}{}", cfg.name, String::from_utf8_lossy(&out.stdout), stderr(&out));
        runs.push((run, args));
    }
    let imported: Vec<Vec<Vec<String>>> = CONFIGS.iter().map(|cfg| TABLES.iter().map(|t| state(&target(cfg, t))).collect()).collect();
    for (cfg, tables) in CONFIGS.iter().zip(&imported).skip(1) {
        assert!(tables == &imported[0], "{}: the imported tables differ from {}'s", cfg.name, CONFIGS[0].name);
    }

    workload(&mut c);
    for (cfg, (run, args)) in CONFIGS.iter().zip(&runs) {
        let mut capture = vec!["capture", "--quiet"];
        capture.extend(cfg.capture);
        ok(&cdc_cmd(&capture, run).output().unwrap(), &format!("{}: capture", cfg.name));
        let out = apply_with(run, &dynalite(), &strs(args));
        ok(&out, &format!("{}: apply (rejects: {})", cfg.name, std::fs::read_to_string(run.join("cdc/rejects.jsonl")).unwrap_or_default()));
        let out = verify_against_source_with(run, &dynalite(), &strs(args));
        assert_eq!(differences(&out), 0, "{}: verify against the source: {}{}", cfg.name, String::from_utf8_lossy(&out.stdout), stderr(&out));
    }
    let applied: Vec<Vec<Vec<String>>> = CONFIGS.iter().map(|cfg| TABLES.iter().map(|t| state(&target(cfg, t))).collect()).collect();
    assert!(applied[0] != imported[0], "the workload changed the tables");
    for (cfg, tables) in CONFIGS.iter().zip(&applied).skip(1) {
        for (t, (mine, base)) in TABLES.iter().zip(tables.iter().zip(&applied[0])) {
            assert!(mine == base, "{}: table {t} after apply differs from {}'s", cfg.name, CONFIGS[0].name);
        }
    }
    let segments = |run: &Path| std::fs::read_dir(run.join("cdc/segments")).map(|d| d.count()).unwrap_or(0);
    assert!(segments(&runs[1].0) > segments(&runs[0].0), "the tiny segment cut made more segments");

    // The same two faults in every configuration's tables, found by every verify.
    runtime().block_on(async {
        let db = client(&dynalite());
        for cfg in &CONFIGS {
            db.delete_item().table_name(target(cfg, "orders")).key("customerid", AttributeValue::S("c3".into())).key("orderid", AttributeValue::S("o2".into())).send().await.unwrap();
            db.update_item()
                .table_name(target(cfg, "typed"))
                .key("id", AttributeValue::N("51".into()))
                .update_expression("SET tx = :v")
                .expression_attribute_values(":v", AttributeValue::S("tampered".into()))
                .send()
                .await
                .unwrap();
        }
    });
    for (cfg, (run, args)) in CONFIGS.iter().zip(&runs) {
        let out = verify_against_source_with(run, &dynalite(), &strs(args));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!((out.status.code(), differences(&out)), (Some(4), 2), "{}: {text}{}", cfg.name, stderr(&out));
        assert!(text.contains("customerid=c3 / orderid=o2 missing") && text.contains("id=51 attribute differs tx"), "{}: {text}", cfg.name);
    }
}
