//! Typed configuration of `daybook serve`: each setting is a flag, an environment
//! variable `DAYBOOK_…` and a key of the config file (`deploy/daybook.toml` shows them
//! all). Precedence: flag or environment, then the file, then the defaults below.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::FixedOffset;
use serde::Deserialize;

/// The settings as given; every field optional so that sources can be layered.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// Directory for the embedded log, the intake index and the projections.
    #[arg(long, env = "DAYBOOK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the gRPC server (intake and reports); port 0 picks a free port.
    #[arg(long, env = "DAYBOOK_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Address of the HTTP server for Prometheus metrics at /metrics.
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
    /// A reading at or above this is a fever, in °C.
    #[arg(long, env = "DAYBOOK_FEVER_THRESHOLD")]
    pub fever_threshold: Option<f64>,
    /// Events older than this many days are refused (late events within it revise their
    /// day's report).
    #[arg(long, env = "DAYBOOK_HORIZON_DAYS")]
    pub horizon_days: Option<u32>,
    /// Days of home or centralized medical observation.
    #[arg(long, env = "DAYBOOK_OBSERVATION_DAYS")]
    pub observation_days: Option<u32>,
    /// The province's UTC offset; it decides which day an event belongs to.
    #[arg(long, env = "DAYBOOK_UTC_OFFSET")]
    pub utc_offset: Option<String>,
}

impl ServeArgs {
    /// Reads a config file; unknown keys are an error, so typos do not pass silently.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// `self` where set, else `fallback`.
    pub fn or(self, fallback: ServeArgs) -> ServeArgs {
        ServeArgs {
            data_dir: self.data_dir.or(fallback.data_dir),
            grpc_addr: self.grpc_addr.or(fallback.grpc_addr),
            http_addr: self.http_addr.or(fallback.http_addr),
            log: self.log.or(fallback.log),
            group: self.group.or(fallback.group),
            partitions: self.partitions.or(fallback.partitions),
            fever_threshold: self.fever_threshold.or(fallback.fever_threshold),
            observation_days: self.observation_days.or(fallback.observation_days),
            horizon_days: self.horizon_days.or(fallback.horizon_days),
            utc_offset: self.utc_offset.or(fallback.utc_offset),
        }
    }

    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let d = ServeConfig::default();
        let utc_offset = match self.utc_offset {
            Some(text) => parse_offset(&text)?,
            None => d.utc_offset,
        };
        let config = ServeConfig {
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            grpc_addr: self.grpc_addr.unwrap_or(d.grpc_addr),
            http_addr: self.http_addr.unwrap_or(d.http_addr),
            log: match self.log {
                None => d.log,
                Some(text) => LogChoice::parse(&text)?,
            },
            group: self.group.unwrap_or(d.group),
            partitions: self.partitions.unwrap_or(d.partitions),
            fever_threshold: self.fever_threshold.unwrap_or(d.fever_threshold),
            observation_days: self.observation_days.unwrap_or(d.observation_days),
            horizon_days: self.horizon_days.unwrap_or(d.horizon_days),
            utc_offset,
        };
        anyhow::ensure!(config.partitions >= 1, "partitions: must be at least 1");
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

fn parse_offset(text: &str) -> anyhow::Result<FixedOffset> {
    text.parse::<FixedOffset>().map_err(|_| anyhow::anyhow!("utc-offset: {text:?} is not an offset like +08:00"))
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
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub log: LogChoice,
    pub group: String,
    pub partitions: u32,
    pub fever_threshold: f64,
    pub observation_days: u32,
    pub horizon_days: u32,
    pub utc_offset: FixedOffset,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("daybook-data"),
            grpc_addr: "127.0.0.1:50051".parse().expect("valid address"),
            http_addr: "127.0.0.1:9464".parse().expect("valid address"),
            log: LogChoice::Embedded,
            group: "daybook-aggregators".to_owned(),
            partitions: 16,
            fever_threshold: 37.3,
            observation_days: 14,
            horizon_days: 7,
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("valid offset"),
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
        assert_eq!(config.fever_threshold, 37.3);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: ServeArgs = toml::from_str("partitions = 4\nfever-threshold = 37.5").unwrap();
        let flags = ServeArgs { partitions: Some(8), ..ServeArgs::default() };
        let config = flags.or(file).resolve().unwrap();
        assert_eq!(config.partitions, 8);
        assert_eq!(config.fever_threshold, 37.5);
        assert_eq!(config.http_addr, ServeConfig::default().http_addr);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        assert!(
            toml::from_str::<ServeArgs>("fever-treshold = 37.5").unwrap_err().to_string().contains("unknown field")
        );
        let err = ServeArgs { utc_offset: Some("Asia".into()), ..ServeArgs::default() }.resolve().unwrap_err();
        assert!(err.to_string().starts_with("utc-offset:"), "{err}");
    }
}
