//! What every stage that talks to AWS shares: the DynamoDB client and its error words
//! (`dynamo`), the S3 client (`s3`), both built once from the standard AWS configuration chain;
//! the retry layer every DynamoDB call goes through (`retry`); and the WCU pacer (`pacing`).

pub mod dynamo;
pub mod pacing;
pub mod retry;
pub mod s3;

/// What to say when the SDK found no credentials anywhere in its chain.
pub const NO_CREDENTIALS: &str =
    "no usable AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance role is available)";

/// Whether an SDK failure's full text says the credential chain came up empty (the SDK reports
/// it as a dispatch failure, like an unreachable endpoint).
pub fn no_credentials(error_text: &str) -> bool {
    error_text.contains("no credentials found in chain") || error_text.contains("credential provider was not enabled") || error_text.contains("CredentialsNotLoaded")
}
