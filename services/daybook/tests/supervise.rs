//! Supervision: a failure injected into a part of `daybook serve` (on the embedded log, and
//! over Kafka for the parts only Kafka runs: the view and feed forwarding)
//! marks that part's gRPC service and the whole server NOT_SERVING, as a real health client
//! watching sees, and stops the server with the part's error; the binary exits non-zero.

use std::time::Duration;

use daybook::{Failure, Fault, Part, Running, ServeArgs};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use wire::pb;

const INTAKE: &str = "daybook.v1.Intake";
const REPORTS: &str = "daybook.v1.Reports";
const FEEDS: &str = "daybook.v1.Feeds";
const SERVER: &str = "";

/// `daybook serve` on the embedded log, or on `broker` with topics of its own.
async fn serve(dir: &std::path::Path, fault: Option<Fault>, broker: Option<&testbroker::Broker>) -> Running {
    let prefix = format!("sup{}-{}", std::process::id(), dir.file_name().unwrap().to_string_lossy());
    let args = ServeArgs {
        data_dir: Some(dir.to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        partitions: Some(4),
        log: broker.map(|b| format!("kafka://{}?prefix={prefix}.&partitions=2", b.addr)),
        group: broker.map(|_| format!("{prefix}-aggregators")),
        fault,
        ..ServeArgs::default()
    };
    daybook::start(&args.resolve().unwrap()).await.unwrap()
}

/// A health `Watch` of `service`, its first answer read (SERVING, or the test fails).
async fn watch(health: &mut HealthClient<Channel>, service: &str) -> tonic::Streaming<HealthCheckResponse> {
    let request = HealthCheckRequest { service: service.to_owned() };
    let mut stream = health.watch(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().expect("a first status");
    assert_eq!(first.status(), ServingStatus::Serving, "{service:?} before the fault");
    stream
}

/// Every status the stream gives until it ends (the server going down ends it).
async fn rest(mut stream: tonic::Streaming<HealthCheckResponse>) -> Vec<ServingStatus> {
    let mut seen = Vec::new();
    let read = async {
        while let Ok(Some(answer)) = stream.message().await {
            seen.push(answer.status());
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("the watch ends when the server stops");
    seen
}

pub fn fever(id: &str) -> pb::Event {
    let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    pb::Event {
        site: String::new(),
        event_id: id.into(),
        source: "test".into(),
        school: "S001".into(),
        occurred_at: now.to_rfc3339(),
        payload: Some(pb::event::Payload::Health(pb::HealthEvent {
            person_id: "P1".into(),
            kind: Some(pb::health_event::Kind::Temperature(pb::TemperatureTaken {
                slot: pb::Slot::Noon as i32,
                celsius: 38.5,
            })),
        })),
    }
}

/// Fires a fault in `part` of a serving server; `affected` must go NOT_SERVING with the
/// server (`""`), `unaffected` must not, and the server must stop with the part's error.
async fn a_fault_is_reported_and_stops_the_server(part: Part, failure: Failure, affected: &str, unaffected: &str) {
    a_fault_on_a_log_is_reported_and_stops_the_server(part, failure, affected, unaffected, None).await
}

async fn a_fault_on_a_log_is_reported_and_stops_the_server(
    part: Part,
    failure: Failure,
    affected: &str,
    unaffected: &str,
    broker: Option<&testbroker::Broker>,
) {
    let dir = tempfile::tempdir().unwrap();
    let fault = Fault::new(part, failure);
    let running = serve(dir.path(), Some(fault.clone()), broker).await;
    let target = format!("http://{}", running.grpc_addr);
    let channel = Channel::from_shared(target.clone()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let watches = [watch(&mut health, affected).await, watch(&mut health, SERVER).await];
    let bystander = watch(&mut health, unaffected).await;

    fault.fire();
    if part == Part::Intake {
        // Intake's handlers fail at its next request, which is answered, not dropped.
        let mut intake = pb::intake_client::IntakeClient::connect(target).await.unwrap();
        let err = intake.publish(fever("e1")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal, "{err}");
        assert!(err.message().contains("intake"), "{err}");
    }
    for (stream, service) in watches.into_iter().zip([affected, SERVER]) {
        let seen = rest(stream).await;
        assert_eq!(seen.last(), Some(&ServingStatus::NotServing), "{service:?} after the fault: {seen:?}");
    }
    let seen = rest(bystander).await;
    assert!(!seen.contains(&ServingStatus::NotServing), "{unaffected:?} did not fail: {seen:?}");

    let stopped = tokio::time::timeout(Duration::from_secs(30), running.run_until(std::future::pending()))
        .await
        .expect("the server stops by itself");
    let err = stopped.expect_err("the server stops with the part's error");
    let expected = match failure {
        Failure::Panic => format!("{part} panicked: injected fault"),
        Failure::Error => format!("injected fault: {part} fails"),
    };
    assert!(format!("{err:#}").contains(&expected), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_publisher_marks_feeds_not_serving_and_stops_the_server() {
    a_fault_is_reported_and_stops_the_server(Part::Publisher, Failure::Panic, FEEDS, REPORTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_publisher_marks_feeds_not_serving_and_stops_the_server() {
    a_fault_is_reported_and_stops_the_server(Part::Publisher, Failure::Error, FEEDS, INTAKE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_aggregator_marks_reports_not_serving_and_stops_the_server() {
    a_fault_is_reported_and_stops_the_server(Part::Aggregator, Failure::Panic, REPORTS, INTAKE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_aggregator_marks_reports_not_serving_and_stops_the_server() {
    a_fault_is_reported_and_stops_the_server(Part::Aggregator, Failure::Error, REPORTS, FEEDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_intake_handler_marks_intake_not_serving_and_stops_the_server() {
    a_fault_is_reported_and_stops_the_server(Part::Intake, Failure::Panic, INTAKE, REPORTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_metrics_server_marks_the_server_not_serving_and_stops_it() {
    // The HTTP server serves no gRPC service of its own: the server as a whole goes.
    a_fault_is_reported_and_stops_the_server(Part::Http, Failure::Error, SERVER, REPORTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_grpc_server_marks_the_server_not_serving_and_stops_it() {
    a_fault_is_reported_and_stops_the_server(Part::Grpc, Failure::Panic, SERVER, FEEDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_a_panicking_view_marks_reports_not_serving_and_stops_the_server() {
    let broker = testbroker::broker();
    a_fault_on_a_log_is_reported_and_stops_the_server(Part::View, Failure::Panic, REPORTS, INTAKE, Some(&broker)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_failing_feed_forwarding_marks_feeds_not_serving_and_stops_the_server() {
    let broker = testbroker::broker();
    a_fault_on_a_log_is_reported_and_stops_the_server(Part::Forwarding, Failure::Error, FEEDS, INTAKE, Some(&broker))
        .await;
}

#[test]
fn the_binary_exits_non_zero_when_a_part_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_daybook"))
        .arg("serve")
        .env("DAYBOOK_DATA_DIR", dir.path().join("data"))
        .env("DAYBOOK_GRPC_ADDR", "127.0.0.1:0")
        .env("DAYBOOK_HTTP_ADDR", "127.0.0.1:0")
        .env("DAYBOOK_FAULT", "publisher:panic")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("daybook serve kept running with a panicked publisher");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("publisher panicked: injected fault"), "{stderr}");
}
