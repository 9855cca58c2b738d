//! Property: whatever a client sends, if intake accepts it the fold folds it: no panic, no
//! quarantine, no record left unread. Events are drawn mostly near valid (so that most
//! pass intake and reach the fold's deeper paths) with hostile values mixed in: far and
//! malformed dates, extreme temperatures, unknown enum values, long lists, odd text.
//!
//! `PROPTEST_CASES` sets the number of cases (256 by default); `.ci/run` runs a longer,
//! still bounded, fuzz run with it.

use aggregator::{FoldConfig, Folder, Projections};
use domain::inspection::InspectionUnit;
use domain::{Day, UnitKey};
use eventlog::{Polled, Record, TopicPartition};
use proptest::prelude::*;
use prost::Message;
use wire::pb;

/// An enum field: mostly its known values, sometimes anything.
fn enum_value(known: i32) -> impl Strategy<Value = i32> {
    prop_oneof![9 => 0..known, 1 => any::<i32>()]
}

/// Free text: usually a short plausible word, sometimes any characters, sometimes long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["Wuhan", "Guangzhou", "dorm 3", "home", "", "广州"]).prop_map(String::from),
        2 => "\\PC{0,12}",
        1 => prop::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect()),
    ]
}

fn person() -> impl Strategy<Value = String> {
    prop_oneof![9 => (1..8u32).prop_map(|n| format!("P{n}")), 1 => text()]
}

fn school() -> impl Strategy<Value = String> {
    prop_oneof![9 => prop::sample::select(vec!["S1", "S2", "S3"]).prop_map(String::from), 1 => text()]
}

/// A payload date: near the events' days (inside or just outside intake's window),
/// or an edge of the calendar, or malformed.
fn date() -> impl Strategy<Value = String> {
    let base = Day::from_ymd_opt(2020, 3, 5).unwrap();
    prop_oneof![
        6 => (-20i64..20).prop_map(move |d| (base + chrono::Duration::days(d)).format("%Y-%m-%d").to_string()),
        2 => (-800i64..800).prop_map(move |d| (base + chrono::Duration::days(d)).format("%Y-%m-%d").to_string()),
        1 => prop::sample::select(vec![
            "+262142-12-31", "262142-12-31", "9999-12-31", "0001-01-01", "2020-02-30", "2020-02-29",
            "2020-1-1", " 2020-03-01", "", "-2020-03-01",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,12}",
    ]
}

/// When the event happened: on the events' days at any hour and offset, or an edge.
fn occurred_at() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => (1..10u32, 0..24u32, 0..60u32, prop::sample::select(vec!["+08:00", "Z", "-12:00", "+14:00"]))
            .prop_map(|(day, h, m, zone)| format!("2020-03-{day:02}T{h:02}:{m:02}:00{zone}")),
        1 => prop::sample::select(vec![
            "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-12:00", "+262142-12-31T00:00:00Z", "2020-03-01",
        ])
        .prop_map(String::from),
    ]
}

fn placement() -> impl Strategy<Value = Option<pb::Placement>> {
    let part = |names: &'static [&'static str]| prop_oneof![9 => prop::sample::select(names), 1 => Just("")];
    prop::option::weighted(
        0.95,
        (part(&["D1", "D2"]), part(&["G1", "G2"]), part(&["C1", "C2", "C3"]), part(&["R1", "R2"])).prop_map(
            |(department, grade, class_name, dorm)| pb::Placement {
                department: department.into(),
                grade: grade.into(),
                class_name: class_name.into(),
                dorm: dorm.into(),
            },
        ),
    )
}

fn roster() -> impl Strategy<Value = pb::event::Payload> {
    use pb::roster_event::Change;
    let change = prop_oneof![
        3 => (enum_value(8), placement(), prop_oneof![4 => Just("Wuhan".to_owned()), 1 => text()], any::<bool>())
            .prop_map(|(role, placement, city, on_campus)| {
                Change::Registered(pb::Registered { role, placement, city, on_campus })
            }),
        1 => placement().prop_map(|placement| Change::Moved(pb::Moved { placement })),
        1 => Just(Change::Left(pb::Left {})),
    ];
    (person(), change)
        .prop_map(|(person_id, change)| pb::event::Payload::Roster(pb::RosterEvent { person_id, change: Some(change) }))
}

fn health() -> impl Strategy<Value = pb::event::Payload> {
    use pb::health_event::Kind;
    let celsius = prop_oneof![8 => 35.0..41.0f64, 1 => Just(37.3), 1 => any::<f64>()];
    let kind = prop_oneof![
        4 => (enum_value(6), celsius).prop_map(|(slot, celsius)| Kind::Temperature(pb::TemperatureTaken { slot, celsius })),
        2 => prop::collection::vec(enum_value(5), 0..6).prop_map(|symptoms| Kind::Symptoms(pb::SymptomsReported { symptoms })),
        1 => any::<bool>().prop_map(|abnormal_last_14_days| Kind::HealthCard(pb::HealthCardSubmitted { abnormal_last_14_days })),
        2 => enum_value(5).prop_map(|kind| Kind::Diagnosis(pb::Diagnosis { kind })),
        1 => text().prop_map(|reason| Kind::SickAbsenceStarted(pb::SickAbsenceStarted { reason })),
        1 => Just(Kind::SickAbsenceEnded(pb::SickAbsenceEnded {})),
    ];
    (person(), kind)
        .prop_map(|(person_id, kind)| pb::event::Payload::Health(pb::HealthEvent { person_id, kind: Some(kind) }))
}

fn movement() -> impl Strategy<Value = pb::event::Payload> {
    use pb::movement_event::Kind;
    let roommates = prop_oneof![
        8 => prop::collection::vec(person(), 0..6),
        1 => prop::collection::vec((1..80u32).prop_map(|n| format!("P{n}")), 40..60),
    ];
    let kind = prop_oneof![
        1 => (text(), text(), any::<bool>(), any::<bool>()).prop_map(|(province, city, in_key_area, on_campus)| {
            Kind::Whereabouts(pb::WhereaboutsDeclared { province, city, in_key_area, on_campus })
        }),
        2 => (enum_value(4), date()).prop_map(|(kind, date)| Kind::TwoHistories(pb::TwoHistoriesDeclared { kind, date })),
        2 => (date(), prop_oneof![9 => 0..8u32, 1 => any::<u32>()])
            .prop_map(|(date, batch)| Kind::Returned(pb::Returned { date, batch })),
        2 => (enum_value(3), text(), roommates)
            .prop_map(|(kind, place, roommates)| Kind::IsolationStarted(pb::IsolationStarted { kind, place, roommates })),
        1 => Just(Kind::Released(pb::Released {})),
        1 => enum_value(3).prop_map(|direction| Kind::GatePassed(pb::GatePassed { direction })),
        2 => (date(), text()).prop_map(|(until, reason)| Kind::LeaveRequested(pb::LeaveRequested { until, reason })),
        1 => Just(Kind::LeaveClosed(pb::LeaveClosed {})),
    ];
    (person(), kind)
        .prop_map(|(person_id, kind)| pb::event::Payload::Movement(pb::MovementEvent { person_id, kind: Some(kind) }))
}

fn inspection() -> impl Strategy<Value = pb::event::Payload> {
    use pb::inspection_event::Kind;
    let item = (enum_value(10), any::<bool>(), text(), date())
        .prop_map(|(item, passed, finding, deadline)| pb::ChecklistResult { item, passed, finding, deadline });
    // Mostly the whole checklist, each item once (what intake takes), else any list.
    let checklist =
        (prop::collection::vec((any::<bool>(), date()), 9), Just((1..=9).collect::<Vec<i32>>()).prop_shuffle())
            .prop_map(|(results, order)| {
                order
                    .into_iter()
                    .zip(results)
                    .map(|(item, (passed, deadline))| pb::ChecklistResult {
                        item,
                        passed,
                        finding: "dirty".into(),
                        deadline,
                    })
                    .collect::<Vec<_>>()
            });
    let items = prop_oneof![3 => checklist, 1 => prop::collection::vec(item, 0..11)];
    let city = || prop_oneof![4 => Just("Guangzhou".to_owned()), 1 => text()];
    let kind = prop_oneof![
        2 => (prop_oneof![4 => (0..4u32).prop_map(|n| format!("I{n}")), 1 => text()], city(), items)
            .prop_map(|(inspection_id, city, items)| Kind::Inspected(pb::Inspected { inspection_id, city, items })),
        1 => (prop_oneof![4 => (0..4u32).prop_map(|n| format!("I{n}")), 1 => text()], enum_value(10))
            .prop_map(|(inspection_id, item)| Kind::Rectified(pb::Rectified { inspection_id, item })),
        1 => (text(), text(), city(), enum_value(7)).prop_map(
            |(name_zh, name_en, city, kind)| {
                Kind::HallRegistered(pb::HallRegistered { name_zh, name_en, city, kind })
            }
        ),
        1 => Just(Kind::HallClosed(pb::HallClosed {})),
    ];
    kind.prop_map(|kind| pb::event::Payload::Inspection(pb::InspectionEvent { kind: Some(kind) }))
}

fn event() -> impl Strategy<Value = pb::Event> {
    let payload = prop_oneof![3 => roster(), 4 => health(), 4 => movement(), 2 => inspection()];
    let event_id = prop_oneof![9 => (0..200u32).prop_map(|n| format!("e{n}")), 1 => text()];
    // The site in `site` or in `school` (its former name), now and then in both.
    (event_id, school(), occurred_at(), payload, 0..3u8).prop_map(|(event_id, site, occurred_at, payload, field)| {
        let (site, school) = match field {
            0 => (String::new(), site),
            1 => (site, String::new()),
            _ => (site.clone(), site),
        };
        pb::Event { site, event_id, source: "fuzz".into(), school, occurred_at, payload: Some(payload) }
    })
}

fn polled(offset: u64, event: &pb::Event) -> Polled {
    let at = TopicPartition { topic: "events".into(), partition: 0 };
    let record =
        Record { topic: at.topic.clone(), key: event.school.clone(), headers: vec![], payload: event.encode_to_vec() };
    Polled { at, offset, record }
}

proptest! {
    #[test]
    fn whatever_intake_accepts_the_fold_folds(events in prop::collection::vec(event(), 1..80), batch in 1usize..16) {
        let accepted: Vec<pb::Event> =
            events.into_iter().filter(|e| wire::event_from_proto(e.clone()).is_ok()).collect();
        let dir = tempfile::tempdir().unwrap();
        let projections = Projections::new(aggregator::store::open(dir.path()).unwrap());
        let config = FoldConfig::default();
        let records: Vec<Polled> = (0..).zip(&accepted).map(|(offset, e)| polled(offset, e)).collect();
        let mut folder = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        for (n, chunk) in records.chunks(batch).enumerate() {
            let outcome = folder.fold_batch(chunk);
            prop_assert!(outcome.is_ok(), "{:?}", outcome.err());
            prop_assert_eq!(outcome.unwrap().unreadable, 0);
            // A restart now and then: the state must load back as well as fold.
            if n % 3 == 2 {
                folder = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
            }
        }
        prop_assert_eq!(projections.quarantined_count(), 0);
        // And every unit's reports and lists read back.
        let read = reports::ReadModel::new(projections.clone(), domain::close::CloseRules::default());
        for (unit, _) in projections.units(None, None).unwrap() {
            for day in 0..20 {
                read.figures(&unit, Day::from_ymd_opt(2020, 2, 25).unwrap() + chrono::Duration::days(day)).unwrap();
            }
            projections.key_persons(&unit, Day::from_ymd_opt(2020, 3, 10).unwrap()).unwrap();
        }
        projections.key_persons(&UnitKey::province(), Day::from_ymd_opt(2020, 3, 10).unwrap()).unwrap();
        // The halls' inspection reports, findings and a seal's alerts read back too.
        let halls = read.halls().unwrap();
        for day in 0..20 {
            let day = Day::from_ymd_opt(2020, 2, 25).unwrap() + chrono::Duration::days(day);
            let reports = read.inspection_reports(&InspectionUnit::Province, day).unwrap().unwrap();
            prop_assert!(reports.iter().any(|r| r.unit == InspectionUnit::Province));
            read.findings(&InspectionUnit::Province, day, reports::inspection::FindingFilter::All).unwrap();
            read.inspection_alerts(&halls, day);
        }
    }
}

/// The generator reaches the fold with every kind of hall event: intake takes some of
/// each (a fuzz that never gets past intake would prove nothing of the fold).
#[test]
fn intake_takes_some_hall_events_of_every_kind() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut kinds = std::collections::HashSet::new();
    for _ in 0..2_000 {
        let event = event().new_tree(&mut runner).unwrap().current();
        if let Ok(envelope) = wire::event_from_proto(event)
            && let domain::Payload::Inspection(inspection) = envelope.payload
        {
            kinds.insert(std::mem::discriminant(&inspection));
        }
    }
    assert_eq!(kinds.len(), 4, "Inspected, Rectified, HallRegistered and HallClosed each accepted");
}
