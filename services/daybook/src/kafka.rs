//! daybook over Kafka: the event topics and the changelog topic, and how far behind the
//! reports are when the folding is spread over a consumer group.

use std::collections::BTreeMap;

use aggregator::Projections;
use anyhow::Context;
use eventlog::{EventLog, KafkaConfig, KafkaLog};
use reports::grpc::{PartitionLag, StatusSource};

/// How long a starting instance waits for a cluster that does not answer (a broker being
/// restarted with it) before it gives up and exits.
const START_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// Connects to the event topics and to the changelog of aggregator group `group`,
/// creating what is missing; waits for a cluster that is not ready.
pub async fn connect(events: KafkaConfig, group: &str) -> anyhow::Result<(KafkaLog, KafkaLog)> {
    let mut changelog = events.clone();
    changelog.topic_prefix = changelog_prefix(&events.topic_prefix, group);
    changelog.topics = vec![aggregator::changelog::TOPIC.to_owned()];
    // Keyed by unit record, newest version wins: compaction keeps the topic the size of
    // the projections, not of their history.
    changelog.topic_config = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
    tokio::task::spawn_blocking(move || {
        let brokers = events.brokers.clone();
        let events = KafkaLog::connect_patiently(events, START_PATIENCE)
            .with_context(|| format!("connecting to kafka at {brokers}"))?;
        let changelog =
            KafkaLog::connect_patiently(changelog, START_PATIENCE).context("connecting to the changelog topic")?;
        Ok((events, changelog))
    })
    .await?
}

/// The prefix of `group`'s changelog topic, under the events' prefix: each group folds on
/// its own and publishes its own changelog.
pub fn changelog_prefix(events_prefix: &str, group: &str) -> String {
    format!("{events_prefix}{group}.")
}

/// Lag of the reports an aggregator serves: event records the group has not folded and
/// published yet (the group commits only after publishing), and changelog records this
/// instance's view has not applied yet.
pub fn status(events: KafkaLog, changelog: KafkaLog, view: Projections, group: String) -> StatusSource {
    std::sync::Arc::new(move || {
        let committed = events.committed(&group).map_err(|e| e.to_string())?;
        let mut out: Vec<PartitionLag> = events
            .end_offsets()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(at, end)| PartitionLag { position: committed.get(&at).copied().unwrap_or(0), at, end })
            .collect();
        let applied = view.positions().map_err(|e| e.to_string())?;
        for (at, end) in changelog.end_offsets().map_err(|e| e.to_string())? {
            out.push(PartitionLag { position: applied.get(&at).copied().unwrap_or(0), at, end });
        }
        Ok(out)
    })
}
