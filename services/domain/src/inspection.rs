//! Service-window inspections: one hall's history, and what the offices read off it for a
//! day (its report, its findings, the alerts of a sealed day).
//!
//! A hall's history is the set of its events, each with the day it happened on; every
//! figure of a day is a function of that set, so folding is order-free (the set is the
//! same whatever the arrival order) and exactly once (an event already in the set is not
//! added again). Halls are few (a province has hundreds) and inspected at most a few
//! times a week, so reading a day off the whole history is cheap.
//!
//! The rules where the seed is silent (DOMAIN.md, "Service-window inspections"):
//! - a finding is a failed item of an inspection, opened on the inspection's day, named by
//!   the inspection's id and the item;
//! - it is rectified by a `Rectified` naming it (on that event's day, or the inspection's
//!   if the rectification is dated before it), or by a later inspection of the hall in
//!   which the item passed (on that inspection's day), whichever comes first;
//! - it is open at the end of a day from its opening until rectified, and overdue on a day
//!   after its deadline while still open;
//! - two `Inspected` with the same inspection id are one inspection: the later (by event
//!   time) corrects the earlier;
//! - a hall is registered from the day of its first registration to the day it closes;
//!   a closed hall counts nowhere, its findings with it; a hall inspected but never
//!   registered counts its inspections and findings, in its inspection's city, but is not
//!   among the registered halls nor the window's;
//! - compliant: inspected at least once and no finding open (its latest inspection passed
//!   every item, or every finding is rectified).

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::Day;
use crate::event::{ChecklistItem, Hall, HallKind, Inspection};
use crate::person::Stamp;
use crate::unit::UnitNames;

/// Every event of one hall, by event time; the unit of storage and of reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HallLog {
    entries: BTreeMap<Stamp, Entry>,
    /// Event ids held, so that a redelivery is recognized whatever its stamp.
    ids: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    day: Day,
    event: Inspection,
}

impl HallLog {
    /// Adds an event that happened on `day` (in the province's zone); false if the log
    /// holds it already.
    pub fn insert(&mut self, event_id: &str, stamp: Stamp, day: Day, event: Inspection) -> bool {
        if !self.ids.insert(event_id.to_owned()) {
            return false;
        }
        self.entries.insert(stamp, Entry { day, event });
        true
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The earliest day of an event this log holds and `other` does not.
    pub fn first_day_unlike(&self, other: &HallLog) -> Option<Day> {
        self.entries.iter().filter(|(stamp, _)| !other.entries.contains_key(stamp)).map(|(_, e)| e.day).min()
    }

    /// The earliest day any of its events happened on.
    pub fn first_day(&self) -> Option<Day> {
        self.entries.values().map(|e| e.day).min()
    }

    /// The registration that holds at the end of `day`, if the hall is registered and open
    /// then.
    pub fn registration(&self, day: Day) -> Option<&Hall> {
        let mut held = None;
        for entry in self.entries.values().filter(|e| e.day <= day) {
            match &entry.event {
                Inspection::HallRegistered(hall) => held = Some(hall),
                Inspection::HallClosed => held = None,
                _ => {}
            }
        }
        held
    }

    /// The latest registration, whatever its day: the hall's names and kind as known now.
    pub fn latest_registration(&self) -> Option<&Hall> {
        self.entries.values().rev().find_map(|e| match &e.event {
            Inspection::HallRegistered(hall) => Some(hall),
            _ => None,
        })
    }

    /// Whether the hall counts at the end of `day`, and in which city: registered and
    /// open, or never registered but inspected by then.
    pub fn standing(&self, day: Day) -> Option<Standing<'_>> {
        if let Some(hall) = self.registration(day) {
            return Some(Standing { city: &hall.city, registered: true });
        }
        // Not registered at the end of the day yet a roster event by then: the latest was
        // a closure, registered before or not (a registration dated later opens it again).
        if self.entries.values().any(|e| e.day <= day && is_roster(&e.event)) {
            return None; // closed
        }
        let (_, latest) = self.inspections().into_iter().rev().find(|(d, _)| *d <= day)?;
        let city = latest.city;
        Some(Standing { city, registered: false })
    }

    /// The inspections, one per inspection id (the latest by event time), by event time.
    fn inspections(&self) -> Vec<(Day, InspectionView<'_>)> {
        let mut latest: BTreeMap<&str, (Stamp, Day, InspectionView<'_>)> = BTreeMap::new();
        for (stamp, entry) in &self.entries {
            if let Inspection::Inspected { inspection_id, city, items } = &entry.event {
                let view = InspectionView { id: inspection_id, city, items };
                latest.insert(inspection_id, (*stamp, entry.day, view));
            }
        }
        let mut all: Vec<_> = latest.into_values().collect();
        all.sort_by_key(|(stamp, _, _)| *stamp);
        all.into_iter().map(|(_, day, view)| (day, view)).collect()
    }

    /// Every finding opened, with what it stood at the end of `day` (those opened after it
    /// left out).
    pub fn findings(&self, day: Day) -> Vec<Finding> {
        let inspections = self.inspections();
        let mut out = Vec::new();
        for (n, (opened, inspection)) in inspections.iter().enumerate() {
            if *opened > day {
                continue;
            }
            for result in inspection.items.iter().filter(|r| !r.passed) {
                let by_event = self
                    .entries
                    .values()
                    .filter_map(|e| match &e.event {
                        Inspection::Rectified { inspection_id, item }
                            if inspection_id == inspection.id && *item == result.item =>
                        {
                            Some(e.day.max(*opened))
                        }
                        _ => None,
                    })
                    .min();
                let by_reinspection = inspections[n + 1..]
                    .iter()
                    .filter(|(_, later)| later.items.iter().any(|r| r.item == result.item && r.passed))
                    .map(|(later_day, _)| (*later_day).max(*opened))
                    .min();
                let rectified = match (by_event, by_reinspection) {
                    (Some(e), Some(r)) if r < e => Some((r, true)),
                    (Some(e), _) => Some((e, false)),
                    (None, Some(r)) => Some((r, true)),
                    (None, None) => None,
                }
                .filter(|(on, _)| *on <= day);
                let deadline = result.deadline.unwrap_or(*opened);
                let status = match rectified {
                    Some(_) => FindingStatus::Rectified,
                    None if deadline < day => FindingStatus::Overdue,
                    None => FindingStatus::Open,
                };
                out.push(Finding {
                    inspection_id: inspection.id.to_owned(),
                    item: result.item,
                    finding: result.finding.clone(),
                    opened: *opened,
                    deadline,
                    status,
                    rectified: rectified.map(|(on, _)| on),
                    by_reinspection: rectified.is_some_and(|(_, by)| by),
                });
            }
        }
        out
    }

    /// The day of its latest inspection by the end of `day`.
    pub fn last_inspected(&self, day: Day) -> Option<Day> {
        self.inspections().into_iter().map(|(d, _)| d).filter(|d| *d <= day).max()
    }

    /// Its report of `day`, for an inspection window of `window_days` days ending with it;
    /// `None` when it counts nowhere that day (closed, or not registered nor inspected yet).
    pub fn tally(&self, hall: &str, day: Day, window_days: u32) -> Option<(String, InspectionTally)> {
        let standing = self.standing(day)?;
        let mut tally = InspectionTally::default();
        let inspections = self.inspections();
        let today: Vec<_> = inspections.iter().filter(|(d, _)| *d == day).collect();
        if standing.registered {
            tally.halls_registered = 1;
            let window_start = day - TimeDelta::days(i64::from(window_days.max(1)) - 1);
            if inspections.iter().any(|(d, _)| *d >= window_start && *d <= day) {
                tally.halls_inspected_in_window = 1;
            } else {
                tally.halls_not_inspected_in_window.insert(hall.to_owned());
            }
        }
        if !today.is_empty() {
            tally.halls_inspected = 1;
        }
        for (_, inspection) in &today {
            for result in inspection.items.iter().filter(|r| !r.passed) {
                tally.items_failed[item_index(result.item)] += 1;
            }
        }
        let findings = self.findings(day);
        for finding in &findings {
            tally.findings_opened += u32::from(finding.opened == day);
            tally.findings_rectified += u32::from(finding.rectified == Some(day));
            tally.findings_open += u32::from(finding.status != FindingStatus::Rectified);
            tally.findings_overdue += u32::from(finding.status == FindingStatus::Overdue);
        }
        if inspections.iter().any(|(d, _)| *d <= day) {
            tally.halls_ever_inspected = 1;
            tally.halls_compliant = u32::from(findings.iter().all(|f| f.status == FindingStatus::Rectified));
        }
        Some((standing.city.to_owned(), tally))
    }

    /// The alerts a seal of `day` raises about this hall: each finding overdue then, and
    /// the hall if not inspected within the window while registered the whole of it. The offices' feeds
    /// take each alert once (its [`InspectionAlert::key`]).
    pub fn alerts(&self, hall: &str, day: Day, window_days: u32) -> Vec<InspectionAlert> {
        let Some((city, tally)) = self.tally(hall, day, window_days) else { return Vec::new() };
        let mut out: Vec<InspectionAlert> = self
            .findings(day)
            .into_iter()
            .filter(|f| f.status == FindingStatus::Overdue)
            .map(|finding| InspectionAlert {
                hall: hall.to_owned(),
                city: city.clone(),
                day,
                kind: InspectionAlertKind::FindingOverdue(finding),
            })
            .collect();
        // A hall registered for less than the window has not gone a whole window yet.
        let window_start = day - TimeDelta::days(i64::from(window_days.max(1)) - 1);
        if !tally.halls_not_inspected_in_window.is_empty() && self.registration(window_start).is_some() {
            out.push(InspectionAlert {
                hall: hall.to_owned(),
                city,
                day,
                kind: InspectionAlertKind::NotInspected { last: self.last_inspected(day) },
            });
        }
        out
    }
}

fn is_roster(event: &Inspection) -> bool {
    matches!(event, Inspection::HallRegistered(_) | Inspection::HallClosed)
}

/// Where a hall counts on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing<'a> {
    pub city: &'a str,
    /// Registered and open (else never registered, only inspected).
    pub registered: bool,
}

#[derive(Debug, Clone, Copy)]
struct InspectionView<'a> {
    id: &'a str,
    city: &'a str,
    items: &'a [crate::event::ChecklistResult],
}

/// The position of an item in the checklist (the seed's order, from 0).
pub fn item_index(item: ChecklistItem) -> usize {
    ChecklistItem::ALL.iter().position(|i| *i == item).expect("ALL lists every item")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FindingStatus {
    Open,
    /// Open and its deadline before the day.
    Overdue,
    Rectified,
}

/// A failed item of an inspection, as it stood at the end of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub inspection_id: String,
    pub item: ChecklistItem,
    pub finding: String,
    pub opened: Day,
    pub deadline: Day,
    pub status: FindingStatus,
    pub rectified: Option<Day>,
    /// Rectified by a later inspection in which the item passed.
    pub by_reinspection: bool,
}

/// A finding with its hall and the city the hall counts in, as listings give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HallFinding {
    pub hall: String,
    pub city: String,
    pub finding: Finding,
}

/// An inspection report's figures: a hall's, or the sum of halls' (a city's, the
/// province's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionTally {
    pub halls_registered: u32,
    pub halls_inspected: u32,
    pub halls_inspected_in_window: u32,
    pub halls_not_inspected_in_window: BTreeSet<String>,
    pub items_failed: [u32; 9],
    pub findings_opened: u32,
    pub findings_rectified: u32,
    pub findings_open: u32,
    pub findings_overdue: u32,
    pub halls_ever_inspected: u32,
    pub halls_compliant: u32,
}

impl InspectionTally {
    pub fn add(&mut self, other: &InspectionTally) {
        self.halls_registered += other.halls_registered;
        self.halls_inspected += other.halls_inspected;
        self.halls_inspected_in_window += other.halls_inspected_in_window;
        self.halls_not_inspected_in_window.extend(other.halls_not_inspected_in_window.iter().cloned());
        for (sum, n) in self.items_failed.iter_mut().zip(other.items_failed) {
            *sum += n;
        }
        self.findings_opened += other.findings_opened;
        self.findings_rectified += other.findings_rectified;
        self.findings_open += other.findings_open;
        self.findings_overdue += other.findings_overdue;
        self.halls_ever_inspected += other.halls_ever_inspected;
        self.halls_compliant += other.halls_compliant;
    }

    /// Compliant halls over halls ever inspected; 0 when none was.
    pub fn compliance_rate(&self) -> f64 {
        if self.halls_ever_inspected == 0 {
            0.0
        } else {
            f64::from(self.halls_compliant) / f64::from(self.halls_ever_inspected)
        }
    }
}

/// The unit of an inspection report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum InspectionUnit {
    Province,
    City(String),
    Hall(String),
}

impl InspectionUnit {
    /// `province`, `city:<city>` or `hall:<hall>` (empty: the province).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.split_once(':') {
            None if raw.is_empty() || raw == "province" => Some(Self::Province),
            Some(("city", city)) if is_code(city) => Some(Self::City(city.to_owned())),
            Some(("hall", hall)) if is_code(hall) => Some(Self::Hall(hall.to_owned())),
            _ => None,
        }
    }

    /// Whether a hall standing in `city` counts in this unit.
    pub fn covers(&self, hall: &str, city: &str) -> bool {
        match self {
            Self::Province => true,
            Self::City(c) => c == city,
            Self::Hall(h) => h == hall,
        }
    }
}

fn is_code(s: &str) -> bool {
    !s.is_empty() && !s.contains([':', '/'])
}

impl std::fmt::Display for InspectionUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Province => f.write_str("province"),
            Self::City(c) => write!(f, "city:{c}"),
            Self::Hall(h) => write!(f, "hall:{h}"),
        }
    }
}

/// A unit's inspection report of a day, with its publication fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionReport {
    pub unit: InspectionUnit,
    pub day: Day,
    /// The city (of a hall, of a city); empty for the province.
    pub city: String,
    pub names: UnitNames,
    pub kind: Option<HallKind>,
    pub window_days: u32,
    pub tally: InspectionTally,
    /// 0 while open, 1 when sealed, one more per revision.
    pub version: u32,
}

/// An alert a sealed day raises about a hall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectionAlert {
    pub hall: String,
    pub city: String,
    pub day: Day,
    pub kind: InspectionAlertKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectionAlertKind {
    FindingOverdue(Finding),
    /// Not inspected within the window; `last` the latest inspection's day, if any.
    NotInspected {
        last: Option<Day>,
    },
}

impl InspectionAlert {
    /// What makes it the same alert again: a finding is overdue once, a hall lapses once
    /// per inspection it lapsed after.
    pub fn key(&self) -> String {
        match &self.kind {
            InspectionAlertKind::FindingOverdue(f) => {
                format!("{}/overdue/{}/{}", self.hall, f.inspection_id, item_index(f.item) + 1)
            }
            InspectionAlertKind::NotInspected { last } => {
                format!("{}/lapsed/{}", self.hall, last.map_or_else(|| "never".to_owned(), |d| d.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ChecklistResult;

    fn day(n: u32) -> Day {
        Day::from_ymd_opt(2020, 3, n).unwrap()
    }

    /// Every item passed but those listed, failing with a deadline of March `due`.
    fn inspected(id: &str, failed: &[(ChecklistItem, u32)]) -> Inspection {
        let items = ChecklistItem::ALL
            .iter()
            .map(|item| match failed.iter().find(|(f, _)| f == item) {
                Some((_, due)) => {
                    ChecklistResult { item: *item, passed: false, finding: "missing".into(), deadline: Some(day(*due)) }
                }
                None => ChecklistResult { item: *item, passed: true, finding: String::new(), deadline: None },
            })
            .collect();
        Inspection::Inspected { inspection_id: id.into(), city: "Guangzhou".into(), items }
    }

    fn registered(city: &str) -> Inspection {
        Inspection::HallRegistered(Hall {
            names: UnitNames { zh: "服务大厅".into(), en: "Service hall".into() },
            city: city.into(),
            kind: HallKind::ServiceHall,
        })
    }

    struct Log(HallLog);

    impl Log {
        fn new() -> Self {
            Self(HallLog::default())
        }

        /// An event at hour `hour` of March `on`.
        fn add(&mut self, id: &str, on: u32, hour: i64, event: Inspection) -> &mut Self {
            let at = day(on).and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis() + hour * 3_600_000;
            assert!(self.0.insert(id, Stamp::new(at, id), day(on), event));
            self
        }

        fn tally(&self, on: u32) -> InspectionTally {
            self.0.tally("H1", day(on), 7).unwrap().1
        }
    }

    const MASKS: ChecklistItem = ChecklistItem::MasksRequired;

    #[test]
    fn a_failed_item_opens_a_finding_that_turns_overdue_after_its_deadline_until_rectified() {
        let mut log = Log::new();
        log.add("r", 1, 9, registered("Shenzhen")).add("i", 2, 10, inspected("I1", &[(MASKS, 4)]));
        let on2 = log.tally(2);
        assert_eq!((on2.halls_inspected, on2.findings_opened, on2.findings_open, on2.items_failed[1]), (1, 1, 1, 1));
        assert_eq!((on2.halls_ever_inspected, on2.halls_compliant), (1, 0));
        assert_eq!(log.tally(4).findings_overdue, 0, "due on the 4th: not overdue that day");
        assert_eq!((log.tally(5).findings_open, log.tally(5).findings_overdue), (1, 1));
        log.add("x", 6, 15, Inspection::Rectified { inspection_id: "I1".into(), item: MASKS });
        let on6 = log.tally(6);
        assert_eq!(
            (on6.findings_rectified, on6.findings_open, on6.findings_overdue, on6.halls_compliant),
            (1, 0, 0, 1)
        );
        assert_eq!(log.tally(5).findings_overdue, 1, "the 5th stays as it was");
    }

    #[test]
    fn a_rectification_before_its_inspection_waits_for_it_and_counts_on_its_day() {
        let mut log = Log::new();
        log.add("x", 1, 8, Inspection::Rectified { inspection_id: "I1".into(), item: MASKS });
        assert!(log.0.tally("H1", day(1), 7).is_none(), "nothing to count before the inspection");
        log.add("i", 2, 10, inspected("I1", &[(MASKS, 4)]));
        let on2 = log.tally(2);
        assert_eq!((on2.findings_opened, on2.findings_rectified, on2.findings_open), (1, 1, 0));
    }

    #[test]
    fn a_later_inspection_passing_the_item_rectifies_the_finding_and_one_failing_it_does_not() {
        let mut log = Log::new();
        log.add("a", 2, 9, inspected("I1", &[(MASKS, 9)])).add("b", 2, 15, inspected("I2", &[]));
        let on2 = log.tally(2);
        assert_eq!(
            (on2.halls_inspected, on2.items_failed[1], on2.findings_opened, on2.findings_rectified),
            (1, 1, 1, 1)
        );
        assert_eq!(on2.findings_open, 0);
        let found = log.0.findings(day(2));
        assert!(found[0].by_reinspection);

        let mut again = Log::new();
        again.add("a", 2, 9, inspected("I1", &[(MASKS, 3)])).add("b", 5, 9, inspected("I2", &[(MASKS, 8)]));
        let on5 = again.tally(5);
        assert_eq!((on5.findings_open, on5.findings_overdue, on5.findings_opened), (2, 1, 1));
    }

    #[test]
    fn the_window_lists_registered_halls_not_inspected_and_a_closed_hall_counts_nowhere() {
        let mut log = Log::new();
        log.add("r", 1, 9, registered("Shenzhen"));
        let (city, on1) = log.0.tally("H1", day(1), 7).unwrap();
        assert_eq!(city, "Shenzhen");
        assert_eq!(on1.halls_not_inspected_in_window, BTreeSet::from(["H1".to_owned()]));
        log.add("i", 2, 9, inspected("I1", &[]));
        assert_eq!(log.tally(8).halls_inspected_in_window, 1, "the 2nd is within the 7 days ending on the 8th");
        assert_eq!(log.tally(9).halls_inspected_in_window, 0);
        log.add("c", 10, 9, Inspection::HallClosed);
        assert!(log.0.tally("H1", day(10), 7).is_none());
        assert!(log.0.tally("H1", day(9), 7).is_some());
    }

    #[test]
    fn a_hall_closed_without_a_registration_counts_nowhere_from_that_day_whatever_comes_later() {
        let mut log = Log::new();
        log.add("i", 2, 10, inspected("I1", &[(MASKS, 3)])).add("c", 4, 9, Inspection::HallClosed);
        assert_eq!(log.tally(3).findings_open, 1, "inspected, never registered: it counts");
        assert!(log.0.tally("H1", day(4), 7).is_none(), "closed on the 4th");
        // A registration dated later opens it again from its own day, not before.
        log.add("r", 8, 9, registered("Shenzhen"));
        assert!(log.0.tally("H1", day(5), 7).is_none(), "still closed on the 5th");
        assert_eq!(
            log.0.tally("H1", day(8), 7).map(|(city, t)| (city, t.halls_registered)),
            Some(("Shenzhen".into(), 1))
        );
    }

    #[test]
    fn a_corrected_inspection_replaces_the_first_and_a_redelivery_is_refused() {
        let mut log = Log::new();
        log.add("a", 2, 9, inspected("I1", &[(MASKS, 9)])).add("b", 2, 10, inspected("I1", &[]));
        assert_eq!(log.tally(2).findings_opened, 0);
        assert!(!log.0.insert("a", Stamp::new(0, "a"), day(2), registered("Shenzhen")));
    }

    #[test]
    fn alerts_name_each_overdue_finding_and_a_lapsed_hall_once() {
        let mut log = Log::new();
        log.add("r", 1, 9, registered("Shenzhen")).add("i", 1, 10, inspected("I1", &[(MASKS, 3)]));
        assert!(log.0.alerts("H1", day(3), 7).is_empty());
        let mut new = Log::new();
        new.add("r", 5, 9, registered("Shenzhen"));
        assert!(new.0.alerts("H1", day(10), 7).is_empty(), "registered six days: not a whole window yet");
        assert_eq!(new.0.alerts("H1", day(11), 7)[0].key(), "H1/lapsed/never");
        let keys: Vec<String> = log.0.alerts("H1", day(8), 7).iter().map(InspectionAlert::key).collect();
        assert_eq!(keys, ["H1/overdue/I1/2", "H1/lapsed/2020-03-01"]);
    }
}
