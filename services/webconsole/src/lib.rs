//! The operators' console: what the people on duty at the province and in each city
//! watch in a browser, served on daybook's HTTP port beside `/metrics`.
//!
//! - [`Console::api`]: the JSON API under `/api/v1/` (README, "The console"): a unit's
//!   report, its children, its series, the missing and late schools of a day, the key
//!   persons and observation list, the alerts of the feeds since a cursor; and
//!   `/api/v1/live`, server-sent events telling the page that the unit on screen changed.
//!   It reads through the same read model and the same checks as the gRPC Reports service
//!   (`reports::grpc`: unit syntax, dates, scope, errors), so the answers and refusals
//!   are the same; a gRPC status becomes an HTTP one in one place ([`error`]).
//! - [`Console::pages`]: the page at `/`, plain HTML, CSS and JavaScript compiled into the
//!   binary (`src/page/`): no build step, nothing fetched from elsewhere.
//!
//! The API expects the caller's [`Access`] in the request's extensions, left there by the
//! server's gate (`daybook::auth::Gate`); a request without one is refused, never served.
//! Sled reads block: every query runs on a blocking thread.

mod api;
mod live;
mod page;
mod query;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use domain::Day;
use domain::access::{AuditLog, NoAudit};
use feeds::{FeedStore, Offices};
use reports::ReadModel;
use reports::grpc::Today;
use tokio::sync::watch;
use tonic::{Code, Status};

pub use query::Query;

/// The console over a read model; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    model: ReadModel,
    /// `None` where this instance publishes no feeds: no alerts to show.
    feeds: Option<(FeedStore, Offices)>,
    /// Today as the gRPC Reports service reads it: later dates are refused.
    today: Today,
    /// The province's date by the clock that seals the days: the page's default day.
    province_day: Today,
    horizon_days: u32,
    audit: Arc<dyn AuditLog>,
    stopping: watch::Receiver<bool>,
    heartbeat: Duration,
    /// The live streams' last look at each unit and day, shared ([`live`]).
    looks: Looks,
}

type Looks = Arc<std::sync::Mutex<std::collections::HashMap<(domain::UnitKey, Day), (live::Generation, u64)>>>;

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

impl Console {
    /// A console on `model`, refusing dates after `today` as the Reports service does.
    pub fn new(model: ReadModel, today: Today) -> Self {
        Self {
            inner: Arc::new(Inner {
                model,
                feeds: None,
                province_day: today.clone(),
                today,
                horizon_days: 7,
                audit: Arc::new(NoAudit),
                stopping: watch::channel(false).1,
                heartbeat: Duration::from_secs(15),
                looks: Looks::default(),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        change(Arc::get_mut(&mut self.inner).expect("configured before it is shared"));
        self
    }

    /// Alerts from the offices' feeds in `store` (`offices` says which feed a token reads).
    pub fn with_feeds(self, store: FeedStore, offices: Offices) -> Self {
        self.with(|i| i.feeds = Some((store, offices)))
    }

    /// The page's default day: the province's date by the clock that seals the days.
    pub fn with_province_day(self, day: Today) -> Self {
        self.with(|i| i.province_day = day)
    }

    /// Key-person lists as of a day at most `days` before today (`horizon-days`).
    pub fn with_horizon(self, days: u32) -> Self {
        self.with(|i| i.horizon_days = days)
    }

    /// Notes person-level reads in `audit`.
    pub fn with_audit(self, audit: Arc<dyn AuditLog>) -> Self {
        self.with(|i| i.audit = audit)
    }

    /// Ends every live stream when `stopping` turns true, so a graceful shutdown does not
    /// wait for browsers to hang up.
    pub fn with_stopping(self, stopping: watch::Receiver<bool>) -> Self {
        self.with(|i| i.stopping = stopping)
    }

    /// How often a live stream with nothing to say writes a comment: shorter than the
    /// server's idle timeout, which would otherwise cut it.
    pub fn with_heartbeat(self, every: Duration) -> Self {
        self.with(|i| i.heartbeat = every)
    }

    /// `/api/v1/…`: to be mounted behind a layer that puts the caller's `Access` in the
    /// request's extensions.
    pub fn api(&self) -> Router {
        api::routes(self.clone())
    }

    /// The page at `/` and its assets: public, it holds no data (it asks for a token).
    pub fn pages(&self) -> Router {
        page::routes()
    }

    fn today(&self) -> Day {
        (self.inner.today)()
    }

    fn province_day(&self) -> Day {
        (self.inner.province_day)()
    }
}

/// A gRPC status as the API answers it: the HTTP status its code maps to and
/// `{"error": {"code": "not_found", "message": "unit: …"}}`, the message as gRPC gives it.
pub fn error(status: &Status) -> Response {
    let (http, code) = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "invalid_argument"),
        Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Code::FailedPrecondition => (StatusCode::CONFLICT, "failed_precondition"),
        Code::DataLoss => (StatusCode::INTERNAL_SERVER_ERROR, "data_loss"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let body = serde_json::json!({ "error": { "code": code, "message": status.message() } });
    json_response(http, &body)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(CONTENT_TYPE, "application/json; charset=utf-8"), (CACHE_CONTROL, "no-store")], bytes).into_response()
}
