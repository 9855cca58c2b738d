//! The console in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`) driven through chromedriver's W3C WebDriver API, against the real server.
//! Without Chromium or chromedriver the test fails, naming what to install: it never
//! skips. With `CONSOLE_SCREENSHOTS=1` it saves the README's screenshots into
//! `docs/console/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use daybook::ServeArgs;
use serde_json::{Value, json};
use tests::http::request;
use tests::{Backend, School, Slot, student};
use wire::pb;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    addr: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser tests need Debian's `{what}` (apt-get install chromium chromium-driver; .ci/run installs it)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, addr: format!("127.0.0.1:{port}"), _profile: tempfile::tempdir().unwrap() };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(&driver.addr).await.is_ok() {
                let status = request(&driver.addr, "GET", "/status", None, None).await;
                if status.json()["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver not ready after 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium with a fresh profile. The flags keep it from reaching for
    /// the network it does not have (it would hang).
    async fn session(&self) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let created = request(&self.addr, "POST", "/session", None, Some(&capabilities.to_string())).await;
        let id = created.json()["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium did not start: {}", created.body))
            .to_owned();
        Browser { driver: self.addr.clone(), id, _profile: profile }
    }
}

struct Browser {
    driver: String,
    id: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.id);
        let body = (method != "GET").then(|| body.to_string());
        let reply = request(&self.driver, method, &path, None, body.as_deref()).await;
        let json = reply.json();
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
        json["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// The first element `css` finds, waiting up to 10 s for one.
    async fn find(&self, css: &str) -> String {
        let selector = serde_json::to_string(css).unwrap();
        self.until(&format!("return document.querySelector({selector}) !== null"), css).await;
        let found = self.call("POST", "/element", json!({ "using": "css selector", "value": css })).await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("{css}: {found}")).to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/clear"), json!({})).await;
        self.call("POST", &format!("/element/{element}/value"), json!({ "text": text })).await;
    }

    /// The text of the first element `css` finds (empty if none).
    async fn text(&self, css: &str) -> String {
        let selector = serde_json::to_string(css).unwrap();
        let text =
            self.script(&format!("const e = document.querySelector({selector}); return e ? e.textContent : ''")).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Waits up to 10 s for `condition` (a script returning true); fails naming `what`.
    async fn until(&self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.script(condition).await != true {
            if Instant::now() > deadline {
                let page = self.script("return document.body.innerText").await;
                panic!("waited 10 s for {what}; the page reads:\n{}", page.as_str().unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the first element `css` finds reads `text`.
    async fn until_text(&self, css: &str, text: &str) {
        let (selector, expected) = (serde_json::to_string(css).unwrap(), serde_json::to_string(text).unwrap());
        let condition =
            format!("const e = document.querySelector({selector}); return !!e && e.textContent.trim() === {expected}");
        self.until(&condition, &format!("{css} to read {text:?}")).await;
    }

    /// Saves a screenshot (of `css`, else the page) as `docs/console/<name>.png` when
    /// `CONSOLE_SCREENSHOTS` is set.
    async fn screenshot(&self, name: &str, css: Option<&str>) {
        if std::env::var_os("CONSOLE_SCREENSHOTS").is_none() {
            return;
        }
        // The whole page, from its top: the window as tall as the page for the shot.
        self.script("window.scrollTo(0, 0)").await;
        let height = self.script("return document.documentElement.scrollHeight").await.as_u64().unwrap_or(1000);
        self.call("POST", "/window/rect", json!({ "width": 1280, "height": height.clamp(1000, 4000) + 100 })).await;
        let png = match css {
            Some(css) => {
                let element = self.find(css).await;
                self.call("GET", &format!("/element/{element}/screenshot"), Value::Null).await
            }
            None => self.call("GET", "/screenshot", Value::Null).await,
        };
        self.call("POST", "/window/rect", json!({ "width": 1280, "height": 1000 })).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    async fn close(self) {
        let path = format!("/session/{}", self.id);
        request(&self.driver, "DELETE", &path, None, Some("{}")).await;
    }
}

/// The day before, sealed, and today.
const YESTERDAY: &str = "2020-03-01";
const TODAY: &str = "2020-03-02";

#[test]
fn an_operator_watches_a_fever_arrive_drills_down_and_a_city_sees_only_itself() {
    // Its own thread: the scenario's futures, unoptimized, overflow a test thread's 2 MiB.
    let scenario = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(watch_drill_down_and_switch());
        })
        .unwrap();
    if let Err(panic) = scenario.join() {
        std::panic::resume_unwind(panic);
    }
}

async fn watch_drill_down_and_switch() {
    let driver = Driver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = daybook::auth::Tokens::open(dir.path()).unwrap();
    let scope = |name: &str, read: &str| pb::TokenScope {
        name: name.into(),
        post: vec!["*".into()],
        read: vec![read.into()],
        persons: true,
        ..Default::default()
    };
    let ops = store.issue(&scope("ops", "province")).unwrap();
    let foshan = store.issue(&scope("cdc-foshan", "city:Foshan")).unwrap();
    drop(store);
    let args = ServeArgs { auth: Some("required".into()), ..Backend::Embedded.args(dir.path()) };
    let server = tests::start_with(args.clone(), daybook::Roles::All).await;
    let channel = tonic::transport::Channel::from_shared(server.target.clone()).unwrap().connect().await.unwrap();
    let credentials = daybook::client::Credentials::new(Some(ops.as_str())).unwrap();
    let mut intake = pb::intake_client::IntakeClient::with_interceptor(channel, credentials);

    // S1 (Guangzhou): P1, P2 in class C1 and dorm R1, P3 in class C2 and dorm R2; S3
    // (Foshan): P5. Registered yesterday, everyone checked in the morning yesterday and
    // today, nobody ill.
    let mut s1 = School::new("S1", "Guangzhou", YESTERDAY);
    let mut s3 = School::new("S3", "Foshan", YESTERDAY);
    let mut events = vec![
        s1.register("07:00", &student("S1-P1", "C1", "R1")),
        s1.register("07:00", &student("S1-P2", "C1", "R1")),
        s1.register("07:00", &student("S1-P3", "C2", "R2")),
        s3.register("07:00", &student("S3-P5", "C1", "R1")),
        s1.name("07:00", "school:S1", "广州市第一技工学校", "Guangzhou No. 1 Technical School"),
    ];
    // A hall in Foshan, inspected yesterday: masks not required, to be rectified by the
    // 10th (open, not overdue: no alert); a second hall never inspected.
    let (mut h1, mut h2) = (tests::hall("H1"), tests::hall("H2"));
    events.extend([
        h1.register(&format!("{YESTERDAY} 08:00"), "Foshan", pb::HallKind::CityHall),
        h2.register(&format!("{YESTERDAY} 08:00"), "Foshan", pb::HallKind::TalentBureau),
        h1.inspect(&format!("{YESTERDAY} 10:00"), "I1", "Foshan", &[(2, "2020-03-10")]),
    ]);
    for day in [YESTERDAY, TODAY] {
        s1.on(day);
        s3.on(day);
        for person in ["S1-P1", "S1-P2", "S1-P3"] {
            events.push(s1.temperature("08:00", person, Slot::Morning, 36.5));
        }
        events.push(s3.temperature("08:00", "S3-P5", Slot::Morning, 36.6));
    }
    let results = intake.publish_batch(pb::PublishBatchRequest { events }).await.unwrap().into_inner().results;
    assert!(results.iter().all(|r| r.outcome == pb::Outcome::Accepted as i32), "{results:?}");
    // Noon today: yesterday's deadline (09:00 today) has passed, so it is sealed.
    let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let noon = chrono::NaiveDateTime::parse_from_str(&format!("{TODAY} 12:00"), "%Y-%m-%d %H:%M").unwrap();
    server.clock.as_ref().unwrap().set(noon.and_local_timezone(zone).unwrap().with_timezone(&chrono::Utc));
    let http = server.running.http_addr.to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let path = format!("/api/v1/report?unit=dorm:S1/R2&date={YESTERDAY}");
        let report = tests::http::get(&http, &path, Some(&ops)).await;
        if report.status == 200 && report.json()["report"]["version"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "yesterday not sealed: {}", report.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let browser = driver.session().await;
    browser.open(&format!("http://{http}/")).await;
    // Chinese by default; the page asks for the token.
    browser.until_text("#login h2", "请输入访问令牌").await;
    browser.type_into("#token", &ops).await;
    browser.click("#signin").await;
    browser.until_text("#unit-title", &format!("全省 · {TODAY}")).await;
    browser.until_text("[data-figure=population] .value", "4").await;
    browser.until_text("[data-figure=fever] .value", "0").await;
    browser.until("return document.querySelector('#live').dataset.state === 'on'", "the live connection").await;

    // A fever over gRPC: the count and the alert appear without a reload.
    browser.script("window.notReloaded = true").await;
    // s1 and s3 stand on TODAY now, their event ids going on from the checks'.
    let fever = s1.temperature("11:50", "S1-P3", Slot::Noon, 38.5);
    intake.publish(fever).await.unwrap();
    browser.until_text("[data-figure=fever] .value", "1").await;
    browser.until("return document.querySelector('#alerts li[data-kind=fever]') !== null", "the fever's alert").await;
    let alert = browser.text("#alerts li[data-kind=fever]").await;
    assert!(alert.contains("38.5") && alert.contains("S1-P3") && alert.contains("R2"), "{alert}");
    assert_eq!(browser.script("return window.notReloaded === true").await, true, "the page was reloaded");
    // Two more: a suspected case in Foshan, a confirmed one in Guangzhou; newest first.
    let suspected = s3.diagnosis("11:55", "S3-P5", pb::DiagnosisKind::DiagnosisSuspected);
    intake.publish(suspected).await.unwrap();
    let confirmed = s1.diagnosis("11:58", "S1-P1", pb::DiagnosisKind::DiagnosisConfirmed);
    intake.publish(confirmed).await.unwrap();
    let kinds = "[...document.querySelectorAll('#alerts li[data-kind]')].map(li => li.dataset.kind).join(' ')";
    browser.until(&format!("return {kinds} === 'confirmed suspected fever'"), "three alerts, newest first").await;
    browser.until_text("[data-figure=confirmed] .value", "1 / 1").await;
    // The halls: Foshan's row, the open finding.
    browser.until_text("[data-figure=findings_open] .value", "1").await;
    browser.until_text("[data-figure=halls] .value", "2").await;
    let foshan_halls = browser.text("#inspection-children tr[data-row='city:Foshan']").await;
    assert!(foshan_halls.contains("佛山市") && foshan_halls.contains("0%"), "{foshan_halls}");
    let finding = browser.text("#findings tr[data-finding='H1/I1/MasksRequired']").await;
    assert!(finding.contains("佩戴口罩") && finding.contains("2020-03-10") && finding.contains("未整改"), "{finding}");
    browser.screenshot("province", None).await;
    browser.screenshot("inspections", Some("#inspections-box")).await;
    browser.screenshot("alerts", Some("#alerts-panel")).await;
    // The trends over the last 7 days instead of 14: the province has a report every day.
    browser
        .script("const r = document.querySelector('#range'); r.value = '7'; r.dispatchEvent(new Event('change'))")
        .await;
    browser.until_text("[data-chart=fever] .sub", "2020-02-25 – 2020-03-02").await;

    // Down the five levels by the children tables, to the class of the person with fever.
    for unit in ["city:Guangzhou", "school:S1", "department:S1/D1", "grade:S1/D1/2019", "class:S1/D1/2019/C2"] {
        browser.click(&format!("#children a[data-unit='{unit}']")).await;
        browser
            .until(
                &format!(
                    "return document.querySelector('#crumbs strong') !== null && location.hash.includes({:?})",
                    encode(unit)
                ),
                unit,
            )
            .await;
    }
    browser.until_text("#unit-title", &format!("班级 C2 · {TODAY}")).await;
    // Units by their names where they have one: the school as it named itself, the city as
    // configured.
    assert_eq!(browser.text("#crumbs a[data-unit='school:S1']").await, "广州市第一技工学校");
    assert_eq!(browser.text("#crumbs a[data-unit='city:Guangzhou']").await, "广州市");
    browser.until_text("[data-figure=population] .value", "1").await;
    browser.until_text("[data-figure=fever] .value", "1").await;
    browser.screenshot("class", None).await;
    // Back to the school by the breadcrumb, then to the dorm.
    browser.click("#crumbs a[data-unit='school:S1']").await;
    browser.click("#children a[data-unit='dorm:S1/R2']").await;
    browser.until_text("#unit-title", &format!("宿舍 R2 · {TODAY}")).await;
    browser.until_text("[data-figure=fever] .value", "1").await;
    // The alert links to the person's own unit, the dorm.
    browser.click("#crumbs a[data-unit='province']").await;
    browser.until_text("#unit-title", &format!("全省 · {TODAY}")).await;
    browser.click("#alerts li[data-kind=fever] a").await;
    browser.until_text("#unit-title", &format!("宿舍 R2 · {TODAY}")).await;

    // English on the switch.
    browser.click("#lang").await;
    browser.until_text("[data-figure=fever] .label", "Fever").await;
    browser.until_text("h1", "daybook duty console").await;
    browser.until_text("#unit-title", &format!("Dorm R2 · {TODAY}")).await;

    // Yesterday: sealed, version 1, on time (everyone checked before the deadline).
    browser
        .script(&format!(
            "const d = document.querySelector('#day'); d.value = '{YESTERDAY}'; d.dispatchEvent(new Event('change'))"
        ))
        .await;
    browser.until_text("#unit-title", &format!("Dorm R2 · {YESTERDAY}")).await;
    browser.until("return document.querySelector('#version').dataset.version === '1'", "version 1").await;
    browser.until_text("#status", "on time").await;
    browser.until_text("[data-figure=fever] .value", "0").await;
    // A cough of yesterday, posted now: version 2 of the sealed day, shown as it comes,
    // with what it changed.
    let cough = s1.on(YESTERDAY).symptoms("10:00", "S1-P3", &[tests::Symptom::Cough]);
    intake.publish(cough).await.unwrap();
    browser.until("return document.querySelector('#revisions tr[data-version=\"2\"]') !== null", "version 2").await;
    let revision = browser.text("#revisions tr[data-version='2']").await;
    assert!(revision.contains("version 2") && revision.contains("symptoms.cough 0→1"), "{revision}");
    browser.until_text("[data-figure=symptoms] .value", "1").await;

    // Foshan's office sees Foshan only: no Guangzhou, no province, not the fever.
    browser.click("#signout").await;
    browser.type_into("#token", &foshan).await;
    browser.click("#signin").await;
    browser.open(&format!("http://{http}/")).await;
    browser.until_text("#unit-title", &format!("Foshan · {TODAY}")).await;
    browser
        .until("return document.querySelector('#children a[data-unit=\"school:S3\"]') !== null", "Foshan's school")
        .await;
    // Its halls, one row each.
    browser
        .until("return document.querySelector('#inspection-children tr[data-row=\"hall:H2\"]') !== null", "H2")
        .await;
    let page = browser.script("return document.body.innerText").await;
    let page = page.as_str().unwrap();
    assert!(!page.contains("Guangzhou") && !page.contains("S1"), "{page}");
    browser.until(&format!("return {kinds} === 'suspected'"), "Foshan's alert only").await;
    assert_eq!(browser.script("return document.querySelector('#crumbs a[data-unit=\"province\"]')").await, Value::Null);

    // The server goes down: the page says so, and comes back live by itself once it is up
    // again on the same addresses, with what happened meanwhile.
    let (grpc_addr, http_addr) = (server.running.grpc_addr, server.running.http_addr);
    server.running.stop().await.unwrap();
    browser
        .until("return document.querySelector('#live').dataset.state === 'lost'", "the page to say it lost the server")
        .await;
    let args = ServeArgs { grpc_addr: Some(grpc_addr), http_addr: Some(http_addr), ..args };
    let server = tests::start_with(args, daybook::Roles::All).await;
    let channel = tonic::transport::Channel::from_shared(server.target.clone()).unwrap().connect().await.unwrap();
    let credentials = daybook::client::Credentials::new(Some(ops.as_str())).unwrap();
    let mut intake = pb::intake_client::IntakeClient::with_interceptor(channel, credentials);
    let fever = s3.temperature("12:30", "S3-P5", Slot::Noon, 38.1);
    intake.publish(fever).await.unwrap();
    browser.until("return document.querySelector('#live').dataset.state === 'on'", "the page to be live again").await;
    browser.until_text("[data-figure=fever] .value", "1").await;
    browser.until(&format!("return {kinds} === 'fever suspected'"), "Foshan's fever").await;
    browser.close().await;
    server.running.stop().await.unwrap();
}

/// A unit key as the page puts it in its address.
fn encode(unit: &str) -> String {
    unit.replace(':', "%3A").replace('/', "%2F")
}
