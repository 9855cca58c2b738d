//! Golden scenarios written as data (`tests/golden/*.toml`): events in, expected report
//! cells out, each named after the rule it checks. Every scenario runs on the embedded
//! log and on Kafka against the real server.
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
//! ones dotted: `symptoms.cough`, `checks.morning.done`, `batches.2.not_yet_returned`.

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
    cells: BTreeMap<String, Value>,
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

async fn run_all(backend: Backend) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    // GOLDEN=part-of-a-file-name runs only the matching scenarios.
    if let Ok(only) = std::env::var("GOLDEN") {
        files.retain(|f| f.to_string_lossy().contains(&only));
    }
    assert!(!files.is_empty(), "no golden scenarios in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let scenario: Scenario = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let data = tempfile::tempdir().unwrap();
        let mut server = start(data.path(), &backend.fresh()).await;
        // `clock DATE TIME` moves the province's clock (sealing the days it closes)
        // after the events before it are in.
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
        for expect in &scenario.expect {
            let report = server.report(&expect.unit, &expect.date).await;
            if std::env::var("GOLDEN_DEBUG").is_ok() {
                eprintln!("{} {}: {}", expect.unit, expect.date, daybook::report::to_json(&report));
            }
            let mut got = BTreeMap::new();
            cells(&daybook::report::to_json(&report), "", &mut got);
            for (cell, want) in &expect.cells {
                let have = got.get(cell).unwrap_or_else(|| panic!("{}: no cell {cell:?}", scenario.name));
                assert_eq!(
                    have, want,
                    "{} ({}): {} on {}: {cell}",
                    scenario.name, scenario.rule, expect.unit, expect.date
                );
            }
        }
        server.running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn golden_scenarios_on_the_embedded_log() {
    run_all(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_scenarios_on_kafka() {
    run_all(Backend::kafka()).await;
}
