//! The daybook server: intake, aggregator and reports, all in one process (`serve`) or,
//! over Kafka, as separate processes (`intake`, `aggregate`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use aggregator::grpc::ReportsService;
use aggregator::{AggregatorMetrics, FoldConfig, Projections};
use anyhow::Context;
use domain::Rules;
use eventlog::{EmbeddedLog, EventLog, KafkaLog};
use feeds::grpc::FeedsService;
use feeds::{FeedStore, Publisher};
use intake::{IntakeMetrics, IntakeService};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use wire::pb::feeds_server::FeedsServer;
use wire::pb::intake_server::IntakeServer;
use wire::pb::reports_server::ReportsServer;

use crate::config::{LogChoice, ServeConfig};

/// A running server; [`Running::stop`] shuts it down and releases the data directory.
#[derive(Debug)]
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Events folded since start by this process's aggregators (none without the
    /// aggregate role): for a program that embeds the server and times the fold.
    pub events_folded: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

fn on_shutdown(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Which parts a process runs: `serve` runs both; over Kafka they can run apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    /// Intake and aggregator (`daybook serve`).
    All,
    /// gRPC intake to the log (`daybook intake`).
    Intake,
    /// Log to projections, and the report queries (`daybook aggregate`).
    Aggregate,
}

impl Roles {
    fn intake(self) -> bool {
        self != Roles::Aggregate
    }

    fn aggregate(self) -> bool {
        self != Roles::Intake
    }
}

/// Starts `daybook serve`: every part, in this process.
pub async fn start(config: &ServeConfig) -> anyhow::Result<Running> {
    start_roles(config, Roles::All).await
}

/// Opens the data directory and the log, binds both addresses and starts `roles`.
pub async fn start_roles(config: &ServeConfig, roles: Roles) -> anyhow::Result<Running> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    match &config.log {
        LogChoice::Embedded => {
            anyhow::ensure!(
                roles == Roles::All,
                "log: the embedded log serves one process; run `daybook serve`, or use a kafka:// log"
            );
            let log = EmbeddedLog::open(&dir.join("log"), config.partitions).context("opening the embedded log")?;
            let status = {
                let log = log.clone();
                move |folded: Projections| aggregator::grpc::local_status(log, folded)
            };
            // Each aggregator folds its share of the partitions, so of the schools: their
            // projections are disjoint but for the unit registry's cities and province,
            // which all write alike, and summed at read time.
            let shares = config.aggregators();
            let fold_logs = (0..shares).map(|index| log.share(index, shares)).collect();
            build(config, roles, log, fold_logs, None::<EmbeddedLog>, None, status).await
        }
        LogChoice::Kafka(kafka) => {
            let (events, changelog) = crate::kafka::connect((**kafka).clone(), &config.group).await?;
            let status = {
                let (events, changelog, group) = (events.clone(), changelog.clone(), config.group.clone());
                move |view: Projections| crate::kafka::status(events, changelog, view, group)
            };
            // One aggregator per process: each publishes its outbox to the changelog, and
            // the group splits the partitions between processes.
            let fold_logs = vec![events.clone()];
            build(config, roles, events, fold_logs, Some(changelog), Some((**kafka).clone()), status).await
        }
    }
}

async fn build<L: EventLog, C: EventLog>(
    config: &ServeConfig,
    roles: Roles,
    log: L,
    fold_logs: Vec<L>,
    changelog: Option<C>,
    kafka: Option<eventlog::KafkaConfig>,
    status: impl FnOnce(Projections) -> aggregator::grpc::StatusSource,
) -> anyhow::Result<Running> {
    let dir = &config.data_dir;
    let mut registry = Registry::default();
    let (shutdown, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let (health, health_service) = tonic_health::server::health_reporter();

    let intake = if roles.intake() {
        let metrics = IntakeMetrics::default();
        metrics.register(&mut registry);
        let service = IntakeService::open(log.clone(), &dir.join("intake"), metrics, config.horizon_days)
            .context("opening the intake index")?;
        health.set_serving::<IntakeServer<IntakeService<L>>>().await;
        Some(service.into_server())
    } else {
        None
    };

    let mut feeds_service = None;
    let metrics = AggregatorMetrics::default();
    let events_folded = metrics.folded_total.clone();
    let reports = if roles.aggregate() {
        metrics.register(&mut registry);
        let db = aggregator::store::open_db(&dir.join("projections")).context("opening the projections")?;
        let folded = Projections::new(db.open_tree("projections")?);
        let fold = FoldConfig {
            rules: Rules { fever_threshold_celsius: config.fever_threshold, observation_days: config.observation_days },
            zone: config.utc_offset,
        };
        // Over Kafka every instance reads the whole changelog into its view; on the
        // embedded log the aggregators' one store is complete already.
        let readable = match &changelog {
            Some(changelog) => {
                let view = Projections::new(db.open_tree("view")?);
                let group = format!("{}-view-{}", config.group, instance_id(dir)?);
                let (changelog, target, stop) = (changelog.clone(), view.clone(), on_shutdown(&stop_rx));
                tasks.push(spawn_part(&shutdown, async move {
                    aggregator::run_view(changelog, &group, target, stop).await.context("view stopped")
                }));
                view
            }
            None => folded.clone(),
        };
        let mut reports = ReportsService::new(readable.clone(), status(readable.clone()), metrics.folded_total.clone());
        if roles == Roles::All || config.publish_feeds {
            let (service, publication) = start_feeds(config, &db, readable, kafka, &shutdown, &stop_rx, &mut tasks)?;
            reports = reports.with_publication(publication);
            health.set_serving::<FeedsServer<FeedsService>>().await;
            feeds_service = Some(service.into_server());
        }
        for (index, events) in (0..).zip(fold_logs) {
            let (changelog, group, stop) = (changelog.clone(), config.group.clone(), on_shutdown(&stop_rx));
            let (folded, metrics) = (folded.for_writer(index), metrics.clone());
            tasks.push(spawn_part(&shutdown, async move {
                aggregator::run(events, changelog, &group, folded, fold, metrics, stop)
                    .await
                    .context("aggregator stopped")
            }));
        }
        health.set_serving::<ReportsServer<ReportsService>>().await;
        Some(reports.into_server())
    } else {
        None
    };

    let grpc = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
    let grpc_addr = grpc.local_addr()?;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wire::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_optional_service(intake)
        .add_optional_service(reports)
        .add_optional_service(feeds_service);
    let stop = on_shutdown(&stop_rx);
    tasks.push(spawn_part(&shutdown, async move {
        router.serve_with_incoming_shutdown(TcpListenerStream::new(grpc), stop).await.context("gRPC server stopped")
    }));

    let http = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let http_addr = http.local_addr()?;
    let stop = on_shutdown(&stop_rx);
    tasks.push(spawn_part(&shutdown, crate::metrics_http::serve(http, Arc::new(registry), stop)));

    tracing::info!(%grpc_addr, %http_addr, data_dir = %dir.display(), ?roles, "daybook serving");
    Ok(Running { grpc_addr, http_addr, events_folded, shutdown, tasks })
}

/// Starts the feeds on the read side `readable`: the publisher (day close, revisions,
/// alerts) and, over Kafka, the copy of each office's feed to its topic.
fn start_feeds(
    config: &ServeConfig,
    db: &sled::Db,
    readable: Projections,
    kafka: Option<eventlog::KafkaConfig>,
    shutdown: &watch::Sender<bool>,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<(FeedsService, aggregator::grpc::Publication)> {
    let store = FeedStore::open(db).context("opening the feed store")?;
    let publisher = Publisher::new(
        readable.clone(),
        store.clone(),
        config.offices.clone(),
        config.close,
        config.utc_offset,
        config.clock.clone(),
        config.horizon_days,
    );
    let stop = on_shutdown(stop_rx);
    tasks.push(spawn_part(shutdown, async move { publisher.run(stop).await.context("feeds stopped") }));
    if let Some(kafka) = kafka {
        let (forwarded, stop) = (store.clone(), on_shutdown(stop_rx));
        tasks.push(spawn_part(shutdown, async move {
            let connect = move |offices: std::collections::BTreeSet<String>| {
                let mut config = kafka.clone();
                config.topics = offices.iter().map(|o| feeds::forward::topic(o)).collect();
                // One partition: the office's feed keeps its order. Keyed by unit and
                // date, so compaction keeps the newest version of each report.
                config.partitions = 1;
                config.topic_config =
                    std::collections::BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
                async move {
                    tokio::task::spawn_blocking(move || KafkaLog::connect(config))
                        .await
                        .map_err(|e| eventlog::LogError::Unavailable(e.to_string()))?
                }
            };
            feeds::forward::run(forwarded, connect, stop).await.context("feed forwarding stopped")
        }));
    }
    let (describing, projections, close) = (store.clone(), readable.clone(), config.close);
    let publication: aggregator::grpc::Publication =
        Arc::new(move |report| describing.describe(&projections, &close, report).map_err(|e| e.to_string()));
    let service = FeedsService::new(
        store,
        readable,
        config.offices.clone(),
        config.close,
        config.clock.clone(),
        config.utc_offset,
    )
    .with_stopping(stop_rx.clone());
    Ok((service, publication))
}

/// A name for this aggregator that survives restarts: its view's consumer group.
fn instance_id(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("instance-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_owned());
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let id = format!("{:x}-{:x}", std::process::id(), nanos);
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

impl Running {
    /// Stops every part and waits until each has let go of its files.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let mut first_error = Ok(());
        for task in self.tasks {
            let result = task.await.context("server task panicked").and_then(|r| r);
            if first_error.is_ok() {
                first_error = result;
            }
        }
        first_error
    }

    /// Serves until `until` completes or a part fails, then stops every part.
    pub async fn run_until(self, until: impl Future<Output = ()>) -> anyhow::Result<()> {
        let failed = on_shutdown(&self.shutdown.subscribe());
        tokio::select! {
            () = until => {}
            () = failed => {}
        }
        self.stop().await
    }
}

/// Runs one part of the server; if it fails, the whole server shuts down.
fn spawn_part(
    shutdown: &watch::Sender<bool>,
    part: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> JoinHandle<anyhow::Result<()>> {
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let result = part.await;
        if let Err(e) = &result {
            tracing::error!(error = format!("{e:#}"), "server part failed; shutting down");
            let _ = shutdown.send(true);
        }
        result
    })
}
