//! The read model: every unit's report for a day as the offices read it.
//!
//! A school or a unit below it is read off its own tally (a day without a record inherits
//! the state of the one before). A city or the province is the sum of its schools, never
//! stored, and its status comes from theirs (its reporting rate), never from its summed
//! coverage. A day before its deadline is open: live figures. A sealed day's report is
//! judged against what was published of it, as the publisher's next pass will judge it:
//! figures that moved since make the next version (revised, with what changed), shown at
//! once. The publisher seals and revises through the same judgement, so what Reports, the
//! exports and the console show is what the offices receive.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aggregator::Projections;
use aggregator::store::UnitInfo;
use domain::close::CloseRules;
use domain::report::{ReportStatus, ReportingRate};
use domain::unit::UnitNames;
use domain::{DailyReport, Day, Level, Tally, UnitKey};

use crate::{Pending, Publications, Remembered, ReportError};

/// Reports as read by Reports, the publisher, the exports and the console.
#[derive(Clone)]
pub struct ReadModel {
    projections: Projections,
    close: CloseRules,
    /// `None` without feeds: nothing is published, every day reads open.
    publications: Option<Publications>,
    /// Cities' names, as configured (schools and below are named by events).
    city_names: std::sync::Arc<BTreeMap<String, UnitNames>>,
    /// Days, ending with a report's, within which a hall must have been inspected.
    inspection_window: u32,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel").finish_non_exhaustive()
    }
}

/// How a day's reports are filled beyond their figures.
#[derive(Clone, Copy)]
enum Judging<'a> {
    /// Figures only: no publication fields.
    Figures,
    /// Before the deadline: live figures, status open.
    Open,
    /// Judged against what was published (`Pending` first: a pass's own decisions).
    Sealed(&'a Pending),
}

/// A report with its publication fields filled.
struct Judged {
    report: DailyReport,
    /// What to remember if it makes a new version.
    remembered: Option<Remembered>,
    /// Whether it has a report to send: a unit no one was placed in by that day, with
    /// nothing published of it, has none and (a school) is not expected to report.
    expected: bool,
}

/// A school's day, read once for every summary above it.
struct SchoolDay {
    unit: UnitKey,
    city: String,
    tally: Tally,
    /// Judged on a sealed day when a rate or the school's own report needs it.
    judged: Option<Judged>,
}

impl SchoolDay {
    /// How the school counts in a reporting rate; `None` if not expected to report.
    fn status(&self) -> Option<ReportStatus> {
        self.judged.as_ref().filter(|j| j.expected).map(|j| j.report.status)
    }

    /// Whether the school counts in the sums of `unit`, the province or a city.
    fn within(&self, unit: &UnitKey) -> bool {
        unit.level == Level::Province || self.city == unit.path
    }
}

/// The units of the roster by school and by city, in the order the publisher sends them.
#[derive(Debug, Default)]
pub struct Roster {
    /// School → its city and its units, the school first, then level by level.
    schools: BTreeMap<String, (String, Vec<UnitKey>)>,
    cities: BTreeSet<String>,
}

impl Roster {
    /// The cities with a school in the roster.
    pub fn cities(&self) -> &BTreeSet<String> {
        &self.cities
    }
}

impl ReadModel {
    /// Reports off `projections`, every day open until [`Self::with_publications`].
    pub fn new(projections: Projections, close: CloseRules) -> Self {
        Self {
            projections,
            close,
            publications: None,
            city_names: Default::default(),
            inspection_window: crate::inspection::DEFAULT_WINDOW_DAYS,
        }
    }

    /// Sets the inspection window (days, at least 1).
    pub fn with_inspection_window(mut self, days: u32) -> Self {
        self.inspection_window = days.max(1);
        self
    }

    pub fn inspection_window(&self) -> u32 {
        self.inspection_window
    }

    pub(crate) fn city_names(&self) -> &BTreeMap<String, UnitNames> {
        &self.city_names
    }

    pub(crate) fn publications(&self) -> Option<&Publications> {
        self.publications.as_ref()
    }

    /// Names the cities' reports: Chinese from the configured list, English the city's key.
    pub fn with_cities(mut self, cities: &domain::city::Cities) -> Self {
        let names = cities.iter().map(|c| (c.name.clone(), UnitNames { zh: c.chinese.clone(), en: c.name.clone() }));
        self.city_names = std::sync::Arc::new(names.collect());
        self
    }

    /// `unit`'s display names: a city's as configured, a school's or a lower unit's as
    /// last named; none for the province or a unit never named.
    fn names_of(&self, unit: &UnitKey) -> Result<UnitNames, ReportError> {
        Ok(match unit.level {
            Level::Province => UnitNames::default(),
            Level::City => self.city_names.get(&unit.path).cloned().unwrap_or_default(),
            _ => self.projections.named_unit(unit)?.map(|named| named.names).unwrap_or_default(),
        })
    }

    /// Judges sealed days against what the feeds published.
    pub fn with_publications(mut self, publications: Publications) -> Self {
        self.publications = Some(publications);
        self
    }

    pub fn projections(&self) -> &Projections {
        &self.projections
    }

    pub fn close(&self) -> &CloseRules {
        &self.close
    }

    /// The versions after the first of `unit`'s report for `day` and what each changed;
    /// none while the day is open or without feeds.
    pub fn revisions(&self, unit: &UnitKey, day: Day) -> Result<Vec<crate::Revision>, ReportError> {
        self.publications.as_ref().map_or(Ok(Vec::new()), |p| p.revisions(day, unit))
    }

    /// The last day sealed; `None` before the first seal or without feeds.
    pub fn sealed_through(&self) -> Result<Option<Day>, ReportError> {
        self.publications.as_ref().map_or(Ok(None), Publications::sealed_through)
    }

    /// `unit`'s report for `day` with its publication fields; `None` if no one counted
    /// in it by then (a city: in any of its schools). The province always has one.
    pub fn report(&self, unit: &UnitKey, day: Day) -> Result<Option<DailyReport>, ReportError> {
        let none = Pending::default();
        let judging = self.judging(day, self.sealed_through()?, &none);
        self.report_judged(unit, day, judging)
    }

    /// `unit`'s report for `day` by its figures alone, without publication fields.
    pub fn figures(&self, unit: &UnitKey, day: Day) -> Result<Option<DailyReport>, ReportError> {
        self.report_judged(unit, day, Judging::Figures)
    }

    /// The first day anyone counted in `unit` (for a city or the province, in any of
    /// its schools); `None` if no one ever did. A unit has no report before it.
    pub fn first_day(&self, unit: &UnitKey) -> Result<Option<Day>, ReportError> {
        match unit.level {
            Level::Province | Level::City => self.first_day_of(&self.schools_of(unit)?),
            _ => Ok(self.projections.first_day(unit)?),
        }
    }

    /// Every unit's report on `day` under `under`, itself included, at `level` only if
    /// given: the province and cities first, then the units below in key order. Schools
    /// are read once for the sums above them, so a whole province costs one scan of the
    /// units and one read per unit (and one of its publication, on a sealed day). `each`
    /// returns false to stop early. `None` if no one was ever placed in `under`.
    pub fn reports(
        &self,
        under: &UnitKey,
        day: Day,
        level: Option<Level>,
        each: impl FnMut(DailyReport) -> bool,
    ) -> Result<Option<()>, ReportError> {
        let levels = level.map(|l| vec![l]);
        self.walk(under, day, levels.as_deref(), |unit, _| level.is_none_or(|l| l == unit.level), each)
    }

    /// The reports on `day` of the units directly below `unit` (the province's cities, a
    /// city's schools, a school's departments and dorms …) in key order; `None` if no one
    /// was ever placed in `unit`.
    pub fn children(&self, unit: &UnitKey, day: Day) -> Result<Option<Vec<DailyReport>>, ReportError> {
        let mut out = Vec::new();
        let below: &[Level] = match unit.level {
            Level::Province => &[Level::City],
            Level::City => &[Level::School],
            Level::School => &[Level::Department, Level::Dorm],
            Level::Department => &[Level::Grade],
            Level::Grade => &[Level::Class],
            Level::Class | Level::Dorm => &[],
        };
        let found = self.walk(
            unit,
            day,
            Some(below),
            |_, info| info.parent.as_ref() == Some(unit),
            |report| {
                out.push(report);
                true
            },
        )?;
        Ok(found.map(|()| out))
    }

    /// `unit`'s reports from `from` to `to`, each day it has one (the caller bounds the
    /// range). Its schools are listed once for the whole range.
    pub fn series(&self, unit: &UnitKey, from: Day, to: Day) -> Result<Vec<DailyReport>, ReportError> {
        let sealed = self.sealed_through()?;
        let none = Pending::default();
        let mut out = Vec::new();
        let schools = if unit.level <= Level::City { self.schools_of(unit)? } else { Vec::new() };
        let first = match unit.level {
            Level::Province => Some(Day::MIN),
            Level::City => self.first_day_of(&schools)?,
            _ => self.projections.first_day(unit)?,
        };
        let Some(first) = first else { return Ok(out) };
        for day in from.max(first).iter_days().take_while(|d| *d <= to) {
            let judging = self.judging(day, sealed, &none);
            let report = match unit.level {
                Level::Province | Level::City => {
                    self.roll_up(unit, day, &self.school_days(&schools, day, judging)?, judging)?
                }
                _ => self.judged(unit, day, &self.projections.tally_on(unit, day)?, None, judging)?,
            };
            out.push(report.report);
        }
        Ok(out)
    }

    /// The schools of `under` (the province, a city, a school) that are missing or late
    /// on a sealed `day`, with the rate they make; `None` while the day is open.
    pub fn stragglers(&self, under: &UnitKey, day: Day) -> Result<Option<ReportingRate>, ReportError> {
        let none = Pending::default();
        let judging = self.judging(day, self.sealed_through()?, &none);
        if !matches!(judging, Judging::Sealed(_)) {
            return Ok(None);
        }
        let schools = self.school_days(&self.schools_of(under)?, day, judging)?;
        Ok(Some(rate_of(schools.iter())))
    }

    /// The units of the roster, by school and by city, for [`Self::publish_day`].
    pub fn roster(&self) -> Result<Roster, ReportError> {
        let mut roster = Roster::default();
        let mut units = self.projections.units(None, None)?;
        units.sort_by(|(a, _), (b, _)| (a.level, &a.path).cmp(&(b.level, &b.path)));
        for (unit, info) in units {
            if unit.level < Level::School {
                continue;
            }
            let school = unit.path.split('/').next().unwrap_or_default().to_owned();
            if unit.level == Level::School {
                roster.cities.insert(info.city.clone());
            }
            roster.schools.entry(school).or_insert_with(|| (info.city.clone(), Vec::new())).1.push(unit);
        }
        Ok(roster)
    }

    /// Judges sealed `day` for a pass of the publisher: the units of `schools` (all if
    /// `None`), then each city with one of them, then the province, each against what was
    /// published of it and what `pending` holds of this pass. Every report that makes a
    /// new version goes into `pending` and to `send`, with its school's city (empty for
    /// the province). A unit no one was placed in by that day, with nothing published of
    /// it, sends nothing.
    pub fn publish_day<E: From<ReportError>>(
        &self,
        roster: &Roster,
        day: Day,
        schools: Option<&BTreeSet<String>>,
        pending: &mut Pending,
        mut send: impl FnMut(&DailyReport, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let chosen: Vec<&String> = match schools {
            Some(set) => roster.schools.keys().filter(|s| set.contains(*s)).collect(),
            None => roster.schools.keys().collect(),
        };
        let mut judged_schools: HashMap<&str, SchoolDay> = HashMap::new();
        let mut cities: BTreeSet<&str> = BTreeSet::new();
        for school in chosen {
            let (city, units) = &roster.schools[school];
            cities.insert(city);
            for unit in units {
                let tally = self.projections.tally_on(unit, day).map_err(ReportError::from)?;
                let mut judged = self.judged(unit, day, &tally, None, Judging::Sealed(pending))?;
                if judged.expected
                    && let Some(remembered) = judged.remembered.take()
                {
                    pending.insert(day, unit.clone(), remembered);
                    send(&judged.report, city)?;
                }
                if unit.level == Level::School {
                    let school_day = SchoolDay { unit: unit.clone(), city: city.clone(), tally, judged: Some(judged) };
                    judged_schools.insert(school, school_day);
                }
            }
        }
        // Every school counts in its city's sum and rate, whether republished or not.
        let mut all = Vec::with_capacity(roster.schools.len());
        for (school, (city, _)) in &roster.schools {
            match judged_schools.remove(school.as_str()) {
                Some(school_day) => all.push(school_day),
                None => all.push(self.school_day(UnitKey::school(school), city, day, Judging::Sealed(pending))?),
            }
        }
        let summaries =
            roster.cities.iter().filter(|c| cities.contains(c.as_str())).map(|c| (UnitKey::city(c), c.as_str()));
        for (unit, city) in summaries.chain([(UnitKey::province(), "")]) {
            let mut judged = self.roll_up(&unit, day, &all, Judging::Sealed(pending))?;
            if let Some(remembered) = judged.remembered.take() {
                pending.insert(day, unit, remembered);
                send(&judged.report, city)?;
            }
        }
        Ok(())
    }

    fn judging<'a>(&self, day: Day, sealed: Option<Day>, pending: &'a Pending) -> Judging<'a> {
        match sealed.is_some_and(|s| day <= s) {
            true => Judging::Sealed(pending),
            false => Judging::Open,
        }
    }

    fn report_judged(&self, unit: &UnitKey, day: Day, judging: Judging) -> Result<Option<DailyReport>, ReportError> {
        if unit.level <= Level::City {
            let schools = self.schools_of(unit)?;
            if unit.level == Level::City && self.first_day_of(&schools)?.is_none_or(|first| first > day) {
                return Ok(None);
            }
            let school_days = self.school_days(&schools, day, judging)?;
            return Ok(Some(self.roll_up(unit, day, &school_days, judging)?.report));
        }
        if self.projections.first_day(unit)?.is_none_or(|first| first > day) {
            return Ok(None);
        }
        Ok(Some(self.judged(unit, day, &self.projections.tally_on(unit, day)?, None, judging)?.report))
    }

    /// Walks the reports of `under` and the units below it that `wanted` picks (see
    /// [`Self::reports`]), listing only the units of `levels` below it (all if `None`) and
    /// the schools that summaries need.
    fn walk(
        &self,
        under: &UnitKey,
        day: Day,
        levels: Option<&[Level]>,
        wanted: impl Fn(&UnitKey, &UnitInfo) -> bool,
        mut each: impl FnMut(DailyReport) -> bool,
    ) -> Result<Option<()>, ReportError> {
        let mut units = match under.level {
            Level::Province => vec![(under.clone(), UnitInfo { parent: None, city: String::new() })],
            _ => match self.projections.unit(under)? {
                Some(info) => vec![(under.clone(), info)],
                None => return Ok(None),
            },
        };
        match levels {
            None => units.extend(self.projections.units(None, Some(under))?),
            Some(levels) => {
                let mut listed = levels.to_vec();
                // A city's or the province's report is summed from its schools.
                if (under.level <= Level::City || levels.iter().any(|l| *l <= Level::City))
                    && !listed.contains(&Level::School)
                {
                    listed.push(Level::School);
                }
                let mut below = Vec::new();
                for level in listed {
                    below.extend(self.projections.units(Some(level), Some(under))?);
                }
                // In key order, as a listing of every level gives them.
                below.sort_by(|(a, _), (b, _)| (a.level.as_str(), &a.path).cmp(&(b.level.as_str(), &b.path)));
                units.extend(below);
            }
        }
        let none = Pending::default();
        let judging = self.judging(day, self.sealed_through()?, &none);
        let summaries: Vec<&UnitKey> =
            units.iter().filter(|(u, info)| u.level <= Level::City && wanted(u, info)).map(|(u, _)| u).collect();
        // Schools are judged only when a rate or their own report is asked for.
        let judge_schools =
            !summaries.is_empty() || units.iter().any(|(u, i)| u.level == Level::School && wanted(u, i));
        let mut school_days = Vec::new();
        for (unit, info) in units.iter().filter(|(u, _)| u.level == Level::School) {
            school_days.push(match judge_schools {
                true => self.school_day(unit.clone(), &info.city, day, judging)?,
                false => {
                    let tally = self.projections.tally_on(unit, day)?;
                    SchoolDay { unit: unit.clone(), city: info.city.clone(), tally, judged: None }
                }
            });
        }
        for unit in summaries {
            if !each(self.roll_up(unit, day, &school_days, judging)?.report) {
                return Ok(Some(()));
            }
        }
        let mut schools: HashMap<UnitKey, SchoolDay> = school_days.into_iter().map(|s| (s.unit.clone(), s)).collect();
        for (unit, _) in units.iter().filter(|(u, info)| u.level > Level::City && wanted(u, info)) {
            let report = match schools.remove(unit) {
                Some(SchoolDay { judged: Some(judged), .. }) => judged.report,
                Some(SchoolDay { tally, .. }) => self.judged(unit, day, &tally, None, judging)?.report,
                None => self.judged(unit, day, &self.projections.tally_on(unit, day)?, None, judging)?.report,
            };
            if !each(report) {
                break;
            }
        }
        Ok(Some(()))
    }

    /// The schools of the province, of a city, or the school a unit below belongs to.
    fn schools_of(&self, unit: &UnitKey) -> Result<Vec<(UnitKey, String)>, ReportError> {
        let listed = match unit.level {
            Level::Province | Level::City => self.projections.units(Some(Level::School), Some(unit))?,
            _ => {
                let school = UnitKey::school(unit.path.split('/').next().unwrap_or_default());
                self.projections.unit(&school)?.map(|info| (school, info)).into_iter().collect()
            }
        };
        Ok(listed.into_iter().map(|(school, info)| (school, info.city)).collect())
    }

    fn first_day_of(&self, schools: &[(UnitKey, String)]) -> Result<Option<Day>, ReportError> {
        let mut first: Option<Day> = None;
        for (school, _) in schools {
            if let Some(day) = self.projections.first_day(school)? {
                first = Some(first.map_or(day, |f| f.min(day)));
            }
        }
        Ok(first)
    }

    fn school_days(
        &self,
        schools: &[(UnitKey, String)],
        day: Day,
        judging: Judging,
    ) -> Result<Vec<SchoolDay>, ReportError> {
        schools.iter().map(|(school, city)| self.school_day(school.clone(), city, day, judging)).collect()
    }

    /// A school's tally on `day`, judged unless the day is open.
    fn school_day(&self, unit: UnitKey, city: &str, day: Day, judging: Judging) -> Result<SchoolDay, ReportError> {
        let tally = self.projections.tally_on(&unit, day)?;
        let judged = match judging {
            Judging::Sealed(_) => Some(self.judged(&unit, day, &tally, None, judging)?),
            Judging::Figures | Judging::Open => None,
        };
        Ok(SchoolDay { unit, city: city.to_owned(), tally, judged })
    }

    /// A city's or the province's report: the sum of its schools and, on a sealed day,
    /// how many of them reported (its status comes from that).
    fn roll_up(
        &self,
        unit: &UnitKey,
        day: Day,
        schools: &[SchoolDay],
        judging: Judging,
    ) -> Result<Judged, ReportError> {
        let within: Vec<&SchoolDay> = schools.iter().filter(|s| s.within(unit)).collect();
        let mut sum = Tally::default();
        for school in &within {
            sum.add(&school.tally);
        }
        let rate = matches!(judging, Judging::Sealed(_)).then(|| rate_of(within.into_iter()));
        self.judged(unit, day, &sum, rate, judging)
    }

    /// `unit`'s report off `tally`, its publication fields filled as `judging` says; a
    /// city's or the province's status from `reporting`, its schools' rate.
    fn judged(
        &self,
        unit: &UnitKey,
        day: Day,
        tally: &Tally,
        reporting: Option<ReportingRate>,
        judging: Judging,
    ) -> Result<Judged, ReportError> {
        let mut report = DailyReport::from_tally(unit.clone(), day, tally);
        report.names = self.names_of(unit)?;
        let pending = match judging {
            Judging::Figures => return Ok(Judged { report, remembered: None, expected: true }),
            Judging::Open => {
                self.close.open(&mut report);
                return Ok(Judged { report, remembered: None, expected: true });
            }
            Judging::Sealed(pending) => pending,
        };
        report.reporting = reporting;
        let before = match pending.get(day, unit) {
            Some(remembered) => Some(remembered.clone()),
            None => self.publications.as_ref().map(|p| p.remembered(day, unit)).transpose()?.flatten(),
        };
        let expected = before.is_some() || report.population > 0 || unit.level <= Level::City;
        let held = before.as_ref().map(|r| &r.published);
        let published = match report.reporting.as_ref().map(ReportingRate::status) {
            Some(status) => self.close.record(held, &mut report, status),
            None => self.close.publish(held, &mut report),
        };
        let remembered = match published {
            Some(published) => {
                Some(Remembered { published, reporting: report.reporting.clone(), changes: report.changes.clone() })
            }
            None => {
                if let Some(held) = before {
                    // Nothing new since the last version: show that version as published.
                    report.revised = held.published.version > 1;
                    report.changes = held.changes;
                }
                None
            }
        };
        Ok(Judged { report, remembered, expected })
    }
}

/// How the schools reported: each expected one counted by its status.
fn rate_of<'a>(schools: impl Iterator<Item = &'a SchoolDay>) -> ReportingRate {
    let mut rate = ReportingRate::default();
    for school in schools {
        if let Some(status) = school.status() {
            rate.count(school.unit.clone(), status);
        }
    }
    rate
}

#[cfg(test)]
mod tests {
    use aggregator::{FoldConfig, Folder};
    use eventlog::{Polled, Record, TopicPartition};
    use prost::Message;
    use wire::pb;

    use super::*;

    fn day(n: u32) -> Day {
        Day::from_ymd_opt(2020, 3, n).unwrap()
    }

    fn unit(key: &str) -> UnitKey {
        key.parse().unwrap()
    }

    /// A teacher registered on 1 March at each of Foshan's S1 and S2; only S1's is
    /// checked that morning.
    fn folded() -> (store::Store, ReadModel) {
        let db = store::Store::temporary().unwrap();
        let projections = Projections::new(db.open_tree("projections").unwrap());
        let config = FoldConfig::default();
        let mut folder = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let registered = pb::event::Payload::Roster(pb::RosterEvent {
            person_id: "P1".into(),
            change: Some(pb::roster_event::Change::Registered(pb::Registered {
                role: pb::Role::Teacher as i32,
                placement: Some(pb::Placement { department: "D1".into(), ..Default::default() }),
                city: "Foshan".into(),
                on_campus: true,
            })),
        });
        let checked = pb::event::Payload::Health(pb::HealthEvent {
            person_id: "P1".into(),
            kind: Some(pb::health_event::Kind::Temperature(pb::TemperatureTaken {
                slot: pb::Slot::Morning as i32,
                celsius: 36.5,
            })),
        });
        let events = [
            ("roster", "r1", "S1", "2020-03-01T07:00:00+08:00", registered.clone()),
            ("roster", "r2", "S2", "2020-03-01T07:00:00+08:00", registered),
            ("health", "c1", "S1", "2020-03-01T08:00:00+08:00", checked),
        ];
        let polled: Vec<Polled> = (0..)
            .zip(events)
            .map(|(offset, (topic, id, school, at, payload))| {
                let event = pb::Event {
                    site: String::new(),
                    event_id: id.into(),
                    source: "test".into(),
                    school: school.into(),
                    occurred_at: at.into(),
                    payload: Some(payload),
                };
                let at = TopicPartition { topic: topic.into(), partition: 0 };
                let record =
                    Record { topic: topic.into(), key: school.into(), headers: vec![], payload: event.encode_to_vec() };
                Polled { at, offset, record }
            })
            .collect();
        folder.fold_records(&polled).unwrap();
        folder.checkpoint().unwrap();
        let publications = Publications::new(db.open_tree("feeds").unwrap());
        let model = ReadModel::new(projections, CloseRules::default()).with_publications(publications);
        (db, model)
    }

    /// Seals `day` as the publisher does; returns how many reports went out.
    fn seal(db: &store::Store, model: &ReadModel, day: Day) -> usize {
        let mut pending = Pending::default();
        let mut sent = 0;
        model
            .publish_day::<ReportError>(&model.roster().unwrap(), day, None, &mut pending, |_, _| {
                sent += 1;
                Ok(())
            })
            .unwrap();
        pending.seal(day);
        let mut batch = store::Batch::default();
        pending.write_into(&mut batch);
        db.open_tree("feeds").unwrap().apply(batch).unwrap();
        sent
    }

    #[test]
    fn a_city_is_the_sum_of_its_schools_and_once_sealed_its_status_is_theirs() {
        let (db, model) = folded();
        let city = unit("city:Foshan");
        let open = model.report(&city, day(1)).unwrap().unwrap();
        assert_eq!((open.population, open.status, open.reporting), (2, ReportStatus::Open, None));

        assert_eq!(seal(&db, &model, day(1)), 6, "two schools, their departments, the city, the province");
        assert_eq!(seal(&db, &model, day(1)), 0, "nothing moved: no new version");
        let sealed = model.report(&city, day(1)).unwrap().unwrap();
        assert_eq!((sealed.status, sealed.version), (ReportStatus::Incomplete, 1));
        let rate = sealed.reporting.clone().unwrap();
        assert_eq!((rate.expected, rate.actual, rate.on_time, &rate.missing[..]), (2, 1, 1, &[unit("school:S2")][..]));
        assert_eq!(model.stragglers(&UnitKey::province(), day(1)).unwrap(), Some(rate));
        assert_eq!(model.stragglers(&city, day(2)).unwrap(), None, "an open day has none yet");

        let mut listed = Vec::new();
        model
            .reports(&UnitKey::province(), day(1), None, |r| {
                listed.push(r);
                true
            })
            .unwrap();
        assert_eq!(listed[1], sealed, "a walk and a single read agree");
        let children = model.children(&city, day(1)).unwrap().unwrap();
        let statuses: Vec<_> = children.iter().map(|r| (r.unit.to_string(), r.status)).collect();
        assert_eq!(
            statuses,
            [("school:S1".to_owned(), ReportStatus::OnTime), ("school:S2".to_owned(), ReportStatus::Missing)]
        );
        let cities = model.children(&UnitKey::province(), day(1)).unwrap().unwrap();
        assert_eq!(cities, std::slice::from_ref(&sealed));

        let series = model.series(&city, day(1) - chrono::Days::new(3), day(2)).unwrap();
        let days: Vec<_> = series.iter().map(|r| (r.date, r.status)).collect();
        assert_eq!(days, [(day(1), ReportStatus::Incomplete), (day(2), ReportStatus::Open)], "from its first day");
        assert_eq!(model.report(&city, day(1) - chrono::Days::new(1)).unwrap(), None);
        assert_eq!(model.first_day(&city).unwrap(), Some(day(1)));
    }
}
