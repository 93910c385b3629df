//! The DynamoDB client of a run, built from the standard AWS chain (AWS_PROFILE, AWS_REGION,
//! AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_DYNAMODB, credentials from env, profile, SSO, process or
//! instance). The SDK's own retries are off: every retry is the retry layer's (`aws::retry`),
//! where it is counted. Also the DynamoDB error → message mapping.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::Client;

#[derive(Debug, Clone, Default)]
pub struct DynamoOptions {
    pub region: Option<String>,
    /// Overrides AWS_ENDPOINT_URL_DYNAMODB (e.g. the capacity proxy).
    pub endpoint: Option<String>,
    /// Let the SDK retry (standard mode) — for control-plane calls of other commands.
    pub sdk_retries: bool,
}

pub async fn build(opts: &DynamoOptions) -> Client {
    let retry = if opts.sdk_retries { RetryConfig::standard().with_max_attempts(5) } else { RetryConfig::disabled() };
    let timeout = TimeoutConfig::builder().connect_timeout(Duration::from_secs(10)).operation_attempt_timeout(Duration::from_secs(60)).build();
    Client::new(&super::sdk_config(opts.region.as_deref(), opts.endpoint.as_deref(), retry, timeout).await)
}

/// A DynamoDB failure in words a user can act on. `what` names the table or call.
pub fn describe<E, R>(what: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    const HINTS: &[(&[&str], &str)] = &[
        (&["ResourceNotFoundException"], "the table does not exist at this endpoint and region (check AWS_REGION / --endpoint, and that the import ran there)"),
        (&["AccessDeniedException"], "access denied (check the IAM permissions of the credentials in use)"),
        (&["UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"], super::CREDENTIALS_REFUSED),
    ];
    super::describe(what, err, ("DynamoDB", "AWS_ENDPOINT_URL_DYNAMODB"), HINTS)
}

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::value::attr::{Attr, Item};

/// Our attribute value as the SDK's.
pub fn to_sdk(a: &Attr) -> AttributeValue {
    match a {
        Attr::S(s) => AttributeValue::S(s.clone()),
        Attr::N(n) => AttributeValue::N(n.clone()),
        Attr::B(b) => AttributeValue::B(Blob::new(b.clone())),
        Attr::Bool(b) => AttributeValue::Bool(*b),
        Attr::Null => AttributeValue::Null(true),
        Attr::SS(v) => AttributeValue::Ss(v.clone()),
        Attr::M(m) => AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect()),
        Attr::L(l) => AttributeValue::L(l.iter().map(to_sdk).collect()),
    }
}

pub fn item_to_sdk(item: &Item) -> std::collections::HashMap<String, AttributeValue> {
    item.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect()
}

/// The SDK's attribute value as ours (NS and BS become lists, as in `Attr::from_json`).
pub fn from_sdk(a: &AttributeValue) -> Attr {
    match a {
        AttributeValue::S(s) => Attr::S(s.clone()),
        AttributeValue::N(n) => Attr::N(n.clone()),
        AttributeValue::B(b) => Attr::B(b.as_ref().to_vec()),
        AttributeValue::Bool(b) => Attr::Bool(*b),
        AttributeValue::Null(_) => Attr::Null,
        AttributeValue::Ss(v) => Attr::SS(v.clone()),
        AttributeValue::Ns(v) => Attr::L(v.iter().cloned().map(Attr::N).collect()),
        AttributeValue::Bs(v) => Attr::L(v.iter().map(|b| Attr::B(b.as_ref().to_vec())).collect()),
        AttributeValue::M(m) => Attr::M(m.iter().map(|(k, v)| (k.clone(), from_sdk(v))).collect()),
        AttributeValue::L(l) => Attr::L(l.iter().map(from_sdk).collect()),
        _ => Attr::Null,
    }
}

pub fn item_from_sdk(item: &std::collections::HashMap<String, AttributeValue>) -> Item {
    item.iter().map(|(k, v)| (k.clone(), from_sdk(v))).collect()
}
