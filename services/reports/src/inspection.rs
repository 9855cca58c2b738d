//! The inspection reports' read side: a hall's, a city's and the province's report of a
//! day, the findings under a unit, the alerts a sealed day raises, and the judgement the
//! publisher seals and revises by. Every figure is read off the halls' logs as the fold
//! stored them (`domain::inspection`); cities and the province are summed from their
//! halls here and nowhere else.

use std::collections::{BTreeMap, BTreeSet};

use domain::Day;
use domain::inspection::{
    FindingStatus, HallFinding, HallLog, InspectionAlert, InspectionReport, InspectionTally, InspectionUnit,
};
use domain::unit::UnitNames;

use crate::{Pending, ReadModel, ReportError};

/// The inspection window when none is configured: a hall not inspected for a week is
/// named.
pub const DEFAULT_WINDOW_DAYS: u32 = 7;

/// Which findings a listing keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingFilter {
    All,
    /// Open at the end of the day, overdue ones included.
    Open,
    Overdue,
}

/// Every hall's log, read once for a question about a day.
pub struct Halls {
    logs: Vec<(String, HallLog)>,
}

impl Halls {
    /// The halls that count on `day`, with their city and figures.
    fn tallies(&self, day: Day, window_days: u32) -> Vec<(&str, String, InspectionTally)> {
        self.logs
            .iter()
            .filter_map(|(hall, log)| log.tally(hall, day, window_days).map(|(city, t)| (hall.as_str(), city, t)))
            .collect()
    }

    /// The cities halls stand in, registered or inspected, on any day.
    pub fn cities(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (_, log) in &self.logs {
            out.extend(log.latest_registration().map(|h| h.city.clone()));
            out.extend(log.standing(Day::MAX).map(|s| s.city.to_owned()));
        }
        out
    }

    fn log(&self, hall: &str) -> Option<&HallLog> {
        self.logs.iter().find(|(h, _)| h == hall).map(|(_, log)| log)
    }
}

impl ReadModel {
    /// Every hall's log as stored.
    pub fn halls(&self) -> Result<Halls, ReportError> {
        Ok(Halls { logs: self.projections().hall_logs()? })
    }

    /// Whether `unit` is known: the province, a configured city, or a hall with events.
    pub fn inspection_unit_known(&self, unit: &InspectionUnit) -> Result<bool, ReportError> {
        Ok(match unit {
            InspectionUnit::Province => true,
            InspectionUnit::City(city) => self.city_names().contains_key(city),
            InspectionUnit::Hall(hall) => self.projections().hall_log(hall)?.is_some(),
        })
    }

    /// `unit`'s inspection report of `day`, with the version published of it (0 while
    /// open); `None` for a unit not known.
    pub fn inspection_report(&self, unit: &InspectionUnit, day: Day) -> Result<Option<InspectionReport>, ReportError> {
        if !self.inspection_unit_known(unit)? {
            return Ok(None);
        }
        let halls = self.halls()?;
        Ok(self.inspection_reports_of(&halls, unit, day)?.into_iter().next())
    }

    /// `unit`'s report of `day` and those of every unit under it: the province, then its
    /// cities, then the halls; `None` for a unit not known.
    pub fn inspection_reports(
        &self,
        unit: &InspectionUnit,
        day: Day,
    ) -> Result<Option<Vec<InspectionReport>>, ReportError> {
        if !self.inspection_unit_known(unit)? {
            return Ok(None);
        }
        let halls = self.halls()?;
        self.inspection_reports_of(&halls, unit, day).map(Some)
    }

    fn inspection_reports_of(
        &self,
        halls: &Halls,
        under: &InspectionUnit,
        day: Day,
    ) -> Result<Vec<InspectionReport>, ReportError> {
        let window = self.inspection_window();
        let tallies = halls.tallies(day, window);
        let mut units: BTreeMap<InspectionUnit, (String, InspectionTally)> = BTreeMap::new();
        let mut add = |unit: InspectionUnit, city: &str, tally: &InspectionTally| {
            units.entry(unit).or_insert_with(|| (city.to_owned(), InspectionTally::default())).1.add(tally);
        };
        for (hall, city, tally) in &tallies {
            if !under.covers(hall, city) {
                continue;
            }
            if *under == InspectionUnit::Province {
                add(InspectionUnit::Province, "", tally);
            }
            if !matches!(under, InspectionUnit::Hall(_)) {
                add(InspectionUnit::City(city.clone()), city, tally);
            }
            add(InspectionUnit::Hall((*hall).to_owned()), city, tally);
        }
        // The asked unit reads zeros rather than nothing: a city with no hall that day.
        match under {
            InspectionUnit::Province => units.entry(InspectionUnit::Province).or_default(),
            InspectionUnit::City(city) => {
                units.entry(under.clone()).or_insert_with(|| (city.clone(), Default::default()))
            }
            InspectionUnit::Hall(_) => units.entry(under.clone()).or_default(),
        };
        let mut out = Vec::with_capacity(units.len());
        for (unit, (city, tally)) in units {
            let (names, kind) = match &unit {
                InspectionUnit::Province => (UnitNames::default(), None),
                InspectionUnit::City(c) => (self.city_names().get(c).cloned().unwrap_or_default(), None),
                InspectionUnit::Hall(h) => match halls.log(h).and_then(HallLog::latest_registration) {
                    Some(hall) => (hall.names.clone(), Some(hall.kind)),
                    None => (UnitNames::default(), None),
                },
            };
            let version = self.inspection_version(day, &unit, None)?;
            out.push(InspectionReport { unit, day, city, names, kind, window_days: window, tally, version });
        }
        Ok(out)
    }

    /// The version published of `unit`'s report of `day` (a pass's own decisions first).
    fn inspection_version(
        &self,
        day: Day,
        unit: &InspectionUnit,
        pending: Option<&Pending>,
    ) -> Result<u32, ReportError> {
        if let Some((version, _)) = pending.and_then(|p| p.inspection(day, unit)) {
            return Ok(*version);
        }
        let Some(publications) = self.publications() else { return Ok(0) };
        Ok(publications.inspection_remembered(day, unit)?.map_or(0, |(version, _)| version))
    }

    /// The findings of the halls under `unit` as they stood at the end of `day`, by hall,
    /// then opening day, inspection and item; `None` for a unit not known.
    pub fn findings(
        &self,
        unit: &InspectionUnit,
        day: Day,
        filter: FindingFilter,
    ) -> Result<Option<Vec<HallFinding>>, ReportError> {
        if !self.inspection_unit_known(unit)? {
            return Ok(None);
        }
        let halls = self.halls()?;
        let mut out = Vec::new();
        for (hall, log) in &halls.logs {
            let Some(standing) = log.standing(day) else { continue };
            if !unit.covers(hall, standing.city) {
                continue;
            }
            let mut findings = log.findings(day);
            findings.sort_by(|a, b| {
                (a.opened, &a.inspection_id, a.item as u8).cmp(&(b.opened, &b.inspection_id, b.item as u8))
            });
            for finding in findings {
                let keep = match filter {
                    FindingFilter::All => true,
                    FindingFilter::Open => finding.status != FindingStatus::Rectified,
                    FindingFilter::Overdue => finding.status == FindingStatus::Overdue,
                };
                if keep {
                    out.push(HallFinding { hall: hall.clone(), city: standing.city.to_owned(), finding });
                }
            }
        }
        Ok(Some(out))
    }

    /// The alerts the seal of `day` raises: each finding overdue that day, each registered
    /// hall not inspected within the window.
    pub fn inspection_alerts(&self, halls: &Halls, day: Day) -> Vec<InspectionAlert> {
        let window = self.inspection_window();
        halls.logs.iter().flat_map(|(hall, log)| log.alerts(hall, day, window)).collect()
    }

    /// Judges `day`'s inspection reports for publishing: those of `halls` (every hall if
    /// `None`, a seal) and the city and province above them. A report makes a new version
    /// when nothing was published of it yet or its figures moved; `emit` gets each, and
    /// `pending` remembers it.
    pub fn publish_inspection_day<E: From<ReportError>>(
        &self,
        all: &Halls,
        day: Day,
        halls: Option<&BTreeSet<String>>,
        pending: &mut Pending,
        mut emit: impl FnMut(&InspectionReport) -> Result<(), E>,
    ) -> Result<(), E> {
        let reports = self.inspection_reports_of(all, &InspectionUnit::Province, day)?;
        let chosen: Option<BTreeSet<&str>> = halls.map(|h| h.iter().map(String::as_str).collect());
        let cities: Option<BTreeSet<String>> = chosen.as_ref().map(|chosen| {
            reports
                .iter()
                .filter(|r| matches!(&r.unit, InspectionUnit::Hall(h) if chosen.contains(h.as_str())))
                .map(|r| r.city.clone())
                .collect()
        });
        if chosen.is_some() && cities.as_ref().is_some_and(BTreeSet::is_empty) {
            return Ok(());
        }
        for mut report in reports {
            let concerned = match (&report.unit, &chosen, &cities) {
                (_, None, _) | (InspectionUnit::Province, ..) => true,
                (InspectionUnit::City(c), _, Some(cities)) => cities.contains(c),
                (InspectionUnit::Hall(h), Some(chosen), _) => chosen.contains(h.as_str()),
                _ => false,
            };
            if !concerned {
                continue;
            }
            let held = match pending.inspection(day, &report.unit) {
                Some(held) => Some(held.clone()),
                None => match self.publications() {
                    Some(p) => p.inspection_remembered(day, &report.unit)?,
                    None => None,
                },
            };
            let version = match &held {
                Some((_, tally)) if *tally == report.tally => continue,
                Some((version, _)) => version + 1,
                None => 1,
            };
            report.version = version;
            pending.insert_inspection(day, report.unit.clone(), version, report.tally.clone());
            emit(&report)?;
        }
        Ok(())
    }
}
