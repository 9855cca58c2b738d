//! The console's JSON API and live updates on a server that checks access, with tokens
//! issued on its data directory as an operator would: every endpoint, its answers worked
//! out from the definitions (DOMAIN.md, RULES.md), its errors as gRPC gives them, and the
//! scope refusals.

use std::path::Path;
use std::time::{Duration, Instant};

use daybook::ServeArgs;
use serde_json::Value;
use tests::http::{Events, Reply, get};
use tests::{Backend, School, Slot, Symptom, student};
use wire::pb;

const DAY: &str = "2020-03-02";

tests::on_every_backend!(
    reports_children_series_and_stragglers_read_as_the_definitions_say,
    errors_and_scope_refusals_are_the_grpc_ones,
    alerts_come_from_the_office_feed_newest_first_persons_only_with_the_right,
    a_sealed_day_lists_missing_then_late_schools_and_its_revision,
    live_tells_the_unit_on_screen_within_a_second_and_only_that_unit,
);

/// The tokens of the tests, issued offline on the data directory.
struct Tokens {
    /// Reads the province, with persons; admin.
    ops: String,
    /// Guangzhou's office, with persons.
    guangzhou: String,
    /// Guangzhou, counts only.
    counts: String,
    /// Foshan, counts only.
    foshan: String,
}

fn issue(dir: &Path) -> Tokens {
    let store = daybook::auth::Tokens::open(dir).unwrap();
    let issue = |name: &str, read: &str, persons: bool| {
        let post = if persons && read == "province" { vec!["*".to_owned()] } else { vec![] };
        let admin = name == "ops";
        let scope =
            pb::TokenScope { name: name.into(), post, read: vec![read.into()], persons, admin, ..Default::default() };
        store.issue(&scope).unwrap()
    };
    Tokens {
        ops: issue("ops", "province", true),
        guangzhou: issue("cdc-guangzhou", "city:Guangzhou", true),
        counts: issue("counts-guangzhou", "city:Guangzhou", false),
        foshan: issue("counts-foshan", "city:Foshan", false),
    }
}

struct Console {
    server: tests::Server,
    tokens: Tokens,
    http: String,
    schools: [School; 3],
}

/// S1 (Guangzhou): P1 and P2 in class C1 and dorm R1, P3 in class C2 and dorm R2; S2
/// (Guangzhou): P4; S3 (Foshan): P5; all students registered at 07:00 on DAY. At 08:00
/// the morning check: P1 38.2 °C (a fever), P2, P4 and P5 normal, P3 not checked. At
/// 10:00 P2 goes into centralized observation.
async fn console(dir: &Path, backend: &Backend) -> Console {
    console_with(dir, backend, |args| args).await
}

/// [`console`] with its settings adjusted.
async fn console_with(dir: &Path, backend: &Backend, adjust: impl FnOnce(ServeArgs) -> ServeArgs) -> Console {
    let tokens = issue(dir);
    let args = adjust(ServeArgs { auth: Some("required".into()), ..backend.args(dir) });
    let server = tests::start_with(args, daybook::Roles::All).await;
    let http = server.running.http_addr.to_string();
    let mut schools =
        [School::new("S1", "Guangzhou", DAY), School::new("S2", "Guangzhou", DAY), School::new("S3", "Foshan", DAY)];
    let [s1, s2, s3] = &mut schools;
    let registered = vec![
        s1.register("07:00", &student("S1-P1", "C1", "R1")),
        s1.register("07:00", &student("S1-P2", "C1", "R1")),
        s1.register("07:00", &student("S1-P3", "C2", "R2")),
        s2.register("07:00", &student("S2-P4", "C1", "R1")),
        s3.register("07:00", &student("S3-P5", "C1", "R1")),
    ];
    // Folded before the checks: an alert names the units its person is in when it is
    // raised (roster and health are different topics, folded in either order).
    let events = vec![
        s1.temperature("08:00", "S1-P1", Slot::Morning, 38.2),
        s1.temperature("08:00", "S1-P2", Slot::Morning, 36.5),
        s2.temperature("08:00", "S2-P4", Slot::Morning, 36.6),
        s3.temperature("08:00", "S3-P5", Slot::Morning, 36.4),
        s1.isolation("10:00", "S1-P2", pb::IsolationKind::IsolationCentralized),
    ];
    let mut c = Console { server, tokens, http, schools };
    c.post(registered).await;
    c.post(events).await;
    c
}

impl Console {
    async fn post(&mut self, events: Vec<pb::Event>) {
        let mut intake = pb::intake_client::IntakeClient::new(self.authed());
        let results = intake.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
        assert!(results.iter().all(|r| r.outcome == pb::Outcome::Accepted as i32), "{results:?}");
        let mut reports = pb::reports_client::ReportsClient::new(self.authed());
        daybook::report::wait_until_folded(&mut reports, Duration::from_secs(60)).await.unwrap();
    }

    fn authed(
        &self,
    ) -> tonic::service::interceptor::InterceptedService<tonic::transport::Channel, daybook::client::Credentials> {
        let channel = tonic::transport::Channel::from_shared(self.server.target.clone()).unwrap().connect_lazy();
        tonic::service::interceptor::InterceptedService::new(
            channel,
            daybook::client::Credentials::new(Some(self.tokens.ops.as_str())).unwrap(),
        )
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        get(&self.http, path, Some(token)).await
    }

    /// A 200 answer's JSON.
    async fn ok(&self, path: &str, token: &str) -> Value {
        let reply = self.get(path, token).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json; charset=utf-8"));
        reply.json()
    }

    /// A refusal: its HTTP status, error code and message.
    async fn refused(&self, path: &str, token: Option<&str>) -> (u16, String, String) {
        let reply = get(&self.http, path, token).await;
        let (code, message) = reply.error();
        (reply.status, code, message)
    }

    /// The 200 answer of `path` once `done` holds of it (within 30 s): the publisher and
    /// the feeds work after the fold.
    async fn once(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.ok(path, token).await;
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "{path}: still {got} after 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Moves the province's clock to `local` (+08:00) and waits until DAY reads sealed.
    async fn seal(&self, local: &str) {
        let at = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
        let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        self.server.clock.as_ref().unwrap().set(at.and_local_timezone(zone).unwrap().with_timezone(&chrono::Utc));
        let path = format!("/api/v1/report?unit=province&date={DAY}");
        self.once(&path, &self.tokens.ops, |r| r["report"]["status"] != "Open").await;
    }
}

fn units(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| v["unit"].as_str().unwrap().to_owned()).collect()
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

async fn reports_children_series_and_stragglers_read_as_the_definitions_say(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let c = console(dir.path(), &backend).await;
    let ops = &c.tokens.ops;

    let info = c.ok("/api/v1/info", ops).await;
    assert_eq!(
        (info["name"].as_str(), info["home"].as_str(), info["persons"].as_bool()),
        (Some("ops"), Some("province"), Some(true))
    );
    assert_eq!(info["today"], "2020-01-01", "the province's clock, which the harness starts on 1 January");

    let province = c.ok(&format!("/api/v1/report?unit=province&date={DAY}"), ops).await;
    let r = &province["report"];
    assert_eq!((r["population"].as_u64(), r["fever"].as_u64()), (Some(5), Some(1)));
    assert_eq!((r["status"].as_str(), r["version"].as_u64()), (Some("Open"), Some(0)), "nothing sealed yet");

    let s1 = c.ok(&format!("/api/v1/report?unit=school:S1&date={DAY}"), ops).await;
    assert_eq!(s1["unit"], "school:S1");
    assert_eq!((s1["report"]["population"].as_u64(), s1["report"]["fever"].as_u64()), (Some(3), Some(1)));
    assert_eq!(units(&s1["above"]), ["province", "city:Guangzhou"]);
    assert_eq!(s1["first_day"], DAY);
    // Percent-encoded keys, as a browser sends them.
    let class = c.ok(&format!("/api/v1/report?unit=class%3AS1%2FD1%2F2019%2FC1&date={DAY}"), ops).await;
    assert_eq!((class["report"]["population"].as_u64(), class["report"]["fever"].as_u64()), (Some(2), Some(1)));
    assert_eq!(
        units(&class["above"]),
        ["province", "city:Guangzhou", "school:S1", "department:S1/D1", "grade:S1/D1/2019"]
    );
    let dorm = c.ok(&format!("/api/v1/report?unit=dorm:S1/R1&date={DAY}"), ops).await;
    assert_eq!((dorm["report"]["population"].as_u64(), dorm["report"]["fever"].as_u64()), (Some(2), Some(1)));

    let children = c.ok(&format!("/api/v1/children?unit=province&date={DAY}"), ops).await;
    assert_eq!(units(&children["children"]), ["city:Foshan", "city:Guangzhou"]);
    let populations: Vec<_> =
        children["children"].as_array().unwrap().iter().map(|c| c["report"]["population"].as_u64()).collect();
    assert_eq!(populations, [Some(1), Some(4)]);
    let children = c.ok(&format!("/api/v1/children?unit=city:Guangzhou&date={DAY}"), ops).await;
    assert_eq!(units(&children["children"]), ["school:S1", "school:S2"]);
    let fevers: Vec<_> =
        children["children"].as_array().unwrap().iter().map(|c| c["report"]["fever"].as_u64()).collect();
    assert_eq!(fevers, [Some(1), Some(0)]);
    let children = c.ok(&format!("/api/v1/children?unit=school:S1&date={DAY}"), ops).await;
    assert_eq!(
        units(&children["children"]),
        ["department:S1/D1", "dorm:S1/R1", "dorm:S1/R2"],
        "dorms hang off the school"
    );

    // From the unit's first day on: nobody counted in S1 before DAY.
    let series = c.ok("/api/v1/series?unit=school:S1&from=2020-02-28&to=2020-03-02", ops).await;
    let days: Vec<_> =
        series["days"].as_array().unwrap().iter().map(|d| (d["date"].clone(), d["fever"].clone())).collect();
    assert_eq!(days, [(Value::from(DAY), Value::from(1))]);

    // The day is open: S1 (P3 unchecked, so under 90 %) has not reached the coverage yet.
    let open = c.ok(&format!("/api/v1/stragglers?under=province&date={DAY}"), ops).await;
    assert_eq!((open["sealed"].as_bool(), open["expected"].as_u64()), (Some(false), Some(3)));
    assert_eq!(strings(&open["not_yet"]), ["school:S1"]);

    let observed = c.ok(&format!("/api/v1/observation?unit=school:S1&date={DAY}"), ops).await;
    let persons = observed["persons"].as_array().unwrap();
    assert_eq!(persons.len(), 1, "{observed}");
    assert_eq!(
        (persons[0]["person"].as_str(), persons[0]["observation"][0].as_str()),
        (Some("S1-P2"), Some("Centralized"))
    );
    let key = c.ok(&format!("/api/v1/key-persons?unit=class:S1/D1/2019/C1&date={DAY}"), &c.tokens.guangzhou).await;
    assert!(key["persons"].as_array().unwrap().iter().any(|p| p["person"] == "S1-P2"), "{key}");
    c.server.running.stop().await.unwrap();
}

async fn errors_and_scope_refusals_are_the_grpc_ones(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let c = console(dir.path(), &backend).await;
    let (ops, guangzhou, counts) =
        (Some(c.tokens.ops.as_str()), Some(c.tokens.guangzhou.as_str()), Some(c.tokens.counts.as_str()));

    let (status, code, message) = c.refused("/api/v1/report?unit=school", ops).await;
    assert_eq!((status, code.as_str()), (400, "invalid_argument"));
    assert!(message.starts_with("unit: "), "{message}");
    let (status, code, message) = c.refused(&format!("/api/v1/report?unit=school:S9&date={DAY}"), ops).await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (404, "not_found", "unit: school:S9 has no one registered in it")
    );
    let (status, _, message) = c.refused("/api/v1/report?unit=school:S1&date=2020-02-30", ops).await;
    assert!(status == 400 && message.starts_with("date: "), "{message}");
    let (status, _, message) = c.refused("/api/v1/report?unit=school:S1&date=2099-01-01", ops).await;
    assert!(status == 400 && message.starts_with("date: 2099-01-01 is in the future"), "{message}");
    let (status, _, message) = c.refused("/api/v1/report?unit=school:S1&date=2020-03-01", ops).await;
    assert_eq!(status, 404);
    assert_eq!(message, "unit: school:S1 did not exist on 2020-03-01: no one counted in it before 2020-03-02");
    let (status, _, message) = c.refused("/api/v1/series?unit=school:S1&from=2020-03-02&to=2020-03-01", ops).await;
    assert!(status == 400 && message.starts_with("from: "), "{message}");
    let (status, _, message) = c.refused("/api/v1/series?unit=school:S1&from=2019-01-01&to=2020-03-01", ops).await;
    assert!(status == 400 && message.contains("more than 366 days"), "{message}");
    let (status, _, _) = c.refused(&format!("/api/v1/children?unit=school:S9&date={DAY}"), ops).await;
    assert_eq!(status, 404);
    let (status, _, message) = c.refused("/api/v1/alerts?limit=0", ops).await;
    assert!(status == 400 && message.starts_with("limit: "), "{message}");
    let (status, _, message) = c.refused("/api/v1/alerts?after=x", ops).await;
    assert!(status == 400 && message.starts_with("after: "), "{message}");

    // No token, or a forged one: 401, as gRPC answers UNAUTHENTICATED.
    let (status, code, _) = c.refused(&format!("/api/v1/report?unit=province&date={DAY}"), None).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    let (status, _, _) = c.refused("/api/v1/info", Some("dbk_0000")).await;
    assert_eq!(status, 401);
    // The page itself holds no data: it is served to anyone, and asks for a token.
    let page = get(&c.http, "/", None).await;
    assert!(page.status == 200 && page.body.contains("/console.js"), "{}", page.body);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));

    // A city's token reads its city and nothing else, at every endpoint.
    c.ok(&format!("/api/v1/report?unit=city:Guangzhou&date={DAY}"), &c.tokens.guangzhou).await;
    c.ok(&format!("/api/v1/children?unit=school:S1&date={DAY}"), &c.tokens.guangzhou).await;
    let refusals = [
        (format!("/api/v1/report?unit=city:Foshan&date={DAY}"), "unit: token cdc-guangzhou may not read city:Foshan"),
        (format!("/api/v1/report?unit=school:S3&date={DAY}"), "unit: token cdc-guangzhou may not read school:S3"),
        (format!("/api/v1/report?unit=province&date={DAY}"), "unit: token cdc-guangzhou may not read province"),
        (format!("/api/v1/children?unit=province&date={DAY}"), "unit: token cdc-guangzhou may not read province"),
        ("/api/v1/series?unit=dorm:S3/R1".to_owned(), "unit: token cdc-guangzhou may not read dorm:S3/R1"),
        (format!("/api/v1/stragglers?under=province&date={DAY}"), "under: token cdc-guangzhou may not read province"),
        (format!("/api/v1/observation?unit=school:S3&date={DAY}"), "unit: token cdc-guangzhou may not read school:S3"),
        ("/api/v1/alerts?office=province".to_owned(), "office: token cdc-guangzhou may not read the feed of province"),
        ("/api/v1/alerts?under=city:Foshan".to_owned(), "under: token cdc-guangzhou may not read city:Foshan"),
    ];
    for (path, expected) in refusals {
        let (status, code, message) = c.refused(&path, guangzhou).await;
        assert_eq!((status, code.as_str(), message.as_str()), (403, "permission_denied", expected), "{path}");
    }
    let (status, _, message) = c.refused(&format!("/api/v1/observation?unit=school:S1&date={DAY}"), counts).await;
    assert_eq!(
        (status, message.as_str()),
        (403, "token counts-guangzhou has no right to person-level data (counts only)")
    );
    let events = Events::open(&c.http, "/api/v1/live?unit=city:Foshan", guangzhou).await;
    assert_eq!(events.status, 403);
    c.server.running.stop().await.unwrap();
}

/// `token`'s newest alerts, once they are `n`.
async fn alerts(c: &Console, token: &str, n: usize) -> Value {
    c.once("/api/v1/alerts", token, |got| got["alerts"].as_array().unwrap().len() >= n).await
}

async fn alerts_come_from_the_office_feed_newest_first_persons_only_with_the_right(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = console(dir.path(), &backend).await;
    let got = alerts(&c, &c.tokens.ops, 1).await;
    assert_eq!(got["office"], "province");
    let fever = &got["alerts"][0];
    assert_eq!((fever["kind"].as_str(), fever["celsius"].as_f64()), (Some("fever"), Some(38.2)));
    assert_eq!((fever["person"].as_str(), fever["school"].as_str()), (Some("S1-P1"), Some("S1")));
    assert!(strings(&fever["units"]).contains(&"dorm:S1/R1".to_owned()), "{fever}");
    assert!(strings(&fever["units"]).contains(&"class:S1/D1/2019/C1".to_owned()), "{fever}");

    // A suspected case at S3 afterwards: newest first.
    let suspected = c.schools[2].diagnosis("11:00", "S3-P5", pb::DiagnosisKind::DiagnosisSuspected);
    c.post(vec![suspected]).await;
    let got = alerts(&c, &c.tokens.ops, 2).await;
    let kinds: Vec<_> =
        got["alerts"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["suspected", "fever"]);
    let next = got["next"].as_u64().unwrap();
    let none = c.ok(&format!("/api/v1/alerts?after={next}"), &c.tokens.ops).await;
    assert_eq!(none["alerts"].as_array().unwrap().len(), 0, "nothing after the newest");
    let fever_cursor = got["alerts"][1]["cursor"].as_u64().unwrap();
    let since = c.ok(&format!("/api/v1/alerts?after={fever_cursor}"), &c.tokens.ops).await;
    assert_eq!(since["alerts"].as_array().unwrap().len(), 1, "only the suspected case follows the fever");
    let under = c.ok("/api/v1/alerts?under=dorm:S1/R1", &c.tokens.ops).await;
    assert_eq!(under["alerts"].as_array().unwrap().len(), 1, "the fever only: {under}");

    // A city reads its own office's feed: Guangzhou's fever, not Foshan's case; counts only
    // without the persons right.
    let counts = alerts(&c, &c.tokens.counts, 1).await;
    assert_eq!(counts["office"], "cdc-Guangzhou");
    let only: Vec<_> =
        counts["alerts"].as_array().unwrap().iter().map(|a| (a["kind"].clone(), a["person"].clone())).collect();
    assert_eq!(only, [(Value::from("fever"), Value::from(""))]);
    let named = alerts(&c, &c.tokens.guangzhou, 1).await;
    assert_eq!(named["alerts"][0]["person"], "S1-P1");
    let foshan = alerts(&c, &c.tokens.foshan, 1).await;
    assert_eq!(foshan["alerts"][0]["kind"], "suspected");
    assert_eq!(foshan["alerts"].as_array().unwrap().len(), 1);
    c.server.running.stop().await.unwrap();
}

async fn a_sealed_day_lists_missing_then_late_schools_and_its_revision(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = console(dir.path(), &backend).await;
    let ops = c.tokens.ops.clone();
    // DAY's deadline is 09:00 the next morning.
    c.seal("2020-03-03 10:00").await;
    let sealed = c.ok(&format!("/api/v1/stragglers?under=province&date={DAY}"), &ops).await;
    let counts =
        |v: &Value| (v["sealed"].as_bool(), v["expected"].as_u64(), v["actual"].as_u64(), v["on_time"].as_u64());
    assert_eq!(counts(&sealed), (Some(true), Some(3), Some(2), Some(2)));
    assert_eq!((strings(&sealed["missing"]), strings(&sealed["late"])), (vec!["school:S1".to_owned()], vec![]));
    let s1 = c.ok(&format!("/api/v1/report?unit=school:S1&date={DAY}"), &ops).await;
    assert_eq!((s1["report"]["status"].as_str(), s1["report"]["version"].as_u64()), (Some("Missing"), Some(1)));
    assert_eq!(s1["sealed_through"], DAY);

    // P3's morning check, acknowledged after the deadline: S1 reports late, version 2.
    let late = c.schools[0].temperature("08:30", "S1-P3", Slot::Morning, 36.5);
    c.post(vec![late]).await;
    // The read model shows version 2 at once; the history once the publisher has sent it.
    let path = format!("/api/v1/report?unit=school:S1&date={DAY}");
    let published = |n: usize| move |r: &Value| r["revisions"].as_array().unwrap().len() == n;
    let s1 = c.once(&path, &ops, published(1)).await;
    assert_eq!((s1["report"]["status"].as_str(), s1["report"]["revised"].as_bool()), (Some("Late"), Some(true)));
    let changes = s1["report"]["changes"].as_array().unwrap();
    let morning = changes.iter().find(|c| c["field"] == "checks.morning.done").expect("the morning check changed");
    assert_eq!((morning["before"].as_i64(), morning["after"].as_i64()), (Some(2), Some(3)));
    // The day's history: version 2, late, with what it changed (version 1 is the seal).
    let revisions = s1["revisions"].as_array().unwrap();
    assert_eq!((revisions[0]["version"].as_u64(), revisions[0]["status"].as_str()), (Some(2), Some("Late")));
    assert_eq!(revisions[0]["changes"], s1["report"]["changes"]);
    // A third version: P3 coughs on DAY, reported after the seal too.
    let cough = c.schools[0].symptoms("09:00", "S1-P3", &[Symptom::Cough]);
    c.post(vec![cough]).await;
    let s1 = c.once(&path, &ops, published(2)).await;
    assert_eq!(s1["report"]["version"], 3);
    let versions: Vec<_> = s1["revisions"].as_array().unwrap().iter().map(|v| v["version"].as_u64()).collect();
    assert_eq!(versions, [Some(2), Some(3)]);
    let changed = |v: &Value| v["changes"].as_array().unwrap().iter().any(|c| c["field"] == "symptoms.cough");
    assert!(!changed(&s1["revisions"][0]) && changed(&s1["revisions"][1]), "{s1}");
    let revised = c.ok(&format!("/api/v1/stragglers?under=city:Guangzhou&date={DAY}"), &ops).await;
    assert_eq!(counts(&revised), (Some(true), Some(2), Some(2), Some(1)));
    assert_eq!((strings(&revised["missing"]), strings(&revised["late"])), (vec![], vec!["school:S1".to_owned()]));
    c.server.running.stop().await.unwrap();
}

async fn live_tells_the_unit_on_screen_within_a_second_and_only_that_unit(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = console(dir.path(), &backend).await;
    let ops = c.tokens.ops.clone();
    let mut class =
        Events::open(&c.http, &format!("/api/v1/live?unit=class:S1/D1/2019/C2&date={DAY}"), Some(&ops)).await;
    assert_eq!(class.status, 200);
    let hello = class.wait_for("hello", Duration::from_secs(5)).await.expect("hello");
    assert!(hello.contains("class:S1/D1/2019/C2"), "{hello}");
    let mut foshan = Events::open(&c.http, &format!("/api/v1/live?unit=city:Foshan&date={DAY}"), Some(&ops)).await;
    foshan.wait_for("hello", Duration::from_secs(5)).await.expect("hello");

    // P3, in class C2, coughs: acknowledged, then the class's page hears of it in 1 s.
    let cough = c.schools[0].symptoms("09:30", "S1-P3", &[Symptom::Cough]);
    let mut intake = pb::intake_client::IntakeClient::new(c.authed());
    intake.publish(cough).await.unwrap();
    let acked = Instant::now();
    class.wait_for("changed", Duration::from_secs(5)).await.expect("the class changed");
    let latency = acked.elapsed();
    assert!(latency < Duration::from_secs(1), "changed {latency:?} after the acknowledgement");
    // Foshan did not change.
    assert_eq!(foshan.wait_for("changed", Duration::from_millis(1500)).await, None);

    // A fever raises an alert: the page is told to read the alerts.
    let fever = c.schools[0].temperature("12:00", "S1-P3", Slot::Noon, 38.0);
    c.post(vec![fever]).await;
    class.wait_for("alerts", Duration::from_secs(5)).await.expect("alerts published");
    // A revoked token's stream ends at the next thing it would say, with the reason.
    let counts = c.tokens.counts.clone();
    let mut revoked = Events::open(&c.http, &format!("/api/v1/live?unit=school:S1&date={DAY}"), Some(&counts)).await;
    revoked.wait_for("hello", Duration::from_secs(5)).await.expect("hello");
    let mut admin = pb::admin_client::AdminClient::new(c.authed());
    admin.revoke_token(pb::RevokeTokenRequest { name: "counts-guangzhou".into() }).await.unwrap();
    let fatigue = c.schools[0].symptoms("12:30", "S1-P1", &[Symptom::Fatigue]);
    c.post(vec![fatigue]).await;
    let why = revoked.wait_for("error", Duration::from_secs(5)).await.expect("the stream says why it ends");
    assert!(why.contains("revoked"), "{why}");
    assert_eq!(revoked.next(Duration::from_secs(5)).await, None, "and ends");
    // The stream ends when the server stops.
    let stopping = tokio::spawn(c.server.running.stop());
    assert_eq!(class.wait_for("never", Duration::from_secs(10)).await, None);
    stopping.await.unwrap().unwrap();
}

/// The API counts against the token's limits as gRPC reads do: its rate, its open streams.
#[tokio::test]
async fn the_api_counts_against_the_tokens_rate_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let limited = |args| ServeArgs { streams_per_token: Some(1), rate_limit_reads: Some(5.0), ..args };
    let c = console_with(dir.path(), &Backend::Embedded, limited).await;
    let counts = c.tokens.counts.clone();
    let live = format!("/api/v1/live?unit=school:S1&date={DAY}");
    let mut first = Events::open(&c.http, &live, Some(&counts)).await;
    first.wait_for("hello", Duration::from_secs(5)).await.expect("hello");
    let (status, code, message) = c.refused(&live, Some(&counts)).await;
    assert_eq!((status, code.as_str()), (429, "resource_exhausted"));
    assert!(message.contains("holds 1 open streams"), "{message}");
    // Five reads a second: the bucket holds five, two are taken already.
    let mut refused = None;
    for _ in 0..10 {
        let reply = c.get("/api/v1/info", &counts).await;
        if reply.status != 200 {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the rate limit refuses within ten reads");
    let (code, message) = refused.error();
    assert_eq!((refused.status, code.as_str()), (429, "resource_exhausted"));
    assert!(message.starts_with("rate limit: token counts-guangzhou may make 5 read calls per second"), "{message}");
    drop(first);
    c.server.running.stop().await.unwrap();
}

/// A stream whose unit does not change while the store keeps writing (another city's
/// events) still writes its heartbeat, so the idle guard (3 s here) never cuts it.
#[tokio::test]
async fn a_quiet_stream_outlives_the_idle_timeout_while_other_units_change() {
    let dir = tempfile::tempdir().unwrap();
    let short = |args| ServeArgs {
        keepalive_secs: Some(1),
        keepalive_timeout_secs: Some(1),
        idle_timeout_secs: Some(3),
        ..args
    };
    let mut c = console_with(dir.path(), &Backend::Embedded, short).await;
    let ops = c.tokens.ops.clone();
    let mut foshan = Events::open(&c.http, &format!("/api/v1/live?unit=city:Foshan&date={DAY}"), Some(&ops)).await;
    foshan.wait_for("hello", Duration::from_secs(5)).await.expect("hello");
    let until = Instant::now() + Duration::from_secs(5);
    let mut minute = 0;
    while Instant::now() < until {
        minute += 1;
        let reading = c.schools[1].temperature(&format!("13:{minute:02}"), "S2-P4", Slot::Noon, 36.5);
        c.post(vec![reading]).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cough = c.schools[2].symptoms("14:00", "S3-P5", &[Symptom::Cough]);
    c.post(vec![cough]).await;
    foshan.wait_for("changed", Duration::from_secs(5)).await.expect("the stream is still open");
    c.server.running.stop().await.unwrap();
}
