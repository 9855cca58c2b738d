//! The parts an instance of daybook runs, as a set: intake, aggregator, reports, feeds and
//! console. `serve`, `intake` and `aggregate` are presets of it ([`Roles`]); the
//! `services` setting chooses any other set a deployment needs (a query-only instance, a
//! fold-only worker), checked against what each part needs.

use std::fmt;
use std::str::FromStr;

/// One part of daybook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// gRPC intake, appending to the log.
    Intake,
    /// Folds its share of the log's partitions into projections (over Kafka, and publishes
    /// them to the changelog).
    Aggregator,
    /// The `Reports` service on the projections (over Kafka, on a view of the changelog).
    Reports,
    /// Seals the days and feeds the offices (`Feeds`, exports); one per deployment.
    Feeds,
    /// The operators' console on the HTTP port.
    Console,
}

impl Service {
    pub const ALL: [Service; 5] = [Self::Intake, Self::Aggregator, Self::Reports, Self::Feeds, Self::Console];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Intake => "intake",
            Self::Aggregator => "aggregator",
            Self::Reports => "reports",
            Self::Feeds => "feeds",
            Self::Console => "console",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of services.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Services(u8);

impl Services {
    pub const NONE: Services = Services(0);

    pub fn all() -> Self {
        Service::ALL.into_iter().fold(Self::NONE, Self::with)
    }

    pub fn with(self, service: Service) -> Self {
        Services(self.0 | service.bit())
    }

    pub fn contains(self, service: Service) -> bool {
        self.0 & service.bit() != 0
    }

    /// Refuses a set whose parts lack what they read: the feeds and the console read the
    /// reports; on the embedded log one process runs intake, the aggregators and reports.
    pub fn check(self, embedded_log: bool) -> anyhow::Result<Self> {
        anyhow::ensure!(self != Self::NONE, "services: none chosen");
        for needs_reports in [Service::Feeds, Service::Console] {
            anyhow::ensure!(
                !self.contains(needs_reports) || self.contains(Service::Reports),
                "services: {} reads the reports; add reports",
                needs_reports.as_str()
            );
        }
        let one_process = [Service::Intake, Service::Aggregator, Service::Reports];
        anyhow::ensure!(
            !embedded_log || one_process.iter().all(|s| self.contains(*s)),
            "services: the embedded log serves one process, which runs intake, aggregator and reports \
             (`daybook serve`); split them over a kafka:// log"
        );
        Ok(self)
    }
}

impl fmt::Display for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Service::ALL.into_iter().filter(|s| self.contains(*s)).map(Service::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Services({self})")
    }
}

impl FromStr for Services {
    type Err = String;

    /// Names separated by commas: `reports,console`.
    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',').map(str::trim).filter(|name| !name.is_empty()).try_fold(Self::NONE, |set, name| {
            let service = Service::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| format!("{name:?} is not a service (intake, aggregator, reports, feeds, console)"))?;
            Ok(set.with(service))
        })
    }
}

/// The presets the server commands start: `serve`, `intake`, `aggregate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    /// Every service (`daybook serve`).
    All,
    /// gRPC intake to the log (`daybook intake`).
    Intake,
    /// Log to projections, the reports and the console, and the feeds with
    /// `publish-feeds` (`daybook aggregate`).
    Aggregate,
}

impl Roles {
    /// The services of this preset.
    pub fn services(self, publish_feeds: bool) -> Services {
        match self {
            Roles::All => Services::all(),
            Roles::Intake => Services::NONE.with(Service::Intake),
            Roles::Aggregate => {
                let set = Services::NONE.with(Service::Aggregator).with(Service::Reports).with(Service::Console);
                if publish_feeds { set.with(Service::Feeds) } else { set }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_reads_and_writes_as_names_and_refuses_what_its_parts_cannot_run() {
        let set: Services = "reports, console".parse().unwrap();
        assert_eq!(set.to_string(), "reports,console");
        assert!(set.check(false).is_ok());
        assert!("reports,spool".parse::<Services>().unwrap_err().contains("\"spool\" is not a service"));
        let feeds_alone: Services = "aggregator,feeds".parse().unwrap();
        assert!(feeds_alone.check(false).unwrap_err().to_string().contains("feeds reads the reports"));
        assert!(set.check(true).unwrap_err().to_string().contains("embedded log serves one process"));
        assert!(Services::all().check(true).is_ok());
        assert_eq!(Roles::Aggregate.services(true).to_string(), "aggregator,reports,feeds,console");
        assert_eq!(Roles::Intake.services(true).to_string(), "intake");
    }
}
