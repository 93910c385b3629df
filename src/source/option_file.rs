//! MySQL option files (`~/.my.cnf`, `--option-file`) read as the mysql and mariadb clients read
//! them: groups `[client]`, `[client-server]`, `[client-mariadb]` and our own `[mysql2ddb]`,
//! matched without regard to case; `!include FILE` and `!includedir DIR` (its `*.cnf` files in
//! name order); option names with `-` or `_` alike and a `loose-` prefix; quoted values,
//! `#` comments and backslash escapes; the last value of an option wins. A line this reader does
//! not understand is an error naming the file and line, not skipped: a skipped `password` shows
//! up later as "access denied".

use std::path::{Path, PathBuf};

use super::SourceError;

/// Groups whose options apply to this tool.
const GROUPS: [&str; 4] = ["client", "client-server", "client-mariadb", "mysql2ddb"];
/// `!include` nesting deeper than this is a loop.
const MAX_DEPTH: usize = 10;

#[derive(Debug, Default, PartialEq)]
pub struct OptionFile {
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Reads `user` and `password` from an option file and what it includes.
pub fn read(path: &Path) -> Result<OptionFile, SourceError> {
    let mut out = OptionFile::default();
    read_into(path, 0, &mut out)?;
    Ok(out)
}

fn fail(path: &Path, reason: impl Into<String>) -> SourceError {
    SourceError::OptionFile { path: path.display().to_string(), reason: reason.into() }
}

fn read_into(path: &Path, depth: usize, out: &mut OptionFile) -> Result<(), SourceError> {
    if depth > MAX_DEPTH {
        return Err(fail(path, format!("!include nests deeper than {MAX_DEPTH} files (a loop?)")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(path, e.to_string()))?;
    let mut in_group = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |reason: String| fail(path, format!("line {}: {reason}", n + 1));
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("!includedir") {
            let dir = PathBuf::from(rest.trim());
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| at(format!("!includedir {}: {e}", dir.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "cnf"))
                .collect();
            files.sort();
            for f in files {
                read_into(&f, depth + 1, out)?;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("!include") {
            read_into(Path::new(rest.trim()), depth + 1, out)?;
            continue;
        }
        if line.starts_with('!') {
            return Err(at(format!("{line:?}: only !include and !includedir are directives")));
        }
        if let Some(group) = line.strip_prefix('[') {
            let name = group.split(']').next().unwrap_or_default().trim().to_ascii_lowercase();
            in_group = GROUPS.contains(&name.as_str());
            continue;
        }
        if !in_group {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(option_value(v))),
            None => (line, None),
        };
        let key = key.to_ascii_lowercase().replace('_', "-");
        let key = key.strip_prefix("loose-").unwrap_or(&key);
        match (key, value) {
            ("user", Some(v)) => out.user = Some(v),
            ("password", Some(v)) => out.password = Some(v),
            ("password", None) => return Err(at("password without a value asks for it at a prompt, which this tool does not do: give the value".into())),
            _ => {}
        }
    }
    Ok(())
}

/// A value as the mariadb client reads it: quoted (`"…"` or `'…'`, where `#` is literal), or
/// unquoted up to a `#` comment; backslash escapes (`\n`, `\t`, `\s` for a space, `\\`…) undone.
pub fn option_value(raw: &str) -> String {
    let raw = raw.trim();
    let (body, quote) = match raw.chars().next() {
        Some(q @ ('"' | '\'')) => (&raw[1..], Some(q)),
        _ => (raw, None),
    };
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('s') => out.push(' '),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            c if Some(c) == quote => break,
            '#' if quote.is_none() => break,
            c => out.push(c),
        }
    }
    if quote.is_none() {
        out.truncate(out.trim_end().len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_file_values_read_as_the_mariadb_client_reads_them() {
        // Regression: `password=x # comment` gave the password "x # comment".
        assert_eq!(option_value(" x # comment"), "x");
        assert_eq!(option_value("\"a#b\" # c"), "a#b");
        assert_eq!(option_value("'it''"), "it");
        assert_eq!(option_value("a\\sb"), "a b");
        assert_eq!(option_value("p@ss"), "p@ss");
    }

    #[test]
    fn includes_group_case_and_loose_prefixes_are_read_as_the_client_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::write(conf_d.join("10-user.cnf"), "[CLIENT]\nloose-user = alice\n").unwrap();
        std::fs::write(conf_d.join("20-pw.cnf"), "[Client-MariaDB]\nloose_password = 'from-dir'\n").unwrap();
        std::fs::write(conf_d.join("ignored.txt"), "[client]\npassword = nope\n").unwrap();
        let inc = dir.path().join("inc.cnf");
        std::fs::write(&inc, "[client]\npassword = from-include\n").unwrap();
        let main = dir.path().join("my.cnf");
        std::fs::write(&main, format!("[mysqld]\npassword=server\n!include {}\n!includedir {}\n", inc.display(), conf_d.display())).unwrap();
        assert_eq!(read(&main).unwrap(), OptionFile { user: Some("alice".into()), password: Some("from-dir".into()) }, "the last value wins");
        let lonely = dir.path().join("prompt.cnf");
        std::fs::write(&lonely, "[client]\npassword\n").unwrap();
        assert!(read(&lonely).unwrap_err().to_string().contains("line 2"), "a prompt is refused naming the line");
        let looped = dir.path().join("loop.cnf");
        std::fs::write(&looped, format!("!include {}\n", looped.display())).unwrap();
        assert!(read(&looped).unwrap_err().to_string().contains("deeper"));
        let bad = dir.path().join("bad.cnf");
        std::fs::write(&bad, "!source x\n").unwrap();
        assert!(read(&bad).unwrap_err().to_string().contains("!source"));
    }
}
