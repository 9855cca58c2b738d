//! A request's query string, read by hand: axum's `Query` would bring in
//! `serde_urlencoded` for a handful of string parameters.

use std::collections::HashMap;

/// The parameters of a query string, percent-decoded (`+` as a space); the last of a
/// repeated name wins.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(text: &str) -> Self {
        let decode = |s: &str| {
            let spaced = s.replace('+', " ");
            percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
        };
        Self(
            text.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((name, value)) => (decode(name), decode(value)),
                    None => (decode(pair), String::new()),
                })
                .collect(),
        )
    }

    /// The parameter's value; `None` if absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The parameter's value, empty if absent: the gRPC checks then name what is missing.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_decoded_and_empty_ones_are_absent() {
        let q = Query::parse("unit=class%3AS1%2FD1%2F2019%2FC1&date=2020-03-02&after=&x=a+b");
        assert_eq!(q.get("unit"), Some("class:S1/D1/2019/C1"));
        assert_eq!(q.get("date"), Some("2020-03-02"));
        assert_eq!(q.get("after"), None);
        assert_eq!(q.text("missing"), "");
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(Query::parse("city=%E5%B9%BF%E5%B7%9E").get("city"), Some("广州"));
    }
}
