//! Which tables a statement from the binlog redefines. The statement is tokenised as the server
//! reads it: comments are dropped, except executable ones (`/*! … */`, `/*!40000 … */`,
//! `/*M!100100 … */`), whose text counts; identifiers may be bare or back-quoted (any character,
//! `` ` `` doubled); strings are skipped. Then the grammar of ALTER/DROP/RENAME/TRUNCATE/CREATE
//! TABLE, CREATE/DROP INDEX and DROP DATABASE names the tables it changes — the created table of
//! `CREATE TABLE a LIKE b` is `a` only, both tables of `ALTER TABLE a EXCHANGE PARTITION p WITH
//! TABLE b`. Under the statement's `ANSI_QUOTES` sql_mode (the query event carries it) `"…"` is
//! an identifier, not a string. `dml_targets` names the tables a statement-logged
//! INSERT/UPDATE/DELETE/REPLACE/LOAD DATA writes: capture must refuse those, never skip them.

/// A table a statement changes: database (None: the session's default) and name; or a whole
/// database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Table(Option<String>, String),
    Database(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: keyword or identifier.
    Word(String),
    /// A back-quoted identifier (never a keyword).
    Quoted(String),
    Punct(char),
    Str,
}

fn tokens(q: &str, ansi_quotes: bool) -> Vec<Tok> {
    let c: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('*') {
            // `/*!` and `/*M!` hold executable text: skip only the marker and version number.
            let mut j = i + 2;
            let executable = match (c.get(j), c.get(j + 1)) {
                (Some('!'), _) => {
                    j += 1;
                    true
                }
                (Some('M'), Some('!')) => {
                    j += 2;
                    true
                }
                _ => false,
            };
            if executable {
                while j < c.len() && c[j].is_ascii_digit() {
                    j += 1;
                }
                i = j; // the closing `*/` is skipped below
            } else {
                let mut k = j;
                while k + 1 < c.len() && !(c[k] == '*' && c[k + 1] == '/') {
                    k += 1;
                }
                i = k + 2;
            }
        } else if ch == '*' && next == Some('/') {
            i += 2;
        } else if ch == '#' || (ch == '-' && next == Some('-') && c.get(i + 2).is_none_or(|x| x.is_whitespace())) {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '`' || (ch == '"' && ansi_quotes) {
            let mut name = String::new();
            i += 1;
            while i < c.len() {
                if c[i] == ch {
                    if c.get(i + 1) == Some(&ch) {
                        name.push(ch);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                name.push(c[i]);
                i += 1;
            }
            out.push(Tok::Quoted(name));
        } else if ch == '\'' || ch == '"' {
            i += 1;
            while i < c.len() {
                if c[i] == '\\' {
                    i += 2;
                    continue;
                }
                if c[i] == ch {
                    if c.get(i + 1) == Some(&ch) {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push(Tok::Str);
        } else if ch.is_alphanumeric() || ch == '_' || ch == '$' {
            let mut w = String::new();
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                w.push(c[i]);
                i += 1;
            }
            out.push(Tok::Word(w));
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

struct Parser {
    toks: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn keyword(&mut self, kw: &str) -> bool {
        match self.toks.get(self.i) {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }

    fn punct(&mut self, p: char) -> bool {
        if self.toks.get(self.i) == Some(&Tok::Punct(p)) {
            self.i += 1;
            return true;
        }
        false
    }

    fn ident(&mut self) -> Option<String> {
        let t = match self.toks.get(self.i)? {
            Tok::Word(w) | Tok::Quoted(w) => w.clone(),
            _ => return None,
        };
        self.i += 1;
        Some(t)
    }

    /// `name` or `db.name`.
    fn table(&mut self) -> Option<Target> {
        let first = self.ident()?;
        if self.punct('.') {
            let second = self.ident()?;
            return Some(Target::Table(Some(first), second));
        }
        Some(Target::Table(None, first))
    }

    fn if_exists(&mut self) {
        let at = self.i;
        if !(self.keyword("if") && (self.keyword("exists") || (self.keyword("not") && self.keyword("exists")))) {
            self.i = at;
        }
    }

    /// `name [, name …]`, with `TO name` pairs when `renames`.
    fn table_list(&mut self, renames: bool) -> Vec<Target> {
        let mut out = Vec::new();
        while let Some(t) = self.table() {
            out.push(t);
            if renames && (self.keyword("to") || self.keyword("as")) {
                out.extend(self.table());
            }
            // DROP TABLE t WAIT n / NOWAIT, RENAME … WAIT: options after the names.
            if !self.punct(',') {
                break;
            }
        }
        out
    }
}

/// The tables (or databases) a statement changes the definition of; empty for anything else.
pub fn targets(query: &str) -> Vec<Target> {
    targets_in(query, false)
}

/// `targets`, with `"…"` read as an identifier when `ansi_quotes`.
pub fn targets_in(query: &str, ansi_quotes: bool) -> Vec<Target> {
    let mut p = Parser { toks: tokens(query, ansi_quotes), i: 0 };
    if p.keyword("alter") {
        p.keyword("online");
        p.keyword("ignore");
        if p.keyword("table") {
            p.if_exists();
            let mut out: Vec<Target> = p.table().into_iter().collect();
            // EXCHANGE PARTITION p WITH TABLE b swaps b's rows with no row events.
            while p.i < p.toks.len() {
                if p.keyword("exchange") && p.keyword("partition") {
                    p.ident();
                    if p.keyword("with") && p.keyword("table") {
                        out.extend(p.table());
                    }
                } else {
                    p.i += 1;
                }
            }
            return out;
        }
    } else if p.keyword("drop") {
        p.keyword("temporary");
        if p.keyword("table") || p.keyword("tables") {
            p.if_exists();
            return p.table_list(false);
        }
        if p.keyword("database") || p.keyword("schema") {
            p.if_exists();
            return p.ident().map(Target::Database).into_iter().collect();
        }
        if p.keyword("index") {
            p.if_exists();
            p.ident();
            if p.keyword("on") {
                return p.table().into_iter().collect();
            }
        }
    } else if p.keyword("rename") {
        if p.keyword("table") || p.keyword("tables") {
            return p.table_list(true);
        }
    } else if p.keyword("truncate") {
        p.keyword("table");
        return p.table().into_iter().collect();
    } else if p.keyword("create") {
        if p.keyword("or") {
            p.keyword("replace");
        }
        p.keyword("temporary");
        if p.keyword("table") {
            p.if_exists();
            return p.table().into_iter().collect();
        }
        let _ = p.keyword("unique") || p.keyword("fulltext") || p.keyword("spatial");
        if p.keyword("index") {
            p.if_exists();
            p.ident();
            if p.keyword("on") {
                return p.table().into_iter().collect();
            }
        }
    }
    Vec::new()
}

/// The tables a data-changing statement writes, when it is one: the table after INSERT/REPLACE
/// [INTO] or LOAD DATA … INTO TABLE; every table reference of UPDATE (before SET) and of DELETE
/// (before WHERE), which covers the multi-table forms (a false stop is safer than a missed one).
/// With its verb.
pub fn dml_targets(query: &str, ansi_quotes: bool) -> Option<(String, Vec<Target>)> {
    let mut p = Parser { toks: tokens(query, ansi_quotes), i: 0 };
    let verb = match p.toks.first() {
        Some(Tok::Word(w)) => w.to_ascii_uppercase(),
        _ => return None,
    };
    p.i = 1;
    let skip = |p: &mut Parser, words: &[&str]| while words.iter().any(|w| p.keyword(w)) {};
    let refs_until = |p: &mut Parser, stop: &[&str]| {
        let mut out = Vec::new();
        while p.i < p.toks.len() {
            if matches!(&p.toks[p.i], Tok::Word(w) if stop.iter().any(|s| w.eq_ignore_ascii_case(s))) {
                break;
            }
            match p.table() {
                Some(t) => out.push(t),
                None => p.i += 1,
            }
        }
        out
    };
    let targets = match verb.as_str() {
        "INSERT" | "REPLACE" => {
            skip(&mut p, &["low_priority", "delayed", "high_priority", "ignore", "into"]);
            p.table().into_iter().collect()
        }
        "LOAD" => {
            while p.i < p.toks.len() && !(p.keyword("into") && p.keyword("table")) {
                p.i += 1;
            }
            p.table().into_iter().collect()
        }
        "UPDATE" => {
            skip(&mut p, &["low_priority", "ignore"]);
            refs_until(&mut p, &["set"])
        }
        "DELETE" => {
            skip(&mut p, &["low_priority", "quick", "ignore", "from"]);
            refs_until(&mut p, &["where", "order", "limit", "returning"])
        }
        _ => return None,
    };
    Some((verb, targets))
}

/// Whether `query`, run with `default_db` selected, changes table `db`.`table`. Names compare
/// without regard to case (a false stop is safer than a missed one).
pub fn changes(query: &str, default_db: &str, db: &str, table: &str) -> bool {
    changes_in(query, false, default_db, db, table)
}

/// `changes`, with `"…"` read as an identifier when `ansi_quotes`.
pub fn changes_in(query: &str, ansi_quotes: bool, default_db: &str, db: &str, table: &str) -> bool {
    targets_in(query, ansi_quotes).iter().any(|t| names(t, default_db, db, table))
}

/// Whether target `t` (a bare name resolved in `default_db`) is `db`.`table` or its database.
pub fn names(t: &Target, default_db: &str, db: &str, table: &str) -> bool {
    match t {
        Target::Table(d, t) => d.as_deref().unwrap_or(default_db).eq_ignore_ascii_case(db) && t.eq_ignore_ascii_case(table),
        Target::Database(d) => d.eq_ignore_ascii_case(db),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: Option<&str>, name: &str) -> Target {
        Target::Table(db.map(String::from), name.to_string())
    }

    #[test]
    fn quoted_names_with_any_character_are_read() {
        assert_eq!(targets("ALTER TABLE `order-items` ADD x INT"), vec![t(None, "order-items")]);
        assert_eq!(targets("alter table `shop`.`order items` drop column y"), vec![t(Some("shop"), "order items")]);
        assert_eq!(targets("ALTER TABLE `we``ird` ADD x INT"), vec![t(None, "we`ird")]);
        assert_eq!(targets("DROP TABLE IF EXISTS a, `b c`, db.d"), vec![t(None, "a"), t(None, "b c"), t(Some("db"), "d")]);
        assert_eq!(targets("RENAME TABLE a TO a_old, a_new TO a"), vec![t(None, "a"), t(None, "a_old"), t(None, "a_new"), t(None, "a")]);
        assert_eq!(targets("TRUNCATE `x`"), vec![t(None, "x")]);
        assert_eq!(targets("CREATE INDEX i ON shop.purchase (q)"), vec![t(Some("shop"), "purchase")]);
        assert_eq!(targets("DROP INDEX i ON purchase"), vec![t(None, "purchase")]);
        assert_eq!(targets("DROP DATABASE IF EXISTS shop"), vec![Target::Database("shop".into())]);
    }

    #[test]
    fn executable_comments_count_and_other_comments_do_not() {
        assert_eq!(targets("/*!40000 ALTER TABLE db.t MODIFY v int FIRST */"), vec![t(Some("db"), "t")]);
        assert_eq!(targets("/*M!100100 ALTER TABLE t ENGINE=InnoDB */"), vec![t(None, "t")]);
        assert_eq!(targets("/* a note */ ALTER /* more */ TABLE -- x\n t ADD y INT"), vec![t(None, "t")]);
        assert_eq!(targets("# only a comment\nALTER TABLE `t` FORCE"), vec![t(None, "t")]);
        assert!(targets("/* ALTER TABLE t ADD x INT */ SELECT 1").is_empty());
    }

    #[test]
    fn only_the_created_table_of_create_like_or_select_is_changed() {
        assert_eq!(targets("CREATE TABLE db.t_bak LIKE db.t"), vec![t(Some("db"), "t_bak")]);
        assert_eq!(targets("CREATE TABLE IF NOT EXISTS x AS SELECT * FROM t"), vec![t(None, "x")]);
        assert_eq!(targets("CREATE OR REPLACE TABLE t (id INT)"), vec![t(None, "t")]);
        assert!(!changes("CREATE TABLE db.t_bak LIKE db.t", "db", "db", "t"));
        assert!(changes("CREATE OR REPLACE TABLE t (id INT)", "db", "db", "t"));
    }

    #[test]
    fn ansi_quotes_make_double_quotes_names_when_the_statement_ran_under_them() {
        // Regression: under ANSI_QUOTES `ALTER TABLE "t" …` was read as a string, so a column
        // reorder of t went unnoticed and apply swapped values.
        assert_eq!(targets_in(r#"ALTER TABLE "t" MODIFY b INT FIRST"#, true), vec![t(None, "t")]);
        assert_eq!(targets_in(r#"ALTER TABLE "shop"."we""ird" ADD x INT"#, true), vec![t(Some("shop"), "we\"ird")]);
        assert!(targets_in(r#"ALTER TABLE "t" MODIFY b INT FIRST"#, false).is_empty(), "a string without ANSI_QUOTES");
        assert!(changes_in(r#"DROP TABLE "purchase""#, true, "shop", "shop", "purchase"));
    }

    #[test]
    fn exchange_partition_changes_both_tables() {
        // Regression: EXCHANGE PARTITION changed b's rows with no row events, and was missed.
        let q = "ALTER TABLE a EXCHANGE PARTITION p0 WITH TABLE shop.b WITHOUT VALIDATION";
        assert_eq!(targets(q), vec![t(None, "a"), t(Some("shop"), "b")]);
        assert!(changes(q, "shop", "shop", "b"));
    }

    #[test]
    fn statement_logged_dml_names_the_tables_it_writes() {
        let dml = |q: &str| dml_targets(q, false);
        assert_eq!(dml("INSERT INTO shop.t VALUES (1)"), Some(("INSERT".into(), vec![t(Some("shop"), "t")])));
        assert_eq!(dml("insert low_priority ignore `t` (a) select 1"), Some(("INSERT".into(), vec![t(None, "t")])));
        assert_eq!(dml("REPLACE t SET a = 1").unwrap().1, vec![t(None, "t")]);
        assert_eq!(dml("UPDATE a JOIN b ON a.id = b.id SET a.x = 1").unwrap().1.iter().filter(|x| matches!(x, Target::Table(None, n) if n == "b")).count(), 1);
        assert!(dml("DELETE FROM shop.t WHERE id = 1").unwrap().1.contains(&t(Some("shop"), "t")));
        assert!(dml("DELETE a, b FROM a JOIN b WHERE a.id = b.id").unwrap().1.contains(&t(None, "b")));
        assert_eq!(dml("LOAD DATA INFILE 'x.csv' INTO TABLE t").unwrap().1, vec![t(None, "t")]);
        assert_eq!(dml("ALTER TABLE t ADD x INT"), None);
        assert_eq!(dml("BEGIN"), None);
    }

    #[test]
    fn the_default_database_resolves_bare_names() {
        assert!(changes("ALTER TABLE purchase ADD x INT", "shop", "shop", "purchase"));
        assert!(!changes("ALTER TABLE purchase ADD x INT", "other", "shop", "purchase"));
        assert!(changes("alter table SHOP.Purchase drop y", "", "shop", "purchase"));
        assert!(changes("DROP DATABASE shop", "", "shop", "purchase"));
        assert!(!changes("INSERT INTO purchase VALUES (1)", "shop", "shop", "purchase"));
        assert!(!changes("ALTER TABLE 'purchase' ADD x INT", "shop", "shop", "purchase"), "a string is not a name");
    }
}
