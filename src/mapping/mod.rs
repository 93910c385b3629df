//! How exported tables become DynamoDB tables and items. `dms` parses DMS-compatible
//! table-mapping JSON (plus this tool's `group-records-to-item` extension), `template` the
//! `${column}` value templates, `compile` resolves a mapping (or automatic mode) against the
//! manifest into per-table row mappers, and `names` makes valid DynamoDB table names from source
//! names. Column values become attribute values in `crate::value`.

pub mod compile;
pub mod dms;
pub mod names;
pub mod template;
