//! A day's daily reports as a DHIS2 data value set (`POST /api/dataValueSets`, JSON), so
//! that an office running DHIS2 imports daybook's figures without retyping them.
//!
//! Every count of the report table (each column holding whole numbers, the sealed
//! version aside) is one data element, named by a code made from its English header:
//! `DAYBOOK_` and the header's words in capitals joined by `_` ("Suspected, new" is
//! `DAYBOOK_SUSPECTED_NEW`); [`codes`] lists them, `deploy/DHIS2.md` documents them. A
//! [`Mapping`] (a TOML file) renames what an office's DHIS2 calls otherwise: the data
//! set, each data element and its category option combination, each unit's organisation
//! unit. Unmapped names go out as they are, for an import by code
//! (`dataElementIdScheme=CODE&orgUnitIdScheme=CODE&dataSetIdScheme=CODE`).

use std::collections::BTreeMap;

use domain::Day;
use serde::{Deserialize, Serialize};

use crate::tables::{ReportRow, report_table};
use crate::{Cell, ExportError};

/// How daybook's names become an office's DHIS2 identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Mapping {
    /// The data set the values belong to.
    #[serde(default = "default_data_set")]
    pub data_set: String,
    /// The category option combination of a data element not mapped otherwise: DHIS2's
    /// default combination, whose UID every instance shares.
    #[serde(default = "default_combination")]
    pub category_option_combo: String,
    /// By daybook code ([`codes`]): the data element and, optionally, its combination.
    #[serde(default)]
    pub data_elements: BTreeMap<String, DataElement>,
    /// By unit key (`school:S001`, `city:Guangzhou`, `province`): the organisation unit.
    /// A unit not listed is sent by its key's path (the school code for a school).
    #[serde(default)]
    pub org_units: BTreeMap<String, String>,
}

/// One data element of an office's DHIS2.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataElement {
    pub data_element: String,
    #[serde(default)]
    pub category_option_combo: Option<String>,
}

fn default_data_set() -> String {
    "DAYBOOK_DAILY".to_owned()
}

fn default_combination() -> String {
    "HllvX50cXC0".to_owned()
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            data_set: default_data_set(),
            category_option_combo: default_combination(),
            data_elements: BTreeMap::new(),
            org_units: BTreeMap::new(),
        }
    }
}

impl Mapping {
    /// Reads a mapping file's text; a code that is not daybook's is refused by name, so
    /// that a typo does not silently leave a figure unmapped.
    pub fn from_toml(text: &str) -> Result<Self, ExportError> {
        let mapping: Mapping = toml::from_str(text).map_err(|e| ExportError::Mapping(e.to_string()))?;
        let known = codes();
        if let Some(unknown) = mapping.data_elements.keys().find(|code| !known.contains(code)) {
            return Err(ExportError::Mapping(format!("data-elements: {unknown:?} is not a daybook code")));
        }
        Ok(mapping)
    }

    fn org_unit(&self, unit: &domain::UnitKey) -> String {
        match self.org_units.get(&unit.to_string()) {
            Some(mapped) => mapped.clone(),
            None if unit.path.is_empty() => unit.level.as_str().to_owned(),
            None => unit.path.clone(),
        }
    }
}

/// The code of each count of the report table, in its column order.
pub fn codes() -> Vec<String> {
    count_columns(&report_table(&[])).into_iter().map(|(_, code)| code).collect()
}

/// `(column, code)` of each column of whole numbers but the version.
fn count_columns(table: &crate::Table) -> Vec<(usize, String)> {
    // Which columns hold whole numbers, read off any row: a column's kind of cell is fixed.
    let report =
        domain::DailyReport::from_tally(domain::UnitKey::province(), Day::default(), &domain::Tally::default());
    let probe = ReportRow { report, version: 0, status: String::new(), revised: false, coverage: 0.0 };
    let probed = report_table(std::slice::from_ref(&probe));
    table
        .headers
        .iter()
        .enumerate()
        .filter(|(at, header)| matches!(probed.rows[0][*at], Cell::Int(_)) && !header.en.starts_with("Version"))
        .map(|(at, header)| (at, code_of(header.en)))
        .collect()
}

/// `DAYBOOK_` and the header's words in capitals, joined by `_`.
fn code_of(english: &str) -> String {
    let words: Vec<String> = english
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    format!("DAYBOOK_{}", words.join("_"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataValueSet {
    data_set: String,
    /// The set is complete (DHIS2 registers it so) only when every report in it is sealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    complete_date: Option<String>,
    period: String,
    /// The one organisation unit of every value, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    org_unit: Option<String>,
    data_values: Vec<DataValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataValue {
    data_element: String,
    period: String,
    org_unit: String,
    category_option_combo: String,
    value: String,
}

/// `rows` (the reports of `day`) as a DHIS2 data value set in JSON, complete as of
/// `completed` when given and every report in it is sealed.
pub fn data_value_set(
    rows: &[ReportRow],
    day: Day,
    completed: Option<Day>,
    mapping: &Mapping,
) -> Result<Vec<u8>, ExportError> {
    let table = report_table(rows);
    let columns = count_columns(&table);
    let period = day.format("%Y%m%d").to_string();
    let mut data_values = Vec::with_capacity(rows.len() * columns.len());
    for (row, cells) in rows.iter().zip(&table.rows) {
        let org_unit = mapping.org_unit(&row.report.unit);
        for (at, code) in &columns {
            let Cell::Int(value) = cells[*at] else { continue };
            let mapped = mapping.data_elements.get(code);
            data_values.push(DataValue {
                data_element: mapped.map_or_else(|| code.clone(), |m| m.data_element.clone()),
                period: period.clone(),
                org_unit: org_unit.clone(),
                category_option_combo: mapped
                    .and_then(|m| m.category_option_combo.clone())
                    .unwrap_or_else(|| mapping.category_option_combo.clone()),
                value: value.to_string(),
            });
        }
    }
    let mut units = rows.iter().map(|r| mapping.org_unit(&r.report.unit));
    let first = units.next();
    let one_unit = first.filter(|first| units.all(|u| &u == first));
    let sealed = !rows.is_empty() && rows.iter().all(|r| r.version > 0);
    let set = DataValueSet {
        data_set: mapping.data_set.clone(),
        complete_date: completed.filter(|_| sealed).map(|d| d.format("%Y-%m-%d").to_string()),
        period,
        org_unit: one_unit,
        data_values,
    };
    Ok(serde_json::to_vec_pretty(&set).expect("a data value set serialises"))
}
