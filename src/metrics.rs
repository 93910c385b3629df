//! `--metrics-addr HOST:PORT`: Prometheus text at `http://HOST:PORT/metrics`, served by
//! `metrics-exporter-prometheus` (the `metrics` facade's exporter). Two kinds of figures:
//! counters the stages bump as they work in this process (rows exported, items and WCU
//! written, throttles, retries, rejects, changes captured and applied), and the run's gauges
//! (stage running or done, import items per table, capture and apply positions, changes behind,
//! lag in seconds, the last verify's differences), which the caller's poll sets every `POLL`
//! through `publish` (`status::publish` reads them from the run folder as `status` does).
//! Without `--metrics-addr` no recorder is installed and the counters cost a relaxed load each.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics-addr {addr}: not a HOST:PORT this machine can listen on ({reason})")]
    Address { addr: String, reason: String },
    #[error("--metrics-addr {addr}: cannot serve metrics there: {reason}")]
    Listen { addr: String, reason: String },
}

/// How often the run folder's gauges are read again.
pub const POLL: Duration = Duration::from_secs(2);

/// Whether `serve` installed the exporter in this process.
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether metrics are served: a caller that can set the run's gauges at once when a stage
/// ends (`migrate`) does so only then.
pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Serves the metrics at `addr` for the life of the process; `poll`, when given, is called
/// every `POLL` in a thread of its own to set the run's gauges.
pub fn serve(addr: &str, poll: Option<Box<dyn FnMut() + Send>>) -> Result<SocketAddr, MetricsError> {
    let bad = |reason: String| MetricsError::Address { addr: addr.to_string(), reason };
    let socket = addr.to_socket_addrs().map_err(|e| bad(e.to_string()))?.next().ok_or_else(|| bad("it resolves to no address".into()))?;
    // Bound here first so a port in use is an error now, not a log line from the exporter's
    // thread later; the exporter binds it again once this probe is dropped.
    drop(std::net::TcpListener::bind(socket).map_err(|e| MetricsError::Listen { addr: addr.to_string(), reason: e.to_string() })?);
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(socket)
        .install()
        .map_err(|e| MetricsError::Listen { addr: addr.to_string(), reason: e.to_string() })?;
    describe();
    ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(mut poll) = poll {
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || loop {
                poll();
                std::thread::sleep(POLL);
            })
            .map_err(|e| MetricsError::Listen { addr: addr.to_string(), reason: e.to_string() })?;
    }
    tracing::info!("metrics at http://{socket}/metrics");
    Ok(socket)
}

fn describe() {
    describe_counter!("m2d_rows_exported_total", Unit::Count, "Rows this process exported, by table");
    describe_counter!("m2d_items_written_total", Unit::Count, "Items this process's import wrote to DynamoDB, by table");
    describe_counter!("m2d_wcu_consumed_total", Unit::Count, "Write capacity units DynamoDB reported consumed, by stage");
    describe_counter!("m2d_throttles_total", Unit::Count, "Calls DynamoDB throttled (whole or in part), by stage");
    describe_counter!("m2d_retries_total", Unit::Count, "Calls retried after a throttle or a transient failure, by stage");
    describe_counter!("m2d_rejects_total", Unit::Count, "Rows or changes written to a rejects file, by stage");
    describe_counter!("m2d_changes_captured_total", Unit::Count, "Row changes this process's capture staged");
    describe_counter!("m2d_changes_applied_total", Unit::Count, "Row changes this process's apply applied");
    describe_gauge!("m2d_stage_running", "1 while the stage holds the run folder's lock");
    describe_gauge!("m2d_stage_done", "1 once the stage is complete (export, import)");
    describe_gauge!("m2d_export_rows", Unit::Count, "Rows in the run's complete chunks");
    describe_gauge!("m2d_import_items", Unit::Count, "Items of the run's import written, by table");
    describe_gauge!("m2d_capture_changes", Unit::Count, "Changes the run's capture has staged");
    describe_gauge!("m2d_capture_binlog_file", "Number of the binlog file capture reads next");
    describe_gauge!("m2d_capture_binlog_offset", Unit::Bytes, "Offset in that file capture reads next");
    describe_gauge!("m2d_apply_changes", Unit::Count, "Changes the run's apply has applied");
    describe_gauge!("m2d_apply_behind_changes", Unit::Count, "Changes staged and not applied yet");
    describe_gauge!("m2d_apply_lag_seconds", Unit::Seconds, "Source time of the newest staged change minus that of the newest applied");
    describe_gauge!("m2d_verify_differences", Unit::Count, "Differences the last verify found");
}

/// Rows of `table` exported by one chunk.
pub fn exported(table: &str, rows: u64) {
    counter!("m2d_rows_exported_total", "table" => table.to_string()).increment(rows);
}

/// Items written by the import, with the WCU DynamoDB reported for them.
pub fn written(table: &str, items: u64, wcu: f64) {
    counter!("m2d_items_written_total", "table" => table.to_string()).increment(items);
    wcu_consumed("import", wcu);
}

pub fn wcu_consumed(stage: &'static str, wcu: f64) {
    counter!("m2d_wcu_consumed_total", "stage" => stage).increment(wcu.round() as u64);
}

/// A call retried; `throttle` when DynamoDB throttled it.
pub fn retried(stage: &'static str, throttle: bool) {
    counter!("m2d_retries_total", "stage" => stage).increment(1);
    if throttle {
        counter!("m2d_throttles_total", "stage" => stage).increment(1);
    }
}

/// A throttle that is not retried by the retry layer (keys handed back in a batch's answer).
pub fn throttled(stage: &'static str) {
    counter!("m2d_throttles_total", "stage" => stage).increment(1);
}

pub fn rejected(stage: &'static str, n: u64) {
    counter!("m2d_rejects_total", "stage" => stage).increment(n);
}

pub fn captured(n: u64) {
    counter!("m2d_changes_captured_total").increment(n);
}

pub fn applied(n: u64) {
    counter!("m2d_changes_applied_total").increment(n);
}

/// The run's gauges, as one reading of its files found them (None: that stage has not begun).
#[derive(Debug, Default)]
pub struct RunGauges<'a> {
    pub running: Vec<(&'a str, bool)>,
    pub export: Option<(bool, u64)>,
    pub import: Option<(bool, Vec<(&'a str, u64)>)>,
    /// Changes staged, and the binlog file and offset capture reads next.
    pub capture: Option<(u64, &'a str, u64)>,
    /// Changes applied, changes behind, lag in seconds.
    pub apply: Option<(u64, u64, u64)>,
    pub verify_differences: Option<u64>,
}

/// Sets the run's gauges.
pub fn publish(g: &RunGauges) {
    for (stage, running) in &g.running {
        gauge!("m2d_stage_running", "stage" => stage.to_string()).set(*running as u8 as f64);
    }
    if let Some((complete, rows)) = g.export {
        gauge!("m2d_stage_done", "stage" => "export").set(complete as u8 as f64);
        gauge!("m2d_export_rows").set(rows as f64);
    }
    if let Some((done, tables)) = &g.import {
        gauge!("m2d_stage_done", "stage" => "import").set(*done as u8 as f64);
        for (table, items) in tables {
            gauge!("m2d_import_items", "table" => table.to_string()).set(*items as f64);
        }
    }
    if let Some((changes, file, offset)) = g.capture {
        gauge!("m2d_capture_changes").set(changes as f64);
        gauge!("m2d_capture_binlog_file").set(file_number(file) as f64);
        gauge!("m2d_capture_binlog_offset").set(offset as f64);
    }
    if let Some((changes, behind, lag)) = g.apply {
        gauge!("m2d_apply_changes").set(changes as f64);
        gauge!("m2d_apply_behind_changes").set(behind as f64);
        gauge!("m2d_apply_lag_seconds").set(lag as f64);
    }
    if let Some(d) = g.verify_differences {
        gauge!("m2d_verify_differences").set(d as f64);
    }
}

/// The number a binlog file name ends with (`mysql-bin.000042` → 42); 0 when there is none.
fn file_number(file: &str) -> u64 {
    file.rsplit('.').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binlog_file_s_number_is_its_suffix() {
        assert_eq!(file_number("mysql-bin.000042"), 42);
        assert_eq!(file_number("mariadb-bin.1000000"), 1_000_000);
        assert_eq!(file_number("binlog"), 0);
    }

    #[test]
    fn an_address_that_is_not_host_port_is_refused_by_name() {
        let e = serve("nowhere", None).unwrap_err().to_string();
        assert!(e.contains("--metrics-addr nowhere"), "{e}");
    }
}
