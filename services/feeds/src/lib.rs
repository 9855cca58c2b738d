//! What the province and the local disease-control offices receive.
//!
//! - [`office`]: which office receives which units (configuration, not code).
//! - [`publisher`]: seals each day's reports at the deadline (version 1, missing or sent,
//!   zero reports), turns later changes into revised versions, and puts reports and
//!   immediate alerts into each office's feed, in sled batches with its state (one per day).
//! - [`grpc`]: the `Feeds` service: a subscription from a cursor (server streaming).
//! - [`files`]: the daily report table and the observation list as CSV or XLSX.
//! - [`forward`]: copies each office's feed to a Kafka topic of its own.
//! - [`clock`]: the province's clock, which tests set by hand.
//!
//! An office's feed is a sequence numbered from 1 (the cursor). Items are written with
//! the publisher's state in one atomic batch, so a restart neither loses nor repeats one.

pub mod clock;
pub mod files;
pub mod forward;
pub mod grpc;
pub mod metrics;
pub mod office;
pub mod publisher;

pub use clock::Clock;
pub use metrics::FeedMetrics;
pub use office::{Office, Offices};
pub use publisher::{FeedStore, Publisher, Publishing};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Projections(#[from] aggregator::AggregateError),
    #[error(transparent)]
    Reports(#[from] reports::ReportError),
    #[error("feed storage failed: {0}")]
    Storage(#[from] store::Error),
    #[error("feed record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(transparent)]
    Log(#[from] eventlog::LogError),
}
