//! What operators watch of the feeds: each day's seal (its reports by level and status,
//! when, how long it took), the items published to each office, each office's
//! subscribers and how far its Kafka topic trails its feed.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use domain::report::ReportStatus;
use domain::{Day, Level};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

#[derive(Clone, Default)]
pub struct FeedMetrics {
    /// The last day sealed: its reports by level and status.
    sealed: Family<Labels, Gauge>,
    /// The last day sealed (its midnight, UTC, Unix seconds) and its seal's length.
    last_sealed_day: Gauge,
    seal_seconds: Gauge<f64, AtomicU64>,
    items: Family<Labels, Counter>,
    subscribers: Family<Labels, Gauge>,
    forward_lag: Family<Labels, Gauge>,
}

impl std::fmt::Debug for FeedMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedMetrics").finish_non_exhaustive()
    }
}

fn office(office: &str) -> Labels {
    vec![("office".to_owned(), office.to_owned())]
}

impl FeedMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "daybook_sealed_reports",
            "Reports of the last day sealed, by level and status (on_time, late, missing, incomplete)",
            self.sealed.clone(),
        );
        registry.register(
            "daybook_last_sealed_day_timestamp_seconds",
            "The last day sealed, its midnight as Unix seconds",
            self.last_sealed_day.clone(),
        );
        registry.register(
            "daybook_last_seal_duration_seconds",
            "How long the last seal took",
            self.seal_seconds.clone(),
        );
        registry.register("daybook_feed_items", "Feed items published, by office and kind", self.items.clone());
        registry.register(
            "daybook_feed_subscribers",
            "Open Feeds.Subscribe streams, by office",
            self.subscribers.clone(),
        );
        registry.register(
            "daybook_feed_forward_lag",
            "Items of an office's feed not yet on its Kafka topic",
            self.forward_lag.clone(),
        );
    }

    /// `day` was sealed in `seconds`, its reports as `counted` (by level and status).
    pub(crate) fn sealed(&self, day: Day, seconds: f64, counted: &BTreeMap<(Level, ReportStatus), i64>) {
        self.sealed.clear();
        for ((level, status), n) in counted {
            let labels = vec![
                ("level".to_owned(), level.as_str().to_owned()),
                ("status".to_owned(), status.as_str().to_owned()),
            ];
            self.sealed.get_or_create(&labels).set(*n);
        }
        self.last_sealed_day.set(day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp()));
        self.seal_seconds.set(seconds);
    }

    pub(crate) fn published(&self, office_id: &str, kind: &'static str, n: u64) {
        let mut labels = office(office_id);
        labels.push(("kind".to_owned(), kind.to_owned()));
        self.items.get_or_create(&labels).inc_by(n);
    }

    /// One more subscriber of `office` until the guard is dropped.
    pub(crate) fn subscribed(&self, office_id: &str) -> Subscribed {
        let gauge = self.subscribers.get_or_create(&office(office_id)).clone();
        gauge.inc();
        Subscribed(gauge)
    }

    pub(crate) fn forward_lag(&self, office_id: &str, lag: u64) {
        self.forward_lag.get_or_create(&office(office_id)).set(i64::try_from(lag).unwrap_or(i64::MAX));
    }
}

/// A subscription counted in [`FeedMetrics`] while it lives.
pub(crate) struct Subscribed(Gauge);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.dec();
    }
}
