//! The embedded log: one append-only file on the local disk, synced before an append
//! returns, so that what is acknowledged survives a crash.
//!
//! The file is a sequence of *chunks* ([`chunk`]), each a run of consecutive records of one
//! partition from one append. All partitions share the file, so one `fdatasync` makes an
//! append durable whatever partitions it wrote. Where each partition's chunks lie is kept
//! in memory, found by scanning the file when it is opened: 24 bytes a chunk.
//! Consumers see a record only once the sync that made it durable has returned.
//!
//! What can go wrong:
//! - A crash tears the last append: a chunk at the end of the file cut short or failing
//!   its checksum was never acknowledged (its sync had not returned). Opening cuts it off,
//!   keeping the bytes in a file beside, within the last [`CHECKED_TAIL`] bytes.
//! - A chunk failing its checksum anywhere else is corruption: reported when the log is
//!   opened (a frame that makes no sense) or read (a body that fails its checksum).
//! - A write or sync fails (a full disk): the append is refused (`Unavailable`) and the
//!   log reports itself failing ([`EmbeddedLog::failing`]). The next append, or
//!   [`EmbeddedLog::recover`], first cuts the file back: after a failed write to its end
//!   (the half-written bytes), after a failed sync to what the last good sync covered,
//!   since a later sync could succeed without the failed bytes ever reaching the disk;
//!   appends written but not yet synced then are refused too, never acknowledged. So the
//!   log goes on by itself once there is space, nothing acknowledged lost and nothing
//!   half-written readable. A log opened on a full disk opens failing: it reads, and
//!   refuses appends until a write succeeds.
//! - A second process opens the directory: refused (a lock file), as it would cut off an
//!   append in progress as torn.
//!
//! Reading is a `pread` of each chunk into a buffer the consumer reuses, then a decode.
//! The log used to be kept in sled, one entry per chunk: sled copied its pages into fresh
//! memory to read them back, most of the read's cost (services/bench/PROFILE.md,
//! thirteenth session). Logs kept in sled are rewritten into the file when opened
//! ([`migrate`]).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::{Appended, EventLog, LogConsumer, LogError, Polled, PositionLookup, Record, TopicPartition, partition_for};

mod chunk;
mod migrate;

use chunk::segment;

/// The log's records, in the log's directory.
const CHUNKS: &str = "chunks";
/// The partition count, fixed when the log is created.
const PARTITIONS: &str = "partitions";
/// The longest topic name taken; [`scan`] reads a chunk's header with room for it.
const MAX_TOPIC_BYTES: usize = 255;
/// Locked while the log is open.
const LOCK: &str = "lock";
/// How much of the file's end is checked chunk by chunk when it is opened: where a crash
/// can have left a torn write (what was appended since the last sync), with room to spare.
const CHECKED_TAIL: u64 = 64 << 20;

#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
    /// The partitions this handle's consumers read (all, unless made by [`Self::share`]).
    share: Share,
}

/// Partitions `p` with `p % of == index`: one member's part of the log, as a member of a
/// Kafka consumer group is assigned part of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Share {
    index: u32,
    of: u32,
}

impl Share {
    const ALL: Share = Share { index: 0, of: 1 };

    fn holds(self, tp: &TopicPartition) -> bool {
        tp.partition % self.of == self.index
    }
}

struct Inner {
    file: File,
    /// Held while the log is open: a second process (or handle) on the same directory
    /// would cut off the first one's append in progress as torn, or write over it.
    _lock: File,
    partitions: u32,
    /// The file's end and where every partition's chunks are; the lock also orders
    /// concurrent appends.
    writer: Mutex<Writer>,
    /// Next offset per partition of what is durable: what consumers may read.
    durable: Mutex<HashMap<TopicPartition, u64>>,
    /// Bumped after every durable append so that waiting consumers wake.
    appended: watch::Sender<u64>,
    /// One sync at a time (group commit). The value is the count of appends the last sync
    /// covered.
    synced: tokio::sync::Mutex<u64>,
    /// Why appends fail now: set by a failed write or sync, cleared by a good one.
    failing: watch::Sender<Option<String>>,
    faults: DiskFaults,
}

/// The tests' full disk: while set, every write and sync of the log fails with
/// `StorageFull` (a write after writing half its bytes, as a real full disk can).
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct DiskFaults {
    full: Arc<AtomicBool>,
}

impl DiskFaults {
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    fn check(&self) -> std::io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device (injected)"));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Writer {
    /// Where the next chunk goes.
    end: u64,
    parts: HashMap<TopicPartition, Part>,
    /// Appends written to the file so far.
    applied: u64,
    /// Where the file must be cut back to before the next write: set when a write or sync
    /// failed (or a cut did).
    cut_to: Option<u64>,
    /// The file's end as the last good sync (or the open) left it: durable.
    synced_end: u64,
    /// Bumped by every cut below `end`: an append written before it must not be
    /// acknowledged, even if a later sync succeeds.
    generation: u64,
}

/// A partition's chunks, in offset order, and its next offset.
#[derive(Default)]
struct Part {
    chunks: Vec<ChunkAt>,
    next: u64,
}

#[derive(Debug, Clone, Copy)]
struct ChunkAt {
    /// The offset of its first record.
    first: u64,
    /// Where it starts in the file.
    pos: u64,
    /// Its length, frame included.
    len: u32,
}

impl Part {
    /// The chunks holding offsets `from..until`.
    fn chunks_for(&self, from: u64, until: u64) -> &[ChunkAt] {
        let start = self.chunks.partition_point(|c| c.first <= from).saturating_sub(1);
        let end = self.chunks.partition_point(|c| c.first < until);
        &self.chunks[start..end.max(start)]
    }
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog").field("partitions", &self.inner.partitions).field("share", &self.share).finish()
    }
}

fn corrupt(at: &TopicPartition, reason: &str) -> LogError {
    LogError::Corrupt { at: at.clone(), reason: reason.to_owned() }
}
impl EmbeddedLog {
    /// Opens (or creates) the log under `dir` with `partitions` partitions per topic. The
    /// partition count is fixed at creation: reopening with another count is refused,
    /// because it would send a school's events to a different partition.
    pub fn open(dir: &Path, partitions: u32) -> Result<Self, LogError> {
        Self::open_with(dir, partitions, DiskFaults::default())
    }

    /// [`Self::open`], with writes going through `faults` (tests).
    #[doc(hidden)]
    pub fn open_with(dir: &Path, partitions: u32, faults: DiskFaults) -> Result<Self, LogError> {
        let (lock, file) = open_files(dir, partitions)?;
        let writer = scan(&file, dir)?;
        let durable = Mutex::new(writer.parts.iter().map(|(tp, part)| (tp.clone(), part.next)).collect());
        let (appended, _) = watch::channel(0);
        let log = Self {
            inner: Arc::new(Inner {
                file,
                _lock: lock,
                partitions,
                writer: Mutex::new(writer),
                durable,
                appended,
                synced: tokio::sync::Mutex::new(0),
                failing: watch::channel(None).0,
                faults,
            }),
            share: Share::ALL,
        };
        // A full disk must not keep the reports dark: the log opens to be read, and says
        // why it takes no appends until a write succeeds.
        let end = log.inner.writer.lock().expect("log writer lock poisoned").end;
        if let Err(e) = log.inner.probe(end) {
            tracing::error!(dir = %dir.display(), error = %e, "the log cannot write; it is read-only until it can");
            log.inner.failing.send_replace(Some(e.to_string()));
        }
        Ok(log)
    }

    /// Why appends fail now (a full disk), or `None`: changes as writes fail and succeed.
    pub fn failing(&self) -> watch::Receiver<Option<String>> {
        self.inner.failing.subscribe()
    }

    /// After a failure, cuts the file back and checks that it can be written again (the
    /// next append would do the same): `Ok` once the log takes appends again.
    pub async fn recover(&self) -> Result<(), LogError> {
        if self.inner.failing.borrow().is_none() {
            return Ok(());
        }
        let inner = self.inner.clone();
        blocking("recovery", move || {
            let _syncing = inner.synced.blocking_lock();
            let mut writer = inner.writer.lock().expect("log writer lock poisoned");
            inner.cut_back(&mut writer)?;
            inner.probe(writer.end)?;
            inner.failing.send_replace(None);
            Ok(())
        })
        .await?
    }

    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// The same log, whose consumers read (and whose `end_offsets` give) only the
    /// partitions `p` with `p % of == index`: `of` aggregators in this process, one per
    /// `index`, fold the log in parallel, each a disjoint set of schools. Appends are
    /// unchanged.
    pub fn share(&self, index: u32, of: u32) -> Self {
        assert!(index < of, "share {index} of {of}: the index must be below the count");
        Self { inner: self.inner.clone(), share: Share { index, of } }
    }
}

/// Locks the log's directory and opens its file, creating or migrating it first.
fn open_files(dir: &Path, partitions: u32) -> Result<(File, File), LogError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let lock = lock(dir)?;
    if !dir.join(CHUNKS).exists() && migrate::sled_log_in(dir) {
        migrate::from_sled(dir, partitions)?;
    }
    migrate::finish(dir)?;
    match std::fs::read_to_string(dir.join(PARTITIONS)) {
        Ok(stored) => {
            let n: u32 = stored.trim().parse().map_err(|_| {
                LogError::Config(format!("{} does not hold a partition count", dir.join(PARTITIONS).display()))
            })?;
            if n != partitions {
                return Err(LogError::Config(format!("log at {} has {n} partitions, not {partitions}", dir.display())));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_partitions(dir, partitions)?,
        Err(e) => return Err(e.into()),
    }
    let path = dir.join(CHUNKS);
    let created = !path.exists();
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
    if created {
        // The new file's name is durable only once its directory is synced.
        sync_dir(dir)?;
    }
    Ok((lock, file))
}

/// Locks the log's directory for this handle, waiting a little for a handle of this
/// process just dropped (a restart in-process); another holder is refused.
fn lock(dir: &Path) -> Result<File, LogError> {
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join(LOCK))?;
    match crate::retry_while_locked(|| file.try_lock(), |e| matches!(e, std::fs::TryLockError::WouldBlock)) {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(LogError::Config(format!("the log at {} is open in another process", dir.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Makes the names created in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    Ok(File::open(dir)?.sync_all()?)
}

/// Writes the partition count of a new log, durably.
fn write_partitions(dir: &Path, partitions: u32) -> Result<(), LogError> {
    let path = dir.join(PARTITIONS);
    let writing = dir.join(format!("{PARTITIONS}.writing"));
    std::fs::write(&writing, format!("{partitions}\n"))?;
    File::open(&writing)?.sync_all()?;
    std::fs::rename(&writing, &path)?;
    sync_dir(dir)
}

/// Finds every chunk of the file. A chunk cut short or failing its checksum within the
/// last [`CHECKED_TAIL`] bytes is cut off with everything after it (the bytes kept in a
/// file beside): a crash tore it, and no append it held had returned. Earlier, a chunk
/// that makes no sense is corruption, and the log is not opened.
fn scan(file: &File, dir: &Path) -> Result<Writer, LogError> {
    let len = file.metadata()?.len();
    let mut writer = Writer::default();
    // A frame's fields, a topic's name (Kafka's are at most 249 bytes) and the count.
    let mut head = [0u8; chunk::PREFIX + MAX_TOPIC_BYTES + 16];
    let mut whole = Vec::new();
    let mut pos = 0;
    while pos < len {
        let n = usize::try_from((len - pos).min(head.len() as u64)).expect("bounded by the buffer");
        file.read_exact_at(&mut head[..n], pos)?;
        let in_tail = len - pos <= CHECKED_TAIL;
        let header = match chunk::header(&head[..n]).filter(|h| h.len <= len - pos) {
            Some(header) => header,
            None if in_tail => break,
            None => return Err(LogError::CorruptFile { pos, reason: "no chunk starts there".into() }),
        };
        let chunk_len = u32::try_from(header.len)
            .map_err(|_| LogError::CorruptFile { pos, reason: format!("a chunk of {} bytes", header.len) })?;
        if in_tail {
            whole.resize(chunk_len as usize, 0);
            file.read_exact_at(&mut whole, pos)?;
            if chunk::body(&header, &whole).is_err() {
                break;
            }
        }
        let count = chunk::count(&header, &head[..n])
            .ok_or_else(|| corrupt(&header.tp, &format!("the chunk at offset {} has no record count", header.first)))?;
        let part = writer.parts.entry(header.tp.clone()).or_default();
        if header.first != part.next {
            let reason = format!("a chunk at offset {} follows offset {}", header.first, part.next);
            return Err(corrupt(&header.tp, &reason));
        }
        part.chunks.push(ChunkAt { first: header.first, pos, len: chunk_len });
        part.next = part.next.checked_add(count).ok_or_else(|| corrupt(&header.tp, "record count overflows"))?;
        pos += header.len;
    }
    if pos < len {
        // Kept beside the log, in case it was not a crash but the disk changing bytes; on a
        // full disk it cannot be, and the log opens all the same (the cut bytes were never
        // acknowledged).
        let kept = dir.join(format!("{CHUNKS}.cut-at-{pos}"));
        let keep = || -> Result<(), LogError> {
            let mut cut = vec![0; usize::try_from(len - pos).expect("within the checked tail")];
            file.read_exact_at(&mut cut, pos)?;
            std::fs::write(&kept, &cut)?;
            File::open(&kept)?.sync_all()?;
            sync_dir(dir)
        };
        let kept = keep().map(|()| kept.display().to_string()).unwrap_or_else(|e| format!("not kept: {e}"));
        tracing::error!(
            at = pos,
            bytes = len - pos,
            kept,
            "the log's end does not read back whole (an append torn by a crash); cut off"
        );
        if let Err(e) = file.set_len(pos).and_then(|()| file.sync_all()) {
            tracing::error!(error = %e, "the log's torn end could not be cut off yet");
            writer.cut_to = Some(pos);
        }
    }
    writer.end = pos;
    writer.synced_end = pos;
    Ok(writer)
}

/// Where an append's records went, for its answer.
struct Written {
    /// Each record's part (the records of one topic and partition), in the order the
    /// records came.
    slots: Vec<usize>,
    /// Each part's first offset.
    next: Vec<u64>,
    /// Each part, with its next offset after the append.
    reached: Vec<(TopicPartition, u64)>,
    /// The count of appends written, this one included.
    mine: u64,
    /// The writer's generation when written: if it moved, the file was cut below it.
    generation: u64,
}

impl Inner {
    /// Writes `records` at the file's end, each partition's as chunks, and indexes them:
    /// not yet durable, nor visible to consumers.
    fn write(&self, records: &[Record]) -> Result<Written, LogError> {
        // Each record's partition, and each partition's records in the order first seen.
        let mut parts: Vec<(TopicPartition, Vec<&Record>)> = Vec::new();
        let mut slots = Vec::with_capacity(records.len());
        for record in records {
            let partition = partition_for(&record.key, self.partitions);
            let slot = match parts.iter().position(|(tp, _)| tp.partition == partition && tp.topic == record.topic) {
                Some(slot) => slot,
                None => {
                    parts.push((TopicPartition { topic: record.topic.clone(), partition }, Vec::new()));
                    parts.len() - 1
                }
            };
            parts[slot].1.push(record);
            slots.push(slot);
        }
        let mut writer = self.writer.lock().expect("log writer lock poisoned");
        if writer.cut_to.is_some() {
            // A cut below `end` must wait for the sync under way: taken in the order
            // `append` takes them.
            drop(writer);
            let _syncing = self.synced.blocking_lock();
            writer = self.writer.lock().expect("log writer lock poisoned");
            self.cut_back(&mut writer)?;
        }
        let mut bytes = Vec::new();
        let mut written = Vec::with_capacity(parts.len());
        for (tp, part) in &parts {
            let start = writer.parts.get(tp).map_or(0, |p| p.next);
            let mut chunks = Vec::new();
            let mut first = start;
            let mut builder = segment::Builder::default();
            for (i, record) in part.iter().enumerate() {
                builder.push(record);
                if builder.full() || i + 1 == part.len() {
                    let at = bytes.len();
                    let n = builder.len();
                    chunk::put(&mut bytes, tp, first, &std::mem::take(&mut builder).finish());
                    let len = u32::try_from(bytes.len() - at).expect("a chunk is below 4 GiB");
                    chunks.push(ChunkAt { first, pos: writer.end + at as u64, len });
                    first += n;
                }
            }
            written.push((start, chunks, first));
        }
        // Written before anything is indexed. What a failed write left past the end is cut
        // off before the next write.
        if let Err(e) = self.write_at(&bytes, writer.end) {
            writer.cut_to = Some(writer.end);
            return Err(self.failed("write", &e));
        }
        writer.end += bytes.len() as u64;
        let mut starts = Vec::with_capacity(parts.len());
        let mut reached = Vec::with_capacity(parts.len());
        for ((tp, _), (start, chunks, end)) in parts.iter().zip(written) {
            let part = writer.parts.entry(tp.clone()).or_default();
            part.chunks.extend(chunks);
            part.next = end;
            starts.push(start);
            reached.push((tp.clone(), end));
        }
        writer.applied += 1;
        Ok(Written { slots, next: starts, reached, mine: writer.applied, generation: writer.generation })
    }

    /// Writes through the tests' faults.
    fn write_at(&self, bytes: &[u8], pos: u64) -> std::io::Result<()> {
        if let Err(e) = self.faults.check() {
            self.file.write_all_at(&bytes[..bytes.len() / 2], pos)?;
            return Err(e);
        }
        self.file.write_all_at(bytes, pos)
    }

    fn sync(&self) -> std::io::Result<()> {
        self.faults.check()?;
        self.file.sync_data()
    }

    /// Records why the log fails, and the error an append answers: unavailable, since
    /// nothing of it was acknowledged and it can be sent again.
    fn failed(&self, what: &str, e: &std::io::Error) -> LogError {
        let why = format!("the log's {what} failed: {e}");
        tracing::error!(error = %why, "the log refuses appends until a write succeeds");
        self.failing.send_replace(Some(why.clone()));
        LogError::Unavailable(why)
    }

    /// Cuts the file back to `writer.cut_to`, if set, forgetting what lay past it. The
    /// caller holds `synced`, so no sync is under way.
    fn cut_back(&self, writer: &mut Writer) -> Result<(), LogError> {
        let Some(to) = writer.cut_to else { return Ok(()) };
        self.file.set_len(to).and_then(|()| self.sync()).map_err(|e| self.failed("cut", &e))?;
        if to < writer.end {
            for part in writer.parts.values_mut() {
                let kept = part.chunks.partition_point(|c| c.pos < to);
                if let Some(first_cut) = part.chunks.get(kept) {
                    part.next = first_cut.first;
                    part.chunks.truncate(kept);
                }
            }
            writer.end = to;
            writer.generation += 1;
        }
        writer.cut_to = None;
        Ok(())
    }

    /// Checks that a block can be written and synced at the file's end, and leaves the
    /// file as it was: whether a full disk has space again. A crash in between leaves
    /// zeros at the end, cut off as torn when the log is opened.
    fn probe(&self, end: u64) -> Result<(), LogError> {
        let written = self.write_at(&[0; PROBE_BYTES], end).and_then(|()| self.sync());
        self.file.set_len(end)?;
        written.map_err(|e| self.failed("write", &e))
    }
}

/// How much [`Inner::probe`] writes: a block.
const PROBE_BYTES: usize = 4096;

impl EventLog for EmbeddedLog {
    type Consumer = EmbeddedConsumer;

    async fn append(&self, records: Vec<Record>) -> Result<Vec<Appended>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        if let Some(long) = records.iter().find(|r| r.topic.len() > MAX_TOPIC_BYTES) {
            return Err(LogError::Config(format!(
                "topic {:?}: longer than {MAX_TOPIC_BYTES} bytes (Kafka allows 249)",
                long.topic
            )));
        }
        // The write can wait on the disk (the kernel holds back writers when much is
        // dirty): off the async workers, which serve intake's clients meanwhile.
        let writing = inner.clone();
        let Written { slots, mut next, reached, mine, generation } =
            blocking("write", move || writing.write(&records)).await??;
        // Durable before anyone is told: one sync covers every append written before it
        // starts, so an append a sync begun after it covered needs no sync of its own.
        {
            let mut synced = inner.synced.lock().await;
            let (covers, covers_end) = {
                let writer = inner.writer.lock().expect("log writer lock poisoned");
                // Written before a cut (`applied` still counts it: a later sync seems to
                // cover it), or not yet synced with a failed sync's cut pending: never
                // acknowledged. Rarely it was durable all the same: the client sends it
                // again, and the fold takes an event id once.
                let cut = writer.generation != generation;
                if cut || (*synced < mine && writer.cut_to.is_some_and(|to| to < writer.end)) {
                    return Err(LogError::Unavailable("the log failed while this append was written".into()));
                }
                (writer.applied, writer.end)
            };
            if *synced < mine {
                let log = inner.clone();
                let result = blocking("sync", move || log.sync()).await.and_then(|r| r);
                if let Err(e) = result {
                    // The written bytes may never reach the disk, and a later sync can
                    // succeed all the same (Linux marks the pages clean): everything since
                    // the last good sync is cut off before the next write.
                    let mut writer = inner.writer.lock().expect("log writer lock poisoned");
                    writer.cut_to = Some(writer.synced_end);
                    return Err(inner.failed("sync", &e));
                }
                *synced = covers;
                let mut writer = inner.writer.lock().expect("log writer lock poisoned");
                writer.synced_end = writer.synced_end.max(covers_end);
            }
        }
        if inner.failing.borrow().is_some() {
            tracing::info!("the log writes again");
            inner.failing.send_replace(None);
        }
        {
            let mut durable = inner.durable.lock().expect("log durable lock poisoned");
            for (tp, end) in &reached {
                let known = durable.entry(tp.clone()).or_insert(0);
                *known = (*known).max(*end);
            }
        }
        inner.appended.send_modify(|n| *n += 1);
        // Offsets in the order the records came.
        Ok(slots
            .into_iter()
            .map(|slot| {
                let offset = next[slot];
                next[slot] += 1;
                Appended { partition: reached[slot].0.partition, offset }
            })
            .collect())
    }

    fn subscribe(&self, _group: &str, positions: PositionLookup) -> Result<EmbeddedConsumer, LogError> {
        // One process owns the embedded log, so every consumer is given every partition of
        // its handle's share, whatever its group.
        Ok(EmbeddedConsumer {
            log: self.clone(),
            positions,
            cursor: HashMap::new(),
            buffer: Vec::new(),
            wake: self.inner.appended.subscribe(),
        })
    }

    fn read_all(&self, positions: PositionLookup) -> Result<EmbeddedConsumer, LogError> {
        self.subscribe("", positions)
    }

    /// The next offset of every partition, counting only what is durable.
    fn end_offsets(&self) -> Result<Vec<(TopicPartition, u64)>, LogError> {
        let durable = self.inner.durable.lock().expect("log durable lock poisoned");
        let mut out: Vec<_> =
            durable.iter().filter(|(tp, _)| self.share.holds(tp)).map(|(tp, n)| (tp.clone(), *n)).collect();
        out.sort();
        Ok(out)
    }
}

pub struct EmbeddedConsumer {
    log: EmbeddedLog,
    positions: PositionLookup,
    cursor: HashMap<TopicPartition, u64>,
    /// Chunks are read into this, kept from poll to poll.
    buffer: Vec<u8>,
    wake: watch::Receiver<u64>,
}

impl EmbeddedConsumer {
    /// Reads on a blocking thread, since a read may wait on the disk (a log not in the
    /// page cache) and the async workers serve intake's clients. The cursors move once the
    /// records are handed over: a poll dropped meanwhile, or failed, loses nothing.
    async fn read(&mut self, max: usize) -> Result<Vec<Polled>, LogError> {
        let (log, positions, cursor) = (self.log.clone(), self.positions.clone(), self.cursor.clone());
        let mut buffer = std::mem::take(&mut self.buffer);
        let (read, buffer) = blocking("read", move || {
            let read = read_available(&log, &positions, &cursor, &mut buffer, max);
            (read, buffer)
        })
        .await?;
        self.buffer = buffer;
        let (records, moved) = read?;
        self.cursor.extend(moved);
        Ok(records)
    }
}

/// Runs `work` on tokio's blocking threads: the log's file I/O can wait on the disk, and
/// the async workers serve intake's clients meanwhile.
async fn blocking<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| std::io::Error::other(format!("the log's {what} stopped: {e}")))
}

/// Records read, and each partition's next offset after them.
type Read = (Vec<Polled>, Vec<(TopicPartition, u64)>);

/// Up to `max` durable records of `log` from the consumer's `cursor` (or, for a partition
/// not read yet, from `positions`), the partitions in order, with each partition's next
/// offset after them. In order, a backlog (a rebuild, a catch-up) is read one partition at
/// a time, so the fold works on one partition's schools at a time. Taking the partitions
/// in turn instead made a province rebuild of 30 days cost 385 CPU s against 212
/// (services/bench/PROFILE.md, thirteenth session). Chunks are read into `buffer`.
fn read_available(
    log: &EmbeddedLog,
    positions: &PositionLookup,
    cursor: &HashMap<TopicPartition, u64>,
    buffer: &mut Vec<u8>,
    max: usize,
) -> Result<Read, LogError> {
    let mut out = Vec::new();
    let mut moved = Vec::new();
    for (tp, end) in log.end_offsets()? {
        if out.len() >= max {
            break;
        }
        let from = cursor.get(&tp).copied().unwrap_or_else(|| positions(&tp).unwrap_or(0));
        if from >= end {
            moved.push((tp, from));
            continue;
        }
        let until = end.min(from.saturating_add((max - out.len()) as u64));
        let chunks = {
            let writer = log.inner.writer.lock().expect("log writer lock poisoned");
            writer.parts.get(&tp).map(|part| part.chunks_for(from, until).to_vec()).unwrap_or_default()
        };
        let mut next = from;
        for at in chunks {
            buffer.resize(at.len as usize, 0);
            log.inner.file.read_exact_at(buffer, at.pos)?;
            let header = chunk::header(buffer)
                .filter(|h| h.tp == tp && h.first == at.first)
                .ok_or_else(|| corrupt(&tp, &format!("no chunk at byte {} for offset {}", at.pos, at.first)))?;
            next = segment::read(&tp, at.first, chunk::body(&header, buffer)?, next, until, &mut out)?;
        }
        moved.push((tp, next));
    }
    Ok((out, moved))
}

impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Polled>, LogError> {
        self.wake.borrow_and_update();
        let records = self.read(max).await?;
        if !records.is_empty() {
            return Ok(records);
        }
        // Nothing yet: sleep until an append lands or the wait runs out.
        let _ = tokio::time::timeout(wait, self.wake.changed()).await;
        self.read(max).await
    }

    fn commit(&mut self, _positions: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, key: &str, payload: &str) -> Record {
        Record {
            topic: topic.into(),
            key: key.into(),
            headers: vec![("kind".into(), topic.into())],
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn a_key_keeps_its_order_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path(), 4).unwrap();
            let appended = log.append(vec![record("health", "S1", "a"), record("health", "S1", "b")]).await.unwrap();
            assert_eq!(appended[0].partition, appended[1].partition);
            assert_eq!(appended[1].offset, appended[0].offset + 1);
        }
        let log = EmbeddedLog::open(dir.path(), 4).unwrap();
        log.append(vec![record("health", "S1", "c")]).await.unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
        let polled = consumer.poll(10, Duration::from_millis(10)).await.unwrap();
        let payloads: Vec<&[u8]> = polled.iter().map(|p| p.record.payload.as_slice()).collect();
        assert_eq!(payloads, [b"a", b"b", b"c"]);
        assert_eq!(polled.iter().map(|p| p.offset).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[tokio::test]
    async fn a_consumer_starts_where_its_positions_say() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        log.append(vec![record("t", "k", "0"), record("t", "k", "1"), record("t", "k", "2")]).await.unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| Some(2))).unwrap();
        let polled = consumer.poll(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(polled.len(), 1);
        assert_eq!(polled[0].record.payload, b"2");
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
        let writer = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer.append(vec![record("t", "k", "x")]).await.unwrap();
        });
        let polled = consumer.poll(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(polled.len(), 1);
    }

    fn numbered(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| record(if i % 3 == 0 { "roster" } else { "health" }, &format!("S{}", i % 5), &format!("{i:0200}")))
            .collect()
    }

    /// Polls `max` at a time until nothing is left.
    async fn drain(consumer: &mut EmbeddedConsumer, max: usize) -> Vec<Polled> {
        let mut all = Vec::new();
        loop {
            let polled = consumer.poll(max, Duration::from_millis(1)).await.unwrap();
            if polled.is_empty() {
                return all;
            }
            assert!(polled.len() <= max);
            all.extend(polled);
        }
    }

    /// Every record comes back once, with the offset its append answered, in append order
    /// per partition, whatever the poll size cuts through.
    async fn assert_reads_back(log: &EmbeddedLog, written: &[(Record, Appended)]) {
        for max in [1, 7, 100, 4096] {
            let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
            let polled = drain(&mut consumer, max).await;
            assert_eq!(polled.len(), written.len(), "poll size {max}");
            let mut expected: Vec<(TopicPartition, u64, &Record)> = written
                .iter()
                .map(|(r, a)| (TopicPartition { topic: r.topic.clone(), partition: a.partition }, a.offset, r))
                .collect();
            expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            let mut got: Vec<(TopicPartition, u64, &Record)> =
                polled.iter().map(|p| (p.at.clone(), p.offset, &p.record)).collect();
            got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            assert_eq!(got, expected, "poll size {max}");
        }
    }

    #[tokio::test]
    async fn many_records_span_segments_and_read_back_from_any_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = Vec::new();
        {
            let log = EmbeddedLog::open(dir.path(), 3).unwrap();
            for chunk in numbered(2_000).chunks(600) {
                let appended = log.append(chunk.to_vec()).await.unwrap();
                written.extend(chunk.iter().cloned().zip(appended));
            }
            assert_reads_back(&log, &written).await;
        }
        // Reopened: the ends are where they were, and appends continue from there.
        let log = EmbeddedLog::open(dir.path(), 3).unwrap();
        let more = numbered(50);
        let appended = log.append(more.clone()).await.unwrap();
        written.extend(more.into_iter().zip(appended));
        assert_reads_back(&log, &written).await;
        let total: u64 = log.end_offsets().unwrap().iter().map(|(_, n)| n).sum();
        assert_eq!(total, 2_050);
        // A consumer told to start in the middle of a segment starts exactly there.
        let tp = TopicPartition { topic: "health".into(), partition: written[1].1.partition };
        let mut consumer = log.subscribe("g", Arc::new(|_| Some(37))).unwrap();
        let polled = drain(&mut consumer, 10).await;
        let first = polled.iter().filter(|p| p.at == tp).map(|p| p.offset).min();
        assert_eq!(first, Some(37));
    }

    #[tokio::test]
    async fn shares_split_the_partitions_and_together_read_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 5).unwrap();
        let written = log.append(numbered(500)).await.unwrap();
        let mut seen = Vec::new();
        for index in 0..2 {
            let share = log.share(index, 2);
            let ends = share.end_offsets().unwrap();
            assert!(!ends.is_empty() && ends.iter().all(|(tp, _)| tp.partition % 2 == index), "{ends:?}");
            let mut consumer = share.subscribe("g", Arc::new(|_| None)).unwrap();
            let polled = drain(&mut consumer, 64).await;
            assert!(polled.iter().all(|p| p.at.partition % 2 == index));
            seen.extend(polled.into_iter().map(|p| (p.at.partition, p.offset)));
        }
        seen.sort_unstable();
        let mut expected: Vec<(u32, u64)> = written.iter().map(|a| (a.partition, a.offset)).collect();
        expected.sort_unstable();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn a_log_of_the_first_format_is_rewritten_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let records = numbered(300);
        let mut written = Vec::new();
        {
            // One entry per record, keyed by offset, as the log used to be written.
            let db = store::Store::open(dir.path()).unwrap();
            db.default_tree().insert("meta/partitions", &2u32.to_be_bytes()).unwrap();
            let mut next: HashMap<TopicPartition, u64> = HashMap::new();
            for record in &records {
                let tp = TopicPartition { topic: record.topic.clone(), partition: partition_for(&record.key, 2) };
                let offset = next.entry(tp.clone()).or_insert(0);
                let tree = db.open_tree(format!("log/{}/{}", tp.topic, tp.partition)).unwrap();
                tree.insert(offset.to_be_bytes(), postcard::to_stdvec(record).unwrap()).unwrap();
                written.push((record.clone(), Appended { partition: tp.partition, offset: *offset }));
                *offset += 1;
            }
            db.flush().unwrap();
        }
        assert_rewritten_from_sled(dir.path(), 2, written).await;
    }

    /// The log opened in `dir` reads back what sled held, sled's files are gone, and
    /// appends continue after it, also once reopened.
    async fn assert_rewritten_from_sled(dir: &Path, partitions: u32, mut written: Vec<(Record, Appended)>) {
        let log = EmbeddedLog::open(dir, partitions).unwrap();
        for gone in ["db", "conf", "blobs"] {
            assert!(!dir.join(gone).exists(), "{gone} is left");
        }
        assert_reads_back(&log, &written).await;
        let more = numbered(10);
        let appended = log.append(more.clone()).await.unwrap();
        written.extend(more.into_iter().zip(appended));
        assert_reads_back(&log, &written).await;
        drop(log);
        assert_reads_back(&EmbeddedLog::open(dir, partitions).unwrap(), &written).await;
    }

    #[tokio::test]
    async fn a_log_of_sled_segments_is_rewritten_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = Vec::new();
        {
            // Runs of up to 7 records per entry, keyed by the offset of their first, as the
            // log was kept in sled until the thirteenth session.
            let db = store::Store::open(dir.path()).unwrap();
            db.default_tree().insert("meta/partitions", &3u32.to_be_bytes()).unwrap();
            let mut runs: HashMap<TopicPartition, (u64, segment::Builder)> = HashMap::new();
            let mut next: HashMap<TopicPartition, u64> = HashMap::new();
            let store = |tp: &TopicPartition, first: u64, run: segment::Builder| {
                let tree = db.open_tree(format!("seg/{}/{}", tp.topic, tp.partition)).unwrap();
                tree.insert(first.to_be_bytes(), run.finish()).unwrap();
            };
            for record in numbered(500) {
                let tp = TopicPartition { topic: record.topic.clone(), partition: partition_for(&record.key, 3) };
                let offset = next.entry(tp.clone()).or_insert(0);
                let (first, run) = runs.entry(tp.clone()).or_insert_with(|| (*offset, segment::Builder::default()));
                run.push(&record);
                if run.len() == 7 {
                    let (first, run) = runs.remove(&tp).unwrap();
                    store(&tp, first, run);
                } else {
                    let _ = first;
                }
                written.push((record, Appended { partition: tp.partition, offset: *offset }));
                *offset += 1;
            }
            for (tp, (first, run)) in runs {
                store(&tp, first, run);
            }
            db.flush().unwrap();
        }
        assert_rewritten_from_sled(dir.path(), 3, written).await;
    }

    #[tokio::test]
    async fn a_sled_log_is_not_rewritten_with_another_partition_count() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = store::Store::open(dir.path()).unwrap();
            db.default_tree().insert("meta/partitions", &4u32.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let err = EmbeddedLog::open(dir.path(), 8).unwrap_err();
        assert!(err.to_string().contains("has 4 partitions, not 8"), "{err}");
        assert!(dir.path().join("db").exists(), "the sled log is kept");
    }

    #[tokio::test]
    async fn an_append_torn_by_a_crash_is_cut_off_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = dir.path().join(CHUNKS);
        let mut written = Vec::new();
        {
            let log = EmbeddedLog::open(dir.path(), 3).unwrap();
            for _ in 0..2 {
                let records = numbered(300);
                written.extend(records.clone().into_iter().zip(log.append(records).await.unwrap()));
            }
        }
        // The second append reached the disk only in part: its last chunk lacks its end.
        let full = std::fs::metadata(&chunks).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&chunks).unwrap().set_len(full - 5).unwrap();
        let log = EmbeddedLog::open(dir.path(), 3).unwrap();
        let cut_at = std::fs::metadata(&chunks).unwrap().len();
        let kept = std::fs::read(dir.path().join(format!("{CHUNKS}.cut-at-{cut_at}"))).unwrap();
        assert_eq!(kept.len() as u64, full - 5 - cut_at, "the bytes cut off are kept beside");
        let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
        let polled = drain(&mut consumer, 64).await;
        // Everything before the torn chunk reads back as written, at its offsets.
        let at = |tp: &TopicPartition, offset| {
            written.iter().find(|(r, a)| r.topic == tp.topic && a.partition == tp.partition && a.offset == offset)
        };
        for p in &polled {
            assert_eq!(at(&p.at, p.offset).map(|(r, _)| r), Some(&p.record));
        }
        assert!(written[..300].iter().all(|(r, a)| {
            polled.iter().any(|p| p.at.topic == r.topic && p.at.partition == a.partition && p.offset == a.offset)
        }));
        let torn = 600 - polled.len();
        assert!(torn > 0 && torn < 300, "{torn} records cut off");
        // Appends continue from the ends, and the log reopened agrees.
        let more = numbered(30);
        let appended = log.append(more.clone()).await.unwrap();
        let mut kept: Vec<(Record, Appended)> = polled
            .iter()
            .map(|p| (p.record.clone(), Appended { partition: p.at.partition, offset: p.offset }))
            .collect();
        kept.extend(more.into_iter().zip(appended));
        drop(consumer);
        drop(log);
        assert_reads_back(&EmbeddedLog::open(dir.path(), 3).unwrap(), &kept).await;
    }

    #[tokio::test]
    async fn a_chunk_changed_on_disk_is_reported_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        log.append(vec![record("health", "S1", "fever"), record("health", "S1", "normal")]).await.unwrap();
        let chunks = dir.path().join(CHUNKS);
        let mut bytes = std::fs::read(&chunks).unwrap();
        let at = bytes.windows(5).position(|w| w == b"fever").unwrap();
        bytes[at] = b'F';
        std::fs::write(&chunks, &bytes).unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
        let err = consumer.poll(10, Duration::from_millis(10)).await.unwrap_err();
        assert!(err.to_string().contains("health/0") && err.to_string().contains("checksum"), "{err}");
        // The failed poll moved nothing: once the byte is back, both records come.
        bytes[at] = b'f';
        std::fs::write(&chunks, &bytes).unwrap();
        let polled = consumer.poll(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(polled.iter().map(|p| p.record.payload.as_slice()).collect::<Vec<_>>(), [&b"fever"[..], b"normal"]);
    }

    #[tokio::test]
    async fn a_second_handle_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        let err = EmbeddedLog::open(dir.path(), 2).unwrap_err();
        assert!(err.to_string().contains("open in another process"), "{err}");
        drop(log);
        EmbeddedLog::open(dir.path(), 2).unwrap();
    }

    #[tokio::test]
    async fn a_topic_too_long_for_the_file_is_refused_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        let long = "t".repeat(MAX_TOPIC_BYTES + 1);
        let err = log.append(vec![record("health", "S1", "a"), record(&long, "S1", "b")]).await.unwrap_err();
        assert!(err.to_string().contains("longer than 255 bytes"), "{err}");
        assert!(log.end_offsets().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_backlog_is_read_one_partition_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        log.append((0..5).map(|i| record("health", "S1", &i.to_string())).collect()).await.unwrap();
        log.append((0..5).map(|i| record("roster", "S1", &i.to_string())).collect()).await.unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
        let mut topics = Vec::new();
        for _ in 0..4 {
            let polled = consumer.poll(2, Duration::from_millis(10)).await.unwrap();
            topics.push(polled[0].at.topic.clone());
        }
        // The third poll takes health's last record, then roster's first.
        assert_eq!(topics, ["health", "health", "health", "roster"]);
    }

    #[tokio::test]
    async fn a_poll_dropped_before_it_answers_loses_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 4).unwrap();
        let written = log.append(numbered(500)).await.unwrap();
        let mut consumer = log.subscribe("g", Arc::new(|_| None)).unwrap();
        // Given up at once, as the aggregator does when it stops: the read goes on on its
        // blocking thread, and what it read must not count as delivered.
        let mut offsets: Vec<(u32, u64)> = Vec::new();
        let mut dropped = 0;
        for _ in 0..3 {
            tokio::select! {
                biased;
                answered = consumer.poll(100, Duration::ZERO) => {
                    offsets.extend(answered.unwrap().iter().map(|p| (p.at.partition, p.offset)));
                }
                () = std::future::ready(()) => dropped += 1,
            }
        }
        assert!(dropped > 0, "a poll answers only after its blocking read, so one was dropped");
        // Let the reads given up on finish meanwhile.
        tokio::time::sleep(Duration::from_millis(50)).await;
        offsets.extend(drain(&mut consumer, 100).await.iter().map(|p| (p.at.partition, p.offset)));
        offsets.sort();
        let mut expected: Vec<(u32, u64)> = written.iter().map(|a| (a.partition, a.offset)).collect();
        expected.sort();
        assert_eq!(offsets, expected, "every record once");
    }

    #[tokio::test]
    async fn a_partition_in_both_sled_formats_is_rewritten_from_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Record> = (0..20).map(|i| record("health", "S1", &i.to_string())).collect();
        let written: Vec<(Record, Appended)> = records
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (r, Appended { partition: 0, offset: i as u64 }))
            .collect();
        {
            // A rewrite of the first format into segments cut short: all of `log/`, part of `seg/`.
            let db = store::Store::open(dir.path()).unwrap();
            db.default_tree().insert("meta/partitions", &1u32.to_be_bytes()).unwrap();
            let legacy = db.open_tree("log/health/0").unwrap();
            for (i, r) in records.iter().enumerate() {
                legacy.insert((i as u64).to_be_bytes(), postcard::to_stdvec(r).unwrap()).unwrap();
            }
            let mut run = segment::Builder::default();
            records[..7].iter().for_each(|r| run.push(r));
            db.open_tree("seg/health/0").unwrap().insert(0u64.to_be_bytes(), run.finish()).unwrap();
            db.flush().unwrap();
        }
        assert_rewritten_from_sled(dir.path(), 1, written).await;
    }

    #[tokio::test]
    async fn a_sled_log_written_beside_the_file_is_refused_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedLog::open(dir.path(), 1).unwrap());
        {
            // An earlier version, run on this directory after the rewrite, kept a log in sled.
            let db = store::Store::open(dir.path()).unwrap();
            db.default_tree().insert("meta/partitions", &1u32.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let err = EmbeddedLog::open(dir.path(), 1).unwrap_err();
        assert!(err.to_string().contains("both its file and a log kept in sled"), "{err}");
        assert!(dir.path().join("db").exists());
    }

    #[tokio::test]
    async fn a_full_disk_refuses_appends_and_the_log_goes_on_once_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = dir.path().join(CHUNKS);
        let disk = DiskFaults::default();
        let log = EmbeddedLog::open_with(dir.path(), 3, disk.clone()).unwrap();
        let first = numbered(100);
        let mut written: Vec<_> = first.clone().into_iter().zip(log.append(first).await.unwrap()).collect();
        let before = std::fs::metadata(&chunks).unwrap().len();
        assert_eq!(*log.failing().borrow(), None);

        disk.set_full(true);
        let err = log.append(numbered(50)).await.unwrap_err();
        assert!(matches!(err, LogError::Unavailable(_)) && err.to_string().contains("no space left"), "{err}");
        assert!(log.failing().borrow().as_deref().is_some_and(|why| why.contains("write failed")));
        assert!(log.recover().await.is_err(), "still full");
        // Half of the refused append reached the file; it is cut before anything else.
        assert_eq!(std::fs::metadata(&chunks).unwrap().len(), before);
        assert_reads_back(&log, &written).await;

        disk.set_full(false);
        let more = numbered(30);
        written.extend(more.clone().into_iter().zip(log.append(more).await.unwrap()));
        assert_eq!(*log.failing().borrow(), None, "a good append clears the failure");
        assert_reads_back(&log, &written).await;
        drop(log);
        assert_reads_back(&EmbeddedLog::open(dir.path(), 3).unwrap(), &written).await;
    }

    #[tokio::test]
    async fn a_log_opened_on_a_full_disk_reads_and_writes_once_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let records = numbered(40);
        let mut written: Vec<_> = {
            let log = EmbeddedLog::open(dir.path(), 2).unwrap();
            records.clone().into_iter().zip(log.append(records).await.unwrap()).collect()
        };
        let disk = DiskFaults::default();
        disk.set_full(true);
        let log = EmbeddedLog::open_with(dir.path(), 2, disk.clone()).unwrap();
        assert!(log.failing().borrow().is_some(), "opened failing");
        assert_reads_back(&log, &written).await;
        assert!(matches!(log.append(numbered(5)).await, Err(LogError::Unavailable(_))));

        disk.set_full(false);
        log.recover().await.unwrap();
        assert_eq!(*log.failing().borrow(), None);
        let more = numbered(5);
        written.extend(more.clone().into_iter().zip(log.append(more).await.unwrap()));
        assert_reads_back(&log, &written).await;
    }

    #[test]
    fn reopening_with_another_partition_count_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedLog::open(dir.path(), 4).unwrap());
        let err = EmbeddedLog::open(dir.path(), 8).unwrap_err();
        assert!(err.to_string().contains("has 4 partitions, not 8"), "{err}");
    }
}
