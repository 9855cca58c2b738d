//! How to reach and shape the Kafka log: one typed struct, its defaults, and the
//! `kafka://` URL form that a service's `--log` flag carries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::LogError;

/// The short topic names intake writes (`Record.topic`); on the broker each is
/// `{topic_prefix}{topic}`.
pub const DEFAULT_TOPICS: [&str; 4] = ["roster", "health", "movement", "inspection"];

/// Where the Kafka log lives and how its clients behave. Defaults: [`KafkaConfig::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Prepended to every short topic name on the broker, so several deployments (or
    /// tests) can share a cluster.
    pub topic_prefix: String,
    /// The short topic names this log carries; appending to any other is refused.
    pub topics: Vec<String>,
    /// Partitions of the topics `connect` creates. Existing topics keep theirs.
    pub partitions: i32,
    /// Replication factor of the topics `connect` creates.
    pub replication: i32,
    /// Topic-level settings of the topics `connect` creates (`cleanup.policy`, ...).
    pub topic_config: BTreeMap<String, String>,
    /// The longest an `append` waits for the broker's acknowledgement before it answers
    /// `Unavailable`.
    pub delivery_timeout: Duration,
    /// How long the producer lingers to batch records (`linger.ms`).
    pub linger: Duration,
    /// `compression.type` of produced batches: `lz4` (built into librdkafka), `gzip`,
    /// `none`.
    pub compression: String,
    /// The deadline of admin and metadata requests: creating topics in `connect`, and
    /// `end_offsets`.
    pub request_timeout: Duration,
    /// How long the group waits for a consumer that stopped heartbeating
    /// (`session.timeout.ms`); a consumer that is dropped leaves at once.
    pub session_timeout: Duration,
    /// How long the broker may hold a fetch while waiting for data (`fetch.wait.max.ms`).
    pub fetch_wait: Duration,
    /// Extra librdkafka properties for the producer (and admin client), applied last.
    pub producer_properties: BTreeMap<String, String>,
    /// Extra librdkafka properties for consumers, applied last.
    pub consumer_properties: BTreeMap<String, String>,
    /// How clients reach and prove themselves to the brokers: TLS, SASL.
    pub security: Security,
}

/// `security.protocol` and what goes with it. The SASL password comes from a file (read
/// when the URL is parsed), never from the URL itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// `plaintext` (the default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: Protocol,
    /// PEM: the CA(s) the brokers' certificates chain to; unset, the system's.
    pub ssl_ca: Option<PathBuf>,
    /// PEM: this client's certificate, for brokers that require one.
    pub ssl_cert: Option<PathBuf>,
    /// PEM: the key of `ssl_cert`.
    pub ssl_key: Option<PathBuf>,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`.
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
}

/// The client's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    const ALL: [Protocol; 4] = [Protocol::Plaintext, Protocol::Ssl, Protocol::SaslPlaintext, Protocol::SaslSsl];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// A password: compared, cloned and handed to librdkafka, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The first line of the file at `path` (a trailing newline is not part of it).
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Secret(text.lines().next().unwrap_or_default().to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The SASL mechanisms librdkafka has built in (GSSAPI and OAUTHBEARER are not offered).
pub const SASL_MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"];

impl Default for KafkaConfig {
    fn default() -> Self {
        Self::new("127.0.0.1:9092")
    }
}

impl KafkaConfig {
    /// The defaults, for the cluster at `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: "daybook.".to_owned(),
            topics: DEFAULT_TOPICS.iter().map(|t| (*t).to_owned()).collect(),
            partitions: 12,
            replication: 1,
            topic_config: BTreeMap::new(),
            delivery_timeout: Duration::from_secs(10),
            linger: Duration::from_millis(5),
            compression: "lz4".to_owned(),
            request_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(10),
            fetch_wait: Duration::from_millis(100),
            producer_properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            security: Security::default(),
        }
    }

    /// Parses `kafka://host:port[,host:port][/]?key=value&...`. Keys: `prefix`,
    /// `partitions`, `replication`, `topics` (comma-separated short names),
    /// `delivery_timeout_ms`, `linger_ms`, `compression`, `request_timeout_ms`,
    /// `session_timeout_ms`, `fetch_wait_ms`, `producer.<librdkafka property>` /
    /// `consumer.<librdkafka property>`, and the security keys `security-protocol`,
    /// `ssl-ca`, `ssl-cert`, `ssl-key`, `sasl-mechanism`, `sasl-username`,
    /// `sasl-password-file` (the password itself never goes in the URL). Values may be
    /// percent-encoded. Unknown keys are refused, so a typo does not go unnoticed.
    pub fn from_url(url: &str) -> Result<Self, LogError> {
        let bad = |why: String| LogError::Config(format!("kafka url {url:?}: {why}"));
        let rest = url.strip_prefix("kafka://").ok_or_else(|| bad("does not start with kafka://".into()))?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
        if hosts.is_empty() || hosts.split(',').any(|h| h.is_empty() || h.contains('/')) {
            return Err(bad("expected host:port[,host:port]".into()));
        }
        let mut config = Self::new(hosts);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| bad(format!("{pair:?} is not key=value")))?;
            let value = percent_decode(value).ok_or_else(|| bad(format!("{key}: bad percent-encoding")))?;
            let number = |v: &str| v.parse::<u64>().map_err(|_| bad(format!("{key}: {v:?} is not a whole number")));
            match key {
                "prefix" => config.topic_prefix = value,
                "partitions" => {
                    config.partitions = number(&value)?.try_into().map_err(|_| bad(format!("{key}: too large")))?
                }
                "replication" => {
                    config.replication = number(&value)?.try_into().map_err(|_| bad(format!("{key}: too large")))?
                }
                "topics" => config.topics = value.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
                "delivery_timeout_ms" => config.delivery_timeout = Duration::from_millis(number(&value)?),
                "linger_ms" => config.linger = Duration::from_millis(number(&value)?),
                "compression" => config.compression = value,
                "request_timeout_ms" => config.request_timeout = Duration::from_millis(number(&value)?),
                "session_timeout_ms" => config.session_timeout = Duration::from_millis(number(&value)?),
                "fetch_wait_ms" => config.fetch_wait = Duration::from_millis(number(&value)?),
                "security-protocol" => {
                    config.security.protocol =
                        Protocol::ALL.into_iter().find(|p| p.name() == value).ok_or_else(|| {
                            bad(format!("{key}: {value:?} is none of plaintext, ssl, sasl_plaintext, sasl_ssl"))
                        })?
                }
                "ssl-ca" => config.security.ssl_ca = Some(PathBuf::from(value)),
                "ssl-cert" => config.security.ssl_cert = Some(PathBuf::from(value)),
                "ssl-key" => config.security.ssl_key = Some(PathBuf::from(value)),
                "sasl-mechanism" => {
                    if !SASL_MECHANISMS.contains(&value.as_str()) {
                        return Err(bad(format!("{key}: {value:?} is none of {}", SASL_MECHANISMS.join(", "))));
                    }
                    config.security.sasl_mechanism = Some(value);
                }
                "sasl-username" => config.security.sasl_username = Some(value),
                "sasl-password-file" => {
                    let secret =
                        Secret::from_file(Path::new(&value)).map_err(|e| bad(format!("{key}: {value}: {e}")))?;
                    config.security.sasl_password = Some(secret);
                }
                _ if is_secret(key) => {
                    return Err(bad(format!("{key}: no password in the URL; use sasl-password-file")));
                }
                // Any librdkafka property, passed through: `producer.batch.num.messages=1`.
                _ if key.starts_with("producer.") => {
                    config.producer_properties.insert(key["producer.".len()..].to_owned(), value);
                }
                _ if key.starts_with("consumer.") => {
                    config.consumer_properties.insert(key["consumer.".len()..].to_owned(), value);
                }
                _ => return Err(bad(format!("unknown key {key:?}"))),
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The broker-side name of short topic `topic`.
    pub fn kafka_topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    pub(crate) fn validate(&self) -> Result<(), LogError> {
        let bad = |why: &str| Err(LogError::Config(format!("kafka: {why}")));
        if self.brokers.trim().is_empty() {
            return bad("no brokers");
        }
        if self.topics.is_empty() {
            return bad("no topics");
        }
        if self.partitions < 1 || self.replication < 1 {
            return bad("partitions and replication must be at least 1");
        }
        if self.delivery_timeout < Duration::from_millis(100) || self.linger >= self.delivery_timeout {
            return bad("delivery timeout must be at least 100 ms and longer than linger");
        }
        if self.request_timeout.is_zero() || self.session_timeout < Duration::from_millis(100) {
            return bad("request and session timeouts must be positive");
        }
        let s = &self.security;
        let protocol = s.protocol.name();
        if !s.protocol.tls() && (s.ssl_ca.is_some() || s.ssl_cert.is_some()) {
            return Err(LogError::Config(format!(
                "kafka: ssl-ca and ssl-cert need security-protocol ssl or sasl_ssl, not {protocol}"
            )));
        }
        if s.ssl_cert.is_some() != s.ssl_key.is_some() {
            return bad("ssl-cert and ssl-key go together");
        }
        let sasl_set = s.sasl_mechanism.is_some() || s.sasl_username.is_some() || s.sasl_password.is_some();
        if s.protocol.sasl() {
            if s.sasl_mechanism.is_none() || s.sasl_username.is_none() || s.sasl_password.is_none() {
                return Err(LogError::Config(format!(
                    "kafka: security-protocol {protocol} needs sasl-mechanism, sasl-username and sasl-password-file"
                )));
            }
        } else if sasl_set {
            return Err(LogError::Config(format!(
                "kafka: sasl-* settings need security-protocol sasl_plaintext or sasl_ssl, not {protocol}"
            )));
        }
        Ok(())
    }

    /// Settings every client shares.
    fn common(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "daybook-eventlog")
            // Come back quickly once a broker returns.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "1000")
            .set("socket.timeout.ms", millis(self.request_timeout.max(Duration::from_millis(10))))
            .set("log.connection.close", "false");
        let s = &self.security;
        c.set("security.protocol", s.protocol.name());
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        for (key, value) in [
            ("ssl.ca.location", s.ssl_ca.as_ref().map(path)),
            ("ssl.certificate.location", s.ssl_cert.as_ref().map(path)),
            ("ssl.key.location", s.ssl_key.as_ref().map(path)),
            ("sasl.mechanisms", s.sasl_mechanism.clone()),
            ("sasl.username", s.sasl_username.clone()),
            ("sasl.password", s.sasl_password.as_ref().map(|p| p.0.clone())),
        ] {
            if let Some(value) = value {
                c.set(key, value);
            }
        }
        c
    }

    pub(crate) fn producer(&self) -> ClientConfig {
        let mut c = self.common();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &self.compression)
            .set("linger.ms", millis(self.linger))
            // `append` gives up at `delivery_timeout` and retires the producer before
            // librdkafka times anything out itself (see `KafkaLog::retire`); this is
            // only the backstop.
            .set("message.timeout.ms", millis(self.delivery_timeout + Duration::from_secs(5)))
            .set("request.timeout.ms", millis(self.delivery_timeout));
        for (k, v) in &self.producer_properties {
            c.set(k, v);
        }
        c
    }

    pub(crate) fn consumer(&self, group: &str) -> ClientConfig {
        let mut c = self.common();
        let heartbeat = (self.session_timeout / 5).max(Duration::from_millis(10));
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Eager: every rebalance revokes everything and assigns afresh, so every
            // partition a consumer is given is looked up again (see `Rebalancer`).
            // Range gives partition p of every topic to the same member (the topics have
            // the same partition count): a school's events of every kind fold together.
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", millis(self.session_timeout))
            .set("heartbeat.interval.ms", millis(heartbeat))
            .set("fetch.wait.max.ms", millis(self.fetch_wait))
            // No transactions are written; read up to the high watermark, which is what
            // `end_offsets` reports, so lag is end minus position.
            .set("isolation.level", "read_uncommitted")
            .set("enable.partition.eof", "false");
        for (k, v) in &self.consumer_properties {
            c.set(k, v);
        }
        c
    }
}

/// A librdkafka property that holds a password: refused in the URL.
fn is_secret(key: &str) -> bool {
    key.ends_with(".sasl.password") || key.ends_with(".ssl.key.password") || key.ends_with(".ssl.keystore.password")
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_sets_brokers_and_options() {
        let c = KafkaConfig::from_url("kafka://k1:9092,k2:9093?prefix=test.&partitions=3&delivery_timeout_ms=2500")
            .unwrap();
        assert_eq!(c.brokers, "k1:9092,k2:9093");
        assert_eq!(c.topic_prefix, "test.");
        assert_eq!(c.partitions, 3);
        assert_eq!(c.delivery_timeout, Duration::from_millis(2500));
        assert_eq!(c.kafka_topic("health"), "test.health");
        assert_eq!(c.replication, 1);
        assert_eq!(c.topics, DEFAULT_TOPICS);
    }

    #[test]
    fn a_bare_url_takes_the_defaults() {
        let c = KafkaConfig::from_url("kafka://127.0.0.1:9092/").unwrap();
        assert_eq!(c, KafkaConfig::new("127.0.0.1:9092"));
        assert_eq!(c.topic_prefix, "daybook.");
    }

    #[test]
    fn values_may_be_percent_encoded() {
        let c = KafkaConfig::from_url("kafka://h:1?prefix=a%2Fb.&topics=x,y").unwrap();
        assert_eq!(c.topic_prefix, "a/b.");
        assert_eq!(c.topics, ["x", "y"]);
    }

    fn password_file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap().to_owned();
        (dir, path)
    }

    #[test]
    fn a_url_carries_tls_and_sasl_with_the_password_from_a_file() {
        let (_dir, file) = password_file("s3cret pass\n");
        let url = format!(
            "kafka://k1:9093?security-protocol=sasl_ssl&ssl-ca=/etc/daybook/kafka-ca.pem&sasl-mechanism=SCRAM-SHA-512\
             &sasl-username=daybook&sasl-password-file={file}"
        );
        let c = KafkaConfig::from_url(&url).unwrap();
        assert_eq!(c.security.protocol, Protocol::SaslSsl);
        assert_eq!(c.security.ssl_ca.as_deref(), Some(Path::new("/etc/daybook/kafka-ca.pem")));
        assert_eq!(c.security.sasl_mechanism.as_deref(), Some("SCRAM-SHA-512"));
        assert_eq!(c.security.sasl_username.as_deref(), Some("daybook"));
        assert_eq!(c.security.sasl_password, Some(Secret("s3cret pass".into())));
        assert!(!format!("{c:?}").contains("s3cret"), "the password is printed: {c:?}");
        // Every client gets them: producer, admin and consumers share `common`.
        for client in [c.producer(), c.consumer("g")] {
            assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(client.get("ssl.ca.location"), Some("/etc/daybook/kafka-ca.pem"));
            assert_eq!(client.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
            assert_eq!(client.get("sasl.username"), Some("daybook"));
            assert_eq!(client.get("sasl.password"), Some("s3cret pass"));
        }
        let c = KafkaConfig::from_url("kafka://k1:9093?security-protocol=ssl&ssl-cert=/c.pem&ssl-key=/k.pem").unwrap();
        assert_eq!(c.producer().get("ssl.certificate.location"), Some("/c.pem"));
        assert_eq!(c.producer().get("ssl.key.location"), Some("/k.pem"));
        assert_eq!(
            KafkaConfig::from_url("kafka://h:1").unwrap().producer().get("security.protocol"),
            Some("plaintext")
        );
    }

    #[test]
    fn security_settings_that_do_not_fit_are_refused() {
        let (_dir, file) = password_file("p");
        for (url, why) in [
            ("kafka://h:1?security-protocol=tls".to_owned(), "none of plaintext"),
            ("kafka://h:1?ssl-ca=/ca.pem".to_owned(), "need security-protocol ssl or sasl_ssl, not plaintext"),
            ("kafka://h:1?security-protocol=ssl&ssl-cert=/c.pem".to_owned(), "ssl-cert and ssl-key go together"),
            ("kafka://h:1?security-protocol=sasl_ssl&sasl-mechanism=PLAIN&sasl-username=u".to_owned(), "needs"),
            (format!("kafka://h:1?sasl-mechanism=PLAIN&sasl-username=u&sasl-password-file={file}"), "not plaintext"),
            ("kafka://h:1?sasl-mechanism=GSSAPI".to_owned(), "none of SCRAM-SHA-256"),
            ("kafka://h:1?sasl-password-file=/no/such/file".to_owned(), "sasl-password-file: /no/such/file"),
            ("kafka://h:1?producer.sasl.password=p".to_owned(), "no password in the URL"),
            ("kafka://h:1?consumer.ssl.key.password=p".to_owned(), "no password in the URL"),
        ] {
            let err = KafkaConfig::from_url(&url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    /// librdkafka is built with OpenSSL: before, creating an `ssl` client failed with
    /// "OpenSSL not available at build time". Creating one needs no broker.
    #[test]
    fn librdkafka_accepts_tls_and_scram_clients_and_reads_their_files() {
        use rdkafka::producer::BaseProducer;
        let (_dir, file) = password_file("p");
        for url in [
            "kafka://127.0.0.1:1?security-protocol=ssl".to_owned(),
            format!(
                "kafka://127.0.0.1:1?security-protocol=sasl_ssl&sasl-mechanism=SCRAM-SHA-256&sasl-username=u&sasl-password-file={file}"
            ),
            format!(
                "kafka://127.0.0.1:1?security-protocol=sasl_plaintext&sasl-mechanism=SCRAM-SHA-512&sasl-username=u&sasl-password-file={file}"
            ),
        ] {
            let config = KafkaConfig::from_url(&url).unwrap();
            if let Err(e) = config.producer().create::<BaseProducer>() {
                panic!("{url}: {e}");
            }
        }
        // The CA path reaches librdkafka, which loads it when the client is created.
        let config = KafkaConfig::from_url("kafka://127.0.0.1:1?security-protocol=ssl&ssl-ca=/no/such/ca.pem").unwrap();
        let err = config.producer().create::<BaseProducer>().err().expect("a missing CA file is refused").to_string();
        assert!(err.contains("ssl.ca.location"), "{err}");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("http://h:1", "kafka://"),
            ("kafka://", "host:port"),
            ("kafka://h:1?partitions=zero", "not a whole number"),
            ("kafka://h:1?partitions=0", "at least 1"),
            ("kafka://h:1?prefx=a", "unknown key \"prefx\""),
            ("kafka://h:1?prefix", "not key=value"),
        ] {
            let err = KafkaConfig::from_url(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
