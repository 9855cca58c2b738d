//! End-to-end scenarios: the real server on port 0, events posted with a real gRPC
//! client, exact report numbers asserted at every level. Each scenario runs on the
//! embedded log and on a real Kafka broker (tansu), with identical expectations.

use tests::{
    Backend, School, Server, Slot, Symptom, checks, http_get, http_get_accepting, on_every_backend, start, student,
    teacher,
};
use wire::pb;

const DAY: &str = "2020-03-02";

// Each scenario once per backend.
on_every_backend!(
    a_long_stream_answers_every_event_by_its_index_and_folds_each_once,
    every_units_report_in_one_call_equals_the_reports_one_by_one,
    key_persons_are_listed_by_unit_with_their_observation,
    the_key_person_list_is_as_it_stood_on_the_day_asked,
    events_older_than_the_horizon_or_from_the_future_are_refused,
    returns_are_counted_by_batch_planned_back_and_not_yet,
    what_the_rules_forbid_is_flagged,
    a_roommates_fever_on_day_13_extends_centralized_observation,
    fever_in_a_dorm_shared_by_two_classes_counts_each_person_once_at_every_level,
    a_repeated_event_id_is_accepted_once_and_answered_as_duplicate,
    a_bad_event_in_a_good_batch_is_refused_by_index_and_the_rest_is_kept,
    a_person_moving_class_mid_day_counts_in_the_new_class_for_that_whole_day,
    a_late_reading_revises_the_day_it_happened_on,
    diagnoses_and_observation_move_people_between_counts,
    queries_name_what_is_wrong_and_unknown_units_are_not_found,
    health_reflection_and_metrics_are_served,
    units_carry_their_schools_names_the_latest_naming_winning,
);

async fn fever_in_a_dorm_shared_by_two_classes_counts_each_person_once_at_every_level(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s1 = School::new("S1", "Guangzhou", DAY);
    let mut events = vec![
        s1.register("07:00", &student("A", "C01", "B1")),
        s1.register("07:00", &student("B", "C02", "B1")),
        s1.register("07:00", &student("C", "C01", "B2")),
        s1.register("07:00", &teacher("T")),
    ];
    for (person, celsius) in [("A", 38.2), ("B", 36.5), ("C", 36.6), ("T", 36.4)] {
        events.push(s1.temperature("07:30", person, Slot::Morning, celsius));
    }
    for (person, celsius) in [("A", 38.5), ("B", 36.6), ("C", 36.7)] {
        events.push(s1.temperature("12:00", person, Slot::Noon, celsius));
    }
    events.push(s1.temperature("19:00", "A", Slot::Evening, 37.0));
    events.push(s1.symptoms("13:00", "B", &[Symptom::Cough]));
    events.push(s1.sick_absence("12:30", "A"));
    let mut s2 = School::new("S2", "Shenzhen", DAY);
    events.push(s2.register("07:00", &teacher("X")));
    server.post_all(events).await;

    let dorm = server.report("dorm:S1/B1", DAY).await;
    assert_eq!((dorm.population, dorm.fever, dorm.sick_absent), (2, 1, 1));
    assert_eq!(dorm.symptoms.unwrap().cough, 1);
    assert_eq!(checks(&dorm, Slot::Morning), (2, 2));
    assert_eq!(checks(&dorm, Slot::Evening), (1, 2));
    assert!(!dorm.zero_report);

    let quiet_dorm = server.report("dorm:S1/B2", DAY).await;
    assert_eq!((quiet_dorm.population, quiet_dorm.fever), (1, 0));
    assert_eq!(checks(&quiet_dorm, Slot::Noon), (1, 1));
    assert!(quiet_dorm.zero_report);

    let c01 = server.report("class:S1/D1/2019/C01", DAY).await;
    assert_eq!((c01.population, c01.fever, c01.sick_absent, c01.symptoms.unwrap().cough), (2, 1, 1, 0));
    let c02 = server.report("class:S1/D1/2019/C02", DAY).await;
    assert_eq!((c02.population, c02.fever, c02.symptoms.unwrap().cough), (1, 0, 1));
    assert!(!c02.zero_report);

    let grade = server.report("grade:S1/D1/2019", DAY).await;
    assert_eq!((grade.population, grade.fever, grade.symptoms.unwrap().cough), (3, 1, 1));
    assert_eq!(checks(&grade, Slot::Morning), (3, 3));
    assert_eq!(checks(&grade, Slot::Evening), (1, 3));

    for unit in ["department:S1/D1", "school:S1", "city:Guangzhou"] {
        let r = server.report(unit, DAY).await;
        assert_eq!((r.population, r.fever, r.sick_absent, r.present_on_campus), (4, 1, 1, 4), "{unit}");
        let roles = r.population_by_role.unwrap();
        assert_eq!((roles.student, roles.teacher), (3, 1), "{unit}");
        assert_eq!(checks(&r, Slot::Morning), (4, 4), "{unit}");
        assert_eq!(checks(&r, Slot::Noon), (3, 4), "{unit}");
    }
    let province = server.report("province", DAY).await;
    assert_eq!((province.population, province.fever), (5, 1));
    let shenzhen = server.report("city:Shenzhen", DAY).await;
    assert_eq!((shenzhen.population, shenzhen.fever), (1, 0));
    // Nothing abnormal, but no checks either: a missing report is never a zero report.
    assert!(!shenzhen.zero_report);

    let schools = server
        .reports
        .list_units(pb::ListUnitsRequest {
            level: pb::Level::School as i32,
            unit: "city:Guangzhou".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .units;
    assert_eq!(schools.iter().map(|u| u.unit.as_str()).collect::<Vec<_>>(), ["school:S1"]);
    let dorms = server
        .reports
        .list_units(pb::ListUnitsRequest {
            level: pb::Level::Dorm as i32,
            unit: "school:S1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .units;
    assert_eq!(dorms.len(), 2);
    server.running.stop().await.unwrap();
}

async fn a_repeated_event_id_is_accepted_once_and_answered_as_duplicate(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", DAY);
    server.post_all(vec![s.register("07:00", &student("A", "C01", "B1"))]).await;
    let reading = s.temperature("07:30", "A", Slot::Morning, 38.0);
    let first = server.intake.publish(reading.clone()).await.unwrap().into_inner();
    assert_eq!(first.outcome, pb::Outcome::Accepted as i32);
    let again = server.intake.publish(reading.clone()).await.unwrap().into_inner();
    assert_eq!(again.outcome, pb::Outcome::Duplicate as i32);
    // Also inside one batch, and with a body that differs: the id decides.
    let mut altered = reading.clone();
    altered.occurred_at = format!("{DAY}T12:00:00+08:00");
    let fresh = s.symptoms("08:00", "A", &[Symptom::Fever]);
    let results = server
        .intake
        .publish_batch(pb::PublishBatchRequest { events: vec![altered, fresh.clone(), fresh] })
        .await
        .unwrap()
        .into_inner()
        .results;
    let outcomes: Vec<i32> = results.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [pb::Outcome::Duplicate as i32, pb::Outcome::Accepted as i32, pb::Outcome::Duplicate as i32]);

    let report = server.report("class:S1/D1/2019/C01", DAY).await;
    assert_eq!((report.fever, report.symptoms.unwrap().fever), (1, 1));
    assert_eq!(checks(&report, Slot::Noon), (0, 1), "the altered duplicate was not folded");
    let status = server.reports.get_status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.events_folded, 3, "registration, one reading, one symptom report");
    server.running.stop().await.unwrap();
}

async fn a_bad_event_in_a_good_batch_is_refused_by_index_and_the_rest_is_kept(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", DAY);
    let mut no_payload = s.temperature("07:31", "A", Slot::Morning, 36.5);
    no_payload.payload = None;
    let events = vec![
        s.register("07:00", &student("A", "C01", "B1")),
        s.temperature("07:30", "A", Slot::Morning, 52.1),
        s.temperature("12:00", "A", Slot::Noon, 36.5),
        no_payload,
    ];
    let results = server.intake.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
    let summary: Vec<(u64, i32, &str)> = results.iter().map(|r| (r.index, r.outcome, r.error.as_str())).collect();
    assert_eq!(
        summary,
        [
            (0, pb::Outcome::Accepted as i32, ""),
            (1, pb::Outcome::Rejected as i32, "health.temperature.celsius: 52.1 is outside 30.0..=45.0"),
            (2, pb::Outcome::Accepted as i32, ""),
            (
                3,
                pb::Outcome::Rejected as i32,
                "payload: missing; set one of roster, health, movement, inspection, unit"
            ),
        ]
    );
    let report = server.report("school:S1", DAY).await;
    assert_eq!(report.population, 1);
    assert_eq!(checks(&report, Slot::Morning), (0, 1));
    assert_eq!(checks(&report, Slot::Noon), (1, 1));

    // A single bad event is refused with INVALID_ARGUMENT, the field named.
    let status = server.intake.publish(s.temperature("19:00", "A", Slot::Evening, 29.0)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "health.temperature.celsius: 29 is outside 30.0..=45.0");
    let mut late_zone = s.temperature("19:00", "A", Slot::Evening, 36.0);
    late_zone.occurred_at = "2020-03-02 19:00".into();
    let status = server.intake.publish(late_zone).await.unwrap_err();
    assert!(status.message().starts_with("occurred_at: "), "{}", status.message());
    server.running.stop().await.unwrap();
}

async fn a_person_moving_class_mid_day_counts_in_the_new_class_for_that_whole_day(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", "2020-03-01");
    let mut events =
        vec![s.register("07:00", &student("A", "C01", "B1")), s.temperature("07:30", "A", Slot::Morning, 36.5)];
    s.on(DAY);
    events.push(s.temperature("07:30", "A", Slot::Morning, 36.6));
    events.push(s.move_to("10:00", "A", "D1", "2019", "C02", "B3"));
    events.push(s.temperature("12:00", "A", Slot::Noon, 37.8));
    server.post_all(events).await;

    let before = server.report("class:S1/D1/2019/C01", "2020-03-01").await;
    assert_eq!((before.population, checks(&before, Slot::Morning)), (1, (1, 1)));
    // No one was in the new class before: it has no report for that day.
    let request = pb::DailyReportRequest { unit: "class:S1/D1/2019/C02".into(), date: "2020-03-01".into() };
    let new_class_before = server.reports.get_daily_report(request).await.expect_err("no report yet");
    assert_eq!(new_class_before.code(), tonic::Code::NotFound, "{new_class_before:?}");

    let old_class = server.report("class:S1/D1/2019/C01", DAY).await;
    assert_eq!((old_class.population, old_class.fever, checks(&old_class, Slot::Morning)), (0, 0, (0, 0)));
    let new_class = server.report("class:S1/D1/2019/C02", DAY).await;
    assert_eq!((new_class.population, new_class.fever), (1, 1));
    assert_eq!(checks(&new_class, Slot::Morning), (1, 1));
    assert_eq!(checks(&new_class, Slot::Noon), (1, 1));
    assert_eq!(server.report("dorm:S1/B1", DAY).await.population, 0);
    assert_eq!(server.report("dorm:S1/B3", DAY).await.fever, 1);
    let grade = server.report("grade:S1/D1/2019", DAY).await;
    assert_eq!((grade.population, grade.fever, checks(&grade, Slot::Morning)), (1, 1, (1, 1)));

    // A day without events inherits who is where, not what they did.
    let next = server.report("class:S1/D1/2019/C02", "2020-03-03").await;
    assert_eq!((next.population, next.fever, checks(&next, Slot::Morning)), (1, 0, (0, 1)));
    assert!(!next.zero_report, "no checks that day: not a zero report");
    server.running.stop().await.unwrap();
}

async fn a_late_reading_revises_the_day_it_happened_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", "2020-03-01");
    let register = s.register("07:00", &student("A", "C01", "B1"));
    let late = s.temperature("19:00", "A", Slot::Evening, 38.1);
    s.on(DAY);
    server.post_all(vec![register, s.temperature("07:30", "A", Slot::Morning, 36.5)]).await;
    assert_eq!(server.report("school:S1", "2020-03-01").await.fever, 0);
    server.post_all(vec![late]).await;
    let revised = server.report("school:S1", "2020-03-01").await;
    assert_eq!((revised.fever, checks(&revised, Slot::Evening)), (1, (1, 1)));
    assert_eq!(server.report("school:S1", DAY).await.fever, 0);
    server.running.stop().await.unwrap();
}

async fn diagnoses_and_observation_move_people_between_counts(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", "2020-03-01");
    let mut events = vec![
        s.register("07:00", &student("A", "C01", "B1")),
        s.register("07:00", &teacher("T")),
        s.diagnosis("09:00", "A", pb::DiagnosisKind::DiagnosisSuspected),
        s.two_histories("09:00", "T", "2020-02-20"),
        s.isolation("10:00", "T", pb::IsolationKind::IsolationHome),
        s.gate("18:00", "T", pb::Direction::Out),
        // S's father is a confirmed case; their last contact was on 28 February.
        s.register("07:00", &student("S", "C01", "B2")),
        s.history("11:00", "S", pb::HistoryKind::HistoryCloseContact, "2020-02-28"),
        s.isolation("11:30", "S", pb::IsolationKind::IsolationCentralized),
    ];
    s.on(DAY);
    events.push(s.diagnosis("09:00", "A", pb::DiagnosisKind::DiagnosisConfirmed));
    server.post_all(events).await;
    let first = server.report("school:S1", "2020-03-01").await;
    assert_eq!((first.suspected_new, first.suspected_current, first.confirmed_current), (1, 1, 0));
    assert_eq!((first.two_histories, first.home_observation, first.present_on_campus, first.gate_out), (1, 1, 2, 1));
    let second = server.report("school:S1", DAY).await;
    assert_eq!(
        (second.suspected_new, second.suspected_current, second.confirmed_new, second.confirmed_current),
        (0, 0, 1, 1)
    );
    assert_eq!((second.home_observation, second.gate_out), (1, 0));
    assert_eq!((second.close_contacts, second.centralized_observation), (1, 1));
    // 14 days from the travel date (20 Feb) and from the last contact (28 Feb), not from
    // the day observation began.
    assert_eq!(server.report("school:S1", "2020-03-04").await.due_for_release, 0);
    assert_eq!(server.report("school:S1", "2020-03-05").await.due_for_release, 1);
    assert_eq!(server.report("school:S1", "2020-03-12").await.due_for_release, 1);
    assert_eq!(server.report("school:S1", "2020-03-13").await.due_for_release, 2);
    server.running.stop().await.unwrap();
}

async fn queries_name_what_is_wrong_and_unknown_units_are_not_found(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", DAY);
    server.post_all(vec![s.register("07:00", &teacher("T"))]).await;
    server.report("school:S1", DAY).await;
    let err = server
        .reports
        .get_daily_report(pb::DailyReportRequest { unit: "class:S1".into(), date: DAY.into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("unit: class key needs 4 path segments"), "{}", err.message());
    let err = server
        .reports
        .get_daily_report(pb::DailyReportRequest { unit: "school:S9".into(), date: DAY.into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = server
        .reports
        .get_daily_report(pb::DailyReportRequest { unit: "school:S1".into(), date: "3/2/2020".into() })
        .await
        .unwrap_err();
    assert!(err.message().starts_with("date: "), "{}", err.message());
    // No date is today (in the province), as for the observation list and the exports.
    let today = || chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive();
    let before = today().to_string();
    let report = server
        .reports
        .get_daily_report(pb::DailyReportRequest { unit: "school:S1".into(), date: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert!([before, today().to_string()].contains(&report.date), "{}", report.date);
    assert_eq!(report.population, 1, "the teacher registered on {DAY} is still there");
    server.running.stop().await.unwrap();
}

/// The services gRPC reflection lists in `$version` (v1 or v1alpha: the same messages in
/// two packages).
macro_rules! reflected_services {
    ($version:ident, $target:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let channel = tonic::transport::Channel::from_shared($target.to_owned()).unwrap().connect().await.unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let list = MessageRequest::ListServices(String::new());
        let request = ServerReflectionRequest { host: String::new(), message_request: Some(list) };
        let mut answers = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
        match answers.message().await.unwrap().and_then(|a| a.message_response) {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<String>>()
            }
            other => panic!("{}: {other:?}", stringify!($version)),
        }
    }};
}

async fn health_reflection_and_metrics_are_served(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server: Server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", DAY);
    server.post_all(vec![s.register("07:00", &teacher("T"))]).await;
    let _ = server.intake.publish(s.temperature("07:30", "T", Slot::Morning, 99.0)).await;
    // A reading for someone on no roster: counted for the operators too.
    server.post_all(vec![s.temperature("07:40", "X", Slot::Morning, 39.5)]).await;
    assert_eq!(server.report("school:S1", DAY).await.unrostered, 1);

    let channel = tonic::transport::Channel::from_shared(server.target.clone()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest { service: "daybook.v1.Intake".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // Reflection in both versions a generic client may speak, listing health too.
    let every =
        ["daybook.v1.Admin", "daybook.v1.Feeds", "daybook.v1.Intake", "daybook.v1.Reports", "grpc.health.v1.Health"];
    // Each version lists itself; the rest is the same.
    let own = |names: Vec<String>| -> Vec<String> {
        names.into_iter().filter(|n| !n.starts_with("grpc.reflection.")).collect()
    };
    let listed = own(reflected_services!(v1, server.target));
    assert!(every.iter().all(|s| listed.iter().any(|l| l == s)), "v1 lists {listed:?}");
    assert_eq!(own(reflected_services!(v1alpha, server.target)), listed, "v1alpha lists the same");

    // The status names the partitions the reports depend on: over Kafka also the changelog.
    let status = server.reports.get_status(pb::StatusRequest {}).await.unwrap().into_inner();
    let topics: std::collections::BTreeSet<String> = status.partitions.iter().map(|p| p.topic.clone()).collect();
    let expected: &[&str] = match backend {
        Backend::Embedded => &["health", "roster"],
        Backend::Kafka { .. } => &["health", "inspection", "movement", "roster", "unit-records"],
    };
    assert_eq!(topics.iter().map(String::as_str).collect::<Vec<_>>(), expected);

    let metrics = http_get(server.running.http_addr, "/metrics").await;
    assert!(metrics.contains("daybook_events_accepted_total{kind=\"roster\"} 1"), "{metrics}");
    assert!(
        metrics.contains("daybook_events_refused_total{kind=\"health\",field=\"health.temperature.celsius\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("daybook_events_folded_total 2"), "{metrics}");
    assert!(metrics.contains("daybook_events_unrostered_total{school=\"S1\"} 1"), "{metrics}");
    // Prometheus's classic text unless OpenMetrics is asked for: a counter's family carries
    // its samples' name, so a classic parser reads it as a counter.
    assert!(metrics.to_lowercase().contains("content-type: text/plain; version=0.0.4"), "{metrics}");
    assert!(metrics.contains("# TYPE daybook_events_accepted_total counter"), "{metrics}");
    assert!(!metrics.contains("# EOF"), "{metrics}");
    // The process and the build, as operators watch them.
    assert!(
        metrics.contains(&format!("daybook_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE process_cpu_seconds_total counter"), "{metrics}");
    let resident = metrics.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes "));
    assert!(resident.and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v > 1e6), "{metrics}");
    let openmetrics = http_get_accepting(
        server.running.http_addr,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    )
    .await;
    assert!(openmetrics.to_lowercase().contains("content-type: application/openmetrics-text"), "{openmetrics}");
    assert!(openmetrics.contains("# TYPE daybook_events_accepted counter"), "{openmetrics}");
    assert!(openmetrics.trim_end().ends_with("# EOF"), "{openmetrics}");
    server.running.stop().await.unwrap();
}

async fn a_roommates_fever_on_day_13_extends_centralized_observation(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let centralized = pb::IsolationKind::IsolationCentralized;
    let mut s = School::new("S1", "Guangzhou", "2020-03-01");
    let mut events = vec![
        s.register("07:00", &student("A", "C01", "B1")),
        s.register("07:00", &student("B", "C01", "B1")),
        s.register("07:00", &student("C", "C02", "B2")),
        // Only A's isolation names B: roommates go both ways all the same.
        s.isolation_with("09:00", "A", centralized, &["B"]),
        s.isolation("09:00", "B", centralized),
        s.isolation("09:00", "C", centralized),
    ];
    s.on("2020-03-13");
    events.push(s.temperature("12:00", "B", Slot::Noon, 38.2));
    s.on("2020-03-16");
    events.push(s.release("10:00", "C"));
    server.post_all(events).await;

    let first = server.report("school:S1", "2020-03-01").await;
    assert_eq!((first.centralized_observation, first.observation_started), (3, 3));
    let extended = server.report("school:S1", "2020-03-13").await;
    assert_eq!(extended.observation_extended, 2, "B by its own fever, A by its roommate's");
    let fourteen_days = server.report("school:S1", "2020-03-15").await;
    assert_eq!(fourteen_days.due_for_release, 1, "only C, who had no roommate with signs");
    let released = server.report("school:S1", "2020-03-16").await;
    assert_eq!((released.released, released.due_for_release, released.centralized_observation), (1, 0, 2));
    assert_eq!(server.report("school:S1", "2020-03-26").await.due_for_release, 0);
    let due = server.report("school:S1", "2020-03-27").await;
    assert_eq!(due.due_for_release, 2, "fourteen days after the fever on day 13");
    assert_eq!(server.report("class:S1/D1/2019/C01", "2020-03-27").await.due_for_release, 2);
    server.running.stop().await.unwrap();
}

fn batch(report: &pb::DailyReport, n: u32) -> (u32, u32, u32) {
    let b = report.batches.iter().find(|b| b.batch == n).expect("batches 1..=3 are reported");
    (b.planned, b.returned, b.not_yet_returned)
}

async fn returns_are_counted_by_batch_planned_back_and_not_yet(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", "2020-03-01");
    let mut events = vec![
        s.register("07:00", &student("A", "C01", "B1")),
        s.register("07:00", &student("B", "C01", "B1")),
        s.register("07:00", &student("C", "C01", "B2")),
        s.register("07:00", &student("D", "C02", "B2")),
        s.whereabouts("07:10", "B", "Guangdong", false, false),
        s.two_histories("07:20", "B", "2020-02-20"),
        s.whereabouts("07:10", "C", "Hubei", true, false),
        s.whereabouts("07:10", "D", "Guangdong", false, false),
    ];
    s.on(DAY);
    events.push(s.health_card("08:00", "B"));
    events.push(s.returned("09:00", "B", 2));
    server.post_all(events).await;

    let first = server.report("school:S1", "2020-03-01").await;
    assert_eq!((batch(&first, 1), batch(&first, 2), batch(&first, 3)), ((2, 1, 1), (1, 0, 1), (1, 0, 1)));
    assert_eq!(first.in_key_area, 1, "C is still in Hubei");
    let second = server.report("school:S1", DAY).await;
    assert_eq!((batch(&second, 1), batch(&second, 2), batch(&second, 3)), ((2, 1, 1), (1, 1, 0), (1, 0, 1)));
    assert_eq!((second.returned, second.health_cards, second.returned_without_health_card), (1, 1, 0));
    server.running.stop().await.unwrap();
}

async fn what_the_rules_forbid_is_flagged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", DAY);
    let events = vec![
        s.register("07:00", &student("A", "C01", "B1")),
        s.register("07:00", &student("B", "C01", "B1")),
        s.register("07:00", &student("E", "C01", "B2")),
        s.register("07:00", &student("F", "C01", "B2")),
        s.register("07:00", &teacher("T")),
        // A is under observation and comes in through the gate.
        s.isolation("08:00", "A", pb::IsolationKind::IsolationHome),
        s.gate("09:00", "A", pb::Direction::In),
        // B returns without a health card.
        s.returned("09:30", "B", 1),
        // E, a boarder, goes out without leave; F with leave; T is no boarder.
        s.gate("18:00", "E", pb::Direction::Out),
        s.leave("17:00", "F", "2020-03-04"),
        s.gate("18:00", "F", pb::Direction::Out),
        s.gate("18:00", "T", pb::Direction::Out),
    ];
    server.post_all(events).await;
    let r = server.report("school:S1", DAY).await;
    assert_eq!((r.gate_in_kept_out, r.returned_without_health_card, r.boarder_left_without_leave), (1, 1, 1));
    let dorm = server.report("dorm:S1/B2", DAY).await;
    assert_eq!((dorm.gate_out, dorm.boarder_left_without_leave), (2, 1));
    server.running.stop().await.unwrap();
}

async fn events_older_than_the_horizon_or_from_the_future_are_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = backend.args(dir.path());
    args.horizon_days = Some(7);
    let mut server = tests::connect(daybook::start(&args.resolve().unwrap()).await.unwrap()).await;
    let day = |offset: i64| (chrono::Utc::now() + chrono::TimeDelta::days(offset)).format("%Y-%m-%d").to_string();
    let mut s = School::new("S1", "Guangzhou", &day(-2));
    let mut events = vec![s.register("07:00", &teacher("T"))];
    s.on(&day(-10));
    events.push(s.temperature("07:30", "T", Slot::Morning, 36.5));
    s.on(&day(3));
    events.push(s.temperature("07:30", "T", Slot::Morning, 36.5));
    // Within the clock skew (10 minutes by default) a device's fast clock passes; a
    // reading dated half an hour ahead does not.
    let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    for ahead in [3, 30] {
        let at = (chrono::Utc::now() + chrono::TimeDelta::minutes(ahead)).with_timezone(&zone);
        s.on(&at.format("%Y-%m-%d").to_string());
        events.push(s.temperature(&at.format("%H:%M").to_string(), "T", Slot::Morning, 36.5));
    }
    let results = server.intake.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
    assert_eq!(results[0].outcome, pb::Outcome::Accepted as i32, "{}", results[0].error);
    assert_eq!(results[1].outcome, pb::Outcome::Rejected as i32);
    assert!(
        results[1].error.starts_with("occurred_at: ")
            && results[1].error.ends_with("is older than the 7-day horizon for late events"),
        "{}",
        results[1].error
    );
    assert_eq!(results[2].outcome, pb::Outcome::Rejected as i32);
    assert!(results[2].error.contains("is in the future"), "{}", results[2].error);
    assert_eq!(results[3].outcome, pb::Outcome::Accepted as i32, "{}", results[3].error);
    assert_eq!(results[4].outcome, pb::Outcome::Rejected as i32);
    assert!(
        results[4].error.ends_with("is in the future (more than 10 minutes ahead of the server's clock)"),
        "{}",
        results[4].error
    );
    server.running.stop().await.unwrap();
}

async fn key_persons_are_listed_by_unit_with_their_observation(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", "2020-03-01");
    let events = vec![
        s.register("07:00", &student("A", "C01", "B1")),
        s.register("07:00", &student("B", "C01", "B1")),
        s.register("07:00", &student("C", "C02", "B2")),
        s.register("07:00", &student("D", "C01", "B2")),
        s.register("07:00", &student("E", "C01", "B2")),
        s.history("08:00", "A", pb::HistoryKind::HistoryContact, "2020-02-25"),
        s.isolation("09:00", "A", pb::IsolationKind::IsolationCentralized),
        s.whereabouts("08:00", "C", "Hubei", true, false),
        s.isolation("09:00", "D", pb::IsolationKind::IsolationHome),
        // Not due before 03-15: refused, D stays under observation.
        s.release("18:00", "D"),
        // Back from travel on 02-10: due on 02-24, so this release ends the observation.
        s.history("08:00", "E", pb::HistoryKind::HistoryTravel, "2020-02-10"),
        s.isolation("09:00", "E", pb::IsolationKind::IsolationHome),
        s.release("18:00", "E"),
        // Back at school with a contact history of 02-27 and not isolated: flagged.
        s.register("07:00", &student("F", "C01", "B2")),
        s.history("08:00", "F", pb::HistoryKind::HistoryContact, "2020-02-27"),
    ];
    server.post_all(events).await;
    server.caught_up().await;
    // As the list stood at the end of that day; without a date, as it stands today.
    let list = |unit: &str| pb::KeyPersonsRequest { unit: unit.into(), date: "2020-03-01".into() };
    let class = server.reports.list_key_persons(list("class:S1/D1/2019/C01")).await.unwrap().into_inner().persons;
    let ids: Vec<&str> = class.iter().map(|p| p.person_id.as_str()).collect();
    assert_eq!(ids, ["A", "D", "E", "F"], "B is no key person");
    let f = &class[3];
    assert_eq!((f.observation, f.observation_missing), (0, pb::IsolationKind::IsolationCentralized as i32));
    assert_eq!(f.observation_missing_until, "2020-03-12", "14 days after 02-27 (2020 is a leap year)");
    assert_eq!(class[0].observation_missing, 0);
    let a = &class[0];
    assert_eq!(a.release_refused, "");
    let d = &class[1];
    assert_eq!(d.observation, pb::IsolationKind::IsolationHome as i32);
    assert_eq!(d.release_refused, "release refused: not eligible before 2020-03-15, the period runs from 2020-03-01");
    let e = &class[2];
    assert_eq!((e.observation, e.release_refused.as_str()), (0, ""), "E was released; two histories keep E listed");
    let school = server.report("school:S1", "2020-03-01").await;
    assert_eq!((school.releases_refused, school.released, school.home_observation), (1, 1, 1));
    assert_eq!(school.observation_missing, 1, "F");
    assert_eq!((a.school.as_str(), a.person_id.as_str(), a.history_date.as_str()), ("S1", "A", "2020-02-25"));
    assert_eq!(a.observation, pb::IsolationKind::IsolationCentralized as i32);
    assert_eq!((a.observation_start.as_str(), a.observation_expected_end.as_str()), ("2020-02-25", "2020-03-10"));
    let city = server.reports.list_key_persons(list("city:Guangzhou")).await.unwrap().into_inner().persons;
    let mut ids: Vec<&str> = city.iter().map(|p| p.person_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["A", "C", "D", "E", "F"]);
    assert!(city.iter().find(|p| p.person_id == "C").unwrap().in_key_area);
    // Today F's 14 days from the contact (to 03-12) have long run out: no longer missing.
    let today = pb::KeyPersonsRequest { unit: "class:S1/D1/2019/C01".into(), date: String::new() };
    let class = server.reports.list_key_persons(today).await.unwrap().into_inner().persons;
    let f = class.iter().find(|p| p.person_id == "F").expect("two histories keep F listed");
    assert_eq!((f.observation_missing, f.observation_missing_until.as_str()), (0, ""));
    server.running.stop().await.unwrap();
}

async fn the_key_person_list_is_as_it_stood_on_the_day_asked(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", "2020-03-01");
    let mut events = vec![
        s.register("07:00", &student("A", "C01", "B1")),
        s.register("07:00", &student("B", "C01", "B1")),
        s.register("07:00", &student("D", "C01", "B2")),
        // Back at school from travel on 02-28: centralized observation until 03-13.
        s.history("08:00", "A", pb::HistoryKind::HistoryTravel, "2020-02-28"),
        s.whereabouts("08:00", "B", "Hubei", true, false),
    ];
    s.on("2020-03-02");
    // A close contact (last contact 03-01): centralized observation until 03-15.
    events.push(s.history("08:00", "D", pb::HistoryKind::HistoryCloseContact, "2020-03-01"));
    s.on("2020-03-03");
    events.push(s.isolation("09:00", "A", pb::IsolationKind::IsolationCentralized));
    s.on("2020-03-04");
    // Back from Hubei in batch 1: centralized observation until 03-18, not started.
    events.push(s.returned("09:00", "B", 1));
    s.on("2020-03-06");
    events.push(s.move_to("10:00", "D", "D1", "2019", "C02", "B2"));
    s.on("2020-03-13");
    events.push(s.release("09:00", "A"));
    server.post_all(events).await;
    server.caught_up().await;

    let mut list = async |unit: &str, date: &str| {
        let request = pb::KeyPersonsRequest { unit: unit.into(), date: date.into() };
        server.reports.list_key_persons(request).await.map(|r| r.into_inner().persons)
    };
    let ids = |persons: &[pb::KeyPerson]| persons.iter().map(|p| p.person_id.clone()).collect::<Vec<_>>();
    let c01 = "class:S1/D1/2019/C01";
    const CENTRALIZED: i32 = pb::IsolationKind::IsolationCentralized as i32;

    assert_eq!(ids(&list(c01, "2020-02-29").await.unwrap()), [] as [&str; 0], "before anyone was a key person");

    let on_1 = list(c01, "2020-03-01").await.unwrap();
    assert_eq!(ids(&on_1), ["A", "B"], "D's contact was declared on 03-02");
    let (a, b) = (&on_1[0], &on_1[1]);
    assert_eq!(
        (a.observation, a.observation_missing, a.observation_missing_until.as_str()),
        (0, CENTRALIZED, "2020-03-13")
    );
    assert_eq!((b.in_key_area, b.key_area_return_date.as_str(), b.observation_missing), (true, "", 0));

    let on_4 = list(c01, "2020-03-04").await.unwrap();
    assert_eq!(ids(&on_4), ["A", "B", "D"]);
    let (a, b, d) = (&on_4[0], &on_4[1], &on_4[2]);
    assert_eq!(
        (a.observation, a.observation_start.as_str(), a.observation_expected_end.as_str(), a.observation_missing),
        (CENTRALIZED, "2020-02-28", "2020-03-13", 0),
        "14 days from the return from travel"
    );
    assert_eq!((b.in_key_area, b.key_area_return_date.as_str()), (false, "2020-03-04"));
    assert_eq!((b.observation_missing, b.observation_missing_until.as_str()), (CENTRALIZED, "2020-03-18"));
    assert_eq!(
        (d.close_contact_date.as_str(), d.observation_missing, d.observation_missing_until.as_str()),
        ("2020-03-01", CENTRALIZED, "2020-03-15")
    );

    // D moved to C02 on 03-06: listed there from that day, in C01 before.
    assert_eq!(ids(&list(c01, "2020-03-06").await.unwrap()), ["A", "B"]);
    assert_eq!(ids(&list("class:S1/D1/2019/C02", "2020-03-06").await.unwrap()), ["D"]);
    assert_eq!(ids(&list("class:S1/D1/2019/C02", "2020-03-05").await.unwrap()), [] as [&str; 0]);

    // Released on the day the period runs out; two histories keep A listed.
    let on_13 = list(c01, "2020-03-13").await.unwrap();
    assert_eq!((on_13[0].person_id.as_str(), on_13[0].observation, on_13[0].release_refused.as_str()), ("A", 0, ""));
    let b_on = |persons: Vec<pb::KeyPerson>| persons.into_iter().find(|p| p.person_id == "B").unwrap();
    assert_eq!(b_on(list(c01, "2020-03-17").await.unwrap()).observation_missing, CENTRALIZED);
    let b_18 = b_on(list(c01, "2020-03-18").await.unwrap());
    assert_eq!(
        (b_18.observation_missing, b_18.key_area_return_date.as_str()),
        (0, "2020-03-04"),
        "the 14 days ran out"
    );
    assert_eq!(ids(&list(c01, "").await.unwrap()), ["A", "B"], "today");

    // The date is read as GetDailyReport reads it, and must lie within the horizon.
    let err = list(c01, "2020-3-4").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("date: "), "{}", err.message());
    let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let tomorrow =
        (chrono::Utc::now().with_timezone(&zone) + chrono::TimeDelta::days(1)).format("%Y-%m-%d").to_string();
    let err = list(c01, &tomorrow).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with(&format!("date: {tomorrow} is in the future (today is ")), "{}", err.message());
    let err = list(c01, "1920-01-01").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("date: 1920-01-01 is older than the 36500-day horizon (today is "),
        "{}",
        err.message()
    );

    // The observation list's file, as of a day: A alone was under observation on 03-04,
    // nobody on 03-13 (A released).
    let export = |date: &'static str| {
        let target = server.target.clone();
        async move {
            let connection = daybook::client::connect(&target, None, &Default::default()).await.unwrap();
            daybook::files::fetch(connection, "observation", "school:S1", "school", date, "csv").await
        }
    };
    let rows = |file: pb::ExportFile| {
        let text = String::from_utf8(file.content).unwrap();
        text.trim_start_matches('\u{feff}').lines().skip(1).map(str::to_owned).collect::<Vec<_>>()
    };
    let on_4 = rows(export("2020-03-04").await.unwrap());
    assert_eq!(on_4.len(), 1, "{on_4:?}");
    assert!(on_4[0].contains(",A,") && on_4[0].contains("2020-02-28") && on_4[0].contains("2020-03-13"), "{}", on_4[0]);
    assert_eq!(rows(export("2020-03-13").await.unwrap()), [] as [&str; 0]);
    let err = export("1920-01-01").await.unwrap_err().to_string();
    assert!(err.contains("date: 1920-01-01 is older than the 36500-day horizon"), "{err}");
    server.running.stop().await.unwrap();
}

async fn every_units_report_in_one_call_equals_the_reports_one_by_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s1 = School::new("S1", "Guangzhou", DAY);
    let mut s2 = School::new("S2", "Shenzhen", DAY);
    let mut events = vec![
        s1.register("07:00", &student("A", "C01", "B1")),
        s1.register("07:00", &student("B", "C02", "B1")),
        s1.register("07:00", &teacher("T")),
        s2.register("07:00", &student("X", "C01", "B1")),
    ];
    events.push(s1.temperature("07:30", "A", Slot::Morning, 38.2));
    events.push(s2.temperature("07:30", "X", Slot::Morning, 36.2));
    server.post_all(events).await;
    let one_by_one = server.all_reports(DAY).await;

    let list = |unit: &str, level: pb::Level| pb::DailyReportsRequest {
        unit: unit.into(),
        date: DAY.into(),
        level: level as i32,
        ..Default::default()
    };
    let read = |mut reports: pb::reports_client::ReportsClient<_>, request| async move {
        let mut stream = reports.list_daily_reports(request).await.unwrap().into_inner();
        let mut out = Vec::new();
        while let Some(report) = stream.message().await.unwrap() {
            out.push(report);
        }
        out
    };
    let all = read(server.reports.clone(), list("", pb::Level::Unspecified)).await;
    assert_eq!(all[0].unit, "province", "the province first");
    let in_one_call: std::collections::BTreeMap<String, pb::DailyReport> =
        all.into_iter().map(|r| (r.unit.clone(), r)).collect();
    assert_eq!(in_one_call, one_by_one, "same units, same figures");
    assert_eq!(in_one_call["city:Guangzhou"].fever, 1);

    let classes = read(server.reports.clone(), list("school:S1", pb::Level::Class)).await;
    let units: Vec<&str> = classes.iter().map(|r| r.unit.as_str()).collect();
    assert_eq!(units, ["class:S1/D1/2019/C01", "class:S1/D1/2019/C02"]);
    let shenzhen = read(server.reports.clone(), list("city:Shenzhen", pb::Level::Unspecified)).await;
    assert!(shenzhen.iter().all(|r| r.unit == "city:Shenzhen" || r.unit.contains("S2")), "{shenzhen:?}");
    assert_eq!(shenzhen[0].population, 1);

    let unknown = server.reports.list_daily_reports(list("school:S9", pb::Level::Unspecified)).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let mut bad_date = list("", pb::Level::Unspecified);
    bad_date.date = "yesterday".into();
    let refused = server.reports.list_daily_reports(bad_date).await.unwrap_err();
    assert!(refused.message().starts_with("date:"), "{}", refused.message());
    server.running.stop().await.unwrap();
}

/// More events than one stream sends to the log at once: outcomes keep their indexes.
async fn a_long_stream_answers_every_event_by_its_index_and_folds_each_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s = School::new("S1", "Guangzhou", DAY);
    let mut events: Vec<pb::Event> =
        (0..5_000).map(|i| s.temperature("07:30", &format!("P{}", i % 700), Slot::Morning, 36.5)).collect();
    events[1_500].occurred_at = "soon".into();
    events[4_500].school = String::new();
    events[3_000] = events[10].clone();
    let response = server.intake.publish_stream(tokio_stream::iter(events)).await.unwrap().into_inner();
    assert_eq!((response.accepted, response.duplicates, response.rejected), (4_997, 1, 2));
    let problems: Vec<(u64, &str)> = response.problems.iter().map(|p| (p.index, p.error.as_str())).collect();
    assert_eq!(problems.len(), 2);
    assert_eq!(problems[0].0, 1_500);
    assert!(problems[0].1.starts_with("occurred_at"), "{}", problems[0].1);
    assert_eq!(problems[1].0, 4_500);
    assert!(problems[1].1.starts_with("school"), "{}", problems[1].1);
    server.caught_up().await;
    assert_eq!(server.events_folded().await, 4_997);
    server.running.stop().await.unwrap();
}

/// Units carry the names their school gave them (the naming latest by event time, in
/// whatever order they arrive), cities their configured names; naming changes no figure,
/// and a school cannot name another school's units.
async fn units_carry_their_schools_names_the_latest_naming_winning(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut s1 = School::new("S1", "Guangzhou", DAY);
    let register = s1.register("07:00", &student("A", "C01", "B1"));
    let later = s1.name("10:00", "school:S1", "广州市第一技工学校", "Guangzhou No. 1 Technical School");
    let earlier = s1.name("08:00", "school:S1", "旧名", "Old name");
    let class = s1.name("08:00", "class:S1/D1/2019/C01", "2019级一班", "");
    // The later naming arrives first.
    server.post_all(vec![register, later]).await;
    server.post_all(vec![earlier, class]).await;

    let school = server.report("school:S1", DAY).await;
    assert_eq!(
        (school.name_zh.as_str(), school.name_en.as_str(), school.population),
        ("广州市第一技工学校", "Guangzhou No. 1 Technical School", 1)
    );
    let class = server.report("class:S1/D1/2019/C01", DAY).await;
    assert_eq!((class.name_zh.as_str(), class.name_en.as_str()), ("2019级一班", ""));
    let dorm = server.report("dorm:S1/B1", DAY).await;
    assert_eq!((dorm.name_zh.as_str(), dorm.name_en.as_str(), dorm.population), ("", "", 1), "never named");
    let city = server.report("city:Guangzhou", DAY).await;
    assert_eq!((city.name_zh.as_str(), city.name_en.as_str()), ("广州市", "Guangzhou"), "as configured");

    let foreign = s1.name("09:00", "school:S2", "别校", "Another school");
    let answer = server.intake.publish_batch(pb::PublishBatchRequest { events: vec![foreign] }).await.unwrap();
    let result = &answer.into_inner().results[0];
    assert_eq!(result.outcome, pb::Outcome::Rejected as i32);
    assert!(result.error.starts_with("unit.named.unit:"), "{}", result.error);
    server.running.stop().await.unwrap();
}
