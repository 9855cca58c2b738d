//! Property: whatever the arrival order, batching, duplication, re-delivery and restarts,
//! the folded reports equal a plain recomputation from the full event list.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aggregator::{Folder, Projections};
use chrono::FixedOffset;
use domain::event::Slot;
use domain::person::Stamp;
use domain::report::ReportStatus;
use domain::timeline::Timeline;
use domain::{DailyReport, Day, Fact, Payload, Rules, Tally, UnitKey};
use eventlog::{Polled, Record, TopicPartition};
use prost::Message;
use wire::pb;

mod common;
use common::Rng;

const DAYS: u32 = 4;
/// Days compared: past the 14 days of observation, so that releases fall due in range.
const CHECKED_DAYS: u32 = DAYS + 16;

fn day(n: u32) -> Day {
    Day::from_ymd_opt(2020, 3, 1 + n).unwrap()
}

fn topic_of(event: &pb::Event) -> &'static str {
    match event.payload {
        Some(pb::event::Payload::Roster(_)) => "roster",
        Some(pb::event::Payload::Health(_)) => "health",
        _ => "movement",
    }
}

/// One event of a person: its stamp, its day, what it says and when it was acknowledged.
type Posted = (Stamp, Day, Fact, Option<i64>);

/// The domain's tallies summed per unit and day, and the same persons' counts by definition.
type Reference = (BTreeMap<(UnitKey, Day), Tally>, BTreeMap<(UnitKey, Day), Defined>);

/// Reports recomputed from scratch: each person's events in time order, summed per day.
/// Roommates are whoever any isolation paired, either side naming the other; each
/// abnormal sign of one is a `RoommateShowedSigns` of the others on the same day.
fn reference(events: &[pb::Event], rules: &Rules, zone: FixedOffset) -> Reference {
    type Person = (String, String);
    let mut by_person: HashMap<Person, Vec<Posted>> = HashMap::new();
    let mut paired: HashMap<Person, BTreeSet<String>> = HashMap::new();
    let mut signs: Vec<(Person, Stamp, Day)> = Vec::new();
    for e in events {
        let envelope = wire::event_from_proto(e.clone()).unwrap();
        let Payload::Person { person_id, fact } = envelope.payload else { unreachable!() };
        let school = envelope.school;
        let stamp = Stamp::new(envelope.occurred_at.timestamp_millis(), &envelope.event_id);
        let day = envelope.occurred_at.with_timezone(&zone).date_naive();
        let acked = Some(acked_at(e));
        if let Fact::IsolationStarted { roommates, .. } = &fact {
            for roommate in roommates.iter().filter(|r| **r != person_id) {
                paired.entry((school.clone(), person_id.clone())).or_default().insert(roommate.clone());
                paired.entry((school.clone(), roommate.clone())).or_default().insert(person_id.clone());
            }
        }
        if rules.is_abnormal_sign(&fact) {
            signs.push(((school.clone(), person_id.clone()), stamp, day));
        }
        by_person.entry((school, person_id)).or_default().push((stamp, day, fact, acked));
    }
    for ((school, person), stamp, day) in signs {
        for roommate in paired.get(&(school.clone(), person)).into_iter().flatten() {
            let shared = (stamp, day, Fact::RoommateShowedSigns { onset: day }, None);
            by_person.entry((school.clone(), roommate.clone())).or_default().push(shared);
        }
    }
    let mut sums: BTreeMap<(UnitKey, Day), Tally> = BTreeMap::new();
    let mut defined: BTreeMap<(UnitKey, Day), Defined> = BTreeMap::new();
    for ((school, _), list) in &mut by_person {
        list.sort_by_key(|(stamp, _, _, _)| *stamp);
        let mut timeline = Timeline::default();
        for (stamp, day, fact, acked) in list.iter() {
            timeline.apply_acked(school, *day, fact, *stamp, *acked, rules);
        }
        for n in 0..CHECKED_DAYS {
            let by_definition = Defined::of(list, day(n), rules);
            if by_definition.unrostered > 0 {
                // Not on the roster: their school alone, whatever the timeline says (the
                // city and the province sum it when read: `assert_reports_match`).
                defined.entry((UnitKey::school(school), day(n))).or_default().add(&by_definition);
            }
            let Some(contribution) = timeline.on(day(n)).and_then(|pd| pd.contribution(school, day(n), rules)) else {
                continue;
            };
            for unit in contribution.units.iter() {
                sums.entry((unit.clone(), day(n))).or_default().add(&contribution.tally);
            }
            if by_definition.unrostered > 0 {
                continue;
            }
            for unit in contribution.units.iter() {
                defined.entry((unit.clone(), day(n))).or_default().add(&by_definition);
            }
        }
    }
    (sums, defined)
}

/// The counts issue 23 found departing from the definitions, recomputed from the proto's
/// field comments and RULES.md alone, without the domain's code: one person's
/// contribution on a day, from their events in time order (a register is the last write
/// up to the day's end). Where they count (placement, enrolment) comes from the timeline.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Defined {
    /// Persons with fever, symptoms, a suspected or confirmed diagnosis, or sick absence.
    abnormal: u32,
    /// Persons expected in the daily checks: on campus and not on leave, a leave lasting
    /// to its last day (`until`) unless closed before.
    expected: u32,
    /// Persons expected who had at least one daily check (morning, noon, evening).
    checked_any: u32,
    /// Persons whose leave has run out, not closed, who are not back on campus.
    leave_overdue: u32,
    /// Sick absence that began that day, and persons back in class after one: both count
    /// when both happened, whatever the day's end.
    sick_absence_started: u32,
    back_in_class: u32,
    /// Persons not registered by the day's end (no registration of that day or before)
    /// with an event of their own that day (a roommate's signs are not theirs); they count
    /// in their school and nothing else.
    unrostered: u32,
    /// Timeliness: persons expected whose registration (the earliest of that day or
    /// before) was acknowledged by the day's deadline, 09:00 the next day at +08:00;
    /// and of them those with a daily check of that day acknowledged by then.
    expected_by_deadline: u32,
    checked_by_deadline: u32,
}

impl Defined {
    fn of(events: &[Posted], on: Day, rules: &Rules) -> Defined {
        use domain::event::{Diagnosis, Direction};
        let (mut diagnosis, mut sick) = (None, false);
        let (mut on_campus, mut leave_until) = (false, None);
        let (mut abnormal_today, mut checked_today) = (false, false);
        let (mut sick_started, mut back_in_class) = (false, false);
        let (mut registered, mut own_event_today) = (false, false);
        let deadline = (on + chrono::Days::new(1)).and_hms_opt(1, 0, 0).unwrap().and_utc().timestamp_millis();
        let in_time = |acked: &Option<i64>| acked.is_none_or(|at| at < deadline);
        let (mut registered_in_time, mut checked_in_time) = (false, false);
        for (_, day, fact, acked) in events.iter().filter(|(_, day, _, _)| *day <= on) {
            let today = *day == on;
            own_event_today |= today && !matches!(fact, Fact::RoommateShowedSigns { .. });
            registered |= matches!(fact, Fact::Registered { .. });
            registered_in_time |= matches!(fact, Fact::Registered { .. }) && in_time(acked);
            match fact {
                Fact::Temperature { slot, celsius } => {
                    abnormal_today |= today && *celsius >= rules.fever_threshold_celsius;
                    let daily = matches!(slot, Slot::Morning | Slot::Noon | Slot::Evening);
                    checked_today |= today && daily;
                    checked_in_time |= today && daily && in_time(acked);
                }
                Fact::Registered { on_campus: on, .. } | Fact::Whereabouts { on_campus: on, .. } => on_campus = *on,
                Fact::Returned { .. } => on_campus = true,
                Fact::GatePassed(direction) => on_campus = *direction == Direction::In,
                Fact::LeaveRequested { until, .. } => leave_until = Some(*until),
                Fact::LeaveClosed => leave_until = None,
                Fact::Symptoms(list) => abnormal_today |= today && !list.is_empty(),
                Fact::Diagnosed(d) => {
                    diagnosis = Some(*d);
                    abnormal_today |= today && matches!(d, Diagnosis::Suspected | Diagnosis::Confirmed);
                }
                Fact::SickAbsenceStarted { .. } => {
                    sick = true;
                    abnormal_today |= today;
                    sick_started |= today;
                }
                Fact::SickAbsenceEnded => {
                    sick = false;
                    back_in_class |= today;
                }
                _ => {}
            }
        }
        if !registered {
            return Defined { unrostered: u32::from(own_event_today), ..Defined::default() };
        }
        let ongoing = sick || matches!(diagnosis, Some(Diagnosis::Suspected | Diagnosis::Confirmed));
        let expected = on_campus && leave_until.is_none_or(|until| on > until);
        Defined {
            abnormal: u32::from(abnormal_today || ongoing),
            expected: u32::from(expected),
            checked_any: u32::from(expected && checked_today),
            leave_overdue: u32::from(!on_campus && leave_until.is_some_and(|until| on > until)),
            sick_absence_started: u32::from(sick_started),
            back_in_class: u32::from(back_in_class),
            unrostered: 0,
            expected_by_deadline: u32::from(expected && registered_in_time),
            checked_by_deadline: u32::from(expected && registered_in_time && checked_in_time),
        }
    }

    /// A school's or a lower unit's status at the seal: on time if the persons rostered
    /// in time were covered by checks in time, late if covered only with later events.
    fn status(&self, threshold: f64) -> ReportStatus {
        let reached = |done: u32, of: u32| of > 0 && f64::from(done) / f64::from(of) >= threshold;
        if reached(self.checked_by_deadline, self.expected_by_deadline) {
            ReportStatus::OnTime
        } else if reached(self.checked_any, self.expected) {
            ReportStatus::Late
        } else {
            ReportStatus::Missing
        }
    }

    /// Sent (coverage reaches the threshold, which needs someone expected) with nothing
    /// abnormal.
    fn zero_report(&self, threshold: f64) -> bool {
        let sent = self.expected > 0 && f64::from(self.checked_any) / f64::from(self.expected) >= threshold;
        sent && self.abnormal == 0
    }

    fn add(&mut self, other: &Defined) {
        self.abnormal += other.abnormal;
        self.expected += other.expected;
        self.checked_any += other.checked_any;
        self.leave_overdue += other.leave_overdue;
        self.sick_absence_started += other.sick_absence_started;
        self.back_in_class += other.back_in_class;
        self.unrostered += other.unrostered;
        self.expected_by_deadline += other.expected_by_deadline;
        self.checked_by_deadline += other.checked_by_deadline;
    }

    fn of_report(report: &DailyReport) -> Defined {
        let morning = report.checks.iter().find(|c| c.slot == Slot::Morning).map_or(0, |c| c.expected);
        Defined {
            abnormal: report.abnormal,
            expected: morning,
            checked_any: report.checked_any,
            leave_overdue: report.leave_overdue,
            sick_absence_started: report.sick_absence_started,
            back_in_class: report.back_in_class,
            unrostered: report.unrostered,
            expected_by_deadline: report.expected_by_deadline,
            checked_by_deadline: report.checked_by_deadline,
        }
    }
}

/// The events shuffled, some posted twice (new offsets), each on its topic and on the
/// partition of its school.
fn shuffled_log(rng: &mut Rng, events: &[pb::Event]) -> Vec<Polled> {
    let mut order: Vec<&pb::Event> = events.iter().collect();
    for _ in 0..8 {
        order.push(&events[rng.below(events.len())]);
    }
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    as_log(&order)
}

/// The reports' figures as the read model sums them, without publication fields.
fn figures(projections: &Projections) -> reports::ReadModel {
    reports::ReadModel::new(projections.clone(), domain::close::CloseRules::default())
}

fn assert_reports_match(projections: &Projections, (expected, defined): &Reference, seed: u64) {
    let units = projections.units(None, None).unwrap();
    let read = figures(projections);
    for ((unit, _), tally) in expected {
        // A school with no one on its roster is not registered: its unrostered persons
        // count there, unseen (its city is not known).
        let mut rostered = *tally;
        rostered.set(domain::Measure::Unrostered, 0);
        if !rostered.is_zero() {
            assert!(units.iter().any(|(u, _)| u == unit), "seed {seed}: {unit} missing");
        }
    }
    for (unit, _) in &units {
        for n in 0..CHECKED_DAYS {
            // Cities and the province are read as sums of schools; the reference sums persons.
            let mut want = expected.get(&(unit.clone(), day(n))).copied().unwrap_or_default();
            let Some(got) = read.figures(unit, day(n)).unwrap() else {
                // No one counted in it yet that day: it has no report, and nothing to count.
                let nothing =
                    want.is_zero() && defined.get(&(unit.clone(), day(n))).is_none_or(|d| *d == Defined::default());
                assert!(nothing, "seed {seed}: {unit} on {} has no report but counts", day(n));
                continue;
            };
            let mut by_definition = defined.get(&(unit.clone(), day(n))).copied().unwrap_or_default();
            if unit.level <= domain::Level::City {
                // Persons not on a roster count in their school alone: a city or the
                // province has those of its schools in the registry (which schools are
                // there depends on the order a registration and its `Left` came in).
                let schools = units.iter().filter(|(u, info)| {
                    u.level == domain::Level::School
                        && (unit.level == domain::Level::Province || info.city == unit.path)
                });
                let (mut defined_sum, mut want_sum) = (0, 0);
                for (school, _) in schools {
                    let key = (school.clone(), day(n));
                    defined_sum += defined.get(&key).map_or(0, |d| d.unrostered);
                    want_sum += expected.get(&key).map_or(0, |t| t.get(domain::Measure::Unrostered));
                }
                by_definition.unrostered = defined_sum;
                want.set(domain::Measure::Unrostered, want_sum);
            }
            assert_eq!(Defined::of_report(&got), by_definition, "seed {seed}: {unit} on {}, by definition", day(n));
            let mut live = got.clone();
            domain::close::CloseRules::default().open(&mut live);
            assert_eq!(
                live.zero_report,
                by_definition.zero_report(0.9),
                "seed {seed}: {unit} on {}: zero report",
                day(n)
            );
            if unit.level > domain::Level::City {
                let judged = domain::close::CloseRules::default().judge(&got);
                assert_eq!(judged, by_definition.status(0.9), "seed {seed}: {unit} on {}: status", day(n));
            }
            assert_eq!(got, DailyReport::from_tally(unit.clone(), day(n), &want), "seed {seed}: {unit} on {}", day(n));
        }
    }
}

fn store() -> (tempfile::TempDir, Projections) {
    let dir = tempfile::tempdir().unwrap();
    let tree = aggregator::store::open(dir.path()).unwrap();
    (dir, Projections::new(tree))
}

#[test]
fn folds_equal_a_recomputation_whatever_the_order_batching_duplicates_checkpoints_crashes_and_caches() {
    let rules = Rules::default();
    let zone = FixedOffset::east_opt(8 * 3600).unwrap();
    for seed in 1..=150u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let events: Vec<pb::Event> = (0..40).map(|id| random_event(&mut rng, id)).collect();
        let expected = reference(&events, &rules, zone);
        let log = shuffled_log(&mut rng, &events);

        let (_dir, projections) = store();
        // Half the seeds with tiny caches, dropped and reloaded at most checkpoints.
        let tiny = seed % 2 == 0;
        let open = || {
            let folder = Folder::new(projections.clone(), rules, zone).unwrap();
            if tiny { folder.with_cache_bounds(2, 4, 3) } else { folder }
        };
        let mut folder = open();
        let mut at = 0;
        while at < log.len() {
            let end = (at + 1 + rng.below(6)).min(log.len());
            // Sometimes re-deliver what was already folded, as a rebalance would.
            let start = if rng.below(4) == 0 { at.saturating_sub(rng.below(4)) } else { at };
            folder.fold_records(&log[start..end]).unwrap();
            at = end;
            // Behind, the aggregator stores only every few polls, in the background.
            match rng.below(6) {
                0 => folder.checkpoint().unwrap(),
                1 => folder.start_checkpoint().unwrap(),
                _ => {}
            }
            if rng.below(5) == 0 {
                // A crash: what was folded since the last checkpoint is lost, and the log
                // delivers again from the stored positions. (A checkpoint under way is
                // finished first; a crash between its schools' batches is
                // `fold::tests::a_crash_between_the_schools_of_a_checkpoint_...`.)
                drop(folder);
                folder = open();
                at = log.iter().position(|p| p.offset >= folder.position(&p.at).unwrap_or(0)).unwrap_or(log.len());
            }
        }
        folder.checkpoint().unwrap();
        assert_reports_match(&projections, &expected, seed);
    }
}

/// Kafka mode without Kafka: two aggregators split the partitions, hand them over at
/// random points (the new owner replays from its own stored position, the old one folds
/// one more batch before it notices), and publish through the changelog; a view built
/// from the changelog equals the recomputation.
#[tokio::test]
async fn instances_handing_partitions_over_through_the_changelog_give_the_same_reports() {
    use eventlog::{EmbeddedLog, EventLog, LogConsumer};
    let rules = Rules::default();
    let zone = FixedOffset::east_opt(8 * 3600).unwrap();
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let events: Vec<pb::Event> = (0..40).map(|id| random_event(&mut rng, id)).collect();
        let expected = reference(&events, &rules, zone);
        let log = shuffled_log(&mut rng, &events);

        let changelog_dir = tempfile::tempdir().unwrap();
        let changelog = EmbeddedLog::open(changelog_dir.path(), 2).unwrap();
        let stores = [store(), store()];
        let mut folders: Vec<Folder> =
            stores.iter().map(|(_, p)| Folder::new(p.clone(), rules, zone).unwrap().with_changelog()).collect();
        let mut owner = [0usize, 0usize];
        let mut at = 0;
        while at < log.len() {
            let end = (at + 1 + rng.below(6)).min(log.len());
            for partition in 0..2u32 {
                let mine: Vec<Polled> = log[at..end].iter().filter(|p| p.at.partition == partition).cloned().collect();
                let folder = owner[partition as usize];
                folders[folder].fold_batch(&mine).unwrap();
                aggregator::changelog::publish_outbox(&stores[folder].1, &changelog).await.unwrap();
            }
            at = end;
            if rng.below(4) == 0 {
                let partition = rng.below(2);
                let (old, new) = (owner[partition], 1 - owner[partition]);
                owner[partition] = new;
                // The new owner replays the partition from its own position...
                let history: Vec<Polled> =
                    log[..at].iter().filter(|p| p.at.partition == partition as u32).cloned().collect();
                folders[new].fold_batch(&history).unwrap();
                aggregator::changelog::publish_outbox(&stores[new].1, &changelog).await.unwrap();
                // ...while the old one, not yet told, folds one more batch; its outbox goes
                // out whenever it next publishes, possibly after everything else.
                let end = (at + 1 + rng.below(6)).min(log.len());
                let late: Vec<Polled> =
                    log[at..end].iter().filter(|p| p.at.partition == partition as u32).cloned().collect();
                folders[old].fold_batch(&late).unwrap();
            }
        }
        for (_, projections) in stores.iter().rev() {
            aggregator::changelog::publish_outbox(projections, &changelog).await.unwrap();
        }
        let (_view_dir, view) = store();
        let mut consumer = changelog.subscribe("view", std::sync::Arc::new(|_| None)).unwrap();
        loop {
            let records = consumer.poll(10_000, std::time::Duration::from_millis(1)).await.unwrap();
            if records.is_empty() {
                break;
            }
            aggregator::changelog::apply(&view, &records).unwrap();
        }
        assert_reports_match(&view, &expected, seed);
    }
}

/// Any event of any kind, including centralized isolations naming roommates (so that
/// signs travel between persons) and several isolations per person.
fn random_event(rng: &mut Rng, id: usize) -> pb::Event {
    use pb::event::Payload as P;
    use pb::health_event::Kind as H;
    use pb::movement_event::Kind as M;
    use pb::roster_event::Change as R;
    let (school, city) = *rng.pick(&[("S1", "Guangzhou"), ("S2", "Foshan")]);
    let n = rng.below(4);
    let person = format!("P{n}");
    let date = |rng: &mut Rng| day(rng.below(DAYS as usize) as u32).format("%Y-%m-%d").to_string();
    let placement = |rng: &mut Rng| pb::Placement {
        department: "D1".into(),
        grade: "G1".into(),
        class_name: rng.pick(&["C1", "C2"]).to_string(),
        dorm: rng.pick(&["R1", ""]).to_string(),
    };
    let health = |person: String, kind| P::Health(pb::HealthEvent { person_id: person, kind: Some(kind) });
    let movement = |person: String, kind| P::Movement(pb::MovementEvent { person_id: person, kind: Some(kind) });
    let payload = match rng.below(22) {
        0..=2 => P::Roster(pb::RosterEvent {
            person_id: person,
            change: Some(R::Registered(pb::Registered {
                role: *rng.pick(&[pb::Role::Student as i32, pb::Role::Teacher as i32]),
                placement: Some(placement(rng)),
                city: city.to_string(),
                on_campus: rng.below(2) == 0,
            })),
        }),
        3 => P::Roster(pb::RosterEvent {
            person_id: person,
            change: Some(R::Moved(pb::Moved { placement: Some(placement(rng)) })),
        }),
        4 => P::Roster(pb::RosterEvent { person_id: person, change: Some(R::Left(pb::Left {})) }),
        5 | 6 => health(
            person,
            H::Temperature(pb::TemperatureTaken {
                slot: 1 + rng.below(5) as i32,
                celsius: 36.0 + rng.below(30) as f64 / 10.0,
            }),
        ),
        7 => {
            // One to three symptoms: a report listing several still counts one person.
            let symptoms = (1..=4).filter(|_| rng.below(2) == 0).take(3).collect::<Vec<i32>>();
            let symptoms = if symptoms.is_empty() { vec![1 + rng.below(4) as i32] } else { symptoms };
            health(person, H::Symptoms(pb::SymptomsReported { symptoms }))
        }
        8 => health(person, H::HealthCard(pb::HealthCardSubmitted { abnormal_last_14_days: rng.below(2) == 0 })),
        9 => health(person, H::Diagnosis(pb::Diagnosis { kind: 1 + rng.below(4) as i32 })),
        10 => health(person, H::SickAbsenceStarted(pb::SickAbsenceStarted { reason: String::new() })),
        11 => health(person, H::SickAbsenceEnded(pb::SickAbsenceEnded {})),
        12 => movement(
            person,
            M::Whereabouts(pb::WhereaboutsDeclared {
                province: "Hubei".into(),
                city: "Wuhan".into(),
                in_key_area: rng.below(2) == 0,
                on_campus: rng.below(2) == 0,
            }),
        ),
        13 => movement(
            person,
            M::TwoHistories(pb::TwoHistoriesDeclared { kind: 1 + rng.below(3) as i32, date: date(rng) }),
        ),
        14 => movement(person, M::Returned(pb::Returned { date: date(rng), batch: 1 + rng.below(3) as u32 })),
        15..=17 => {
            let roommates = (0..4).filter(|r| *r != n && rng.below(2) == 0).map(|r| format!("P{r}")).collect();
            movement(
                person,
                M::IsolationStarted(pb::IsolationStarted { kind: *rng.pick(&[2, 2, 1]), place: "x".into(), roommates }),
            )
        }
        18 => movement(person, M::Released(pb::Released {})),
        19 => movement(person, M::GatePassed(pb::GatePassed { direction: 1 + rng.below(2) as i32 })),
        20 => movement(person, M::LeaveRequested(pb::LeaveRequested { until: date(rng), reason: String::new() })),
        _ => movement(person, M::LeaveClosed(pb::LeaveClosed {})),
    };
    let d = day(rng.below(DAYS as usize) as u32);
    pb::Event {
        site: String::new(),
        event_id: format!("e{id}"),
        source: "prop".into(),
        school: school.into(),
        occurred_at: format!("{}T{:02}:{:02}:00+08:00", d.format("%Y-%m-%d"), rng.below(24), rng.below(60)),
        payload: Some(payload),
    }
}

/// When intake acknowledged `event`: as it happened, or 20, 40 or 60 hours later, by its
/// id, so that some events of a day come after its deadline (09:00 the next morning) and
/// some registrations after the deadlines of the days after theirs.
fn acked_at(event: &pb::Event) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(&event.occurred_at).unwrap().timestamp_millis();
    let delay_hours = i64::from(Stamp::new(0, &event.event_id).tiebreak.to_le_bytes()[0] % 4) * 20;
    at + delay_hours * 3_600_000
}

/// The events on their topics and partitions with fresh offsets, in the order given.
fn as_log(order: &[&pb::Event]) -> Vec<Polled> {
    let mut next_offset: HashMap<TopicPartition, u64> = HashMap::new();
    order
        .iter()
        .map(|e| {
            let at = TopicPartition { topic: topic_of(e).into(), partition: u32::from(e.school == "S2") };
            let offset = next_offset.entry(at.clone()).or_insert(0);
            *offset += 1;
            let headers = vec![(wire::ACKED_AT_HEADER.to_owned(), acked_at(e).to_string())];
            let record = Record { topic: at.topic.clone(), key: e.school.clone(), headers, payload: e.encode_to_vec() };
            Polled { at, offset: *offset - 1, record }
        })
        .collect()
}

/// Everything a fold leaves for readers: every unit's report on every day, every unit's
/// key persons as of every day, and which events raised an alert.
type Readout = (BTreeMap<(UnitKey, Day), Option<DailyReport>>, BTreeMap<(UnitKey, Day), Vec<String>>, Vec<String>);

fn readout(projections: &Projections) -> Readout {
    let mut reports = BTreeMap::new();
    let mut key_persons = BTreeMap::new();
    let read = figures(projections);
    for (unit, _) in projections.units(None, None).unwrap() {
        for n in 0..CHECKED_DAYS {
            reports.insert((unit.clone(), day(n)), read.figures(&unit, day(n)).unwrap());
            let persons = projections.key_persons(&unit, day(n)).unwrap().iter().map(|p| format!("{p:?}")).collect();
            key_persons.insert((unit.clone(), day(n)), persons);
        }
    }
    let alerts =
        projections.alerts().unwrap().into_iter().map(|(a, _)| format!("{}/{}", a.school, a.event_id)).collect();
    (reports, key_persons, alerts)
}

fn fold_in_batches(rng: &mut Rng, log: &[Polled], rules: Rules, zone: FixedOffset) -> (tempfile::TempDir, Projections) {
    let (dir, projections) = store();
    let mut folder = Folder::new(projections.clone(), rules, zone).unwrap();
    let mut at = 0;
    while at < log.len() {
        let end = (at + 1 + rng.below(6)).min(log.len());
        folder.fold_batch(&log[at..end]).unwrap();
        at = end;
        if rng.below(4) == 0 {
            // A restart: the next folder knows only what is stored.
            folder = Folder::new(projections.clone(), rules, zone).unwrap();
        }
    }
    (dir, projections)
}

/// Roommates included: any two orders of the same events, folded in random batches with
/// restarts in between, give the same reports and key-person lists.
#[test]
fn roommates_share_signs_whatever_the_order_and_restarts() {
    let rules = Rules::default();
    let zone = FixedOffset::east_opt(8 * 3600).unwrap();
    for seed in 1..=150u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let events: Vec<pb::Event> = (0..60).map(|id| random_event(&mut rng, id)).collect();
        let mut orders: Vec<Vec<&pb::Event>> = Vec::new();
        for _ in 0..2 {
            let mut order: Vec<&pb::Event> = events.iter().collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            orders.push(order);
        }
        let (_a_dir, a) = fold_in_batches(&mut rng, &as_log(&orders[0]), rules, zone);
        let (_b_dir, b) = fold_in_batches(&mut rng, &as_log(&orders[1]), rules, zone);
        let (want, got) = (readout(&a), readout(&b));
        // A unit someone passed through in one order only (an older placement that a
        // newer one overrode, a registration its `Left` of the same day cancels) is
        // registered there, with nothing in it but the persons not on its roster (a
        // school): the registry of units depends on the order, so a school's
        // `unrostered` may reach its city and the province in one order only.
        let schools = |r: &Readout| -> BTreeSet<UnitKey> {
            r.0.keys().filter(|(u, _)| u.level == domain::Level::School).map(|(u, _)| u.clone()).collect()
        };
        let same_schools = schools(&want) == schools(&got);
        let counted = |(name, _): &(String, i64)| name != "unrostered";
        let zero = |r: &DailyReport| r.figures().iter().filter(|f| counted(f)).all(|(_, v)| *v == 0);
        for key in want.0.keys().chain(got.0.keys()) {
            let (x, y) = (want.0.get(key).and_then(Option::as_ref), got.0.get(key).and_then(Option::as_ref));
            let (x, y) = match (x, y) {
                (Some(x), Some(y)) => (x, y),
                (Some(only), None) | (None, Some(only)) => {
                    assert!(zero(only), "seed {seed}: {} on {} only in one order, not empty", key.0, key.1);
                    continue;
                }
                // Before anyone counted in the unit, in both orders.
                (None, None) => continue,
            };
            let summed = key.0.level <= domain::Level::City && !same_schools;
            let diff: Vec<_> =
                x.figures().into_iter().zip(y.figures()).filter(|(a, b)| a != b && (!summed || counted(a))).collect();
            assert!(diff.is_empty(), "seed {seed}: report of {} on {}: {diff:?}", key.0, key.1);
        }
        let listed = |lists: &BTreeMap<(UnitKey, Day), Vec<String>>| {
            lists.iter().filter(|(_, l)| !l.is_empty()).map(|(u, l)| (u.clone(), l.clone())).collect::<Vec<_>>()
        };
        assert_eq!(listed(&got.1), listed(&want.1), "seed {seed}: key persons");
    }
}

/// A re-delivered event changes nothing: every event of every kind delivered twice, the
/// second time at a new offset and at a random later point (as a client's retry would be
/// if intake's deduplication missed it), gives the same reports, key-person lists and
/// alerts as folding each event once in the same order. Roommates share signs in both.
///
/// This holds because the fold skips a (school, event id) it folded before (the ids kept
/// in the person's timeline), not because folding is idempotent: with that check removed
/// it fails. A re-folded
/// `IsolationStarted` shares the person's signs with the roommates it names even when a
/// newer isolation has replaced them in the person's `roommates` register, which the
/// signs folded in between were not shared with (seed 130); a re-folded gate pass raises
/// a `KeptOutGateIn` alert judged on the state at the second fold (seed 2).
///
/// The folder restarts at random between batches (it must load its roommate index
/// from the store before adding to it).
#[test]
fn folding_every_event_twice_equals_folding_it_once() {
    let rules = Rules::default();
    let zone = FixedOffset::east_opt(8 * 3600).unwrap();
    for seed in 1..=150u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let events: Vec<pb::Event> = (0..60).map(|id| random_event(&mut rng, id)).collect();
        let mut once: Vec<&pb::Event> = events.iter().collect();
        for i in (1..once.len()).rev() {
            once.swap(i, rng.below(i + 1));
        }
        // Each event's second delivery goes somewhere after its first.
        let mut twice = once.clone();
        for event in &once {
            let first = twice.iter().position(|e| std::ptr::eq(*e, *event)).unwrap();
            let at = first + 1 + rng.below(twice.len() - first);
            twice.insert(at, event);
        }
        let (_once_dir, folded_once) = fold_in_batches(&mut rng, &as_log(&once), rules, zone);
        let (_twice_dir, folded_twice) = fold_in_batches(&mut rng, &as_log(&twice), rules, zone);
        let (want, got) = (readout(&folded_once), readout(&folded_twice));
        assert!(!want.0.is_empty(), "seed {seed}: nothing folded");
        for (key, report) in &want.0 {
            assert_eq!(got.0.get(key), Some(report), "seed {seed}: report of {} on {}", key.0, key.1);
        }
        assert_eq!(got.0.len(), want.0.len(), "seed {seed}: units");
        assert_eq!(got.1, want.1, "seed {seed}: key persons");
        assert_eq!(got.2, want.2, "seed {seed}: alerts");
    }
}

/// Units' names (the second report kind): whatever the order, re-deliveries and restarts,
/// each unit holds the names of its naming latest by event time (ties by the event id's
/// hash), as `UnitNamed` defines it.
#[test]
fn unit_names_are_the_latest_naming_whatever_the_order_and_restarts() {
    let rules = Rules::default();
    let zone = FixedOffset::east_opt(8 * 3600).unwrap();
    let units = ["school:S1", "class:S1/D1/G1/C1", "school:S2"];
    for seed in 1..=100u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let events: Vec<pb::Event> = (0..12)
            .map(|id| {
                let unit = *rng.pick(&units);
                // A few instants only, so that ties happen and the hash decides.
                let minute = rng.below(3);
                pb::Event {
                    site: String::new(),
                    event_id: format!("n{id}"),
                    source: "test".into(),
                    school: unit.split(':').nth(1).unwrap().split('/').next().unwrap().into(),
                    occurred_at: format!("2020-03-02T08:0{minute}:00+08:00"),
                    payload: Some(pb::event::Payload::Unit(pb::UnitEvent {
                        change: Some(pb::unit_event::Change::Named(pb::UnitNamed {
                            unit: unit.into(),
                            name_zh: format!("名{id}"),
                            name_en: format!("Name {id}"),
                        })),
                    })),
                }
            })
            .collect();
        // By definition: per unit, the naming with the greatest (time, id hash).
        let mut expected: BTreeMap<&str, (Stamp, String)> = BTreeMap::new();
        for e in &events {
            let Some(pb::event::Payload::Unit(pb::UnitEvent { change: Some(pb::unit_event::Change::Named(n)) })) =
                &e.payload
            else {
                unreachable!()
            };
            let at = chrono::DateTime::parse_from_rfc3339(&e.occurred_at).unwrap().timestamp_millis();
            let stamp = Stamp::new(at, &e.event_id);
            let unit = units.iter().find(|u| **u == n.unit).unwrap();
            if expected.get(unit).is_none_or(|(held, _)| stamp > *held) {
                expected.insert(unit, (stamp, n.name_zh.clone()));
            }
        }
        let log = shuffled_log(&mut rng, &events);
        let (_dir, projections) = fold_in_batches(&mut rng, &log, rules, zone);
        for unit in units {
            let held = projections.named_unit(&unit.parse().unwrap()).unwrap().map(|n| n.names.zh);
            assert_eq!(held, expected.get(unit).map(|(_, zh)| zh.clone()), "seed {seed}, {unit}");
        }
    }
}
