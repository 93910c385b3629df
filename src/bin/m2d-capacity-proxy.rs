//! `m2d-capacity-proxy`: a DynamoDB proxy that enforces provisioned write capacity per table
//! per second in front of a local server (see `mysql2ddb::proxy`). Used by tests and benches.

use std::collections::HashMap;

use clap::Parser;
use mysql2ddb::proxy::{Proxy, ProxyConfig};

#[derive(Debug, Parser)]
#[command(name = "m2d-capacity-proxy", about = "Enforce DynamoDB write capacity in front of a local server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8015")]
    listen: String,
    /// The local DynamoDB server (host:port).
    #[arg(long, default_value = "127.0.0.1:8014")]
    upstream: String,
    /// Write capacity per table per second.
    #[arg(long, default_value_t = 1000)]
    wcu: u64,
    /// Per-table capacity, TABLE=WCU (repeatable).
    #[arg(long = "table-wcu", value_parser = parse_pair)]
    table_wcu: Vec<(String, u64)>,
    /// Enforce DynamoDB's per-partition write limit too: each table's capacity is spread over
    /// capacity / this many WCU partitions, keys hashed into them (DynamoDB's is 1000).
    #[arg(long)]
    partition_wcu: Option<u64>,
    /// Append `second,table,partition,wcu,refused_wcu` lines to this file (with --partition-wcu).
    #[arg(long)]
    partition_log: Option<std::path::PathBuf>,
    /// The null endpoint: answer every write with success at once without forwarding it, and
    /// print how many write requests it answered when stopped.
    #[arg(long)]
    null_writes: bool,
    /// Share of write requests throttled at random (0…1).
    #[arg(long, default_value_t = 0.0)]
    throttle_probability: f64,
    /// Append `second,table,wcu` lines (WCU let through per second) to this file.
    #[arg(long)]
    log: Option<std::path::PathBuf>,
    /// Hand unprocessed requests back re-serialised (string sets reordered, numbers respelled).
    #[arg(long)]
    respell_unprocessed: bool,
    /// Play what moto leaves out of Import from S3: ImportTable's ClientToken honoured,
    /// DescribeImport's ClientToken, ListImports.
    #[arg(long)]
    imports: bool,
    /// With --imports: while this file exists, ImportTable's answer is lost after the import started.
    #[arg(long)]
    lose_import_answers_while: Option<std::path::PathBuf>,
    /// With --imports: while this file exists, imports started are reported FAILED.
    #[arg(long)]
    fail_imports_while: Option<std::path::PathBuf>,
    /// With --imports: while this file exists, ListImports lists no import.
    #[arg(long)]
    unlisted_imports_while: Option<std::path::PathBuf>,
}

fn parse_pair(s: &str) -> Result<(String, u64), String> {
    let (t, w) = s.rsplit_once('=').ok_or("expected TABLE=WCU")?;
    Ok((t.to_string(), w.parse().map_err(|e| format!("{e}"))?))
}

fn main() {
    let a = Args::parse();
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let cfg = ProxyConfig {
        upstream: a.upstream,
        wcu: a.wcu,
        table_wcu: a.table_wcu.into_iter().collect::<HashMap<_, _>>(),
        throttle_probability: a.throttle_probability.clamp(0.0, 1.0),
        log: a.log,
        partition_wcu: a.partition_wcu,
        partition_log: a.partition_log,
        respell_unprocessed: a.respell_unprocessed,
        null_writes: a.null_writes,
        imports: a.imports.then_some(mysql2ddb::proxy::imports::ImportFaults { lose_answers_while: a.lose_import_answers_while, fail_while: a.fail_imports_while, unlisted_while: a.unlisted_imports_while }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.listen).await?;
        if cfg.null_writes {
            eprintln!("m2d-capacity-proxy: listening on {}, answering writes at once (null endpoint)", a.listen);
        } else {
            eprintln!("m2d-capacity-proxy: listening on {}, {} WCU/s per table", a.listen, cfg.wcu);
        }
        let proxy = Proxy::new(cfg)?;
        let serving = tokio::spawn(proxy.clone().serve(listener));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = serving => return r.map_err(std::io::Error::other)?,
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        if proxy.null_items() > 0 {
            println!("{}", serde_json::json!({"null_write_requests": proxy.null_items()}));
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("m2d-capacity-proxy: {e}");
        std::process::exit(1);
    }
}
