//! `m2d-cdc-state`: what a long trickle of changes does to capture's state (the benchmark of
//! `make bench-cdc`). In a scratch run folder it counts an hour of half-second segments the way
//! capture does (each record appended and synced, capture.json stored), then fills the records
//! up to a week's worth and counts more: at both points it times the state work of one segment
//! for capture (append the record, store capture.json), for apply (load capture.json, read the
//! next record) and for `cdc status`. The peer is the state as it was kept before, one list of
//! every segment in capture.json, timed storing and loading at the same two points. Prints one
//! JSON line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use mysql2ddb::cdc::state::{cdc_dir, records_path, CaptureState, Records, SegmentInfo, RECORDS_PER_FILE};

#[derive(Debug, Parser)]
struct Args {
    /// The scratch folder (emptied first).
    #[arg(long)]
    dir: PathBuf,
    /// Segments in the first hour (one per 0.5 s: 7,200).
    #[arg(long, default_value_t = 7_200)]
    hour: u64,
    /// Segments in the week (7 × 24 × 7,200).
    #[arg(long, default_value_t = 1_209_600)]
    week: u64,
    /// Segments timed at each point.
    #[arg(long, default_value_t = 300)]
    sample: u64,
}

fn info(index: u64) -> SegmentInfo {
    SegmentInfo {
        index,
        changes: 3,
        sha256: format!("{:064x}", index.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        first_at: format!("mysql-bin.{:06}:{}", 1 + index / 50_000, index * 731 % 1_000_000_000),
        last_at: format!("mysql-bin.{:06}:{}", 1 + index / 50_000, index * 731 % 1_000_000_000 + 420),
        last_ts: 1_790_000_000 + (index / 2) as u32,
    }
}

/// Milliseconds per segment of capture's, apply's and status's state work, over `n` segments.
fn sample(run: &Path, st: &mut CaptureState, n: u64) -> (f64, f64, f64) {
    let t = Instant::now();
    for _ in 0..n {
        let next = st.staged() + 1;
        st.record(run, info(next)).expect("record");
        st.store(run).expect("store");
    }
    let capture = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    // Apply following at the tip: a reader that has read the records before these.
    let first = st.staged() - n + 1;
    let mut records = Records::default();
    let loaded = CaptureState::load(run).unwrap().unwrap();
    records.get(&loaded, run, first.saturating_sub(1).max(1)).unwrap();
    let t = Instant::now();
    for k in first..=st.staged() {
        let c = CaptureState::load(run).unwrap().unwrap();
        records.get(&c, run, k).unwrap().expect("counted");
    }
    let apply = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        mysql2ddb::cdc::status(run, None).expect("status");
    }
    let status = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    (capture, apply, status)
}

/// The records of segments `from..=to` written at once, as capture's appends leave them.
fn fill(run: &Path, st: &mut CaptureState, to: u64) {
    let mut k = st.staged() + 1;
    while k <= to {
        let path = records_path(run, k);
        let mut f = std::io::BufWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap());
        while k <= to && records_path(run, k) == path {
            serde_json::to_writer(&mut f, &info(k)).unwrap();
            f.write_all(b"\n").unwrap();
            k += 1;
        }
    }
    st.segment_count = to;
    st.last_segment = Some(info(to));
    st.store(run).unwrap();
}

/// The state kept as before: every record in capture.json. Milliseconds to store it once and to
/// load it once, and its size.
fn list_state(run: &Path, n: u64) -> (f64, f64, u64) {
    let st = CaptureState { segments: (1..=n).map(info).collect(), changes: 3 * n, ..Default::default() };
    let reps = if n > 100_000 { 2 } else { 20 };
    let t = Instant::now();
    for _ in 0..reps {
        st.store(run).unwrap();
    }
    let store = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
    let t = Instant::now();
    for _ in 0..reps {
        CaptureState::load(run).unwrap().unwrap();
    }
    let load = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
    (store, load, std::fs::metadata(cdc_dir(run).join("capture.json")).unwrap().len())
}

fn main() {
    let a = Args::parse();
    let _ = std::fs::remove_dir_all(&a.dir);
    let run = a.dir.join("run");
    std::fs::create_dir_all(cdc_dir(&run).join("records")).unwrap();
    let mut st = CaptureState::default();
    st.store(&run).unwrap();
    fill(&run, &mut st, a.hour - a.sample);
    let hour = sample(&run, &mut st, a.sample);
    let size_hour = std::fs::metadata(cdc_dir(&run).join("capture.json")).unwrap().len();
    fill(&run, &mut st, a.week - a.sample);
    let week = sample(&run, &mut st, a.sample);
    let size_week = std::fs::metadata(cdc_dir(&run).join("capture.json")).unwrap().len();
    let records: u64 = std::fs::read_dir(cdc_dir(&run).join("records")).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    let list_dir = a.dir.join("list");
    std::fs::create_dir_all(cdc_dir(&list_dir)).unwrap();
    let (list_hour, list_week) = (list_state(&list_dir, a.hour), list_state(&list_dir, a.week));
    let out = serde_json::json!({
        "segments_hour": a.hour, "segments_week": a.week, "records_per_file": RECORDS_PER_FILE,
        "capture_ms_hour": hour.0, "capture_ms_week": week.0,
        "apply_ms_hour": hour.1, "apply_ms_week": week.1,
        "status_ms_hour": hour.2, "status_ms_week": week.2,
        "capture_json_bytes_hour": size_hour, "capture_json_bytes_week": size_week, "records_bytes_week": records,
        "list_store_ms_hour": list_hour.0, "list_load_ms_hour": list_hour.1, "list_bytes_hour": list_hour.2,
        "list_store_ms_week": list_week.0, "list_load_ms_week": list_week.1, "list_bytes_week": list_week.2,
    });
    println!("{out}");
    let _ = std::fs::remove_dir_all(&a.dir);
}
