//! What the folder keeps in memory between checkpoints: persons' timelines, units'
//! tallies by day and who was paired as roommates. Each is read from the store on first
//! use, marked when changed for the next checkpoint to write, and dropped whole once a
//! checkpoint has stored everything and it has outgrown its bound.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use domain::delta;
use domain::person::{Rules, Stamp};
use domain::timeline::{DayChange, KeyPersonHistory, Timeline};
use domain::{Day, Fact, Level, Tally, UnitKey};

use crate::AggregateError;
use crate::store::{Projections, UnitInfo};

/// Persons and units kept in memory between batches, at most: above the province's
/// 590,000 persons and 95,000 units, so that a day's fold does not drop and reload them
/// at every poll (a person with a day or two costs about 1.5 KB).
const CACHED_PERSONS: usize = 1_000_000;
const CACHED_UNITS: usize = 250_000;
/// Days of those persons' timelines in memory, at most: after weeks of history the
/// persons' bound alone would let the cache grow to several GB at province scale. A day
/// costs about 100 bytes while it shares the state of the day before, about 800 with a
/// state of its own. A rebuild folds one partition after another, so the bound holds a
/// partition's 150,000 persons over 30 days and more (4.5 M days): below that, a long
/// rebuild drops and reloads the partition's timelines every few polls.
const CACHED_PERSON_DAYS: usize = 6_000_000;

/// The caches' maps: hashed with foldhash, several times cheaper than std's SipHash on
/// the short keys of persons and units, and seeded per process all the same.
pub(super) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Set<K> = HashSet<K, foldhash::fast::RandomState>;

/// How much the caches may hold before a checkpoint drops them.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    persons: usize,
    person_days: usize,
    units: usize,
}

/// The three caches and their bounds.
pub(super) struct Caches {
    pub(super) persons: Persons,
    pub(super) units: Units,
    pub(super) pairings: Pairings,
    bounds: Bounds,
}

impl Caches {
    /// Empty caches over `store`. `legacy_layout`: the store holds timelines under the
    /// legacy `p` keys, to be looked for there too.
    pub(super) fn new(store: &Projections, legacy_layout: bool) -> Self {
        let empty_at_open = store.tree.is_empty();
        Self {
            persons: Persons {
                store: store.clone(),
                slots: Map::default(),
                persons: Vec::new(),
                last: None,
                days: 0,
                dirty: Vec::new(),
                key_buf: String::new(),
                legacy_layout,
                unstored: Unstored::new(empty_at_open),
            },
            units: Units {
                store: store.clone(),
                units: Map::default(),
                dirty: Vec::new(),
                dirty_days: 0,
                registered: Vec::new(),
                unstored: Unstored::new(empty_at_open),
            },
            pairings: Pairings { store: store.clone(), index: HashMap::new(), dirty: HashSet::new() },
            bounds: Bounds { persons: CACHED_PERSONS, person_days: CACHED_PERSON_DAYS, units: CACHED_UNITS },
        }
    }

    pub(super) fn set_bounds(&mut self, persons: usize, person_days: usize, units: usize) {
        self.bounds = Bounds { persons, person_days, units };
    }

    /// Whether a cache outgrew its bound: only a checkpoint may drop it, since it holds
    /// what is not stored yet.
    pub(super) fn full(&self) -> bool {
        self.persons_over() || self.units.units.len() > self.bounds.units || self.pairings_over()
    }

    fn persons_over(&self) -> bool {
        self.persons.persons.len() > self.bounds.persons || self.persons.days > self.bounds.person_days
    }

    fn pairings_over(&self) -> bool {
        self.pairings.index.len() > self.bounds.persons
    }

    /// Drops each cache grown past its bound, whole. Only once everything is in the store
    /// (sled keeps its own cache of hot pages), so that memory stays bounded at province
    /// scale.
    pub(super) fn drop_full(&mut self) {
        if self.persons_over() {
            self.persons.drop_all();
        }
        if self.units.units.len() > self.bounds.units {
            self.units.drop_all();
        }
        if self.pairings_over() {
            self.pairings.index.clear();
        }
    }
}

/// On a store that was empty when the folder opened (a rebuild), sled holds of this
/// folder's schools only what it wrote (other folders of the process fold other schools),
/// and all of that stays in memory unless a checkpoint dropped it: a person or unit
/// neither in memory nor dropped is new, and is not looked up. Such a lookup would wait
/// for the checkpoint being written (sled 0.34 takes a process-wide lock for a batch),
/// which stalled the rebuild's fold behind its writer.
struct Unstored<K> {
    /// The store was empty at open; otherwise everything not in memory is looked up.
    empty_at_open: bool,
    dropped: Set<K>,
}

impl<K: Hash + Eq> Unstored<K> {
    fn new(empty_at_open: bool) -> Self {
        Self { empty_at_open, dropped: Set::default() }
    }

    /// Whether `key` is known to be absent from the store.
    fn new_to_store<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.empty_at_open && !self.dropped.contains(key)
    }

    /// Remembers keys dropped from memory: sled holds them now.
    fn dropped(&mut self, keys: impl Iterator<Item = K>) {
        if self.empty_at_open {
            self.dropped.extend(keys);
        }
    }
}

/// Persons' timelines in memory, by `school/person`.
pub(super) struct Persons {
    store: Projections,
    /// Each person's slot in `persons`.
    slots: Map<PersonKey, usize>,
    persons: Vec<PersonSlot>,
    /// The slot found last: an event asks for its person several times (whether it was
    /// folded, the fold, its alert), and a lookup in a map of the province's 590,000
    /// persons is a cache miss or two each time.
    last: Option<(PersonKey, usize)>,
    /// Days of the timelines in memory, summed.
    days: usize,
    /// Slots of persons whose timeline changed since the last checkpoint, each once.
    dirty: Vec<usize>,
    /// Scratch for the `school/person` key of a lookup.
    key_buf: String,
    /// The store held timelines of the legacy `p` layout when this folder started.
    legacy_layout: bool,
    unstored: Unstored<String>,
}

/// A person in memory.
pub(super) struct PersonSlot {
    /// `school/person`.
    pub(super) key: String,
    pub(super) timeline: Timeline,
    /// Changed since the last checkpoint (then in `Persons::dirty`).
    dirty: bool,
    /// Read from a legacy `p` key: the next write removes it.
    pub(super) from_legacy_key: bool,
    /// Their entry in the key-person lists through time as last written, once known (a
    /// person new to the store has none): a checkpoint compares against it rather than
    /// reading sled for every person it writes.
    pub(super) key_person: Option<KeyPersonHistory>,
}

impl Persons {
    /// The person's timeline, loaded if not in memory.
    pub(super) fn timeline(&mut self, school: &str, person: &str) -> Result<&mut Timeline, AggregateError> {
        let at = self.slot(school, person)?;
        Ok(&mut self.persons[at].timeline)
    }

    /// Folds `fact` of `day` into the person's timeline, marking it for the next
    /// checkpoint; the changes their units' tallies take.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply(
        &mut self,
        school: &str,
        person: &str,
        day: Day,
        fact: &Fact,
        stamp: Stamp,
        acked: Option<i64>,
        rules: &Rules,
    ) -> Result<Vec<DayChange>, AggregateError> {
        let at = self.slot(school, person)?;
        let slot = &mut self.persons[at];
        let days_before = slot.timeline.days.len();
        let changes = slot.timeline.apply_acked(school, day, fact, stamp, acked, rules);
        self.days += slot.timeline.days.len() - days_before;
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(at);
        }
        Ok(changes)
    }

    /// Persons changed since the last checkpoint.
    pub(super) fn changed(&self) -> usize {
        self.dirty.len()
    }

    /// Hands each person changed since the last checkpoint to `write`, and forgets that
    /// they changed.
    pub(super) fn take_changed<E>(&mut self, mut write: impl FnMut(&mut PersonSlot) -> Result<(), E>) -> Result<(), E> {
        for at in std::mem::take(&mut self.dirty) {
            let slot = &mut self.persons[at];
            slot.dirty = false;
            write(slot)?;
        }
        Ok(())
    }

    /// The person's slot in `persons`, their timeline loaded into it if not in memory.
    fn slot(&mut self, school: &str, person: &str) -> Result<usize, AggregateError> {
        // `school/person`, built in `key_buf`: a lookup per call, several per event, and
        // no allocation for it.
        let key = &mut self.key_buf;
        key.clear();
        key.push_str(school);
        key.push('/');
        key.push_str(person);
        if let Some((last, at)) = &self.last
            && last.as_bytes() == key.as_bytes()
        {
            return Ok(*at);
        }
        let at = match self.slots.get(key.as_bytes()) {
            Some(&at) => at,
            None => {
                let new = self.unstored.new_to_store(key.as_str());
                let (timeline, from_legacy_key) = if new {
                    (Timeline::default(), false)
                } else {
                    self.store.timeline_and_layout(key, self.legacy_layout)?
                };
                self.days += timeline.days.len();
                let at = self.persons.len();
                let key_person = new.then(KeyPersonHistory::default);
                self.persons.push(PersonSlot { key: key.clone(), timeline, dirty: false, from_legacy_key, key_person });
                self.slots.insert(PersonKey::new(key), at);
                at
            }
        };
        self.last = Some((PersonKey::new(key), at));
        Ok(at)
    }

    fn drop_all(&mut self) {
        self.unstored.dropped(self.persons.drain(..).map(|slot| slot.key));
        self.slots.clear();
        self.last = None;
        self.days = 0;
    }
}

/// A person's `school/person` key, held inline when short, as codes nearly always are: the
/// map of persons then compares keys without following a pointer to another allocation,
/// which at province size was a cache miss per lookup.
#[derive(Clone)]
enum PersonKey {
    Inline { len: u8, bytes: [u8; PersonKey::INLINE] },
    Long(Box<[u8]>),
}

impl PersonKey {
    /// 30 bytes, the length and the tag: 32 bytes in all, no larger than a `Long`'s box
    /// and its own hash-table slot.
    const INLINE: usize = 30;

    fn new(key: &str) -> Self {
        match key.len() {
            len @ 0..=Self::INLINE => {
                let mut bytes = [0; Self::INLINE];
                bytes[..len].copy_from_slice(key.as_bytes());
                Self::Inline { len: len as u8, bytes }
            }
            _ => Self::Long(key.as_bytes().into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Long(bytes) => bytes,
        }
    }
}

impl PartialEq for PersonKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for PersonKey {}

impl std::hash::Hash for PersonKey {
    /// As its bytes hash, so that the map is searched with the bytes of a key being built.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for PersonKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Units' tallies by day in memory, and the units the store does not know yet.
pub(super) struct Units {
    store: Projections,
    units: Map<UnitKey, UnitDays>,
    /// Units with days in their `dirty` sets, each once.
    dirty: Vec<UnitKey>,
    /// Unit days in the units' `dirty` sets, summed.
    dirty_days: usize,
    /// Units to register at the next checkpoint, with the school whose person's fold
    /// registered them: stored in that school's batch.
    registered: Vec<(String, UnitKey, UnitInfo)>,
    unstored: Unstored<UnitKey>,
}

/// A unit's tallies by day in memory, and the days changed since the last checkpoint.
/// Cities and the province are here too, without days (they are summed when read), to be
/// registered once: a unit in memory is found with one lookup for both.
#[derive(Debug, Default)]
struct UnitDays {
    days: BTreeMap<Day, Tally>,
    dirty: BTreeSet<Day>,
    /// In the registry: stored, or in `Units::registered` for the next checkpoint.
    registered: bool,
}

impl Units {
    /// Adds `delta` to `unit` as `change` says ([`delta::add_to_days`]). `registry` (the
    /// person's city and school) registers the unit if it is new.
    pub(super) fn add(
        &mut self,
        unit: &UnitKey,
        change: &DayChange,
        delta: &Tally,
        registry: Option<(&str, &str)>,
    ) -> Result<(), AggregateError> {
        // Cities and the province are summed from their schools when read: a school's
        // tallies are complete where its partition is folded, a city's nowhere.
        let summed = unit.level <= Level::City;
        if !self.units.contains_key(unit) {
            let days = if summed || self.unstored.new_to_store(unit) {
                BTreeMap::new()
            } else {
                self.store.unit_days(unit)?
            };
            self.units.insert(unit.clone(), UnitDays { days, ..UnitDays::default() });
        }
        let UnitDays { days, dirty, registered } = self.units.get_mut(unit).expect("loaded above");
        if let Some((city, school)) = registry
            && !*registered
        {
            // Registered in the batch of `school`, whose folded records name it: a crash
            // that keeps that batch keeps the entry, and one that loses it folds those
            // records, and registers the unit, again. Cities and the province too.
            if self.unstored.new_to_store(unit) || self.store.unit(unit)?.is_none() {
                // The province has no city (every aggregator registers it, and alike).
                let city = if unit.level == Level::Province { "" } else { city };
                let info = UnitInfo { parent: unit.parent(city), city: city.to_owned() };
                self.registered.push((school.to_owned(), unit.clone(), info));
            }
            *registered = true;
        }
        if summed {
            return Ok(());
        }
        if dirty.is_empty() {
            self.dirty.push(unit.clone());
        }
        let dirty_before = dirty.len();
        delta::add_to_days(days, change, delta, |day| {
            dirty.insert(day);
        });
        self.dirty_days += dirty.len() - dirty_before;
        Ok(())
    }

    /// Unit days changed since the last checkpoint.
    pub(super) fn changed_days(&self) -> usize {
        self.dirty_days
    }

    /// Hands each unit day changed since the last checkpoint to `write`, and forgets that
    /// they changed.
    pub(super) fn take_changed(&mut self, mut write: impl FnMut(&UnitKey, Day, &Tally)) {
        self.dirty_days = 0;
        for unit in self.dirty.drain(..) {
            let UnitDays { days, dirty, .. } = self.units.get_mut(&unit).expect("dirty units are in memory");
            for day in std::mem::take(dirty) {
                write(&unit, day, &days[&day]);
            }
        }
    }

    /// The units registered since the last checkpoint, with the school that registered them.
    pub(super) fn take_registered(&mut self) -> Vec<(String, UnitKey, UnitInfo)> {
        std::mem::take(&mut self.registered)
    }

    fn drop_all(&mut self) {
        self.unstored.dropped(self.units.drain().map(|(unit, _)| unit));
    }
}

/// Who an isolation paired with whom (`school/person` → persons paired with them, either
/// side's isolation): the roommates a person's signs reach ([`domain::roommates`]).
pub(super) struct Pairings {
    store: Projections,
    index: HashMap<String, BTreeSet<String>>,
    /// Persons whose pairings grew since the last checkpoint.
    dirty: HashSet<String>,
}

impl Pairings {
    /// Persons paired with `person`.
    pub(super) fn of(&mut self, school: &str, person: &str) -> Result<&BTreeSet<String>, AggregateError> {
        let key = self.load(school, person)?;
        Ok(&self.index[&key])
    }

    /// Records that `other` shares `person`'s room. The stored set is loaded first (after
    /// a restart or a cache drop the index holds nothing yet), so it only ever grows.
    pub(super) fn pair(&mut self, school: &str, person: &str, other: &str) -> Result<(), AggregateError> {
        let key = self.load(school, person)?;
        let paired = self.index.get_mut(&key).expect("loaded above");
        if !paired.contains(other) {
            paired.insert(other.to_owned());
            self.dirty.insert(key);
        }
        Ok(())
    }

    /// Hands each person whose pairings grew since the last checkpoint to `write`
    /// (`school/person`, pairings), and forgets that they grew.
    pub(super) fn take_changed(&mut self, mut write: impl FnMut(&str, &BTreeSet<String>)) {
        for key in self.dirty.drain() {
            write(&key, &self.index[&key]);
        }
    }

    /// Loads `person`'s pairings into the index if they are not there; their key in it.
    /// Never copies the set: a room is paired one roommate at a time.
    fn load(&mut self, school: &str, person: &str) -> Result<String, AggregateError> {
        let key = format!("{school}/{person}");
        if !self.index.contains_key(&key) {
            let loaded = self.store.roommates_of(school, person)?;
            self.index.insert(key.clone(), loaded);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_keys_inline_or_long_are_found_by_their_bytes_and_only_by_them() {
        let keys = [
            "S1/P1".to_owned(),
            "k".repeat(PersonKey::INLINE),
            "k".repeat(PersonKey::INLINE + 1),
            "S1/".to_owned() + &"é".repeat(40),
        ];
        assert!(matches!(PersonKey::new(&keys[1]), PersonKey::Inline { .. }));
        assert!(matches!(PersonKey::new(&keys[2]), PersonKey::Long(_)));
        let mut map: Map<PersonKey, usize> = Map::default();
        for (at, key) in keys.iter().enumerate() {
            map.insert(PersonKey::new(key), at);
        }
        for (at, key) in keys.iter().enumerate() {
            assert_eq!(map.get(key.as_bytes()), Some(&at), "{key}");
        }
        for absent in ["S1/P", "S1/P10", &"k".repeat(PersonKey::INLINE - 1), &"k".repeat(PersonKey::INLINE + 2)] {
            assert_eq!(map.get(absent.as_bytes()), None, "{absent}");
        }
    }
}
