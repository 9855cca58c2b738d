//! daybook's domain model, free of I/O, protobuf and runtimes.
//!
//! - [`event`]: what happened, as the intake validated it.
//! - [`unit`]: the units of the five-level network (school, department, grade, class,
//!   dorm) and those above it (city, province).
//! - [`tally`]: the measures a daily report counts, as a vector that adds and subtracts.
//! - [`person`]: one person's state and day, and how an event changes them.
//! - [`timeline`]: a person's days; applying an event yields the contribution changes the
//!   unit reports must take.
//! - [`delta`]: how those changes move the tallies of the units a person counts in.
//! - [`roommates`]: centralized-observation roommates share abnormal signs.
//! - [`report`]: a unit's daily report read off a tally.
//! - [`close`]: the day's close: seal, sent or missing, versions of a report.
//! - [`access`]: what a caller may post and read.
//! - [`alert`]: the immediate reports an event raises.
//! - [`inspection`]: a service hall's history, and its inspection report, findings and
//!   alerts of a day.
//! - [`city`]: the province's cities, the reference list events name cities from.
//!
//! The central invariant: a unit's report for a day is the sum, over the persons placed in
//! that unit at the end of that day, of each person's contribution for that day. Folds
//! keep that sum exact by subtracting a person's old contribution and adding the new one.

pub mod access;
pub mod alert;
pub mod city;
pub mod close;
pub mod delta;
pub mod event;
pub mod inspection;
pub mod person;
pub mod report;
pub mod roommates;
pub mod tally;
pub mod timeline;
pub mod unit;

pub use event::{Envelope, Fact, Payload};
pub use person::Rules;
pub use report::DailyReport;
pub use tally::{Measure, Tally};
pub use unit::{Level, UnitKey};

/// A calendar day in the province's time zone.
pub type Day = chrono::NaiveDate;
