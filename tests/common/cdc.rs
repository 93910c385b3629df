//! `mysql2ddb cdc …` and `verify --against-source` as a user runs them, with the local servers'
//! environment: shared by the change-capture tests and the type-conformance suite.

use std::path::Path;
use std::process::{Command, Output};

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
    let env = services();
    Command::new(bin())
        .args(["verify", "--quiet", "--endpoint", endpoint, "--against-source", &mysql_url()])
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
