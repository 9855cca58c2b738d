//! How a person's [`DayChange`] moves the tallies of the units they count in: the
//! arithmetic that keeps a report the sum of person contributions (subtract the old
//! contribution, add the new one), with no store behind it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Day;
use crate::tally::Tally;
use crate::timeline::DayChange;
use crate::unit::UnitKey;

/// What one set of units takes from a change.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitDelta<'a> {
    /// Province down to the person's lowest unit (their school alone if not on the roster).
    pub units: &'a [UnitKey],
    pub delta: Tally,
    /// The person counts in these units now (the new contribution's units): a unit new
    /// to the store is registered.
    pub counts_there: bool,
}

impl DayChange {
    /// The deltas the units take: where the person stays in the same units (most events),
    /// one with the difference, none if there is none; otherwise the old contribution
    /// taken from the old units and the new one added to the new.
    pub fn unit_deltas(&self) -> impl Iterator<Item = UnitDelta<'_>> {
        let deltas = match (&self.old, &self.new) {
            (Some(old), Some(new)) if Arc::ptr_eq(&old.units, &new.units) || old.units == new.units => {
                let mut delta = new.tally;
                delta.add(&old.tally.negated());
                let changed = !delta.is_zero();
                [changed.then_some(UnitDelta { units: &new.units, delta, counts_there: true }), None]
            }
            (old, new) => [
                old.as_ref().map(|old| UnitDelta {
                    units: &old.units,
                    delta: old.tally.negated(),
                    counts_there: false,
                }),
                new.as_ref().map(|new| UnitDelta { units: &new.units, delta: new.tally, counts_there: true }),
            ],
        };
        deltas.into_iter().flatten()
    }
}

/// Adds `delta` to a unit's tally of `change.day`, and its state part to the unit's
/// days after it within the change's span (up to the person's next entry). A day
/// without a record holds the state of the day before it, so `change.day` and the
/// span's end get records of their own first. `touched` hears of every day written.
pub fn add_to_days(days: &mut BTreeMap<Day, Tally>, change: &DayChange, delta: &Tally, mut touched: impl FnMut(Day)) {
    let state = delta.state_only();
    // The delta's span ends where the person's next entry begins; a day there without
    // a record would inherit this delta, so pin it down first with what it holds now.
    if let Some(until) = change.until.filter(|_| !state.is_zero())
        && materialize(days, until)
    {
        touched(until);
    }
    materialize(days, change.day);
    days.get_mut(&change.day).expect("materialized above").add(delta);
    touched(change.day);
    if !state.is_zero() {
        let after = change.day.succ_opt().unwrap_or(change.day);
        let span = match change.until {
            Some(until) => days.range_mut(after..until),
            None => days.range_mut(after..),
        };
        for (day, tally) in span {
            tally.add(&state);
            touched(*day);
        }
    }
}

/// Gives `day` its own record, holding the state it inherits from the day before it.
/// Returns whether a record was added.
fn materialize(days: &mut BTreeMap<Day, Tally>, day: Day) -> bool {
    if days.contains_key(&day) {
        return false;
    }
    let inherited = days.range(..day).next_back().map(|(_, t)| t.state_only()).unwrap_or_default();
    days.insert(day, inherited);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::person::Contribution;
    use crate::tally::Measure;

    fn day(n: u32) -> Day {
        Day::from_ymd_opt(2020, 2, n).unwrap()
    }

    fn tally(measures: &[(Measure, i32)]) -> Tally {
        let mut tally = Tally::default();
        for (measure, value) in measures {
            tally.set(*measure, *value);
        }
        tally
    }

    fn contribution(units: &Arc<[UnitKey]>, tally: Tally) -> Option<Contribution> {
        Some(Contribution { units: units.clone(), tally })
    }

    #[test]
    fn the_same_units_take_the_difference_and_nothing_when_there_is_none() {
        let units: Arc<[UnitKey]> = Arc::from([UnitKey::school("S1")]);
        let (before, after) = (tally(&[(Measure::CheckedMorning, 1)]), tally(&[(Measure::Fever, 1)]));
        let change =
            DayChange { day: day(1), until: None, old: contribution(&units, before), new: contribution(&units, after) };
        let deltas: Vec<_> = change.unit_deltas().collect();
        let mut expected = after;
        expected.subtract(&before);
        assert_eq!(deltas, [UnitDelta { units: &units, delta: expected, counts_there: true }]);
        let unchanged = DayChange { new: contribution(&units, before), ..change };
        assert_eq!(unchanged.unit_deltas().count(), 0);
    }

    #[test]
    fn a_move_takes_the_old_contribution_out_and_puts_the_new_one_in() {
        let (from, to): (Arc<[UnitKey]>, Arc<[UnitKey]>) =
            (Arc::from([UnitKey::school("S1")]), Arc::from([UnitKey::school("S2")]));
        let population = tally(&[(Measure::Population, 1)]);
        let change = DayChange {
            day: day(1),
            until: None,
            old: contribution(&from, population),
            new: contribution(&to, population),
        };
        let deltas: Vec<_> = change.unit_deltas().collect();
        assert_eq!(
            deltas,
            [
                UnitDelta { units: &from, delta: population.negated(), counts_there: false },
                UnitDelta { units: &to, delta: population, counts_there: true },
            ]
        );
    }

    #[test]
    fn a_state_delta_reaches_the_days_of_its_span_and_pins_the_day_it_ends() {
        let population = tally(&[(Measure::Population, 1)]);
        let mut days = BTreeMap::from([(day(1), population), (day(3), population), (day(6), population)]);
        let change = DayChange { day: day(2), until: Some(day(5)), old: None, new: None };
        let mut touched = Vec::new();
        add_to_days(&mut days, &change, &population, |d| touched.push(d));
        // Day 5 keeps what it inherited from day 3 before the delta; days 2 and 3 take it.
        let two = tally(&[(Measure::Population, 2)]);
        assert_eq!(
            days,
            BTreeMap::from([
                (day(1), population),
                (day(2), two),
                (day(3), two),
                (day(5), population),
                (day(6), population)
            ])
        );
        assert_eq!(touched, [day(5), day(2), day(3)]);
    }

    #[test]
    fn a_day_count_stays_on_its_day() {
        let fever = tally(&[(Measure::Fever, 1)]);
        assert!(fever.state_only().is_zero(), "a day count");
        let mut days = BTreeMap::new();
        let change = DayChange { day: day(2), until: None, old: None, new: None };
        let mut touched = Vec::new();
        add_to_days(&mut days, &change, &fever, |d| touched.push(d));
        add_to_days(&mut days, &DayChange { day: day(4), ..change }, &Tally::default(), |d| touched.push(d));
        assert_eq!(days, BTreeMap::from([(day(2), fever), (day(4), Tally::default())]));
        assert_eq!(touched, [day(2), day(4)]);
    }
}
