//! The day's close: when a unit's report for a day is sealed, whether it counts as sent,
//! and how a change after the seal becomes a new version.
//!
//! Day D is sealed at the deadline (default 09:00, province time) on day D + `lag_days`
//! (default 1): the next morning, after the day's last check (the evening one, about
//! 19:30) and the night to post it, so that a normal day is sealed once, complete, and a
//! revision means late news. A report counts as sent when its check coverage (persons expected in the
//! daily checks who had at least one, over persons expected) reaches the threshold: on
//! time if reached by events acknowledged before the deadline, late if after. Below it, or with nobody expected, the report
//! is missing, never a zero report. A sealed report is version 1; each later change of a figure or of the status
//! makes the next version, with the figures that changed.

use chrono::{FixedOffset, NaiveDateTime, NaiveTime, TimeDelta};
use serde::{Deserialize, Serialize};

use crate::Day;
use crate::report::{DailyReport, FieldChange, ReportStatus};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloseRules {
    /// Local time of the deadline.
    pub deadline: NaiveTime,
    /// Days after the report's day on which the deadline falls.
    pub lag_days: u32,
    /// Coverage a report needs to count as sent, 0 to 1.
    pub coverage_threshold: f64,
}

impl Default for CloseRules {
    fn default() -> Self {
        Self { deadline: NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"), lag_days: 1, coverage_threshold: 0.9 }
    }
}

impl CloseRules {
    /// The deadline as an instant in `zone`, for judging when events were acknowledged.
    pub fn deadline_in(&self, zone: FixedOffset) -> Deadline {
        Deadline { time: self.deadline, lag_days: self.lag_days, zone }
    }

    /// The local moment day `day` is sealed.
    pub fn deadline_of(&self, day: Day) -> NaiveDateTime {
        (day + TimeDelta::days(i64::from(self.lag_days))).and_time(self.deadline)
    }

    /// The last day whose deadline has passed at local time `now`.
    pub fn last_sealed_day(&self, now: NaiveDateTime) -> Day {
        let today = now.date() - TimeDelta::days(i64::from(self.lag_days));
        if now.time() >= self.deadline { today } else { today.pred_opt().unwrap_or(today) }
    }

    /// Whether the report's coverage counts it as sent. A unit where nobody is expected
    /// (everyone away or on leave, or no one registered yet) has no coverage: nothing was
    /// checked, so it is not sent and never a zero report (issue 23).
    pub fn has_sent(&self, report: &DailyReport) -> bool {
        report.coverage().is_some_and(|c| c >= self.coverage_threshold)
    }

    /// Fills the status of a report of a day still open.
    pub fn open(&self, report: &mut DailyReport) {
        report.status = ReportStatus::Open;
        report.version = 0;
        report.revised = false;
        report.changes.clear();
        report.zero_report = report.abnormal == 0 && self.has_sent(report);
    }

    /// How `report` stands by its figures alone: on time if its coverage was reached by
    /// events acknowledged by the deadline (of the persons on the roster by then), late if
    /// reached since, else missing.
    pub fn judge(&self, report: &DailyReport) -> ReportStatus {
        if report.coverage_by_deadline().is_some_and(|c| c >= self.coverage_threshold) {
            ReportStatus::OnTime
        } else if self.has_sent(report) {
            ReportStatus::Late
        } else {
            ReportStatus::Missing
        }
    }

    /// Judges `report` of a sealed day against what was published of it before
    /// (`None`: nothing yet, this is the seal). Fills its status, version and changes and
    /// returns what to remember, or `None` if nothing changed since `before`. A report
    /// once sent stays sent; it moves up when events acknowledged in time are folded
    /// after the seal (a lagging aggregator), so the status depends on the events and
    /// their acknowledgement times, not on when they were folded.
    pub fn publish(&self, before: Option<&Published>, report: &mut DailyReport) -> Option<Published> {
        let judged = self.judge(report);
        let status = before.map_or(judged, |b| b.status.or_better(judged));
        self.record(before, report, status)
    }

    /// Fills `report`'s publication fields for `status`, judged by the caller (a city's
    /// or the province's from its schools': [`crate::report::ReportingRate::status`]),
    /// and returns what to remember, or `None` if nothing changed since `before`.
    pub fn record(
        &self,
        before: Option<&Published>,
        report: &mut DailyReport,
        status: ReportStatus,
    ) -> Option<Published> {
        let figures = report.figures();
        let values: Vec<i64> = figures.iter().map(|(_, v)| *v).collect();
        report.status = status;
        report.zero_report = status.has_reported() && report.abnormal == 0;
        match before {
            Some(b) if same_figures(&b.values, &values) && b.status == status => {
                report.version = b.version;
                None
            }
            Some(b) => {
                report.version = b.version + 1;
                report.revised = true;
                report.changes = figures
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (name, after))| {
                        let before = b.values.get(i).copied().unwrap_or(0);
                        (before != *after).then(|| FieldChange { field: name.clone(), before, after: *after })
                    })
                    .collect();
                Some(Published { version: report.version, status, values })
            }
            None => {
                report.version = 1;
                Some(Published { version: 1, status, values })
            }
        }
    }
}

/// When each day's report is due, as an instant: an event acknowledged after its day's
/// deadline arrived late, whenever it is folded (issue 23: timeliness is about submission).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deadline {
    pub time: NaiveTime,
    pub lag_days: u32,
    pub zone: FixedOffset,
}

impl Default for Deadline {
    fn default() -> Self {
        CloseRules::default().deadline_in(FixedOffset::east_opt(8 * 3600).expect("valid offset"))
    }
}

impl Deadline {
    /// Day `day`'s deadline in milliseconds since the epoch.
    pub fn millis_of(&self, day: Day) -> i64 {
        let local = day.checked_add_days(chrono::Days::new(u64::from(self.lag_days))).unwrap_or(Day::MAX);
        let local = local.and_time(self.time);
        let utc = local.checked_sub_signed(TimeDelta::seconds(i64::from(self.zone.local_minus_utc())));
        utc.unwrap_or(local).and_utc().timestamp_millis()
    }

    /// The first day whose deadline is after `acked` (milliseconds since the epoch):
    /// an event acknowledged then is in time for that day's report and the days after.
    pub fn first_day_due_after(&self, acked: i64) -> Option<Day> {
        let local = chrono::DateTime::from_timestamp_millis(acked)?.with_timezone(&self.zone).naive_local();
        let candidate = local.date().checked_sub_days(chrono::Days::new(u64::from(self.lag_days)))?;
        let mut day = candidate.pred_opt()?;
        // At most a few steps: the deadline is within a day of `candidate`'s.
        while self.millis_of(day) <= acked {
            day = day.succ_opt()?;
        }
        Some(day)
    }

    /// Whether an event acknowledged at `acked` (milliseconds since the epoch; `None`
    /// when the record does not say, as before acknowledgement times were kept) was in
    /// time for day `day`'s report: before its deadline, the moment the day is sealed.
    pub fn in_time(&self, acked: Option<i64>, day: Day) -> bool {
        acked.is_none_or(|at| at < self.millis_of(day))
    }
}

/// Whether two lists of figures agree; a figure added to the report after `before` was
/// published reads as 0 there, so adding one makes no version by itself.
fn same_figures(before: &[i64], now: &[i64]) -> bool {
    (0..before.len().max(now.len())).all(|i| before.get(i).unwrap_or(&0) == now.get(i).unwrap_or(&0))
}

/// What was last published of a unit's report for a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub version: u32,
    pub status: ReportStatus,
    /// The report's figures ([`DailyReport::figures`]) in order.
    pub values: Vec<i64>,
}

impl Published {
    /// Fills a report's publication fields from what was published, for a reader.
    pub fn describe(&self, report: &mut DailyReport) {
        report.status = self.status;
        report.version = self.version;
        report.revised = self.version > 1;
        report.zero_report = self.status.has_reported() && report.abnormal == 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tally::{Measure, Tally};
    use crate::unit::UnitKey;

    fn report(expected: i32, checked: i32, fever: i32) -> DailyReport {
        let mut t = Tally::default();
        t.set(Measure::Population, expected);
        t.set(Measure::ChecksExpected, expected);
        t.set(Measure::CheckedExpected, checked);
        t.set(Measure::CheckedMorning, checked);
        t.set(Measure::ExpectedByDeadline, expected);
        t.set(Measure::CheckedByDeadline, checked);
        t.set(Measure::Fever, fever);
        t.set(Measure::AbnormalToday, fever);
        DailyReport::from_tally(UnitKey::school("S001"), "2020-02-26".parse().unwrap(), &t)
    }

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn a_day_is_sealed_at_the_deadline() {
        // By default the next morning, after the evening check has come in.
        let rules = CloseRules::default();
        assert_eq!(rules.deadline_of("2020-02-26".parse().unwrap()), at("2020-02-27 09:00"));
        assert_eq!(rules.last_sealed_day(at("2020-02-26 23:59")).to_string(), "2020-02-25");
        assert_eq!(rules.last_sealed_day(at("2020-02-27 08:59")).to_string(), "2020-02-25");
        assert_eq!(rules.last_sealed_day(at("2020-02-27 09:00")).to_string(), "2020-02-26");
        // Still configurable to the same day.
        let same_day = CloseRules { deadline: NaiveTime::from_hms_opt(16, 0, 0).unwrap(), lag_days: 0, ..rules };
        assert_eq!(same_day.last_sealed_day(at("2020-02-26 15:59")).to_string(), "2020-02-25");
        assert_eq!(same_day.last_sealed_day(at("2020-02-26 16:00")).to_string(), "2020-02-26");
    }

    #[test]
    fn no_checks_is_missing_not_zero() {
        let rules = CloseRules::default();
        let mut r = report(40, 0, 0);
        let published = rules.publish(None, &mut r).unwrap();
        assert_eq!((published.status, r.version, r.zero_report), (ReportStatus::Missing, 1, false));
        let mut open = report(40, 0, 0);
        rules.open(&mut open);
        assert!(!open.zero_report, "a live report with no checks is not a zero report either");
    }

    #[test]
    fn the_deadline_is_an_instant_in_the_province_zone_and_an_event_at_it_is_late() {
        let deadline = Deadline::default();
        let day: Day = "2020-03-01".parse().unwrap();
        // 09:00 on 2 March at UTC+8 is 01:00 UTC.
        let due = chrono::DateTime::parse_from_rfc3339("2020-03-02T01:00:00Z").unwrap().timestamp_millis();
        assert_eq!(deadline.millis_of(day), due);
        assert!(deadline.in_time(Some(due - 1), day));
        assert!(!deadline.in_time(Some(due), day), "at 09:00 the day is sealed already");
        assert!(deadline.in_time(None, day), "a record that does not say counts as in time");
        assert_eq!(deadline.first_day_due_after(due - 1), Some(day));
        assert_eq!(deadline.first_day_due_after(due).map(|d| d.to_string()).as_deref(), Some("2020-03-02"));
    }

    #[test]
    fn coverage_reached_only_by_late_events_is_late_and_a_sent_report_moves_only_up() {
        let rules = CloseRules::default();
        let mut late = report(40, 40, 0);
        late.checked_by_deadline = 10;
        assert_eq!(rules.judge(&late), ReportStatus::Late);
        // Nobody on the roster by the deadline: nothing could be on time.
        late.expected_by_deadline = 0;
        assert_eq!(rules.judge(&late), ReportStatus::Late);
        let v1 = rules.publish(None, &mut report(40, 0, 0)).unwrap();
        assert_eq!(v1.status, ReportStatus::Missing);
        // Checks acknowledged in time, folded after the seal (a lagging aggregator).
        let v2 = rules.publish(Some(&v1), &mut report(40, 40, 0)).unwrap();
        assert_eq!(v2.status, ReportStatus::OnTime);
        assert!(rules.publish(Some(&v2), &mut late).is_none(), "the same figures, the same status: no version");
        assert_eq!(late.status, ReportStatus::OnTime, "on time stays on time");
    }

    #[test]
    fn nobody_expected_is_not_sent_and_never_a_zero_report() {
        let rules = CloseRules::default();
        let mut away = report(0, 0, 0);
        away.population = 1;
        let published = rules.publish(None, &mut away).unwrap();
        assert_eq!((published.status, away.zero_report), (ReportStatus::Missing, false));
        let mut open = report(0, 0, 0);
        rules.open(&mut open);
        assert!(!open.zero_report);
    }

    #[test]
    fn full_coverage_and_nothing_abnormal_is_a_zero_report() {
        let mut r = report(40, 40, 0);
        let published = CloseRules::default().publish(None, &mut r).unwrap();
        assert_eq!((published.status, r.zero_report), (ReportStatus::OnTime, true));
    }

    #[test]
    fn coverage_below_the_threshold_is_missing() {
        let mut r = report(40, 35, 0);
        assert_eq!(CloseRules::default().publish(None, &mut r).unwrap().status, ReportStatus::Missing);
        let lenient = CloseRules { coverage_threshold: 0.8, ..CloseRules::default() };
        let mut r = report(40, 35, 0);
        assert_eq!(lenient.publish(None, &mut r).unwrap().status, ReportStatus::OnTime);
    }

    #[test]
    fn a_change_after_the_seal_is_version_2_with_what_changed() {
        let rules = CloseRules::default();
        let v1 = rules.publish(None, &mut report(40, 40, 0)).unwrap();
        assert!(rules.publish(Some(&v1), &mut report(40, 40, 0)).is_none(), "nothing changed, no version");
        let mut later = report(40, 40, 1);
        let v2 = rules.publish(Some(&v1), &mut later).unwrap();
        assert_eq!((v2.version, later.revised, v2.status), (2, true, ReportStatus::OnTime));
        assert_eq!(later.changes, vec![FieldChange { field: "fever".into(), before: 0, after: 1 }]);
        assert!(!later.zero_report);
    }

    #[test]
    fn a_missing_report_completed_after_the_seal_is_late() {
        let rules = CloseRules::default();
        let v1 = rules.publish(None, &mut report(40, 0, 0)).unwrap();
        // Completed by checks acknowledged after the deadline.
        let mut completed = report(40, 40, 0);
        completed.checked_by_deadline = 0;
        let v2 = rules.publish(Some(&v1), &mut completed).unwrap();
        assert_eq!((v2.status, v2.version, completed.zero_report), (ReportStatus::Late, 2, true));
        // Once sent, a report stays sent: a later drop in coverage does not unsend it.
        let mut dropped = report(50, 40, 0);
        dropped.checked_by_deadline = 0;
        let v3 = rules.publish(Some(&v2), &mut dropped).unwrap();
        assert_eq!(v3.status, ReportStatus::Late);
    }
}
