//! The `daybook` binary's library: configuration, the one-process server, and the
//! clients behind the `report` command. `main.rs` only parses flags and dispatches here,
//! so tests start the very same server in-process on port 0.

pub mod auth;
pub mod client;
pub mod config;
pub mod files;
pub mod grpc_metrics;
pub mod inspections;
pub mod kafka;
pub mod metrics_http;
pub mod process_metrics;
pub mod report;
pub mod server;
pub mod services;
pub mod tls;
mod unserved;

pub use config::{ServeArgs, ServeConfig};
pub use server::{Failure, Fault, Listeners, Part, Running, start, start_on, start_roles};
pub use services::{Roles, Service, Services};
