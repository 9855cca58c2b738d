//! The DHIS2 export checked against DHIS2's documented data value set format (Web API,
//! "Sending data values": `dataSet`, `completeDate`, `period`, `orgUnit`,
//! `attributeOptionCombo`, and `dataValues` of `dataElement`, `period`, `orgUnit`,
//! `categoryOptionCombo`, `value`…; daily periods as `YYYYMMDD`), with figures worked out
//! by hand from the reports given.

use domain::{DailyReport, Day, Tally, UnitKey};
use export::ReportRow;
use export::dhis2::{Mapping, codes, data_value_set};
use serde_json::Value;

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

/// A school of 1,200 with 900 on campus, two fevers and two under home observation.
fn school(code: &str) -> DailyReport {
    let mut report = DailyReport::from_tally(UnitKey::school(code), day("2020-02-04"), &Tally::default());
    report.population = 1200;
    report.present_on_campus = 900;
    report.fever = 2;
    report.home_observation = 2;
    report
}

fn row(report: DailyReport, version: u32) -> ReportRow {
    ReportRow { report, version, status: "on_time".into(), revised: false, coverage: 1.0 }
}

fn export(rows: &[ReportRow], mapping: &Mapping) -> Value {
    let bytes = data_value_set(rows, day("2020-02-04"), Some(day("2020-02-05")), mapping).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Every key is one DHIS2 documents for its place, and every value has its form.
fn assert_dhis2_shape(set: &Value) {
    let top = set.as_object().unwrap();
    for key in top.keys() {
        assert!(
            ["dataSet", "completeDate", "period", "orgUnit", "attributeOptionCombo", "dataValues"]
                .contains(&key.as_str()),
            "{key} is not a data value set field"
        );
    }
    let period = top["period"].as_str().unwrap();
    assert!(period.len() == 8 && period.bytes().all(|b| b.is_ascii_digit()), "period {period} is not YYYYMMDD");
    if let Some(complete) = top.get("completeDate") {
        assert!(complete.as_str().unwrap().parse::<Day>().is_ok(), "completeDate {complete}");
    }
    for value in top["dataValues"].as_array().unwrap() {
        let value = value.as_object().unwrap();
        for key in ["dataElement", "period", "orgUnit", "categoryOptionCombo", "value"] {
            assert!(value[key].is_string(), "{key} missing or not a string in {value:?}");
        }
        assert_eq!(value.len(), 5, "{value:?}");
    }
}

fn value_of<'a>(set: &'a Value, element: &str, org_unit: &str) -> Option<&'a str> {
    set["dataValues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["dataElement"] == element && v["orgUnit"] == org_unit)
        .map(|v| v["value"].as_str().unwrap())
}

#[test]
fn a_sealed_school_day_is_one_complete_set_of_its_figures_by_code() {
    let set = export(&[row(school("S002"), 1)], &Mapping::default());
    assert_dhis2_shape(&set);
    assert_eq!(set["dataSet"], "DAYBOOK_DAILY");
    assert_eq!(set["period"], "20200204");
    assert_eq!(set["orgUnit"], "S002", "one school: the set's organisation unit");
    assert_eq!(set["completeDate"], "2020-02-05");
    assert_eq!(value_of(&set, "DAYBOOK_POPULATION", "S002"), Some("1200"));
    assert_eq!(value_of(&set, "DAYBOOK_PRESENT_ON_CAMPUS", "S002"), Some("900"));
    assert_eq!(value_of(&set, "DAYBOOK_FEVER", "S002"), Some("2"));
    assert_eq!(value_of(&set, "DAYBOOK_HOME_MEDICAL_OBSERVATION", "S002"), Some("2"));
    assert_eq!(value_of(&set, "DAYBOOK_CONFIRMED_NEW", "S002"), Some("0"), "zeros are sent: missing is never zero");
    assert_eq!(value_of(&set, "DAYBOOK_VERSION_0_NOT_SEALED", "S002"), None, "the version is no figure");
    let values = set["dataValues"].as_array().unwrap();
    assert_eq!(values.len(), codes().len(), "one value per code");
    assert!(values.iter().all(|v| v["categoryOptionCombo"] == "HllvX50cXC0" && v["period"] == "20200204"));
}

#[test]
fn several_units_carry_their_own_org_unit_and_an_open_day_is_not_complete() {
    let rows = [row(school("S001"), 1), row(school("S002"), 0)];
    let set = export(&rows, &Mapping::default());
    assert_dhis2_shape(&set);
    assert!(set.get("orgUnit").is_none(), "two units: each value names its own");
    assert!(set.get("completeDate").is_none(), "S002's report is not sealed yet");
    assert_eq!(value_of(&set, "DAYBOOK_FEVER", "S001"), Some("2"));
    assert_eq!(value_of(&set, "DAYBOOK_FEVER", "S002"), Some("2"));
}

#[test]
fn a_mapping_renames_the_data_set_elements_combinations_and_units() {
    let mapping = Mapping::from_toml(
        r#"
        data-set = "pBOMPrpg1QX"
        [data-elements]
        DAYBOOK_FEVER = { data-element = "fbfJHSPpUQD", category-option-combo = "psbwp3CQEhs" }
        DAYBOOK_POPULATION = { data-element = "cYeuwXTCPkU" }
        [org-units]
        "school:S002" = "DiszpKrYNg8"
        "#,
    )
    .unwrap();
    let set = export(&[row(school("S002"), 1)], &mapping);
    assert_dhis2_shape(&set);
    assert_eq!((set["dataSet"].as_str(), set["orgUnit"].as_str()), (Some("pBOMPrpg1QX"), Some("DiszpKrYNg8")));
    let fever = set["dataValues"].as_array().unwrap().iter().find(|v| v["dataElement"] == "fbfJHSPpUQD").unwrap();
    assert_eq!((fever["categoryOptionCombo"].as_str(), fever["value"].as_str()), (Some("psbwp3CQEhs"), Some("2")));
    assert_eq!(value_of(&set, "cYeuwXTCPkU", "DiszpKrYNg8"), Some("1200"));
    assert_eq!(value_of(&set, "DAYBOOK_PRESENT_ON_CAMPUS", "DiszpKrYNg8"), Some("900"), "unmapped: by code");
}

#[test]
fn a_mapping_naming_no_daybook_code_is_refused_by_name() {
    let err = Mapping::from_toml("[data-elements]\nDAYBOOK_FEVERS = { data-element = \"x\" }").unwrap_err();
    assert!(err.to_string().contains("\"DAYBOOK_FEVERS\" is not a daybook code"), "{err}");
    assert!(Mapping::from_toml("data_set = \"x\"").is_err(), "unknown keys are refused");
}

#[test]
fn codes_are_unique_and_fit_dhis2s_fifty_characters() {
    let codes = codes();
    let unique: std::collections::BTreeSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len(), "{codes:?}");
    assert!(codes.iter().all(|c| c.len() <= 50 && c.starts_with("DAYBOOK_")), "{codes:?}");
}

#[test]
fn the_deploy_guide_lists_every_code() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/DHIS2.md")).unwrap();
    for code in codes() {
        assert!(guide.contains(&format!("`{code}`")), "deploy/DHIS2.md does not list {code}");
    }
}
