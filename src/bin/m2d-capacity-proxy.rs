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
    /// Share of write requests throttled at random (0…1).
    #[arg(long, default_value_t = 0.0)]
    throttle_probability: f64,
    /// Append `second,table,wcu` lines (WCU let through per second) to this file.
    #[arg(long)]
    log: Option<std::path::PathBuf>,
    /// Hand unprocessed requests back re-serialised (string sets reordered, numbers respelled).
    #[arg(long)]
    respell_unprocessed: bool,
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
        respell_unprocessed: a.respell_unprocessed,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.listen).await?;
        eprintln!("m2d-capacity-proxy: listening on {}, {} WCU/s per table", a.listen, cfg.wcu);
        Proxy::new(cfg)?.serve(listener).await
    });
    if let Err(e) = result {
        eprintln!("m2d-capacity-proxy: {e}");
        std::process::exit(1);
    }
}
