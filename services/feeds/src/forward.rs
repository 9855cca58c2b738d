//! Copies each office's feed to a Kafka topic of its own, `feed.<office>`: keyed by unit
//! and date for reports (compaction keeps the newest version) and by event for alerts,
//! so a plain Kafka client reads what the gRPC subscription gives.
//!
//! At least once: a crash between the append and the stored position sends some items
//! again; they carry the same cursor and version, and compaction keeps one of each.

use std::collections::BTreeSet;
use std::time::Duration;

use eventlog::{EventLog, LogError, Record};
use prost::Message;
use wire::pb;

use crate::{FeedError, FeedStore};

/// The Kafka topic (short name, before the log's prefix) of an office's feed. Kafka
/// allows `[a-zA-Z0-9._-]` in names; anything else (a city named in Chinese) is spelled
/// in hex.
pub fn topic(office: &str) -> String {
    let mut out = String::from("feed.");
    for c in office.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("{b:02x}"));
            }
        }
    }
    out
}

/// The record key of a feed item: the report's unit and date, or the alert's event.
pub fn record_key(item: &pb::FeedItem) -> String {
    match &item.item {
        Some(pb::feed_item::Item::Report(r)) => format!("{}@{}", r.unit, r.date),
        Some(pb::feed_item::Item::Alert(a)) => format!("alert:{}/{}", a.school, a.event_id),
        None => format!("item:{}", item.cursor),
    }
}

/// Copies feeds to `connect(offices)`'s topics until `shutdown`. `connect` gives a log
/// carrying the topics of the offices named; it is called again when an office appears.
pub async fn run<L, F, Fut>(store: FeedStore, connect: F, shutdown: impl Future<Output = ()>) -> Result<(), FeedError>
where
    L: EventLog,
    F: Fn(BTreeSet<String>) -> Fut,
    Fut: Future<Output = Result<L, LogError>>,
{
    tokio::pin!(shutdown);
    let mut changed = store.subscribe();
    let mut log: Option<(BTreeSet<String>, L)> = None;
    loop {
        let offices = store.offices_with_items()?;
        if !offices.is_empty() && log.as_ref().is_none_or(|(known, _)| *known != offices) {
            match connect(offices.clone()).await {
                Ok(connected) => log = Some((offices.clone(), connected)),
                Err(e) => tracing::warn!(error = %e, "feed topics unavailable; retrying"),
            }
        }
        let mut more = false;
        if let Some((_, log)) = &log {
            for office in &offices {
                match forward_some(&store, log, office).await {
                    Ok(full) => more |= full,
                    Err(FeedError::Log(LogError::Unavailable(reason))) => {
                        tracing::warn!(%reason, "kafka unavailable for feeds; retrying");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if more {
            continue;
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            _ = changed.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Forwards the next items of one office; returns whether more may be waiting.
async fn forward_some<L: EventLog>(store: &FeedStore, log: &L, office: &str) -> Result<bool, FeedError> {
    const MAX: usize = 2048;
    let from = store.forwarded(office)?;
    let items = store.items_after(office, from, MAX)?;
    let Some((last, _)) = items.last() else { return Ok(false) };
    let last = *last;
    let full = items.len() == MAX;
    let records = items
        .into_iter()
        .map(|(cursor, bytes)| {
            let key = match pb::FeedItem::decode(bytes.as_slice()) {
                Ok(item) => record_key(&item),
                Err(_) => format!("item:{cursor}"),
            };
            Record {
                topic: topic(office),
                key,
                headers: vec![("daybook-feed-cursor".to_owned(), cursor.to_string())],
                payload: bytes,
            }
        })
        .collect();
    log.append(records).await?;
    store.set_forwarded(office, last)?;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_what_kafka_allows() {
        assert_eq!(topic("cdc-Wuhan"), "feed.cdc-Wuhan");
        assert_eq!(topic("cdc-武汉"), "feed.cdc-e6ada6e6b189");
    }
}
