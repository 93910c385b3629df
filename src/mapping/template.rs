//! Value templates of DMS attribute mappings: literal text with `${column}` references, e.g.
//! `${customerid}|${orderid}`. `$$` stands for a literal `$`. Parsed once and checked against
//! the table's columns; rendering takes the row's values as text.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Column(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                text.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let end = r.find('}').ok_or_else(|| TemplateError(format!("unclosed ${{ in template {s:?}")))?;
                let name = &r[..end];
                if name.is_empty() {
                    return Err(TemplateError(format!("empty ${{}} in template {s:?}")));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Column(name.to_string()));
                rest = &r[end + 1..];
            } else {
                text.push('$');
                rest = after;
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// The columns the template reads, in order of appearance.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Column(c) => Some(c.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// `Some(column)` when the template is exactly one column reference (`${productid}`), so the
    /// value keeps the column's own type instead of becoming text.
    pub fn single_column(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Column(c)] => Some(c),
            _ => None,
        }
    }

    /// Renders with `value(column)`; None when a referenced value is NULL.
    pub fn render<'a>(&self, mut value: impl FnMut(&str) -> Option<&'a str>) -> Option<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Column(c) => out.push_str(value(c)?),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blog_template_reads_two_columns() {
        let t = Template::parse("${customerid}|${orderid}").unwrap();
        assert_eq!(t.columns().collect::<Vec<_>>(), vec!["customerid", "orderid"]);
        let row = |c: &str| match c {
            "customerid" => Some("c1"),
            "orderid" => Some("o9"),
            _ => None,
        };
        assert_eq!(t.render(row).as_deref(), Some("c1|o9"));
        assert_eq!(t.single_column(), None);
    }

    #[test]
    fn literals_dollars_and_errors() {
        assert_eq!(Template::parse("${a}").unwrap().single_column(), Some("a"));
        let t = Template::parse("cost $$5 for $x ${item}").unwrap();
        assert_eq!(t.render(|_| Some("pen")).as_deref(), Some("cost $5 for $x pen"));
        assert!(Template::parse("${open").is_err());
        assert!(Template::parse("${}").is_err());
        assert_eq!(Template::parse("${a}-${b}").unwrap().render(|c| (c == "a").then_some("1")), None, "NULL in, None out");
    }
}
