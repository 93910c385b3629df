//! Stage two's first half (in progress, issue 4): how exported tables become DynamoDB tables and
//! items. So far: DMS-compatible table-mapping JSON (selection and object-mapping rules, parsed
//! strictly and checked against the manifest's tables) and `${column}` value templates. The
//! grouping extension, automatic mode, value conversion and the import itself come next.

pub mod dms;
pub mod template;
