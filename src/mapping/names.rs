//! DynamoDB table names from source names, for automatic mode and `--table-name-template`:
//! DynamoDB allows 3–255 characters of `A-Z a-z 0-9 _ - .`, MySQL allows nearly anything (spaces,
//! `é`, backticks). Each character outside DynamoDB's set becomes `_`, a name shorter than 3 is
//! padded with `_`, and one over 255 bytes keeps its first 246 and ends in `-` plus 8 hex digits
//! of its SHA-256, so two long names stay apart. Two source tables that end up with one name are
//! caught by the plan (`compile`), before anything is written.

use sha2::{Digest, Sha256};

/// DynamoDB's table-name bounds.
pub const MIN_TABLE_NAME: usize = 3;
pub const MAX_TABLE_NAME: usize = 255;

/// DynamoDB table names: 3–255 of `a-z A-Z 0-9 _ - .`.
pub fn valid_table_name(name: &str) -> bool {
    (MIN_TABLE_NAME..=MAX_TABLE_NAME).contains(&name.len()) && name.bytes().all(allowed)
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// `name` made a valid DynamoDB table name (unchanged when it is one already).
pub fn table_name(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii() && allowed(c as u8) { c } else { '_' }).collect();
    while out.len() < MIN_TABLE_NAME {
        out.push('_');
    }
    if out.len() > MAX_TABLE_NAME {
        let hash = hex::encode(Sha256::digest(name.as_bytes()));
        out.truncate(MAX_TABLE_NAME - 9);
        out.push('-');
        out.push_str(&hash[..8]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_source_name_becomes_a_valid_table_name() {
        assert_eq!(table_name("weird db_order"), "weird_db_order");
        assert_eq!(table_name("café.t`x"), "caf_.t_x");
        assert_eq!(table_name("shop_orders"), "shop_orders");
        assert_eq!(table_name("a"), "a__");
        let long = "x".repeat(300);
        let short = table_name(&long);
        assert_eq!(short.len(), MAX_TABLE_NAME);
        assert!(valid_table_name(&short));
        assert_ne!(short, table_name(&format!("{long}y")), "long names that differ stay apart");
        for n in ["weird db_order", "😀😀", "", "a b c"] {
            assert!(valid_table_name(&table_name(n)), "{n:?}");
        }
    }
}
