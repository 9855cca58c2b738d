//! What the offices receive, end to end on both logs: the day's seal, resuming a feed from
//! its cursor, offices kept to their own cities, alerts at once, and a late event after
//! the close as version 2 on every channel (gRPC feed, Kafka topic, exported file).

use std::time::Duration;

use calamine::{DataType, Reader};
use tests::{Backend, School, Server, Slot, alert_of, on_every_backend, read_feed, read_until, start, student};
use tonic::transport::Channel;
use wire::pb;
use wire::pb::feeds_client::FeedsClient;

const DAY: &str = "2020-03-01";

on_every_backend!(
    a_subscriber_resumes_from_its_cursor_with_no_gap_and_no_duplicate,
    a_city_office_receives_only_its_own_city_and_alerts_come_at_once,
    a_late_event_after_the_close_is_version_2_on_every_channel,
    the_observation_list_is_a_file_with_both_languages,
);

/// Two schools in Foshan (S1 with checks, S2 without), one in Zhuhai.
fn schools() -> [School; 3] {
    [School::new("S1", "Foshan", DAY), School::new("S2", "Foshan", DAY), School::new("S3", "Zhuhai", DAY)]
}

fn roster_day([s1, s2, s3]: &mut [School; 3]) -> Vec<pb::Event> {
    vec![
        s1.register("07:00", &student("A", "C01", "B1")),
        s1.register("07:00", &student("B", "C02", "B1")),
        s1.temperature("07:30", "A", Slot::Morning, 36.5),
        s1.temperature("07:30", "B", Slot::Morning, 36.6),
        s2.register("07:00", &student("C", "C01", "")),
        s3.register("07:00", &student("D", "C01", "")),
        s3.temperature("07:30", "D", Slot::Morning, 36.4),
    ]
}

async fn feeds(server: &Server) -> FeedsClient<Channel> {
    FeedsClient::connect(server.target.clone()).await.expect("feeds client connects")
}

fn report_of(item: &pb::FeedItem) -> Option<&pb::DailyReport> {
    match &item.item {
        Some(pb::feed_item::Item::Report(r)) => Some(r),
        _ => None,
    }
}

fn is_report(unit: &str, version: u32) -> impl Fn(&pb::FeedItem) -> bool {
    move |item| report_of(item).is_some_and(|r| r.unit == unit && r.version == version)
}

async fn a_subscriber_resumes_from_its_cursor_with_no_gap_and_no_duplicate(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut schools = schools();
    server.post_all(roster_day(&mut schools)).await;
    server.set_clock("2020-03-02 09:00").await;
    let mut client = feeds(&server).await;

    // The seal: every unit of the roster gets version 1, the province last.
    let first = read_until(&mut client, "province", 0, is_report("province", 1)).await;
    let cursors: Vec<u64> = first.iter().map(|i| i.cursor).collect();
    assert_eq!(cursors, (1..=first.len() as u64).collect::<Vec<_>>(), "cursors count up from 1");
    let s2 = first.iter().filter_map(report_of).find(|r| r.unit == "school:S2").expect("S2 sealed");
    assert_eq!(s2.status, pb::ReportStatus::Missing as i32, "no checks: missing");
    assert!(!s2.zero_report, "a missing report is never a zero report");
    let s1 = first.iter().filter_map(report_of).find(|r| r.unit == "school:S1").expect("S1 sealed");
    assert_eq!((s1.status, s1.zero_report, s1.version), (pb::ReportStatus::OnTime as i32, true, 1));

    // Disconnected after the third item, the office misses a revision and an alert.
    let cursor = first[2].cursor;
    let late_check = schools[1].temperature("07:40", "C", Slot::Morning, 36.5);
    let fever_today = schools[0].on("2020-03-02").temperature("07:30", "A", Slot::Morning, 38.1);
    server.post_all(vec![late_check, fever_today]).await;
    let resumed = read_until(&mut client, "province", cursor, is_report("school:S2", 2)).await;
    let resumed_alert = read_until(&mut client, "province", cursor, |i| alert_of(i).is_some()).await;
    assert!(!resumed_alert.is_empty());
    let everything = read_feed(&mut client, "province", 0, Duration::from_secs(2)).await;
    let mut pieced: Vec<pb::FeedItem> = first[..3].to_vec();
    pieced.extend(read_feed(&mut client, "province", cursor, Duration::from_secs(2)).await);
    assert_eq!(pieced, everything, "resumed from the cursor: nothing missed, nothing twice");
    assert_eq!(resumed[0].cursor, cursor + 1);
    let s2_v2 = everything.iter().filter_map(report_of).find(|r| r.unit == "school:S2" && r.version == 2).unwrap();
    assert_eq!((s2_v2.status, s2_v2.revised), (pb::ReportStatus::Late as i32, true), "sent after the deadline: late");
    server.running.stop().await.unwrap();
}

async fn a_city_office_receives_only_its_own_city_and_alerts_come_at_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut schools = schools();
    server.post_all(roster_day(&mut schools)).await;
    server.caught_up().await;
    let mut client = feeds(&server).await;
    let offices: Vec<String> = client
        .list_offices(pb::ListOfficesRequest {})
        .await
        .unwrap()
        .into_inner()
        .offices
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(offices, ["province", "cdc-Foshan", "cdc-Zhuhai"]);
    let unknown = client.subscribe(pb::SubscribeRequest { office: "cdc-Nowhere".into(), after: 0 }).await;
    assert!(unknown.unwrap_err().message().starts_with("office:"));

    // An alert before any close: a fever in Zhuhai.
    let fever = schools[2].temperature("12:00", "D", Slot::Noon, 38.6);
    server.post_all(vec![fever]).await;
    let got = read_until(&mut client, "cdc-Zhuhai", 0, |i| alert_of(i).is_some()).await;
    let alert = alert_of(got.last().unwrap()).unwrap();
    assert_eq!((alert.kind, alert.school.as_str(), alert.celsius), (pb::AlertKind::Fever as i32, "S3", 38.6));
    read_until(&mut client, "province", 0, |i| alert_of(i).is_some_and(|a| a.school == "S3")).await;
    // A release for someone under no observation is refused, and the office hears why.
    let release = schools[2].release("12:30", "D");
    server.post_all(vec![release]).await;
    let refused = pb::AlertKind::ReleaseRefused as i32;
    let got = read_until(&mut client, "cdc-Zhuhai", 0, |i| alert_of(i).is_some_and(|a| a.kind == refused)).await;
    let alert = alert_of(got.last().unwrap()).unwrap();
    assert_eq!((alert.person_id.as_str(), alert.reason.as_str()), ("D", "release refused: not under observation"));

    server.set_clock("2020-03-02 09:00").await;
    read_until(&mut client, "province", 0, is_report("province", 1)).await;
    let foshan = read_until(&mut client, "cdc-Foshan", 0, is_report("city:Foshan", 1)).await;
    let foshan = [foshan, read_feed(&mut client, "cdc-Foshan", 0, Duration::from_secs(2)).await].concat();
    for item in &foshan {
        match &item.item {
            Some(pb::feed_item::Item::Report(r)) => {
                let school = r.unit.split(':').nth(1).unwrap_or_default().split('/').next().unwrap_or_default();
                assert!(r.unit == "city:Foshan" || ["S1", "S2"].contains(&school), "Foshan's office got {}", r.unit);
            }
            Some(pb::feed_item::Item::Alert(a)) => assert_eq!(a.city, "Foshan", "Foshan's office got {a:?}"),
            Some(pb::feed_item::Item::InspectionReport(r)) => panic!("Foshan has no hall; its office got {r:?}"),
            None => panic!("empty item"),
        }
    }
    assert!(foshan.iter().filter_map(report_of).any(|r| r.unit == "class:S1/D1/2019/C02"), "every level");
    let city = foshan.iter().filter_map(report_of).find(|r| r.unit == "city:Foshan").unwrap();
    let rate = city.reporting.as_ref().unwrap();
    assert_eq!((rate.expected, rate.actual, rate.on_time), (2, 1, 1));
    assert_eq!(rate.missing, ["school:S2"]);
    server.running.stop().await.unwrap();
}

async fn a_late_event_after_the_close_is_version_2_on_every_channel(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut schools = schools();
    server.post_all(roster_day(&mut schools)).await;
    server.set_clock("2020-03-02 09:00").await;
    let mut client = feeds(&server).await;
    read_until(&mut client, "cdc-Foshan", 0, is_report("school:S1", 1)).await;

    // The seal as /metrics tells it: S1 and S3 checked everyone by the deadline, S2 no
    // one; Foshan (S1, S2) and the province are incomplete, Zhuhai (S3) on time. Foshan's
    // office got its 11 reports: S1's school, department, grade, two classes and dorm, S2's
    // school, department, grade and class, and the city.
    let metrics = tests::http_get(server.running.http_addr, "/metrics").await;
    for sample in [
        r#"daybook_sealed_reports{level="school",status="on_time"} 2"#,
        r#"daybook_sealed_reports{level="school",status="missing"} 1"#,
        r#"daybook_sealed_reports{level="city",status="incomplete"} 1"#,
        r#"daybook_sealed_reports{level="city",status="on_time"} 1"#,
        r#"daybook_sealed_reports{level="province",status="incomplete"} 1"#,
        "daybook_last_sealed_day_timestamp_seconds 1583020800",
        r#"daybook_feed_items_total{office="cdc-Foshan",kind="report"} 11"#,
    ] {
        assert!(metrics.contains(&format!("{sample}\n")), "{sample} not in {metrics}");
    }
    let open = client.subscribe(pb::SubscribeRequest { office: "cdc-Zhuhai".into(), after: 0 }).await.unwrap();
    let subscribers = r#"daybook_feed_subscribers{office="cdc-Zhuhai"}"#;
    let count = |metrics: &str| metrics.lines().find(|l| l.starts_with(subscribers)).map(str::to_owned);
    let metrics = tests::http_get(server.running.http_addr, "/metrics").await;
    assert_eq!(count(&metrics), Some(format!("{subscribers} 1")), "one stream open");
    drop(open);

    // Yesterday's evening reading arrives late, with a fever.
    let late = schools[0].temperature("19:00", "B", Slot::Evening, 38.3);
    server.post_all(vec![late]).await;
    let fed = read_until(&mut client, "cdc-Foshan", 0, is_report("school:S1", 2)).await;
    let v2 = report_of(fed.last().unwrap()).unwrap().clone();
    assert_eq!((v2.fever, v2.revised, v2.date.as_str()), (1, true, DAY));
    let changed: Vec<&str> = v2.changes.iter().map(|c| c.field.as_str()).collect();
    assert!(changed.contains(&"fever") && changed.contains(&"checks.evening.done"), "{changed:?}");
    let live = server.report("school:S1", DAY).await;
    assert_eq!((live.version, live.fever), (2, 1), "the query says what the feed said");

    // The file: the same numbers and the version, read back with a real XLSX reader.
    let foshan_schools = |format: pb::ExportFormat| pb::ExportRequest {
        kind: pb::ExportKind::DailyReports as i32,
        format: format as i32,
        unit: "city:Foshan".into(),
        level: pb::Level::School as i32,
        date: DAY.into(),
    };
    let file = client.export(foshan_schools(pb::ExportFormat::Xlsx)).await.expect("exported").into_inner();
    assert!(file.file_name.ends_with(".xlsx"), "{}", file.file_name);
    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(file.content)).unwrap();
    let sheet = book.worksheet_range("日报告 Daily reports").expect("the data table beside the form");
    let rows: Vec<_> = sheet.rows().collect();
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    let column = |en: &str| {
        header.iter().position(|h| h.ends_with(&format!("/ {en}"))).unwrap_or_else(|| panic!("no {en} in {header:?}"))
    };
    let s1_row = rows.iter().find(|r| r[0].get_string() == Some("school:S1")).expect("S1 in the file");
    assert_eq!(s1_row[column("Fever")].as_f64(), Some(f64::from(live.fever)));
    assert_eq!(s1_row[column("Population")].as_f64(), Some(f64::from(live.population)));
    assert_eq!(s1_row[column("Version (0 = not sealed)")].as_f64(), Some(2.0));
    assert_eq!(rows.len(), 3, "a header and the two schools of Foshan");

    // The same day for DHIS2: S1's fever in a data value set of Foshan's two schools,
    // complete (both sealed) as of the export's day.
    let file =
        client.export(foshan_schools(pb::ExportFormat::Dhis2Json)).await.expect("exported for DHIS2").into_inner();
    assert_eq!((file.content_type.as_str(), file.file_name.ends_with(".dhis2.json")), ("application/json", true));
    let set: serde_json::Value = serde_json::from_slice(&file.content).unwrap();
    assert_eq!((set["dataSet"].as_str(), set["period"].as_str()), (Some("DAYBOOK_DAILY"), Some("20200301")));
    assert_eq!(set["completeDate"].as_str(), Some("2020-03-02"));
    let value = |element: &str, unit: &str| {
        let values = set["dataValues"].as_array().unwrap();
        let found = values.iter().find(|v| v["dataElement"] == element && v["orgUnit"] == unit);
        found.map(|v| v["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(value("DAYBOOK_FEVER", "S1"), Some("1".to_owned()));
    assert_eq!(value("DAYBOOK_POPULATION", "S1"), Some(live.population.to_string()));
    assert!(value("DAYBOOK_FEVER", "S2").is_some() && value("DAYBOOK_FEVER", "S3").is_none(), "Foshan's schools");
    let refused = client
        .export(pb::ExportRequest {
            kind: pb::ExportKind::ObservationList as i32,
            format: pb::ExportFormat::Dhis2Json as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(refused.message().starts_with("format:"), "{}", refused.message());

    // Kafka: the office's topic, read with a plain client, holds version 2 under S1's key.
    if let Backend::Kafka { broker, prefix } = &backend {
        let v2_on_kafka = read_topic_until(&broker.addr, &format!("{prefix}.feed.cdc-Foshan"), |key, item| {
            key == format!("school:S1@{DAY}") && report_of(item).is_some_and(|r| r.version == 2)
        })
        .await;
        assert_eq!(report_of(&v2_on_kafka).unwrap(), &v2);
    }
    server.running.stop().await.unwrap();
}

/// Reads `topic` from the start with a plain rdkafka consumer until `want` matches.
async fn read_topic_until(
    brokers: &str,
    topic: &str,
    want: impl Fn(&str, &pb::FeedItem) -> bool + Send + 'static,
) -> pb::FeedItem {
    use prost::Message as _;
    let decoded = read_raw_topic_until(brokers, topic, move |key, value, _| {
        want(key, &pb::FeedItem::decode(value).expect("a FeedItem"))
    })
    .await;
    pb::FeedItem::decode(decoded.as_slice()).unwrap()
}

/// An office's feed on its topic as JSON values (`feed-topic-format = "json"`), read by a
/// consumer that knows no protobuf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offices_topic_can_carry_json_values() {
    let backend = Backend::kafka();
    let dir = tempfile::tempdir().unwrap();
    let args = daybook::ServeArgs { feed_topic_format: Some("json".into()), ..backend.args(dir.path()) };
    let mut server = tests::start_with(args, daybook::Roles::All).await;
    let mut schools = schools();
    server.post_all(roster_day(&mut schools)).await;
    server.set_clock("2020-03-02 09:00").await;
    let Backend::Kafka { broker, prefix } = &backend else { unreachable!() };
    let topic = format!("{prefix}.feed.cdc-Foshan");
    let value = read_raw_topic_until(&broker.addr, &topic, |key, _, format| {
        key == format!("school:S1@{DAY}") && format == "json"
    })
    .await;
    let item: serde_json::Value = serde_json::from_slice(&value).expect("a JSON value");
    // S1 checked both its students by the deadline: sent on time, version 1.
    let report = &item["report"];
    assert_eq!((report["unit"].as_str(), report["date"].as_str()), (Some("school:S1"), Some(DAY)));
    assert_eq!((report["version"].as_u64(), report["status"].as_str()), (Some(1), Some("REPORT_STATUS_ON_TIME")));
    assert_eq!((report["population"].as_u64(), item["office"].as_str()), (Some(2), Some("cdc-Foshan")));
    server.running.stop().await.unwrap();
}

/// Reads `topic` from the start with a plain rdkafka consumer until `want` (key, value,
/// the `daybook-value-format` header) matches; the value.
async fn read_raw_topic_until(
    brokers: &str,
    topic: &str,
    want: impl Fn(&str, &[u8], &str) -> bool + Send + 'static,
) -> Vec<u8> {
    use rdkafka::Message as _;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers as _;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-plain-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    assignment.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    tokio::task::spawn_blocking(move || {
        loop {
            assert!(std::time::Instant::now() < deadline, "nothing matching on {} in 60 s", "the topic");
            let Some(polled) = consumer.poll(Duration::from_millis(500)) else { continue };
            let Ok(message) = polled else { continue };
            let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
            let format = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "daybook-value-format").and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let value = message.payload().unwrap_or_default();
            if want(&key, value, &format) {
                return value.to_vec();
            }
        }
    })
    .await
    .unwrap()
}

async fn the_observation_list_is_a_file_with_both_languages(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &backend).await;
    let mut schools = schools();
    let mut events = roster_day(&mut schools);
    events.push(schools[0].isolation("09:00", "A", pb::IsolationKind::IsolationCentralized));
    events.push(schools[2].isolation("09:00", "D", pb::IsolationKind::IsolationHome));
    server.post_all(events).await;
    server.caught_up().await;

    // Through the same call as `daybook export --what observation --format csv`.
    let file = daybook::files::fetch(
        daybook::client::connect(&server.target, None, &Default::default()).await.unwrap(),
        "observation",
        "city:Foshan",
        "school",
        DAY,
        "csv",
    )
    .await
    .unwrap();
    assert!(file.file_name.ends_with(".csv"), "{}", file.file_name);
    let text = String::from_utf8(file.content).unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    let header = lines.next().unwrap();
    assert!(header.contains("医学观察") || header.contains("观察"), "Chinese headers: {header}");
    assert!(header.contains("Expected end") || header.contains("expected end"), "English headers: {header}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "only Foshan's person under observation: {rows:?}");
    assert!(rows[0].contains("class:S1/D1/2019/C01") && rows[0].contains(",A,"), "{}", rows[0]);
    assert!(rows[0].contains("2020-03-15"), "14 days from the start: {}", rows[0]);
    server.running.stop().await.unwrap();
}
