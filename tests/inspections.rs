//! Service-window inspections end to end on both logs: a hall's, a city's and the
//! province's report over gRPC, the findings with their filters, the day's seal and a late
//! inspection's revision in the offices' feeds, and the seal's alerts, once each. Expected
//! figures are worked out from the rules (`services/domain/RULES.md`, the inspection rows)
//! and the proto's field comments; the window is 2 days here.

use calamine::Reader;
use tests::{Backend, Server, alert_of, hall, on_every_backend, read_feed, read_until};
use tonic::Code;
use wire::pb;
use wire::pb::feeds_client::FeedsClient;

on_every_backend!(inspection_reports_are_read_sealed_revised_and_alerted);

/// How long a feed stays quiet before a test takes it as read to its end.
const QUIET: std::time::Duration = std::time::Duration::from_secs(2);

async fn report(server: &mut Server, unit: &str, date: &str) -> pb::InspectionReport {
    server.caught_up().await;
    let request = pb::InspectionReportRequest { unit: unit.into(), date: date.into() };
    server.reports.get_inspection_report(request).await.unwrap_or_else(|e| panic!("{unit} on {date}: {e}")).into_inner()
}

/// The figures of a report, for comparing in one line: registered, inspected, in window,
/// opened, rectified, open, overdue, ever inspected, compliant.
fn figures(r: &pb::InspectionReport) -> [u32; 9] {
    [
        r.halls_registered,
        r.halls_inspected,
        r.halls_inspected_in_window,
        r.findings_opened,
        r.findings_rectified,
        r.findings_open,
        r.findings_overdue,
        r.halls_ever_inspected,
        r.halls_compliant,
    ]
}

fn inspection_report_of(item: &pb::FeedItem) -> Option<&pb::InspectionReport> {
    match &item.item {
        Some(pb::feed_item::Item::InspectionReport(r)) => Some(r),
        _ => None,
    }
}

async fn inspection_reports_are_read_sealed_revised_and_alerted(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let args = daybook::ServeArgs { inspection_window_days: Some(2), ..backend.args(dir.path()) };
    let mut server = tests::start_with(args, daybook::Roles::All).await;
    let (mut h1, mut h2, mut h3) = (hall("H1"), hall("H2"), hall("H3"));
    server
        .post_all(vec![
            // The rectification first: it waits for its inspection.
            h1.rectify("2020-03-01 16:00", "I1", 5),
            h1.register("2020-03-01 08:00", "Foshan", pb::HallKind::CityHall),
            h2.register("2020-03-01 08:00", "Foshan", pb::HallKind::TalentBureau),
            h3.register("2020-03-01 08:00", "Zhuhai", pb::HallKind::CityHall),
            h1.inspect("2020-03-01 10:00", "I1", "Foshan", &[(2, "2020-03-02"), (5, "2020-03-05")]),
        ])
        .await;

    // Open day: live figures, version 0.
    let h1_day1 = report(&mut server, "hall:H1", "2020-03-01").await;
    assert_eq!(figures(&h1_day1), [1, 1, 1, 2, 1, 1, 0, 1, 0]);
    assert_eq!(h1_day1.items_failed, [0, 1, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!((h1_day1.version, h1_day1.status), (0, pb::ReportStatus::Open as i32));
    assert_eq!((h1_day1.name_en.as_str(), h1_day1.kind), ("Hall H1", pb::HallKind::CityHall as i32));
    let foshan = report(&mut server, "city:Foshan", "2020-03-01").await;
    assert_eq!(figures(&foshan), [2, 1, 1, 2, 1, 1, 0, 1, 0]);
    assert_eq!(foshan.halls_not_inspected_in_window, ["H2"]);
    assert_eq!((foshan.compliance_rate, foshan.window_days), (0.0, 2));
    let province = report(&mut server, "province", "2020-03-01").await;
    assert_eq!(figures(&province), [3, 1, 1, 2, 1, 1, 0, 1, 0]);
    assert_eq!(province.halls_not_inspected_in_window, ["H2", "H3"]);
    // The 3rd: H1's finding on item 2 (due the 2nd) is overdue; H1 is out of the window.
    let h1_day3 = report(&mut server, "hall:H1", "2020-03-03").await;
    assert_eq!(figures(&h1_day3), [1, 0, 0, 0, 0, 1, 1, 1, 0]);

    let list = |unit: &str, date: &str, filter: pb::FindingFilter| pb::ListFindingsRequest {
        unit: unit.into(),
        date: date.into(),
        filter: filter as i32,
    };
    let all = server.reports.list_findings(list("city:Foshan", "2020-03-03", pb::FindingFilter::All)).await;
    let all = all.unwrap().into_inner().findings;
    let described: Vec<_> = all.iter().map(|f| (f.hall.as_str(), f.item, f.status, f.rectified.as_str())).collect();
    assert_eq!(
        described,
        [
            ("H1", 2, pb::FindingStatus::Overdue as i32, ""),
            ("H1", 5, pb::FindingStatus::Rectified as i32, "2020-03-01")
        ]
    );
    let overdue = server.reports.list_findings(list("province", "2020-03-02", pb::FindingFilter::Overdue)).await;
    assert!(overdue.unwrap().into_inner().findings.is_empty(), "not overdue on its deadline");
    let zhuhai = server.reports.list_findings(list("city:Zhuhai", "2020-03-03", pb::FindingFilter::Open)).await;
    assert!(zhuhai.unwrap().into_inner().findings.is_empty());

    // Refusals name the field.
    let bad = server
        .reports
        .get_inspection_report(pb::InspectionReportRequest { unit: "school:S1".into(), ..Default::default() });
    let bad = bad.await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().starts_with("unit:"), "{}", bad.message());
    let unknown = pb::InspectionReportRequest { unit: "hall:H9".into(), date: "2020-03-01".into() };
    assert_eq!(server.reports.get_inspection_report(unknown).await.unwrap_err().code(), Code::NotFound);

    // The seal of the 1st to the 3rd: version 1 of each unit's report, to the offices
    // overseeing it; the 3rd's alerts.
    server.set_clock("2020-03-04 09:00").await;
    let mut feeds = FeedsClient::connect(server.target.clone()).await.unwrap();
    let is_overdue = |i: &pb::FeedItem| alert_of(i).is_some_and(|a| a.kind == pb::AlertKind::FindingOverdue as i32);
    let foshan_feed = read_until(&mut feeds, "cdc-Foshan", 0, is_overdue).await;
    let after = foshan_feed.last().unwrap().cursor;
    let foshan_feed = [foshan_feed, read_feed(&mut feeds, "cdc-Foshan", after, QUIET).await].concat();
    let sealed: Vec<_> = foshan_feed
        .iter()
        .filter_map(inspection_report_of)
        .filter(|r| r.date == "2020-03-01")
        .map(|r| (r.unit.as_str(), r.version))
        .collect();
    assert_eq!(sealed, [("city:Foshan", 1), ("hall:H1", 1), ("hall:H2", 1)], "Foshan's office: its city and halls");
    let alerts: Vec<_> = foshan_feed.iter().filter_map(alert_of).collect();
    let keys: Vec<_> = alerts.iter().map(|a| (a.event_id.as_str(), a.date.as_str())).collect();
    assert_eq!(
        keys,
        [("H2/lapsed/never", "2020-03-02"), ("H1/overdue/I1/2", "2020-03-03"), ("H1/lapsed/2020-03-01", "2020-03-03")],
        "each alert once, on the first sealed day it holds"
    );
    let overdue = alerts.iter().find(|a| a.kind == pb::AlertKind::FindingOverdue as i32).unwrap();
    assert_eq!((overdue.school.as_str(), overdue.item, overdue.deadline.as_str()), ("H1", 2, "2020-03-02"));
    let province_feed = read_feed(&mut feeds, "province", 0, QUIET).await;
    let province_sealed =
        province_feed.iter().filter_map(inspection_report_of).filter(|r| r.unit == "province").count();
    assert_eq!(province_sealed, 3, "the province's report of each sealed day");
    assert!(province_feed.iter().filter_map(alert_of).any(|a| a.event_id == "H3/lapsed/never"));
    let sealed_h1 = report(&mut server, "hall:H1", "2020-03-01").await;
    assert_eq!((sealed_h1.version, sealed_h1.status), (1, pb::ReportStatus::OnTime as i32));

    // A late inspection of H2 on the 2nd revises the 2nd and the 3rd (in the window).
    let cursor = foshan_feed.last().unwrap().cursor;
    server.post_all(vec![h2.inspect("2020-03-02 11:00", "I2", "Foshan", &[])]).await;
    let is_h2_day3 =
        |i: &pb::FeedItem| inspection_report_of(i).is_some_and(|r| r.unit == "hall:H2" && r.date == "2020-03-03");
    let revised = read_until(&mut feeds, "cdc-Foshan", cursor, is_h2_day3).await;
    let after = revised.last().unwrap().cursor;
    let revised = [revised, read_feed(&mut feeds, "cdc-Foshan", after, QUIET).await].concat();
    let versions: Vec<_> = revised
        .iter()
        .filter_map(inspection_report_of)
        .map(|r| (r.unit.as_str(), r.date.as_str(), r.version, r.revised))
        .collect();
    assert_eq!(
        versions,
        [
            ("city:Foshan", "2020-03-02", 2, true),
            ("hall:H2", "2020-03-02", 2, true),
            ("city:Foshan", "2020-03-03", 2, true),
            ("hall:H2", "2020-03-03", 2, true),
        ]
    );
    let h2_day2 = report(&mut server, "hall:H2", "2020-03-02").await;
    assert_eq!(figures(&h2_day2), [1, 1, 1, 0, 0, 0, 0, 1, 1]);
    assert_eq!((h2_day2.compliance_rate, h2_day2.version), (1.0, 2));
    assert!(revised.iter().filter_map(alert_of).next().is_none(), "no alert is sent twice");
    the_files_hold_the_same_figures(&server).await;
    server.running.stop().await.unwrap();
}

/// The exports, through the same call as `daybook export --what inspections|findings`: the
/// reports of Foshan and its halls as CSV, its findings as XLSX read back with a real
/// reader, headers in both languages.
async fn the_files_hold_the_same_figures(server: &Server) {
    let fetch = |what: &'static str, date: &'static str, format: &'static str| async move {
        let connection = daybook::client::connect(&server.target, None, &Default::default()).await.unwrap();
        daybook::files::fetch(connection, what, "city:Foshan", "school", date, format).await.unwrap()
    };
    let file = fetch("inspections", "2020-03-02", "csv").await;
    assert_eq!(file.file_name, "daybook-inspection-reports-city_Foshan-2020-03-02.csv");
    let text = String::from_utf8(file.content).unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |en: &str| {
        header.iter().position(|h| h.ends_with(&format!("/ {en}"))).unwrap_or_else(|| panic!("{en}: {header:?}"))
    };
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let units: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(units, ["city:Foshan", "hall:H1", "hall:H2"]);
    assert!(header[column("Compliance rate")].starts_with("达标率"), "{header:?}");
    let foshan = &rows[0];
    assert_eq!(foshan[column("Version (0 = not sealed)")], "2");
    assert_eq!(foshan[column("Halls inspected that day")], "1", "H2's late inspection");
    assert_eq!(foshan[column("Findings open")], "1", "H1's item 2");
    assert_eq!(foshan[column("Halls compliant")], "1", "H2 passed everything");

    let file = fetch("findings", "2020-03-03", "xlsx").await;
    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(file.content)).unwrap();
    let sheet = book.worksheet_range("整改问题 Findings").expect("the findings sheet");
    let rows: Vec<Vec<String>> = sheet.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    assert_eq!(rows.len(), 3, "a header and H1's two findings: {rows:?}");
    assert_eq!(rows[0][7], "状态 / Status");
    assert_eq!((rows[1][0].as_str(), rows[1][7].as_str()), ("H1", "逾期未整改 / overdue"));
    // XLSX keeps a date as its serial day number, counted from 1899-12-30.
    let excel_epoch = chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap();
    let rectified = excel_epoch + chrono::TimeDelta::days(rows[2][8].parse().expect("a date cell"));
    assert_eq!((rows[2][7].as_str(), rectified.to_string().as_str()), ("已整改 / rectified", "2020-03-01"));
}
