//! One school's events for one day.

use chrono::{Datelike, Days, NaiveDate};
use rand::Rng;
use wire::pb;
use wire::pb::event::Payload;
use wire::pb::health_event::Kind as Health;
use wire::pb::movement_event::Kind as Movement;

use crate::province::{DAY_STREAM, Person, Province, School, Whereabouts};
use crate::random::{SplitMix64, seeded};

/// The `source` of every simulated event.
pub const SOURCE: &str = "simulator";

/// Shares of persons, per day.
const TWO_HISTORIES: f64 = 0.03;
/// Of those at home.
const RETURNS: f64 = 0.01;
/// Of those declaring two histories, the share the school puts under the observation the
/// rules require (centralized for students on campus, home for staff); the rest show up
/// as `observation_missing`.
const OBSERVED_AS_REQUIRED: f64 = 0.97;
const CHECK_DONE: f64 = 0.98;
const FEVER: f64 = 0.003;
/// Of those with a fever: some report symptoms, and 1 in 150 is suspected, which makes
/// about 1 suspected case in 50,000 persons.
const SYMPTOMS_WITH_FEVER: f64 = 0.3;
const SUSPECTED_WITH_FEVER: f64 = 1.0 / 150.0;
/// Of staff on campus.
const GATE_PASSES: f64 = 0.05;

/// The three daily checks: slot, the name in event ids, usual time and spread, seconds.
const CHECKS: [(pb::Slot, &str, u32, u32); 3] = [
    (pb::Slot::Morning, "morning", hm(7, 30), 25 * 60),
    (pb::Slot::Noon, "noon", hm(12, 10), 15 * 60),
    (pb::Slot::Evening, "evening", hm(19, 0), 20 * 60),
];

/// Events per person on a day, on average; only for the progress bar's length.
pub(crate) const EVENTS_PER_PERSON: f64 = 3.7;

/// The observation the rules require of someone with two histories (DOMAIN.md,
/// "Isolation"): centralized for students, at home for staff.
fn observation_for(person: &Person) -> pb::IsolationStarted {
    if person.is_student() {
        pb::IsolationStarted {
            kind: pb::IsolationKind::IsolationCentralized as i32,
            place: "campus observation rooms".into(),
            roommates: vec![],
        }
    } else {
        pb::IsolationStarted { kind: pb::IsolationKind::IsolationHome as i32, place: "home".into(), roommates: vec![] }
    }
}

const fn hm(hours: u32, minutes: u32) -> u32 {
    hours * 3600 + minutes * 60
}

/// One school's events for `date`: first its name and every person's registration, then
/// the day. Deterministic in its arguments; `seed` drives the day's randomness.
pub fn day_events(province: &Province, school_index: usize, date: NaiveDate, seed: u64) -> Vec<pb::Event> {
    let school = &province.schools()[school_index];
    let mut roster = Vec::with_capacity(school.persons.len() * 4 + 1);
    roster.push(school_named(school, school_index, date, seed));
    let mut day = Vec::with_capacity(school.persons.len() * 3);
    for person in &school.persons {
        let mut rng =
            seeded(&[DAY_STREAM, seed, school_index as u64, u64::from(person.number), date.num_days_from_ce() as u64]);
        let events = Events { seed, date, school, person, id: person.id() };
        roster.push(events.registered());
        events.day(&mut rng, &mut day);
    }
    roster.append(&mut day);
    roster
}

/// The school's display names; like a registration, the same event id every day (the
/// server answers it again as a duplicate).
fn school_named(school: &School, index: usize, date: NaiveDate, seed: u64) -> pb::Event {
    let number = index + 1;
    let named = pb::UnitNamed {
        unit: format!("school:{}", school.code),
        name_zh: format!("第{number}技工学校"),
        name_en: format!("{} Technical School No. {number}", school.city),
    };
    pb::Event {
        site: String::new(),
        event_id: format!("sim-{seed}-name-{}", school.code),
        source: SOURCE.to_owned(),
        school: school.code.clone(),
        occurred_at: format!("{date}T00:00:00+08:00"),
        payload: Some(Payload::Unit(pb::UnitEvent { change: Some(pb::unit_event::Change::Named(named)) })),
    }
}

/// Builds the events of one person on one day.
struct Events<'a> {
    seed: u64,
    date: NaiveDate,
    school: &'a School,
    person: &'a Person,
    id: String,
}

impl Events<'_> {
    /// The registration's id does not depend on the date, so that simulating another day
    /// sends it again and the server answers it as a duplicate. Its content must then not
    /// depend on the date either.
    fn registered(&self) -> pb::Event {
        pb::Event {
            site: String::new(),
            event_id: format!("sim-{}-reg-{}-{}", self.seed, self.school.code, self.id),
            source: SOURCE.to_owned(),
            school: self.school.code.clone(),
            occurred_at: self.at(0),
            payload: Some(Payload::Roster(pb::RosterEvent {
                person_id: self.id.clone(),
                change: Some(pb::roster_event::Change::Registered(pb::Registered {
                    role: self.person.role as i32,
                    placement: Some(self.person.placement()),
                    city: self.school.city.to_owned(),
                    on_campus: self.person.whereabouts == Whereabouts::OnCampus,
                })),
            })),
        }
    }

    fn day(&self, rng: &mut SplitMix64, out: &mut Vec<pb::Event>) {
        let person = self.person;
        // From when the person is on campus today, if at all.
        let mut arrival = (person.whereabouts == Whereabouts::OnCampus).then_some(0);
        let mut declared_at = None;

        if person.whereabouts == Whereabouts::InHubei {
            let declared = pb::WhereaboutsDeclared {
                province: "Hubei".into(),
                city: "Wuhan".into(),
                in_key_area: true,
                on_campus: false,
            };
            out.push(self.movement("whereabouts", hm(0, 5), Movement::Whereabouts(declared)));
        } else if rng.random_bool(TWO_HISTORIES) {
            let kind =
                if rng.random_bool(0.5) { pb::HistoryKind::HistoryTravel } else { pb::HistoryKind::HistoryContact };
            let when = self.date - Days::new(rng.random_range(1..=14));
            let declared = pb::TwoHistoriesDeclared { kind: kind as i32, date: when.to_string() };
            let t = rng.random_range(hm(8, 0)..hm(10, 0));
            out.push(self.movement("histories", t, Movement::TwoHistories(declared)));
            declared_at = Some(t);
        }

        if person.whereabouts == Whereabouts::AtHome && rng.random_bool(RETURNS) {
            // Back in the second batch: a health card, then 14 days of observation,
            // centralized for students and at home for staff (DOMAIN.md, "Isolation").
            let t = rng.random_range(hm(10, 0)..hm(11, 0));
            let returned = pb::Returned { date: self.date.to_string(), batch: 2 };
            out.push(self.movement("returned", t, Movement::Returned(returned)));
            let card = pb::HealthCardSubmitted { abnormal_last_14_days: false };
            out.push(self.health("card", t + 300, Health::HealthCard(card)));
            out.push(self.movement("isolation", t + 600, Movement::IsolationStarted(observation_for(person))));
            arrival = Some(t);
        } else if let Some(t) = declared_at
            && (!person.is_student() || arrival.is_some())
            && rng.random_bool(OBSERVED_AS_REQUIRED)
        {
            out.push(self.movement("isolation", t + 600, Movement::IsolationStarted(observation_for(person))));
        }

        let Some(arrival) = arrival else { return };
        let mut checks: Vec<(pb::Slot, &str, u32)> = Vec::with_capacity(CHECKS.len());
        for (slot, name, usual, spread) in CHECKS {
            let t = usual - spread + rng.random_range(0..=2 * spread);
            if t > arrival && rng.random_bool(CHECK_DONE) {
                checks.push((slot, name, t));
            }
        }
        let fever_check = (rng.random_bool(FEVER) && !checks.is_empty()).then(|| rng.random_range(0..checks.len()));
        for (n, &(slot, name, t)) in checks.iter().enumerate() {
            let tenths = if fever_check == Some(n) { rng.random_range(373..=390) } else { rng.random_range(360..=371) };
            // Tenths divided by ten: 373 gives exactly the double nearest 37.3, the threshold.
            let reading = pb::TemperatureTaken { slot: slot as i32, celsius: f64::from(tenths) / 10.0 };
            out.push(self.health(&format!("t-{name}"), t, Health::Temperature(reading)));
        }

        if let Some(n) = fever_check {
            let t = checks[n].2;
            let suspected = rng.random_bool(SUSPECTED_WITH_FEVER);
            if suspected || rng.random_bool(SYMPTOMS_WITH_FEVER) {
                let mut symptoms = vec![pb::Symptom::Fever as i32];
                if rng.random_bool(0.5) {
                    symptoms.push(pb::Symptom::Cough as i32);
                }
                if rng.random_bool(0.3) {
                    symptoms.push(pb::Symptom::Fatigue as i32);
                }
                out.push(self.health("symptoms", t + 600, Health::Symptoms(pb::SymptomsReported { symptoms })));
                let absence = pb::SickAbsenceStarted { reason: "fever".into() };
                out.push(self.health("sick", t + 1200, Health::SickAbsenceStarted(absence)));
            }
            if suspected {
                let diagnosis = pb::Diagnosis { kind: pb::DiagnosisKind::DiagnosisSuspected as i32 };
                out.push(self.health("suspected", t + 3600, Health::Diagnosis(diagnosis)));
            }
        }

        // Only staff leave a closed campus; students board.
        if !person.is_student() && person.whereabouts == Whereabouts::OnCampus && rng.random_bool(GATE_PASSES) {
            let out_at = rng.random_range(hm(12, 30)..hm(14, 0));
            let in_at = rng.random_range(hm(16, 30)..hm(18, 0));
            out.push(self.movement(
                "gate-out",
                out_at,
                Movement::GatePassed(pb::GatePassed { direction: pb::Direction::Out as i32 }),
            ));
            out.push(self.movement(
                "gate-in",
                in_at,
                Movement::GatePassed(pb::GatePassed { direction: pb::Direction::In as i32 }),
            ));
        }
    }

    /// RFC 3339 time in the province's zone, `seconds` after midnight of the date.
    fn at(&self, seconds: u32) -> String {
        format!("{}T{:02}:{:02}:{:02}+08:00", self.date, seconds / 3600, seconds / 60 % 60, seconds % 60)
    }

    fn event(&self, what: &str, seconds: u32, payload: Payload) -> pb::Event {
        pb::Event {
            site: String::new(),
            event_id: format!("sim-{}-{}-{}-{}-{what}", self.seed, self.date, self.school.code, self.id),
            source: SOURCE.to_owned(),
            school: self.school.code.clone(),
            occurred_at: self.at(seconds),
            payload: Some(payload),
        }
    }

    fn health(&self, what: &str, seconds: u32, kind: Health) -> pb::Event {
        self.event(what, seconds, Payload::Health(pb::HealthEvent { person_id: self.id.clone(), kind: Some(kind) }))
    }

    fn movement(&self, what: &str, seconds: u32, kind: Movement) -> pb::Event {
        self.event(what, seconds, Payload::Movement(pb::MovementEvent { person_id: self.id.clone(), kind: Some(kind) }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn all_events(province: &Province, day: NaiveDate, seed: u64) -> Vec<pb::Event> {
        (0..province.schools().len()).flat_map(|i| day_events(province, i, day, seed)).collect()
    }

    /// A short name for what an event says, to count the mix.
    fn what(event: &pb::Event) -> &str {
        event.event_id.rsplit('-').next().unwrap()
    }

    #[test]
    fn the_same_inputs_give_the_same_events() {
        let province = Province::generate(0.01, 5);
        let day = date("2020-03-02");
        assert_eq!(all_events(&province, day, 5), all_events(&Province::generate(0.01, 5), day, 5));
        assert_ne!(all_events(&province, day, 5), all_events(&province, day, 6));
        assert_ne!(all_events(&province, day, 5), all_events(&Province::generate(0.01, 6), day, 6));
        assert_ne!(all_events(&province, day, 5), all_events(&province, date("2020-03-03"), 5));
    }

    #[test]
    fn every_event_passes_the_servers_validation() {
        let province = Province::generate(0.01, 11);
        for day in ["2020-02-26", "2020-03-02", "2020-12-31"] {
            for event in all_events(&province, date(day), 11) {
                let shown = format!("{event:?}");
                let envelope = wire::event_from_proto(event).unwrap_or_else(|e| panic!("{e} in {shown}"));
                assert_eq!(envelope.occurred_at.date_naive().to_string(), day, "{shown}");
                assert_eq!(envelope.occurred_at.offset().local_minus_utc(), 8 * 3600);
            }
        }
    }

    #[test]
    fn event_ids_are_unique_within_a_day() {
        let province = Province::generate(0.02, 3);
        let events = all_events(&province, date("2020-03-02"), 3);
        let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids.len(), events.len());
    }

    #[test]
    fn registrations_do_not_depend_on_the_date() {
        let province = Province::generate(0.005, 2);
        let registrations = |day| -> Vec<(String, Option<Payload>)> {
            day_events(&province, 0, date(day), 2)
                .into_iter()
                .filter(|e| matches!(e.payload, Some(Payload::Roster(_))))
                .map(|e| (e.event_id, e.payload))
                .collect()
        };
        let first = registrations("2020-03-02");
        assert_eq!(first.len(), province.persons());
        assert_eq!(first, registrations("2020-03-03"));
    }

    #[test]
    fn a_days_mix_is_near_the_intended_shares() {
        let province = Province::generate(0.05, 1);
        let persons = province.persons() as f64;
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut fever = HashSet::new();
        let mut events = 0;
        // Ten days, so that the rare suspected case shows up too.
        for offset in 0..10 {
            let day = date("2020-03-02") + Days::new(offset);
            for event in all_events(&province, day, 1) {
                events += 1;
                if !matches!(event.payload, Some(Payload::Roster(_))) {
                    *counts.entry(what(&event).to_owned()).or_default() += 1;
                }
                if let Some(Payload::Health(pb::HealthEvent { kind: Some(Health::Temperature(t)), person_id })) =
                    &event.payload
                    && t.celsius >= 37.3
                {
                    fever.insert((event.school.clone(), person_id.clone(), day));
                }
            }
        }
        let share = |n: usize| n as f64 / persons / 10.0;
        let near = |n: usize, expected: f64| (share(n) / expected - 1.0).abs() < 0.2;
        // On campus at registration ~90%, each check done ~98%.
        assert!(near(counts["morning"], 0.9 * 0.98), "{counts:?}");
        assert!(near(counts["histories"], 0.98 * TWO_HISTORIES), "{counts:?}");
        assert!(near(counts["whereabouts"], 0.02), "{counts:?}");
        assert!(near(counts["returned"], 0.08 * RETURNS), "{counts:?}");
        // Returns, and most of those declaring two histories (students only on campus).
        let observed = 0.08 * RETURNS + 0.98 * TWO_HISTORIES * 0.9 * OBSERVED_AS_REQUIRED;
        assert!(near(counts["isolation"], observed), "{counts:?}");
        assert!(near(fever.len(), 0.9 * FEVER), "{} fevers", fever.len());
        assert!(counts["symptoms"] > 0 && counts["sick"] == counts["symptoms"]);
        assert!(counts["out"] > 0 && counts["out"] == counts["in"]);
        assert!(counts.get("suspected").copied().unwrap_or(0) >= 1, "{counts:?}");
        assert!((share(events) / EVENTS_PER_PERSON - 1.0).abs() < 0.1, "{} events per person", share(events));
    }
}
