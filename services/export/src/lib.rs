//! daybook's exports: the daily report table and the list of persons under medical
//! observation as files an office opens in a spreadsheet, CSV or Excel (XLSX).
//!
//! - [`report_table`] and [`observation_table`] lay domain data out as a [`Table`]: fixed
//!   columns, each headed "中文 / English" with the terms of the domain (发热 / Fever,
//!   零报告 / Zero report …), one row per report or per person.
//! - [`inspection_table`] and [`findings_table`] do the same for the service-window
//!   inspections: one row per unit's report of a day, one per finding.
//! - [`write`] turns a table into the bytes of a file: CSV (UTF-8 with a byte-order mark,
//!   so Excel reads the Chinese right; RFC 4180 quoting) or XLSX (counts as numeric
//!   cells, dates as dates, a bold frozen header row).
//!
//! Plain code: no I/O, no runtime. Callers (the gRPC API, the CLI) decide where the bytes
//! go; [`Format::extension`] and [`Format::content_type`] name them.

mod csv;
pub mod dhis2;
mod form;
mod inspections;
mod tables;
mod xlsx;

use std::fmt;
use std::str::FromStr;

pub use form::{Form, report_form};
pub use inspections::{findings_table, inspection_table, item_header};
pub use tables::{ObservationRow, ReportRow, observation_table, report_table};

use domain::Day;

/// A file format to export to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Xlsx,
    /// A DHIS2 data value set of the daily reports ([`dhis2`]); not a table format.
    Dhis2,
}

impl Format {
    pub const ALL: [Format; 3] = [Self::Csv, Self::Xlsx, Self::Dhis2];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Dhis2 => "dhis2",
        }
    }

    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Dhis2 => "dhis2.json",
            other => other.as_str(),
        }
    }

    /// The media type, for an HTTP `Content-Type` or a gRPC response field. CSV says its
    /// charset because the bytes are UTF-8 whatever the reader's locale.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Dhis2 => "application/json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = ExportError;

    /// `csv`, `xlsx` or `dhis2`, in any case, with or without a leading dot.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().trim_start_matches('.');
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| ExportError::UnknownFormat(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("unknown export format {0:?}, expected csv, xlsx or dhis2")]
    UnknownFormat(String),
    /// A row whose cell count differs from the header's: a bug in the caller's table.
    #[error("row {row} has {got} cells, the header has {expected}")]
    RowWidth { row: usize, expected: usize, got: usize },
    /// Too many rows or columns for a worksheet, a sheet name Excel refuses, a string
    /// longer than a cell holds.
    #[error("cannot write the xlsx file")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// A format that lays out no table (DHIS2: [`dhis2::data_value_set`]).
    #[error("{0} is not a table format")]
    NotATable(Format),
    /// A DHIS2 mapping file that does not parse or names a code daybook does not have.
    #[error("dhis2 mapping: {0}")]
    Mapping(String),
}

/// One column's heading in both languages; the header cell reads "中文 / English".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub zh: &'static str,
    pub en: &'static str,
}

impl Header {
    pub const fn new(zh: &'static str, en: &'static str) -> Self {
        Self { zh, en }
    }

    /// The text of the header cell.
    pub fn label(&self) -> String {
        format!("{} / {}", self.zh, self.en)
    }
}

/// One cell's value, typed so that XLSX gets numeric cells for numbers and dates.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// A count or another whole number.
    Int(i64),
    /// A non-finite number (NaN, infinity) cannot be stored in XLSX; both formats leave
    /// its cell empty rather than fail the whole export.
    Number(f64),
    /// A fraction, 0.25 for a quarter: XLSX shows it as a percentage (25.0%) and keeps the
    /// fraction as the value; CSV writes the fraction. Non-finite is empty, as for
    /// [`Cell::Number`].
    Percent(f64),
    Bool(bool),
    /// A date cell in XLSX (shown yyyy-mm-dd), ISO 8601 in CSV.
    Date(Day),
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<u32> for Cell {
    fn from(n: u32) -> Self {
        Cell::Int(i64::from(n))
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl From<bool> for Cell {
    fn from(b: bool) -> Self {
        Cell::Bool(b)
    }
}

impl From<Day> for Cell {
    fn from(d: Day) -> Self {
        Cell::Date(d)
    }
}

/// A sheet of data: a header row and rows of cells, each row as wide as the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The worksheet's name in XLSX (at most 31 characters, none of `[]:*?/\`); CSV has
    /// no place for it.
    pub sheet: String,
    pub headers: Vec<Header>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Every row as wide as the header, so no format shifts a value under another column.
    fn check(&self) -> Result<(), ExportError> {
        let expected = self.headers.len();
        match self.rows.iter().position(|r| r.len() != expected) {
            Some(row) => Err(ExportError::RowWidth { row, expected, got: self.rows[row].len() }),
            None => Ok(()),
        }
    }
}

/// The table as the bytes of a file in `format`, one of the table formats (CSV, XLSX).
pub fn write(table: &Table, format: Format) -> Result<Vec<u8>, ExportError> {
    table.check()?;
    match format {
        Format::Csv => Ok(csv::write(table)),
        Format::Xlsx => xlsx::write(table),
        Format::Dhis2 => Err(ExportError::NotATable(format)),
    }
}

/// The daily reports as a workbook: the report form to print (`title` heads it), then
/// the whole report table.
pub fn report_workbook(rows: &[ReportRow], title: &str) -> Result<Vec<u8>, ExportError> {
    let table = report_table(rows);
    table.check()?;
    xlsx::write_form(&report_form(rows, title), &table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_from_their_names_and_refuse_others() {
        assert_eq!("csv".parse::<Format>().unwrap(), Format::Csv);
        assert_eq!("XLSX".parse::<Format>().unwrap(), Format::Xlsx);
        assert_eq!(".xlsx".parse::<Format>().unwrap(), Format::Xlsx);
        let err = "xls".parse::<Format>().unwrap_err();
        assert_eq!(err.to_string(), "unknown export format \"xls\", expected csv, xlsx or dhis2");
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
        assert!(Format::Xlsx.content_type().contains("spreadsheetml"));
    }

    #[test]
    fn a_row_narrower_than_the_header_is_refused_in_both_formats() {
        let table = Table {
            sheet: "s".into(),
            headers: vec![Header::new("甲", "A"), Header::new("乙", "B")],
            rows: vec![vec![Cell::Int(1), Cell::Int(2)], vec![Cell::Int(3)]],
        };
        for format in [Format::Csv, Format::Xlsx] {
            match write(&table, format) {
                Err(ExportError::RowWidth { row: 1, expected: 2, got: 1 }) => {}
                other => panic!("{format}: {other:?}"),
            }
        }
    }
}
