//! Names in a run folder: any schema or table name as one safe path component, and where a
//! table's chunk and rejects files go.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Everything but ASCII letters, digits, `-` and `_` is percent-encoded in file names, so any
/// schema or table name (spaces, quotes, dots, unicode) maps to one safe path component.
const PATH_UNSAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Longest encoded component kept whole: file systems allow 255 bytes per name, and the
/// component may get a suffix (`.jsonl`).
const MAX_COMPONENT: usize = 200;

/// A name as one safe path component. An encoding longer than `MAX_COMPONENT` (a 64-character
/// name of 4-byte characters encodes to 768 bytes) keeps its first bytes and ends in `~` and 8 hex
/// digits of the name's SHA-256, so it still names one file, distinct from its neighbours'.
pub fn encode_component(name: &str) -> String {
    let encoded = utf8_percent_encode(name, PATH_UNSAFE).to_string();
    if encoded.len() <= MAX_COMPONENT {
        return encoded;
    }
    let mut cut = MAX_COMPONENT - 9;
    // Never inside a `%XX` escape.
    while encoded.as_bytes()[cut.saturating_sub(2)..cut].contains(&b'%') {
        cut -= 1;
    }
    format!("{}~{}", &encoded[..cut], &hex::encode(Sha256::digest(name.as_bytes()))[..8])
}

/// `data/<db>/<table>/<id>.<ext>` relative to the run folder.
pub fn chunk_path(database: &str, table: &str, id: u32, ext: &str) -> String {
    format!("data/{}/{}/{id:05}.{ext}", encode_component(database), encode_component(table))
}

/// `rejects/<db>/<table>/<id>.jsonl` relative to the run folder.
pub fn rejects_path(database: &str, table: &str, id: u32) -> String {
    format!("rejects/{}/{}/{id:05}.jsonl", encode_component(database), encode_component(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_one_safe_component() {
        assert_eq!(chunk_path("my db", "a/b.`c`", 7, "csv"), "data/my%20db/a%2Fb%2E%60c%60/00007.csv");
        assert_eq!(encode_component("ünï"), "%C3%BCn%C3%AF");
        // Regression: a long name made a file name over 255 bytes ("File name too long").
        let emoji = "😀".repeat(64);
        let long = encode_component(&emoji);
        assert!(long.len() <= MAX_COMPONENT && long.contains('~'), "{long}");
        assert!(!long.split('~').next().unwrap().ends_with('%'));
        assert_ne!(long, encode_component(&"😀".repeat(63)));
    }
}
