//! Access control, each rule both ways, on a server that checks access (`auth =
//! required`) with tokens issued on its data directory before it starts, as an operator
//! would: posting for one's own school, reading one's own units, person-level data behind
//! its own right, revocation, the HTTP port and rate limits.

use std::path::Path;
use std::time::Duration;

use daybook::ServeArgs;
use daybook::client::Credentials;
use tests::{Backend, School, Slot, student};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use wire::pb;
use wire::pb::admin_client::AdminClient;
use wire::pb::feeds_client::FeedsClient;
use wire::pb::intake_client::IntakeClient;
use wire::pb::reports_client::ReportsClient;

const DAY: &str = "2020-03-02";

type Authed = InterceptedService<Channel, Credentials>;

/// The tokens of the tests, issued offline on the data directory.
struct Tokens {
    /// Posts for every school, reads the province, persons, admin.
    ops: String,
    /// Posts for S1 only.
    s1: String,
    /// Posts for S3 only.
    s3: String,
    /// Guangzhou's disease-control office: reads city:Guangzhou, with persons.
    guangzhou: String,
    /// Reads city:Guangzhou, counts only.
    counts: String,
}

fn issue(dir: &Path) -> Tokens {
    let store = daybook::auth::Tokens::open(dir).unwrap();
    let scope = |name: &str, post: &[&str], read: &[&str], persons: bool, admin: bool| pb::TokenScope {
        name: name.into(),
        post: post.iter().map(|s| s.to_string()).collect(),
        read: read.iter().map(|s| s.to_string()).collect(),
        persons,
        admin,
        ..Default::default()
    };
    let issue = |s: pb::TokenScope| store.issue(&s).unwrap();
    Tokens {
        ops: issue(scope("ops", &["*"], &["province"], true, true)),
        s1: issue(scope("source-s1", &["S1"], &[], false, false)),
        s3: issue(scope("source-s3", &["S3"], &[], false, false)),
        guangzhou: issue(scope("cdc-guangzhou", &[], &["city:Guangzhou"], true, false)),
        counts: issue(scope("counts-guangzhou", &[], &["city:Guangzhou"], false, false)),
    }
}

struct Checked {
    server: tests::Server,
    tokens: Tokens,
    channel: Channel,
    /// S1 and S2 in Guangzhou, S3 in Foshan, one student each.
    schools: [School; 3],
}

/// A server checking access, with a student registered in each of three schools.
async fn checked(dir: &Path, adjust: impl FnOnce(ServeArgs) -> ServeArgs) -> Checked {
    let tokens = issue(dir);
    let args = adjust(ServeArgs { auth: Some("required".into()), ..Backend::Embedded.args(dir) });
    let server = tests::start_with(args, daybook::Roles::All).await;
    let channel = Channel::from_shared(server.target.clone()).unwrap().connect().await.unwrap();
    let mut schools =
        [School::new("S1", "Guangzhou", DAY), School::new("S2", "Guangzhou", DAY), School::new("S3", "Foshan", DAY)];
    let events =
        schools.iter_mut().map(|s| s.register("07:00", &student(&format!("{}-P1", s.code), "C1", "R1"))).collect();
    let checked = Checked { server, tokens, channel, schools };
    let mut intake = checked.intake(&checked.tokens.ops.clone());
    let results = intake.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
    assert!(results.iter().all(|r| r.outcome == pb::Outcome::Accepted as i32), "{results:?}");
    checked.caught_up().await;
    checked
}

impl Checked {
    fn authed(&self, token: Option<&str>) -> Authed {
        InterceptedService::new(self.channel.clone(), Credentials::new(token).unwrap())
    }

    fn intake(&self, token: &str) -> IntakeClient<Authed> {
        IntakeClient::new(self.authed(Some(token)))
    }

    fn reports(&self, token: Option<&str>) -> ReportsClient<Authed> {
        ReportsClient::new(self.authed(token))
    }

    fn feeds(&self, token: &str) -> FeedsClient<Authed> {
        FeedsClient::new(self.authed(Some(token)))
    }

    fn admin(&self) -> AdminClient<Authed> {
        AdminClient::new(self.authed(Some(&self.tokens.ops)))
    }

    async fn caught_up(&self) {
        let mut reports = self.reports(Some(&self.tokens.ops));
        daybook::report::wait_until_folded(&mut reports, Duration::from_secs(60)).await.unwrap();
    }
}

fn code<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match answer {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn a_call_without_a_valid_token_is_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let c = checked(dir.path(), |a| a).await;
    let request = || pb::DailyReportRequest { unit: "school:S1".into(), date: DAY.into() };
    let none = c.reports(None).get_daily_report(request()).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    assert!(none.message().contains("Bearer"), "{}", none.message());
    let forged = c.reports(Some("dbk_0000")).get_daily_report(request()).await.unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    assert_eq!(code(c.reports(Some(&c.tokens.ops)).get_daily_report(request()).await), Code::Ok);
    // Posting and the admin calls too.
    let mut s = School::new("S1", "Guangzhou", DAY);
    let mut anonymous = IntakeClient::new(c.authed(None));
    assert_eq!(
        code(anonymous.publish(s.temperature("08:00", "S1-P1", Slot::Morning, 38.5)).await),
        Code::Unauthenticated
    );
    let mut admin = AdminClient::new(c.authed(Some(&c.tokens.s1)));
    assert_eq!(code(admin.list_tokens(pb::ListTokensRequest {}).await), Code::PermissionDenied);
    // The HTTP port asks for the token as well.
    let addr = c.server.running.http_addr;
    let refused = raw_get(addr, "/metrics", None).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let metrics = raw_get(addr, "/metrics", Some(&c.tokens.counts)).await;
    assert!(metrics.starts_with("HTTP/1.1 200") && metrics.contains("daybook_events_accepted_total"), "{metrics}");
    c.server.running.stop().await.unwrap();
}

/// A GET with an optional bearer token; the whole answer, status line first.
async fn raw_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn a_source_posts_for_its_own_school_and_nobody_elses() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = checked(dir.path(), |a| a).await;
    let mut s1 = c.intake(&c.tokens.s1);
    let own = c.schools[0].temperature("08:00", "S1-P1", Slot::Morning, 38.5);
    assert_eq!(code(s1.publish(own).await), Code::Ok);
    let other = c.schools[2].temperature("08:00", "S3-P1", Slot::Morning, 38.5);
    let denied = s1.publish(other).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("source-s1 may not post for school S3"), "{}", denied.message());

    // In a batch the event outside the scope is refused by itself; the rest is kept.
    let events = vec![
        c.schools[2].diagnosis("09:00", "S3-P1", pb::DiagnosisKind::DiagnosisConfirmed),
        c.schools[0].symptoms("09:00", "S1-P1", &[pb::Symptom::Cough]),
        c.schools[2].left("09:00", "S3-P1"),
    ];
    let results = s1.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
    let outcomes: Vec<i32> = results.iter().map(|r| r.outcome).collect();
    let (accepted, rejected) = (pb::Outcome::Accepted as i32, pb::Outcome::Rejected as i32);
    assert_eq!(outcomes, [rejected, accepted, rejected]);
    assert!(results[0].error.starts_with("school: permission denied"), "{}", results[0].error);
    c.caught_up().await;
    let mut ops = c.reports(Some(&c.tokens.ops));
    let s3 = |unit: &str| pb::DailyReportRequest { unit: unit.into(), date: DAY.into() };
    let report = ops.get_daily_report(s3("school:S3")).await.unwrap().into_inner();
    assert_eq!((report.population, report.fever, report.confirmed_new), (1, 0, 0), "S3 untouched");
    let report = ops.get_daily_report(s3("school:S1")).await.unwrap().into_inner();
    assert_eq!((report.fever, report.abnormal), (1, 1));
    c.server.intake.publish(c.schools[1].temperature("10:00", "S2-P1", Slot::Noon, 36.5)).await.unwrap_err();
    c.server.running.stop().await.unwrap();
}

#[tokio::test]
async fn an_event_id_of_one_school_cannot_be_taken_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = checked(dir.path(), |a| a).await;
    // S3's source posts first with the id S1's next fever will carry.
    let genuine = c.schools[0].temperature("08:00", "S1-P1", Slot::Morning, 38.5);
    let squatter = pb::Event {
        school: "S3".into(),
        payload: Some(pb::event::Payload::Health(pb::HealthEvent {
            person_id: "S3-P1".into(),
            kind: Some(pb::health_event::Kind::Temperature(pb::TemperatureTaken {
                slot: Slot::Morning as i32,
                celsius: 36.5,
            })),
        })),
        ..genuine.clone()
    };
    let taken = c.intake(&c.tokens.s3).publish(squatter).await.unwrap().into_inner();
    assert_eq!(taken.outcome, pb::Outcome::Accepted as i32);
    let answered = c.intake(&c.tokens.s1).publish(genuine).await.unwrap().into_inner();
    assert_eq!(answered.outcome, pb::Outcome::Accepted as i32, "not a duplicate: ids are per school");
    c.caught_up().await;
    let report = c
        .reports(Some(&c.tokens.ops))
        .get_daily_report(pb::DailyReportRequest { unit: "school:S1".into(), date: DAY.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.fever, 1);
    c.server.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_city_office_reads_its_own_schools_and_not_another_city_or_the_province() {
    let dir = tempfile::tempdir().unwrap();
    let c = checked(dir.path(), |a| a).await;
    let mut office = c.reports(Some(&c.tokens.counts));
    let on = |unit: &str| pb::DailyReportRequest { unit: unit.into(), date: DAY.into() };
    for allowed in ["city:Guangzhou", "school:S1", "school:S2", "class:S1/D1/2019/C1"] {
        let report = office.get_daily_report(on(allowed)).await;
        assert_eq!(code(report), Code::Ok, "{allowed}");
    }
    for refused in ["province", "city:Foshan", "school:S3"] {
        let status = office.get_daily_report(on(refused)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{refused}");
        assert!(status.message().contains(&format!("may not read {refused}")), "{}", status.message());
    }
    let under = |unit: &str| pb::DailyReportsRequest { unit: unit.into(), date: DAY.into(), ..Default::default() };
    assert_eq!(code(office.list_daily_reports(under("province")).await), Code::PermissionDenied);
    let mut stream = office.list_daily_reports(under("city:Guangzhou")).await.unwrap().into_inner();
    let mut units = Vec::new();
    while let Some(report) = stream.message().await.unwrap() {
        units.push(report.unit);
    }
    assert!(units.contains(&"school:S1".to_owned()) && !units.iter().any(|u| u.contains("S3")), "{units:?}");
    let listed = office.list_units(pb::ListUnitsRequest::default()).await.unwrap().into_inner().units;
    let listed: Vec<&str> = listed.iter().map(|u| u.unit.as_str()).collect();
    assert!(listed.contains(&"city:Guangzhou") && listed.contains(&"school:S2"), "{listed:?}");
    assert!(!listed.iter().any(|u| *u == "province" || u.contains("Foshan") || u.contains("S3")), "{listed:?}");

    // Feeds: its own office only; exports of its own units only.
    let mut feeds = c.feeds(&c.tokens.counts);
    let offices = feeds.list_offices(pb::ListOfficesRequest {}).await.unwrap().into_inner().offices;
    assert_eq!(offices.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["cdc-Guangzhou"]);
    let subscribe = |office: &str| pb::SubscribeRequest { office: office.into(), after: 0 };
    assert_eq!(code(feeds.subscribe(subscribe("province")).await), Code::PermissionDenied);
    assert_eq!(code(feeds.subscribe(subscribe("cdc-Foshan")).await), Code::PermissionDenied);
    assert_eq!(code(feeds.subscribe(subscribe("cdc-Guangzhou")).await), Code::Ok);
    let export = |unit: &str, kind: pb::ExportKind| pb::ExportRequest {
        unit: unit.into(),
        date: DAY.into(),
        format: pb::ExportFormat::Csv as i32,
        kind: kind as i32,
        ..Default::default()
    };
    assert_eq!(code(feeds.export(export("city:Guangzhou", pb::ExportKind::DailyReports)).await), Code::Ok);
    assert_eq!(code(feeds.export(export("province", pb::ExportKind::DailyReports)).await), Code::PermissionDenied);
    assert_eq!(code(feeds.export(export("school:S3", pb::ExportKind::DailyReports)).await), Code::PermissionDenied);
    c.server.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_city_office_reads_its_own_halls_and_not_another_citys() {
    let dir = tempfile::tempdir().unwrap();
    let c = checked(dir.path(), |a| a).await;
    let (mut gz, mut fs) = (tests::hall("HG1"), tests::hall("HF1"));
    let at = format!("{DAY} 08:00");
    let events = vec![
        gz.register(&at, "Guangzhou", pb::HallKind::CityHall),
        gz.inspect(&format!("{DAY} 10:00"), "IG1", "Guangzhou", &[(3, "2020-03-09")]),
        fs.register(&at, "Foshan", pb::HallKind::CityHall),
        fs.inspect(&format!("{DAY} 10:00"), "IF1", "Foshan", &[(4, "2020-03-09")]),
    ];
    let mut intake = c.intake(&c.tokens.ops);
    let results = intake.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
    assert!(results.iter().all(|r| r.outcome == pb::Outcome::Accepted as i32), "{results:?}");
    c.caught_up().await;
    // Counts only are enough: findings name halls, not persons.
    let mut office = c.reports(Some(&c.tokens.counts));
    let on = |unit: &str| pb::InspectionReportRequest { unit: unit.into(), date: DAY.into() };
    let findings = |unit: &str| pb::ListFindingsRequest { unit: unit.into(), date: DAY.into(), ..Default::default() };
    for allowed in ["city:Guangzhou", "hall:HG1"] {
        assert_eq!(code(office.get_inspection_report(on(allowed)).await), Code::Ok, "{allowed}");
        let listed = office.list_findings(findings(allowed)).await.unwrap().into_inner().findings;
        assert_eq!(listed.iter().map(|f| f.hall.as_str()).collect::<Vec<_>>(), ["HG1"], "{allowed}");
    }
    for refused in ["province", "city:Foshan", "hall:HF1"] {
        let status = office.get_inspection_report(on(refused)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{refused}");
        assert!(status.message().contains(&format!("may not read {refused}")), "{}", status.message());
        assert_eq!(code(office.list_findings(findings(refused)).await), Code::PermissionDenied, "{refused}");
        assert_eq!(code(office.list_inspection_reports(on(refused)).await), Code::PermissionDenied, "{refused}");
    }
    let export = |unit: &str| pb::ExportRequest {
        unit: unit.into(),
        date: DAY.into(),
        format: pb::ExportFormat::Csv as i32,
        kind: pb::ExportKind::Findings as i32,
        ..Default::default()
    };
    let mut feeds = c.feeds(&c.tokens.counts);
    assert_eq!(code(feeds.export(export("city:Guangzhou")).await), Code::Ok);
    assert_eq!(code(feeds.export(export("hall:HF1")).await), Code::PermissionDenied);
    // A school's source reads no halls.
    let mut source = c.reports(Some(&c.tokens.s1));
    assert_eq!(code(source.get_inspection_report(on("hall:HG1")).await), Code::PermissionDenied);
    // The console's API answers and refuses alike.
    let addr = c.server.running.http_addr;
    let own =
        raw_get(addr, &format!("/api/v1/inspections?unit=city:Guangzhou&date={DAY}"), Some(&c.tokens.counts)).await;
    assert!(own.starts_with("HTTP/1.1 200") && own.contains("\"hall:HG1\"") && !own.contains("HF1"), "{own}");
    let other =
        raw_get(addr, &format!("/api/v1/inspections?unit=city:Foshan&date={DAY}"), Some(&c.tokens.counts)).await;
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    c.server.running.stop().await.unwrap();
}

#[tokio::test]
async fn person_level_data_needs_its_own_right_and_each_read_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = checked(dir.path(), |a| a).await;
    let isolated = c.schools[0].isolation("08:00", "S1-P1", pb::IsolationKind::IsolationHome);
    let fever = c.schools[0].temperature("08:10", "S1-P1", Slot::Morning, 38.5);
    c.intake(&c.tokens.s1).publish_batch(pb::PublishBatchRequest { events: vec![isolated, fever] }).await.unwrap();
    c.caught_up().await;
    let persons = |unit: &str| pb::KeyPersonsRequest { unit: unit.into(), ..Default::default() };

    let mut counts = c.reports(Some(&c.tokens.counts));
    let status = counts.list_key_persons(persons("school:S1")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("no right to person-level data"), "{}", status.message());
    let mut office = c.reports(Some(&c.tokens.guangzhou));
    let listed = office.list_key_persons(persons("school:S1")).await.unwrap().into_inner().persons;
    assert_eq!(listed.iter().map(|p| p.person_id.as_str()).collect::<Vec<_>>(), ["S1-P1"]);
    assert_eq!(code(office.list_key_persons(persons("school:S3")).await), Code::PermissionDenied, "not its city");

    let observation = pb::ExportRequest {
        unit: "city:Guangzhou".into(),
        date: DAY.into(),
        format: pb::ExportFormat::Csv as i32,
        kind: pb::ExportKind::ObservationList as i32,
        ..Default::default()
    };
    assert_eq!(code(c.feeds(&c.tokens.counts).export(observation.clone()).await), Code::PermissionDenied);
    let file = c.feeds(&c.tokens.guangzhou).export(observation).await.unwrap().into_inner();
    assert!(String::from_utf8_lossy(&file.content).contains("S1-P1"));

    // The fever alert in Guangzhou's feed: the person named with the right, not without it.
    let alert_person = |token: &str| {
        let mut feeds = c.feeds(token);
        async move {
            let request = pb::SubscribeRequest { office: "cdc-Guangzhou".into(), after: 0 };
            let mut stream = feeds.subscribe(request).await.unwrap().into_inner();
            loop {
                let item =
                    tokio::time::timeout(Duration::from_secs(30), stream.message()).await.unwrap().unwrap().unwrap();
                if let Some(pb::feed_item::Item::Alert(alert)) = item.item {
                    return alert;
                }
            }
        }
    };
    let named = alert_person(&c.tokens.guangzhou).await;
    assert_eq!((named.person_id.as_str(), named.school.as_str()), ("S1-P1", "S1"));
    let unnamed = alert_person(&c.tokens.counts).await;
    assert_eq!((unnamed.person_id.as_str(), unnamed.school.as_str()), ("", "S1"), "who is left out, not what");

    let audit = c.admin().list_audit(pb::ListAuditRequest::default()).await.unwrap().into_inner().entries;
    let seen: Vec<(&str, &str, &str)> =
        audit.iter().map(|e| (e.token.as_str(), e.call.as_str(), e.unit.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("cdc-guangzhou", "Reports.ListKeyPersons", "school:S1"),
            ("cdc-guangzhou", "Feeds.Export", "city:Guangzhou"),
            ("cdc-guangzhou", "Feeds.Subscribe", "cdc-Guangzhou"),
        ],
        "the reads with the right, and only those"
    );
    c.server.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_and_its_open_feed_ends() {
    let dir = tempfile::tempdir().unwrap();
    let c = checked(dir.path(), |a| a).await;
    let mut feeds = c.feeds(&c.tokens.guangzhou);
    let request = pb::SubscribeRequest { office: "cdc-Guangzhou".into(), after: 0 };
    let mut stream = feeds.subscribe(request).await.unwrap().into_inner();
    let mut admin = c.admin();
    admin.revoke_token(pb::RevokeTokenRequest { name: "cdc-guangzhou".into() }).await.unwrap();
    let ended = async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status.code()),
            }
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(10), ended).await.expect("the open feed ends");
    assert_eq!(ended, Some(Code::Unauthenticated));
    let on = pb::DailyReportRequest { unit: "school:S1".into(), date: DAY.into() };
    assert_eq!(code(c.reports(Some(&c.tokens.guangzhou)).get_daily_report(on).await), Code::Unauthenticated);
    let listed = admin.list_tokens(pb::ListTokensRequest {}).await.unwrap().into_inner().tokens;
    let revoked = listed.iter().find(|t| t.name == "cdc-guangzhou").unwrap();
    assert!(!revoked.revoked_at.is_empty());
    // Issued through the running server, a token works at once, and its secret is not kept.
    let scope = pb::TokenScope { name: "late".into(), read: vec!["school:S3".into()], ..Default::default() };
    let token = admin.issue_token(pb::IssueTokenRequest { scope: Some(scope) }).await.unwrap().into_inner().token;
    let on = pb::DailyReportRequest { unit: "school:S3".into(), date: DAY.into() };
    assert_eq!(code(c.reports(Some(&token)).get_daily_report(on).await), Code::Ok);
    c.server.running.stop().await.unwrap();
    let stored = std::fs::read_dir(dir.path().join("auth"))
        .unwrap()
        .flatten()
        .any(|f| std::fs::read(f.path()).is_ok_and(|bytes| bytes.windows(token.len()).any(|w| w == token.as_bytes())));
    assert!(!stored, "only the hash is stored");
}

#[tokio::test]
async fn a_token_past_its_rate_is_told_to_retry_later() {
    let dir = tempfile::tempdir().unwrap();
    let c = checked(dir.path(), |a| ServeArgs { rate_limit_reads: Some(5.0), ..a }).await;
    let mut office = c.reports(Some(&c.tokens.counts));
    let mut exhausted = None;
    for _ in 0..20 {
        if let Err(status) = office.get_status(pb::StatusRequest {}).await {
            exhausted = Some(status);
            break;
        }
    }
    let status = exhausted.expect("20 calls at once exceed 5 per second");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("retry in"), "{}", status.message());
    assert!(status.metadata().get("retry-after-ms").is_some());
    // Another token has its own allowance.
    assert_eq!(code(c.reports(Some(&c.tokens.ops)).get_status(pb::StatusRequest {}).await), Code::Ok);
    c.server.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_token_holds_at_most_its_open_streams() {
    let dir = tempfile::tempdir().unwrap();
    let c = checked(dir.path(), |a| ServeArgs { streams_per_token: Some(2), ..a }).await;
    let mut feeds = c.feeds(&c.tokens.guangzhou);
    let subscribe = || pb::SubscribeRequest { office: "cdc-Guangzhou".into(), after: 0 };
    let first = feeds.subscribe(subscribe()).await.unwrap();
    let _second = feeds.subscribe(subscribe()).await.unwrap();
    let refused = feeds.subscribe(subscribe()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("holds 2 open streams"), "{}", refused.message());
    // Another token has its own; a closed stream frees its slot.
    assert_eq!(code(c.feeds(&c.tokens.ops).subscribe(subscribe()).await), Code::Ok);
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match feeds.subscribe(subscribe()).await {
            Ok(_) => break,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
        }
        assert!(tokio::time::Instant::now() < deadline, "the closed stream's slot was never freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.server.running.stop().await.unwrap();
}
