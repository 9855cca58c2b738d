//! What a client with no good intentions can send, on the embedded log through the real
//! server: nothing it sends can stop the fold, and every refusal stays short, exact and
//! named by field. Kafka shares intake and the fold with the embedded log; the path
//! specific to it (resubscribing after a quarantine) is the same `aggregator::run`.

use prost::Message;
use tests::{Backend, School, Server, Slot, Symptom, http_get, start, student};
use tonic::Code;
use wire::pb;

const DAY: &str = "2020-03-02";

/// A server with one registered student, P1 of class C1 in S1.
async fn with_a_student(dir: &std::path::Path) -> (Server, School) {
    let mut server = start(dir, &Backend::Embedded).await;
    let mut s = School::new("S1", "Guangzhou", DAY);
    server.post_all(vec![s.register("07:00", &student("P1", "C1", "R1"))]).await;
    (server, s)
}

/// The refusal of one event posted alone.
async fn refusal(server: &mut Server, event: pb::Event) -> tonic::Status {
    server.intake.publish(event).await.expect_err("refused")
}

#[tokio::test]
async fn dates_no_period_can_be_added_to_are_refused_by_field_and_the_fold_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut s) = with_a_student(dir.path()).await;
    let contact = s.history("08:00", "P1", pb::HistoryKind::HistoryCloseContact, "+262142-12-20");
    let returned = {
        let mut e = s.returned("08:00", "P1", 2);
        if let Some(pb::event::Payload::Movement(pb::MovementEvent {
            kind: Some(pb::movement_event::Kind::Returned(r)),
            ..
        })) = &mut e.payload
        {
            r.date = "+262142-12-31".into();
        }
        e
    };
    for (event, field) in [
        (s.two_histories("08:00", "P1", "+262142-12-31"), "movement.two_histories.date"),
        (contact, "movement.two_histories.date"),
        (returned, "movement.returned.date"),
        (s.leave("08:00", "P1", "2026-1-1"), "movement.leave_requested.until"),
        (s.two_histories("08:00", "P1", " 2020-03-01"), "movement.two_histories.date"),
        (s.two_histories("08:00", "P1", "2023-03-01"), "movement.two_histories.date"),
    ] {
        let status = refusal(&mut server, event).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(&format!("{field}: ")), "{}", status.message());
    }
    server.post_all(vec![s.temperature("08:30", "P1", Slot::Morning, 38.5)]).await;
    assert_eq!(server.report("school:S1", DAY).await.fever, 1, "the fold is alive and folded the fever");
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_room_of_forty_thousand_is_refused_and_a_full_room_is_folded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut s) = with_a_student(dir.path()).await;
    let centralized = pb::IsolationKind::IsolationCentralized;
    let crowd: Vec<String> = (0..40_000).map(|n| format!("R{n}")).collect();
    let names: Vec<&str> = crowd.iter().map(String::as_str).collect();
    let status = refusal(&mut server, s.isolation_with("09:00", "P1", centralized, &names)).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("movement.isolation_started.roommates: "), "{}", status.message());
    assert!(status.message().contains(&wire::MAX_ROOMMATES.to_string()), "{}", status.message());

    // A room at the bound, its roommates registered: each is folded, once.
    let room: Vec<String> = (1..wire::MAX_ROOMMATES).map(|n| format!("M{n}")).collect();
    let mut events: Vec<pb::Event> = room.iter().map(|m| s.register("07:10", &student(m, "C1", "R1"))).collect();
    let names: Vec<&str> = room.iter().map(String::as_str).collect();
    events.push(s.isolation_with("09:00", "P1", centralized, &names));
    events.push(s.temperature("10:00", "M1", Slot::Noon, 38.6));
    server.post_all(events).await;
    let report = server.report("school:S1", DAY).await;
    assert_eq!((report.population, report.fever), (wire::MAX_ROOMMATES as u32, 1));
    assert_eq!(report.centralized_observation, 1, "P1 alone was isolated");
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_megabyte_value_gets_a_short_field_error_and_a_stream_of_them_a_small_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut s) = with_a_student(dir.path()).await;
    let megabyte = "9".repeat(1 << 20);
    let status = refusal(&mut server, s.two_histories("08:00", "P1", &megabyte)).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("movement.two_histories.date: "), "{}", status.message());
    assert!(status.message().len() < 200, "{} bytes", status.message().len());

    // 600 events of a megabyte each, every field a different way.
    let events: Vec<pb::Event> = (0..600)
        .map(|n| match n % 3 {
            0 => s.two_histories("08:00", "P1", &megabyte),
            1 => pb::Event { source: megabyte.clone(), ..s.temperature("08:00", "P1", Slot::Morning, 36.5) },
            _ => pb::Event { event_id: megabyte.clone(), ..s.temperature("08:00", "P1", Slot::Morning, 36.5) },
        })
        .collect();
    let answer = server.intake.publish_stream(tokio_stream::iter(events)).await.unwrap().into_inner();
    assert_eq!((answer.accepted, answer.rejected, answer.problems.len()), (0, 600, 600));
    assert!(answer.encoded_len() < 200 * 600, "{} bytes for 600 problems", answer.encoded_len());
    for problem in &answer.problems {
        assert!(problem.error.len() < 200 && problem.event_id.len() <= 200, "{problem:?}");
    }

    // More bad events than the answer lists: the counts stay exact, the list is bounded.
    let bad = intake::MAX_PROBLEMS + 500;
    let mut events: Vec<pb::Event> = (0..bad).map(|_| s.temperature("08:00", "P1", Slot::Morning, 99.0)).collect();
    events.push(s.health_card("08:00", "P1"));
    let answer = server.intake.publish_stream(tokio_stream::iter(events)).await.unwrap().into_inner();
    assert_eq!((answer.accepted, answer.rejected as usize), (1, bad));
    assert_eq!(answer.problems.len(), intake::MAX_PROBLEMS);
    assert_eq!(answer.problems.last().unwrap().index as usize, intake::MAX_PROBLEMS - 1, "the first ones, by index");
    assert_eq!(server.report("school:S1", DAY).await.health_cards, 1, "the good event among them is kept");
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_are_counted_by_field_without_list_indices() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut s) = with_a_student(dir.path()).await;
    // A symptom listed twice, at positions 1, 2 and 3 of the list.
    for repeat_at in 1..=3 {
        let mut symptoms = vec![Symptom::Cough, Symptom::Fatigue, Symptom::OtherRespiratory];
        symptoms.insert(repeat_at, Symptom::Cough);
        symptoms.truncate(4);
        let status = refusal(&mut server, s.symptoms("09:00", "P1", &symptoms)).await;
        assert!(status.message().starts_with("health.symptoms.symptoms["), "{}", status.message());
    }
    let metrics = http_get(server.running.http_addr, "/metrics").await;
    assert!(
        metrics.contains(r#"daybook_events_refused_total{kind="health",field="health.symptoms.symptoms[]"} 3"#),
        "{metrics}"
    );
    assert!(!metrics.contains("symptoms[1]") && !metrics.contains("symptoms[2]"), "{metrics}");
    server.running.stop().await.unwrap();
}

/// Appends `events` to the backend's log as records, past intake.
async fn append_past_intake(backend: &Backend, dir: &std::path::Path, events: &[(&str, pb::Event)]) {
    use eventlog::EventLog;
    let records: Vec<eventlog::Record> = events
        .iter()
        .map(|(topic, e)| eventlog::Record {
            topic: (*topic).into(),
            key: e.school.clone(),
            headers: vec![],
            payload: e.encode_to_vec(),
        })
        .collect();
    match backend.args(dir).log {
        None => eventlog::EmbeddedLog::open(&dir.join("log"), 4).unwrap().append(records).await.unwrap(),
        Some(url) => {
            let config = eventlog::KafkaConfig::from_url(&url).unwrap();
            let log = tokio::task::spawn_blocking(move || eventlog::KafkaLog::connect(config)).await.unwrap().unwrap();
            log.append(records).await.unwrap()
        }
    };
}

/// A record that intake refuses now but an older release wrote to the log: the fold
/// keeps it apart, lists it, and folds everything around it.
async fn a_record_the_fold_cannot_read_is_quarantined_listed_and_passed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = School::new("S1", "Guangzhou", DAY);
    let poison = s.two_histories("08:00", "P1", "+262142-12-31");
    let registered = s.register("07:00", &student("P1", "C1", "R1"));
    append_past_intake(&backend, dir.path(), &[("roster", registered), ("movement", poison.clone())]).await;
    let mut server = start(dir.path(), &backend).await;
    server.post_all(vec![s.temperature("08:30", "P1", Slot::Morning, 38.5)]).await;
    let report = server.report("school:S1", DAY).await;
    assert_eq!((report.population, report.fever), (1, 1));

    let status = server.reports.get_status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.total_lag, 0, "the fold passed it");
    assert_eq!((status.quarantined, status.quarantine.len()), (1, 1));
    let kept = &status.quarantine[0];
    assert_eq!(
        (kept.topic.as_str(), kept.event_id.as_str(), kept.school.as_str()),
        ("movement", poison.event_id.as_str(), "S1")
    );
    assert!(kept.reason.starts_with("movement.two_histories.date: "), "{}", kept.reason);
    let metrics = http_get(server.running.http_addr, "/metrics").await;
    assert!(metrics.contains("daybook_records_quarantined 1"), "{metrics}");
    server.running.stop().await.unwrap();

    // Still unreadable after a restart: still listed, not folded twice, the fold goes on.
    let mut server = start(dir.path(), &backend).await;
    server.post_all(vec![s.temperature("12:00", "P1", Slot::Noon, 36.5)]).await;
    assert_eq!(server.report("school:S1", DAY).await.fever, 1);
    let status = server.reports.get_status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.quarantined, 1);
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn on_the_embedded_log_a_record_the_fold_cannot_read_is_quarantined() {
    a_record_the_fold_cannot_read_is_quarantined_listed_and_passed(Backend::Embedded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_a_record_the_fold_cannot_read_is_quarantined() {
    a_record_the_fold_cannot_read_is_quarantined_listed_and_passed(Backend::kafka()).await
}

/// A field that is a string in `Event` (`event_id`), sent as bytes that are not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbled {
    #[prost(bytes = "vec", tag = "1")]
    event_id: Vec<u8>,
}

#[tokio::test]
async fn each_error_carries_the_code_a_client_can_act_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = with_a_student(dir.path()).await;
    server.report("school:S1", DAY).await;

    let channel = tonic::transport::Channel::from_shared(server.target.clone()).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/daybook.v1.Intake/Publish");
    let codec = wire::codec::ProtoCodec::<Garbled, pb::PublishResult>::default();
    let garbled = tonic::Request::new(Garbled { event_id: vec![0xff, 0xfe, 0x80] });
    let status = grpc.unary(garbled, path, codec).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("does not decode"), "{}", status.message());

    let reports = &mut server.reports;
    let report = |unit: &str, date: &str| pb::DailyReportRequest { unit: unit.into(), date: date.into() };
    let code = |r: Result<tonic::Response<pb::DailyReport>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(code(reports.get_daily_report(report("school:S9", DAY)).await), Code::NotFound);
    assert_eq!(code(reports.get_daily_report(report("campus:S1", DAY)).await), Code::InvalidArgument);
    assert_eq!(code(reports.get_daily_report(report("school:S1", "2020-3-2")).await), Code::InvalidArgument);
    let unknown = pb::KeyPersonsRequest { unit: "class:S1/D1/G1/C9".into(), ..Default::default() };
    assert_eq!(reports.list_key_persons(unknown).await.unwrap_err().code(), Code::NotFound);
    // Every request names its unit `unit`, and an unknown one is NOT_FOUND naming it.
    let unknown = pb::ListUnitsRequest { unit: "school:S9".into(), ..Default::default() };
    let refused = reports.list_units(unknown).await.unwrap_err();
    assert_eq!((refused.code(), refused.message().starts_with("unit:")), (Code::NotFound, true), "{refused:?}");
    let unknown = pb::DailyReportsRequest { unit: "city:Atlantis".into(), date: DAY.into(), ..Default::default() };
    let refused = reports.list_daily_reports(unknown).await.unwrap_err();
    assert_eq!((refused.code(), refused.message().starts_with("unit:")), (Code::NotFound, true), "{refused:?}");
    // The former names are still read, and errors name them as the client wrote them.
    #[allow(deprecated)]
    let former = pb::ListUnitsRequest { parent: "school:S9".into(), ..Default::default() };
    assert!(reports.list_units(former).await.unwrap_err().message().starts_with("parent:"));
    #[allow(deprecated)]
    let former = pb::DailyReportsRequest { under: "city:Atlantis".into(), date: DAY.into(), ..Default::default() };
    assert!(reports.list_daily_reports(former).await.unwrap_err().message().starts_with("under:"));

    let mut feeds = pb::feeds_client::FeedsClient::new(channel);
    let nobody = pb::SubscribeRequest { office: "cdc-atlantis".into(), after: 0 };
    assert_eq!(feeds.subscribe(nobody).await.unwrap_err().code(), Code::NotFound);
    let export = |unit: &str, format: pb::ExportFormat| pb::ExportRequest {
        unit: unit.into(),
        date: DAY.into(),
        format: format as i32,
        kind: pb::ExportKind::DailyReports as i32,
        ..Default::default()
    };
    let status = feeds.export(export("school:S9", pb::ExportFormat::Csv)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = feeds.export(export("school:S1", pb::ExportFormat::Unspecified)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(feeds.export(export("school:S1", pb::ExportFormat::Csv)).await.is_ok());
    server.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_city_must_be_the_provinces_and_a_school_stays_in_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut s) = with_a_student(dir.path()).await;
    let mut atlantis = School::new("S2", "Atlantis", DAY);
    let status = refusal(&mut server, atlantis.register("07:00", &student("Q1", "C1", "R1"))).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("roster.registered.city: \"Atlantis\" is not a city of the province"));

    // S1 is in Guangzhou: a registration putting it in Shenzhen is refused, in a batch
    // with a good event, which is kept.
    let mut elsewhere = School::new("S1", "Shenzhen", DAY);
    let events =
        vec![elsewhere.register("07:05", &student("P2", "C1", "R1")), s.register("07:05", &student("P3", "C1", "R1"))];
    let results = server.intake.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
    assert_eq!(results[0].error, "roster.registered.city: school S1 is in Guangzhou, not Shenzhen");
    assert_eq!(results[1].outcome, pb::Outcome::Accepted as i32);
    // Two first registrations of a new school in one batch, in two cities: the first wins.
    let (mut s3, mut s3_elsewhere) = (School::new("S3", "Foshan", DAY), School::new("S3", "Zhuhai", DAY));
    let events = vec![
        s3.register("07:00", &student("F1", "C1", "R1")),
        s3_elsewhere.register("07:00", &student("F2", "C1", "R1")),
    ];
    let results = server.intake.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
    assert_eq!(results[0].outcome, pb::Outcome::Accepted as i32);
    assert_eq!(results[1].error, "roster.registered.city: school S3 is in Foshan, not Zhuhai");
    server.running.stop().await.unwrap();

    // Remembered across a restart; no office or unit for a refused city.
    let mut server = start(dir.path(), &Backend::Embedded).await;
    let status = refusal(&mut server, elsewhere.register("08:00", &student("P4", "C1", "R1"))).await;
    assert!(status.message().contains("school S1 is in Guangzhou, not Shenzhen"), "{}", status.message());
    server.caught_up().await;
    let units =
        server.reports.list_units(pb::ListUnitsRequest { level: pb::Level::City as i32, ..Default::default() }).await;
    let cities: Vec<String> = units.unwrap().into_inner().units.into_iter().map(|u| u.unit).collect();
    assert_eq!(cities, ["city:Foshan", "city:Guangzhou"]);
    server.running.stop().await.unwrap();
}
