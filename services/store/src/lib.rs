//! The store under the projections, the feeds, intake's index and the tokens: sled 0.34
//! (the design's choice), and the only crate that names it. A [`Store`] is a database in
//! a directory, a [`Tree`] one ordered keyspace of it, a [`Batch`] changes to one tree
//! applied atomically. Plain newtypes, not a trait: sled is the one implementation.
//!
//! sled 0.34 is no longer developed; what it needs from us lives here:
//!
//! - **A deadlock fixed in the vendored copy**: a truncation queued on sled's I/O pool
//!   could hang every write under load. `vendor/sled` replaces the crates.io release
//!   through `[patch.crates-io]`; the why, upstream issue and test are in
//!   `vendor/sled/DAYBOOK-PATCH.md`.
//! - **Opening waits for a lock let go late** ([`Store::open`]): sled drops its file lock
//!   only when its flusher thread exits, a moment after the last handle goes, so a store
//!   reopened in the same process (a restart in-process, a test) would fail to open.
//! - **A batch frees what it replaced** ([`Tree::apply`]): sled frees replaced nodes
//!   through crossbeam's epochs, and a thread that pins once per batch rarely gets round
//!   to it; a writer of many batches left the garbage to pile up in fresh memory.
//! - **Batches stay small**: sled keeps every page a batch replaces until the batch ends,
//!   so one batch for a whole checkpoint held gigabytes in a rebuild. A caller writes one
//!   batch per part that must be atomic on its own: the aggregator one per school, then
//!   the positions (`aggregator::fold::checkpoint`).
//! - **One batch at a time**: sled holds a process-wide lock while it writes a batch, and
//!   reads and flushes wait on it. Entries that stand alone are inserted one by one
//!   (intake's index), and a rebuild's fold does not look up what it has not written.
//!
//! Figures and the history of each: `services/bench/PROFILE.md`.

use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// sled's byte string, as keys and values are read back: cheap to clone, derefs to
/// `[u8]`. Re-exported rather than copied into a `Vec` on every read.
pub use sled::IVec;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure of the store, by what a caller can do about it. Displayed as sled's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The disk failed or is full: worth trying again later.
    #[error("IO error: {0}")]
    Io(#[source] std::io::Error),
    /// What is on disk does not read back as written.
    #[error("{0}")]
    Corruption(String),
    /// Anything else sled reports (a defect, an unsupported use).
    #[error("{0}")]
    Other(String),
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(e) => Error::Io(e),
            e @ sled::Error::Corruption { .. } => Error::Corruption(e.to_string()),
            e => Error::Other(e.to_string()),
        }
    }
}

/// A `Debug` that names the type alone: sled's own prints every page of a tree (or every
/// write of a batch).
macro_rules! opaque_debug {
    ($($name:ident),*) => {$(
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}

opaque_debug!(Store, Tree, Iter, Batch);

/// A database in a directory, holding any number of [`Tree`]s. Clones share it.
#[derive(Clone)]
pub struct Store(sled::Db);

/// How long [`Store::open`] waits for a lock held by a handle of this process just dropped.
/// Another process holding it fails after that.
const LOCK_WAIT: Duration = Duration::from_secs(2);

impl Store {
    /// Opens (or creates) the store in `dir`, waiting up to [`LOCK_WAIT`] for a lock held
    /// by a handle of this process just dropped.
    pub fn open(dir: &Path) -> Result<Self> {
        let started = Instant::now();
        loop {
            match sled::open(dir) {
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(Error::Io(e));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                opened => return Ok(Self(opened?)),
            }
        }
    }

    /// A store in a temporary directory, removed when the last handle goes: for tests.
    pub fn temporary() -> Result<Self> {
        Ok(Self(sled::Config::new().temporary(true).open()?))
    }

    /// The tree `name`, created empty if there is none.
    pub fn open_tree(&self, name: impl AsRef<[u8]>) -> Result<Tree> {
        Ok(Tree(self.0.open_tree(name)?))
    }

    /// The tree that needs no name (where the log kept its partition count in sled).
    pub fn default_tree(&self) -> Tree {
        Tree(sled::Tree::clone(&self.0))
    }

    /// Removes the tree `name`; whether there was one.
    pub fn drop_tree(&self, name: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.0.drop_tree(name)?)
    }

    /// The names of the trees in the store, the default one's included.
    pub fn tree_names(&self) -> Vec<IVec> {
        self.0.tree_names()
    }

    /// A number never handed out before in this store, also across restarts.
    pub fn generate_id(&self) -> Result<u64> {
        Ok(self.0.generate_id()?)
    }

    /// Writes everything to disk; returns the bytes written.
    pub fn flush(&self) -> Result<usize> {
        Ok(self.0.flush()?)
    }
}

/// One ordered keyspace of a [`Store`]. Clones share it.
#[derive(Clone)]
pub struct Tree(sled::Tree);

impl Tree {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>> {
        Ok(self.0.get(key)?)
    }

    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.0.contains_key(key)?)
    }

    /// Sets `key`; returns the value it replaced.
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl Into<IVec>) -> Result<Option<IVec>> {
        Ok(self.0.insert(key, value)?)
    }

    /// Removes `key`; returns the value it had.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>> {
        Ok(self.0.remove(key)?)
    }

    /// Sets `key` to `new` (`None`: removes it) if its value is `old` (`None`: absent);
    /// whether it did.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<impl AsRef<[u8]>>,
        new: Option<impl Into<IVec>>,
    ) -> Result<bool> {
        Ok(self.0.compare_and_swap(key, old, new)?.is_ok())
    }

    /// Applies `batch` atomically, then has what it replaced freed before returning (see
    /// the crate's doc): every batch goes through here.
    pub fn apply(&self, batch: Batch) -> Result<()> {
        self.0.apply_batch(batch.0)?;
        free_garbage();
        Ok(())
    }

    /// Whether the tree holds no entry (an error reading it counts as an entry).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> Iter {
        Iter(self.0.iter())
    }

    /// The entries whose keys fall in `range`, in key order.
    pub fn range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Iter {
        Iter(self.0.range(range))
    }

    /// The entries whose keys start with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        Iter(self.0.scan_prefix(prefix))
    }

    /// Writes this tree's store to disk; returns the bytes written.
    pub fn flush(&self) -> Result<usize> {
        Ok(self.0.flush()?)
    }

    /// [`Self::flush`] without blocking a thread.
    pub async fn flush_async(&self) -> Result<usize> {
        Ok(self.0.flush_async().await?)
    }
}

/// Entries of a [`Tree`] in key order (or backwards), each as (key, value).
pub struct Iter(sled::Iter);

impl Iter {
    /// The keys alone.
    pub fn keys(self) -> impl DoubleEndedIterator<Item = Result<IVec>> {
        self.map(|entry| entry.map(|(key, _)| key))
    }
}

impl Iterator for Iter {
    type Item = Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.0.next()?.map_err(Error::from))
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        Some(self.0.next_back()?.map_err(Error::from))
    }
}

/// Changes to one [`Tree`], applied all or nothing by [`Tree::apply`]; the last change to
/// a key wins.
#[derive(Default)]
pub struct Batch(sled::Batch);

impl Batch {
    pub fn insert(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.0.insert(key, value);
    }

    pub fn remove(&mut self, key: impl Into<IVec>) {
        self.0.remove(key);
    }
}

/// Flushes this thread's garbage to the global queue and collects from it until a marker
/// deferred after everything else has run: the queue is taken in order, so all this
/// thread deferred before the marker has been taken to be freed too. Through sled's own
/// `pin`, so that this is sled's collector whatever crossbeam the rest of the build has.
///
/// Each round moves the epoch on if no thread holds it back, and frees up to 8 bags of 64
/// deferred frees (a school's batch takes tens of rounds), done at once. A thread pinned
/// meanwhile holds the epoch back (sled's flusher while it writes, another writer all
/// through its batch), so later rounds wait a little in between, and after
/// [`FREEING_WAIT`] what is left goes with a later round: the next batch's, or another
/// writer's.
fn free_garbage() {
    let taken = Arc::new(AtomicBool::new(false));
    let marker = taken.clone();
    let guard = sled::pin();
    guard.defer(move || marker.store(true, Ordering::Release));
    guard.flush();
    drop(guard);
    let deadline = Instant::now() + FREEING_WAIT;
    for round in 0.. {
        if taken.load(Ordering::Acquire) || Instant::now() >= deadline {
            return;
        }
        if round >= FREEING_ROUNDS_AT_ONCE {
            std::thread::sleep(Duration::from_micros(100));
        }
        sled::pin().flush();
    }
}

/// Rounds of collecting done back to back, before they wait in between.
const FREEING_ROUNDS_AT_ONCE: u32 = 64;
/// How long a batch's writer goes on collecting its garbage, at most: long enough for a
/// school's batch in a rebuild (a shorter wait left more of it to grow the process).
const FREEING_WAIT: Duration = Duration::from_millis(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_dropped_in_this_process_opens_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..3u8 {
            let tree = Store::open(dir.path()).unwrap().open_tree("t").unwrap();
            let before = tree.insert(b"k", vec![round]).unwrap();
            assert_eq!(before.map(|v| v.to_vec()), round.checked_sub(1).map(|r| vec![r]));
            tree.flush().unwrap();
        }
    }

    #[test]
    fn a_store_held_open_is_refused_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let held = Store::open(dir.path()).unwrap();
        let started = Instant::now();
        assert!(matches!(Store::open(dir.path()), Err(Error::Io(_))));
        assert!(started.elapsed() >= LOCK_WAIT);
        drop(held);
    }

    #[test]
    fn a_batch_is_applied_whole_and_a_swap_says_whether_it_swapped() {
        let tree = Store::temporary().unwrap().open_tree("t").unwrap();
        tree.insert(b"a", b"1".as_slice()).unwrap();
        let mut batch = Batch::default();
        batch.insert(b"b".as_slice(), b"2".as_slice());
        batch.remove(b"a".as_slice());
        tree.apply(batch).unwrap();
        let entries: Vec<_> = tree.iter().map(|e| e.unwrap().0.to_vec()).collect();
        assert_eq!(entries, [b"b".to_vec()]);
        assert!(!tree.compare_and_swap(b"b", Some(b"1"), None::<&[u8]>).unwrap());
        assert!(tree.compare_and_swap(b"b", Some(b"2"), None::<&[u8]>).unwrap());
        assert!(tree.scan_prefix(b"").next().is_none());
    }
}
