//! Progress for long work: on a terminal, indicatif bars (overall, plus one per table in flight)
//! with rows, MB, rows/s and ETA from estimated rows; otherwise a plain log line every
//! `M2D_PROGRESS_SECS` seconds (default 10); nothing with `--quiet`. Cheap to clone and share.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    what: &'static str,
    /// Counting bytes (sync) rather than rows (export).
    bytes_mode: bool,
    /// What rows are called in bars and lines ("rows", "items").
    unit: &'static str,
    /// Extra text shown after the rate (e.g. WCU/s vs target, throttles).
    status: Mutex<String>,
    mode: Mode,
    rows: AtomicU64,
    bytes: AtomicU64,
    total: AtomicU64,
    tables: Mutex<Vec<TableBar>>,
    started: Instant,
    stop: AtomicBool,
}

struct TableBar {
    name: String,
    estimate: u64,
    done: u64,
    bar: Option<ProgressBar>,
}

enum Mode {
    Quiet,
    Bars { multi: MultiProgress, overall: ProgressBar },
    Lines,
}

impl Progress {
    /// Progress counted in rows (and MB written alongside).
    pub fn new(what: &'static str, quiet: bool) -> Progress {
        Self::build(what, quiet, false, "rows")
    }

    /// Progress counted in DynamoDB items, with a status text (WCU/s, throttles) beside it.
    pub fn items(what: &'static str, quiet: bool) -> Progress {
        Self::build(what, quiet, false, "items")
    }

    /// Progress counted in captured changes applied (cdc apply catching up).
    pub fn changes(what: &'static str, quiet: bool) -> Progress {
        Self::build(what, quiet, false, "changes")
    }

    /// Sets the status text shown with the next update.
    pub fn set_status(&self, status: String) {
        *self.inner.status.lock().expect("progress lock") = status;
    }

    /// Progress counted in bytes: position and total are byte counts.
    pub fn bytes(what: &'static str, quiet: bool) -> Progress {
        Self::build(what, quiet, true, "bytes")
    }

    fn build(what: &'static str, quiet: bool, bytes_mode: bool, unit: &'static str) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let overall = multi.add(ProgressBar::new(0));
            let template = if bytes_mode {
                "{prefix:>8} [{bar:30}] {bytes}/{total_bytes}  {bytes_per_sec}  {msg}  ETA {eta}".to_string()
            } else {
                format!("{{prefix:>8}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit}  {{msg}}  ETA {{eta}}")
            };
            overall.set_style(
                ProgressStyle::with_template(&template)
                .expect("valid template")
                .progress_chars("=> "),
            );
            overall.set_prefix(what);
            Mode::Bars { multi, overall }
        } else {
            Mode::Lines
        };
        let inner = Arc::new(Inner {
            what,
            bytes_mode,
            unit,
            status: Mutex::new(String::new()),
            mode,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total: AtomicU64::new(0),
            tables: Mutex::new(Vec::new()),
            started: Instant::now(),
            stop: AtomicBool::new(false),
        });
        if matches!(inner.mode, Mode::Lines) {
            let every = std::env::var("M2D_PROGRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10u64);
            let weak = Arc::downgrade(&inner);
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(every.max(1)));
                match weak.upgrade() {
                    Some(inner) if !inner.stop.load(Ordering::Relaxed) => inner.log_line(),
                    _ => return,
                }
            });
        }
        Progress { inner }
    }

    /// Registers a table with its estimated rows and the rows already done by an earlier run.
    pub fn add_table(&self, name: String, estimate: u64, done: u64) -> usize {
        let mut tables = self.inner.tables.lock().expect("progress lock");
        tables.push(TableBar { name, estimate, done, bar: None });
        self.inner.total.fetch_add(estimate, Ordering::Relaxed);
        self.inner.rows.fetch_add(done, Ordering::Relaxed);
        if let Mode::Bars { overall, .. } = &self.inner.mode {
            overall.set_length(self.inner.total.load(Ordering::Relaxed));
            overall.set_position(self.inner.rows.load(Ordering::Relaxed));
        }
        tables.len() - 1
    }

    pub fn advance(&self, table: usize, rows: u64, bytes: u64) {
        let total_rows = self.inner.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let total_bytes = self.inner.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Mode::Bars { multi, overall } = &self.inner.mode {
            overall.set_position(total_rows);
            if !self.inner.bytes_mode {
                let secs = self.inner.started.elapsed().as_secs_f64().max(0.001);
                let status = self.inner.status.lock().expect("progress lock");
                let unit = self.inner.unit;
                overall.set_message(format!("{:.0} {unit}/s  {:.1} MB  {status}", total_rows as f64 / secs, total_bytes as f64 / 1e6));
            }
            let mut tables = self.inner.tables.lock().expect("progress lock");
            if self.inner.bytes_mode {
                return;
            }
            if let Some(t) = tables.get_mut(table) {
                t.done += rows;
                let bar = t.bar.get_or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(t.estimate.max(t.done)));
                    bar.set_style(
                        ProgressStyle::with_template("  {prefix:30!} [{bar:20}] {human_pos}/{human_len} rows")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(t.name.clone());
                    bar
                });
                if t.done > bar.length().unwrap_or(0) {
                    bar.set_length(t.done);
                }
                bar.set_position(t.done);
            }
        }
    }

    pub fn table_done(&self, table: usize) {
        if let Some(t) = self.inner.tables.lock().expect("progress lock").get_mut(table) {
            if let Some(bar) = t.bar.take() {
                bar.finish_and_clear();
            }
        }
    }

    pub fn finish(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        match &self.inner.mode {
            Mode::Bars { overall, .. } => overall.finish_and_clear(),
            Mode::Lines => self.inner.log_line(),
            Mode::Quiet => {}
        }
    }
}

impl Inner {
    fn log_line(&self) {
        let rows = self.rows.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed).max(rows);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = rows as f64 / secs;
        let eta = if rate > 0.0 { (total - rows) as f64 / rate } else { 0.0 };
        if self.bytes_mode {
            tracing::info!(
                "{}: {:.1}/{:.1} MB ({:.0}%), {:.1} MB/s, ETA {:.0}s",
                self.what,
                rows as f64 / 1e6,
                total as f64 / 1e6,
                100.0 * rows as f64 / total.max(1) as f64,
                rate / 1e6,
                eta
            );
            return;
        }
        let unit = self.unit;
        tracing::info!(
            "{}: {rows}/{total} {unit} ({:.0}%), {:.0} {unit}/s, {:.1} MB, ETA {:.0}s {}",
            self.what,
            100.0 * rows as f64 / total.max(1) as f64,
            rate,
            self.bytes.load(Ordering::Relaxed) as f64 / 1e6,
            eta,
            self.status.lock().expect("progress lock")
        );
    }
}
