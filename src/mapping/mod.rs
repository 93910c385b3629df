//! How exported tables become DynamoDB tables and items. `dms` parses DMS-compatible
//! table-mapping JSON (plus this tool's `group-records-to-item` extension), `template` the
//! `${column}` value templates, `compile` resolves a mapping (or automatic mode) against the
//! manifest into per-table row mappers, `convert` turns column values into attribute values, and
//! `attr` holds those values with DynamoDB's size rules and a compact codec.

pub mod attr;
pub mod compile;
pub mod convert;
pub mod dms;
pub mod template;
