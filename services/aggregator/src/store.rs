//! The projection store: one tree of the `store` crate (sled), keys by prefix. What an
//! aggregator writes for one school at a checkpoint (timelines, unit days, units, alerts)
//! goes in one atomic batch, and the log positions after all schools, so a crash leaves
//! each school's part whole or not begun, and positions no further than what is stored.
//!
//! | prefix | key                              | value                      |
//! |--------|----------------------------------|----------------------------|
//! | `t`    | school/person                    | the person's [`Timeline`], each day as what changed since the day before, with the ids of their events folded but normal readings (`timeline_codec`) |
//! | `p`    | school/person                    | legacy, read then removed: the timeline with a whole state per day (stores from before `t`) |
//! | `u`    | unit key, NUL, YYYY-MM-DD        | the unit's [`Tally`] (sparse when most counts are zero) |
//! | `n`    | unit key                         | [`UnitInfo`]               |
//! | `N`    | unit key                         | the unit's display names as last named ([`NamedUnit`]) |
//! | `H`    | hall                             | the hall's events ([`HallLog`]): its roster, inspections and rectifications |
//! | `e`    | school/event id                  | legacy, read only: the event is folded (stores from before the ids moved into `p`) |
//! | `o`    | topic/partition                  | next offset to fold (u64)  |
//! | `h`    | school/person                    | the person's [`KeyPersonHistory`]: their entry in the key-person lists from each day it changed, while ever one |
//! | `k`    | school/person                    | legacy, read until the person is written again (then removed): their [`domain::person::KeyPerson`] as last folded, whatever the day |
//! | `r`    | school/person                    | persons an isolation paired them with, either side's |
//! | `a`    | school/event id                  | an [`Alert`] not yet taken by the feeds |
//! | `c`    | YYYY-MM-DD, NUL, school          | the school's units changed on that day: the feeds look again |
//! | `x`    | a `u`, `n`, `N`, `H`, `h`, `k` or `a` key | outbox: (version, value) not yet in the changelog |
//! | `w`    | a `u`, `n`, `N` or `H` key       | view only: version of the value held |
//! | `q`    | topic/partition/offset (padded)  | a [`crate::quarantine::Quarantined`] record, kept out of the fold |

use std::collections::BTreeMap;
use std::path::Path;

use domain::alert::Alert;
use domain::inspection::HallLog;
use domain::timeline::{KeyPersonHistory, Timeline};
use domain::{Day, Level, Tally, UnitKey};
use eventlog::TopicPartition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AggregateError;

/// A school whose unit records changed on `day`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub day: Day,
    pub school: String,
    value: Vec<u8>,
}

/// A timeline as stored before it kept its folded event ids (a postcard prefix of today's).
#[derive(Deserialize)]
struct LegacyTimeline {
    days: BTreeMap<Day, Box<domain::person::PersonDay>>,
}

/// What the store keeps about a unit besides its tallies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitInfo {
    pub parent: Option<UnitKey>,
    /// The city of the unit's school (empty for the province).
    pub city: String,
}

/// A unit's display names as last named: a register, the latest naming by event time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUnit {
    pub names: domain::unit::UnitNames,
    pub stamp: domain::person::Stamp,
}

/// `tag`, NUL, then `parts` one after the other: keys are built without `format!`, which
/// the fold would otherwise run several times per event.
fn key_of(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + parts.iter().map(|p| p.len()).sum::<usize>());
    key.extend_from_slice(&[tag, 0]);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

/// The legacy `p` key of a person (tests write stores of that layout).
#[cfg(test)]
pub(crate) fn person_key(school: &str, person: &str) -> Vec<u8> {
    key_of(b'p', &[school.as_bytes(), b"/", person.as_bytes()])
}

/// The legacy `p` key of a `school/person` pair already joined.
pub(crate) fn person_key_joined(school_person: &str) -> Vec<u8> {
    key_of(b'p', &[school_person.as_bytes()])
}

/// The `t` key of a `school/person` pair already joined.
pub(crate) fn timeline_key(school_person: &str) -> Vec<u8> {
    key_of(b't', &[school_person.as_bytes()])
}

/// Legacy (stores from before the lists kept their history): read, then removed.
pub(crate) fn key_person_key(school: &str, person: &str) -> Vec<u8> {
    key_of(b'k', &[school.as_bytes(), b"/", person.as_bytes()])
}

pub(crate) fn key_person_history_key(school: &str, person: &str) -> Vec<u8> {
    key_of(b'h', &[school.as_bytes(), b"/", person.as_bytes()])
}

/// A key person as `k` keys hold them: written before the lists knew the return from a
/// key area (the postcard layout of the time).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LegacyKeyPerson {
    school: String,
    person: String,
    role: domain::event::Role,
    city: String,
    placement: domain::event::Placement,
    in_key_area: bool,
    two_histories: Option<(domain::event::HistoryKind, Day)>,
    close_contact: Option<Day>,
    observation: Option<(domain::event::IsolationKind, Day, Day)>,
    release_refused: Option<domain::person::Refusal>,
    observation_missing: Option<(domain::event::IsolationKind, Day)>,
}

impl From<LegacyKeyPerson> for domain::person::KeyPerson {
    fn from(old: LegacyKeyPerson) -> Self {
        Self {
            school: old.school,
            person: old.person,
            role: old.role,
            city: old.city,
            placement: old.placement,
            in_key_area: old.in_key_area,
            key_area_return: None,
            two_histories: old.two_histories,
            close_contact: old.close_contact,
            observation: old.observation,
            release_refused: old.release_refused,
            observation_missing: old.observation_missing,
        }
    }
}

pub(crate) fn roommates_key(school: &str, person: &str) -> Vec<u8> {
    key_of(b'r', &[school.as_bytes(), b"/", person.as_bytes()])
}

/// Writes `unit` as its `Display` does (`province`, or `level:path`).
fn push_unit(key: &mut Vec<u8>, unit: &UnitKey) {
    if unit.level == Level::Province {
        key.extend_from_slice(b"province");
    } else {
        key.extend_from_slice(unit.level.as_str().as_bytes());
        key.push(b':');
        key.extend_from_slice(unit.path.as_bytes());
    }
}

/// Writes `day` as `YYYY-MM-DD`, as chrono's `%Y-%m-%d` does for years 0 to 9999.
fn push_day(key: &mut Vec<u8>, day: Day) {
    use chrono::Datelike;
    let year = day.year();
    if !(0..=9999).contains(&year) {
        key.extend_from_slice(day.format("%Y-%m-%d").to_string().as_bytes());
        return;
    }
    let digits = |n: u32, width: usize, key: &mut Vec<u8>| {
        for i in (0..width).rev() {
            key.push(b'0' + (n / 10u32.pow(i as u32) % 10) as u8);
        }
    };
    digits(year as u32, 4, key);
    key.push(b'-');
    digits(day.month(), 2, key);
    key.push(b'-');
    digits(day.day(), 2, key);
}

pub(crate) fn unit_day_prefix(unit: &UnitKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + 12 + unit.path.len() + 1 + 10);
    key.extend_from_slice(b"u\0");
    push_unit(&mut key, unit);
    key.push(0);
    key
}

pub(crate) fn unit_day_key(unit: &UnitKey, day: Day) -> Vec<u8> {
    let mut key = unit_day_prefix(unit);
    push_day(&mut key, day);
    key
}

/// The unit and day of a `u` key.
pub(crate) fn parse_unit_day_key(key: &[u8]) -> Option<(UnitKey, Day)> {
    let text = std::str::from_utf8(key.strip_prefix(b"u\0")?).ok()?;
    let (unit, day) = text.rsplit_once('\0')?;
    Some((unit.parse().ok()?, Day::parse_from_str(day, "%Y-%m-%d").ok()?))
}

pub(crate) fn unit_key(unit: &UnitKey) -> Vec<u8> {
    let mut key = b"n\0".to_vec();
    push_unit(&mut key, unit);
    key
}

pub(crate) fn unit_names_key(unit: &UnitKey) -> Vec<u8> {
    let mut key = b"N\0".to_vec();
    push_unit(&mut key, unit);
    key
}

pub(crate) fn hall_log_key(hall: &str) -> Vec<u8> {
    key_of(b'H', &[hall.as_bytes()])
}

/// The hall of an `H` key.
pub(crate) fn parse_hall_log_key(key: &[u8]) -> Option<&str> {
    key.strip_prefix(b"H\0").and_then(|hall| std::str::from_utf8(hall).ok())
}

/// Legacy: stores written before the folded ids moved into the timelines have these.
pub(crate) fn seen_key(school: &str, event_id: &str) -> Vec<u8> {
    format!("e\0{school}/{event_id}").into_bytes()
}

pub(crate) fn position_key(tp: &TopicPartition) -> Vec<u8> {
    format!("o\0{tp}").into_bytes()
}

pub(crate) fn alert_key(school: &str, event_id: &str) -> Vec<u8> {
    format!("a\0{school}/{event_id}").into_bytes()
}

pub(crate) fn mark_key(day: Day, school: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + 10 + 1 + school.len());
    key.extend_from_slice(b"c\0");
    push_day(&mut key, day);
    key.push(0);
    key.extend_from_slice(school.as_bytes());
    key
}

/// A fresh value for a mark, so that whoever clears marks can tell a mark set again
/// meanwhile (compare-and-swap) from the one it looked at.
pub(crate) fn mark_value() -> [u8; 8] {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed).rotate_left(48)).to_be_bytes()
}

pub(crate) fn outbox_key(key: &[u8]) -> Vec<u8> {
    [b"x".as_slice(), key].concat()
}

pub(crate) fn version_key(key: &[u8]) -> Vec<u8> {
    [b"w".as_slice(), key].concat()
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("projection values always serialize")
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, AggregateError> {
    postcard::from_bytes(bytes)
        .map_err(|e| AggregateError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), reason: e.to_string() })
}

/// Opens the projection tree in `dir`.
pub fn open(dir: &Path) -> Result<::store::Tree, AggregateError> {
    Ok(open_db(dir)?.open_tree("projections")?)
}

/// Opens the sled database in `dir`, for a process that keeps several trees there.
pub fn open_db(dir: &Path) -> Result<::store::Store, AggregateError> {
    Ok(::store::Store::open(dir)?)
}

/// Read side of the projections: what report queries use. Sees every batch the
/// aggregator has applied.
#[derive(Clone)]
pub struct Projections {
    pub(crate) tree: ::store::Tree,
    /// Woken after every batch written (fold or changelog): the feeds wait on it.
    changed: std::sync::Arc<tokio::sync::Notify>,
    /// Bumped after every batch written, like `changed`, for any number of watchers (the
    /// console's live updates); `changed` wakes only the one publisher.
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// How far behind the log each writer is: the feeds hold seals on it.
    progress: std::sync::Arc<Progress>,
    /// This handle's writer (see [`Self::for_writer`]).
    writer: u32,
}

/// What the writers of one set of projections (aggregators folding shares of the log, or
/// a view) report of their way through the log.
#[derive(Debug)]
struct Progress {
    /// One bit per writer, set while it reads full polls: a backlog is being folded, and
    /// what is stored lags the log.
    behind: std::sync::atomic::AtomicU64,
    /// Each writer's records in the log not yet folded, as last measured; `u64::MAX`
    /// until measured.
    backlog: Vec<std::sync::atomic::AtomicU64>,
    /// Partitions found stalled by those reading them ([`crate::stall`]).
    stalled: std::sync::Mutex<std::collections::BTreeSet<TopicPartition>>,
}

impl Default for Progress {
    fn default() -> Self {
        let backlog = (0..u64::BITS).map(|_| std::sync::atomic::AtomicU64::new(u64::MAX)).collect();
        Self { behind: std::sync::atomic::AtomicU64::new(0), backlog, stalled: Default::default() }
    }
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections").finish_non_exhaustive()
    }
}

impl Projections {
    pub fn new(tree: ::store::Tree) -> Self {
        Self {
            tree,
            changed: std::sync::Arc::default(),
            generation: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            progress: std::sync::Arc::default(),
            writer: 0,
        }
    }

    /// The same projections for writer `index` of several (aggregators folding shares of
    /// the log into them): the projections are catching up while any writer is.
    pub fn for_writer(&self, index: u32) -> Self {
        assert!(index < u64::BITS, "writer {index}: at most {} writers", u64::BITS);
        Self { writer: index, ..self.clone() }
    }

    pub fn unit(&self, unit: &UnitKey) -> Result<Option<UnitInfo>, AggregateError> {
        let key = unit_key(unit);
        self.tree.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    /// `unit`'s display names as last named, with when (none while it was never named).
    pub fn named_unit(&self, unit: &UnitKey) -> Result<Option<NamedUnit>, AggregateError> {
        let key = unit_names_key(unit);
        self.tree.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    /// A hall's events, if any were folded.
    pub fn hall_log(&self, hall: &str) -> Result<Option<HallLog>, AggregateError> {
        let key = hall_log_key(hall);
        self.tree.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    /// Every hall's events, by hall code.
    pub fn hall_logs(&self) -> Result<Vec<(String, HallLog)>, AggregateError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"H\0") {
            let (key, value) = item?;
            let hall = parse_hall_log_key(&key).unwrap_or_default().to_owned();
            out.push((hall, decode(&key, &value)?));
        }
        Ok(out)
    }

    /// The city of `school`, if anyone is registered in it.
    pub fn city_of(&self, school: &str) -> Option<String> {
        self.unit(&UnitKey::school(school)).ok().flatten().map(|info| info.city)
    }

    /// The first day anyone counted in a school or a unit below it; `None` if no one ever
    /// did (cities and the province are not stored: `reports::ReadModel::first_day`).
    pub fn first_day(&self, unit: &UnitKey) -> Result<Option<Day>, AggregateError> {
        match self.tree.scan_prefix(unit_day_prefix(unit)).next() {
            Some(item) => {
                let (k, _) = item?;
                let (_, day) = parse_unit_day_key(&k).ok_or_else(|| AggregateError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "not a unit-day key".into(),
                })?;
                Ok(Some(day))
            }
            None => Ok(None),
        }
    }

    /// The tally of a school or a unit below it on `day`: its own record, or the state of
    /// the last one before.
    pub fn tally_on(&self, unit: &UnitKey, day: Day) -> Result<Tally, AggregateError> {
        let key = unit_day_key(unit, day);
        if let Some(v) = self.tree.get(&key)? {
            return decode(&key, &v);
        }
        match self.tree.range(unit_day_prefix(unit)..key).next_back() {
            Some(item) => {
                let (k, v) = item?;
                Ok(decode::<Tally>(&k, &v)?.state_only())
            }
            None => Ok(Tally::default()),
        }
    }

    /// Units at `level` (all levels if `None`) lying under `parent` (everything if `None`),
    /// in key order. A `n` key is the level's name, then the path: one level's units lie
    /// together, and so, at each level, do those of one school or unit within it; so a
    /// level, or the units under a school or below, are read without the rest (a
    /// province holds some 150,000 units, a class none below it).
    pub fn units(
        &self,
        level: Option<Level>,
        parent: Option<&UnitKey>,
    ) -> Result<Vec<(UnitKey, UnitInfo)>, AggregateError> {
        let mut levels: Vec<Level> = Level::ALL.into_iter().filter(|l| level.is_none_or(|w| w == *l)).collect();
        levels.sort_by_key(|l| l.as_str());
        let mut out = Vec::new();
        for at in levels {
            let mut prefix = b"n\0".to_vec();
            prefix.extend_from_slice(at.as_str().as_bytes());
            match parent {
                Some(p) if p.level >= Level::School => {
                    if at <= p.level {
                        continue;
                    }
                    prefix.push(b':');
                    prefix.extend_from_slice(p.path.as_bytes());
                    prefix.push(b'/');
                }
                _ if at != Level::Province => prefix.push(b':'),
                _ => {}
            }
            self.units_at(&prefix, level, parent, &mut out)?;
        }
        Ok(out)
    }

    /// The units of `n` keys starting with `prefix`, filtered as [`Self::units`] says.
    fn units_at(
        &self,
        prefix: &[u8],
        level: Option<Level>,
        parent: Option<&UnitKey>,
        out: &mut Vec<(UnitKey, UnitInfo)>,
    ) -> Result<(), AggregateError> {
        for item in self.tree.scan_prefix(prefix) {
            let (k, v) = item?;
            let text = std::str::from_utf8(&k[2..]).map_err(|e| AggregateError::Corrupt {
                key: String::from_utf8_lossy(&k).into(),
                reason: e.to_string(),
            })?;
            let unit: UnitKey = text.parse().map_err(|e: domain::unit::UnitKeyError| AggregateError::Corrupt {
                key: text.into(),
                reason: e.to_string(),
            })?;
            let info: UnitInfo = decode(&k, &v)?;
            if level.is_some_and(|l| l != unit.level) {
                continue;
            }
            let under = match parent {
                None => true,
                Some(p) if p.level == Level::Province => unit.level != Level::Province,
                Some(p) if p.level == Level::City => info.city == p.path && unit.level > Level::City,
                Some(p) => unit != *p && unit.is_within(p),
            };
            if under {
                out.push((unit, info));
            }
        }
        Ok(())
    }

    /// Days whose unit records changed, per school, since the feeds last looked.
    pub fn marks(&self) -> Result<Vec<Mark>, AggregateError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"c\0") {
            let (k, v) = item?;
            let text = String::from_utf8_lossy(&k[2..]).into_owned();
            let parsed = text
                .split_once('\0')
                .and_then(|(day, school)| Some((Day::parse_from_str(day, "%Y-%m-%d").ok()?, school.to_owned())));
            let (day, school) =
                parsed.ok_or_else(|| AggregateError::Corrupt { key: text, reason: "bad mark".into() })?;
            out.push(Mark { day, school, value: v.to_vec() });
        }
        Ok(out)
    }

    /// Clears `mark` unless it was set again since it was read.
    pub fn clear_mark(&self, mark: &Mark) -> Result<(), AggregateError> {
        let _ =
            self.tree.compare_and_swap(mark_key(mark.day, &mark.school), Some(mark.value.as_slice()), None::<&[u8]>)?;
        Ok(())
    }

    /// Alerts not yet taken by the feeds, with their stored bytes (for [`Self::clear_alert`]).
    pub fn alerts(&self) -> Result<Vec<(Alert, Vec<u8>)>, AggregateError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"a\0") {
            let (k, v) = item?;
            out.push((decode(&k, &v)?, v.to_vec()));
        }
        Ok(out)
    }

    pub fn clear_alert(&self, alert: &Alert, stored: &[u8]) -> Result<(), AggregateError> {
        let key = alert_key(&alert.school, &alert.event_id);
        let _ = self.tree.compare_and_swap(key, Some(stored), None::<&[u8]>)?;
        Ok(())
    }

    /// Completes after the next batch is written (or at once if one was written since
    /// the last wait): the feeds sleep on this. (Not sled's `watch_prefix`, whose bounded
    /// queues stall writers when the watcher falls behind.)
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    pub(crate) fn written(&self) {
        self.changed.notify_one();
        self.generation.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after every batch written: what the console's live updates
    /// wake on, as many as are open (the publisher waits on [`Self::changed`]).
    pub fn watch_written(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Whether a backlog is being folded into these projections (or applied to this
    /// view): the feeds hold seals and revisions until it is done, since a report
    /// published now would miss events already in the log.
    pub fn catching_up(&self) -> bool {
        self.progress.behind.load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    /// Set by the aggregator (or the view) after each poll: full means behind.
    pub fn set_catching_up(&self, behind: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let bit = 1u64 << self.writer;
        if behind {
            self.progress.behind.fetch_or(bit, Relaxed);
        } else {
            self.progress.behind.fetch_and(!bit, Relaxed);
        }
    }

    /// Records in the log that the writers catching up have yet to fold, as last measured;
    /// `None` while one of them has not measured it yet. It tells a backlog being folded
    /// (it shrinks) from a load beyond what the fold can carry (it does not).
    pub fn backlog(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let behind = self.progress.behind.load(Relaxed);
        let mut sum = 0u64;
        for (writer, backlog) in self.progress.backlog.iter().enumerate() {
            if behind & (1 << writer) != 0 {
                sum = sum.saturating_add(Some(backlog.load(Relaxed)).filter(|b| *b != u64::MAX)?);
            }
        }
        Some(sum)
    }

    /// Set by the aggregator (or the view) whenever it measures its lag behind the log.
    pub fn set_backlog(&self, records: u64) {
        self.progress.backlog[self.writer as usize]
            .store(records.min(u64::MAX - 1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Partitions stalled now: lagging, their reader's position not moving.
    pub fn stalled(&self) -> std::collections::BTreeSet<TopicPartition> {
        self.progress.stalled.lock().expect("lock").clone()
    }

    /// Set by a reader of `reading`: which of them are stalled now.
    pub fn set_stalled(&self, reading: &[TopicPartition], stalled: &[TopicPartition]) {
        let mut set = self.progress.stalled.lock().expect("lock");
        for tp in reading {
            set.remove(tp);
        }
        set.extend(stalled.iter().cloned());
    }

    /// Next offset to fold, per partition the aggregator has seen.
    pub fn positions(&self) -> Result<BTreeMap<TopicPartition, u64>, AggregateError> {
        let mut out = BTreeMap::new();
        for item in self.tree.scan_prefix(b"o\0") {
            let (k, v) = item?;
            let text = String::from_utf8_lossy(&k[2..]).into_owned();
            let corrupt = |reason: &str| AggregateError::Corrupt { key: text.clone(), reason: reason.into() };
            let (topic, partition) = text.rsplit_once('/').ok_or_else(|| corrupt("no partition"))?;
            let partition = partition.parse().map_err(|_| corrupt("bad partition"))?;
            let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| corrupt("offset is not 8 bytes"))?;
            out.insert(TopicPartition { topic: topic.into(), partition }, u64::from_be_bytes(bytes));
        }
        Ok(out)
    }

    #[cfg(test)]
    pub(crate) fn timeline(&self, school: &str, person: &str) -> Result<Timeline, AggregateError> {
        Ok(self.timeline_and_layout(&format!("{school}/{person}"), true)?.0)
    }

    /// Whether the store holds timelines of the legacy `p` layout (asked once at start:
    /// a store without any needs no second lookup per person).
    pub(crate) fn has_legacy_timelines(&self) -> Result<bool, AggregateError> {
        Ok(self.tree.scan_prefix(b"p\0").next().transpose()?.is_some())
    }

    /// The timeline of `school/person`, and whether it was read from a legacy `p` key
    /// (which the next write of it removes); `p` keys are looked for only if `legacy`.
    pub(crate) fn timeline_and_layout(
        &self,
        school_person: &str,
        legacy: bool,
    ) -> Result<(Timeline, bool), AggregateError> {
        let key = timeline_key(school_person);
        if let Some(bytes) = self.tree.get(&key)? {
            let timeline = crate::timeline_codec::decode(&bytes).map_err(|reason| AggregateError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason,
            })?;
            return Ok((timeline, false));
        }
        let key = person_key_joined(school_person);
        let bytes = if legacy { self.tree.get(&key)? } else { None };
        let Some(bytes) = bytes else { return Ok((Timeline::default(), false)) };
        let timeline = match decode(&key, &bytes) {
            Ok(timeline) => timeline,
            // Written before timelines kept their folded ids: those are in `e` keys.
            Err(e) => match postcard::from_bytes::<LegacyTimeline>(&bytes) {
                Ok(legacy) => {
                    let mut timeline = Timeline::default();
                    timeline.days = legacy.days;
                    timeline
                }
                Err(_) => return Err(e),
            },
        };
        Ok((timeline, true))
    }

    /// Key persons placed in `unit` (or, for a city or the province, in its schools) at
    /// the end of `day`, as they stood then, in school/person order. A person stored
    /// before the lists kept their history (a legacy `k` key) is listed as last folded,
    /// whatever the day, until the fold writes them again.
    pub fn key_persons(&self, unit: &UnitKey, day: Day) -> Result<Vec<domain::person::KeyPerson>, AggregateError> {
        let school = match unit.level {
            Level::Province | Level::City => String::new(),
            _ => format!("{}/", unit.path.split('/').next().unwrap_or_default()),
        };
        let placed_in = |person: &domain::person::KeyPerson| {
            UnitKey::for_person(&person.city, &person.school, &person.placement).contains(unit)
        };
        let mut out = BTreeMap::new();
        for item in self.tree.scan_prefix(key_of(b'h', &[school.as_bytes()])) {
            let (k, v) = item?;
            let history: KeyPersonHistory = decode(&k, &v)?;
            if let Some(person) = history.on(day).filter(|p| placed_in(p)) {
                out.insert(k[2..].to_vec(), person.clone());
            }
        }
        for item in self.tree.scan_prefix(key_of(b'k', &[school.as_bytes()])) {
            let (k, v) = item?;
            if self.tree.contains_key(key_of(b'h', &[&k[2..]]))? {
                continue;
            }
            let person: domain::person::KeyPerson = decode::<LegacyKeyPerson>(&k, &v)?.into();
            if placed_in(&person) {
                out.insert(k[2..].to_vec(), person);
            }
        }
        Ok(out.into_values().collect())
    }

    /// The person's entry in the key-person lists through time, as stored (empty if none).
    pub(crate) fn key_person_history(&self, school: &str, person: &str) -> Result<KeyPersonHistory, AggregateError> {
        let key = key_person_history_key(school, person);
        Ok(self.tree.get(&key)?.map(|v| decode(&key, &v)).transpose()?.unwrap_or_default())
    }

    /// Whether the store holds legacy `k` entries (asked once at start, as for timelines).
    pub(crate) fn has_legacy_key_persons(&self) -> Result<bool, AggregateError> {
        Ok(self.tree.scan_prefix(b"k\0").next().transpose()?.is_some())
    }

    pub(crate) fn roommates_of(
        &self,
        school: &str,
        person: &str,
    ) -> Result<std::collections::BTreeSet<String>, AggregateError> {
        let key = roommates_key(school, person);
        Ok(self.tree.get(&key)?.map(|v| decode(&key, &v)).transpose()?.unwrap_or_default())
    }

    pub(crate) fn unit_days(&self, unit: &UnitKey) -> Result<BTreeMap<Day, Tally>, AggregateError> {
        let prefix = unit_day_prefix(unit);
        let mut out = BTreeMap::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (k, v) = item?;
            let day_text = std::str::from_utf8(&k[prefix.len()..]).unwrap_or_default();
            let day = Day::parse_from_str(day_text, "%Y-%m-%d").map_err(|e| AggregateError::Corrupt {
                key: String::from_utf8_lossy(&k).into(),
                reason: e.to_string(),
            })?;
            out.insert(day, decode(&k, &v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_under_a_school_are_its_own_at_every_level_not_a_like_named_schools() {
        let db = ::store::Store::temporary().unwrap();
        let projections = Projections::new(db.open_tree("p").unwrap());
        let registry = [
            ("province", None, ""),
            ("city:Foshan", Some("province"), "Foshan"),
            ("school:S1", Some("city:Foshan"), "Foshan"),
            ("school:S10", Some("city:Foshan"), "Foshan"),
            ("department:S1/D1", Some("school:S1"), "Foshan"),
            ("department:S10/D1", Some("school:S10"), "Foshan"),
            ("grade:S1/D1/2019", Some("department:S1/D1"), "Foshan"),
            ("class:S1/D1/2019/C1", Some("grade:S1/D1/2019"), "Foshan"),
            ("dorm:S1/R1", Some("school:S1"), "Foshan"),
            ("dorm:S10/R1", Some("school:S10"), "Foshan"),
        ];
        for (unit, parent, city) in registry {
            let unit: UnitKey = unit.parse().unwrap();
            let info = UnitInfo { parent: parent.map(|p| p.parse().unwrap()), city: city.into() };
            projections.tree.insert(unit_key(&unit), encode(&info)).unwrap();
        }
        let listed = |level: Option<Level>, parent: Option<&str>| -> Vec<String> {
            let parent: Option<UnitKey> = parent.map(|p| p.parse().unwrap());
            projections.units(level, parent.as_ref()).unwrap().into_iter().map(|(u, _)| u.to_string()).collect()
        };
        assert_eq!(
            listed(None, Some("school:S1")),
            ["class:S1/D1/2019/C1", "department:S1/D1", "dorm:S1/R1", "grade:S1/D1/2019"],
            "key order, as a scan of every unit gives"
        );
        assert_eq!(listed(None, Some("department:S1/D1")), ["class:S1/D1/2019/C1", "grade:S1/D1/2019"]);
        assert_eq!(listed(Some(Level::Dorm), Some("school:S10")), ["dorm:S10/R1"]);
        assert_eq!(listed(None, Some("class:S1/D1/2019/C1")), Vec::<String>::new());
        assert_eq!(listed(Some(Level::School), Some("city:Foshan")), ["school:S1", "school:S10"]);
        assert_eq!(listed(Some(Level::Province), None), ["province"]);
        assert_eq!(listed(None, None).len(), registry.len());
        assert_eq!(listed(None, Some("province")).len(), registry.len() - 1);
    }

    #[test]
    fn projections_catch_up_while_any_writer_does() {
        let db = ::store::Store::temporary().unwrap();
        let projections = Projections::new(db.open_tree("p").unwrap());
        let (first, second) = (projections.for_writer(0), projections.for_writer(1));
        first.set_catching_up(true);
        second.set_catching_up(true);
        first.set_catching_up(false);
        assert!(projections.catching_up(), "the second writer is still behind");
        second.set_catching_up(false);
        assert!(!projections.catching_up());
        second.set_catching_up(true);
        assert!(first.catching_up(), "every handle sees the same projections");
    }

    #[test]
    fn the_backlog_is_the_sum_of_the_writers_behind() {
        let db = ::store::Store::temporary().unwrap();
        let projections = Projections::new(db.open_tree("p").unwrap());
        let (first, second) = (projections.for_writer(0), projections.for_writer(1));
        assert_eq!(projections.backlog(), Some(0), "no one behind");
        first.set_catching_up(true);
        assert_eq!(projections.backlog(), None, "behind, not measured yet");
        first.set_backlog(700);
        second.set_backlog(40);
        assert_eq!(projections.backlog(), Some(700), "only the writers behind count");
        second.set_catching_up(true);
        assert_eq!(projections.backlog(), Some(740));
        first.set_catching_up(false);
        assert_eq!(second.backlog(), Some(40));
    }

    #[test]
    fn keys_are_written_as_their_formatted_text() {
        let units: Vec<UnitKey> = ["province", "city:Foshan", "school:S1", "class:S1/D/G/C1", "dorm:S1/R1"]
            .map(|u| u.parse().unwrap())
            .into();
        for day in [Day::from_ymd_opt(2026, 11, 29).unwrap(), Day::from_ymd_opt(987, 1, 2).unwrap()] {
            for unit in &units {
                assert_eq!(unit_day_key(unit, day), format!("u\0{unit}\0{}", day.format("%Y-%m-%d")).into_bytes());
                assert_eq!(parse_unit_day_key(&unit_day_key(unit, day)), Some((unit.clone(), day)));
                assert_eq!(unit_key(unit), format!("n\0{unit}").into_bytes());
            }
            assert_eq!(mark_key(day, "S1"), format!("c\0{}\0S1", day.format("%Y-%m-%d")).into_bytes());
        }
        assert_eq!(person_key("S1", "P1"), b"p\0S1/P1");
        assert_eq!(person_key_joined("S1/P1"), b"p\0S1/P1");
        assert_eq!(key_person_key("S1", "P1"), b"k\0S1/P1");
        assert_eq!(key_person_history_key("S1", "P1"), b"h\0S1/P1");
        assert_eq!(roommates_key("S1", "P1"), b"r\0S1/P1");
    }

    #[test]
    fn a_key_person_stored_before_the_lists_kept_their_history_is_listed_until_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let projections = Projections::new(open(dir.path()).unwrap());
        let placement = domain::event::Placement { department: "D1".into(), ..Default::default() };
        let legacy = LegacyKeyPerson {
            school: "S1".into(),
            person: "P1".into(),
            role: domain::event::Role::Teacher,
            city: "Foshan".into(),
            placement,
            in_key_area: true,
            two_histories: None,
            close_contact: None,
            observation: None,
            release_refused: None,
            observation_missing: None,
        };
        projections.tree.insert(key_person_key("S1", "P1"), encode(&legacy)).unwrap();
        assert!(projections.has_legacy_key_persons().unwrap());
        let school = UnitKey::school("S1");
        let (day_5, day_10) = (Day::from_ymd_opt(2020, 3, 5).unwrap(), Day::from_ymd_opt(2020, 3, 10).unwrap());
        let listed = |day| projections.key_persons(&school, day).unwrap();
        let old: domain::person::KeyPerson = legacy.into();
        assert_eq!(listed(day_5), std::slice::from_ref(&old), "as last folded, whatever the day");
        // Written again: the history stands for the person, the legacy entry no longer.
        let history = KeyPersonHistory(vec![(day_10, Some(old.clone()))]);
        projections.tree.insert(key_person_history_key("S1", "P1"), encode(&history)).unwrap();
        assert_eq!(listed(day_5), []);
        assert_eq!(listed(day_10), [old]);
    }

    #[test]
    fn a_timeline_stored_before_it_kept_folded_ids_still_loads() {
        #[derive(Serialize)]
        struct Before<'a> {
            days: &'a BTreeMap<Day, Box<domain::person::PersonDay>>,
        }
        let dir = tempfile::tempdir().unwrap();
        let projections = Projections::new(open(dir.path()).unwrap());
        let mut timeline = Timeline::default();
        let stamp = domain::person::Stamp::new(1, "e1");
        let fever = domain::Fact::Temperature { slot: domain::event::Slot::Morning, celsius: 38.2 };
        timeline.apply("S1", Day::from_ymd_opt(2026, 11, 29).unwrap(), &fever, stamp, &domain::Rules::default());
        // P1 is not registered; the legacy layout predates the flag that says so.
        timeline.days.values_mut().for_each(|d| d.flows.unrostered = false);
        projections.tree.insert(person_key("S1", "P1"), encode(&Before { days: &timeline.days })).unwrap();
        assert_eq!(projections.timeline("S1", "P1").unwrap(), timeline);

        assert!(timeline.first_fold(stamp));
        projections.tree.insert(person_key("S1", "P1"), encode(&timeline)).unwrap();
        let loaded = projections.timeline("S1", "P1").unwrap();
        assert_eq!(loaded, timeline);
        assert!(loaded.folded.contains(stamp.tiebreak));
    }
}
