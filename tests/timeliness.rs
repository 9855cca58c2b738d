//! Issue 23, end to end on both logs: a report is on time only with events acknowledged
//! by its deadline (item 4), a roster grown after the deadline leaves a sent report as it
//! was judged, and a city or the province is on time only when every school is (item 7).
//! Then the days a unit has no report for (item 3), which do not depend on the log.
//!
//! Expected values are worked out from the proto's comments and RULES.md: the deadline of
//! day D is 09:00 on D+1 (province time); coverage (persons with a daily check over
//! persons expected) must reach 90 %.

use tests::{Backend, School, Server, Slot, on_every_backend, start, student};
use tonic::Code;
use wire::pb;

const DAY: &str = "2020-03-01";

on_every_backend!(
    events_acknowledged_after_the_deadline_make_a_report_late_never_on_time,
    a_roster_grown_after_the_deadline_leaves_a_sent_report_on_time,
    a_city_and_the_province_are_on_time_only_when_every_school_is,
);

fn status(report: &pb::DailyReport) -> pb::ReportStatus {
    pb::ReportStatus::try_from(report.status).expect("a known status")
}

/// Two students registered and checked in the morning of `DAY`.
fn full_day(school: &mut School) -> Vec<pb::Event> {
    vec![
        school.register("07:00", &student("A", "C01", "")),
        school.register("07:00", &student("B", "C01", "")),
        school.temperature("07:30", "A", Slot::Morning, 36.5),
        school.temperature("07:30", "B", Slot::Morning, 36.6),
    ]
}

async fn events_acknowledged_after_the_deadline_make_a_report_late_never_on_time(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut in_time = School::new("S1", "Foshan", DAY);
    let mut late = School::new("S2", "Foshan", DAY);
    // S1's day is acknowledged long before its deadline (the clock stands in January).
    server.post_all(full_day(&mut in_time)).await;
    // Three days after the deadline: the day is sealed with S1 alone, then S2's whole
    // day arrives. Same events, same figures; only when they were acknowledged differs.
    server.set_clock("2020-03-04 12:00").await;
    server.post_all(full_day(&mut late)).await;

    let s1 = server.report("school:S1", DAY).await;
    assert_eq!((status(&s1), s1.version, s1.zero_report), (pb::ReportStatus::OnTime, 1, true));
    assert_eq!((s1.expected_by_deadline, s1.checked_by_deadline), (2, 2));
    let s2 = server.report("school:S2", DAY).await;
    assert_eq!((s2.population, s2.checked_any), (2, 2), "the figures count every event");
    assert_eq!((s2.expected_by_deadline, s2.checked_by_deadline), (0, 0), "none of it was there by the deadline");
    // Over Kafka its registration and checks travel on two topics: a pass may publish S2
    // between the two (a version marked missing, then late), so its version is not fixed.
    assert_eq!((status(&s2), s2.zero_report), (pb::ReportStatus::Late, true), "sent, but late");
    // Its class too: every unit is judged the same way.
    let class = server.report("class:S2/D1/2019/C01", DAY).await;
    assert_eq!(status(&class), pb::ReportStatus::Late);
    server.running.stop().await.unwrap();
}

async fn a_roster_grown_after_the_deadline_leaves_a_sent_report_on_time(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s1 = School::new("S1", "Foshan", DAY);
    let mut s2 = School::new("S2", "Foshan", DAY);
    server
        .post_all(vec![
            s1.register("07:00", &student("A", "C01", "")),
            s1.temperature("07:30", "A", Slot::Morning, 36.5),
            // S2: both registered in time, one checked in time.
            s2.register("07:00", &student("C", "C01", "")),
            s2.register("07:00", &student("D", "C01", "")),
            s2.temperature("07:30", "C", Slot::Morning, 36.5),
        ])
        .await;
    server.set_clock("2020-03-02 09:30").await;
    let sealed = server.report("school:S1", DAY).await;
    assert_eq!((status(&sealed), sealed.version, sealed.population), (pb::ReportStatus::OnTime, 1, 1));
    let s2_sealed = server.report("school:S2", DAY).await;
    assert_eq!((status(&s2_sealed), s2_sealed.checked_any), (pb::ReportStatus::Missing, 1), "1 of 2 checked");

    // After the deadline: a registration dated that day at S1, a check of the person S2
    // expected all along.
    let b = s1.register("08:00", &student("B", "C01", ""));
    let d_checked = s2.temperature("07:40", "D", Slot::Morning, 36.4);
    server.post_all(vec![b, d_checked]).await;

    // S1 covered everyone on its roster by the deadline: still on time, the newcomer in
    // the figures of version 2.
    let s1_v2 = server.report("school:S1", DAY).await;
    assert_eq!((s1_v2.population, s1_v2.checked_any), (2, 1));
    assert_eq!((s1_v2.expected_by_deadline, s1_v2.checked_by_deadline), (1, 1));
    assert_eq!(
        (status(&s1_v2), s1_v2.version, s1_v2.revised, s1_v2.zero_report),
        (pb::ReportStatus::OnTime, 2, true, true)
    );
    // S2's coverage was reached only by the late check: late.
    let s2_v2 = server.report("school:S2", DAY).await;
    assert_eq!((s2_v2.expected_by_deadline, s2_v2.checked_by_deadline), (2, 1));
    assert_eq!((status(&s2_v2), s2_v2.version, s2_v2.checked_any), (pb::ReportStatus::Late, 2, 2));
    server.running.stop().await.unwrap();
}

async fn a_city_and_the_province_are_on_time_only_when_every_school_is(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s1 = School::new("S1", "Foshan", DAY);
    let mut s2 = School::new("S2", "Foshan", DAY);
    let mut s3 = School::new("S3", "Zhuhai", DAY);
    let mut events = full_day(&mut s1);
    events.push(s2.register("07:00", &student("C", "C01", "")));
    events.extend(full_day(&mut s3));
    server.post_all(events).await;
    server.set_clock("2020-03-02 09:30").await;

    let foshan = server.report("city:Foshan", DAY).await;
    let rate = foshan.reporting.clone().expect("a city has a reporting rate");
    assert_eq!((rate.expected, rate.actual, rate.on_time), (2, 1, 1));
    assert_eq!(rate.missing, ["school:S2"]);
    assert_eq!(status(&foshan), pb::ReportStatus::Incomplete, "one school of two has not sent");
    assert!(!foshan.zero_report, "an incomplete report is not a zero report");
    let zhuhai = server.report("city:Zhuhai", DAY).await;
    assert_eq!((status(&zhuhai), zhuhai.zero_report), (pb::ReportStatus::OnTime, true));
    let province = server.report("province", DAY).await;
    let rate = province.reporting.clone().unwrap();
    assert_eq!((rate.expected, rate.actual, rate.on_time), (3, 2, 2));
    assert_eq!(status(&province), pb::ReportStatus::Incomplete);

    // S2 sends after the deadline: every school has sent, one late.
    let late = s2.temperature("07:40", "C", Slot::Morning, 36.5);
    server.post_all(vec![late]).await;
    let foshan = server.report("city:Foshan", DAY).await;
    assert_eq!((status(&foshan), foshan.version), (pb::ReportStatus::Late, 2));
    let rate = foshan.reporting.unwrap();
    assert_eq!((rate.expected, rate.actual, rate.on_time, rate.late), (2, 2, 1, vec!["school:S2".to_owned()]));
    let province = server.report("province", DAY).await;
    assert_eq!((status(&province), province.version), (pb::ReportStatus::Late, 2));
    let zhuhai = server.report("city:Zhuhai", DAY).await;
    assert_eq!((status(&zhuhai), zhuhai.version), (pb::ReportStatus::OnTime, 1), "Zhuhai did not change");
    server.running.stop().await.unwrap();
}

fn request(unit: &str, date: &str) -> pb::DailyReportRequest {
    pb::DailyReportRequest { unit: unit.into(), date: date.into() }
}

async fn refused(server: &mut Server, unit: &str, date: &str) -> tonic::Status {
    server.caught_up().await;
    server.reports.get_daily_report(request(unit, date)).await.expect_err("refused")
}

/// A unit has no report for a day before anyone counted in it, nor for a day to come; the
/// province always has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_has_no_report_before_it_existed_nor_for_a_day_to_come() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &Backend::Embedded).await;
    let mut s1 = School::new("S1", "Foshan", DAY);
    server.post_all(full_day(&mut s1)).await;

    for unit in ["school:S1", "class:S1/D1/2019/C01", "city:Foshan"] {
        let before = refused(&mut server, unit, "2020-02-29").await;
        assert_eq!(before.code(), Code::NotFound, "{unit}: {before:?}");
        assert!(
            before.message().contains("did not exist on 2020-02-29") && before.message().contains("2020-03-01"),
            "{unit}: {}",
            before.message()
        );
    }
    let province = server.report("province", "2020-02-29").await;
    assert_eq!((province.population, status(&province)), (0, pb::ReportStatus::Open));
    // The day itself and the days after it exist.
    assert_eq!(server.report("school:S1", DAY).await.population, 2);
    assert_eq!(server.report("school:S1", "2020-03-05").await.population, 2);

    let future = refused(&mut server, "school:S1", "2099-01-01").await;
    assert_eq!(future.code(), Code::InvalidArgument);
    assert!(future.message().starts_with("date: 2099-01-01 is in the future"), "{}", future.message());
    let listed = pb::DailyReportsRequest { unit: "province".into(), date: "2099-01-01".into(), ..Default::default() };
    let listed = server.reports.list_daily_reports(listed).await.expect_err("refused");
    assert_eq!(listed.code(), Code::InvalidArgument);
    server.running.stop().await.unwrap();
}
