//! The publisher: seals each day at the deadline and feeds the offices.
//!
//! A pass looks at what the aggregator marked as changed (schools' days, alerts), then:
//! 1. puts every new alert in the feeds of the offices overseeing its school;
//! 2. seals every day whose deadline has passed: each unit's report becomes version 1,
//!    sent (on time) or missing, with city and province summaries and their reporting
//!    rates; every unit in the roster gets one, zeros included;
//! 3. for marked days already sealed, recomputes the school's units (and its city and the
//!    province) and publishes a new version of each report whose figures or status moved.
//!
//! While the aggregator folds a backlog (a rebuild, a restart after downtime), steps 2
//! and 3 wait until it has caught up: a report sealed halfway would miss events already in
//! the log, a school whose events were not folded yet would be sealed missing and stay
//! late for good, and the revisions of every pass meanwhile would cost the fold CPU.
//! Alerts go out at once all the same. The wait goes on while the backlog shrinks fast
//! enough to be gone within [`MAX_CATCH_UP`], judged every [`MAX_HOLD`]; a load beyond
//! what the fold can carry (the backlog does not shrink) must not stop the day's reports.
//!
//! Which reports make a new version, with what status and rates, the read model judges
//! ([`reports::ReadModel::publish_day`]); the publisher sends them to the offices. What a
//! pass publishes and remembers goes into the feed store in sled batches, one for the
//! alerts and one per day; only then are the marks it handled cleared
//! (compare-and-swap: a mark set again meanwhile stays for the next pass). A crash
//! repeats a pass, which publishes nothing twice: a report whose figures equal the
//! remembered version is not published again.
//!
//! | key (feeds tree)            | value                                        |
//! |-----------------------------|----------------------------------------------|
//! | `S`, `v`, `V`               | what was published ([`reports::publication`]) |
//! | `f` office NUL cursor (u64) | one feed item (protobuf `FeedItem`)          |
//! | `q` school/event id         | the alert went out                           |
//! | `K` office                  | next cursor to copy to Kafka                 |
//! | `A` office NUL cursor (u64) | empty: the item at that cursor is an alert (the console's index) |
//! | `Ai`                        | empty: the `A` index covers the feeds written before it existed |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeDelta};
use domain::Day;
use domain::alert::Alert;
use domain::inspection::InspectionAlert;
use prost::Message;
use reports::inspection::Halls;
use reports::{Pending, Publications, ReadModel, Roster};
use tokio::sync::watch;
use wire::pb;

use crate::{Clock, FeedError, Office, Offices};

/// The feeds' own tree: what was published, and the feeds themselves.
#[derive(Clone)]
pub struct FeedStore {
    tree: store::Tree,
    /// What was published, in the same tree: written in the batches of the feed items.
    publications: Publications,
    /// Bumped after every pass that published something: subscribers wait on it.
    published: watch::Sender<u64>,
    metrics: crate::FeedMetrics,
}

impl std::fmt::Debug for FeedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedStore").finish_non_exhaustive()
    }
}

fn item_prefix(office: &str) -> Vec<u8> {
    format!("f\0{office}\0").into_bytes()
}

fn item_key(office: &str, cursor: u64) -> Vec<u8> {
    [item_prefix(office), cursor.to_be_bytes().to_vec()].concat()
}

fn alerted_key(alert: &Alert) -> Vec<u8> {
    format!("q\0{}/{}", alert.school, alert.event_id).into_bytes()
}

fn alert_prefix(office: &str) -> Vec<u8> {
    format!("A\0{office}\0").into_bytes()
}

fn alert_key(office: &str, cursor: u64) -> Vec<u8> {
    [alert_prefix(office), cursor.to_be_bytes().to_vec()].concat()
}

const ALERTS_INDEXED: &[u8] = b"Ai";

fn forwarded_key(office: &str) -> Vec<u8> {
    format!("K\0{office}").into_bytes()
}

impl FeedStore {
    pub fn open(db: &store::Store) -> Result<Self, FeedError> {
        let tree = db.open_tree("feeds")?;
        let store = Self {
            publications: Publications::new(tree.clone()),
            tree,
            published: watch::channel(0).0,
            metrics: crate::FeedMetrics::default(),
        };
        store.index_alerts()?;
        Ok(store)
    }

    /// Indexes the alerts of feeds written before the index existed, once: a feed holds
    /// every report of every day too, far more items than alerts.
    fn index_alerts(&self) -> Result<(), FeedError> {
        if self.tree.contains_key(ALERTS_INDEXED)? {
            return Ok(());
        }
        let mut batch = store::Batch::default();
        for item in self.tree.scan_prefix(b"f\0") {
            let (_, bytes) = item?;
            if let Ok(pb::FeedItem { cursor, office, item: Some(pb::feed_item::Item::Alert(_)) }) =
                pb::FeedItem::decode(bytes.as_ref())
            {
                batch.insert(alert_key(&office, cursor), &[]);
            }
        }
        batch.insert(ALERTS_INDEXED, &[]);
        self.tree.apply(batch)?;
        Ok(())
    }

    /// Up to `max` alerts of `office`'s feed, as protobuf items: those after cursor
    /// `after`, oldest first; without it the newest, newest first.
    pub fn alerts(&self, office: &str, after: Option<u64>, max: usize) -> Result<Vec<(u64, Vec<u8>)>, FeedError> {
        let cursors: Vec<u64> = match after {
            Some(after) => self.tree.range(alert_key(office, after.saturating_add(1))..alert_key(office, u64::MAX)),
            None => self.tree.range(alert_prefix(office)..alert_key(office, u64::MAX)),
        }
        .map(|item| item.map(|(k, _)| u64::from_be_bytes(k[k.len() - 8..].try_into().expect("cursor is 8 bytes"))))
        .collect::<Result<_, _>>()?;
        let chosen: Vec<u64> = match after {
            Some(_) => cursors.into_iter().take(max).collect(),
            None => cursors.into_iter().rev().take(max).collect(),
        };
        let mut out = Vec::with_capacity(chosen.len());
        for cursor in chosen {
            if let Some(bytes) = self.tree.get(item_key(office, cursor))? {
                out.push((cursor, bytes.to_vec()));
            }
        }
        Ok(out)
    }

    /// What the publisher, the subscriptions and the forwarding count.
    pub fn metrics(&self) -> &crate::FeedMetrics {
        &self.metrics
    }

    /// What was published: the read model judges sealed days against it.
    pub fn publications(&self) -> &Publications {
        &self.publications
    }

    pub fn sealed_through(&self) -> Result<Option<Day>, FeedError> {
        Ok(self.publications.sealed_through()?)
    }

    /// Up to `max` items of `office`'s feed after cursor `after`, as protobuf bytes.
    pub fn items_after(&self, office: &str, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, FeedError> {
        let start = item_key(office, after.saturating_add(1));
        let end = item_key(office, u64::MAX);
        let mut out = Vec::new();
        for item in self.tree.range(start..=end).take(max) {
            let (k, v) = item?;
            let cursor = u64::from_be_bytes(k[k.len() - 8..].try_into().expect("cursor is 8 bytes"));
            out.push((cursor, v.to_vec()));
        }
        Ok(out)
    }

    /// The cursor of the office's last item; 0 when its feed is empty.
    pub fn last_cursor(&self, office: &str) -> Result<u64, FeedError> {
        let prefix = item_prefix(office);
        Ok(match self.tree.scan_prefix(&prefix).next_back() {
            Some(item) => {
                let (k, _) = item?;
                u64::from_be_bytes(k[k.len() - 8..].try_into().expect("cursor is 8 bytes"))
            }
            None => 0,
        })
    }

    /// Offices that have a feed.
    pub fn offices_with_items(&self) -> Result<BTreeSet<String>, FeedError> {
        let mut out = BTreeSet::new();
        let mut from = b"f\0".to_vec();
        // One seek per office: jump past each office's items.
        while let Some(item) = self.tree.range(from.clone()..).next() {
            let (k, _) = item?;
            if !k.starts_with(b"f\0") {
                break;
            }
            let office = String::from_utf8_lossy(&k[2..k.len() - 9]).into_owned();
            from = [item_prefix(&office), vec![0xff; 9]].concat();
            out.insert(office);
        }
        Ok(out)
    }

    /// A receiver that changes whenever something was published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    pub fn forwarded(&self, office: &str) -> Result<u64, FeedError> {
        let key = forwarded_key(office);
        Ok(self.tree.get(&key)?.map_or(0, |v| u64::from_be_bytes(v.as_ref().try_into().unwrap_or_default())))
    }

    pub fn set_forwarded(&self, office: &str, cursor: u64) -> Result<(), FeedError> {
        self.tree.insert(forwarded_key(office), &cursor.to_be_bytes())?;
        Ok(())
    }

    /// Puts an item in an office's feed, as a pass of the publisher would.
    #[cfg(test)]
    pub(crate) fn put_item(&self, office: &str, cursor: u64, item: &pb::FeedItem) -> Result<(), FeedError> {
        self.tree.insert(item_key(office, cursor), item.encode_to_vec())?;
        if matches!(item.item, Some(pb::feed_item::Item::Alert(_))) {
            self.tree.insert(alert_key(office, cursor), &[])?;
        }
        self.published.send_modify(|n| *n += 1);
        Ok(())
    }
}

/// What one pass writes.
#[derive(Default)]
struct Pass {
    items: Items,
    pending: Pending,
    /// The reports it publishes, by level and status (a seal's, for the metrics).
    statuses: BTreeMap<(domain::Level, domain::report::ReportStatus), i64>,
}

/// The feed items of a pass, in the batch that carries what it remembers.
#[derive(Default)]
struct Items {
    batch: store::Batch,
    count: usize,
    /// Items by office and kind, counted once written.
    by_office: BTreeMap<(String, &'static str), u64>,
}

/// Who the publisher feeds and by what clock it seals.
#[derive(Debug, Clone)]
pub struct Publishing {
    pub offices: Offices,
    /// The province's zone: a day ends at its deadline in it.
    pub zone: FixedOffset,
    pub clock: Clock,
    /// Days before the last sealed one that a first start seals: no older event gets in.
    pub catch_up_days: u32,
}

pub struct Publisher {
    model: ReadModel,
    store: FeedStore,
    offices: Offices,
    zone: FixedOffset,
    clock: Clock,
    /// Days before the last sealed one that a first start seals: no older event gets in.
    catch_up_days: u32,
    next_cursor: HashMap<String, u64>,
    /// Since when, and from what backlog, seals and revisions have waited for the
    /// aggregator to catch up (see [`Self::hold`]).
    held: Option<Hold>,
    max_hold: Duration,
}

/// A stretch of waiting for the aggregator: when it began, and the backlog then.
#[derive(Debug, Clone, Copy)]
struct Hold {
    since: Instant,
    backlog: Option<u64>,
}

/// How long seals and revisions wait for an aggregator that is catching up before they
/// judge whether it is getting there.
pub const MAX_HOLD: Duration = Duration::from_secs(60);

/// The longest catch-up that seals and revisions wait for, at the pace the backlog has
/// been shrinking: a province's 30 days are rebuilt in well under that.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(20 * 60);

impl Publisher {
    /// Publishes what `model` judges (it reads its publications from `store`).
    pub fn new(model: ReadModel, store: FeedStore, setup: Publishing) -> Self {
        let Publishing { offices, zone, clock, catch_up_days } = setup;
        Self {
            model,
            store,
            offices,
            zone,
            clock,
            catch_up_days,
            next_cursor: HashMap::new(),
            held: None,
            max_hold: MAX_HOLD,
        }
    }

    /// Publishes until `shutdown` completes: a pass after each batch the aggregator writes
    /// (one pass covers every batch written meanwhile), and at least twice a second for
    /// the clock.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), FeedError> {
        let projections = self.model.projections().clone();
        tokio::pin!(shutdown);
        loop {
            let (returned, result) = tokio::task::spawn_blocking(move || {
                let result = self.pass();
                (self, result)
            })
            .await
            .expect("publisher task panicked");
            self = returned;
            if let Err(e) = result {
                tracing::error!(error = %e, "publishing failed; retrying");
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = projections.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// One round of alerts, seals and revisions. Returns how many feed items it wrote.
    pub fn pass(&mut self) -> Result<usize, FeedError> {
        let result = self.pass_inner();
        if result.is_err() {
            // Cursors handed out by a batch that never landed: read them again.
            self.next_cursor.clear();
        }
        result
    }

    fn pass_inner(&mut self) -> Result<usize, FeedError> {
        let now = self.clock.now().with_timezone(&self.zone).naive_local();
        let target = self.model.close().last_sealed_day(now);
        let sealed = self.store.sealed_through()?;
        let hold = self.hold();
        // Held, the marks stay for the pass that follows the catch-up.
        let projections = self.model.projections().clone();
        let marks = if hold { Vec::new() } else { projections.marks()? };
        let alerts = projections.alerts()?;

        let mut items = 0;
        // Most passes have none: no empty batch then (sled lets one batch in at a time).
        if !alerts.is_empty() {
            let mut pass = Pass::default();
            for (alert, _) in &alerts {
                self.publish_alert(&mut pass, alert)?;
            }
            items += self.write(pass)?;
            for (alert, stored) in &alerts {
                projections.clear_alert(alert, stored)?;
            }
        }

        let oldest = target - TimeDelta::days(i64::from(self.catch_up_days));
        let first_to_seal = match sealed {
            Some(day) => day.succ_opt(),
            None => marks.iter().map(|m| m.day).min(),
        }
        .map(|day| day.max(oldest));
        let to_seal: Vec<Day> = match first_to_seal {
            Some(_) if hold => Vec::new(),
            Some(first) if first <= target => first.iter_days().take_while(|d| *d <= target).collect(),
            _ => Vec::new(),
        };
        // Revisions: from each marked school's earliest changed day to the last sealed one
        // (a change carries over to the days after it that have no record of their own).
        let mut revise: BTreeMap<String, Day> = BTreeMap::new();
        if let Some(sealed) = sealed {
            for mark in marks.iter().filter(|m| m.day <= sealed && m.day >= oldest) {
                let first = revise.entry(mark.school.clone()).or_insert(mark.day);
                *first = (*first).min(mark.day);
            }
        }
        // A batch per day: a pass over many days (the first after a rebuild) holds one day
        // in memory at a time, and the offices get each day as soon as it is written. A
        // crash in between repeats the days not written; the rest publish nothing new.
        if !to_seal.is_empty() || !revise.is_empty() {
            let roster = self.model.roster()?;
            let halls = self.model.halls()?;
            let mut cities = roster.cities().clone();
            cities.extend(halls.cities());
            let offices = self.offices.resolve(&cities);
            if let (Some(sealed), Some(first)) = (sealed, revise.values().min()) {
                for day in first.iter_days().take_while(|d| *d <= sealed) {
                    let schools: BTreeSet<String> =
                        revise.iter().filter(|(_, from)| **from <= day).map(|(s, _)| s.clone()).collect();
                    let mut pass = Pass::default();
                    self.publish_day(&mut pass, (&roster, &halls), &offices, day, Some(&schools))?;
                    items += self.write(pass)?;
                }
            }
            for day in &to_seal {
                let started = Instant::now();
                let mut pass = Pass::default();
                self.publish_day(&mut pass, (&roster, &halls), &offices, *day, None)?;
                for alert in self.model.inspection_alerts(&halls, *day) {
                    self.publish_inspection_alert(&mut pass, &offices, &alert)?;
                }
                pass.pending.seal(*day);
                let statuses = std::mem::take(&mut pass.statuses);
                items += self.write(pass)?;
                let seconds = started.elapsed().as_secs_f64();
                self.store.metrics.sealed(*day, seconds, &statuses);
                let reports: i64 = statuses.values().sum();
                let missing = statuses.get(&(domain::Level::School, domain::report::ReportStatus::Missing));
                tracing::info!(day = %day, reports, missing_schools = missing.copied().unwrap_or(0), seconds,
                    "sealed the day's reports");
            }
        }
        let now_sealed = to_seal.last().copied().or(sealed);
        for mark in marks.iter().filter(|m| now_sealed.is_some_and(|s| m.day <= s)) {
            projections.clear_mark(mark)?;
        }
        Ok(items)
    }

    /// Writes what `pass` published and remembers in one batch, and wakes the subscribers.
    /// Returns how many feed items it wrote.
    fn write(&self, pass: Pass) -> Result<usize, FeedError> {
        let Pass { items: Items { mut batch, count, by_office }, pending, .. } = pass;
        pending.write_into(&mut batch);
        self.store.tree.apply(batch)?;
        for ((office, kind), n) in by_office {
            self.store.metrics.published(&office, kind, n);
        }
        if count > 0 {
            self.store.tree.flush()?;
            self.store.published.send_modify(|n| *n += 1);
        }
        Ok(count)
    }

    /// Whether seals and revisions wait in this pass (see the module's comment).
    fn hold(&mut self) -> bool {
        if !self.model.projections().catching_up() {
            self.held = None;
            return false;
        }
        let now = Hold { since: Instant::now(), backlog: self.model.projections().backlog() };
        let Some(before) = self.held else {
            self.held = Some(now);
            return true;
        };
        let waited = before.since.elapsed();
        if waited < self.max_hold {
            return true;
        }
        // A stretch is over: wait on while the backlog shrinks fast enough.
        self.held = Some(now);
        let getting_there = match (before.backlog, now.backlog) {
            (Some(from), Some(left)) if left < from => {
                let pace = (from - left) as f64 / waited.as_secs_f64();
                Duration::from_secs_f64(left as f64 / pace) <= MAX_CATCH_UP
            }
            // Measured for the first time: judged at the end of the next stretch.
            (None, Some(_)) => true,
            _ => false,
        };
        if !getting_there {
            tracing::warn!(backlog = ?now.backlog, "the aggregator is not catching up; sealing from what it has folded");
        }
        getting_there
    }

    fn push(&mut self, items: &mut Items, office: &str, item: pb::feed_item::Item) -> Result<(), FeedError> {
        let cursor = match self.next_cursor.get(office) {
            Some(next) => *next,
            None => self.store.last_cursor(office)? + 1,
        };
        self.next_cursor.insert(office.to_owned(), cursor + 1);
        let kind = match item {
            pb::feed_item::Item::Report(_) => "report",
            pb::feed_item::Item::Alert(_) => "alert",
            pb::feed_item::Item::InspectionReport(_) => "inspection_report",
        };
        if kind == "alert" {
            items.batch.insert(alert_key(office, cursor), &[]);
        }
        *items.by_office.entry((office.to_owned(), kind)).or_default() += 1;
        let bytes = pb::FeedItem { cursor, office: office.to_owned(), item: Some(item) }.encode_to_vec();
        items.batch.insert(item_key(office, cursor), bytes);
        items.count += 1;
        Ok(())
    }

    fn publish_alert(&mut self, pass: &mut Pass, alert: &Alert) -> Result<(), FeedError> {
        let key = alerted_key(alert);
        if self.store.tree.contains_key(&key)? {
            return Ok(());
        }
        let offices = self.offices.resolve(&BTreeSet::from([alert.city.clone()]));
        for office in offices.iter().filter(|o| o.oversees(&alert.city)) {
            self.push(&mut pass.items, &office.id, pb::feed_item::Item::Alert(wire::alert_to_proto(alert)))?;
        }
        pass.items.batch.insert(key, &[]);
        Ok(())
    }

    /// An inspection alert of a sealed day, once, to the offices overseeing its hall.
    fn publish_inspection_alert(
        &mut self,
        pass: &mut Pass,
        offices: &[Office],
        alert: &InspectionAlert,
    ) -> Result<(), FeedError> {
        let key = format!("q\0inspection/{}", alert.key()).into_bytes();
        if self.store.tree.contains_key(&key)? {
            return Ok(());
        }
        let proto = wire::inspection_alert_to_proto(alert);
        for office in offices.iter().filter(|o| o.oversees(&alert.city)) {
            self.push(&mut pass.items, &office.id, pb::feed_item::Item::Alert(proto.clone()))?;
        }
        pass.items.batch.insert(key, &[]);
        Ok(())
    }

    /// Publishes `day` for `sites` (all if `None`: schools and halls) and the summaries
    /// above them, of every report kind: each report that makes a new version goes to the
    /// offices receiving its unit.
    fn publish_day(
        &mut self,
        pass: &mut Pass,
        (roster, halls): (&Roster, &Halls),
        offices: &[Office],
        day: Day,
        sites: Option<&BTreeSet<String>>,
    ) -> Result<(), FeedError> {
        let model = self.model.clone();
        let Pass { items, pending, statuses } = pass;
        model.publish_day(roster, day, sites, pending, |report, city| {
            *statuses.entry((report.unit.level, report.status)).or_default() += 1;
            let proto = wire::report_to_proto(report);
            for office in offices.iter().filter(|o| o.receives(&report.unit, city)) {
                self.push(items, &office.id, pb::feed_item::Item::Report(proto.clone()))?;
            }
            Ok::<_, FeedError>(())
        })?;
        model.publish_inspection_day(halls, day, sites, pending, |report| {
            let proto = wire::inspection_report_to_proto(report);
            for office in offices.iter().filter(|o| o.receives_inspections(&report.unit, &report.city)) {
                self.push(items, &office.id, pb::feed_item::Item::InspectionReport(proto.clone()))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use aggregator::{FoldConfig, Folder, Projections};
    use chrono::TimeZone;
    use domain::close::CloseRules;
    use eventlog::{Polled, Record, TopicPartition};

    use super::*;

    /// A registration on 2020-03-01 folded into new projections, and a publisher whose
    /// clock stands past that day's deadline.
    fn folded_day() -> (Projections, Publisher, store::Store) {
        let db = store::Store::temporary().unwrap();
        let projections = Projections::new(db.open_tree("projections").unwrap());
        let config = FoldConfig::default();
        let mut folder = Folder::new(projections.clone(), config.rules, config.zone).unwrap();
        let event = pb::Event {
            site: String::new(),
            event_id: "r1".into(),
            source: "test".into(),
            school: "S1".into(),
            occurred_at: "2020-03-01T07:00:00+08:00".into(),
            payload: Some(pb::event::Payload::Roster(pb::RosterEvent {
                person_id: "P1".into(),
                change: Some(pb::roster_event::Change::Registered(pb::Registered {
                    role: pb::Role::Teacher as i32,
                    placement: Some(pb::Placement { department: "D1".into(), ..Default::default() }),
                    city: "Wuhan".into(),
                    on_campus: true,
                })),
            })),
        };
        let at = TopicPartition { topic: "roster".into(), partition: 0 };
        let record =
            Record { topic: at.topic.clone(), key: "S1".into(), headers: vec![], payload: event.encode_to_vec() };
        folder.fold_records(&[Polled { at, offset: 0, record }]).unwrap();
        folder.checkpoint().unwrap();
        // Noon on 2 March in the zone (UTC+8): 1 March is past its deadline, 2 March is not.
        let (clock, _) = Clock::manual(chrono::Utc.with_ymd_and_hms(2020, 3, 2, 4, 0, 0).unwrap());
        let store = FeedStore::open(&db).unwrap();
        let model =
            ReadModel::new(projections.clone(), CloseRules::default()).with_publications(store.publications().clone());
        let setup = Publishing { offices: Offices::default(), zone: config.zone, clock, catch_up_days: 7 };
        let publisher = Publisher::new(model, store, setup);
        (projections, publisher, db)
    }

    #[test]
    fn seals_wait_while_the_aggregator_catches_up() {
        let (projections, mut publisher, _db) = folded_day();
        projections.set_catching_up(true);
        projections.set_backlog(1_000);
        assert_eq!(publisher.pass().unwrap(), 0);
        assert_eq!(publisher.store.sealed_through().unwrap(), None, "nothing sealed halfway through a backlog");
        assert_eq!(projections.marks().unwrap().len(), 1, "the day's mark waits for the next pass");
        projections.set_catching_up(false);
        assert!(publisher.pass().unwrap() > 0);
        assert_eq!(publisher.store.sealed_through().unwrap(), Day::from_ymd_opt(2020, 3, 1));
    }

    #[test]
    fn seals_wait_as_long_as_the_backlog_shrinks_in_time() {
        let (projections, mut publisher, _db) = folded_day();
        publisher.max_hold = Duration::from_millis(50);
        projections.set_catching_up(true);
        let stretch = |publisher: &mut Publisher, backlog: u64| {
            std::thread::sleep(Duration::from_millis(60));
            projections.set_backlog(backlog);
            publisher.pass().unwrap()
        };
        assert_eq!(publisher.pass().unwrap(), 0, "the hold begins, the backlog not measured yet");
        assert_eq!(stretch(&mut publisher, 1_000), 0, "measured for the first time");
        assert_eq!(stretch(&mut publisher, 500), 0, "halved in a stretch");
        assert_eq!(stretch(&mut publisher, 10), 0, "nearly gone");
        assert_eq!(publisher.store.sealed_through().unwrap(), None);
        assert!(stretch(&mut publisher, 10) > 0, "no longer shrinking: the seal goes ahead");
        assert_eq!(publisher.store.sealed_through().unwrap(), Day::from_ymd_opt(2020, 3, 1));
    }

    #[test]
    fn a_backlog_shrinking_too_slowly_does_not_stop_the_seal() {
        let (projections, mut publisher, _db) = folded_day();
        publisher.max_hold = Duration::from_millis(50);
        projections.set_catching_up(true);
        projections.set_backlog(1_000_000_000);
        assert_eq!(publisher.pass().unwrap(), 0);
        std::thread::sleep(Duration::from_millis(60));
        // 1 record in 60 ms: a billion would take longer than `MAX_CATCH_UP`.
        projections.set_backlog(999_999_999);
        assert!(publisher.pass().unwrap() > 0);
        assert_eq!(publisher.store.sealed_through().unwrap(), Day::from_ymd_opt(2020, 3, 1));
    }

    #[test]
    fn an_aggregator_that_never_catches_up_does_not_stop_the_seal() {
        let (projections, mut publisher, _db) = folded_day();
        publisher.max_hold = Duration::ZERO;
        projections.set_catching_up(true);
        projections.set_backlog(1_000);
        assert_eq!(publisher.pass().unwrap(), 0, "the hold begins");
        projections.set_backlog(1_200);
        assert!(publisher.pass().unwrap() > 0, "the backlog grew: the seal goes ahead");
        assert_eq!(publisher.store.sealed_through().unwrap(), Day::from_ymd_opt(2020, 3, 1));
    }

    #[test]
    fn alerts_of_a_feed_written_before_the_index_are_indexed_once_at_open() {
        let db = store::Store::temporary().unwrap();
        let tree = db.open_tree("feeds").unwrap();
        let item = |cursor, item| pb::FeedItem { cursor, office: "province".into(), item: Some(item) }.encode_to_vec();
        let alert =
            |school: &str| pb::feed_item::Item::Alert(pb::Alert { school: school.into(), ..Default::default() });
        tree.insert(item_key("province", 1), item(1, alert("S1"))).unwrap();
        tree.insert(item_key("province", 2), item(2, pb::feed_item::Item::Report(pb::DailyReport::default()))).unwrap();
        tree.insert(item_key("province", 3), item(3, alert("S2"))).unwrap();
        let store = FeedStore::open(&db).unwrap();
        let cursors = |found: Vec<(u64, Vec<u8>)>| found.into_iter().map(|(c, _)| c).collect::<Vec<_>>();
        assert_eq!(cursors(store.alerts("province", None, 10).unwrap()), [3, 1], "the newest first, reports left out");
        assert_eq!(cursors(store.alerts("province", None, 1).unwrap()), [3]);
        assert_eq!(cursors(store.alerts("province", Some(1), 10).unwrap()), [3], "after a cursor, oldest first");
        assert_eq!(cursors(store.alerts("cdc-Foshan", None, 10).unwrap()), Vec::<u64>::new());
        // Written since: indexed as it is written, and the old ones are not indexed twice.
        let pushed = pb::FeedItem { cursor: 4, office: "province".into(), item: Some(alert("S3")) };
        store.put_item("province", 4, &pushed).unwrap();
        drop(store);
        let store = FeedStore::open(&db).unwrap();
        assert_eq!(cursors(store.alerts("province", Some(0), 10).unwrap()), [1, 3, 4]);
    }
}
