//! Shared by the end-to-end tests: start the real server in-process on port 0 with a
//! data directory, talk to it with real gRPC clients, and build events tersely.

pub mod http;

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use daybook::{Roles, Running, ServeArgs};
use tonic::transport::Channel;
use wire::pb;
use wire::pb::feeds_client::FeedsClient;
use wire::pb::intake_client::IntakeClient;
use wire::pb::reports_client::ReportsClient;

pub use wire::pb::{Outcome, Role, Slot, Symptom};

pub struct Server {
    pub running: Running,
    /// The province's clock, which decides when days are sealed. It starts before every
    /// scenario's days: no day is sealed unless a test moves it.
    pub clock: Option<feeds::clock::ManualClock>,
    pub intake: IntakeClient<Channel>,
    pub reports: ReportsClient<Channel>,
    pub target: String,
}

/// The event log a test runs on. Each scenario is written once and run on both.
#[derive(Clone)]
pub enum Backend {
    Embedded,
    /// A real broker, with topics and groups of this test's own.
    Kafka {
        broker: Arc<testbroker::Broker>,
        prefix: String,
    },
}

impl Backend {
    pub fn kafka() -> Self {
        Backend::Kafka { broker: Arc::new(testbroker::broker()), prefix: unique_prefix() }
    }

    /// The same backend with topics and groups of its own, for another scenario.
    pub fn fresh(&self) -> Self {
        match self {
            Backend::Embedded => Backend::Embedded,
            Backend::Kafka { broker, .. } => Backend::Kafka { broker: broker.clone(), prefix: unique_prefix() },
        }
    }

    /// Kafka on a broker the test manages itself (to restart it, say).
    pub fn on_broker(addr: &str) -> Self {
        Backend::Kafka { broker: Arc::new(testbroker::Broker::at(addr)), prefix: unique_prefix() }
    }

    /// Serve settings on `dir` with both servers on free ports.
    pub fn args(&self, dir: &Path) -> ServeArgs {
        let (log, group) = match self {
            Backend::Embedded => (None, None),
            Backend::Kafka { broker, prefix } => (
                Some(format!("kafka://{}?prefix={prefix}.&partitions=4", broker.addr)),
                Some(format!("{prefix}-aggregators")),
            ),
        };
        ServeArgs {
            data_dir: Some(dir.to_owned()),
            grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            partitions: Some(4),
            // The scenarios happen in 2020.
            horizon_days: Some(36_500),
            log,
            group,
            ..ServeArgs::default()
        }
    }
}

/// Topic prefix and group names of one test, so tests can share a broker.
fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t{}-{nanos:x}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Starts `daybook serve` on `dir`.
pub async fn start(dir: &Path, backend: &Backend) -> Server {
    start_roles(dir, backend, Roles::All).await
}

/// Starts the parts of daybook in `roles` on `dir`.
pub async fn start_roles(dir: &Path, backend: &Backend, roles: Roles) -> Server {
    start_with(backend.args(dir), roles).await
}

/// Starts the parts of daybook in `roles` with `args` (see [`Backend::args`]).
pub async fn start_with(args: ServeArgs, roles: Roles) -> Server {
    let (clock, hand) = feeds::Clock::manual("2020-01-01T00:00:00Z".parse().unwrap());
    let args = ServeArgs { clock: Some(clock), ..args };
    let config = args.resolve().unwrap();
    let running = daybook::start_roles(&config, roles).await.expect("server starts");
    let mut server = connect(running).await;
    server.clock = Some(hand);
    server
}

/// gRPC clients for a running server.
pub async fn connect(running: Running) -> Server {
    let target = format!("http://{}", running.grpc_addr);
    let intake = IntakeClient::connect(target.clone()).await.expect("intake client connects");
    let reports = ReportsClient::connect(target.clone()).await.expect("reports client connects");
    Server { running, clock: None, intake, reports, target }
}

impl Server {
    /// The unit's report once everything acknowledged so far is folded.
    pub async fn report(&mut self, unit: &str, date: &str) -> pb::DailyReport {
        self.caught_up().await;
        daybook::report::fetch(&mut self.reports, unit, date)
            .await
            .unwrap_or_else(|e| panic!("report of {unit} on {date}: {e}"))
    }

    /// Moves the province's clock to `local` (`YYYY-MM-DD HH:MM`, province time) and waits
    /// until the days it closes are sealed.
    pub async fn set_clock(&mut self, local: &str) {
        self.caught_up().await;
        let at = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").expect("YYYY-MM-DD HH:MM");
        let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let utc = at.and_local_timezone(zone).unwrap().with_timezone(&chrono::Utc);
        self.clock.as_ref().expect("a server started by the harness").set(utc);
        let sealed = domain::close::CloseRules::default().last_sealed_day(at).format("%Y-%m-%d").to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status =
                self.reports.get_daily_report(pb::DailyReportRequest { unit: "province".into(), date: sealed.clone() });
            if let Ok(r) = status.await
                && r.into_inner().status != pb::ReportStatus::Open as i32
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{sealed} not sealed 60 s after the clock passed its deadline"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every event acknowledged so far is in the reports.
    pub async fn caught_up(&mut self) {
        daybook::report::wait_until_folded(&mut self.reports, Duration::from_secs(120))
            .await
            .expect("aggregator catches up");
    }

    /// Posts events in one batch and asserts every one is accepted.
    pub async fn post_all(&mut self, events: Vec<pb::Event>) {
        if events.is_empty() {
            return;
        }
        let results = self
            .intake
            .publish_batch(pb::PublishBatchRequest { events })
            .await
            .expect("batch answered")
            .into_inner()
            .results;
        for r in &results {
            assert_eq!(r.outcome, Outcome::Accepted as i32, "event {} not accepted: {}", r.event_id, r.error);
        }
    }
}

/// A plain HTTP/1.0 GET, enough for a metrics page: the status line, headers and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    http_get_accepting(addr, path, "*/*").await
}

/// [`http_get`] with an `Accept` header.
pub async fn http_get_accepting(addr: std::net::SocketAddr, path: &str, accept: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

/// Builds events for one school on one day; times are "HH:MM" on that day at +08:00.
pub struct School {
    pub code: String,
    pub city: String,
    pub date: String,
    next_id: u32,
}

pub struct Person<'a> {
    pub id: &'a str,
    pub role: Role,
    pub department: &'a str,
    pub grade: &'a str,
    pub class: &'a str,
    pub dorm: &'a str,
}

impl School {
    pub fn new(code: &str, city: &str, date: &str) -> Self {
        Self { code: code.into(), city: city.into(), date: date.into(), next_id: 0 }
    }

    pub fn on(&mut self, date: &str) -> &mut Self {
        self.date = date.into();
        self
    }

    fn event(&mut self, time: &str, payload: pb::event::Payload) -> pb::Event {
        self.next_id += 1;
        pb::Event {
            site: String::new(),
            event_id: format!("{}-{}-{}", self.code, self.date, self.next_id),
            source: "test".into(),
            school: self.code.clone(),
            occurred_at: format!("{}T{time}:00+08:00", self.date),
            payload: Some(payload),
        }
    }

    fn health(&mut self, time: &str, person: &str, kind: pb::health_event::Kind) -> pb::Event {
        self.event(time, pb::event::Payload::Health(pb::HealthEvent { person_id: person.into(), kind: Some(kind) }))
    }

    fn movement(&mut self, time: &str, person: &str, kind: pb::movement_event::Kind) -> pb::Event {
        self.event(time, pb::event::Payload::Movement(pb::MovementEvent { person_id: person.into(), kind: Some(kind) }))
    }

    pub fn register(&mut self, time: &str, p: &Person) -> pb::Event {
        let registered = pb::Registered {
            role: p.role as i32,
            placement: Some(placement(p.department, p.grade, p.class, p.dorm)),
            city: self.city.clone(),
            on_campus: true,
        };
        self.event(
            time,
            pb::event::Payload::Roster(pb::RosterEvent {
                person_id: p.id.into(),
                change: Some(pb::roster_event::Change::Registered(registered)),
            }),
        )
    }

    /// Names `unit` (a unit key of this school) in Chinese and English.
    pub fn name(&mut self, time: &str, unit: &str, zh: &str, en: &str) -> pb::Event {
        let named = pb::UnitNamed { unit: unit.into(), name_zh: zh.into(), name_en: en.into() };
        let change = Some(pb::unit_event::Change::Named(named));
        self.event(time, pb::event::Payload::Unit(pb::UnitEvent { change }))
    }

    pub fn left(&mut self, time: &str, person: &str) -> pb::Event {
        let left = pb::roster_event::Change::Left(pb::Left {});
        self.event(time, pb::event::Payload::Roster(pb::RosterEvent { person_id: person.into(), change: Some(left) }))
    }

    pub fn move_to(
        &mut self,
        time: &str,
        person: &str,
        department: &str,
        grade: &str,
        class: &str,
        dorm: &str,
    ) -> pb::Event {
        let moved = pb::Moved { placement: Some(placement(department, grade, class, dorm)) };
        self.event(
            time,
            pb::event::Payload::Roster(pb::RosterEvent {
                person_id: person.into(),
                change: Some(pb::roster_event::Change::Moved(moved)),
            }),
        )
    }

    pub fn temperature(&mut self, time: &str, person: &str, slot: Slot, celsius: f64) -> pb::Event {
        self.health(
            time,
            person,
            pb::health_event::Kind::Temperature(pb::TemperatureTaken { slot: slot as i32, celsius }),
        )
    }

    pub fn symptoms(&mut self, time: &str, person: &str, symptoms: &[Symptom]) -> pb::Event {
        let symptoms = symptoms.iter().map(|s| *s as i32).collect();
        self.health(time, person, pb::health_event::Kind::Symptoms(pb::SymptomsReported { symptoms }))
    }

    pub fn diagnosis(&mut self, time: &str, person: &str, kind: pb::DiagnosisKind) -> pb::Event {
        self.health(time, person, pb::health_event::Kind::Diagnosis(pb::Diagnosis { kind: kind as i32 }))
    }

    pub fn sick_absence(&mut self, time: &str, person: &str) -> pb::Event {
        self.health(
            time,
            person,
            pb::health_event::Kind::SickAbsenceStarted(pb::SickAbsenceStarted { reason: "fever".into() }),
        )
    }

    pub fn isolation(&mut self, time: &str, person: &str, kind: pb::IsolationKind) -> pb::Event {
        self.isolation_with(time, person, kind, &[])
    }

    pub fn isolation_with(
        &mut self,
        time: &str,
        person: &str,
        kind: pb::IsolationKind,
        roommates: &[&str],
    ) -> pb::Event {
        let roommates = roommates.iter().map(|r| r.to_string()).collect();
        let started = pb::IsolationStarted { kind: kind as i32, place: "campus".into(), roommates };
        self.movement(time, person, pb::movement_event::Kind::IsolationStarted(started))
    }

    pub fn whereabouts(
        &mut self,
        time: &str,
        person: &str,
        province: &str,
        in_key_area: bool,
        on_campus: bool,
    ) -> pb::Event {
        let declared =
            pb::WhereaboutsDeclared { province: province.into(), city: String::new(), in_key_area, on_campus };
        self.movement(time, person, pb::movement_event::Kind::Whereabouts(declared))
    }

    pub fn returned(&mut self, time: &str, person: &str, batch: u32) -> pb::Event {
        let returned = pb::Returned { date: self.date.clone(), batch };
        self.movement(time, person, pb::movement_event::Kind::Returned(returned))
    }

    pub fn health_card(&mut self, time: &str, person: &str) -> pb::Event {
        let card = pb::HealthCardSubmitted { abnormal_last_14_days: false };
        self.health(time, person, pb::health_event::Kind::HealthCard(card))
    }

    pub fn leave(&mut self, time: &str, person: &str, until: &str) -> pb::Event {
        let leave = pb::LeaveRequested { until: until.into(), reason: "family".into() };
        self.movement(time, person, pb::movement_event::Kind::LeaveRequested(leave))
    }

    pub fn release(&mut self, time: &str, person: &str) -> pb::Event {
        self.movement(time, person, pb::movement_event::Kind::Released(pb::Released {}))
    }

    pub fn two_histories(&mut self, time: &str, person: &str, date: &str) -> pb::Event {
        self.history(time, person, pb::HistoryKind::HistoryTravel, date)
    }

    pub fn history(&mut self, time: &str, person: &str, kind: pb::HistoryKind, date: &str) -> pb::Event {
        let declared = pb::TwoHistoriesDeclared { kind: kind as i32, date: date.into() };
        self.movement(time, person, pb::movement_event::Kind::TwoHistories(declared))
    }

    pub fn gate(&mut self, time: &str, person: &str, direction: pb::Direction) -> pb::Event {
        self.movement(
            time,
            person,
            pb::movement_event::Kind::GatePassed(pb::GatePassed { direction: direction as i32 }),
        )
    }
}

fn placement(department: &str, grade: &str, class: &str, dorm: &str) -> pb::Placement {
    pb::Placement { department: department.into(), grade: grade.into(), class_name: class.into(), dorm: dorm.into() }
}

pub fn student<'a>(id: &'a str, class: &'a str, dorm: &'a str) -> Person<'a> {
    Person { id, role: Role::Student, department: "D1", grade: "2019", class, dorm }
}

pub fn teacher(id: &str) -> Person<'_> {
    Person { id, role: Role::Teacher, department: "D1", grade: "", class: "", dorm: "" }
}

/// Done / expected of one slot.
pub fn checks(report: &pb::DailyReport, slot: Slot) -> (u32, u32) {
    let c = report.checks.iter().find(|c| c.slot == slot as i32).expect("every slot is reported");
    (c.done, c.expected)
}

impl Server {
    /// Every unit's report on `date` (the province included), by unit key, once caught up.
    pub async fn all_reports(&mut self, date: &str) -> std::collections::BTreeMap<String, pb::DailyReport> {
        self.caught_up().await;
        let units =
            self.reports.list_units(pb::ListUnitsRequest::default()).await.expect("units listed").into_inner().units;
        let mut out = std::collections::BTreeMap::new();
        for unit in units.into_iter().map(|u| u.unit).chain(["province".to_owned()]) {
            let report = daybook::report::fetch(&mut self.reports, &unit, date).await.expect("report");
            out.insert(unit, report);
        }
        out
    }

    /// Events folded by this aggregator since it started.
    pub async fn events_folded(&mut self) -> u64 {
        self.reports.get_status(pb::StatusRequest {}).await.expect("status").into_inner().events_folded
    }
}

/// A small province of `schools` schools in three cities, `persons` each, with a day of
/// checks, fevers, symptoms and class moves: enough to spread over partitions.
pub fn small_province_day(schools: usize, persons: usize, date: &str) -> Vec<pb::Event> {
    let mut events = Vec::new();
    for s in 0..schools {
        let mut school = School::new(&format!("S{s:02}"), ["Guangzhou", "Foshan", "Shantou"][s % 3], date);
        for p in 0..persons {
            let id = format!("P{p:03}");
            let (class, dorm) = (format!("C{}", p % 4), format!("R{}", p / 6));
            events.push(school.register("06:00", &student(&id, &class, &dorm)));
            for (time, slot) in [("07:30", Slot::Morning), ("12:00", Slot::Noon), ("19:00", Slot::Evening)] {
                let celsius = if (p * 7 + s) % 23 == 0 && slot == Slot::Noon { 38.2 } else { 36.5 };
                events.push(school.temperature(time, &id, slot, celsius));
            }
            if (p + s) % 11 == 0 {
                events.push(school.symptoms("13:00", &id, &[Symptom::Cough]));
            }
            if (p + 2 * s) % 13 == 0 {
                events.push(school.move_to("10:00", &id, "D1", "2019", "C9", "R99"));
            }
        }
    }
    events
}

/// Runs each scenario `async fn NAME(backend: Backend)` of a test file as two tests,
/// `embedded::NAME` and `kafka::NAME`: every scenario is written once and run on both logs.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Embedded).await; })*
        }
        mod kafka {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::kafka()).await; })*
        }
    };
}

/// Items of `office` after `after`, until the feed has been quiet for `quiet`.
pub async fn read_feed(
    client: &mut FeedsClient<Channel>,
    office: &str,
    after: u64,
    quiet: Duration,
) -> Vec<pb::FeedItem> {
    let request = pb::SubscribeRequest { office: office.into(), after };
    let mut stream = client.subscribe(request).await.expect("subscribed").into_inner();
    let mut out = Vec::new();
    while let Ok(item) = tokio::time::timeout(quiet, stream.message()).await {
        match item.expect("feed item") {
            Some(item) => out.push(item),
            None => break,
        }
    }
    out
}

/// Reads until an item matching `want` arrives (or 60 s pass).
pub async fn read_until(
    client: &mut FeedsClient<Channel>,
    office: &str,
    after: u64,
    want: impl Fn(&pb::FeedItem) -> bool,
) -> Vec<pb::FeedItem> {
    let request = pb::SubscribeRequest { office: office.into(), after };
    let mut stream = client.subscribe(request).await.expect("subscribed").into_inner();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let item = tokio::time::timeout(left, stream.message()).await;
        let item = item.unwrap_or_else(|_| panic!("{office}: no matching item in 60 s; got {out:#?}"));
        let item = item.expect("feed item").expect("stream open");
        let done = want(&item);
        out.push(item);
        if done {
            return out;
        }
    }
}

/// The alert a feed item carries, if it is one.
pub fn alert_of(item: &pb::FeedItem) -> Option<&pb::Alert> {
    match &item.item {
        Some(pb::feed_item::Item::Alert(a)) => Some(a),
        _ => None,
    }
}

/// A hall's events, posted with the hall as the envelope's `site`.
pub struct Hall {
    pub code: &'static str,
    next: u32,
}

impl Hall {
    fn event(&mut self, at: &str, kind: pb::inspection_event::Kind) -> pb::Event {
        self.next += 1;
        pb::Event {
            event_id: format!("{}-{}", self.code, self.next),
            source: "inspectors".into(),
            site: self.code.into(),
            school: String::new(),
            occurred_at: format!("{at}:00+08:00").replace(' ', "T"),
            payload: Some(pb::event::Payload::Inspection(pb::InspectionEvent { kind: Some(kind) })),
        }
    }

    pub fn register(&mut self, at: &str, city: &str, kind: pb::HallKind) -> pb::Event {
        let registered = pb::HallRegistered {
            name_zh: format!("{}大厅", self.code),
            name_en: format!("Hall {}", self.code),
            city: city.into(),
            kind: kind as i32,
        };
        self.event(at, pb::inspection_event::Kind::HallRegistered(registered))
    }

    /// An inspection passing every item but `failed` (item number 1..=9, deadline).
    pub fn inspect(&mut self, at: &str, id: &str, city: &str, failed: &[(i32, &str)]) -> pb::Event {
        let items = (1..=9)
            .map(|item| match failed.iter().find(|(f, _)| *f == item) {
                Some((_, deadline)) => pb::ChecklistResult {
                    item,
                    passed: false,
                    finding: format!("item {item} not in place"),
                    deadline: (*deadline).into(),
                },
                None => pb::ChecklistResult { item, passed: true, ..Default::default() },
            })
            .collect();
        let inspected = pb::Inspected { inspection_id: id.into(), city: city.into(), items };
        self.event(at, pb::inspection_event::Kind::Inspected(inspected))
    }

    pub fn rectify(&mut self, at: &str, id: &str, item: i32) -> pb::Event {
        let rectified = pb::Rectified { inspection_id: id.into(), item };
        self.event(at, pb::inspection_event::Kind::Rectified(rectified))
    }
}

/// A hall whose events are numbered from 1.
pub fn hall(code: &'static str) -> Hall {
    Hall { code, next: 0 }
}
