//! Centralized-observation roommates share abnormal signs (DOMAIN.md l. 76–78): a fever
//! or symptom of one starts the other's period again from its onset.
//!
//! Roommates are whoever either side's isolation event named, and a pairing is never
//! forgotten (a newer isolation replacing the roommates register does not unpair), so
//! signs reach the same persons whatever order the events come in. The fold keeps the
//! pairings and does what [`sharing`] asks; this module says what that is.

use std::collections::BTreeSet;

use crate::Day;
use crate::event::Fact;
use crate::person::Rules;
use crate::timeline::Timeline;

/// What folding one of a person's facts asks of their roommates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharing<'a> {
    /// Abnormal signs showing on `onset`: each of the person's [`recipients`] folds
    /// [`signs`]`(onset)`.
    Signs { onset: Day },
    /// An isolation naming these roommates (the person themselves left out): each is
    /// paired with the person both ways, for good, and each side's
    /// [`own_abnormal_days`] go to the other as [`signs`].
    Pairing { roommates: Vec<&'a str> },
}

/// What `person`'s `fact` of `day` asks of their roommates, if anything.
pub fn sharing<'a>(person: &str, day: Day, fact: &'a Fact, rules: &Rules) -> Option<Sharing<'a>> {
    if rules.is_abnormal_sign(fact) {
        return Some(Sharing::Signs { onset: day });
    }
    match fact {
        Fact::IsolationStarted { roommates, .. } => Some(Sharing::Pairing {
            roommates: roommates.iter().map(String::as_str).filter(|r| *r != person).collect(),
        }),
        _ => None,
    }
}

/// The fact that tells a person of a roommate's abnormal signs showing on `onset`.
pub fn signs(onset: Day) -> Fact {
    Fact::RoommateShowedSigns { onset }
}

/// Who hears of `person`'s signs: whoever an isolation paired them with (`paired`, either
/// side's isolation) and whoever their own latest isolation names; never themselves.
pub fn recipients(person: &str, paired: &BTreeSet<String>, timeline: &Timeline) -> BTreeSet<String> {
    let mut recipients = paired.clone();
    if let Some((_, latest)) = timeline.days.iter().next_back() {
        recipients.extend(latest.state.roommates.value.iter().cloned());
    }
    recipients.remove(person);
    recipients
}

/// The days the person showed abnormal signs of their own, as of their latest day. Folding
/// a roommate's signs never changes them, so one reading serves a whole room.
pub fn own_abnormal_days(timeline: &Timeline) -> Vec<Day> {
    timeline.days.values().next_back().map(|d| d.state.abnormal_days.iter().copied().collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{IsolationKind, Slot, Symptom};
    use crate::person::Stamp;

    fn day(n: u32) -> Day {
        Day::from_ymd_opt(2020, 2, n).unwrap()
    }

    fn isolation(roommates: &[&str]) -> Fact {
        Fact::IsolationStarted {
            kind: IsolationKind::Centralized,
            place: "H1".into(),
            roommates: roommates.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn a_fever_or_a_symptom_is_shared_from_its_day_a_normal_reading_is_not() {
        let rules = Rules::default();
        let fever = Fact::Temperature { slot: Slot::Morning, celsius: 38.5 };
        let normal = Fact::Temperature { slot: Slot::Morning, celsius: 36.5 };
        assert_eq!(sharing("P1", day(3), &fever, &rules), Some(Sharing::Signs { onset: day(3) }));
        assert_eq!(
            sharing("P1", day(4), &Fact::Symptoms(vec![Symptom::Cough]), &rules),
            Some(Sharing::Signs { onset: day(4) })
        );
        assert_eq!(sharing("P1", day(3), &normal, &rules), None);
        assert_eq!(signs(day(3)), Fact::RoommateShowedSigns { onset: day(3) });
    }

    #[test]
    fn an_isolation_pairs_the_roommates_it_names_but_never_the_person_with_themselves() {
        let rules = Rules::default();
        let fact = isolation(&["P2", "P1", "P3"]);
        assert_eq!(sharing("P1", day(3), &fact, &rules), Some(Sharing::Pairing { roommates: vec!["P2", "P3"] }));
    }

    #[test]
    fn signs_reach_those_paired_either_way_and_never_the_person() {
        let rules = Rules::default();
        let mut timeline = Timeline::default();
        timeline.apply("S1", day(2), &isolation(&["P2", "P1"]), Stamp::new(0, "i1"), &rules);
        let paired: BTreeSet<String> = ["P3".to_owned(), "P1".to_owned()].into();
        let heard: Vec<String> = recipients("P1", &paired, &timeline).into_iter().collect();
        assert_eq!(heard, ["P2", "P3"]);
    }

    #[test]
    fn own_abnormal_days_leave_out_a_roommates_onsets() {
        let rules = Rules::default();
        let mut timeline = Timeline::default();
        let fever = Fact::Temperature { slot: Slot::Morning, celsius: 38.5 };
        timeline.apply("S1", day(2), &fever, Stamp::new(0, "e1"), &rules);
        timeline.apply("S1", day(3), &signs(day(3)), Stamp::new(1, "e2"), &rules);
        assert_eq!(own_abnormal_days(&timeline), [day(2)]);
        assert!(own_abnormal_days(&Timeline::default()).is_empty());
    }
}
