//! A timeline as stored (`t` keys): each day's entry keeps only the state fields that
//! differ from the entry before it, then the day's flows. Most days change one or two
//! registers, and the whole state written for every day (as `p` keys did) made a person's
//! stored state grow by about 190 bytes a day.
//!
//! Format 2 writes a day as the days since the entry before and its flows as one set of
//! bits: a day of checks alone is 3 bytes, where format 1 (still read) spent about 20.

use std::sync::Arc;

use domain::event::{Slot, Symptom};
use domain::person::{DayFlows, PersonDay, PersonState};
use domain::timeline::Timeline;
use domain::{Day, timeline::FoldedIds};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first byte of every value, so that a later layout can tell this one apart.
const FORMAT: u8 = 2;
/// Days written whole, flows as postcard structs: read, no longer written.
const FORMAT_1: u8 = 1;

/// Every field of [`PersonState`], in the order of the bits of a day's change mask.
macro_rules! state_fields {
    ($then:ident) => {
        $then! {
            registration,
            placement,
            enrolled,
            on_campus,
            in_key_area,
            two_histories,
            isolation,
            diagnosis,
            sick_absent,
            on_leave,
            exposure,
            isolation_since,
            release,
            roommates,
            abnormal_days,
            roommate_onsets,
            returned_batch,
            health_card_on,
            close_contact,
            leave_until,
            registration_acked,
            key_area_seen,
            returned_on
        }
    };
}

/// Fails to compile when `PersonState` gains a field the list above lacks: a field left
/// out would silently not be stored.
macro_rules! every_field_listed {
    ($($field:ident),*) => {
        #[allow(dead_code)]
        fn every_field_listed(state: &PersonState) {
            let PersonState { $($field: _),* } = state;
        }
    };
}
state_fields!(every_field_listed);

macro_rules! state_delta {
    ($($field:ident),*) => {
        /// The fields of `now` that differ from `before`: a mask, then each of them.
        #[allow(unused_assignments)]
        fn put_state(before: &PersonState, now: &PersonState, out: &mut Vec<u8>) {
            let (mut mask, mut bit) = (0u32, 1u32);
            $(
                if now.$field != before.$field {
                    mask |= bit;
                }
                bit <<= 1;
            )*
            put(out, &mask);
            bit = 1;
            $(
                if mask & bit != 0 {
                    put(out, &now.$field);
                }
                bit <<= 1;
            )*
        }

        /// `state` with the fields a mask names read from `rest`; shared with the day
        /// before (not copied) if the mask names none.
        #[allow(unused_assignments)]
        fn take_state(state: &mut Arc<PersonState>, rest: &mut &[u8]) -> postcard::Result<()> {
            let mask: u32 = take(rest)?;
            if mask == 0 {
                return Ok(());
            }
            let state = Arc::make_mut(state);
            let mut bit = 1u32;
            $(
                if mask & bit != 0 {
                    state.$field = take(rest)?;
                }
                bit <<= 1;
            )*
            Ok(())
        }
    };
}
state_fields!(state_delta);

/// Writes `timeline` into `out` (cleared first).
pub(crate) fn encode(timeline: &Timeline, out: &mut Vec<u8>) {
    out.clear();
    out.push(FORMAT);
    put(out, &(timeline.days.len() as u64));
    let empty = Arc::new(PersonState::default());
    let mut before = &empty;
    let mut day_before = None;
    for (day, entry) in &timeline.days {
        let days = chrono::Datelike::num_days_from_ce(day);
        match day_before {
            None => put(out, &days),
            Some(earlier) => put(out, &((days - earlier) as u32)),
        }
        day_before = Some(days);
        if Arc::ptr_eq(before, &entry.state) {
            put(out, &0u32);
        } else {
            put_state(before, &entry.state, out);
        }
        put(out, &flow_bits(&entry.flows));
        before = &entry.state;
    }
    put(out, &timeline.folded);
}

/// Reads a timeline written by [`encode`], or by the format before it.
pub(crate) fn decode(bytes: &[u8]) -> Result<Timeline, String> {
    let (&format, mut rest) = bytes.split_first().ok_or("an empty timeline value")?;
    if format != FORMAT && format != FORMAT_1 {
        return Err(format!("unknown timeline format {format}"));
    }
    let read = |rest: &mut &[u8]| -> postcard::Result<Timeline> {
        let count: u64 = take(rest)?;
        let mut timeline = Timeline::default();
        let mut state = Arc::new(PersonState::default());
        let mut day_before = None;
        for _ in 0..count {
            let days: i32 = match day_before {
                Some(earlier) if format == FORMAT => earlier + take::<u32>(rest)? as i32,
                _ => take(rest)?,
            };
            day_before = Some(days);
            let day = Day::from_num_days_from_ce_opt(days).ok_or(postcard::Error::DeserializeBadEncoding)?;
            take_state(&mut state, rest)?;
            let flows = if format == FORMAT { flows_of(take(rest)?) } else { take(rest)? };
            timeline.days.insert(day, Box::new(PersonDay { state: state.clone(), flows }));
        }
        timeline.folded = take::<FoldedIds>(rest)?;
        Ok(timeline)
    };
    let timeline = read(&mut rest).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the timeline", rest.len()));
    }
    Ok(timeline)
}

/// Where each part of a day's flows lies in its bits: the slots checked from bit 0, then
/// the fever, the symptoms, and the other flags in the order `flags!` lists them.
const FEVER_BIT: usize = Slot::ALL.len();
const FIRST_SYMPTOM_BIT: usize = FEVER_BIT + 1;
const FIRST_FLAG_BIT: usize = FIRST_SYMPTOM_BIT + Symptom::ALL.len();

/// Every flag of [`DayFlows`] as a bit. Lists every field, so that one added and left out
/// fails to compile.
macro_rules! flags {
    ($($flag:ident),*) => {
        fn flow_bits(flows: &DayFlows) -> u32 {
            let DayFlows { slots_checked, fever, symptoms, $($flag),* } = flows;
            let bit = |on: bool, at: usize| u32::from(on) << at;
            let mut bits = bit(*fever, FEVER_BIT);
            slots_checked.iter().for_each(|slot| bits |= bit(true, *slot as usize));
            symptoms.iter().for_each(|symptom| bits |= bit(true, FIRST_SYMPTOM_BIT + *symptom as usize));
            for (i, on) in [$(*$flag),*].into_iter().enumerate() {
                bits |= bit(on, FIRST_FLAG_BIT + i);
            }
            bits
        }

        /// The flows [`flow_bits`] wrote; sets in their sorted order, as folding keeps them.
        fn flows_of(bits: u32) -> DayFlows {
            let on = |at: usize| bits & (1 << at) != 0;
            // Fields are evaluated in the order written: the flags' bits in `flags!` order.
            let mut flags = (FIRST_FLAG_BIT..).map(on);
            DayFlows {
                slots_checked: Slot::ALL.into_iter().filter(|slot| on(*slot as usize)).collect(),
                fever: on(FEVER_BIT),
                symptoms: Symptom::ALL.into_iter().filter(|s| on(FIRST_SYMPTOM_BIT + *s as usize)).collect(),
                $($flag: flags.next().expect("a bit for every flag"),)*
            }
        }
    };
}
flags!(
    suspected_new,
    confirmed_new,
    released,
    returned,
    health_card,
    gate_in,
    gate_out,
    observation_started,
    sick_absence_started,
    back_in_class,
    unrostered,
    checked_late_only
);

fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    *out = postcard::to_extend(value, std::mem::take(out)).expect("timelines always serialize");
}

fn take<T: DeserializeOwned>(rest: &mut &[u8]) -> postcard::Result<T> {
    let (value, tail) = postcard::take_from_bytes(rest)?;
    *rest = tail;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Fact;
    use domain::event::{Placement, Role, Slot};
    use domain::person::Stamp;

    fn day(n: u32) -> Day {
        Day::from_ymd_opt(2026, 11, n).unwrap()
    }

    #[test]
    fn a_timeline_reads_back_as_written_and_keeps_only_what_changed_per_day() {
        let rules = domain::Rules::default();
        let mut timeline = Timeline::default();
        let registered = Fact::Registered {
            role: Role::Student,
            placement: Placement {
                department: "D1".into(),
                grade: "2019".into(),
                class: "C1".into(),
                dorm: "B1".into(),
            },
            city: "Guangzhou".into(),
            on_campus: true,
        };
        timeline.apply("S1", day(1), &registered, Stamp::new(1, "r"), &rules);
        // The key-area history (the stay, the return) is stored too.
        let hubei =
            Fact::Whereabouts { province: "Hubei".into(), city: "Wuhan".into(), in_key_area: true, on_campus: false };
        timeline.apply("S1", day(1), &hubei, Stamp::new(2, "w"), &rules);
        timeline.apply("S1", day(1), &Fact::Returned { date: day(1), batch: 1 }, Stamp::new(3, "b"), &rules);
        for n in 1..=20 {
            let reading = Fact::Temperature { slot: Slot::Morning, celsius: if n == 7 { 38.0 } else { 36.5 } };
            let stamp = Stamp::new(i64::from(n) * 86_400_000, &format!("t{n}"));
            timeline.apply("S1", day(n), &reading, stamp, &rules);
            assert!(timeline.first_fold(stamp));
        }
        let mut bytes = Vec::new();
        encode(&timeline, &mut bytes);
        let read = decode(&bytes).unwrap();
        assert_eq!(read, timeline);
        assert_eq!(read.days[&day(1)].state.back_from_key_area(), Some(day(1)));
        // Days that changed nothing share the day before's state once read, as in memory.
        let state = |n: u32| &read.days[&day(n)].state;
        assert!(Arc::ptr_eq(state(2), state(6)) && Arc::ptr_eq(state(8), state(20)));
        assert!(!Arc::ptr_eq(state(6), state(7)), "the fever on day 7 changed its state");
        // The whole state every day, as `p` keys held it, is several times larger.
        let whole = postcard::to_allocvec(&timeline).unwrap();
        assert!(bytes.len() * 3 < whole.len(), "{} bytes, whole {}", bytes.len(), whole.len());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "a cut value is refused");
        // Format 1 wrote each day's number and flows whole: still read alike.
        let mut format_1 = vec![FORMAT_1];
        put(&mut format_1, &(timeline.days.len() as u64));
        let mut before = &Arc::new(PersonState::default());
        for (day, entry) in &timeline.days {
            put(&mut format_1, &chrono::Datelike::num_days_from_ce(day));
            put_state(before, &entry.state, &mut format_1);
            put(&mut format_1, &entry.flows);
            before = &entry.state;
        }
        put(&mut format_1, &timeline.folded);
        assert_eq!(decode(&format_1).unwrap(), timeline);
        assert!(bytes.len() + 20 * 12 < format_1.len(), "{} bytes, format 1 {}", bytes.len(), format_1.len());
    }

    #[test]
    fn every_flag_of_a_day_has_a_bit_of_its_own() {
        let all = DayFlows {
            slots_checked: Slot::ALL.to_vec(),
            fever: true,
            symptoms: domain::event::Symptom::ALL.to_vec(),
            suspected_new: true,
            confirmed_new: true,
            released: true,
            returned: true,
            health_card: true,
            gate_in: true,
            gate_out: true,
            observation_started: true,
            sick_absence_started: true,
            back_in_class: true,
            unrostered: true,
            checked_late_only: true,
        };
        assert_eq!(flow_bits(&all).count_ones(), 22);
        assert_eq!(flows_of(flow_bits(&all)), all);
        assert_eq!(flows_of(flow_bits(&DayFlows::default())), DayFlows::default());
        let some = DayFlows { slots_checked: vec![Slot::Noon, Slot::Canteen], gate_out: true, ..DayFlows::default() };
        assert_eq!(flows_of(flow_bits(&some)), some);
    }
}
