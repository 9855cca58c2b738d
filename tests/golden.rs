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
//! deadline, 09:00 the next morning, has passed are sealed) once the events above it are in. Cells are the report's JSON fields (`daybook report --json`), nested
//! ones dotted: `symptoms.cough`, `checks.morning.done`, `batches.2.not_yet_returned`. An
//! expectation with `error = "NotFound: …"` instead of cells expects the request refused
//! with an error that starts so.

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
    #[serde(default)]
    cells: BTreeMap<String, Value>,
    /// The start of the error the request is answered with instead (`NotFound: …`).
    error: Option<String>,
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
        let got = observe(&mut server, &expect.unit, &expect.date).await;
        let context = format!("{} ({}): {} on {}", scenario.name, scenario.rule, expect.unit, expect.date);
        observed += &format!("[[expect]]\nunit = {:?}\ndate = {:?}\n", expect.unit, expect.date);
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
async fn observe(server: &mut tests::Server, unit: &str, date: &str) -> Result<BTreeMap<String, Value>, String> {
    server.caught_up().await;
    let request = pb::DailyReportRequest { unit: unit.into(), date: date.into() };
    let report = match server.reports.get_daily_report(request).await {
        Ok(report) => report.into_inner(),
        Err(status) => return Err(format!("{:?}: {}", status.code(), status.message())),
    };
    let json = wire::json::report_to_json(&report);
    if std::env::var("GOLDEN_DEBUG").is_ok() {
        eprintln!("{unit} {date}: {json}");
    }
    let mut got = BTreeMap::new();
    cells(&json, "", &mut got);
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
