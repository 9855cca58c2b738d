//! The province's service-window halls and a day of their inspections (issue 27).
//!
//! **Halls.** The department's five provincial halls (its service hall, the
//! social-insurance, talent and examination bureaus, and the work-injury rehabilitation
//! hospital, all standing in Guangzhou) at every scale, and each of the 21 cities' halls:
//! at scale 1 a city has its main hall and one branch hall per three technical schools it
//! has (Guangzhou 11, Shenzhen and Foshan 5, ..., Chaozhou 2; 67 in all, so 72 halls in the
//! province); `scale` multiplies the cities' halls, each city keeping at least its main
//! hall (26 halls at scale 0.05 or less). Codes: `H-PROV-01`..`H-PROV-05`,
//! `H-Guangzhou-01` (a city's main hall), `H-Guangzhou-02`...
//!
//! **Cadence.** Each hall is inspected on two fixed weekdays, three or four days apart
//! (drawn from the seed and the hall's code), so about twice a week; one planned visit in
//! ten is skipped, so a hall now and then goes more than a week without one. An inspection
//! checks the nine items; each fails with a chance of 4% (a finding with its text and a
//! deadline 3, 5 or 7 days later). Of the failures, 70% are rectified on or before the
//! deadline (1 day after the inspection at the soonest), 20% late (up to a week after it),
//! and 10% not within 28 days. Until a failure is rectified the hall's next inspections
//! fail the item again (findings of their own); a `Rectified` event on the day it is fixed
//! names every finding of the item it fixes. A problem left for 28 days is then fixed
//! without a word, and the next inspection, passing the item, rectifies its findings (the
//! domain's rule).
//!
//! Everything is a pure function of `(seed, hall code, date)`: a day's rectifications are
//! found by generating the hall's inspections of the days before again, so any day can
//! be simulated alone. Each hall's registration is sent every day with the same event id,
//! like the persons': the first day simulated registers the halls, later days send it
//! again as a duplicate.

use chrono::{Datelike, Days, NaiveDate};
use rand::Rng;
use wire::pb;
use wire::pb::event::Payload;
use wire::pb::inspection_event::Kind;

use crate::day::SOURCE;
use crate::province::CITIES;
use crate::random::seeded;

/// A service-window hall of the province.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hall {
    /// "H-PROV-01", "H-Guangzhou-01".
    pub code: String,
    /// The city it stands in, from `domain::city::Cities::default()`.
    pub city: String,
    pub kind: pb::HallKind,
    pub name_zh: String,
    pub name_en: String,
}

/// The department's own halls, in Guangzhou, the provincial capital.
const PROVINCIAL: [(pb::HallKind, &str, &str); 5] = [
    (
        pb::HallKind::ServiceHall,
        "广东省人力资源和社会保障厅政务服务大厅",
        "Guangdong Department of Human Resources and Social Security Service Hall",
    ),
    (
        pb::HallKind::SocialInsuranceBureau,
        "广东省社会保险基金管理局服务大厅",
        "Guangdong Social Insurance Fund Administration Service Hall",
    ),
    (pb::HallKind::TalentBureau, "广东省人才服务局服务大厅", "Guangdong Talent Service Bureau Service Hall"),
    (
        pb::HallKind::ExaminationBureau,
        "广东省人事考试局服务大厅",
        "Guangdong Personnel Examination Bureau Service Hall",
    ),
    (
        pb::HallKind::RehabilitationHospital,
        "广东省工伤康复医院服务窗口",
        "Guangdong Provincial Work Injury Rehabilitation Hospital Service Window",
    ),
];
const CAPITAL: &str = "Guangzhou";
/// Technical schools per branch hall, at scale 1.
const SCHOOLS_PER_BRANCH_HALL: u32 = 3;

/// The province's halls at `scale`: the five provincial ones, then each city's (in the
/// order of `domain::city::Cities::default()`), its main hall first.
pub fn halls(scale: f64) -> Vec<Hall> {
    let mut halls: Vec<Hall> = PROVINCIAL
        .iter()
        .enumerate()
        .map(|(n, &(kind, zh, en))| Hall {
            code: format!("H-PROV-{:02}", n + 1),
            city: CAPITAL.to_owned(),
            kind,
            name_zh: zh.to_owned(),
            name_en: en.to_owned(),
        })
        .collect();
    for city in domain::city::Cities::default().iter() {
        let schools = CITIES.iter().find(|(name, _)| *name == city.name).map_or(0, |&(_, weight)| weight);
        let at_scale_1 = 1 + schools / SCHOOLS_PER_BRANCH_HALL;
        let count = ((f64::from(at_scale_1) * scale).round() as usize).max(1);
        for n in 1..=count {
            let (name_zh, name_en) = if n == 1 {
                (
                    format!("{}人力资源和社会保障局政务服务大厅", city.chinese),
                    format!("{} Human Resources and Social Security Service Hall", city.name),
                )
            } else {
                (
                    format!("{}人社服务分厅（第{}号）", city.chinese, n - 1),
                    format!("{} HR and Social Security Branch Hall No. {}", city.name, n - 1),
                )
            };
            halls.push(Hall {
                code: format!("H-{}-{n:02}", city.name),
                city: city.name.clone(),
                kind: pb::HallKind::CityHall,
                name_zh,
                name_en,
            });
        }
    }
    halls
}

/// The nine items of the checklist with what an inspector writes when one fails.
const ITEMS: [(pb::ChecklistItem, &str); 9] = [
    (pb::ChecklistItem::ChecklistEntranceTemperature, "入口未测体温 / no temperature check at the entrance"),
    (pb::ChecklistItem::ChecklistMasksRequired, "部分办事群众未戴口罩 / visitors without masks let in"),
    (pb::ChecklistItem::ChecklistStaffProtection, "窗口人员防护不到位 / window staff without masks or gloves"),
    (pb::ChecklistItem::ChecklistStaffHealthMonitored, "工作人员健康监测记录缺失 / staff health log not kept"),
    (
        pb::ChecklistItem::ChecklistDisinfectionVentilation,
        "消毒通风记录不全 / disinfection and ventilation not recorded",
    ),
    (pb::ChecklistItem::ChecklistThermometersSanitizer, "体温计、洗手液不足 / thermometers or sanitizer missing"),
    (pb::ChecklistItem::ChecklistNoContactService, "未推行网上办、预约办 / no online or booked service offered"),
    (pb::ChecklistItem::ChecklistHealthPublicity, "防疫宣传资料未张贴 / no prevention notices posted"),
    (pb::ChecklistItem::ChecklistStaffTrained, "工作人员未接受防疫培训 / staff not trained in prevention"),
];

/// An item's chance to fail on its own at an inspection.
pub(crate) const ITEM_FAILS: f64 = 0.04;
/// A planned visit's chance to be skipped.
pub(crate) const VISIT_SKIPPED: f64 = 0.1;
/// Of the failures: rectified by the deadline, then late; the rest not within `NEVER_DAYS`.
pub(crate) const ON_TIME: f64 = 0.7;
pub(crate) const LATE: f64 = 0.2;
/// Days after its deadline a late rectification comes, at most.
const LATE_DAYS: u64 = 7;
const DEADLINE_DAYS: [u64; 3] = [3, 5, 7];
/// A failure not rectified carries into the hall's inspections for this many days.
pub(crate) const NEVER_DAYS: u64 = 28;
/// The furthest a rectification comes after the inspection it rectifies.
const MOST_DAYS_TO_FIX: u64 = 7 + LATE_DAYS;

const HALL_STREAM: u64 = 3;

/// One hall's events for `date`: its registration, then the day's inspection and
/// rectifications in the order they happen. Deterministic in its arguments.
pub fn hall_events(hall: &Hall, date: NaiveDate, seed: u64) -> Vec<pb::Event> {
    let hall = Schedule::new(hall, seed);
    let mut timed = Vec::new();
    if let Some(visit) = hall.visit(date) {
        timed.push((visit.at, hall.inspected(&visit)));
    }
    for back in 1..=MOST_DAYS_TO_FIX {
        let Some(visit) = hall.visit(date - Days::new(back)) else { continue };
        for (n, &(item, _)) in ITEMS.iter().enumerate() {
            if hall.failed(&visit, n).is_some_and(|failed| failed.fixed == Some(date)) {
                let at = seeded(&[HALL_STREAM, seed, hall.key, day_number(date), day_number(visit.day), n as u64])
                    .random_range(hm(10, 0)..hm(17, 0));
                timed.push((at, hall.rectified(date, at, &visit, n, item)));
            }
        }
    }
    timed.sort_by_key(|(at, _)| *at);
    std::iter::once(hall.registered(date)).chain(timed.into_iter().map(|(_, event)| event)).collect()
}

/// One hall's inspections as the seed makes them.
struct Schedule<'a> {
    hall: &'a Hall,
    seed: u64,
    /// The hall's own stream: its code mixed with the seed, so that a hall is inspected the
    /// same way at every scale.
    key: u64,
    /// The two weekdays it is inspected on, days from Monday.
    weekdays: [u32; 2],
}

/// An inspection: its day and time, and what each item drew.
struct Visit {
    day: NaiveDate,
    at: u32,
    items: [Draw; 9],
}

/// What one item drew at an inspection: whether it fails there on its own, the deadline
/// its finding would get, and when a failure of its own would be rectified (`None`: not
/// within `NEVER_DAYS`).
#[derive(Clone, Copy, Default)]
struct Draw {
    fails: bool,
    deadline: u64,
    fixed_after: Option<u64>,
}

/// A failed item at an inspection.
struct Failed {
    deadline: NaiveDate,
    /// The day a `Rectified` names its finding, if within the run's reach.
    fixed: Option<NaiveDate>,
    /// The earliest inspection whose failure it carries, when not its own.
    since: Option<NaiveDate>,
}

impl<'a> Schedule<'a> {
    fn new(hall: &'a Hall, seed: u64) -> Self {
        let key =
            hall.code.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let mut rng = seeded(&[HALL_STREAM, seed, key]);
        let first = rng.random_range(0..7);
        let second = (first + rng.random_range(3..=4)) % 7;
        Self { hall, seed, key, weekdays: [first, second] }
    }

    /// The hall's inspection on `day`, if it has one.
    fn visit(&self, day: NaiveDate) -> Option<Visit> {
        if !self.weekdays.contains(&day.weekday().num_days_from_monday()) {
            return None;
        }
        let mut rng = seeded(&[HALL_STREAM, self.seed, self.key, day_number(day)]);
        if rng.random_bool(VISIT_SKIPPED) {
            return None;
        }
        let at = rng.random_range(hm(9, 0)..hm(16, 0));
        let mut items = [Draw::default(); 9];
        // Every item draws the same numbers whatever it gets, so that the stream is fixed.
        for draw in &mut items {
            let fails = rng.random_bool(ITEM_FAILS);
            let deadline = DEADLINE_DAYS[rng.random_range(0..DEADLINE_DAYS.len())];
            let outcome: f64 = rng.random();
            let on_time = rng.random_range(1..=deadline);
            let late = deadline + rng.random_range(1..=LATE_DAYS);
            let fixed_after = if outcome < ON_TIME {
                Some(on_time)
            } else if outcome < ON_TIME + LATE {
                Some(late)
            } else {
                None
            };
            *draw = Draw { fails, deadline, fixed_after };
        }
        Some(Visit { day, at, items })
    }

    /// Whether item `n` fails at `visit`: on its own, or because a failure at an earlier
    /// inspection is not rectified yet. Its finding is rectified when every failure it
    /// carries is, and not within reach if one of them is not.
    fn failed(&self, visit: &Visit, n: usize) -> Option<Failed> {
        let draw = visit.items[n];
        let deadline = visit.day + Days::new(draw.deadline);
        let mut failed = draw.fails.then(|| Failed {
            deadline,
            fixed: draw.fixed_after.map(|d| visit.day + Days::new(d)),
            since: None,
        });
        for back in (1..NEVER_DAYS).rev() {
            let day = visit.day - Days::new(back);
            let Some(earlier) = self.visit(day) else { continue };
            let cause = earlier.items[n];
            if !cause.fails {
                continue;
            }
            // Until when the earlier failure lasts, and whether a `Rectified` ends it.
            let (until, fixed) = match cause.fixed_after {
                Some(after) => (day + Days::new(after), Some(day + Days::new(after))),
                None => (day + Days::new(NEVER_DAYS), None),
            };
            if until <= visit.day {
                continue;
            }
            let carried = failed.get_or_insert(Failed { deadline, fixed, since: Some(day) });
            carried.since.get_or_insert(day);
            carried.fixed = match (carried.fixed, fixed) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        failed
    }

    fn inspected(&self, visit: &Visit) -> pb::Event {
        let items = ITEMS
            .iter()
            .enumerate()
            .map(|(n, &(item, finding))| match self.failed(visit, n) {
                None => pb::ChecklistResult { item: item as i32, passed: true, ..Default::default() },
                Some(failed) => pb::ChecklistResult {
                    item: item as i32,
                    passed: false,
                    finding: match failed.since {
                        Some(since) => format!("{finding} (not rectified since {since})"),
                        None => finding.to_owned(),
                    },
                    deadline: failed.deadline.to_string(),
                },
            })
            .collect();
        let inspected =
            pb::Inspected { inspection_id: inspection_id(self.hall, visit.day), city: self.hall.city.clone(), items };
        self.event(format!("{}-inspected", visit.day), visit.day, visit.at, Kind::Inspected(inspected))
    }

    fn rectified(&self, date: NaiveDate, at: u32, visit: &Visit, n: usize, item: pb::ChecklistItem) -> pb::Event {
        let rectified = pb::Rectified { inspection_id: inspection_id(self.hall, visit.day), item: item as i32 };
        let what = format!("{date}-rectified-{}-{}", visit.day.format("%Y%m%d"), n + 1);
        self.event(what, date, at, Kind::Rectified(rectified))
    }

    /// Like a person's registration, the same event id and content every day but the time.
    fn registered(&self, date: NaiveDate) -> pb::Event {
        let hall = self.hall;
        let registered = pb::HallRegistered {
            name_zh: hall.name_zh.clone(),
            name_en: hall.name_en.clone(),
            city: hall.city.clone(),
            kind: hall.kind as i32,
        };
        self.event("reg".to_owned(), date, 0, Kind::HallRegistered(registered))
    }

    fn event(&self, what: String, date: NaiveDate, seconds: u32, kind: Kind) -> pb::Event {
        pb::Event {
            event_id: format!("sim-{}-hall-{}-{what}", self.seed, self.hall.code),
            source: SOURCE.to_owned(),
            school: String::new(),
            site: self.hall.code.clone(),
            occurred_at: format!("{date}T{:02}:{:02}:{:02}+08:00", seconds / 3600, seconds / 60 % 60, seconds % 60),
            payload: Some(Payload::Inspection(pb::InspectionEvent { kind: Some(kind) })),
        }
    }
}

/// An inspection's id: the hall and the day (a hall is inspected at most once a day here).
fn inspection_id(hall: &Hall, day: NaiveDate) -> String {
    format!("{}-{}", hall.code, day.format("%Y%m%d"))
}

fn day_number(day: NaiveDate) -> u64 {
    day.num_days_from_ce() as u64
}

const fn hm(hours: u32, minutes: u32) -> u32 {
    hours * 3600 + minutes * 60
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Every hall's events over `days` days from 2020-03-02.
    fn run(halls: &[Hall], days: u64, seed: u64) -> Vec<(NaiveDate, pb::Event)> {
        let first = date("2020-03-02");
        (0..days)
            .map(|n| first + Days::new(n))
            .flat_map(|day| halls.iter().flat_map(move |hall| hall_events(hall, day, seed)).map(move |e| (day, e)))
            .collect()
    }

    fn kind(event: &pb::Event) -> &Kind {
        match &event.payload {
            Some(Payload::Inspection(pb::InspectionEvent { kind: Some(kind) })) => kind,
            other => panic!("not an inspection event: {other:?}"),
        }
    }

    #[test]
    fn the_province_has_the_departments_halls_and_each_citys() {
        let cities = domain::city::Cities::default();
        let province = halls(1.0);
        assert_eq!(province.len(), 72);
        assert_eq!(province.iter().map(|h| &h.code).collect::<HashSet<_>>().len(), province.len(), "codes are unique");
        assert!(province.iter().all(|h| cities.contains(&h.city)), "every city is the province's");
        let kinds: HashSet<_> = province[..5].iter().map(|h| h.kind).collect();
        assert_eq!(kinds.len(), 5);
        assert!(!kinds.contains(&pb::HallKind::CityHall));
        assert!(province[..5].iter().all(|h| h.city == "Guangzhou" && h.code.starts_with("H-PROV-")));
        let per_city = |halls: &[Hall]| -> BTreeMap<String, usize> {
            let mut counts = BTreeMap::new();
            for hall in halls.iter().filter(|h| h.kind == pb::HallKind::CityHall) {
                *counts.entry(hall.city.clone()).or_default() += 1;
            }
            counts
        };
        let at_scale_1 = per_city(&province);
        assert_eq!(at_scale_1.len(), 21);
        assert_eq!((at_scale_1["Guangzhou"], at_scale_1["Shenzhen"], at_scale_1["Chaozhou"]), (11, 5, 2));
        assert!(province.iter().any(|h| h.code == "H-Guangzhou-01" && h.name_en.contains("Guangzhou")));
        // Small scales keep the department's halls and each city's main hall.
        for scale in [0.05, 0.01, 0.0001] {
            let small = halls(scale);
            assert_eq!(small.len(), 26, "scale {scale}");
            assert!(per_city(&small).values().all(|&n| n == 1));
        }
        assert!(halls(0.5).len() > 26 && halls(0.5).len() < 72);
        assert!(halls(2.0).len() > 72);
    }

    #[test]
    fn every_event_passes_the_servers_validation() {
        let cities = domain::city::Cities::default();
        let halls = halls(1.0);
        for (day, event) in run(&halls, 60, 3) {
            let shown = format!("{event:?}");
            assert!(halls.iter().any(|h| h.code == event.site) && event.school.is_empty(), "{shown}");
            let envelope = wire::event_from_proto(event).unwrap_or_else(|e| panic!("{e} in {shown}"));
            assert_eq!(envelope.occurred_at.date_naive(), day, "{shown}");
            match envelope.payload {
                domain::Payload::Inspection(domain::event::Inspection::Inspected { city, .. }) => {
                    assert!(cities.contains(&city), "{shown}")
                }
                domain::Payload::Inspection(domain::event::Inspection::HallRegistered(hall)) => {
                    assert!(cities.contains(&hall.city), "{shown}")
                }
                domain::Payload::Inspection(_) => {}
                _ => panic!("not an inspection: {shown}"),
            }
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_events_and_ids_are_unique() {
        let halls = halls(0.05);
        let events = run(&halls, 21, 5);
        assert_eq!(events, run(&halls, 21, 5));
        assert_ne!(events, run(&halls, 21, 6));
        // A hall's events do not depend on the others: the same at every scale.
        let alone: Vec<pb::Event> = hall_events(&halls[7], date("2020-03-10"), 5);
        let at_scale_1 = super::halls(1.0).into_iter().find(|h| h.code == halls[7].code).unwrap();
        assert_eq!(alone, hall_events(&at_scale_1, date("2020-03-10"), 5));
        // Registrations repeat with the same id every day; nothing else does.
        let ids: Vec<&str> =
            events.iter().map(|(_, e)| e.event_id.as_str()).filter(|id| !id.ends_with("-reg")).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        let registrations = |day| -> Vec<(String, Option<Payload>)> {
            halls.iter().map(|h| hall_events(h, date(day), 5).remove(0)).map(|e| (e.event_id, e.payload)).collect()
        };
        assert_eq!(registrations("2020-03-02"), registrations("2020-04-15"));
        assert!(registrations("2020-03-02").iter().all(|(_, p)| matches!(
            p,
            Some(Payload::Inspection(pb::InspectionEvent { kind: Some(Kind::HallRegistered(_)) }))
        )));
    }

    #[test]
    fn each_hall_is_inspected_about_twice_a_week() {
        let halls = halls(1.0);
        let weeks = 8;
        let mut days: HashMap<String, Vec<NaiveDate>> = HashMap::new();
        for (day, event) in run(&halls, weeks * 7, 1) {
            if let Kind::Inspected(_) = kind(&event) {
                days.entry(event.site.clone()).or_default().push(day);
            }
        }
        assert_eq!(days.len(), halls.len(), "every hall is inspected");
        let per_week = days.values().map(Vec::len).sum::<usize>() as f64 / halls.len() as f64 / weeks as f64;
        let expected = 2.0 * (1.0 - VISIT_SKIPPED);
        assert!((per_week / expected - 1.0).abs() < 0.1, "{per_week:.2} inspections per hall and week");
        // At most once a day; now and then more than a week between two (a skipped visit).
        let gaps: Vec<i64> =
            days.values().flat_map(|d| d.windows(2).map(|w| (w[1] - w[0]).num_days()).collect::<Vec<_>>()).collect();
        assert!(gaps.iter().all(|&g| g >= 3), "{gaps:?}");
        assert!(gaps.iter().any(|&g| g > 7), "no hall ever lapses");
        assert!(gaps.iter().filter(|&&g| g > 7).count() * 10 < gaps.len(), "lapses are the exception");
    }

    #[test]
    fn failed_items_are_rectified_mostly_in_time_some_late_some_not_at_all() {
        let halls = halls(1.0);
        let days = 70;
        let last = date("2020-03-02") + Days::new(days - 1);
        // Each finding of the run, (inspection id, item) → its deadline; and the days they
        // were rectified.
        let mut findings: HashMap<(String, i32), NaiveDate> = HashMap::new();
        let mut rectified: HashMap<(String, i32), NaiveDate> = HashMap::new();
        let (mut items, mut failed) = (0, 0);
        for (day, event) in run(&halls, days, 2) {
            match kind(&event) {
                Kind::Inspected(inspection) => {
                    assert_eq!(inspection.items.len(), 9);
                    for result in &inspection.items {
                        items += 1;
                        if !result.passed {
                            failed += 1;
                            assert!(!result.finding.is_empty());
                            let deadline: NaiveDate = result.deadline.parse().unwrap();
                            assert!((3..=7).contains(&(deadline - day).num_days()), "{result:?}");
                            findings.insert((inspection.inspection_id.clone(), result.item), deadline);
                        }
                    }
                }
                Kind::Rectified(r) => {
                    let finding = (r.inspection_id.clone(), r.item);
                    assert!(rectified.insert(finding, day).is_none(), "{r:?} twice");
                }
                _ => {}
            }
        }
        let share = f64::from(failed) / f64::from(items);
        // Failures of their own, and the ones carried until rectified.
        assert!(share > ITEM_FAILS && share < 3.0 * ITEM_FAILS, "{share:.3} of the items failed");
        // Every rectification names a finding of an earlier day; those of the run's first
        // two weeks may name inspections before it.
        let first_full = date("2020-03-02") + Days::new(MOST_DAYS_TO_FIX);
        let mut late_or_in_time = (0, 0);
        for (finding, day) in &rectified {
            let Some(deadline) = findings.get(finding) else {
                assert!(*day < first_full, "{finding:?} rectified on {day} was never found");
                continue;
            };
            let opened: NaiveDate = NaiveDate::parse_from_str(finding.0.rsplit('-').next().unwrap(), "%Y%m%d").unwrap();
            assert!(opened < *day, "{finding:?} rectified on {day}");
            if day <= deadline { late_or_in_time.1 += 1 } else { late_or_in_time.0 += 1 }
        }
        let (late, in_time) = late_or_in_time;
        assert!(in_time > 2 * late && late > 0, "{in_time} in time, {late} late");
        // Some findings opened early in the run see no `Rectified` by its end.
        let never = findings
            .iter()
            .filter(|(f, deadline)| **deadline + Days::new(LATE_DAYS) < last && !rectified.contains_key(*f))
            .count();
        assert!(never > 0 && never * 3 < findings.len(), "{never} of {} never rectified", findings.len());
    }
}
