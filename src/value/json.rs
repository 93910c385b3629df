//! JSON strings written as serde_json writes them, for capture's staged lines, which are
//! rendered straight from the row image (`binlog::CellView::write_json`) and must be the bytes
//! serde_json gives for the same `Cell`: `"` and `\` escaped with a backslash, the control
//! characters below 0x20 as `\b \t \n \f \r` or `\u00xx` (lower-case hex), everything else,
//! DEL and non-ASCII included, as it is. Runs without an escape are copied whole.

/// What each byte needs: 0 nothing, `u` a `\u00xx` escape, else the letter after the backslash.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// The bytes `write_str` writes for `bytes` (as text), quotes excluded.
pub fn escaped_len(bytes: &[u8]) -> usize {
    bytes.len()
        + bytes
            .iter()
            .map(|&b| match ESCAPE[b as usize] {
                0 => 0,
                b'u' => 5,
                _ => 1,
            })
            .sum::<usize>()
}

/// `s` as a JSON string, quotes included, appended to `out`.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_escaped(out, s.as_bytes());
    out.push(b'"');
}

/// The inside of a JSON string for the text `bytes`, quotes excluded. Only ASCII bytes are
/// escaped and no byte of a multi-byte UTF-8 sequence is ASCII, so a text can be written in
/// pieces cut anywhere, and the pieces give the bytes the whole would.
pub fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        if esc == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escaped_len_is_what_write_str_writes() {
        for s in ["", "plain", "quote \" and \\ back", "\u{1}\n\t\u{1f}\u{7f} é 𝄞", &"\"\n\u{2}".repeat(100)] {
            assert_eq!(escaped_len(s.as_bytes()) + 2, ours(s).len(), "{s:?}");
        }
    }

    #[test]
    fn a_text_escaped_in_pieces_cut_anywhere_is_the_text_escaped_whole() {
        let s = "a\"b\\c\n é€😀\u{1}\u{7f}z".repeat(7);
        let whole = ours(&s);
        for piece in 1..=9 {
            let mut out = vec![b'"'];
            s.as_bytes().chunks(piece).for_each(|c| write_escaped(&mut out, c));
            out.push(b'"');
            assert_eq!(String::from_utf8(out).unwrap(), whole, "pieces of {piece} bytes");
        }
    }

    #[test]
    fn every_ascii_character_is_written_as_serde_json_writes_it() {
        for b in 0u8..=0x7f {
            let s = format!("a{}b", b as char);
            assert_eq!(ours(&s), serde_json::to_string(&s).unwrap(), "byte {b:#x}");
        }
    }

    #[test]
    fn mixed_text_matches_serde_json() {
        let cases = ["", "plain", "é \"quoted\" \\ back\\slash", "line\nbreak\r\n\ttab\u{1}\u{1f}\u{7f}", "日本語 🎉", "\"", "\\\\", "end\n"];
        for s in cases {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        // Every two-character string over a mix of escapes and multi-byte characters.
        let alphabet = ['a', '"', '\\', '\n', '\u{0}', '\u{7f}', 'é', '€', '😀'];
        for x in alphabet {
            for y in alphabet {
                let s: String = [x, y].iter().collect();
                assert_eq!(ours(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
            }
        }
    }
}
