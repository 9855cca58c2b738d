//! Property, for the service-window inspections: whatever the arrival order, batching,
//! re-delivery and restarts, hall events (registrations, closures, inspections with failed
//! items and their corrections under the same inspection id, rectifications, some before
//! their inspection) fold to the same stored hall logs, and the inspection reports and
//! findings read off them equal a recomputation written here from RULES.md and the
//! proto's comments alone, apart from `domain::inspection`.

use std::collections::{BTreeMap, BTreeSet};

use aggregator::{Folder, Projections};
use chrono::FixedOffset;
use domain::event::{ChecklistItem, Inspection};
use domain::inspection::{FindingStatus, InspectionTally, InspectionUnit};
use domain::person::Stamp;
use domain::{Day, Payload, Rules};
use eventlog::{Polled, Record, TopicPartition};
use prost::Message;
use reports::inspection::FindingFilter;
use wire::pb;

mod common;
use common::Rng;

const HALLS: [&str; 3] = ["H1", "H2", "H3"];
const CITIES: [&str; 2] = ["Guangzhou", "Foshan"];
/// Days events happen on.
const DAYS: u32 = 6;
/// Days compared: past the last deadline and far enough for the window to lapse.
const CHECKED_DAYS: u32 = DAYS + 10;
/// The inspection window the read model uses by default (`inspection-window-days`).
const WINDOW_DAYS: u32 = 7;

fn day(n: u32) -> Day {
    Day::from_ymd_opt(2020, 3, 1 + n).unwrap()
}

fn date(d: Day) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A hall's event: few halls, inspection ids and failing items, so that corrections,
/// re-inspections of an item, rectifications of the same finding and rectifications
/// naming nothing (or another hall's inspection) all happen.
fn random_event(rng: &mut Rng, id: usize) -> pb::Event {
    use pb::inspection_event::Kind;
    let hall = *rng.pick(&HALLS);
    let on = day(rng.below(DAYS as usize) as u32);
    let kind = match rng.below(10) {
        0 | 1 => Kind::HallRegistered(pb::HallRegistered {
            name_zh: format!("大厅{hall}"),
            name_en: String::new(),
            city: rng.pick(&CITIES).to_string(),
            kind: 1 + rng.below(6) as i32,
        }),
        2 => Kind::HallClosed(pb::HallClosed {}),
        3..=6 => {
            let items = (1..=9)
                .map(|item| {
                    // Items 1 to 3 fail now and then, the others pass.
                    if item <= 3 && rng.below(3) == 0 {
                        let deadline = on + chrono::Days::new(rng.below(4) as u64);
                        pb::ChecklistResult {
                            item,
                            passed: false,
                            finding: "not done".into(),
                            deadline: date(deadline),
                        }
                    } else {
                        pb::ChecklistResult { item, passed: true, ..Default::default() }
                    }
                })
                .collect();
            Kind::Inspected(pb::Inspected {
                inspection_id: format!("I{}", rng.below(4)),
                city: rng.pick(&CITIES).to_string(),
                items,
            })
        }
        _ => Kind::Rectified(pb::Rectified {
            inspection_id: format!("I{}", rng.below(4)),
            item: 1 + rng.below(3) as i32,
        }),
    };
    pb::Event {
        site: hall.into(),
        event_id: format!("h{id}"),
        source: "prop".into(),
        school: String::new(),
        occurred_at: format!("{}T{:02}:{:02}:00+08:00", date(on), rng.below(24), rng.below(60)),
        payload: Some(pb::event::Payload::Inspection(pb::InspectionEvent { kind: Some(kind) })),
    }
}

/// The events in `order` on the inspection topic, a partition per hall, fresh offsets.
fn as_log(order: &[&pb::Event]) -> Vec<Polled> {
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    order
        .iter()
        .map(|e| {
            let partition = HALLS.iter().position(|h| *h == e.site).unwrap() as u32 % 2;
            let at = TopicPartition { topic: "inspection".into(), partition };
            let offset = next.entry(partition).or_insert(0);
            *offset += 1;
            let record =
                Record { topic: at.topic.clone(), key: e.site.clone(), headers: vec![], payload: e.encode_to_vec() };
            Polled { at, offset: *offset - 1, record }
        })
        .collect()
}

/// The events shuffled, about a quarter of them delivered a second time somewhere after
/// the first (a client's retry, a rebalance).
fn shuffled<'a>(rng: &mut Rng, events: &'a [pb::Event]) -> Vec<&'a pb::Event> {
    let mut order: Vec<&pb::Event> = events.iter().collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    for _ in 0..events.len() / 4 {
        let first = rng.below(order.len());
        let again = order[first];
        let at = first + 1 + rng.below(order.len() - first);
        order.insert(at, again);
    }
    order
}

fn fold_in_batches(rng: &mut Rng, log: &[Polled]) -> (tempfile::TempDir, Projections) {
    let rules = Rules::default();
    let zone = FixedOffset::east_opt(8 * 3600).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let projections = Projections::new(aggregator::store::open(dir.path()).unwrap());
    let mut folder = Folder::new(projections.clone(), rules, zone).unwrap();
    let mut at = 0;
    while at < log.len() {
        let end = (at + 1 + rng.below(6)).min(log.len());
        folder.fold_batch(&log[at..end]).unwrap();
        at = end;
        if rng.below(4) == 0 {
            // A restart: the next folder knows only what is stored.
            folder = Folder::new(projections.clone(), rules, zone).unwrap();
        }
    }
    (dir, projections)
}

/// One event of a hall as the reference reads it.
struct Posted {
    stamp: Stamp,
    day: Day,
    event: Inspection,
}

/// An inspection report's figures, by their definitions (proto `InspectionReport`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Figures {
    /// Registered and open that day.
    registered: u32,
    /// Inspected at least once that day.
    inspected: u32,
    /// Registered, inspected within the window (the 7 days ending with the day), and the
    /// codes of the registered ones that were not.
    in_window: u32,
    not_in_window: BTreeSet<String>,
    /// Failed results in the day's inspections, by item.
    items_failed: [u32; 9],
    /// Findings opened that day, rectified that day, open at its end, and of those overdue
    /// (the deadline before the day).
    opened: u32,
    rectified: u32,
    open: u32,
    overdue: u32,
    /// Inspected at least once by the day; of them, those with no finding open.
    ever_inspected: u32,
    compliant: u32,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.registered += other.registered;
        self.inspected += other.inspected;
        self.in_window += other.in_window;
        self.not_in_window.extend(other.not_in_window.iter().cloned());
        for (sum, n) in self.items_failed.iter_mut().zip(other.items_failed) {
            *sum += n;
        }
        self.opened += other.opened;
        self.rectified += other.rectified;
        self.open += other.open;
        self.overdue += other.overdue;
        self.ever_inspected += other.ever_inspected;
        self.compliant += other.compliant;
    }

    fn of(t: &InspectionTally) -> Figures {
        Figures {
            registered: t.halls_registered,
            inspected: t.halls_inspected,
            in_window: t.halls_inspected_in_window,
            not_in_window: t.halls_not_inspected_in_window.clone(),
            items_failed: t.items_failed,
            opened: t.findings_opened,
            rectified: t.findings_rectified,
            open: t.findings_open,
            overdue: t.findings_overdue,
            ever_inspected: t.halls_ever_inspected,
            compliant: t.halls_compliant,
        }
    }
}

/// A finding at the end of a day: hall, inspection, item (1 to 9) → opened, deadline,
/// whether open, overdue, and the day rectified.
type Findings = BTreeMap<(String, String, usize), (Day, Day, bool, bool, Option<Day>)>;

/// One hall's report and findings at the end of `on`, from its events (each once, in
/// event-time order); `None` if it counts nowhere that day.
fn hall_on(hall: &str, events: &[Posted], on: Day, findings: &mut Findings) -> Option<(String, Figures)> {
    let item_number = |item: ChecklistItem| ChecklistItem::ALL.iter().position(|i| *i == item).unwrap() + 1;
    // One inspection per id: the latest by event time corrects the others (its day, city
    // and results hold).
    let mut latest: BTreeMap<&str, &Posted> = BTreeMap::new();
    for posted in events {
        if let Inspection::Inspected { inspection_id, .. } = &posted.event {
            latest.insert(inspection_id, posted);
        }
    }
    let mut inspections: Vec<&Posted> = latest.into_values().collect();
    inspections.sort_by_key(|p| p.stamp);
    let by_then: Vec<&Posted> = inspections.iter().copied().filter(|p| p.day <= on).collect();
    // Where it stands at the end of the day: the latest roster event by then decides;
    // without one, an inspection by then makes it count, unregistered, in its city.
    let roster = events
        .iter()
        .filter(|p| p.day <= on)
        .rfind(|p| matches!(p.event, Inspection::HallRegistered(_) | Inspection::HallClosed));
    let (city, registered) = match roster.map(|p| &p.event) {
        Some(Inspection::HallRegistered(h)) => (h.city.clone(), true),
        Some(_) => return None,
        None => match by_then.last().map(|p| &p.event) {
            Some(Inspection::Inspected { city, .. }) => (city.clone(), false),
            _ => return None,
        },
    };
    let mut figures = Figures::default();
    if registered {
        figures.registered = 1;
        let first = on - chrono::Days::new(u64::from(WINDOW_DAYS - 1));
        if by_then.iter().any(|p| p.day >= first) {
            figures.in_window = 1;
        } else {
            figures.not_in_window.insert(hall.to_owned());
        }
    }
    figures.inspected = u32::from(by_then.iter().any(|p| p.day == on));
    figures.ever_inspected = u32::from(!by_then.is_empty());
    let mut any_open = false;
    for (n, posted) in inspections.iter().enumerate() {
        let Inspection::Inspected { inspection_id, items, .. } = &posted.event else { unreachable!() };
        if posted.day > on {
            continue;
        }
        for result in items.iter().filter(|r| !r.passed) {
            let item = item_number(result.item);
            if posted.day == on {
                figures.items_failed[item - 1] += 1;
                figures.opened += 1;
            }
            // Rectified by a `Rectified` naming it (on its day, or the inspection's if
            // dated before), or by a later inspection passing the item (on its day),
            // whichever comes first.
            let named = events.iter().filter_map(|p| match &p.event {
                Inspection::Rectified { inspection_id: id, item: i } if id == inspection_id && *i == result.item => {
                    Some(p.day.max(posted.day))
                }
                _ => None,
            });
            let passed = inspections[n + 1..].iter().filter_map(|later| match &later.event {
                Inspection::Inspected { items, .. } if items.iter().any(|r| r.item == result.item && r.passed) => {
                    Some(later.day)
                }
                _ => None,
            });
            let rectified = named.chain(passed).min().filter(|d| *d <= on);
            let deadline = result.deadline.unwrap();
            let open = rectified.is_none();
            let overdue = open && deadline < on;
            figures.rectified += u32::from(rectified == Some(on));
            figures.open += u32::from(open);
            figures.overdue += u32::from(overdue);
            any_open |= open;
            findings.insert(
                (hall.to_owned(), inspection_id.clone(), item),
                (posted.day, deadline, open, overdue, rectified),
            );
        }
    }
    figures.compliant = u32::from(!by_then.is_empty() && !any_open);
    Some((city, figures))
}

/// Every unit's report (the province, each city with a hall counting, each such hall) and
/// every finding under the province, on each day checked.
type Reference = BTreeMap<Day, (BTreeMap<InspectionUnit, (String, Figures)>, Findings)>;

fn reference(events: &[pb::Event]) -> Reference {
    let zone = FixedOffset::east_opt(8 * 3600).unwrap();
    let mut by_hall: BTreeMap<String, Vec<Posted>> = BTreeMap::new();
    for e in events {
        let envelope = wire::event_from_proto(e.clone()).unwrap();
        let Payload::Inspection(event) = envelope.payload else { unreachable!() };
        let stamp = Stamp::new(envelope.occurred_at.timestamp_millis(), &envelope.event_id);
        let day = envelope.occurred_at.with_timezone(&zone).date_naive();
        by_hall.entry(envelope.school).or_default().push(Posted { stamp, day, event });
    }
    for list in by_hall.values_mut() {
        list.sort_by_key(|p| p.stamp);
    }
    let mut out = Reference::new();
    for n in 0..CHECKED_DAYS {
        let on = day(n);
        let mut units: BTreeMap<InspectionUnit, (String, Figures)> = BTreeMap::new();
        units.insert(InspectionUnit::Province, (String::new(), Figures::default()));
        let mut findings = Findings::new();
        for (hall, list) in &by_hall {
            let mut own = Findings::new();
            let Some((city, figures)) = hall_on(hall, list, on, &mut own) else { continue };
            findings.extend(own);
            for unit in
                [InspectionUnit::Province, InspectionUnit::City(city.clone()), InspectionUnit::Hall(hall.clone())]
            {
                let label = if unit == InspectionUnit::Province { String::new() } else { city.clone() };
                units.entry(unit).or_insert_with(|| (label, Figures::default())).1.add(&figures);
            }
        }
        out.insert(on, (units, findings));
    }
    out
}

/// What the read model gives for each day checked, in the reference's terms.
fn read(projections: &Projections) -> Reference {
    let model = reports::ReadModel::new(projections.clone(), domain::close::CloseRules::default());
    assert_eq!(model.inspection_window(), WINDOW_DAYS);
    let mut out = Reference::new();
    for n in 0..CHECKED_DAYS {
        let on = day(n);
        let reports = model.inspection_reports(&InspectionUnit::Province, on).unwrap().unwrap();
        let units = reports.into_iter().map(|r| (r.unit, (r.city, Figures::of(&r.tally)))).collect();
        let mut findings = Findings::new();
        for f in model.findings(&InspectionUnit::Province, on, FindingFilter::All).unwrap().unwrap() {
            let f2 = &f.finding;
            let item = ChecklistItem::ALL.iter().position(|i| *i == f2.item).unwrap() + 1;
            let open = f2.status != FindingStatus::Rectified;
            let overdue = f2.status == FindingStatus::Overdue;
            let key = (f.hall.clone(), f2.inspection_id.clone(), item);
            assert!(findings.insert(key, (f2.opened, f2.deadline, open, overdue, f2.rectified)).is_none());
        }
        out.insert(on, (units, findings));
    }
    out
}

fn assert_matches(got: &Reference, want: &Reference, seed: u64, what: &str) {
    for (on, (units, findings)) in want {
        let (got_units, got_findings) = &got[on];
        for (unit, figures) in units {
            assert_eq!(got_units.get(unit), Some(figures), "seed {seed}, {what}: {unit} on {on}");
        }
        let extra: Vec<_> = got_units.keys().filter(|u| !units.contains_key(u)).collect();
        assert!(extra.is_empty(), "seed {seed}, {what}: on {on}, units counting nowhere by definition: {extra:?}");
        assert_eq!(got_findings, findings, "seed {seed}, {what}: findings on {on}");
    }
}

#[test]
fn hall_events_fold_to_the_same_logs_and_reports_whatever_the_order_and_equal_the_definitions() {
    for seed in 1..=100u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let events: Vec<pb::Event> = (0..30).map(|id| random_event(&mut rng, id)).collect();
        for e in &events {
            wire::event_from_proto(e.clone()).unwrap_or_else(|err| panic!("seed {seed}: intake refuses {e:?}: {err}"));
        }
        let want = reference(&events);
        let first = as_log(&shuffled(&mut rng, &events));
        let second = as_log(&shuffled(&mut rng, &events));
        let (_a_dir, a) = fold_in_batches(&mut rng, &first);
        let (_b_dir, b) = fold_in_batches(&mut rng, &second);
        assert_eq!(a.hall_logs().unwrap(), b.hall_logs().unwrap(), "seed {seed}: stored hall logs");
        assert_matches(&read(&a), &want, seed, "first order");
        assert_matches(&read(&b), &want, seed, "second order");
    }
}

/// The generator reaches what the rules single out: overdue findings, rectifications by
/// event and by re-inspection, corrections, closed and unregistered halls, halls out of
/// the window. (A property over events that never produce them would prove little.)
#[test]
fn the_events_drawn_reach_every_case_the_rules_name() {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for seed in 1..=100u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let events: Vec<pb::Event> = (0..30).map(|id| random_event(&mut rng, id)).collect();
        let ids: BTreeMap<(&str, String), usize> = events.iter().fold(BTreeMap::new(), |mut ids, e| {
            if let Some(pb::event::Payload::Inspection(pb::InspectionEvent {
                kind: Some(pb::inspection_event::Kind::Inspected(i)),
            })) = &e.payload
            {
                *ids.entry((e.site.as_str(), i.inspection_id.clone())).or_default() += 1;
            }
            ids
        });
        if ids.values().any(|n| *n > 1) {
            seen.insert("a corrected inspection");
        }
        for (units, findings) in reference(&events).values() {
            for ((_, _, _), (_, _, open, overdue, rectified)) in findings {
                if *overdue {
                    seen.insert("an overdue finding");
                }
                if !*open && rectified.is_some() {
                    seen.insert("a rectified finding");
                }
            }
            for (unit, (_, f)) in units {
                if let InspectionUnit::Hall(_) = unit {
                    if f.registered == 0 {
                        seen.insert("an unregistered hall counting");
                    }
                    if !f.not_in_window.is_empty() {
                        seen.insert("a hall out of the window");
                    }
                    if f.compliant == 1 {
                        seen.insert("a compliant hall");
                    }
                }
            }
            let halls = units.keys().filter(|u| matches!(u, InspectionUnit::Hall(_))).count();
            if halls < HALLS.len() {
                seen.insert("a hall counting nowhere");
            }
        }
    }
    let all = [
        "a corrected inspection",
        "an overdue finding",
        "a rectified finding",
        "an unregistered hall counting",
        "a hall out of the window",
        "a compliant hall",
        "a hall counting nowhere",
    ];
    let missing: Vec<_> = all.iter().filter(|c| !seen.contains(*c)).collect();
    assert!(missing.is_empty(), "never drawn: {missing:?}");
}
