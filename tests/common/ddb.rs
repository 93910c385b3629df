//! DynamoDB helpers for the import tests: run `mysql2ddb import` with the local servers'
//! environment, read a table back with a Scan (through the SDK, independently of the importer),
//! and start the capacity proxy on a free port.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::Client;
use mysql2ddb::aws::dynamo::item_from_sdk;
use mysql2ddb::value::attr::Item;

use super::{bin, services};

pub fn dynalite() -> String {
    services()["M2D_DDB_ENDPOINT"].clone()
}

pub fn ddblocal() -> String {
    services()["M2D_DDBLOCAL_ENDPOINT"].clone()
}

/// `mysql2ddb import --from <run> --quiet --endpoint <endpoint> <args…>` with local credentials.
pub fn import(run: &Path, endpoint: &str, args: &[&str]) -> Output {
    import_cmd(run, endpoint, args).output().expect("run mysql2ddb import")
}

pub fn import_cmd(run: &Path, endpoint: &str, args: &[&str]) -> Command {
    let env = services();
    let mut cmd = Command::new(bin());
    cmd.args(["import", "--quiet", "--endpoint", endpoint, "--from"]).arg(run).args(args);
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        cmd.env(k, &env[k]);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

pub fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("m2dlocal", "m2dlocalsecret", None, None, "tests"))
        .build();
    Client::from_conf(conf)
}

/// Every item of a table.
pub fn scan(endpoint: &str, table: &str) -> Vec<Item> {
    runtime().block_on(async {
        let c = client(endpoint);
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = c.scan().table_name(table).set_exclusive_start_key(start.take()).send().await.expect("scan");
            out.extend(page.items().iter().map(item_from_sdk));
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return out,
            }
        }
    })
}

pub fn table_exists(endpoint: &str, table: &str) -> bool {
    runtime().block_on(async { client(endpoint).describe_table().table_name(table).send().await.is_ok() })
}

/// Deletes a table (if it exists) and waits until it is gone.
pub fn drop_table(endpoint: &str, table: &str) {
    runtime().block_on(async {
        let c = client(endpoint);
        let _ = c.delete_table().table_name(table).send().await;
        while c.describe_table().table_name(table).send().await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
}

/// The capacity proxy in front of dynalite on a free port; killed on drop.
pub struct ProxyProcess {
    child: Child,
    pub endpoint: String,
}

impl ProxyProcess {
    pub fn start(wcu: u64, throttle_probability: f64) -> ProxyProcess {
        Self::start_with(wcu, throttle_probability, &[])
    }

    /// With more of the proxy's flags (`--respell-unprocessed`, `--log FILE`).
    pub fn start_with(wcu: u64, throttle_probability: f64, extra: &[&str]) -> ProxyProcess {
        Self::start_in_front(&dynalite(), wcu, throttle_probability, extra)
    }

    /// In front of another DynamoDB endpoint (moto's server, with `--imports`).
    pub fn start_in_front(upstream: &str, wcu: u64, throttle_probability: f64, extra: &[&str]) -> ProxyProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let upstream = upstream.trim_start_matches("http://").to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_m2d-capacity-proxy"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--upstream", &upstream, "--wcu", &wcu.to_string()])
            .args(["--throttle-probability", &throttle_probability.to_string()])
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .expect("start m2d-capacity-proxy");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ProxyProcess { child, endpoint: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
