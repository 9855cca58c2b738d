//! A full disk under the embedded log (a fault-injecting file layer: no tmpfs here): intake
//! refuses with UNAVAILABLE and health says Intake NOT_SERVING while the log cannot write;
//! once space returns the next post is accepted without a restart; a server started on a
//! full disk serves reports. Real server, real gRPC and health clients.

use std::time::Duration;

use daybook::{Running, ServeArgs};
use eventlog::DiskFaults;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wire::pb;
use wire::pb::intake_client::IntakeClient;
use wire::pb::reports_client::ReportsClient;

const INTAKE: &str = "daybook.v1.Intake";
const REPORTS: &str = "daybook.v1.Reports";

struct Clients {
    intake: IntakeClient<Channel>,
    reports: ReportsClient<Channel>,
    health: HealthClient<Channel>,
}

async fn serve(dir: &std::path::Path, disk: &DiskFaults) -> (Running, Clients) {
    let args = ServeArgs {
        data_dir: Some(dir.to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        partitions: Some(4),
        log_disk: Some(disk.clone()),
        ..ServeArgs::default()
    };
    let running = daybook::start(&args.resolve().unwrap()).await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr)).unwrap().connect().await.unwrap();
    let clients = Clients {
        intake: IntakeClient::new(channel.clone()),
        reports: ReportsClient::new(channel.clone()),
        health: HealthClient::new(channel),
    };
    (running, clients)
}

fn today() -> String {
    chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).format("%Y-%m-%d").to_string()
}

/// Registers student `n` of school S001: each acknowledged one adds one to its population.
fn registration(n: u32) -> pb::Event {
    let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let registered = pb::Registered {
        role: pb::Role::Student as i32,
        placement: Some(pb::Placement {
            department: "D1".into(),
            grade: "2019".into(),
            class_name: "C1".into(),
            dorm: "B1-101".into(),
        }),
        city: "Foshan".into(),
        on_campus: true,
    };
    pb::Event {
        site: String::new(),
        event_id: format!("register-{n}"),
        source: "test".into(),
        school: "S001".into(),
        occurred_at: now.to_rfc3339(),
        payload: Some(pb::event::Payload::Roster(pb::RosterEvent {
            person_id: format!("P{n}"),
            change: Some(pb::roster_event::Change::Registered(registered)),
        })),
    }
}

async fn post(clients: &mut Clients, n: u32) -> Result<pb::Outcome, tonic::Status> {
    let result = clients.intake.publish(registration(n)).await?.into_inner();
    Ok(pb::Outcome::try_from(result.outcome).unwrap())
}

async fn status(clients: &mut Clients, service: &str) -> ServingStatus {
    let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
    clients.health.check(request).await.unwrap().into_inner().status()
}

/// Waits (at most 10 s) for `service` to say `wanted`.
async fn until_status(clients: &mut Clients, service: &str, wanted: ServingStatus) {
    for _ in 0..200 {
        if status(clients, service).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service} never said {wanted:?}");
}

/// The school's population once every acknowledged event is folded, and the events folded.
async fn folded(clients: &mut Clients) -> (u32, u64) {
    let status = daybook::report::wait_until_folded(&mut clients.reports, Duration::from_secs(60)).await.unwrap();
    let report = daybook::report::fetch(&mut clients.reports, "school:S001", &today()).await.unwrap();
    (report.population, status.events_folded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_refuses_while_the_disk_is_full_and_accepts_again_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskFaults::default();
    let (running, mut clients) = serve(dir.path(), &disk).await;
    for n in 1..=5 {
        assert_eq!(post(&mut clients, n).await.unwrap(), pb::Outcome::Accepted);
    }
    assert_eq!(status(&mut clients, INTAKE).await, ServingStatus::Serving);

    disk.set_full(true);
    for n in 6..=8 {
        let err = post(&mut clients, n).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
        assert!(err.message().contains("no space left"), "{err}");
    }
    until_status(&mut clients, INTAKE, ServingStatus::NotServing).await;
    assert_eq!(status(&mut clients, REPORTS).await, ServingStatus::Serving, "reports go on");
    assert_eq!(folded(&mut clients).await, (5, 5), "the refused events were not folded");

    // The next post after space returns is accepted: the log recovers on its own.
    disk.set_full(false);
    for n in 6..=9 {
        assert_eq!(post(&mut clients, n).await.unwrap(), pb::Outcome::Accepted);
    }
    until_status(&mut clients, INTAKE, ServingStatus::Serving).await;
    assert_eq!(post(&mut clients, 3).await.unwrap(), pb::Outcome::Duplicate);
    // Nine acknowledged, each folded once: nothing refused slipped in, nothing twice.
    assert_eq!(folded(&mut clients).await, (9, 9));
    running.stop().await.unwrap();

    // And the log on disk holds exactly those.
    let (running, mut clients) = serve(dir.path(), &DiskFaults::default()).await;
    assert_eq!(folded(&mut clients).await.0, 9);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_on_a_full_disk_serves_reports_and_takes_events_once_it_can() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (running, mut clients) = serve(dir.path(), &DiskFaults::default()).await;
        for n in 1..=4 {
            assert_eq!(post(&mut clients, n).await.unwrap(), pb::Outcome::Accepted);
        }
        assert_eq!(folded(&mut clients).await.0, 4);
        running.stop().await.unwrap();
    }

    let disk = DiskFaults::default();
    disk.set_full(true);
    let (running, mut clients) = serve(dir.path(), &disk).await;
    assert_eq!(status(&mut clients, INTAKE).await, ServingStatus::NotServing, "says why from the start");
    assert_eq!(status(&mut clients, REPORTS).await, ServingStatus::Serving);
    assert_eq!(status(&mut clients, "").await, ServingStatus::Serving, "the server itself is up");
    let report = daybook::report::fetch(&mut clients.reports, "school:S001", &today()).await.unwrap();
    assert_eq!(report.population, 4, "read-only, but the reports are there");
    assert_eq!(post(&mut clients, 5).await.unwrap_err().code(), tonic::Code::Unavailable);

    // With no client posting, health comes back by itself once the log can write.
    disk.set_full(false);
    until_status(&mut clients, INTAKE, ServingStatus::Serving).await;
    assert_eq!(post(&mut clients, 5).await.unwrap(), pb::Outcome::Accepted);
    assert_eq!(folded(&mut clients).await.0, 5);
    running.stop().await.unwrap();
}
