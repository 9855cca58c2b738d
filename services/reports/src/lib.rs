//! The reports as the offices read them: one read model over the projections and what
//! the feeds published, and the `Reports` gRPC service on it.
//!
//! - [`model`]: [`ReadModel`], a unit's report for a day with its publication fields
//!   (status, version, zero report, reporting rate). Cities and the province are summed
//!   from their schools here and nowhere else, their statuses counted from the schools'.
//!   The publisher seals and revises through the same judgement
//!   ([`ReadModel::publish_day`]), so Reports, the feeds, the exports and the console
//!   agree on every figure and status.
//! - [`publication`]: what was published of each report (the publisher's memory, kept in
//!   the feeds' tree), which live reports of a sealed day are judged against.
//! - [`inspection`]: the service-window inspections' reports (a second report kind, read
//!   off the halls' logs), findings and sealed-day alerts, through the same `ReadModel`.
//! - [`grpc`]: the `Reports` service: daily reports, unit listings, key persons, status.
//!
//! Below it the aggregator folds the log into the projections; above it the feeds publish
//! what it judges. Protobuf conversion stays in `wire`.

pub mod grpc;
pub mod inspection;
pub mod model;
pub mod publication;

pub use model::{ReadModel, Roster};
pub use publication::{Pending, Publications, Remembered, Revision};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Projections(#[from] aggregator::AggregateError),
    #[error("publication storage failed: {0}")]
    Storage(#[from] store::Error),
    #[error("publication record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}
