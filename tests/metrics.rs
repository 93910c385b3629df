//! `--metrics-addr HOST:PORT`: what `import`, `cdc capture` and `cdc apply` serve while they
//! run is parsed by Python's `prometheus_client`, and its figures agree with the source: rows
//! counted by the server, changes made by the test.

use crate::common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::cdc::cdc_cmd;
use common::ddb::{drop_table, dynalite, import, import_cmd};
use common::{assert_ok, connect, export, free_port, fresh_db, scrape, stderr};
use mysql::prelude::Queryable;

use common::Samples;

/// Scrapes `addr` until `wanted` holds (or `child` ends, or a minute passes); the last scrape.
fn scrape_until(addr: &str, child: &mut Child, wanted: impl Fn(&Samples) -> bool) -> Samples {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = scrape(addr);
        if let Some(m) = &last {
            if wanted(m) {
                return last.unwrap();
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the process ended first; last scrape: {last:?}");
        assert!(Instant::now() < deadline, "never seen; last scrape: {last:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get(m: &Samples, key: &str) -> f64 {
    m.get(key).copied().unwrap_or_else(|| panic!("{key} not served; have {:?}", m.keys().collect::<Vec<_>>()))
}

#[test]
fn import_capture_and_apply_serve_metrics_an_independent_parser_reads() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "metrics");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").unwrap();
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_2000").unwrap();
    let rows: u64 = conn.query_first(format!("SELECT COUNT(*) FROM `{db}`.t")).unwrap().unwrap();
    let table = format!("{db}_t");
    drop_table(&dynalite(), &table);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    assert_ok(&export(&run, &["--databases", &db, "--chunk-rows", "300"]));

    // A paced import (2,000 one-WCU items at 200 WCU/s, about 10 s) is read while it writes.
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = import_cmd(&run, &dynalite(), &["--create-tables", "--wcu", "200", "--metrics-addr", &addr]).stderr(Stdio::piped()).spawn().unwrap();
    let items_key = format!("m2d_items_written_total{{table=\"{table}\"}}");
    let m = scrape_until(&addr, &mut child, |m| m.get(&items_key).is_some_and(|&n| n > 0.0));
    assert_eq!(get(&m, r#"m2d_stage_running{stage="import"}"#), 1.0);
    assert_eq!(get(&m, r#"m2d_stage_running{stage="export"}"#), 0.0);
    assert_eq!(get(&m, r#"m2d_stage_done{stage="export"}"#), 1.0);
    assert_eq!(get(&m, "m2d_export_rows"), rows as f64, "the export's rows, as the server counts them");
    let items = get(&m, &items_key);
    assert!(items > 0.0 && items < rows as f64, "mid-import: {items} of {rows}");
    assert!(get(&m, r#"m2d_wcu_consumed_total{stage="import"}"#) > 0.0);
    // A second process cannot serve on the same address, and says which.
    let second = import(&run, &dynalite(), &["--metrics-addr", &addr]);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(stderr(&second).contains(&format!("--metrics-addr {addr}: cannot serve metrics there")), "{}", stderr(&second));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "import: {}", stderr(&out));

    // Capture and apply following, each with its own address; 55 row changes on the source.
    let (cap_addr, app_addr) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    // Capture's messages go to a file, to be shown if it stops.
    let cap_log = run.with_extension("capture.log");
    let mut capture = cdc_cmd(&["capture", "--follow", "--quiet", "--metrics-addr", &cap_addr], &run).stderr(std::fs::File::create(&cap_log).unwrap()).spawn().unwrap();
    let mut apply = cdc_cmd(&["apply", "--follow", "--quiet", "--endpoint", &dynalite(), "--metrics-addr", &app_addr], &run).stderr(Stdio::null()).spawn().unwrap();
    scrape_until(&cap_addr, &mut capture, |m| m.contains_key(r#"m2d_stage_running{stage="cdc capture"}"#));
    conn.query_drop(format!("INSERT INTO `{db}`.t SELECT seq, 'new' FROM `{db}`.seq_2001_to_2040")).unwrap();
    conn.query_drop(format!("UPDATE `{db}`.t SET v = 'changed' WHERE id <= 10")).unwrap();
    conn.query_drop(format!("DELETE FROM `{db}`.t WHERE id BETWEEN 11 AND 15")).unwrap();
    let changes = 40.0 + 10.0 + 5.0;
    let cap = scrape_until(&cap_addr, &mut capture, |m| m.get("m2d_changes_captured_total") == Some(&changes));
    let said = || std::fs::read_to_string(&cap_log).unwrap_or_default();
    assert_eq!(get(&cap, r#"m2d_stage_running{stage="cdc capture"}"#), 1.0, "capture still runs; it said: {}", said());
    let file: String = conn.query_first::<mysql::Row, _>("SHOW MASTER STATUS").unwrap().unwrap().get(0).unwrap();
    let number: f64 = file.rsplit('.').next().unwrap().parse().unwrap();
    // The gauges are read from the run folder now and then: a read taken before capture staged
    // anything also says 0 behind, so wait for the one that counts the changes applied.
    let app = scrape_until(&app_addr, &mut apply, |m| {
        m.get("m2d_changes_applied_total") == Some(&changes) && m.get("m2d_apply_changes") == Some(&changes) && m.get("m2d_apply_behind_changes") == Some(&0.0)
    });
    assert_eq!(get(&app, "m2d_apply_changes"), changes);
    assert_eq!(get(&app, "m2d_apply_lag_seconds"), 0.0);
    let cap = scrape_until(&cap_addr, &mut capture, |m| m.get("m2d_capture_changes") == Some(&changes));
    assert_eq!(get(&cap, "m2d_capture_binlog_file"), number, "capture reads the server's current binlog file {file}");
    for c in [&mut capture, &mut apply] {
        let _ = c.kill();
        let _ = c.wait();
    }
}
