//! Logs of the formats kept in sled, rewritten into the log file when opened.
//!
//! - `seg/<topic>/<partition>` trees: one entry per run of records, keyed by the
//!   big-endian offset of its first record, the run encoded as a chunk's body is;
//! - `log/<topic>/<partition>` trees (the first format): one postcard record per entry,
//!   keyed by its offset.
//!
//! The rewrite goes to a file of its own, synced, then renamed into place after a marker
//! saying the rewrite is done; sled's files are removed after that, then the marker. A
//! crash before the rename leaves the sled log as it was, to be rewritten again at the next
//! open; one after it leaves the marker, and the next open removes sled's files. sled's
//! files beside a log file without the marker were written by an earlier version after the
//! rewrite (a downgrade): the log is not opened, rather than lose them.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::chunk::{self, segment};
use super::{CHUNKS, corrupt, sync_dir, write_partitions};
use crate::{LogError, Record, TopicPartition};

/// Written once a rewrite is done, removed once sled's files are.
const REWRITTEN: &str = "sled.rewritten";

/// sled 0.34's files in its directory: `conf`, `db`, `blobs/` and `snap.*` snapshots.
fn is_sled_file(name: &str) -> bool {
    matches!(name, "conf" | "db" | "blobs") || name.starts_with("snap.")
}

/// Whether `dir` holds a log kept in sled.
pub(super) fn sled_log_in(dir: &Path) -> bool {
    dir.join("db").is_file()
}

/// Rewrites the sled log in `dir` into the log file, after checking its partition count.
pub(super) fn from_sled(dir: &Path, partitions: u32) -> Result<(), LogError> {
    let db = store::Store::open(dir)?;
    let stored =
        db.default_tree().get("meta/partitions")?.map(|v| u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])));
    if let Some(n) = stored.filter(|n| *n != partitions) {
        return Err(LogError::Config(format!("log at {} has {n} partitions, not {partitions}", dir.display())));
    }
    let rewriting = dir.join(format!("{CHUNKS}.rewriting"));
    let mut out = std::io::BufWriter::new(File::create(&rewriting)?);
    let names: Vec<String> =
        db.tree_names().iter().filter_map(|n| std::str::from_utf8(n).ok().map(str::to_owned)).collect();
    for name in &names {
        if let Some(tp) = tree_partition(name, "seg/") {
            // A partition in both formats is one whose rewrite into segments was cut short:
            // the records are whole in the first format.
            if names.iter().any(|n| tree_partition(n, "log/").as_ref() == Some(&tp)) {
                continue;
            }
            let mut frame = Vec::new();
            for item in db.open_tree(name)?.iter() {
                let (key, run) = item?;
                frame.clear();
                chunk::put(&mut frame, &tp, offset_of(&key, &tp)?, &run);
                out.write_all(&frame)?;
            }
        } else if let Some(tp) = tree_partition(name, "log/") {
            rewrite_records(&db.open_tree(name)?, &tp, &mut out)?;
        }
    }
    let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    file.sync_all()?;
    drop(file);
    write_partitions(dir, partitions)?;
    File::create(dir.join(REWRITTEN))?.sync_all()?;
    sync_dir(dir)?;
    std::fs::rename(&rewriting, dir.join(CHUNKS))?;
    sync_dir(dir)?;
    drop(db);
    finish(dir)
}

/// After a rewrite (or one cut short after its rename), removes sled's files and then the
/// marker; refuses sled's files written beside the log file by an earlier version.
pub(super) fn finish(dir: &Path) -> Result<(), LogError> {
    let marker = dir.join(REWRITTEN);
    if marker.exists() {
        remove_sled_files(dir)?;
        std::fs::remove_file(&marker)?;
        return sync_dir(dir);
    }
    if dir.join(CHUNKS).exists() && sled_log_in(dir) {
        return Err(LogError::Config(format!(
            "the log at {} has both its file and a log kept in sled, written since by an earlier version of daybook; \
             move one of them away",
            dir.display()
        )));
    }
    Ok(())
}

/// Removes what sled left in `dir`.
fn remove_sled_files(dir: &Path) -> Result<(), LogError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_name().to_str().is_some_and(is_sled_file) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The first format's records, one per entry, as runs of consecutive offsets.
fn rewrite_records(tree: &store::Tree, tp: &TopicPartition, out: &mut impl Write) -> Result<(), LogError> {
    let mut frame = Vec::new();
    let mut flush = |first: u64, builder: segment::Builder| -> Result<(), LogError> {
        frame.clear();
        chunk::put(&mut frame, tp, first, &builder.finish());
        Ok(out.write_all(&frame)?)
    };
    let mut open: Option<(u64, segment::Builder)> = None;
    for item in tree.iter() {
        let (key, value) = item?;
        let offset = offset_of(&key, tp)?;
        let record: Record = postcard::from_bytes(&value).map_err(|e| corrupt(tp, &e.to_string()))?;
        if let Some((first, builder)) = open.take_if(|(first, b)| *first + b.len() != offset || b.full()) {
            flush(first, builder)?;
        }
        open.get_or_insert_with(|| (offset, segment::Builder::default())).1.push(&record);
    }
    match open {
        Some((first, builder)) => flush(first, builder),
        None => Ok(()),
    }
}

fn tree_partition(name: &str, prefix: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.strip_prefix(prefix)?.rsplit_once('/')?;
    Some(TopicPartition { topic: topic.to_owned(), partition: partition.parse().ok()? })
}

fn offset_of(key: &[u8], at: &TopicPartition) -> Result<u64, LogError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| corrupt(at, "offset key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}
