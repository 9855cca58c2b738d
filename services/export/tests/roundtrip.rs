//! Each export written, then read back with real readers (calamine for XLSX, the `csv`
//! crate for CSV), and compared with the reports and persons it came from.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use domain::event::{Role, Slot, Symptom};
use domain::report::{BatchCount, SlotCoverage};
use domain::{DailyReport, Day, Measure, Tally, UnitKey};
use export::{Cell, Format, Header, ObservationRow, ReportRow, Table, observation_table, report_table, write};

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

/// A report read off a tally whose every measure holds its own number, so a count that
/// lands in the wrong column, or in none, cannot match by chance.
fn distinct_report() -> (DailyReport, Tally) {
    let mut tally = Tally::default();
    for (i, m) in Measure::ALL.iter().enumerate() {
        tally.set(*m, 100 + 7 * i32::try_from(i).unwrap());
    }
    let unit = UnitKey { level: domain::Level::Class, path: "S001/D01/2019/C03".into() };
    (DailyReport::from_tally(unit, day("2020-02-03"), &tally), tally)
}

/// A quiet school with hand-picked numbers and nothing abnormal. Built from an empty
/// report field by field, so fields the domain adds later take their defaults here.
fn quiet_report() -> DailyReport {
    let mut r = DailyReport::from_tally(UnitKey::school("S002"), day("2020-02-04"), &Tally::default());
    r.population = 1200;
    r.population_by_role = vec![(Role::Student, 1100), (Role::Teacher, 100)];
    r.present_on_campus = 900;
    r.in_key_area = 3;
    r.two_histories = 5;
    r.checks = vec![
        SlotCoverage { slot: Slot::Morning, done: 880, expected: 900 },
        SlotCoverage { slot: Slot::Gate, done: 41, expected: 0 },
    ];
    r.symptoms = vec![(Symptom::Cough, 0)];
    r.home_observation = 2;
    r.centralized_observation = 6;
    r.released = 1;
    r.observation_started = 4;
    r.due_for_release = 1;
    r.batches = vec![BatchCount { batch: 2, planned: 30, returned: 12 }];
    r.returned = 12;
    r.health_cards = 12;
    r.gate_in = 41;
    r.gate_out = 39;
    r.zero_report = true;
    r
}

fn rows() -> (Vec<ReportRow>, Tally) {
    let (report, tally) = distinct_report();
    let rows = vec![
        ReportRow { report, version: 3, status: "late".into(), revised: true, coverage: 0.875 },
        ReportRow { report: quiet_report(), version: 0, status: "open".into(), revised: false, coverage: 0.5 },
    ];
    (rows, tally)
}

/// What a reader gives back for a cell, the same shape for both formats.
#[derive(Debug, Clone, PartialEq)]
enum Back {
    Text(String),
    Num(f64),
    Bool(bool),
    /// Excel's serial day number.
    Date(f64),
    Empty,
}

fn read_xlsx(bytes: &[u8], sheet: &str) -> Vec<Vec<Back>> {
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("calamine opens it");
    assert_eq!(book.sheet_names(), vec![sheet.to_owned()]);
    let range = book.worksheet_range(sheet).expect("the sheet");
    range
        .rows()
        .map(|row| {
            row.iter()
                .map(|c| match c {
                    Data::String(s) => Back::Text(s.clone()),
                    Data::Float(x) => Back::Num(*x),
                    Data::Int(n) => Back::Num(*n as f64),
                    Data::Bool(b) => Back::Bool(*b),
                    Data::DateTime(d) => Back::Date(d.as_f64()),
                    Data::Empty => Back::Empty,
                    other => panic!("unexpected cell {other:?}"),
                })
                .collect()
        })
        .collect()
}

/// CSV holds only text: numbers come back as text, parsed here where they parse.
fn read_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let body = text.strip_prefix('\u{feff}').expect("a byte-order mark first");
    assert!(!body.starts_with('\u{feff}'));
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(body.as_bytes());
    reader.records().map(|r| r.expect("a valid record").iter().map(str::to_owned).collect()).collect()
}

fn column(headers: &[Header], label: &str) -> usize {
    headers.iter().position(|h| h.label() == label).unwrap_or_else(|| panic!("no column {label:?}"))
}

/// The report's numbers as they must appear, by header label.
fn expected_counts(r: &DailyReport) -> Vec<(&'static str, u32)> {
    let check = |slot| r.checks.iter().find(|c| c.slot == slot).cloned();
    let batch = |b| r.batches.iter().find(|c| c.batch == b).copied();
    let sym = |s| r.symptoms.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let role = |x| r.population_by_role.iter().find(|(k, _)| *k == x).map_or(0, |(_, n)| *n);
    vec![
        ("总人数 / Population", r.population),
        ("学生 / Students", role(Role::Student)),
        ("教师 / Teachers", role(Role::Teacher)),
        ("食堂从业人员 / Canteen workers", role(Role::CanteenWorker)),
        ("在校 / Present on campus", r.present_on_campus),
        ("两史人员 / Two histories", r.two_histories),
        ("晨检已测 / Morning checks done", check(Slot::Morning).map_or(0, |c| c.done)),
        ("晨检应测 / Morning checks expected", check(Slot::Morning).map_or(0, |c| c.expected)),
        ("晚检已测 / Evening checks done", check(Slot::Evening).map_or(0, |c| c.done)),
        ("门岗测温 / Gate checks", check(Slot::Gate).map_or(0, |c| c.done)),
        ("发热 / Fever", r.fever),
        ("发热症状 / Symptom: fever", sym(Symptom::Fever)),
        ("乏力 / Symptom: fatigue", sym(Symptom::Fatigue)),
        ("新增疑似 / Suspected, new", r.suspected_new),
        ("现有确诊 / Confirmed, current", r.confirmed_current),
        ("居家医学观察 / Home medical observation", r.home_observation),
        ("集中医学观察 / Centralized medical observation", r.centralized_observation),
        ("期满待解除 / Due for release", r.due_for_release),
        ("第二批计划返校 / Batch 2 planned", batch(2).map_or(0, |b| b.planned)),
        ("第二批已返校 / Batch 2 returned", batch(2).map_or(0, |b| b.returned)),
        ("第二批未返校 / Batch 2 not yet returned", batch(2).map_or(0, |b| b.planned.saturating_sub(b.returned))),
        ("第三批已返校 / Batch 3 returned", batch(3).map_or(0, |b| b.returned)),
        ("住校生未请假离校 / Flag: boarder left without leave", r.boarder_left_without_leave),
        ("门岗离校 / Gate: left", r.gate_out),
    ]
}

#[test]
fn the_report_table_reads_back_from_xlsx_with_numeric_cells() {
    let (rows, tally) = rows();
    let table = report_table(&rows);
    let sheet = read_xlsx(&write(&table, Format::Xlsx).unwrap(), &table.sheet);

    assert_eq!(sheet.len(), 3, "a header row and one row per report");
    let header: Vec<Back> = table.headers.iter().map(|h| Back::Text(h.label())).collect();
    assert_eq!(sheet[0], header);
    assert_eq!(sheet[0][0], Back::Text("单位 / Unit".into()));
    assert_eq!(sheet[0][1], Back::Text("名称 / Name".into()), "the unit's name beside its code");
    assert_eq!(sheet[0][3], Back::Text("日期 / Date".into()));

    for (row, published) in sheet[1..].iter().zip(&rows) {
        let r = &published.report;
        let at = |label| &row[column(&table.headers, label)];
        assert_eq!(at("单位 / Unit"), &Back::Text(r.unit.to_string()));
        for (label, want) in expected_counts(r) {
            assert_eq!(at(label), &Back::Num(f64::from(want)), "{label} of {}", r.unit);
        }
        assert_eq!(at("零报告 / Zero report"), &Back::Bool(r.zero_report));
        assert_eq!(at("版本（0=未封存） / Version (0 = not sealed)"), &Back::Num(f64::from(published.version)));
        assert_eq!(at("已修订 / Revised"), &Back::Bool(published.revised));
        assert_eq!(at("体温检测覆盖率 / Check coverage"), &Back::Num(published.coverage));
    }
    let first = &sheet[1];
    let at = |label| &first[column(&table.headers, label)];
    assert_eq!(at("层级 / Level"), &Back::Text("班级 / class".into()));
    assert_eq!(at("报送状态 / Report status"), &Back::Text("迟报 / late".into()));
    let abnormal = tally.get(Measure::AbnormalOngoing) + tally.get(Measure::AbnormalToday);
    assert_eq!(at("异常人数 / Persons with anything abnormal"), &Back::Num(f64::from(abnormal)));
    // 2020-02-03 is day 43864 of Excel's 1900 calendar.
    assert_eq!(at("日期 / Date"), &Back::Date(43864.0));

    // Every measure of the tally, each a different number, shows up in the first row.
    let numbers: Vec<f64> = first.iter().filter_map(|c| if let Back::Num(x) = c { Some(*x) } else { None }).collect();
    for m in Measure::ALL {
        // Abnormal is one column, the sum of its two parts (persons, each once).
        if matches!(m, Measure::AbnormalOngoing | Measure::AbnormalToday) {
            continue;
        }
        let want = f64::from(tally.get(*m));
        assert!(numbers.contains(&want), "{m:?} = {want} is in no column of {first:?}");
    }
}

#[test]
fn the_report_table_reads_back_from_csv() {
    let (rows, _) = rows();
    let table = report_table(&rows);
    let records = read_csv(&write(&table, Format::Csv).unwrap());

    assert_eq!(records.len(), 3);
    let labels: Vec<String> = table.headers.iter().map(Header::label).collect();
    assert_eq!(records[0], labels);
    for (record, published) in records[1..].iter().zip(&rows) {
        let r = &published.report;
        let at = |label| record[column(&table.headers, label)].as_str();
        assert_eq!(at("单位 / Unit"), r.unit.to_string());
        assert_eq!(at("日期 / Date"), r.date.to_string());
        for (label, want) in expected_counts(r) {
            assert_eq!(at(label).parse::<u32>(), Ok(want), "{label} of {}", r.unit);
        }
        assert_eq!(at("零报告 / Zero report"), r.zero_report.to_string());
        assert_eq!(at("体温检测覆盖率 / Check coverage").parse::<f64>(), Ok(published.coverage));
    }
    assert_eq!(records[2][column(&table.headers, "层级 / Level")], "学校 / school");
}

#[test]
fn awkward_text_survives_both_formats() {
    let awkward = "Wuhan, \"No. 1\" school\nannex 武汉";
    let table = Table {
        sheet: "引号 Quoting".into(),
        headers: vec![Header::new("单位", "Unit"), Header::new("说明", "Note, \"quoted\""), Header::new("数", "N")],
        rows: vec![
            vec![Cell::Text(awkward.into()), Cell::Text("a\r\nb".into()), Cell::Int(-5)],
            vec![Cell::Text("=".into()), Cell::Text(String::new()), Cell::Number(f64::NAN)],
        ],
    };

    let csv = write(&table, Format::Csv).unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(text.contains("\"Wuhan, \"\"No. 1\"\" school\nannex 武汉\""), "{text}");
    assert!(text.ends_with("\r\n"));
    let records = read_csv(&csv);
    assert_eq!(records.len(), 3, "a quoted line break does not start a record: {records:?}");
    assert_eq!(records[0], ["单位 / Unit", "说明 / Note, \"quoted\"", "数 / N"]);
    assert_eq!(records[1], [awkward, "a\r\nb", "-5"]);
    assert_eq!(records[2], ["'=", "", ""]);

    let sheet = read_xlsx(&write(&table, Format::Xlsx).unwrap(), "引号 Quoting");
    assert_eq!(sheet[1][0], Back::Text(awkward.into()));
    assert_eq!(sheet[1][2], Back::Num(-5.0));
    assert_eq!(sheet[2][0], Back::Text("=".into()), "a string, never a formula");
    assert_eq!(sheet[2][2], Back::Empty, "NaN leaves the cell empty");
}

#[test]
fn a_formula_in_a_name_is_text_in_both_formats() {
    let table = Table {
        sheet: "s".into(),
        headers: vec![Header::new("人员", "Person")],
        rows: vec![vec![Cell::Text("=HYPERLINK(\"http://x\",\"y\")".into())]],
    };
    let records = read_csv(&write(&table, Format::Csv).unwrap());
    assert_eq!(records[1], ["'=HYPERLINK(\"http://x\",\"y\")"]);
    let sheet = read_xlsx(&write(&table, Format::Xlsx).unwrap(), "s");
    assert_eq!(sheet[1][0], Back::Text("=HYPERLINK(\"http://x\",\"y\")".into()));
}

#[test]
fn the_observation_list_reads_back_from_both_formats() {
    let persons = vec![
        ObservationRow {
            unit: "class:S001/D01/2019/C03".into(),
            school: "S001".into(),
            person: "P-0042".into(),
            kind: "centralized".into(),
            start: day("2020-02-01"),
            expected_end: day("2020-02-15"),
            status: "under observation".into(),
        },
        ObservationRow {
            unit: "department:S001/D02".into(),
            school: "S001".into(),
            person: "T-7".into(),
            kind: "home".into(),
            start: day("2020-01-20"),
            expected_end: day("2020-02-03"),
            status: "due for release".into(),
        },
    ];
    let table = observation_table(&persons);
    let labels: Vec<String> = table.headers.iter().map(Header::label).collect();
    assert_eq!(
        labels,
        [
            "单位 / Unit",
            "学校 / School",
            "人员编号 / Person",
            "观察类型 / Observation type",
            "开始日期 / Start date",
            "预计解除日期 / Expected end date",
            "状态 / Status"
        ]
    );

    let records = read_csv(&write(&table, Format::Csv).unwrap());
    assert_eq!(records[0], labels);
    assert_eq!(
        records[1],
        [
            "class:S001/D01/2019/C03",
            "S001",
            "P-0042",
            "集中医学观察 / centralized",
            "2020-02-01",
            "2020-02-15",
            "观察中 / under observation"
        ]
    );
    assert_eq!(records[2][3], "居家医学观察 / home");
    assert_eq!(records[2][6], "期满待解除 / due for release");

    let sheet = read_xlsx(&write(&table, Format::Xlsx).unwrap(), &table.sheet);
    assert_eq!(sheet.len(), 3);
    assert_eq!(sheet[0], labels.iter().map(|l| Back::Text(l.clone())).collect::<Vec<_>>());
    assert_eq!(sheet[1][2], Back::Text("P-0042".into()));
    // 2020-02-15 and 2020-01-20 as Excel serial days.
    assert_eq!(sheet[1][5], Back::Date(43876.0));
    assert_eq!(sheet[2][4], Back::Date(43850.0));
}

#[test]
fn a_bad_sheet_name_is_an_error_not_a_panic() {
    let table = Table { sheet: "a/b".into(), headers: vec![Header::new("甲", "A")], rows: vec![] };
    assert!(matches!(write(&table, Format::Xlsx), Err(export::ExportError::Xlsx(_))));
    // CSV has no sheet name to refuse.
    assert_eq!(write(&table, Format::Csv).unwrap(), "\u{feff}甲 / A\r\n".as_bytes());
}

#[test]
fn widths_are_the_same_whatever_the_reports_hold() {
    // Columns are fixed: a report with empty vectors still fills every column.
    let mut bare = quiet_report();
    bare.population_by_role.clear();
    bare.checks.clear();
    bare.symptoms.clear();
    bare.batches.clear();
    let table = report_table(&[ReportRow {
        report: bare,
        version: 1,
        status: "on_time".into(),
        revised: false,
        coverage: 1.0,
    }]);
    let full = report_table(&rows().0);
    assert_eq!(table.headers, full.headers);
    assert_eq!(table.rows[0].len(), table.headers.len());
}
