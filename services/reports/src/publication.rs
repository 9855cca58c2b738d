//! What was published of each report: the version, status and figures the publisher last
//! sent of a unit's report for a day, and the last day sealed. The publisher writes them
//! in the sled batch of the feed items they went out in, so a crash repeats a pass without
//! repeating an item; the read model judges the live reports of sealed days against them.
//!
//! | key (feeds tree)   | value                                          |
//! |--------------------|------------------------------------------------|
//! | `S`                | last sealed day, YYYY-MM-DD                    |
//! | `v` day NUL unit   | [`Remembered`]: what was last published of it  |
//! | `I` day NUL unit   | an inspection report's version and figures as published |
//! | `V` day NUL unit NUL version (u32, big-endian) | [`Revision`]: a version after the first, what it changed (the console's history of a day) |

use std::collections::HashMap;

use domain::close::Published;
use domain::inspection::{InspectionTally, InspectionUnit};
use domain::report::{FieldChange, ReportStatus, ReportingRate};
use domain::{Day, UnitKey};
use serde::{Deserialize, Serialize};

use crate::ReportError;

/// What is remembered of a published report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub published: Published,
    pub reporting: Option<ReportingRate>,
    /// What this version changed against the one before.
    pub changes: Vec<FieldChange>,
}

/// A version after the first of a report: its status and what it changed against the
/// version before. Version 1 (the seal) is not kept here: it changed nothing, and every
/// sealed report has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub version: u32,
    pub status: ReportStatus,
    pub changes: Vec<FieldChange>,
}

const SEALED_KEY: &[u8] = b"S";

fn revisions_prefix(day: Day, unit: &UnitKey) -> Vec<u8> {
    format!("V\0{}\0{unit}\0", day.format("%Y-%m-%d")).into_bytes()
}

fn published_key(day: Day, unit: &UnitKey) -> Vec<u8> {
    format!("v\0{}\0{unit}", day.format("%Y-%m-%d")).into_bytes()
}

fn inspection_key(day: Day, unit: &InspectionUnit) -> Vec<u8> {
    format!("I\0{}\0{unit}", day.format("%Y-%m-%d")).into_bytes()
}

/// The publication records of the feeds' tree (which holds the feeds themselves too).
#[derive(Clone)]
pub struct Publications {
    tree: store::Tree,
}

impl std::fmt::Debug for Publications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publications").finish_non_exhaustive()
    }
}

impl Publications {
    pub fn new(tree: store::Tree) -> Self {
        Self { tree }
    }

    /// The last day sealed; `None` before the first seal.
    pub fn sealed_through(&self) -> Result<Option<Day>, ReportError> {
        let Some(v) = self.tree.get(SEALED_KEY)? else { return Ok(None) };
        let text = String::from_utf8_lossy(&v).into_owned();
        Day::parse_from_str(&text, "%Y-%m-%d")
            .map(Some)
            .map_err(|e| ReportError::Corrupt { key: "S".into(), reason: e.to_string() })
    }

    /// What was last published of `unit`'s report for `day`.
    pub fn remembered(&self, day: Day, unit: &UnitKey) -> Result<Option<Remembered>, ReportError> {
        let key = published_key(day, unit);
        let Some(bytes) = self.tree.get(&key)? else { return Ok(None) };
        postcard::from_bytes(&bytes).map(Some).map_err(|e| ReportError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })
    }
}

impl Publications {
    /// The version last published of `unit`'s inspection report for `day`, and its figures.
    pub fn inspection_remembered(
        &self,
        day: Day,
        unit: &InspectionUnit,
    ) -> Result<Option<(u32, InspectionTally)>, ReportError> {
        let key = inspection_key(day, unit);
        let Some(bytes) = self.tree.get(&key)? else { return Ok(None) };
        postcard::from_bytes(&bytes).map(Some).map_err(|e| ReportError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })
    }

    /// The versions after the first of `unit`'s report for `day`, oldest first (none
    /// for revisions published before this history was kept).
    pub fn revisions(&self, day: Day, unit: &UnitKey) -> Result<Vec<Revision>, ReportError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(revisions_prefix(day, unit)) {
            let (key, bytes) = item?;
            out.push(postcard::from_bytes(&bytes).map_err(|e| ReportError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: e.to_string(),
            })?);
        }
        Ok(out)
    }
}

/// What a pass of the publisher has decided and not written yet: read before the stored
/// records, then written into the pass's batch with its feed items.
#[derive(Debug, Default)]
pub struct Pending {
    remembered: HashMap<(Day, UnitKey), Remembered>,
    /// Inspection reports: the version published and its figures.
    inspections: HashMap<(Day, InspectionUnit), (u32, InspectionTally)>,
    sealed: Option<Day>,
}

impl Pending {
    pub(crate) fn inspection(&self, day: Day, unit: &InspectionUnit) -> Option<&(u32, InspectionTally)> {
        self.inspections.get(&(day, unit.clone()))
    }

    pub(crate) fn insert_inspection(&mut self, day: Day, unit: InspectionUnit, version: u32, tally: InspectionTally) {
        self.inspections.insert((day, unit), (version, tally));
    }

    pub(crate) fn get(&self, day: Day, unit: &UnitKey) -> Option<&Remembered> {
        self.remembered.get(&(day, unit.clone()))
    }

    pub(crate) fn insert(&mut self, day: Day, unit: UnitKey, remembered: Remembered) {
        self.remembered.insert((day, unit), remembered);
    }

    /// Records `day` as the last one sealed.
    pub fn seal(&mut self, day: Day) {
        self.sealed = Some(day);
    }

    /// Puts what the pass remembers into `batch` (of the feeds' tree).
    pub fn write_into(&self, batch: &mut store::Batch) {
        for ((day, unit), remembered) in &self.remembered {
            batch.insert(published_key(*day, unit), postcard::to_stdvec(remembered).expect("serializes"));
            let version = remembered.published.version;
            if version > 1 {
                let revision =
                    Revision { version, status: remembered.published.status, changes: remembered.changes.clone() };
                let key = [revisions_prefix(*day, unit), version.to_be_bytes().to_vec()].concat();
                batch.insert(key, postcard::to_stdvec(&revision).expect("serializes"));
            }
        }
        for ((day, unit), published) in &self.inspections {
            batch.insert(inspection_key(*day, unit), postcard::to_stdvec(published).expect("serializes"));
        }
        if let Some(day) = self.sealed {
            batch.insert(SEALED_KEY, day.format("%Y-%m-%d").to_string().as_bytes());
        }
    }
}
