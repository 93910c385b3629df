//! The one S3 client of a run, built once from the standard AWS configuration chain
//! (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, credentials from env,
//! profile, SSO, process or instance), with path-style addressing as an option (local servers
//! need it). Retries live here: the SDK's standard mode, exponential backoff with full jitter,
//! for throttling, 5xx and transport errors, bounded in attempts. Also the S3 error → message
//! mapping, which never includes credentials.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;

/// Attempts per request (first try included) before an error is reported.
pub const MAX_ATTEMPTS: u32 = 8;
/// First backoff; doubles per attempt, with full jitter, capped at `MAX_BACKOFF`.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Path-style addressing (`http://host/bucket/key`), needed by most local S3 servers.
    pub path_style: bool,
    pub region: Option<String>,
}

/// Builds the client. Path style also follows `M2D_S3_PATH_STYLE=1`.
pub async fn build(opts: &S3Options) -> Client {
    let retry = RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_initial_backoff(INITIAL_BACKOFF).with_max_backoff(MAX_BACKOFF);
    let timeout = TimeoutConfig::builder().connect_timeout(Duration::from_secs(10)).build();
    let shared = super::sdk_config(opts.region.as_deref(), None, retry, timeout).await;
    let path_style = opts.path_style || std::env::var("M2D_S3_PATH_STYLE").is_ok_and(|v| v == "1" || v == "true");
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(path_style)
        // We send and check SHA-256 ourselves; no extra CRC trailers (not every server takes them).
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    Client::from_conf(conf.build())
}

/// An S3 failure in words a user can act on: missing bucket, access denied, wrong region, bad
/// credentials. `what` names the object or bucket.
pub fn describe<E, R>(what: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    const HINTS: &[(&[&str], &str)] = &[
        (&["NoSuchBucket"], "the bucket does not exist"),
        (&["AccessDenied", "AllAccessDisabled"], "access denied (check the bucket policy and the IAM permissions of the credentials in use)"),
        (&["InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"], super::CREDENTIALS_REFUSED),
        (&["PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"], "the bucket is in another region (set AWS_REGION or --region to the bucket's region)"),
        (&["BadDigest", "XAmzContentSHA256Mismatch"], "S3 rejected the body: its SHA-256 does not match (corrupted in transit)"),
    ];
    super::describe(what, err, ("S3", "AWS_ENDPOINT_URL_S3"), HINTS)
}
