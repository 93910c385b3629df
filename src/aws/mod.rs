//! What every stage that talks to AWS shares: the DynamoDB client and its error words
//! (`dynamo`), the S3 client (`s3`), both built once from the standard AWS configuration chain;
//! the retry layer every DynamoDB call goes through (`retry`); the WCU pacer (`pacing`); and
//! BatchWriteItem bodies written from our items without the SDK's maps (`wire`), and the one
//! BatchWriteItem loop every writer sends through (`batch_write`).

pub mod batch_write;
pub mod dynamo;
pub mod pacing;
pub mod retry;
pub mod wire;
pub mod s3;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The region when none is configured anywhere (no AWS_REGION, profile or flag).
pub const DEFAULT_REGION: &str = "us-east-1";

/// The configuration every client is built from: the standard chain (AWS_PROFILE, AWS_REGION,
/// AWS_ENDPOINT_URL[_S3|_DYNAMODB], credentials from env, profile, SSO, process or instance),
/// then `region` and `endpoint` when given, with these retries and timeouts.
pub async fn sdk_config(region: Option<&str>, endpoint: Option<&str>, retry: RetryConfig, timeout: TimeoutConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry).timeout_config(timeout);
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
    }
    let shared = loader.load().await;
    match shared.region() {
        Some(_) => shared,
        None => shared.into_builder().region(Region::new(DEFAULT_REGION)).build(),
    }
}

/// What to say when the SDK found no credentials anywhere in its chain.
pub const NO_CREDENTIALS: &str =
    "no usable AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance role is available)";

/// What to say when the service refused the credentials given (never shown).
pub const CREDENTIALS_REFUSED: &str = "the credentials were refused (check AWS_PROFILE / AWS_ACCESS_KEY_ID and the secret; they are not shown here)";

/// A failure that carries no service error code (the request never got an answer), in words:
/// no credentials, an unreachable endpoint (`endpoint_var` names the setting to check), a
/// timeout, or the SDK's own text. Shared by the S3 and DynamoDB error descriptions.
pub fn unanswered<E, R>(service: &str, endpoint_var: &str, err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
    let text = format!("{}", DisplayErrorContext(err));
    match err {
        SdkError::DispatchFailure(_) if no_credentials(&text) => NO_CREDENTIALS.into(),
        SdkError::DispatchFailure(_) => format!("cannot reach the {service} endpoint (check {endpoint_var} / the network): {text}"),
        SdkError::TimeoutError(_) => "timed out".into(),
        _ => text,
    }
}

/// An AWS failure in words a user can act on: `hints` maps error codes to advice; a request
/// that got no answer is described by `unanswered`; any other code is given with its message.
/// `what` names the call, table, bucket or object; `service` is (name, endpoint variable).
pub fn describe<E, R>(what: &str, err: &aws_sdk_dynamodb::error::SdkError<E, R>, service: (&str, &str), hints: &[(&[&str], &str)]) -> String
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let code = err.code().unwrap_or("");
    let hint = match hints.iter().find(|(codes, _)| codes.contains(&code)) {
        Some((_, advice)) => advice.to_string(),
        None if code.is_empty() => unanswered(service.0, service.1, err),
        None => format!("{code}: {}", err.message().unwrap_or("")),
    };
    format!("{what}: {hint}")
}

/// Whether an SDK failure's full text says the credential chain came up empty (the SDK reports
/// it as a dispatch failure, like an unreachable endpoint).
pub fn no_credentials(error_text: &str) -> bool {
    error_text.contains("no credentials found in chain") || error_text.contains("credential provider was not enabled") || error_text.contains("CredentialsNotLoaded")
}
