//! The daily report form: the figures an office reads first, grouped under two-line
//! headings, with a totals row, laid out to print (landscape A4, one page wide). The
//! daily report table stays beside it, whole, for whoever filters or recomputes.
//!
//! The form's columns are picked from the report table by their English heading, so a
//! figure and its heading come from the table's one declaration of each column.

use crate::tables::{ReportRow, report_table};
use crate::{Cell, Header, Table};

/// A group of the form's columns under one heading, by the table's English headings.
const GROUPS: [(Header, &[&str]); 7] = [
    (Header::new("单位", "Unit"), &["Unit"]),
    (Header::new("人数", "Persons"), &["Population", "Present on campus"]),
    (Header::new("体温检测", "Temperature checks"), &["Check coverage", "Checked (any daily check)"]),
    (
        Header::new("发热与病例", "Fever and cases"),
        &["Fever", "Suspected, new", "Suspected, current", "Confirmed, new", "Confirmed, current"],
    ),
    (
        Header::new("医学观察", "Medical observation"),
        &[
            "Home medical observation",
            "Centralized medical observation",
            "Observation started",
            "Due for release",
            "Released from observation",
        ],
    ),
    (
        Header::new("重点人员与返校", "Key persons and returns"),
        &["In a key area", "Two histories", "Close contacts", "Returned today", "Health cards"],
    ),
    (Header::new("报送", "Reporting"), &["Report status", "Version (0 = not sealed)", "Zero report"]),
];

/// The form of a day's reports: its title, the column groups (heading, how many columns),
/// the columns picked from the report table, and the totals of its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub title: String,
    pub groups: Vec<(Header, usize)>,
    pub table: Table,
    /// Per column: the sum over the rows of a count, `None` where a sum means nothing
    /// (the unit, a share, a status, the version).
    pub totals: Vec<Option<i64>>,
}

/// The form of `rows`, reports of `day`; `title` names what they are (a level, a unit).
pub fn report_form(rows: &[ReportRow], title: &str) -> Form {
    let full = report_table(rows);
    let mut picked = Vec::new();
    let mut groups = Vec::new();
    for (heading, columns) in GROUPS {
        groups.push((heading, columns.len()));
        for english in columns {
            let at = full.headers.iter().position(|h| h.en == *english);
            picked.push(at.unwrap_or_else(|| panic!("the report table has no column {english:?}")));
        }
    }
    let table = Table {
        sheet: "日报表 Report form".to_owned(),
        headers: picked.iter().map(|&at| full.headers[at]).collect(),
        rows: full.rows.iter().map(|row| picked.iter().map(|&at| row[at].clone()).collect()).collect(),
    };
    let totals = picked
        .iter()
        .map(|&at| {
            let summed = !full.headers[at].en.starts_with("Version");
            let counts: Option<Vec<i64>> =
                full.rows.iter().map(|row| if let Cell::Int(n) = row[at] { Some(n) } else { None }).collect();
            counts.filter(|_| summed && !full.rows.is_empty()).map(|c| c.iter().sum())
        })
        .collect();
    Form { title: title.to_owned(), groups, table, totals }
}
