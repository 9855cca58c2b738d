//! Golden scenarios written as data (`tests/golden/*.toml`): events in, expected report
//! cells out, each named after the rule it checks. Every scenario is a test of its own on
//! the embedded log and on Kafka against the real server (`cargo test -p tests --test
//! golden NAME` runs one); `GOLDEN_REGENERATE=1` writes what each observed for review.
//!
//! An event is one line: `DATE TIME SCHOOL PERSON VERB ARGS…`, for example
//! `2020-03-02 07:30 S1 A temperature morning 38.2`. Verbs and their arguments:
//! `register ROLE DEPT[/GRADE/CLASS] [dorm D] [city C] [off-campus]`,
//! `move DEPT[/GRADE/CLASS] [dorm D]`, `left`, `temperature SLOT CELSIUS`,
//! `symptoms S[,S…]`, `card`, `diagnosis suspected|confirmed|excluded|recovered`,
//! `sick-start`, `sick-end`, `whereabouts PROVINCE [key-area] [on-campus]`,
//! `history travel|contact|close-contact DATE`, `returned BATCH`,
//! `isolate home|centralized [ROOMMATE…]`, `release`, `gate in|out`, `leave UNTIL`,
//! `leave-closed`. A line `clock DATE TIME` moves the province's clock there (days whose
//! deadline, 09:00 the next morning, has passed are sealed) once the events above it are in.
//! Cells are the report's JSON fields (`daybook report --json`), nested ones dotted:
//! `symptoms.cough`, `checks.morning.done`, `batches.2.not_yet_returned`. An expectation
//! with `error = "NotFound: …"` instead of cells expects the request refused with an error
//! that starts so.
//!
//! Service-window halls post with the hall's code as SCHOOL (the event's `site`) and `-`
//! as PERSON: `hall-register KIND CITY` (KIND: `service-hall`, `social-insurance-bureau`,
//! `talent-bureau`, `examination-bureau`, `rehabilitation-hospital`, `city-hall`; named
//! `Hall CODE`), `hall-close`, `inspect ID CITY [fail ITEM DEADLINE]…` (ITEM 1 to 9 in the
//! checklist's order; every item not listed passes; a failed one's finding reads `item
//! ITEM failed`) and `rectify ID ITEM`, for example
//! `2020-03-03 10:00 H1 - inspect I1 Guangzhou fail 2 2020-03-05`.
//!
//! An expectation reads the unit's daily report unless it says `report = "inspection"`
//! (GetInspectionReport; units `province`, `city:C`, `hall:H`) or `report = "findings"`
//! (ListFindings, with `filter = "all"` (the default), `"open"` or `"overdue"`). An
//! inspection report's cells are its JSON fields (`wire::inspection_report_to_json`),
//! with `items_failed.1` … `items_failed.9` the failed results per checklist item and
//! `halls_not_inspected_in_window` the codes listed, joined by commas (`""` when none), so
//! that a cell states the whole list. A listing's cells are `count`, the findings listed,
//! and per finding `HALL/INSPECTION/ITEM.FIELD`: `H1/I1/2.status` (`FINDING_STATUS_…`),
//! `.opened`, `.deadline`, `.rectified` (`""` while not), `.rectified_by_reinspection`,
//! `.city`. A sealed inspection report is published by the server's publisher a moment
//! after the fold (a revision too), so one whose cells are not all as expected is read
//! again for up to 10 s before the scenario fails.

use std::collections::BTreeMap;

use serde_json::Value;
use tests::{Backend, start};
use wire::pb;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    rule: String,
    events: Vec<String>,
    expect: Vec<Expect>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    unit: String,
    date: String,
    /// `daily` (the default), `inspection` or `findings`.
    #[serde(default)]
    report: Kind,
    /// The findings listed (`report = "findings"`): `all` (the default), `open`, `overdue`.
    filter: Option<String>,
    #[serde(default)]
    cells: BTreeMap<String, Value>,
    /// The start of the error the request is answered with instead (`NotFound: …`).
    error: Option<String>,
}

/// What an expectation reads.
#[derive(serde::Deserialize, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Daily,
    Inspection,
    Findings,
}

fn parse_event(n: usize, line: &str) -> pb::Event {
    use pb::event::Payload;
    let words: Vec<&str> = line.split_whitespace().collect();
    let [date, time, school, person, verb, args @ ..] = words.as_slice() else {
        panic!("event {n}: too short: {line}")
    };
    let person = person.to_string();
    let arg = |i: usize| *args.get(i).unwrap_or_else(|| panic!("event {n}: {verb} needs more arguments: {line}"));
    let after = |word: &str| args.iter().position(|a| *a == word).map(|i| arg(i + 1).to_string());
    let placement = |path: &str| {
        let parts: Vec<&str> = path.split('/').collect();
        pb::Placement {
            department: parts[0].into(),
            grade: parts.get(1).unwrap_or(&"").to_string(),
            class_name: parts.get(2).unwrap_or(&"").to_string(),
            dorm: after("dorm").unwrap_or_default(),
        }
    };
    let health = |kind| Payload::Health(pb::HealthEvent { person_id: person.clone(), kind: Some(kind) });
    let movement = |kind| Payload::Movement(pb::MovementEvent { person_id: person.clone(), kind: Some(kind) });
    let roster = |change| Payload::Roster(pb::RosterEvent { person_id: person.clone(), change: Some(change) });
    let named = |prefix: &str, value: &str| format!("{prefix}_{}", value.replace('-', "_")).to_uppercase();
    if let Some(payload) = hall_payload(n, line, school, verb, args) {
        return pb::Event {
            site: school.to_string(),
            event_id: format!("golden-{n}"),
            source: "golden".into(),
            school: String::new(),
            occurred_at: format!("{date}T{time}:00+08:00"),
            payload: Some(payload),
        };
    }
    use pb::health_event::Kind as H;
    use pb::movement_event::Kind as M;
    use pb::roster_event::Change as R;
    let payload = match *verb {
        "register" => roster(R::Registered(pb::Registered {
            role: pb::Role::from_str_name(&named("ROLE", arg(0))).expect("role") as i32,
            placement: Some(placement(arg(1))),
            city: after("city").unwrap_or_else(|| "Guangzhou".into()),
            on_campus: !args.contains(&"off-campus"),
        })),
        "move" => roster(R::Moved(pb::Moved { placement: Some(placement(arg(0))) })),
        "left" => roster(R::Left(pb::Left {})),
        "temperature" => health(H::Temperature(pb::TemperatureTaken {
            slot: pb::Slot::from_str_name(&named("SLOT", arg(0))).expect("slot") as i32,
            celsius: arg(1).parse().expect("celsius"),
        })),
        "symptoms" => health(H::Symptoms(pb::SymptomsReported {
            symptoms: arg(0)
                .split(',')
                .map(|s| pb::Symptom::from_str_name(&named("SYMPTOM", s)).expect("symptom") as i32)
                .collect(),
        })),
        "card" => health(H::HealthCard(pb::HealthCardSubmitted { abnormal_last_14_days: false })),
        "diagnosis" => health(H::Diagnosis(pb::Diagnosis {
            kind: pb::DiagnosisKind::from_str_name(&named("DIAGNOSIS", arg(0))).expect("diagnosis") as i32,
        })),
        "sick-start" => health(H::SickAbsenceStarted(pb::SickAbsenceStarted { reason: "ill".into() })),
        "sick-end" => health(H::SickAbsenceEnded(pb::SickAbsenceEnded {})),
        "whereabouts" => movement(M::Whereabouts(pb::WhereaboutsDeclared {
            province: arg(0).into(),
            city: String::new(),
            in_key_area: args.contains(&"key-area"),
            on_campus: args.contains(&"on-campus"),
        })),
        "history" => movement(M::TwoHistories(pb::TwoHistoriesDeclared {
            kind: pb::HistoryKind::from_str_name(&named("HISTORY", arg(0))).expect("history") as i32,
            date: arg(1).into(),
        })),
        "returned" => {
            movement(M::Returned(pb::Returned { date: date.to_string(), batch: arg(0).parse().expect("batch") }))
        }
        "isolate" => movement(M::IsolationStarted(pb::IsolationStarted {
            kind: pb::IsolationKind::from_str_name(&named("ISOLATION", arg(0))).expect("isolation") as i32,
            place: "campus".into(),
            roommates: args[1..].iter().map(|r| r.to_string()).collect(),
        })),
        "release" => movement(M::Released(pb::Released {})),
        "gate" => movement(M::GatePassed(pb::GatePassed {
            direction: pb::Direction::from_str_name(&named("DIRECTION", arg(0))).expect("direction") as i32,
        })),
        "leave" => movement(M::LeaveRequested(pb::LeaveRequested { until: arg(0).into(), reason: "leave".into() })),
        "leave-closed" => movement(M::LeaveClosed(pb::LeaveClosed {})),
        other => panic!("event {n}: unknown verb {other:?}: {line}"),
    };
    pb::Event {
        site: String::new(),
        event_id: format!("golden-{n}"),
        source: "golden".into(),
        school: school.to_string(),
        occurred_at: format!("{date}T{time}:00+08:00"),
        payload: Some(payload),
    }
}

/// A hall's event (`hall-register`, `hall-close`, `inspect`, `rectify`), or `None` for
/// another verb.
fn hall_payload(n: usize, line: &str, hall: &str, verb: &str, args: &[&str]) -> Option<pb::event::Payload> {
    use pb::inspection_event::Kind as I;
    let arg = |i: usize| *args.get(i).unwrap_or_else(|| panic!("event {n}: {verb} needs more arguments: {line}"));
    let item = |raw: &str| -> i32 {
        let item: i32 = raw.parse().unwrap_or_else(|_| panic!("event {n}: item {raw:?} is not 1 to 9: {line}"));
        assert!((1..=9).contains(&item), "event {n}: item {item} is not 1 to 9: {line}");
        item
    };
    let kind = match verb {
        "hall-register" => I::HallRegistered(pb::HallRegistered {
            name_zh: format!("大厅{hall}"),
            name_en: format!("Hall {hall}"),
            city: arg(1).into(),
            kind: pb::HallKind::from_str_name(&format!("HALL_KIND_{}", arg(0).replace('-', "_").to_uppercase()))
                .unwrap_or_else(|| panic!("event {n}: hall kind {:?}: {line}", arg(0))) as i32,
        }),
        "hall-close" => I::HallClosed(pb::HallClosed {}),
        "inspect" => {
            let mut failed = BTreeMap::new();
            let mut rest = &args[2..];
            while let [word, which, deadline, tail @ ..] = rest {
                assert_eq!(*word, "fail", "event {n}: inspect takes `fail ITEM DEADLINE`…: {line}");
                failed.insert(item(which), deadline.to_string());
                rest = tail;
            }
            assert!(rest.is_empty(), "event {n}: inspect takes `fail ITEM DEADLINE`…: {line}");
            let items = (1..=9)
                .map(|item| match failed.get(&item) {
                    Some(deadline) => pb::ChecklistResult {
                        item,
                        passed: false,
                        finding: format!("item {item} failed"),
                        deadline: deadline.clone(),
                    },
                    None => pb::ChecklistResult { item, passed: true, ..Default::default() },
                })
                .collect();
            I::Inspected(pb::Inspected { inspection_id: arg(0).into(), city: arg(1).into(), items })
        }
        "rectify" => I::Rectified(pb::Rectified { inspection_id: arg(0).into(), item: item(arg(1)) }),
        _ => return None,
    };
    Some(pb::event::Payload::Inspection(pb::InspectionEvent { kind: Some(kind) }))
}

/// The report's JSON as dotted paths; arrays keyed by slot, batch or changed field
/// (`changes.fever.after`), other arrays' items by their value (`reporting.missing."school:S2"`).
fn cells(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                cells(v, &format!("{prefix}{k}."), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                let key = item
                    .get("slot")
                    .and_then(Value::as_str)
                    .map(|s| s.trim_start_matches("SLOT_").to_lowercase())
                    .or_else(|| item.get("batch").map(|b| b.to_string()))
                    .or_else(|| item.get("field").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| item.to_string());
                cells(item, &format!("{prefix}{key}."), out);
            }
        }
        leaf => {
            out.insert(prefix.trim_end_matches('.').to_owned(), leaf.clone());
        }
    }
}

/// Runs the scenario `tests/golden/NAME.toml` against a fresh server on `backend`. With
/// `GOLDEN_REGENERATE=1` it asserts nothing and writes the cells it observed beside the
/// file (`NAME.observed.toml`, same layout) for review: expected values are worked out
/// from the definitions, never copied from what the code gives.
async fn run(name: &str, backend: Backend) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    let file = dir.join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&file).unwrap();
    let scenario: Scenario = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let regenerate = std::env::var("GOLDEN_REGENERATE").is_ok_and(|v| v == "1");
    let data = tempfile::tempdir().unwrap();
    let mut server = start(data.path(), &backend).await;
    // `clock DATE TIME` moves the province's clock (sealing the days it closes) after the
    // events before it are in.
    let mut events = Vec::new();
    for (n, line) in scenario.events.iter().enumerate() {
        match line.strip_prefix("clock ") {
            Some(at) => {
                server.post_all(std::mem::take(&mut events)).await;
                server.set_clock(at).await;
            }
            None => events.push(parse_event(n, line)),
        }
    }
    server.post_all(events).await;
    let mut observed = String::new();
    for expect in &scenario.expect {
        let mut got = observe(&mut server, expect).await;
        // A sealed inspection report is as the publisher last published it: a revision
        // shows once its next pass (at most half a second after the fold) is through.
        let published_later = expect.report == Kind::Inspection && expect.error.is_none() && !regenerate;
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while published_later
            && tokio::time::Instant::now() < until
            && got.as_ref().is_ok_and(|got| expect.cells.iter().any(|(cell, want)| got.get(cell) != Some(want)))
        {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            got = observe(&mut server, expect).await;
        }
        let context = format!("{} ({}): {} on {}", scenario.name, scenario.rule, expect.unit, expect.date);
        observed += &format!("[[expect]]\nunit = {:?}\ndate = {:?}\n", expect.unit, expect.date);
        if expect.report != Kind::Daily {
            observed += &format!("report = {:?}\n", format!("{:?}", expect.report).to_lowercase());
        }
        if let Some(filter) = &expect.filter {
            observed += &format!("filter = {filter:?}\n");
        }
        if let Some(want) = &expect.error {
            let error = got.as_ref().expect_err(&format!("{context}: a report, where {want:?} was expected"));
            observed += &format!("error = {error:?}\n\n");
            assert!(regenerate || error.starts_with(want.as_str()), "{context}: {error:?} is not {want:?}");
            continue;
        }
        let got = got.unwrap_or_else(|e| panic!("{context}: {e}"));
        let mut line = Vec::new();
        for (cell, want) in &expect.cells {
            let have = got.get(cell).unwrap_or_else(|| panic!("{}: no cell {cell:?}", scenario.name));
            line.push(format!("{cell:?} = {have}"));
            assert!(regenerate || have == want, "{context}: {cell}: {have} where {want} was expected");
        }
        observed += &format!("cells = {{ {} }}\n\n", line.join(", "));
    }
    if regenerate {
        std::fs::write(dir.join(format!("{name}.observed.toml")), observed).unwrap();
    }
    server.running.stop().await.unwrap();
}

/// A report's cells, or the gRPC error it is answered with (`CODE: message`).
async fn observe(server: &mut tests::Server, expect: &Expect) -> Result<BTreeMap<String, Value>, String> {
    server.caught_up().await;
    let (unit, date) = (expect.unit.clone(), expect.date.clone());
    let refused = |status: tonic::Status| format!("{:?}: {}", status.code(), status.message());
    let mut got = BTreeMap::new();
    let json = match expect.report {
        Kind::Daily => {
            let request = pb::DailyReportRequest { unit, date };
            let report = server.reports.get_daily_report(request).await.map_err(refused)?.into_inner();
            let json = wire::json::report_to_json(&report);
            cells(&json, "", &mut got);
            json
        }
        Kind::Inspection => {
            let request = pb::InspectionReportRequest { unit, date };
            let report = server.reports.get_inspection_report(request).await.map_err(refused)?.into_inner();
            let mut json = wire::inspection_report_to_json(&report);
            // Items by their place in the checklist; the halls listed as one cell.
            let items: serde_json::Map<String, Value> =
                report.items_failed.iter().zip(1..).map(|(n, item)| (item.to_string(), Value::from(*n))).collect();
            json["items_failed"] = Value::Object(items);
            json["halls_not_inspected_in_window"] = report.halls_not_inspected_in_window.join(",").into();
            cells(&json, "", &mut got);
            json
        }
        Kind::Findings => {
            let filter = match expect.filter.as_deref().unwrap_or("all") {
                "all" => pb::FindingFilter::All,
                "open" => pb::FindingFilter::Open,
                "overdue" => pb::FindingFilter::Overdue,
                other => panic!("{}: filter {other:?} is not all, open or overdue", expect.unit),
            };
            let request = pb::ListFindingsRequest { unit, date, filter: filter as i32 };
            let listed = server.reports.list_findings(request).await.map_err(refused)?.into_inner().findings;
            got.insert("count".to_owned(), Value::from(listed.len()));
            for f in &listed {
                let key = format!("{}/{}/{}", f.hall, f.inspection_id, f.item);
                let status = pb::FindingStatus::try_from(f.status).map(|s| s.as_str_name()).unwrap_or_default();
                for (field, value) in [
                    ("status", Value::from(status)),
                    ("opened", f.opened.clone().into()),
                    ("deadline", f.deadline.clone().into()),
                    ("rectified", f.rectified.clone().into()),
                    ("rectified_by_reinspection", f.rectified_by_reinspection.into()),
                    ("city", f.city.clone().into()),
                ] {
                    got.insert(format!("{key}.{field}"), value);
                }
            }
            serde_json::to_value(&got).unwrap()
        }
    };
    if std::env::var("GOLDEN_DEBUG").is_ok() {
        eprintln!("{} {}: {json}", expect.unit, expect.date);
    }
    Ok(got)
}

/// One test per scenario file and backend, listed by `build.rs`.
mod embedded {
    macro_rules! golden {
        ($name:ident) => {
            #[tokio::test]
            async fn $name() {
                super::run(stringify!($name), tests::Backend::Embedded).await;
            }
        };
    }
    include!(concat!(env!("OUT_DIR"), "/golden_scenarios.rs"));
}

mod kafka {
    macro_rules! golden {
        ($name:ident) => {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::run(stringify!($name), tests::Backend::kafka()).await;
            }
        };
    }
    include!(concat!(env!("OUT_DIR"), "/golden_scenarios.rs"));
}
