//! BatchWriteItem request bodies written straight from our items. The SDK builds a map of
//! `AttributeValue`s per item and serializes it again on every attempt; at tens of thousands of
//! items a second that was a fifth of the writer's CPU. Here the body is DynamoDB's JSON (the
//! same text the SDK sends) written once per attempt from `Item`, and handed to the SDK's
//! request in place of the one it serialized, before signing: the SDK still signs, sends,
//! times, and parses the answer (UnprocessedItems, ConsumedCapacity).

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemError, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_smithy_runtime_api::http::Request as HttpRequest;
use aws_smithy_types::body::SdkBody;
use base64::Engine;

use crate::value::attr::{Attr, Item};

fn put_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec");
}

/// `prefix`, then `values` as a JSON array, each written by `put`.
fn put_array<T>(out: &mut Vec<u8>, prefix: &[u8], values: impl IntoIterator<Item = T>, mut put: impl FnMut(&mut Vec<u8>, T)) {
    out.extend_from_slice(prefix);
    out.push(b'[');
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put(out, v);
    }
    out.push(b']');
}

/// One attribute value in DynamoDB's JSON: `{"S":"…"}`, `{"N":"12"}`, `{"M":{…}}`…
pub fn put_attr(out: &mut Vec<u8>, a: &Attr) {
    match a {
        Attr::S(s) => {
            out.extend_from_slice(b"{\"S\":");
            put_str(out, s);
        }
        Attr::N(n) => {
            out.extend_from_slice(b"{\"N\":");
            put_str(out, n);
        }
        Attr::B(b) => {
            out.extend_from_slice(b"{\"B\":\"");
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(b).as_bytes());
            out.push(b'"');
        }
        Attr::Bool(b) => out.extend_from_slice(if *b { b"{\"BOOL\":true" } else { b"{\"BOOL\":false" }),
        Attr::Null => out.extend_from_slice(b"{\"NULL\":true"),
        Attr::SS(v) => put_array(out, b"{\"SS\":", v, |out, s| put_str(out, s)),
        Attr::M(m) => {
            out.extend_from_slice(b"{\"M\":");
            put_item(out, m);
        }
        Attr::L(l) => put_array(out, b"{\"L\":", l, put_attr),
    }
    out.push(b'}');
}

/// An item (or a map's members) as a JSON object of attribute values.
pub fn put_item(out: &mut Vec<u8>, item: &Item) {
    out.push(b'{');
    for (i, (k, v)) in item.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, k);
        out.push(b':');
        put_attr(out, v);
    }
    out.push(b'}');
}

/// One request of a BatchWriteItem call: an item to put, or the key of an item to delete.
#[derive(Clone, Copy)]
pub enum Request<'a> {
    Put(&'a Item),
    Delete(&'a Item),
}

/// The body of a BatchWriteItem call of `requests` on `table`, asking for the consumed
/// capacity in total.
pub fn batch_write_body<'a>(table: &str, requests: impl Iterator<Item = Request<'a>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"RequestItems\":{");
    put_str(&mut out, table);
    put_array(&mut out, b":", requests, |out, r| {
        let (open, item) = match r {
            Request::Put(item) => (&b"{\"PutRequest\":{\"Item\":"[..], item),
            Request::Delete(key) => (&b"{\"DeleteRequest\":{\"Key\":"[..], key),
        };
        out.extend_from_slice(open);
        put_item(out, item);
        out.extend_from_slice(b"}}");
    });
    out.extend_from_slice(b"},\"ReturnConsumedCapacity\":\"TOTAL\"}");
    out
}

/// Sends a BatchWriteItem call on `table` whose body is `body` (`batch_write_body`): the SDK's
/// input carries only the table's name, and its serialized body is replaced before signing.
pub async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    body: bytes::Bytes,
) -> Result<BatchWriteItemOutput, SdkError<BatchWriteItemError, HttpResponse>> {
    client
        .batch_write_item()
        .request_items(table, Vec::new())
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .customize()
        .mutate_request(move |req| replace_body(req, &body))
        .send()
        .await
}

/// Puts `body` in place of the request's serialized body (used from the SDK's
/// `customize().mutate_request`, which runs before signing).
fn replace_body(req: &mut HttpRequest, body: &bytes::Bytes) {
    *req.body_mut() = SdkBody::from(body.clone());
    req.headers_mut().insert("content-length", body.len().to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    #[test]
    fn bodies_are_dynamodb_json_of_every_type() {
        let item = Item::from([
            ("s".into(), Attr::S("a \"quoted\"\nline, é, \u{1}".into())),
            ("n".into(), Attr::N("-12.50".into())),
            ("b".into(), Attr::B(vec![0, 255, 7])),
            ("t".into(), Attr::Bool(true)),
            ("f".into(), Attr::Bool(false)),
            ("z".into(), Attr::Null),
            ("ss".into(), Attr::SS(vec!["x".into(), "y".into()])),
            ("m".into(), Attr::M(BTreeMap::from([("k".into(), Attr::L(vec![Attr::N("1".into()), Attr::S("".into())])), ("e".into(), Attr::M(BTreeMap::new()))]))),
            ("l".into(), Attr::L(Vec::new())),
        ]);
        let other = Item::from([("s".into(), Attr::S("2".into()))]);
        let body = batch_write_body("tab\"le", [Request::Put(&item), Request::Delete(&other)].into_iter());
        let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
        let json = crate::value::attr::item_to_json;
        assert_eq!(
            parsed,
            json!({"RequestItems": {"tab\"le": [{"PutRequest": {"Item": json(&item)}}, {"DeleteRequest": {"Key": json(&other)}}]}, "ReturnConsumedCapacity": "TOTAL"})
        );
        // And back: every value reads as the attribute it was.
        let back = crate::value::attr::item_from_json(&parsed["RequestItems"]["tab\"le"][0]["PutRequest"]["Item"]).unwrap();
        assert_eq!(back, item);
    }
}
