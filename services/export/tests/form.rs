//! The daily report form as an office prints it, read back: calamine for the cells, the
//! worksheet's XML for the print settings (calamine does not read those). Expected
//! figures are the hand-picked reports' own, summed by hand.

use std::io::{Cursor, Read};

use calamine::{Data, DataType, Reader, Xlsx};
use domain::{DailyReport, Day, Tally, UnitKey};
use export::{ReportRow, report_workbook};

fn school(code: &str, population: u32, fever: u32, confirmed_new: u32) -> ReportRow {
    let day: Day = "2020-02-04".parse().unwrap();
    let mut report = DailyReport::from_tally(UnitKey::school(code), day, &Tally::default());
    report.population = population;
    report.fever = fever;
    report.confirmed_new = confirmed_new;
    ReportRow { report, version: 1, status: "on_time".into(), revised: false, coverage: 0.95 }
}

fn workbook() -> Vec<u8> {
    let rows = [school("S001", 1200, 2, 0), school("S002", 800, 1, 1)];
    report_workbook(&rows, "学校日报 School reports — 2020-02-04").unwrap()
}

#[test]
fn the_form_comes_first_with_two_line_headings_and_totals_summed_by_hand() {
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(workbook())).unwrap();
    assert_eq!(book.sheet_names(), ["日报表 Report form", "日报告 Daily reports"], "the data table stays, second");
    let form = book.worksheet_range("日报表 Report form").unwrap();
    let rows: Vec<&[Data]> = form.rows().collect();
    assert_eq!(rows[0][0].to_string(), "学校日报 School reports — 2020-02-04");
    assert_eq!(rows[1][0].to_string(), "单位 / Unit");
    let headings: Vec<String> = rows[2].iter().map(|c| c.to_string()).collect();
    assert_eq!(headings[0], "单位\nUnit");
    let column = |en: &str| {
        headings.iter().position(|h| h.ends_with(&format!("\n{en}"))).unwrap_or_else(|| panic!("{en}: {headings:?}"))
    };
    // The key figures first: persons, then checks, before fever.
    assert!(column("Population") < column("Fever") && column("Fever") < column("Home medical observation"));
    assert_eq!(rows[3][0].to_string(), "school:S001");
    assert_eq!(rows[4][0].to_string(), "school:S002");
    let total = rows[5];
    assert_eq!(total[0].to_string(), "合计 Total");
    assert_eq!(total[column("Population")].as_f64(), Some(2000.0));
    assert_eq!(total[column("Fever")].as_f64(), Some(3.0));
    assert_eq!(total[column("Confirmed, new")].as_f64(), Some(1.0));
    assert_eq!(total[column("Check coverage")], Data::Empty, "a share is not summed");
    assert_eq!(total[column("Version (0 = not sealed)")], Data::Empty, "nor a version");
    let formulas = book.worksheet_formula("日报表 Report form").unwrap();
    let fever_formula = formulas.get_value((5, column("Fever") as u32)).unwrap().to_string();
    assert!(fever_formula.starts_with("SUBTOTAL(109,"), "sums what the filter shows: {fever_formula}");
}

#[test]
fn the_form_prints_landscape_on_a4_one_page_wide_with_filter_frozen_panes_and_repeated_headings() {
    let mut zip = zip::ZipArchive::new(Cursor::new(workbook())).unwrap();
    let mut sheet = String::new();
    zip.by_name("xl/worksheets/sheet1.xml").unwrap().read_to_string(&mut sheet).unwrap();
    for wanted in [
        r#"orientation="landscape""#,
        r#"paperSize="9""#,
        r#"fitToHeight="0""#,
        r#"<pageSetUpPr fitToPage="1"/>"#,
        r#"<autoFilter ref="A3:"#,
        r#"state="frozen""#,
        r#"gridLines="1""#,
        "<mergeCell ",
    ] {
        assert!(sheet.contains(wanted), "sheet1.xml lacks {wanted}");
    }
    let mut workbook_xml = String::new();
    zip.by_name("xl/workbook.xml").unwrap().read_to_string(&mut workbook_xml).unwrap();
    assert!(workbook_xml.contains("_xlnm.Print_Titles"), "the headings repeat on every page");
}
