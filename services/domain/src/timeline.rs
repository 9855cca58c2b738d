//! A person's days, and the report changes an event causes.
//!
//! A person has an entry for each day on which an event about them happened; a day
//! without an entry inherits the state of the entry before it. An event on day D updates
//! D's entry (created from the day before if missing) and the state of every later entry,
//! so a late event corrects the days after it too. Each changed entry comes back as a
//! [`DayChange`]: the person's old and new contribution, and the days it stands for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Day;
use crate::event::Fact;
use crate::person::{Contribution, PersonDay, Rules, Stamp};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub days: BTreeMap<Day, PersonDay>,
}

/// A person's contribution moved from `old` to `new` on `day`, and their state part did
/// so for every day after it up to `until` (exclusive; `None`: from then on).
#[derive(Debug, Clone, PartialEq)]
pub struct DayChange {
    pub day: Day,
    pub until: Option<Day>,
    pub old: Option<Contribution>,
    pub new: Option<Contribution>,
}

impl Timeline {
    /// Folds one event that happened on `day`.
    pub fn apply(&mut self, school: &str, day: Day, fact: &Fact, stamp: Stamp, rules: &Rules) -> Vec<DayChange> {
        let mut changes = Vec::new();
        let entry = match self.days.get(&day) {
            Some(existing) => existing.clone(),
            None => self.days.range(..day).next_back().map(|(_, before)| before.carried()).unwrap_or_default(),
        };
        let old = entry.contribution(school);
        let mut updated = entry;
        updated.apply(fact, stamp, rules);
        let new = updated.contribution(school);
        self.days.insert(day, updated);
        changes.push(DayChange { day, until: self.next_day_after(day), old, new });

        let later: Vec<Day> =
            self.days.range(day.succ_opt().unwrap_or(day)..).map(|(d, _)| *d).filter(|d| *d > day).collect();
        for later_day in later {
            let entry = self.days.get_mut(&later_day).expect("listed above");
            let old = entry.contribution(school);
            entry.apply_state(fact, stamp);
            let new = entry.contribution(school);
            if old != new {
                let until = self.next_day_after(later_day);
                changes.push(DayChange { day: later_day, until, old, new });
            }
        }
        changes
    }

    /// The person as of the end of `day` (state only if they did nothing that day).
    pub fn on(&self, day: Day) -> Option<PersonDay> {
        match self.days.get(&day) {
            Some(entry) => Some(entry.clone()),
            None => self.days.range(..day).next_back().map(|(_, e)| e.carried()),
        }
    }

    fn next_day_after(&self, day: Day) -> Option<Day> {
        self.days.range(day..).map(|(d, _)| *d).find(|d| *d > day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Placement, Role, Slot};
    use crate::tally::Measure;

    fn day(n: u32) -> Day {
        Day::from_ymd_opt(2020, 2, n).unwrap()
    }

    fn registered() -> Fact {
        Fact::Registered {
            role: Role::Teacher,
            placement: Placement { department: "D".into(), ..Placement::default() },
            city: "C".into(),
            on_campus: true,
        }
    }

    #[test]
    fn a_day_without_events_inherits_state_but_not_flows() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(1, "a"), &rules);
        t.apply("S", day(1), &Fact::Temperature { slot: Slot::Morning, celsius: 38.0 }, Stamp::new(2, "b"), &rules);
        let next = t.on(day(5)).unwrap().contribution("S").unwrap().tally;
        assert_eq!(next.get(Measure::Population), 1);
        assert_eq!(next.get(Measure::Fever), 0);
    }

    #[test]
    fn a_late_event_corrects_later_days_until_a_newer_write() {
        let rules = Rules::default();
        let mut t = Timeline::default();
        t.apply("S", day(1), &registered(), Stamp::new(day_ms(1), "a"), &rules);
        t.apply("S", day(3), &Fact::GatePassed(crate::event::Direction::Out), Stamp::new(day_ms(3), "b"), &rules);
        // Late: isolation started on day 2; days 2 and 3 change, day 3 inherits it.
        let changes = t.apply(
            "S",
            day(2),
            &Fact::IsolationStarted {
                kind: crate::event::IsolationKind::Home,
                place: String::new(),
                roommates: vec![],
            },
            Stamp::new(day_ms(2), "c"),
            &rules,
        );
        let days: Vec<Day> = changes.iter().map(|c| c.day).collect();
        assert_eq!(days, [day(2), day(3)]);
        assert_eq!(changes[0].until, Some(day(3)));
        assert_eq!(changes[1].until, None);
        let on3 = t.on(day(3)).unwrap().contribution("S").unwrap().tally;
        assert_eq!(on3.get(Measure::HomeObservation), 1);
        assert_eq!(on3.get(Measure::PresentOnCampus), 0);
        let on1 = t.on(day(1)).unwrap().contribution("S").unwrap().tally;
        assert_eq!(on1.get(Measure::HomeObservation), 0);
    }

    fn day_ms(n: u32) -> i64 {
        day(n).and_hms_opt(10, 0, 0).unwrap().and_utc().timestamp_millis()
    }
}
