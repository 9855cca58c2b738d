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

/// The record key of a feed item: the report's unit and date (an inspection report's
/// prefixed `inspection:`), or the alert's event.
pub fn record_key(item: &pb::FeedItem) -> String {
    match &item.item {
        Some(pb::feed_item::Item::Report(r)) => format!("{}@{}", r.unit, r.date),
        Some(pb::feed_item::Item::Alert(a)) => format!("alert:{}/{}", a.school, a.event_id),
        Some(pb::feed_item::Item::InspectionReport(r)) => format!("inspection:{}@{}", r.unit, r.date),
        None => format!("item:{}", item.cursor),
    }
}

/// How feed items are written to the offices' topics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValueFormat {
    /// The protobuf `FeedItem`, as the feed holds it.
    #[default]
    Protobuf,
    /// The item as JSON (`wire::json::feed_item_to_json`), for consumers without protobuf.
    Json,
}

impl std::str::FromStr for ValueFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "protobuf" => Ok(Self::Protobuf),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is neither `protobuf` nor `json`")),
        }
    }
}

impl ValueFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Protobuf => "protobuf",
            Self::Json => "json",
        }
    }
}

/// Copies feeds to `connect(offices)`'s topics, values in `format`, until `shutdown`. `connect` gives a log
/// carrying the topics of the offices named; it is called again when an office appears.
pub async fn run<L, F, Fut>(
    store: FeedStore,
    connect: F,
    format: ValueFormat,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FeedError>
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
        if let Some((carried, log)) = &log {
            // An office whose topic the connection does not carry yet (it appeared while
            // the broker could not create the topic) waits for the next connection.
            for office in offices.iter().filter(|o| carried.contains(*o)) {
                match forward_some(&store, log, office, format).await {
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
async fn forward_some<L: EventLog>(
    store: &FeedStore,
    log: &L,
    office: &str,
    format: ValueFormat,
) -> Result<bool, FeedError> {
    const MAX: usize = 2048;
    let from = store.forwarded(office)?;
    let behind = store.last_cursor(office)?.saturating_sub(from);
    store.metrics().forward_lag(office, behind);
    let items = store.items_after(office, from, MAX)?;
    let Some((last, _)) = items.last() else { return Ok(false) };
    let last = *last;
    let full = items.len() == MAX;
    let records = items
        .into_iter()
        .map(|(cursor, bytes)| {
            let item = pb::FeedItem::decode(bytes.as_slice()).ok();
            let key = item.as_ref().map_or_else(|| format!("item:{cursor}"), record_key);
            // An item that does not decode (never written so) goes as it is, and says so.
            let (payload, written) = match (format, item) {
                (ValueFormat::Json, Some(item)) => {
                    (wire::json::feed_item_to_json(&item).to_string().into_bytes(), ValueFormat::Json)
                }
                _ => (bytes, ValueFormat::Protobuf),
            };
            Record {
                topic: topic(office),
                key,
                headers: vec![
                    ("daybook-feed-cursor".to_owned(), cursor.to_string()),
                    ("daybook-value-format".to_owned(), written.as_str().to_owned()),
                ],
                payload,
            }
        })
        .collect();
    log.append(records).await?;
    store.set_forwarded(office, last)?;
    store.metrics().forward_lag(office, behind.saturating_sub(last - from));
    Ok(full)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use eventlog::{Appended, EmbeddedLog, PositionLookup, TopicPartition};

    use super::*;

    /// An embedded log that, like a Kafka connection, carries only the topics it was
    /// connected with.
    #[derive(Clone)]
    struct Carrying {
        topics: BTreeSet<String>,
        log: EmbeddedLog,
    }

    impl EventLog for Carrying {
        type Consumer = <EmbeddedLog as EventLog>::Consumer;

        async fn append(&self, records: Vec<Record>) -> Result<Vec<Appended>, LogError> {
            if let Some(r) = records.iter().find(|r| !self.topics.contains(&r.topic)) {
                return Err(LogError::Config(format!("kafka log does not carry topic {:?}", r.topic)));
            }
            self.log.append(records).await
        }

        fn subscribe(&self, group: &str, positions: PositionLookup) -> Result<Self::Consumer, LogError> {
            self.log.subscribe(group, positions)
        }

        fn read_all(&self, positions: PositionLookup) -> Result<Self::Consumer, LogError> {
            self.log.read_all(positions)
        }

        fn end_offsets(&self) -> Result<Vec<(TopicPartition, u64)>, LogError> {
            self.log.end_offsets()
        }
    }

    fn alert(cursor: u64) -> pb::FeedItem {
        let alert = pb::Alert { school: "S1".into(), event_id: format!("e{cursor}"), ..Default::default() };
        pb::FeedItem { cursor, office: String::new(), item: Some(pb::feed_item::Item::Alert(alert)) }
    }

    #[tokio::test]
    async fn a_new_office_whose_topic_cannot_be_created_yet_does_not_stop_the_feeds() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::Store::temporary().unwrap();
        let store = FeedStore::open(&db).unwrap();
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        store.put_item("province", 1, &alert(1)).unwrap();
        // Creating the topics fails twice once the new office is there: a broker hiccup.
        let failures = Arc::new(AtomicUsize::new(0));
        let (connecting_log, counted) = (log.clone(), failures.clone());
        let connect = move |offices: BTreeSet<String>| {
            let (log, failures) = (connecting_log.clone(), counted.clone());
            async move {
                if offices.contains("cdc-Maoming") && failures.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(LogError::Unavailable("creating feed topics timed out".into()));
                }
                Ok(Carrying { topics: offices.iter().map(|o| topic(o)).collect(), log })
            }
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let forwarding = tokio::spawn(run(store.clone(), connect, ValueFormat::Protobuf, async {
            let _ = stopped.await;
        }));
        let forwarded = |office: &str, cursor: u64| {
            let store = store.clone();
            let office = office.to_owned();
            async move {
                for _ in 0..100 {
                    if store.forwarded(&office).unwrap() == cursor {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("{office} never forwarded to {cursor}");
            }
        };
        forwarded("province", 1).await;
        store.put_item("cdc-Maoming", 1, &alert(1)).unwrap();
        store.put_item("province", 2, &alert(2)).unwrap();
        forwarded("province", 2).await;
        forwarded("cdc-Maoming", 1).await;
        assert!(failures.load(Ordering::SeqCst) >= 3, "the topic was created on the third try");
        stop.send(()).unwrap();
        forwarding.await.unwrap().expect("the feeds never stopped");
    }

    #[test]
    fn topic_names_are_what_kafka_allows() {
        assert_eq!(topic("cdc-Wuhan"), "feed.cdc-Wuhan");
        assert_eq!(topic("cdc-武汉"), "feed.cdc-e6ada6e6b189");
    }
}
