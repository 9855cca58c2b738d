//! The `daybook.v1` protobuf types, compiled from `proto/`, and the one place where they
//! turn into domain types and back. Validation happens here, on the way in: a bad field
//! becomes a [`FieldError`] that names it.

pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("daybook.v1");
}

/// For gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("daybook_descriptor");

/// Version of the event schema carried in the log's headers.
pub const SCHEMA_VERSION: &str = "1";

/// The log header carrying when intake acknowledged an event, in milliseconds since the
/// epoch: a report is on time only with events acknowledged by its deadline (issue 23).
pub const ACKED_AT_HEADER: &str = "daybook-acked-at";

/// When a record's event was acknowledged, from its headers; `None` for a record written
/// before the header was (or with a value that is not a number).
pub fn acked_at(headers: &[(String, String)]) -> Option<i64> {
    headers.iter().find(|(k, _)| k == ACKED_AT_HEADER).and_then(|(_, v)| v.parse().ok())
}

pub mod codec;
mod event;
mod inspection;
pub mod json;
mod report;

pub use event::{FieldError, MAX_CODE_BYTES, MAX_ROOMMATES, event_from_proto, hall_kind_to_proto, parse_date, quoted};
pub use inspection::{
    checklist_item_to_proto, finding_to_proto, inspection_alert_to_proto, inspection_report_to_json,
    inspection_report_to_proto,
};
pub use report::{
    alert_to_proto, fed_alert, key_person_to_proto, level_from_proto, level_to_proto, report_to_proto, status_to_proto,
};

/// The caller's access, as the server's gate left it in the request; a call that passed no
/// gate is refused, never let through.
pub fn access_of<T>(request: &tonic::Request<T>) -> Result<domain::access::Access, tonic::Status> {
    request
        .extensions()
        .get::<domain::access::Access>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("no credentials were checked for this call"))
}
