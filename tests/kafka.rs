//! daybook over a real Kafka broker (tansu): scale-out, a broker restart during intake,
//! and the topics read with a plain Kafka client.

use std::time::Duration;

use daybook::Roles;
use prost::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use tests::{Backend, School, small_province_day, start, start_roles, teacher};
use wire::pb;

const DAY: &str = "2020-03-02";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_aggregators_in_a_group_give_the_reports_of_one() {
    let backend = Backend::kafka();
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut intake = start_roles(dirs[0].path(), &backend, Roles::Intake).await;
    let mut trio = Vec::new();
    for dir in &dirs[1..4] {
        trio.push(start_roles(dir.path(), &backend, Roles::Aggregate).await);
    }
    // One more aggregator in a group of its own reads the same events alone.
    let mut alone_args = backend.args(dirs[4].path());
    alone_args.group = alone_args.group.map(|g| format!("{g}-alone"));
    let alone_config = alone_args.resolve().unwrap();
    let alone_running = daybook::start_roles(&alone_config, Roles::Aggregate).await.unwrap();
    let mut alone = tests::connect(alone_running).await;
    // Let the trio's group settle before events flow, so that each folds its own share.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let events = small_province_day(12, 25, DAY);
    let total = events.len() as u64;
    for chunk in events.chunks(500) {
        intake.post_all(chunk.to_vec()).await;
    }
    let expected = alone.all_reports(DAY).await;
    assert_eq!(expected["province"].population, 300);
    assert!(expected.len() > 12 * 5, "every level is reported: {} units", expected.len());
    assert_eq!(alone.events_folded().await, total);

    let mut folded = 0;
    for (n, aggregator) in trio.iter_mut().enumerate() {
        let reports = aggregator.all_reports(DAY).await;
        assert_eq!(reports, expected, "aggregator {n} of three disagrees with the one alone");
        let mine = aggregator.events_folded().await;
        assert!(mine > 0, "aggregator {n} folded nothing: the group did not split the schools");
        folded += mine;
    }
    assert_eq!(folded, total, "the three folded every event once between them");

    for server in trio.into_iter().chain([intake, alone]) {
        server.running.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_counts_once_across_a_broker_restart() {
    // This test restarts the broker, so it runs its own rather than a shared one.
    let tansu = testbroker::Tansu::start("sqlite://tansu.db");
    let backend = Backend::on_broker(&tansu.addr());
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;

    let mut schools: Vec<School> = (0..8).map(|s| School::new(&format!("S{s:02}"), "Guangzhou", DAY)).collect();
    let mut acknowledged = 0u64;
    let mut tansu = Some(tansu);
    let mut outage = None;
    // Proof that intake met the outage: an UNAVAILABLE answer, or an answer held until the
    // broker was back.
    let (mut unavailable, mut longest_wait) = (0, Duration::ZERO);
    for batch in 0..40 {
        if batch == 15 {
            // The broker goes away for three seconds while intake goes on.
            let mut broker = tansu.take().unwrap();
            outage = Some(std::thread::spawn(move || {
                broker.stop();
                std::thread::sleep(Duration::from_secs(3));
                broker.restart();
                broker
            }));
        }
        let school = &mut schools[batch % 8];
        let events: Vec<pb::Event> =
            (0..50).map(|p| school.register("07:00", &teacher(&format!("B{batch:02}P{p:02}")))).collect();
        // Retry while the broker is away: nothing is acknowledged that is not durable.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let asked = std::time::Instant::now();
            let answer = server.intake.publish_batch(pb::PublishBatchRequest { events: events.clone() }).await;
            longest_wait = longest_wait.max(asked.elapsed());
            match answer {
                Ok(response) => {
                    let results = response.into_inner().results;
                    assert!(results.iter().all(|r| r.outcome != pb::Outcome::Rejected as i32));
                    acknowledged += results.iter().filter(|r| r.outcome == pb::Outcome::Accepted as i32).count() as u64;
                    break;
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                    unavailable += 1;
                    assert!(tokio::time::Instant::now() < deadline, "the broker did not come back");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let _broker = outage.unwrap().join().unwrap();
    assert!(unavailable > 0 || longest_wait >= Duration::from_secs(1), "the outage went unnoticed");
    assert_eq!(acknowledged, 40 * 50, "each event was acknowledged once");
    let province = server.report("province", DAY).await;
    assert_eq!(province.population, 2000);
    assert_eq!(server.events_folded().await, 2000, "no event folded twice");
    server.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_kafka_client_reads_the_events_as_ordinary_records() {
    let backend = Backend::kafka();
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut school = School::new("S01", "Guangzhou", DAY);
    let events = vec![
        school.register("07:00", &teacher("T1")),
        school.temperature("07:30", "T1", pb::Slot::Morning, 36.6),
        school.temperature("12:00", "T1", pb::Slot::Noon, 38.0),
    ];
    server.post_all(events.clone()).await;

    let Backend::Kafka { broker, prefix } = &backend else { unreachable!() };
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", format!("{prefix}-plain-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&format!("{prefix}.health")]).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message =
            tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.expect("records arrive").unwrap();
        assert_eq!(message.key(), Some(b"S01".as_slice()), "keyed by school");
        let headers: Vec<(String, String)> = message
            .headers()
            .unwrap()
            .iter()
            .map(|h| (h.key.to_owned(), String::from_utf8(h.value.unwrap().to_vec()).unwrap()))
            .collect();
        assert!(headers.contains(&("daybook-event-kind".into(), "health".into())), "{headers:?}");
        assert!(headers.contains(&("daybook-schema-version".into(), "1".into())), "{headers:?}");
        let event = pb::Event::decode(message.payload().unwrap()).expect("the payload is a daybook.v1.Event");
        seen.push(event);
    }
    assert_eq!(seen, events[1..]);
    server.running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_before_its_broker_waits_for_it() {
    let mut tansu = testbroker::Tansu::start("sqlite://tansu.db");
    let backend = Backend::on_broker(&tansu.addr());
    tansu.stop();
    let dir = tempfile::tempdir().unwrap();
    // The broker comes back three seconds after the server starts to start.
    let back = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(3));
        tansu.restart();
        tansu
    });
    let asked = std::time::Instant::now();
    let mut server =
        tokio::time::timeout(Duration::from_secs(120), start(dir.path(), &backend)).await.expect("it starts");
    assert!(asked.elapsed() >= Duration::from_secs(3), "it waited for the broker rather than exiting");
    let tansu = back.await.unwrap();
    let mut school = School::new("S1", "Guangzhou", DAY);
    server.post_all(vec![school.register("07:00", &teacher("T1"))]).await;
    assert_eq!(server.report("school:S1", DAY).await.population, 1);
    server.running.stop().await.unwrap();
    drop(tansu);
}

/// Over Kafka the parts run apart: a service an instance does not run answers
/// UNIMPLEMENTED naming it and what runs it, not with an empty message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_not_run_here_says_what_runs_it() {
    let backend = Backend::kafka();
    let (intake_dir, aggregate_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut intake = start_roles(intake_dir.path(), &backend, Roles::Intake).await;
    let request = pb::DailyReportRequest { unit: "province".into(), date: DAY.into() };
    let refused = intake.reports.get_daily_report(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    assert_eq!(
        refused.message(),
        "daybook.v1.Reports is not served by this instance (it runs intake); an instance with the reports \
         service (`daybook aggregate`, or `daybook serve`) serves it"
    );

    let mut aggregate = start_roles(aggregate_dir.path(), &backend, Roles::Aggregate).await;
    let event = School::new("S1", "Guangzhou", DAY).register("07:00", &teacher("T"));
    let refused = aggregate.intake.publish(event).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    assert!(refused.message().starts_with("daybook.v1.Intake is not served by this instance"), "{refused:?}");
    let channel = tonic::transport::Channel::from_shared(aggregate.target.clone()).unwrap().connect().await.unwrap();
    let mut feeds = pb::feeds_client::FeedsClient::new(channel);
    let refused = feeds.list_offices(pb::ListOfficesRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    assert!(refused.message().contains("with publish-feeds"), "{refused:?}");
    for server in [intake, aggregate] {
        server.running.stop().await.unwrap();
    }
}

/// Services chosen apart: a worker that only folds, and an instance that only answers
/// queries from the changelog's view; together they give the reports one instance does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_only_worker_and_a_query_only_instance_split_an_aggregators_work() {
    let backend = Backend::kafka();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut intake = start_roles(dirs[0].path(), &backend, Roles::Intake).await;
    let with_services = |dir: &std::path::Path, services: &str| daybook::ServeArgs {
        services: Some(services.into()),
        ..backend.args(dir)
    };
    let worker = tests::start_with(with_services(dirs[1].path(), "aggregator"), Roles::Aggregate).await;
    let mut query = tests::start_with(with_services(dirs[2].path(), "reports,console"), Roles::Aggregate).await;

    let mut school = School::new("S1", "Guangzhou", DAY);
    intake.post_all(vec![school.register("07:00", &teacher("T1")), school.register("07:00", &teacher("T2"))]).await;
    // The query instance folds nothing itself, and answers from the worker's changelog.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let request = pb::DailyReportRequest { unit: "school:S1".into(), date: DAY.into() };
        match query.reports.get_daily_report(request).await {
            Ok(report) if report.get_ref().population == 2 => break,
            answer => assert!(std::time::Instant::now() < deadline, "the query instance never saw S1: {answer:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(query.events_folded().await, 0, "a query-only instance folds nothing");
    let mut worker = worker;
    let request = pb::DailyReportRequest { unit: "school:S1".into(), date: DAY.into() };
    let refused = worker.reports.get_daily_report(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    assert!(refused.message().contains("(it runs aggregator)"), "{refused:?}");
    for server in [intake, worker, query] {
        server.running.stop().await.unwrap();
    }
}
