//! Which tables a statement from the binlog redefines. The statement is tokenised as the server
//! reads it: comments are dropped, except executable ones (`/*! … */`, `/*!40000 … */`,
//! `/*M!100100 … */`), whose text counts; identifiers may be bare or back-quoted (any character,
//! `` ` `` doubled); strings are skipped. Then the grammar of ALTER/DROP/RENAME/TRUNCATE/CREATE
//! TABLE, CREATE/DROP INDEX and DROP DATABASE names the tables it changes — the created table of
//! `CREATE TABLE a LIKE b` is `a` only.

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

fn tokens(q: &str) -> Vec<Tok> {
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
        } else if ch == '`' {
            let mut name = String::new();
            i += 1;
            while i < c.len() {
                if c[i] == '`' {
                    if c.get(i + 1) == Some(&'`') {
                        name.push('`');
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
    let mut p = Parser { toks: tokens(query), i: 0 };
    if p.keyword("alter") {
        p.keyword("online");
        p.keyword("ignore");
        if p.keyword("table") {
            p.if_exists();
            return p.table().into_iter().collect();
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

/// Whether `query`, run with `default_db` selected, changes table `db`.`table`. Names compare
/// without regard to case (a false stop is safer than a missed one).
pub fn changes(query: &str, default_db: &str, db: &str, table: &str) -> bool {
    targets(query).iter().any(|t| match t {
        Target::Table(d, t) => d.as_deref().unwrap_or(default_db).eq_ignore_ascii_case(db) && t.eq_ignore_ascii_case(table),
        Target::Database(d) => d.eq_ignore_ascii_case(db),
    })
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
    fn the_default_database_resolves_bare_names() {
        assert!(changes("ALTER TABLE purchase ADD x INT", "shop", "shop", "purchase"));
        assert!(!changes("ALTER TABLE purchase ADD x INT", "other", "shop", "purchase"));
        assert!(changes("alter table SHOP.Purchase drop y", "", "shop", "purchase"));
        assert!(changes("DROP DATABASE shop", "", "shop", "purchase"));
        assert!(!changes("INSERT INTO purchase VALUES (1)", "shop", "shop", "purchase"));
        assert!(!changes("ALTER TABLE 'purchase' ADD x INT", "shop", "shop", "purchase"), "a string is not a name");
    }
}
