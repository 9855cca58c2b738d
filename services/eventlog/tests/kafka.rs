//! The Kafka log against a real broker (tansu). `DAYBOOK_TEST_KAFKA=host:port` points
//! the tests at a running one; otherwise each test starts its own tansu on a free port.
//! The restart test always starts its own, since it stops it. Every test uses its own
//! topic prefix and group, so tests sharing a broker do not see each other.
//!
//! tansu runs with sqlite storage: its memory storage (0.6.0) answers a fetch from the
//! middle of a batch with nothing and reports the latest offset of a partition as the
//! start of its last batch plus one, which real Kafka does not.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testbroker::{Broker, Tansu};

use eventlog::{
    Appended, DEFAULT_TOPICS, EventLog, KafkaConfig, KafkaConsumer, KafkaLog, LogConsumer, LogError, Polled, Record,
    TopicPartition, partition_for,
};

// ---------------------------------------------------------------------------------------
// The broker

fn broker() -> Broker {
    init_tracing();
    testbroker::broker()
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------
// Helpers

fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{what}-{}-{nanos:x}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn config(brokers: &str, partitions: i32) -> KafkaConfig {
    let mut config = KafkaConfig::new(brokers);
    config.topic_prefix = format!("{}.", unique("test"));
    config.partitions = partitions;
    config.session_timeout = Duration::from_secs(6);
    config
}

fn record(topic: &str, key: &str, payload: &str) -> Record {
    Record {
        topic: topic.into(),
        key: key.into(),
        headers: vec![("daybook-event-kind".into(), topic.into()), ("payload".into(), payload.into())],
        payload: payload.as_bytes().to_vec(),
    }
}

fn text(p: &Polled) -> String {
    String::from_utf8(p.record.payload.clone()).unwrap()
}

/// Polls, handing each batch to `step`, until `step` says it is done; panics after `limit`.
/// `Unavailable` is waited out, as the aggregator does.
async fn poll_until(
    consumer: &mut KafkaConsumer,
    limit: Duration,
    mut step: impl FnMut(Vec<Polled>, &KafkaConsumer) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let batch = match consumer.poll(1000, Duration::from_millis(200)).await {
            Ok(batch) => batch,
            // As the aggregator does: wait and poll again.
            Err(LogError::Unavailable(reason)) => {
                tracing::info!(%reason, "consumer waiting for the broker");
                tokio::time::sleep(Duration::from_millis(100)).await;
                Vec::new()
            }
            Err(e) => panic!("poll: {e}"),
        };
        if step(batch, consumer) {
            return;
        }
        assert!(Instant::now() < deadline, "not done within {limit:?}; assignment {:?}", consumer.assignment());
    }
}

/// The positions an aggregator would store: read only through the lookup, advanced by
/// folding, which checks that every partition is read on from exactly where it stood.
#[derive(Clone, Default)]
struct Store {
    positions: Arc<Mutex<HashMap<TopicPartition, u64>>>,
    folded: Arc<Mutex<Vec<Polled>>>,
}

impl Store {
    fn lookup(&self) -> eventlog::PositionLookup {
        let positions = self.positions.clone();
        Arc::new(move |tp| positions.lock().unwrap().get(tp).copied())
    }

    fn fold(&self, polled: Vec<Polled>) {
        let mut positions = self.positions.lock().unwrap();
        for p in polled {
            let expected = positions.get(&p.at).copied().unwrap_or(0);
            assert_eq!(p.offset, expected, "{} read at {} where the stored position is {expected}", p.at, p.offset);
            positions.insert(p.at.clone(), p.offset + 1);
            self.folded.lock().unwrap().push(p);
        }
    }

    fn count(&self) -> usize {
        self.folded.lock().unwrap().len()
    }

    fn snapshot(&self) -> Vec<(TopicPartition, u64)> {
        let mut out: Vec<_> = self.positions.lock().unwrap().iter().map(|(tp, n)| (tp.clone(), *n)).collect();
        out.sort();
        out
    }
}

fn all_partitions(partitions: u32) -> Vec<TopicPartition> {
    let mut out: Vec<_> = DEFAULT_TOPICS
        .iter()
        .flat_map(|t| (0..partitions).map(|p| TopicPartition { topic: (*t).to_owned(), partition: p }))
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// Scenarios

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_come_back_in_order_per_key_with_headers_and_end_offsets_match() {
    let broker = broker();
    let log = KafkaLog::connect(config(&broker.addr, 3)).unwrap();
    assert_eq!(log.partitions("health"), Some(3));

    let mut sent = Vec::new();
    for round in 0..6 {
        for school in ["S1", "S2", "S3", "S4", "S5", "S6", "S7"] {
            for topic in DEFAULT_TOPICS {
                sent.push(record(topic, school, &format!("{topic}/{school}/{round}")));
            }
        }
    }
    let (first, second) = sent.split_at(sent.len() / 2);
    let mut appended = log.append(first.to_vec()).await.unwrap();
    appended.extend(log.append(second.to_vec()).await.unwrap());
    assert_eq!(appended.len(), sent.len());
    assert!(log.append(Vec::new()).await.unwrap().is_empty());

    // Where each record landed: the key's partition, offsets rising in input order.
    let mut expected_end: BTreeMap<TopicPartition, u64> = all_partitions(3).into_iter().map(|tp| (tp, 0)).collect();
    let mut landed = HashMap::new();
    for (record, at) in sent.iter().zip(&appended) {
        assert_eq!(at.partition, partition_for(&record.key, 3), "{record:?}");
        let tp = TopicPartition { topic: record.topic.clone(), partition: at.partition };
        let end = expected_end.get_mut(&tp).unwrap();
        assert_eq!(at.offset, *end, "offsets of {tp} follow the input order");
        *end += 1;
        landed.insert(record.payload.clone(), *at);
    }
    assert_eq!(log.end_offsets().unwrap(), expected_end.into_iter().collect::<Vec<_>>());

    let mut consumer = log.subscribe(&unique("group"), Arc::new(|_| None)).unwrap();
    let mut polled = Vec::new();
    poll_until(&mut consumer, Duration::from_secs(60), |batch, _| {
        polled.extend(batch);
        polled.len() >= sent.len()
    })
    .await;
    assert_eq!(polled.len(), sent.len(), "nothing twice");
    for p in &polled {
        let original = sent.iter().find(|r| r.payload == p.record.payload).unwrap();
        assert_eq!(&p.record, original, "topic, key, headers and payload come back as sent");
        assert_eq!(p.at.topic, original.topic);
        let at = landed[&p.record.payload];
        assert_eq!((p.at.partition, p.offset), (at.partition, at.offset));
    }
    for school in ["S1", "S4", "S7"] {
        for topic in DEFAULT_TOPICS {
            let read: Vec<String> =
                polled.iter().filter(|p| p.record.key == school && p.at.topic == topic).map(text).collect();
            let want: Vec<String> = (0..6).map(|round| format!("{topic}/{school}/{round}")).collect();
            assert_eq!(read, want);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_starts_where_its_lookup_says_not_where_the_group_committed() {
    let broker = broker();
    let log = KafkaLog::connect(config(&broker.addr, 1)).unwrap();
    let health = TopicPartition { topic: "health".into(), partition: 0 };
    let roster = TopicPartition { topic: "roster".into(), partition: 0 };
    let mut records: Vec<Record> = (0..10).map(|i| record("health", "S1", &format!("h{i}"))).collect();
    records.extend((0..10).map(|i| record("roster", "S1", &format!("r{i}"))));
    log.append(records).await.unwrap();

    // A first member reads everything and commits health to its end, roster to 6.
    let group = unique("group");
    {
        let mut first = log.subscribe(&group, Arc::new(|_| None)).unwrap();
        let mut n = 0;
        poll_until(&mut first, Duration::from_secs(60), |b, _| {
            n += b.len();
            n >= 20
        })
        .await;
        first.commit(&[(health.clone(), 10), (roster.clone(), 6)]).unwrap();
        // Serve the commit's answer; dropping then waits for what is outstanding.
        let extra = first.poll(10, Duration::from_millis(500)).await.unwrap();
        assert!(extra.is_empty(), "{extra:?}");
    }
    let committed = log.committed(&group).unwrap();
    assert_eq!(committed, BTreeMap::from([(health.clone(), 10), (roster.clone(), 6)]));
    assert!(log.committed(&unique("nobody")).unwrap().is_empty());

    // The next member's state says health is folded up to 3 and knows nothing of roster.
    let asked = Arc::new(Mutex::new(Vec::new()));
    let lookup = {
        let (health, asked) = (health.clone(), asked.clone());
        Arc::new(move |tp: &TopicPartition| {
            asked.lock().unwrap().push(tp.clone());
            (*tp == health).then_some(3)
        })
    };
    let mut second = log.subscribe(&group, lookup).unwrap();
    let mut polled = Vec::new();
    poll_until(&mut second, Duration::from_secs(60), |b, _| {
        polled.extend(b);
        polled.len() >= 11
    })
    .await;
    // Nothing more is coming.
    polled.extend(second.poll(100, Duration::from_millis(1500)).await.unwrap());

    let read =
        |tp: &TopicPartition| polled.iter().filter(|p| p.at == *tp).map(|p| (p.offset, text(p))).collect::<Vec<_>>();
    assert_eq!(read(&health), (3..10).map(|i| (i, format!("h{i}"))).collect::<Vec<_>>(), "health from the lookup's 3");
    assert_eq!(read(&roster), (6..10).map(|i| (i, format!("r{i}"))).collect::<Vec<_>>(), "roster from the committed 6");
    let asked = asked.lock().unwrap().clone();
    for tp in all_partitions(1) {
        assert!(asked.contains(&tp), "{tp} was not looked up: {asked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_split_the_partitions_and_a_survivor_takes_over_from_the_lookup() {
    let broker = broker();
    let log = KafkaLog::connect(config(&broker.addr, 2)).unwrap();
    let schools: Vec<String> = (0..24).map(|i| format!("S{i}")).collect();
    let batch = |round: u32| -> Vec<Record> {
        schools.iter().flat_map(|s| DEFAULT_TOPICS.map(|t| record(t, s, &format!("{t}/{s}/{round}")))).collect()
    };
    let first_batch = batch(0);
    assert_eq!(
        first_batch.iter().map(|r| partition_for(&r.key, 2)).collect::<HashSet<_>>().len(),
        2,
        "the schools cover both partitions"
    );
    log.append(first_batch.clone()).await.unwrap();
    let ends = || log.end_offsets().unwrap();

    let store = Store::default();
    let group = unique("group");
    let mut one = log.subscribe(&group, store.lookup()).unwrap();
    let mut two = log.subscribe(&group, store.lookup()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        store.fold(one.poll(1000, Duration::from_millis(200)).await.unwrap());
        store.fold(two.poll(1000, Duration::from_millis(200)).await.unwrap());
        let (a, b) = (one.assignment(), two.assignment());
        let split = !a.is_empty() && !b.is_empty() && a.iter().all(|tp| !b.contains(tp)) && {
            let mut all: Vec<_> = a.iter().chain(&b).cloned().collect();
            all.sort();
            all == all_partitions(2)
        };
        if split && store.snapshot() == ends() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no split: {a:?} / {b:?}; positions {:?} / ends {:?}",
            store.snapshot(),
            ends()
        );
    }
    assert_eq!(store.count(), first_batch.len());
    let owned_by_two = two.assignment();

    // Two commits stale offsets on the way out: taking over from them would re-read.
    let stale: Vec<_> = owned_by_two.iter().map(|tp| (tp.clone(), 1)).collect();
    two.commit(&stale).unwrap();
    let _ = two.poll(10, Duration::from_millis(300)).await.unwrap();
    drop(two);

    let second_batch = batch(1);
    log.append(second_batch.clone()).await.unwrap();
    poll_until(&mut one, Duration::from_secs(90), |b, c| {
        store.fold(b);
        c.assignment() == all_partitions(2) && store.snapshot() == ends()
    })
    .await;
    // Every record once, each partition read on from its stored position (checked by
    // `fold`), the survivor's share and the taken-over share alike.
    assert_eq!(store.count(), first_batch.len() + second_batch.len());
    let folded = store.folded.lock().unwrap();
    let taken_over = folded.iter().filter(|p| owned_by_two.contains(&p.at) && text(p).ends_with("/1")).count();
    assert!(taken_over > 0, "the survivor read the partitions it took over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_carries_the_topics_it_is_configured_with_and_no_others() {
    let broker = broker();
    let mut config = config(&broker.addr, 2);
    config.topics = vec!["unit-records".into()];
    config.topic_config = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
    let log = KafkaLog::connect(config.clone()).unwrap();
    // Connecting again finds the topics there.
    let again = KafkaLog::connect(config).unwrap();
    assert_eq!(again.partitions("unit-records"), Some(2));
    assert_eq!(again.partitions("health"), None);

    let refused = log.append(vec![record("unit-records", "U1", "a"), record("health", "S1", "b")]).await;
    assert!(matches!(&refused, Err(LogError::Config(reason)) if reason.contains("health")), "{refused:?}");
    let appended =
        log.append(vec![record("unit-records", "U1", "a"), record("unit-records", "U1", "b")]).await.unwrap();
    assert_eq!(appended[1].offset, appended[0].offset + 1);
    let tp = TopicPartition { topic: "unit-records".into(), partition: appended[0].partition };
    let mut consumer = again.subscribe(&unique("group"), Arc::new(|_| None)).unwrap();
    let mut polled = Vec::new();
    poll_until(&mut consumer, Duration::from_secs(60), |b, _| {
        polled.extend(b);
        polled.len() >= 2
    })
    .await;
    assert_eq!(
        polled.iter().map(|p| (p.at.clone(), p.offset, text(p))).collect::<Vec<_>>(),
        [(tp.clone(), 0, "a".to_owned()), (tp.clone(), 1, "b".to_owned())]
    );
    assert_eq!(
        log.end_offsets().unwrap(),
        [
            (TopicPartition { topic: "unit-records".into(), partition: 0 }, if tp.partition == 0 { 2 } else { 0 }),
            (TopicPartition { topic: "unit-records".into(), partition: 1 }, if tp.partition == 1 { 2 } else { 0 }),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_in_time_while_the_broker_is_down_and_work_again_when_it_returns() {
    init_tracing();
    // Its own broker, since it stops it; sqlite so that the data outlives the broker.
    let mut tansu = Tansu::start("sqlite://tansu.db");
    let mut config = config(&tansu.addr(), 2);
    config.delivery_timeout = Duration::from_secs(3);
    config.request_timeout = Duration::from_secs(3);
    let log = KafkaLog::connect(config).unwrap();
    let store = Store::default();
    let mut consumer = log.subscribe(&unique("group"), store.lookup()).unwrap();

    let before: Vec<Record> =
        (0..20).map(|i| record("health", &format!("S{}", i % 5), &format!("before-{i}"))).collect();
    let acknowledged: Vec<Appended> = log.append(before.clone()).await.unwrap();
    poll_until(&mut consumer, Duration::from_secs(60), |b, _| {
        store.fold(b);
        store.count() >= before.len()
    })
    .await;

    tansu.stop();
    let started = Instant::now();
    let down = log.append(vec![record("health", "S1", "while-down")]).await;
    let took = started.elapsed();
    assert!(matches!(down, Err(LogError::Unavailable(_))), "{down:?}");
    assert!(took <= Duration::from_millis(3500), "unavailable after {took:?}, deadline 3 s");
    assert!(log.end_offsets().is_err(), "no end offsets without a broker");
    match consumer.poll(10, Duration::from_millis(500)).await {
        Ok(polled) => assert!(polled.is_empty(), "{polled:?}"),
        Err(e) => assert!(matches!(e, LogError::Unavailable(_)), "{e}"),
    }

    tansu.restart();
    // The same log, no reconnect: it may take a moment to find the broker again.
    let after = vec![record("health", "S1", "after-0"), record("roster", "S2", "after-1")];
    let deadline = Instant::now() + Duration::from_secs(30);
    let acknowledged_after = loop {
        match log.append(after.clone()).await {
            Ok(done) => break done,
            Err(LogError::Unavailable(reason)) if Instant::now() < deadline => {
                tracing::info!(%reason, "not yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no append after the broker returned: {e}\n{}", tansu.log()),
        }
    };

    // The consumer from before the outage reads on, from where it was.
    let after_payloads: HashSet<Vec<u8>> = after.iter().map(|r| r.payload.clone()).collect();
    poll_until(&mut consumer, Duration::from_secs(60), |b, _| {
        store.fold(b);
        let folded = store.folded.lock().unwrap();
        after_payloads.iter().all(|p| folded.iter().any(|f| f.record.payload == *p))
    })
    .await;

    // Everything acknowledged, before and after the outage, is where it was put.
    let folded: HashMap<String, (TopicPartition, u64)> =
        store.folded.lock().unwrap().iter().map(|p| (text(p), (p.at.clone(), p.offset))).collect();
    for (record, at) in before.iter().chain(&after).zip(acknowledged.iter().chain(&acknowledged_after)) {
        let (tp, offset) = &folded[std::str::from_utf8(&record.payload).unwrap()];
        assert_eq!((tp.topic.as_str(), tp.partition, *offset), (record.topic.as_str(), at.partition, at.offset));
    }
    let ends = log.end_offsets().unwrap();
    for (tp, end) in &ends {
        assert!(
            store.snapshot().contains(&(tp.clone(), *end)) || *end == 0,
            "{tp} ends at {end}; read {:?}",
            store.snapshot()
        );
    }
}

/// Appends `payload` and reads it back in a group of its own, at the offset appended.
async fn reads_back_what_it_appends(log: &KafkaLog, payload: &str) {
    let appended = log.append(vec![record("health", "S001", payload)]).await.unwrap();
    let mut consumer = log.subscribe(&unique("group"), Arc::new(|_| None)).unwrap();
    let mut polled = Vec::new();
    poll_until(&mut consumer, Duration::from_secs(60), |b, _| {
        polled.extend(b);
        !polled.is_empty()
    })
    .await;
    assert_eq!((polled[0].offset, text(&polled[0])), (appended[0].offset, payload.to_owned()));
}

/// The SASL/SCRAM settings of the URL reach a real broker that requires them: the log
/// appends and reads back with the right password; with a wrong one it cannot connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_over_sasl_scram_works_with_the_password_and_not_without() {
    init_tracing();
    let tansu = Tansu::start_with_scram_user("daybook", "s3cret-pw");
    let dir = tempfile::tempdir().unwrap();
    let url = |password: &str| {
        let file = dir.path().join(format!("password-{password}"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        format!(
            "kafka://{}?prefix={}.&partitions=1&request_timeout_ms=3000&security-protocol=sasl_plaintext\
             &sasl-mechanism=SCRAM-SHA-512&sasl-username=daybook&sasl-password-file={}",
            tansu.addr(),
            unique("scram"),
            file.display()
        )
    };
    let log = KafkaLog::connect(KafkaConfig::from_url(&url("s3cret-pw")).unwrap()).unwrap();
    reads_back_what_it_appends(&log, "over scram").await;

    let refused = KafkaLog::connect(KafkaConfig::from_url(&url("wrong")).unwrap());
    assert!(refused.is_err(), "a wrong password connected");
}

/// The certificates `deploy/make-secrets.sh` makes for the compose cluster, in `dir`.
fn deploy_secrets(dir: &std::path::Path) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/make-secrets.sh");
    let made = std::process::Command::new(script).arg(dir).output().expect("make-secrets.sh runs");
    assert!(made.status.success(), "make-secrets.sh: {}", String::from_utf8_lossy(&made.stderr));
}

/// The TLS settings of the URL, with the certificates deploy/make-secrets.sh makes for the
/// compose cluster, meet a real handshake (tansu behind a TLS front, as it cannot serve
/// TLS itself: deploy/KAFKA.md) and a real broker behind it.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_over_tls_works_with_the_deploy_certificates_and_not_without_its_own() {
    init_tracing();
    let secrets = tempfile::tempdir().unwrap();
    deploy_secrets(secrets.path());
    let file = |name: &str| secrets.path().join(name).display().to_string();
    // The broker's side as compose.yaml gives it: one PEM file, key and chain.
    let (_tansu, front) = Tansu::start_behind_tls(
        &secrets.path().join("kafka-broker.pem"),
        &secrets.path().join("kafka-broker.pem"),
        &secrets.path().join("kafka-ca.pem"),
    );
    let url = |client: &str| {
        format!(
            "kafka://{}?prefix={}.&partitions=1&request_timeout_ms=3000&security-protocol=ssl&ssl-ca={}{client}",
            front.addr,
            unique("tls"),
            file("kafka-ca.pem")
        )
    };
    let with_certificate =
        format!("&ssl-cert={}&ssl-key={}", file("kafka-client-cert.pem"), file("kafka-client-key.pem"));
    let log = KafkaLog::connect(KafkaConfig::from_url(&url(&with_certificate)).unwrap()).unwrap();
    reads_back_what_it_appends(&log, "over tls").await;

    // The brokers require a client certificate: without one, nothing connects.
    assert!(KafkaLog::connect(KafkaConfig::from_url(&url("")).unwrap()).is_err(), "connected without a certificate");
    // A client trusting another CA refuses the broker.
    let other = tempfile::tempdir().unwrap();
    deploy_secrets(other.path());
    let foreign_ca = format!(
        "kafka://{}?prefix={}.&partitions=1&request_timeout_ms=3000&security-protocol=ssl&ssl-ca={}{with_certificate}",
        front.addr,
        unique("tls"),
        other.path().join("kafka-ca.pem").display()
    );
    assert!(KafkaLog::connect(KafkaConfig::from_url(&foreign_ca).unwrap()).is_err(), "trusted a broker of another CA");
}
