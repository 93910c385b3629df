//! `mysql2ddb bench` against dynalite behind the in-process capacity proxy: it writes the files it
//! promises (JSON that parses, CSVs, a PNG that decodes to a drawn image, an SVG with labelled
//! axes), the achieved rate stays within the capacity the proxy enforces, the projection follows
//! from the measured rate, and the benchmark tables are gone afterwards.

use crate::common;

use std::process::{Command, Output};

use common::ddb::{dynalite, table_exists};
use common::{assert_ok, bin, connect, export, fresh_db, services, stderr};
use mysql::prelude::Queryable;
use serde_json::Value;

fn bench(run: &std::path::Path, out: &std::path::Path, args: &[&str]) -> Output {
    let env = services();
    Command::new(bin())
        .args(["bench", "--quiet", "--endpoint", &dynalite(), "--from"])
        .arg(run)
        .arg("--out")
        .arg(out)
        .args(args)
        .envs(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"].map(|k| (k, env[k].clone())))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

#[test]
fn bench_measures_each_setting_and_draws_the_chart() {
    let mut conn = connect();
    let db = fresh_db(&mut conn, "bench");
    conn.query_drop("CREATE TABLE events (id INT PRIMARY KEY, kind VARCHAR(10) NOT NULL, payload VARCHAR(200) NOT NULL)").unwrap();
    conn.query_drop("INSERT INTO events SELECT seq, CONCAT('k', seq % 7), REPEAT('p', seq % 200) FROM seq_1_to_2000").unwrap();
    let run = tempfile::tempdir().unwrap();
    assert_ok(&export(run.path(), &["--databases", &db]));
    let out = run.path().join("bench");

    let o = bench(run.path(), &out, &["--wcu", "100,300", "--seconds", "3", "--rows", "1000000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(stdout.contains("through the capacity proxy"), "{stdout}");
    assert!(stdout.contains("1,000,000 source rows"), "{stdout}");

    let report: Value = serde_json::from_slice(&std::fs::read(out.join("bench.json")).unwrap()).unwrap();
    assert_eq!(report["table"], "it_bench_events");
    assert_eq!(report["source_rows"], 2000);
    assert_eq!(report["through_proxy"], true);
    let settings = report["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 2);
    let per_row = report["wcu_per_source_row"].as_f64().unwrap();
    for (s, target) in settings.iter().zip([100.0, 300.0]) {
        let achieved = s["achieved_wcu_per_s"].as_f64().unwrap();
        assert_eq!(s["target_wcu"].as_f64(), Some(target));
        // The proxy refuses anything above the table's capacity in a second, so the average
        // cannot be above it (plus the last part-second); pacing keeps it close below.
        assert!(achieved <= target * 1.05 && achieved >= target * 0.6, "target {target}: achieved {achieved}");
        assert!(s["items"].as_u64().unwrap() > 0);
        assert!(s["latency_ms_p99"].as_u64().unwrap() >= s["latency_ms_p50"].as_u64().unwrap());
        assert!(!s["timeline"].as_array().unwrap().is_empty());
        let hours = s["projected_hours"].as_f64().unwrap();
        let expected = 1_000_000.0 * per_row / achieved / 3600.0;
        assert!((hours - expected).abs() < 1e-6 * expected.max(1.0), "{hours} vs {expected}");
        assert!(!table_exists(&dynalite(), s["table"].as_str().unwrap()), "the benchmark table is deleted afterwards");
    }

    let summary = std::fs::read_to_string(out.join("bench-summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 3, "{summary}");
    assert!(summary.starts_with("target_wcu,achieved_wcu_per_s,"));
    let timeline = std::fs::read_to_string(out.join("bench-timeline.csv")).unwrap();
    assert!(timeline.lines().skip(1).any(|l| l.starts_with("100,")) && timeline.lines().any(|l| l.starts_with("300,")), "{timeline}");

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out.join("bench.png")).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 900));
    let drawn = buf[..info.buffer_size()].chunks(3).filter(|px| px.iter().any(|&c| c < 200)).count();
    assert!(drawn > 20_000, "the PNG has lines and text on it: {drawn} dark pixels");
    let svg = std::fs::read_to_string(out.join("bench.svg")).unwrap();
    for label in ["Target WCU/s", "Projected hours", "Time to load 1,000,000 source rows", "target 100 WCU/s"] {
        assert!(svg.contains(label), "the SVG labels {label}");
    }

    let o = bench(run.path(), &out, &["--table", "nope", "--wcu", "100"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--table nope") && stderr(&o).contains("it_bench_events"), "{}", stderr(&o));
}
