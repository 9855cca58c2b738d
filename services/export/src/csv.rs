//! CSV as Excel and RFC 4180 read it: UTF-8 with a byte-order mark, CRLF line ends,
//! fields quoted when they hold a comma, a quote or a line break.

use crate::{Cell, Table};

/// Excel takes a CSV without it for the local ANSI code page and garbles the Chinese.
const BOM: &str = "\u{feff}";

pub(crate) fn write(table: &Table) -> Vec<u8> {
    let mut out = String::from(BOM);
    let headers: Vec<String> = table.headers.iter().map(|h| h.label()).collect();
    line(&mut out, headers.iter().map(|h| field(h)));
    for row in &table.rows {
        line(&mut out, row.iter().map(cell));
    }
    out.into_bytes()
}

fn line(out: &mut String, fields: impl Iterator<Item = String>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&f);
    }
    out.push_str("\r\n");
}

fn cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) => field(&defuse(s)),
        Cell::Int(n) => n.to_string(),
        Cell::Number(x) | Cell::Percent(x) if x.is_finite() => x.to_string(),
        Cell::Number(_) | Cell::Percent(_) | Cell::Empty => String::new(),
        Cell::Bool(b) => b.to_string(),
        Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
    }
}

/// A text that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, or a tab or
/// carriage return before one) gets a leading apostrophe: names and ids come from other
/// systems, and a CSV opened in Excel must not run what they hold. XLSX needs no such
/// care, its strings are never formulas.
fn defuse(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

/// RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        let mut quoted = String::with_capacity(s.len() + 2);
        quoted.push('"');
        for ch in s.chars() {
            if ch == '"' {
                quoted.push('"');
            }
            quoted.push(ch);
        }
        quoted.push('"');
        quoted
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(field("发热 / Fever"), "发热 / Fever");
    }

    #[test]
    fn text_that_looks_like_a_formula_is_defused_and_numbers_are_not() {
        assert_eq!(cell(&Cell::Text("=1+1".into())), "'=1+1");
        assert_eq!(cell(&Cell::Text("@SUM(A1)".into())), "'@SUM(A1)");
        assert_eq!(cell(&Cell::Text("-x".into())), "'-x");
        assert_eq!(cell(&Cell::Text("S001".into())), "S001");
        assert_eq!(cell(&Cell::Int(-3)), "-3");
        assert_eq!(cell(&Cell::Number(0.875)), "0.875");
        assert_eq!(cell(&Cell::Percent(f64::NAN)), "");
    }
}
