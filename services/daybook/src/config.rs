//! Typed configuration of `daybook serve`: each setting is a flag, an environment
//! variable `DAYBOOK_…` and a key of the config file (`deploy/daybook.toml` shows them
//! all). Precedence: flag or environment, then the file, then the defaults below.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::FixedOffset;
use domain::close::CloseRules;
use serde::{Deserialize, Serialize};

/// The settings as given; every field optional so that sources can be layered.
#[derive(Debug, Clone, Default, clap::Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// Directory for the embedded log, the intake index and the projections.
    #[arg(long, env = "DAYBOOK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the gRPC server (intake and reports); port 0 picks a free port.
    #[arg(long, env = "DAYBOOK_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Address of the HTTP server: Prometheus metrics at /metrics, the operators' console at /.
    #[arg(long, env = "DAYBOOK_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// The event log: `embedded` (a durable log under --data-dir, one process) or
    /// `kafka://host:port[,host:port]?prefix=daybook.&partitions=12` (see deploy/KAFKA.md).
    #[arg(long, env = "DAYBOOK_LOG")]
    pub log: Option<String>,
    /// The aggregators' consumer group on Kafka: instances in one group split the schools.
    #[arg(long, env = "DAYBOOK_GROUP")]
    pub group: Option<String>,
    /// Partitions per topic of the embedded log; fixed when the log is created.
    #[arg(long, env = "DAYBOOK_PARTITIONS")]
    pub partitions: Option<u32>,
    /// Aggregators folding the embedded log in parallel in this process, each the events
    /// of its share of the partitions (hence of the schools). Default: one per core, at
    /// most one per partition. Over Kafka, run more `daybook aggregate` instances instead.
    #[arg(long, env = "DAYBOOK_FOLD_THREADS")]
    pub fold_threads: Option<u32>,
    /// A reading at or above this is a fever, in °C.
    #[arg(long, env = "DAYBOOK_FEVER_THRESHOLD")]
    pub fever_threshold: Option<f64>,
    /// Events older than this many days are refused (late events within it revise their
    /// day's report).
    #[arg(long, env = "DAYBOOK_HORIZON_DAYS")]
    pub horizon_days: Option<u32>,
    /// Days, ending with a report's, within which a service hall must have been inspected;
    /// a hall not inspected within them is listed and raises an alert.
    #[arg(long, env = "DAYBOOK_INSPECTION_WINDOW_DAYS")]
    pub inspection_window_days: Option<u32>,
    /// Minutes an event may be dated ahead of the server's clock; further ahead it is
    /// refused.
    #[arg(long, env = "DAYBOOK_CLOCK_SKEW_MINUTES")]
    pub clock_skew_minutes: Option<u32>,
    /// Days of home or centralized medical observation.
    #[arg(long, env = "DAYBOOK_OBSERVATION_DAYS")]
    pub observation_days: Option<u32>,
    /// The province's UTC offset; it decides which day an event belongs to.
    #[arg(long, env = "DAYBOOK_UTC_OFFSET")]
    pub utc_offset: Option<String>,
    /// Local time (HH:MM, province time) at which a day's reports are sealed.
    #[arg(long, env = "DAYBOOK_CLOSE_TIME")]
    pub close_time: Option<String>,
    /// Days after the report's day on which its deadline falls (0: the same day).
    #[arg(long, env = "DAYBOOK_CLOSE_LAG_DAYS")]
    pub close_lag_days: Option<u32>,
    /// Check coverage (0 to 1) a unit's report needs to count as sent, not missing.
    #[arg(long, env = "DAYBOOK_COVERAGE_THRESHOLD")]
    pub coverage_threshold: Option<f64>,
    /// Give every city of the roster a disease-control office `cdc-<city>` receiving its
    /// own schools, besides the offices listed.
    #[arg(long, env = "DAYBOOK_CITY_OFFICES")]
    pub city_offices: Option<bool>,
    /// PEM file: the certificate (chain) both ports serve TLS with; with --tls-key.
    /// Unset, the ports speak plain text.
    #[arg(long, env = "DAYBOOK_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file: the private key of --tls-cert.
    #[arg(long, env = "DAYBOOK_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM file: the CA whose client certificates both ports require (mTLS); a client
    /// without one is refused in the handshake.
    #[arg(long, env = "DAYBOOK_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Concurrent HTTP/2 streams (calls) one gRPC connection may hold; more wait.
    #[arg(long, env = "DAYBOOK_MAX_STREAMS")]
    pub max_streams: Option<u32>,
    /// Seconds without a frame from a client after which the server pings it (HTTP/2).
    #[arg(long, env = "DAYBOOK_KEEPALIVE_SECS")]
    pub keepalive_secs: Option<u64>,
    /// Seconds a ping may go unanswered before the connection is closed.
    #[arg(long, env = "DAYBOOK_KEEPALIVE_TIMEOUT_SECS")]
    pub keepalive_timeout_secs: Option<u64>,
    /// Seconds a connection may stay silent (no bytes from the client, not even a TLS
    /// hello or the HTTP/2 preface) before it is closed; longer than the keepalive
    /// interval plus its timeout, so that a live client is never cut.
    #[arg(long, env = "DAYBOOK_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// The services this instance runs, by name: intake, aggregator, reports, feeds,
    /// console (e.g. `reports,console` for a query-only instance over Kafka). Unset: the
    /// command's own (serve: all; intake: intake; aggregate: aggregator, reports, console,
    /// and feeds with publish-feeds).
    #[arg(long, env = "DAYBOOK_SERVICES")]
    pub services: Option<String>,
    /// How feed items are written to the offices' Kafka topics: `protobuf` (the
    /// `FeedItem` message) or `json` (for consumers without protobuf; deploy/KAFKA.md).
    #[arg(long, env = "DAYBOOK_FEED_TOPIC_FORMAT")]
    pub feed_topic_format: Option<String>,
    /// TOML file: how the DHIS2 export names the data set, data elements and units
    /// (deploy/DHIS2.md). Unset: by daybook's codes.
    #[arg(long, env = "DAYBOOK_DHIS2_MAPPING")]
    pub dhis2_mapping: Option<PathBuf>,
    /// Run the feeds (day close, office feeds, alerts) in this `daybook aggregate`; one
    /// instance per deployment. `daybook serve` always runs them.
    #[arg(long, env = "DAYBOOK_PUBLISH_FEEDS")]
    pub publish_feeds: Option<bool>,
    /// The offices that receive reports (config file only: `[[office]]` tables). Default:
    /// the province office, receiving every school.
    #[arg(skip)]
    pub office: Option<Vec<OfficeArgs>>,
    /// Whether calls must carry a token (`authorization: Bearer <token>`): `auto` (required
    /// unless gRPC and HTTP both bind to loopback), `required`, or `off` (loopback only).
    #[arg(long, env = "DAYBOOK_AUTH")]
    pub auth: Option<String>,
    /// Seconds a partition may lag with its reader's position not moving before it counts
    /// as stalled: reported, and its reader subscribed again.
    #[arg(long, env = "DAYBOOK_STALL_AFTER_SECS")]
    pub stall_after_secs: Option<u64>,
    /// Intake calls per second a token may make (0: no limit); past it RESOURCE_EXHAUSTED
    /// with a retry hint.
    #[arg(long, env = "DAYBOOK_RATE_LIMIT_POSTS")]
    pub rate_limit_posts: Option<f64>,
    /// Streams (feed subscriptions, report lists, intake streams) a token may hold open at
    /// once; one more is RESOURCE_EXHAUSTED.
    #[arg(long, env = "DAYBOOK_STREAMS_PER_TOKEN")]
    pub streams_per_token: Option<usize>,
    /// Read calls (reports, feeds, exports) per second a token may make (0: no limit).
    #[arg(long, env = "DAYBOOK_RATE_LIMIT_READS")]
    pub rate_limit_reads: Option<f64>,
    /// The province's cities (config file only: `[[city]]` tables with `name` and
    /// `chinese`). Default: Guangdong's 21. Registrations and inspections naming another
    /// city are refused.
    #[arg(skip)]
    pub city: Option<Vec<domain::city::City>>,
    /// The clock the day's close follows; tests set it, everyone else has the system's.
    #[arg(skip)]
    #[serde(skip)]
    pub clock: Option<feeds::Clock>,
    /// A failure to inject into one part: the supervision tests' seam.
    #[doc(hidden)]
    #[arg(skip)]
    #[serde(skip)]
    pub fault: Option<crate::server::Fault>,
    /// The embedded log's disk, made full by the full-disk tests.
    #[doc(hidden)]
    #[arg(skip)]
    #[serde(skip)]
    pub log_disk: Option<eventlog::DiskFaults>,
}

/// One office of the config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OfficeArgs {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Cities whose schools it receives; "*" for all.
    pub cities: Vec<String>,
    /// Levels it receives (province, city, school, department, grade, class, dorm); all
    /// if left out.
    #[serde(default)]
    pub levels: Vec<String>,
}

impl OfficeArgs {
    fn resolve(&self) -> anyhow::Result<feeds::Office> {
        anyhow::ensure!(
            !self.id.is_empty() && self.id.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "office.id: {:?} must be letters, digits, '.', '_' or '-'",
            self.id
        );
        anyhow::ensure!(!self.cities.is_empty(), "office.cities: office {:?} lists no city (\"*\" for all)", self.id);
        let levels = self
            .levels
            .iter()
            .map(|l| l.parse::<domain::Level>().map_err(|e| anyhow::anyhow!("office.levels: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(feeds::Office {
            id: self.id.clone(),
            name: if self.name.is_empty() { self.id.clone() } else { self.name.clone() },
            cities: self.cities.clone(),
            levels,
        })
    }
}

impl ServeArgs {
    /// `command` (serve, intake, aggregate or demo) with each setting's default in its help.
    /// The defaults are not clap's: a flag given wins over the file, a default must not,
    /// so they are resolved in [`Self::resolve`] and only shown here.
    pub fn help_with_defaults(command: clap::Command) -> clap::Command {
        let d = ServeConfig::default();
        let (l, r) = (d.limits, d.rate_limits);
        let defaults: [(&str, String); 28] = [
            ("data_dir", d.data_dir.display().to_string()),
            ("grpc_addr", d.grpc_addr.to_string()),
            ("http_addr", d.http_addr.to_string()),
            ("log", "embedded".to_owned()),
            ("group", d.group),
            ("partitions", d.partitions.to_string()),
            ("fold_threads", "one per core".to_owned()),
            ("fever_threshold", d.fever_threshold.to_string()),
            ("horizon_days", d.horizon_days.to_string()),
            ("inspection_window_days", d.inspection_window_days.to_string()),
            ("clock_skew_minutes", d.clock_skew_minutes.to_string()),
            ("observation_days", d.observation_days.to_string()),
            ("utc_offset", d.utc_offset.to_string()),
            ("close_time", d.close.deadline.format("%H:%M").to_string()),
            ("close_lag_days", d.close.lag_days.to_string()),
            ("coverage_threshold", d.close.coverage_threshold.to_string()),
            ("city_offices", d.offices.city_offices.to_string()),
            ("max_streams", l.max_streams.to_string()),
            ("keepalive_secs", l.keepalive.as_secs().to_string()),
            ("keepalive_timeout_secs", l.keepalive_timeout.as_secs().to_string()),
            ("idle_timeout_secs", l.idle_timeout.as_secs().to_string()),
            ("publish_feeds", d.publish_feeds.to_string()),
            ("feed_topic_format", "protobuf".to_owned()),
            ("auth", "auto".to_owned()),
            ("stall_after_secs", d.stall_after.as_secs().to_string()),
            ("rate_limit_posts", r.posts_per_second.to_string()),
            ("rate_limit_reads", r.reads_per_second.to_string()),
            ("streams_per_token", r.streams_per_token.to_string()),
        ];
        defaults.into_iter().fold(command, |command, (id, value)| {
            command.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                let long = arg.get_long_help().map(ToString::to_string);
                let arg = arg.help(format!("{help} [default: {value}]"));
                match long {
                    Some(long) => arg.long_help(format!("{long} [default: {value}]")),
                    None => arg,
                }
            })
        })
    }

    /// `command` without the settings its role does not read in its help (still accepted,
    /// so a shared environment or file does not break it).
    pub fn help_for_role(command: clap::Command, unused: &[&str]) -> clap::Command {
        unused.iter().fold(Self::help_with_defaults(command), |command, id| command.mut_arg(*id, |arg| arg.hide(true)))
    }

    /// Reads a config file; unknown keys are an error, so typos do not pass silently.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// `self` where set, else `fallback`: the two layered as TOML tables, a key set in
    /// `self` winning, so that a new setting needs no line here. The tests' seams, which
    /// neither a flag nor the file can set, are carried over by hand.
    pub fn or(self, fallback: ServeArgs) -> anyhow::Result<ServeArgs> {
        let table = |args: &ServeArgs| toml::Table::try_from(args).context("settings as TOML");
        let mut layered = table(&fallback)?;
        layered.extend(table(&self)?);
        let merged: ServeArgs = layered.try_into().context("settings layered")?;
        Ok(ServeArgs {
            clock: self.clock.or(fallback.clock),
            fault: self.fault.or(fallback.fault),
            log_disk: self.log_disk.or(fallback.log_disk),
            ..merged
        })
    }

    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let d = ServeConfig::default();
        let utc_offset = match self.utc_offset {
            Some(text) => parse_offset(&text)?,
            None => d.utc_offset,
        };
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key, client_ca: self.tls_client_ca }),
            (None, None) => {
                anyhow::ensure!(self.tls_client_ca.is_none(), "tls-client-ca: needs tls-cert and tls-key");
                None
            }
            (Some(_), None) => anyhow::bail!("tls-cert: needs tls-key"),
            (None, Some(_)) => anyhow::bail!("tls-key: needs tls-cert"),
        };
        let secs = |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
        let limits = Limits {
            max_streams: self.max_streams.unwrap_or(d.limits.max_streams),
            keepalive: secs(self.keepalive_secs, d.limits.keepalive),
            keepalive_timeout: secs(self.keepalive_timeout_secs, d.limits.keepalive_timeout),
            idle_timeout: secs(self.idle_timeout_secs, d.limits.idle_timeout),
        };
        let config = ServeConfig {
            tls,
            limits,
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            grpc_addr: self.grpc_addr.unwrap_or(d.grpc_addr),
            http_addr: self.http_addr.unwrap_or(d.http_addr),
            log: match self.log {
                None => d.log,
                Some(text) => LogChoice::parse(&text)?,
            },
            group: self.group.unwrap_or(d.group),
            partitions: self.partitions.unwrap_or(d.partitions),
            fold_threads: self.fold_threads.unwrap_or(d.fold_threads),
            fever_threshold: self.fever_threshold.unwrap_or(d.fever_threshold),
            observation_days: self.observation_days.unwrap_or(d.observation_days),
            horizon_days: self.horizon_days.unwrap_or(d.horizon_days),
            inspection_window_days: match self.inspection_window_days.unwrap_or(d.inspection_window_days) {
                0 => anyhow::bail!("inspection-window-days: must be at least 1"),
                days => days,
            },
            clock_skew_minutes: self.clock_skew_minutes.unwrap_or(d.clock_skew_minutes),
            utc_offset,
            close: CloseRules {
                deadline: match self.close_time {
                    Some(text) => chrono::NaiveTime::parse_from_str(&text, "%H:%M")
                        .map_err(|_| anyhow::anyhow!("close-time: {text:?} is not a time like 16:00"))?,
                    None => d.close.deadline,
                },
                lag_days: self.close_lag_days.unwrap_or(d.close.lag_days),
                coverage_threshold: self.coverage_threshold.unwrap_or(d.close.coverage_threshold),
            },
            stall_after: self.stall_after_secs.map_or(d.stall_after, std::time::Duration::from_secs),
            auth: match self.auth {
                Some(text) => text.parse()?,
                None => d.auth,
            },
            rate_limits: crate::auth::RateLimits {
                posts_per_second: self.rate_limit_posts.unwrap_or(d.rate_limits.posts_per_second),
                reads_per_second: self.rate_limit_reads.unwrap_or(d.rate_limits.reads_per_second),
                streams_per_token: self.streams_per_token.unwrap_or(d.rate_limits.streams_per_token),
            },
            cities: match self.city {
                Some(list) => domain::city::Cities::new(list).map_err(|e| anyhow::anyhow!("city: {e}"))?,
                None => d.cities,
            },
            offices: feeds::Offices {
                listed: match self.office {
                    Some(list) => list.iter().map(OfficeArgs::resolve).collect::<anyhow::Result<_>>()?,
                    None => d.offices.listed,
                },
                city_offices: self.city_offices.unwrap_or(d.offices.city_offices),
            },
            publish_feeds: self.publish_feeds.unwrap_or(d.publish_feeds),
            services: match &self.services {
                Some(text) => Some(text.parse().map_err(|e| anyhow::anyhow!("services: {e}"))?),
                None => None,
            },
            feed_topic_format: match &self.feed_topic_format {
                Some(text) => text.parse().map_err(|e| anyhow::anyhow!("feed-topic-format: {e}"))?,
                None => d.feed_topic_format,
            },
            dhis2: match &self.dhis2_mapping {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("dhis2-mapping: reading {}", path.display()))?;
                    export::dhis2::Mapping::from_toml(&text)
                        .with_context(|| format!("dhis2-mapping: {}", path.display()))?
                }
                None => d.dhis2,
            },
            clock: self.clock.unwrap_or(d.clock),
            fault: self.fault,
            log_disk: self.log_disk.unwrap_or_default(),
            fold_probe: None,
        };
        anyhow::ensure!(
            (0.0..=1.0).contains(&config.close.coverage_threshold),
            "coverage-threshold: {} is outside 0..=1",
            config.close.coverage_threshold
        );
        anyhow::ensure!(config.close.lag_days <= 7, "close-lag-days: {} is more than 7", config.close.lag_days);
        for office in &config.offices.listed {
            if let Some(city) = office.cities.iter().find(|c| *c != "*" && !config.cities.contains(c)) {
                anyhow::bail!("office.cities: office {:?} names {city:?}, not a configured city", office.id);
            }
        }
        config.auth.required(&[config.grpc_addr, config.http_addr])?;
        for (name, rate) in [
            ("rate-limit-posts", config.rate_limits.posts_per_second),
            ("rate-limit-reads", config.rate_limits.reads_per_second),
        ] {
            anyhow::ensure!(rate >= 0.0 && rate.is_finite(), "{name}: {rate} is not a rate (0 for no limit)");
        }
        anyhow::ensure!(config.stall_after.as_secs() >= 1, "stall-after-secs: must be at least 1");
        let l = &config.limits;
        anyhow::ensure!((1..=10_000).contains(&l.max_streams), "max-streams: {} is outside 1..=10000", l.max_streams);
        anyhow::ensure!(
            !l.keepalive.is_zero() && !l.keepalive_timeout.is_zero(),
            "keepalive-secs, keepalive-timeout-secs: must be at least 1"
        );
        anyhow::ensure!(
            l.idle_timeout > l.keepalive + l.keepalive_timeout,
            "idle-timeout-secs: {} must be longer than keepalive-secs plus keepalive-timeout-secs ({}), or live \
             connections are cut",
            l.idle_timeout.as_secs(),
            (l.keepalive + l.keepalive_timeout).as_secs()
        );
        anyhow::ensure!(config.partitions >= 1, "partitions: must be at least 1");
        anyhow::ensure!(
            config.clock_skew_minutes <= 24 * 60,
            "clock-skew-minutes: {} is more than a day",
            config.clock_skew_minutes
        );
        anyhow::ensure!(
            (1..=64).contains(&config.fold_threads),
            "fold-threads: {} is outside 1..=64",
            config.fold_threads
        );
        anyhow::ensure!(
            (1..=60).contains(&config.observation_days),
            "observation-days: {} is outside 1..=60",
            config.observation_days
        );
        anyhow::ensure!(
            (35.0..=40.0).contains(&config.fever_threshold),
            "fever-threshold: {} is outside 35.0..=40.0",
            config.fever_threshold
        );
        Ok(config)
    }
}

impl ServeArgs {
    /// The province's UTC offset these settings give (the default if none): what client
    /// commands count today by, as the server counts days.
    pub fn province_zone(&self) -> anyhow::Result<FixedOffset> {
        match &self.utc_offset {
            Some(text) => parse_offset(text),
            None => Ok(ServeConfig::default().utc_offset),
        }
    }
}

fn parse_offset(text: &str) -> anyhow::Result<FixedOffset> {
    text.parse::<FixedOffset>().map_err(|_| anyhow::anyhow!("utc-offset: {text:?} is not an offset like +08:00"))
}

impl ServeConfig {
    /// Aggregators folding the embedded log in this process: `fold_threads`, but no more
    /// than there are partitions to share.
    pub fn aggregators(&self) -> u32 {
        self.fold_threads.min(self.partitions)
    }
}

/// What one client connection may hold, and when a silent one is let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` of the gRPC port: further calls on the
    /// connection wait for a free stream.
    pub max_streams: u32,
    /// The server pings a client it has heard nothing from for this long (HTTP/2).
    pub keepalive: Duration,
    /// An unanswered ping closes the connection after this.
    pub keepalive_timeout: Duration,
    /// A connection that sends no byte for this long is closed (both ports).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: 100,
            keepalive: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Which event log to use.
#[derive(Debug, Clone, PartialEq)]
pub enum LogChoice {
    Embedded,
    Kafka(Box<eventlog::KafkaConfig>),
}

impl LogChoice {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if text == "embedded" {
            return Ok(Self::Embedded);
        }
        if text.starts_with("kafka://") {
            return Ok(Self::Kafka(Box::new(
                eventlog::KafkaConfig::from_url(text).map_err(|e| anyhow::anyhow!("log: {e}"))?,
            )));
        }
        anyhow::bail!("log: {text:?} is neither `embedded` nor a kafka://host:port URL")
    }
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// TLS on both ports; `None`: plain text.
    pub tls: Option<crate::tls::TlsFiles>,
    pub limits: Limits,
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub log: LogChoice,
    pub group: String,
    pub partitions: u32,
    /// Aggregators folding the embedded log in this process (at most one per partition).
    pub fold_threads: u32,
    pub fever_threshold: f64,
    pub observation_days: u32,
    pub horizon_days: u32,
    pub inspection_window_days: u32,
    /// Minutes an event may be dated ahead of the server's clock.
    pub clock_skew_minutes: u32,
    pub utc_offset: FixedOffset,
    pub close: CloseRules,
    pub stall_after: std::time::Duration,
    pub auth: crate::auth::AuthMode,
    pub rate_limits: crate::auth::RateLimits,
    pub cities: domain::city::Cities,
    pub offices: feeds::Offices,
    /// Whether a `daybook aggregate` runs the feeds (`serve` always does).
    pub publish_feeds: bool,
    pub dhis2: export::dhis2::Mapping,
    pub feed_topic_format: feeds::forward::ValueFormat,
    /// The services to run; `None`: the command's preset ([`crate::Roles`]).
    pub services: Option<crate::Services>,
    pub clock: feeds::Clock,
    /// A failure to inject into one part: the supervision tests' seam.
    #[doc(hidden)]
    pub fault: Option<crate::server::Fault>,
    /// The embedded log's disk, made full by the full-disk tests.
    #[doc(hidden)]
    pub log_disk: eventlog::DiskFaults,
    /// Counts the events this process's aggregators fold, for the bench, which reads it
    /// every millisecond to time a fold (GetStatus reports the same count).
    #[doc(hidden)]
    pub fold_probe: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            tls: None,
            limits: Limits::default(),
            data_dir: PathBuf::from("daybook-data"),
            grpc_addr: "127.0.0.1:50051".parse().expect("valid address"),
            http_addr: "127.0.0.1:9464".parse().expect("valid address"),
            log: LogChoice::Embedded,
            group: "daybook-aggregators".to_owned(),
            partitions: 16,
            fold_threads: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(64).min(64)),
            fever_threshold: 37.3,
            observation_days: 14,
            horizon_days: 7,
            inspection_window_days: reports::inspection::DEFAULT_WINDOW_DAYS,
            clock_skew_minutes: intake::DEFAULT_CLOCK_SKEW_MINUTES,
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("valid offset"),
            close: CloseRules::default(),
            stall_after: std::time::Duration::from_secs(30),
            auth: crate::auth::AuthMode::Auto,
            rate_limits: crate::auth::RateLimits {
                posts_per_second: 200.0,
                reads_per_second: 100.0,
                streams_per_token: 20,
            },
            cities: domain::city::Cities::default(),
            offices: feeds::Offices::default(),
            publish_feeds: false,
            dhis2: export::dhis2::Mapping::default(),
            feed_topic_format: feeds::forward::ValueFormat::Protobuf,
            services: None,
            clock: feeds::Clock::system(),
            fault: None,
            log_disk: eventlog::DiskFaults::default(),
            fold_probe: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_in_deploy_parses_and_resolves() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/daybook.toml");
        let config = ServeArgs::from_file(&path).unwrap().resolve().unwrap();
        assert_eq!(config.grpc_addr.port(), 50051);
        // Secure as shipped: TLS, tokens required, metrics on loopback.
        let tls = config.tls.as_ref().expect("TLS on");
        assert_eq!(tls.cert, Path::new("/etc/daybook/tls/server.pem"));
        assert_eq!(config.auth, crate::auth::AuthMode::Required);
        assert!(config.http_addr.ip().is_loopback(), "metrics on {}", config.http_addr);
        assert_eq!(config.limits, Limits::default(), "the file shows the defaults");
        assert_eq!(config.fever_threshold, 37.3);
        assert_eq!(config.clock_skew_minutes, 10);
        assert_eq!((config.close.deadline.to_string().as_str(), config.close.lag_days), ("09:00:00", 1));
        assert_eq!(config.close, CloseRules::default(), "the file gives the defaults");
        let ids: Vec<&str> = config.offices.listed.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["province", "cdc-guangzhou-schools"]);
        assert_eq!(config.offices.listed[1].levels, [domain::Level::City, domain::Level::School]);
        assert_eq!(config.cities, domain::city::Cities::default(), "the file lists the default cities");
    }

    #[test]
    fn access_is_checked_unless_every_address_is_loopback_and_never_off_elsewhere() {
        let on = |grpc: &str, auth: Option<&str>| ServeArgs {
            grpc_addr: Some(grpc.parse().unwrap()),
            auth: auth.map(str::to_owned),
            ..ServeArgs::default()
        };
        let required = |args: ServeArgs| {
            let config = args.resolve().unwrap();
            config.auth.required(&[config.grpc_addr, config.http_addr]).unwrap()
        };
        assert!(!required(on("127.0.0.1:50051", None)), "the demo: loopback, not checked");
        assert!(required(on("0.0.0.0:50051", None)), "reachable from others: checked by default");
        assert!(required(on("127.0.0.1:50051", Some("required"))));
        let err = on("0.0.0.0:50051", Some("off")).resolve().unwrap_err();
        assert!(err.to_string().starts_with("auth: off is allowed on loopback only"), "{err}");
        assert!(on("127.0.0.1:50051", Some("maybe")).resolve().unwrap_err().to_string().starts_with("auth:"));
    }

    #[test]
    fn cities_come_from_the_file_and_offices_must_name_them() {
        let args: ServeArgs = toml::from_str(
            "[[city]]\nname = \"Wuhan\"\nchinese = \"武汉市\"\n[[office]]\nid = \"w\"\ncities = [\"Wuhan\"]",
        )
        .unwrap();
        let config = args.resolve().unwrap();
        assert!(config.cities.contains("Wuhan") && !config.cities.contains("Guangzhou"));
        let args: ServeArgs = toml::from_str("[[office]]\nid = \"a\"\ncities = [\"Atlantis\"]").unwrap();
        let err = args.resolve().unwrap_err();
        assert!(err.to_string().starts_with("office.cities:") && err.to_string().contains("Atlantis"), "{err}");
        let args: ServeArgs =
            toml::from_str("[[city]]\nname = \"A\"\nchinese = \"\"\n[[city]]\nname = \"A\"\nchinese = \"\"").unwrap();
        assert!(args.resolve().unwrap_err().to_string().starts_with("city:"));
    }

    #[test]
    fn a_bad_office_is_refused_by_name() {
        let args: ServeArgs =
            toml::from_str("[[office]]\nid = \"x\"\ncities = [\"Foshan\"]\nlevels = [\"room\"]").unwrap();
        let err = args.resolve().unwrap_err();
        assert!(err.to_string().starts_with("office.levels:"), "{err}");
        let err = ServeArgs { close_time: Some("4pm".into()), ..ServeArgs::default() }.resolve().unwrap_err();
        assert!(err.to_string().starts_with("close-time:"), "{err}");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: ServeArgs = toml::from_str(
            "partitions = 4\nfever-threshold = 37.5\n[[office]]\nid = \"cdc-x\"\ncities = [\"Guangzhou\"]",
        )
        .unwrap();
        let (clock, _) = feeds::Clock::manual(chrono::DateTime::UNIX_EPOCH);
        let flags = ServeArgs { partitions: Some(8), clock: Some(clock), ..ServeArgs::default() };
        let layered = flags.or(file).unwrap();
        assert!(layered.clock.is_some(), "a test's clock survives the layering");
        let config = layered.resolve().unwrap();
        assert_eq!(config.partitions, 8);
        assert_eq!(config.fever_threshold, 37.5);
        assert_eq!(config.http_addr, ServeConfig::default().http_addr);
        assert!(config.offices.listed.iter().any(|o| o.id == "cdc-x"), "the file's tables are kept");
    }

    #[test]
    fn a_dhis2_mapping_is_read_at_start_and_a_bad_one_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dhis2.toml");
        let resolve = |mapping: &str| {
            std::fs::write(&file, mapping).unwrap();
            ServeArgs { dhis2_mapping: Some(file.clone()), ..ServeArgs::default() }.resolve()
        };
        let config = resolve("data-set = \"pBOMPrpg1QX\"").unwrap();
        assert_eq!(config.dhis2.data_set, "pBOMPrpg1QX");
        let err = resolve("[data-elements]\nFEVER = { data-element = \"x\" }").unwrap_err();
        assert!(format!("{err:#}").starts_with("dhis2-mapping:"), "{err:#}");
        assert!(format!("{err:#}").contains("\"FEVER\" is not a daybook code"), "{err:#}");
    }

    #[test]
    fn tls_auth_and_limits_are_checked_by_name() {
        let resolve = |text: &str| toml::from_str::<ServeArgs>(text).unwrap().resolve();
        let config = resolve("tls-cert = \"c.pem\"\ntls-key = \"k.pem\"\ntls-client-ca = \"ca.pem\"").unwrap();
        assert_eq!(config.tls.unwrap().client_ca.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(resolve("").unwrap().auth, crate::auth::AuthMode::Auto);
        assert_eq!(resolve("auth = \"off\"").unwrap().auth, crate::auth::AuthMode::Off);
        for (text, why) in [
            ("tls-key = \"k.pem\"", "tls-key: needs tls-cert"),
            ("tls-client-ca = \"ca.pem\"", "tls-client-ca: needs tls-cert"),
            ("auth = \"maybe\"", "auth: \"maybe\" is none of"),
            ("max-streams = 0", "max-streams:"),
            ("idle-timeout-secs = 40", "idle-timeout-secs: 40 must be longer"),
            ("keepalive-secs = 0", "keepalive-secs"),
        ] {
            let err = resolve(text).unwrap_err().to_string();
            assert!(err.starts_with(why), "{text}: {err}");
        }
        let limits = resolve("max-streams = 8\nkeepalive-secs = 5\nkeepalive-timeout-secs = 2\nidle-timeout-secs = 9")
            .unwrap()
            .limits;
        assert_eq!(limits.max_streams, 8);
        assert_eq!((limits.keepalive, limits.idle_timeout), (Duration::from_secs(5), Duration::from_secs(9)));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        assert!(
            toml::from_str::<ServeArgs>("fever-treshold = 37.5").unwrap_err().to_string().contains("unknown field")
        );
        let err = ServeArgs { utc_offset: Some("Asia".into()), ..ServeArgs::default() }.resolve().unwrap_err();
        assert!(err.to_string().starts_with("utc-offset:"), "{err}");
    }

    #[test]
    fn client_commands_count_days_in_the_configured_zone() {
        let east = |hours| FixedOffset::east_opt(hours * 3600).unwrap();
        assert_eq!(ServeArgs::default().province_zone().unwrap(), east(8), "the province's by default");
        let xinjiang = ServeArgs { utc_offset: Some("+06:00".into()), ..ServeArgs::default() };
        assert_eq!(xinjiang.province_zone().unwrap(), east(6));
        assert!(ServeArgs { utc_offset: Some("Asia".into()), ..ServeArgs::default() }.province_zone().is_err());
    }
}
