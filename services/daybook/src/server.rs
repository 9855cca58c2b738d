//! The daybook server: intake, aggregator and reports, all in one process (`serve`) or,
//! over Kafka, as separate processes (`intake`, `aggregate`).
//!
//! Every part runs supervised ([`Supervisor`]): a part that fails, panics or ends on its
//! own marks its gRPC service and the server (`""`) NOT_SERVING in the health service at
//! once, then shuts the whole server down, so that the process exits non-zero and its
//! service manager restarts it. A live server never hides a dead part.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use aggregator::{AggregatorMetrics, FoldConfig, Folder, Projections};
use anyhow::Context;
use domain::Rules;
use eventlog::{EmbeddedLog, EventLog, KafkaLog};
use feeds::grpc::FeedsService;
use feeds::{FeedStore, Publisher};
use futures::FutureExt;
use intake::{IntakeMetrics, IntakeService};
use reports::ReadModel;
use reports::grpc::ReportsService;
use tonic::service::interceptor::InterceptedService;
use wire::pb::admin_server::AdminServer;

use crate::auth::{AdminService, Gate, Tokens, Traffic};
use crate::unserved::Unserved;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::{LogChoice, ServeConfig};
use crate::services::{Roles, Service as DaybookService, Services};
use crate::tls::ServerTls;

/// A running server; [`Running::stop`] shuts it down and releases the data directory.
#[derive(Debug)]
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    supervisor: Supervisor,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

fn on_shutdown(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Starts `daybook serve`: every part, in this process.
pub async fn start(config: &ServeConfig) -> anyhow::Result<Running> {
    start_roles(config, Roles::All).await
}

/// Starts `roles`' services, or those the `services` setting names, on the configured
/// addresses.
pub async fn start_roles(config: &ServeConfig, roles: Roles) -> anyhow::Result<Running> {
    let services = config.services.unwrap_or_else(|| roles.services(config.publish_feeds));
    start_on(config, services, Listeners::bind(config).await?).await
}

/// The server's two ports, bound by the caller (a test's port 0, a socket handed over by
/// a service manager) or from the configuration.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &ServeConfig) -> anyhow::Result<Self> {
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
        let http = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
        Ok(Self { grpc, http })
    }
}

/// Opens the data directory and the log and starts `services` on `listeners`; runs until
/// [`Running::stop`] (or [`Running::run_until`] a shutdown signal).
pub async fn start_on(config: &ServeConfig, services: Services, listeners: Listeners) -> anyhow::Result<Running> {
    let services = services.check(matches!(config.log, LogChoice::Embedded))?;
    let dir = &config.data_dir;
    // Read before anything is opened: a bad certificate or key stops the start here,
    // naming the setting, with the data directory untouched.
    let tls = config.tls.as_ref().map(|files| ServerTls::load(files, config.limits.idle_timeout)).transpose()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    match &config.log {
        LogChoice::Embedded => {
            let log = EmbeddedLog::open_with(&dir.join("log"), config.partitions, config.log_disk.clone())
                .context("opening the embedded log")?;
            let status = {
                let log = log.clone();
                move |folded: Projections| reports::grpc::local_status(log, folded)
            };
            // Each aggregator folds its share of the partitions, so of the schools: their
            // projections are disjoint but for the unit registry's cities and province,
            // which all write alike, and summed at read time.
            let shares = config.aggregators();
            let fold_logs = (0..shares).map(|index| log.share(index, shares)).collect();
            let watched = Some(log.clone());
            let parts = Backend { log, fold_logs, changelog: None::<EmbeddedLog>, kafka: None, embedded: watched };
            build(config, tls, services, listeners, parts, status).await
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
            let kafka = Some((**kafka).clone());
            let parts = Backend { log: events, fold_logs, changelog: Some(changelog), kafka, embedded: None };
            build(config, tls, services, listeners, parts, status).await
        }
    }
}

/// What the log gives the server: the log intake appends to, the logs the aggregators
/// fold (a share each on the embedded log), over Kafka the changelog and the brokers'
/// settings (for the feeds' topics), on the embedded log the log to follow for a full disk.
struct Backend<L, C> {
    log: L,
    fold_logs: Vec<L>,
    changelog: Option<C>,
    kafka: Option<eventlog::KafkaConfig>,
    embedded: Option<EmbeddedLog>,
}

async fn build<L: EventLog, C: EventLog>(
    config: &ServeConfig,
    tls: Option<ServerTls>,
    services: Services,
    listeners: Listeners,
    backend: Backend<L, C>,
    status: impl FnOnce(Projections) -> reports::grpc::StatusSource,
) -> anyhow::Result<Running> {
    let Backend { log, fold_logs, changelog, kafka, embedded } = backend;
    let dir = &config.data_dir;
    let mut registry = Registry::default();
    crate::process_metrics::register(&mut registry);
    let (health, health_service) = tonic_health::server::health_reporter();
    let supervisor = Supervisor::new(health, config.fault.clone().or_else(Fault::from_env));
    let stop_rx = supervisor.shutdown.subscribe();
    let mut tasks = Vec::new();
    let checked = config.auth.required(&[config.grpc_addr, config.http_addr])?;
    let tokens = if checked { Some(Tokens::open(dir)?) } else { None };
    let gate = Gate::new(tokens, config.rate_limits);
    if !checked {
        tracing::warn!("access is not checked (auth off, loopback only): anyone on this machine may post and read");
    }

    let intake = if services.contains(DaybookService::Intake) {
        let metrics = IntakeMetrics::default();
        metrics.register(&mut registry);
        let service =
            IntakeService::open(log.clone(), &dir.join("intake"), metrics, config.horizon_days, config.cities.clone())
                .context("opening the intake index")?
                .with_clock_skew(config.clock_skew_minutes)
                .with_ack_clock({
                    let clock = config.clock.clone();
                    Arc::new(move || clock.now())
                });
        let server = Watched { inner: service.into_server(), part: Part::Intake, supervisor: supervisor.clone() };
        let server = InterceptedService::new(server, gate.for_traffic(Traffic::Posts));
        match embedded {
            Some(log) => {
                supervisor.serving(INTAKE, log.failing().borrow().is_none()).await;
                let (watching, stop) = (supervisor.clone(), on_shutdown(&stop_rx));
                tasks.push(supervisor.spawn(Part::Intake, follow_log(log, watching, stop)));
            }
            None => supervisor.serving(INTAKE, true).await,
        }
        Some(server)
    } else {
        None
    };

    let mut feeds_service = None;
    let mut console = None;
    // The bench's probe, when it times the fold, is the count GetStatus reports.
    let metrics = match &config.fold_probe {
        Some(probe) => AggregatorMetrics { folded_total: probe.clone(), ..AggregatorMetrics::default() },
        None => AggregatorMetrics::default(),
    };
    let (folding, reporting) =
        (services.contains(DaybookService::Aggregator), services.contains(DaybookService::Reports));
    let reports = if folding || reporting {
        metrics.register(&mut registry);
        let db = aggregator::store::open_db(&dir.join("projections")).context("opening the projections")?;
        let folded = Projections::new(db.open_tree("projections")?);
        let fold = FoldConfig {
            rules: Rules {
                fever_threshold_celsius: config.fever_threshold,
                observation_days: config.observation_days,
                deadline: config.close.deadline_in(config.utc_offset),
            },
            zone: config.utc_offset,
            stall_after: config.stall_after,
        };
        // Over Kafka every instance reads the whole changelog into its view; on the
        // embedded log the aggregators' one store is complete already.
        let readable = match &changelog {
            Some(changelog) if reporting => {
                let view = Projections::new(db.open_tree("view")?);
                let (changelog, target, stop) = (changelog.clone(), view.clone(), on_shutdown(&stop_rx));
                let stall_after = config.stall_after;
                tasks.push(supervisor.spawn(Part::View, async move {
                    aggregator::run_view(changelog, target, stall_after, stop).await.context("view stopped")
                }));
                let (watching, stop) = (supervisor.clone(), on_shutdown(&stop_rx));
                let stores = [folded.clone(), view.clone()];
                tasks.push(supervisor.spawn(Part::View, follow_stalls(stores, watching, stop)));
                view
            }
            _ => folded.clone(),
        };
        // Once per process, before any aggregator reads: a release that fixed a defect
        // folds what an earlier one could not. Over Kafka the record's partition may have
        // moved to another aggregator since, whose state this store does not hold: there
        // it stays listed.
        if changelog.is_none() {
            let released =
                Folder::refold_quarantined(&folded, fold.rules, fold.zone).context("folding the quarantine again")?;
            if released > 0 {
                tracing::info!(released, "records left the quarantine, folded by this release");
            }
        }
        // The server's clock, as intake judges events from the future by.
        let today: reports::grpc::Today = {
            let zone = config.utc_offset;
            Arc::new(move || chrono::Utc::now().with_timezone(&zone).date_naive())
        };
        // With the feeds, sealed days read as published; without, every day reads open.
        let publishing = services.contains(DaybookService::Feeds);
        let store = publishing.then(|| FeedStore::open(&db).context("opening the feed store")).transpose()?;
        let mut model = ReadModel::new(readable.clone(), config.close)
            .with_cities(&config.cities)
            .with_inspection_window(config.inspection_window_days);
        if let Some(store) = &store {
            model = model.with_publications(store.publications().clone());
        }
        let reports = ReportsService::new(model.clone(), status(readable), metrics.folded_total.clone())
            .with_quarantine(folded.clone())
            .with_audit(gate.audit_log())
            .with_today(today.clone())
            .with_horizon(config.horizon_days);
        if services.contains(DaybookService::Console) {
            console = Some(start_console(config, &model, today.clone(), store.as_ref(), &gate, &stop_rx));
        }
        if let Some(store) = store {
            store.metrics().register(&mut registry);
            let service = start_feeds(config, store, model, kafka, &supervisor, &mut tasks)?;
            supervisor.serving(FEEDS, true).await;
            let service = service.with_audit(gate.audit_log()).with_horizon(today, config.horizon_days).into_server();
            feeds_service = Some(InterceptedService::new(service, gate.for_traffic(Traffic::Reads)));
        }
        for (index, events) in (0..).zip(fold_logs).filter(|_| folding) {
            let (changelog, group, stop) = (changelog.clone(), config.group.clone(), on_shutdown(&stop_rx));
            let (folded, metrics) = (folded.for_writer(index), metrics.clone());
            tasks.push(supervisor.spawn(Part::Aggregator, async move {
                let setup =
                    aggregator::Aggregating { log: events, changelog, group, projections: folded, fold, metrics };
                aggregator::run(setup, stop).await.context("aggregator stopped")
            }));
        }
        match reporting {
            true => {
                supervisor.serving(REPORTS, true).await;
                Some(InterceptedService::new(reports.into_server(), gate.for_traffic(Traffic::Reads)))
            }
            false => None,
        }
    } else {
        None
    };

    let Listeners { grpc, http } = listeners;
    let grpc_addr = grpc.local_addr()?;
    // v1 and v1alpha: Python's grpcio-reflection, Postman and older grpcurl speak only the
    // latter. The health service is listed beside daybook's own.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(wire::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha().context("building gRPC reflection (v1alpha)")?;
    let reflection = reflection().build_v1().context("building gRPC reflection")?;
    // A service not run here answers so, naming what runs it, not with tonic's empty
    // UNIMPLEMENTED.
    let runs = format!("it runs {services}");
    let runs = runs.as_str();
    let unserved_intake = intake.is_none().then(|| {
        Unserved::<wire::pb::intake_server::IntakeServer<()>>::new(runs, "`daybook intake` (or `daybook serve`)")
    });
    let unserved_reports = reports.is_none().then(|| {
        Unserved::<wire::pb::reports_server::ReportsServer<()>>::new(
            runs,
            "an instance with the reports service (`daybook aggregate`, or `daybook serve`)",
        )
    });
    let unserved_feeds = feeds_service.is_none().then(|| {
        Unserved::<wire::pb::feeds_server::FeedsServer<()>>::new(
            runs,
            "an instance with the feeds service (`daybook aggregate` with publish-feeds, or services = \"...,feeds\"), or `daybook serve`,",
        )
    });
    let limits = config.limits;
    let grpc_metrics = crate::grpc_metrics::GrpcMetrics::registered(&mut registry);
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_streams)
        .http2_keepalive_interval(Some(limits.keepalive))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    if let Some(tls) = &tls {
        builder = builder.tls_config(tls.grpc.clone()).context("tls-cert, tls-key: gRPC TLS")?;
    }
    let router = builder
        .layer(grpc_metrics)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_optional_service(intake)
        .add_optional_service(reports)
        .add_optional_service(feeds_service)
        .add_optional_service(unserved_intake)
        .add_optional_service(unserved_reports)
        .add_optional_service(unserved_feeds)
        .add_service(AdminServer::with_interceptor(AdminService::new(&gate), gate.for_traffic(Traffic::Reads)));
    let stop = on_shutdown(&stop_rx);
    tasks.push(supervisor.spawn(Part::Grpc, async move {
        let incoming = crate::tls::incoming(grpc, limits.idle_timeout);
        router.serve_with_incoming_shutdown(incoming, stop).await.context("gRPC server stopped")
    }));

    let http_addr = http.local_addr()?;
    let stop = on_shutdown(&stop_rx);
    tasks.push(supervisor.spawn(
        Part::Http,
        crate::metrics_http::serve(
            http,
            Arc::new(registry),
            gate.clone(),
            console,
            tls.map(|t| t.http),
            limits.idle_timeout,
            stop,
        ),
    ));

    let tls = match &config.tls {
        None => "off",
        Some(files) if files.client_ca.is_some() => "mutual",
        Some(_) => "on",
    };
    tracing::info!(%grpc_addr, %http_addr, tls, data_dir = %dir.display(), services = %services, "daybook serving");
    Ok(Running { grpc_addr, http_addr, supervisor, tasks })
}

/// Reports' health follows the partitions its stores read: NOT_SERVING while one is
/// stalled (its reader is subscribed again meanwhile), SERVING once none is.
async fn follow_stalls(
    stores: [Projections; 2],
    supervisor: Supervisor,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let mut was_stalled = false;
    loop {
        let stalled: Vec<String> = stores.iter().flat_map(Projections::stalled).map(|tp| tp.to_string()).collect();
        if stalled.is_empty() == was_stalled {
            was_stalled = !stalled.is_empty();
            match was_stalled {
                true => tracing::warn!(?stalled, "reports NOT_SERVING: partitions stalled"),
                false => tracing::info!("reports SERVING: no partition stalled"),
            }
            supervisor.serving(REPORTS, !was_stalled).await;
        }
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Intake's health follows the embedded log: NOT_SERVING while it cannot write (a full
/// disk), SERVING once it can. Meanwhile it tries the log every [`LOG_RETRY`], so that
/// health comes back without a client having to post first.
async fn follow_log(log: EmbeddedLog, supervisor: Supervisor, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut failing = log.failing();
    let mut was_failing = false;
    tokio::pin!(stop);
    loop {
        let why = failing.borrow_and_update().clone();
        supervisor.serving(INTAKE, why.is_none()).await;
        match &why {
            Some(why) if !was_failing => {
                tracing::warn!(why, "intake NOT_SERVING: the log cannot write; reports are served read-only");
            }
            None if was_failing => tracing::info!("intake SERVING: the log writes again"),
            _ => {}
        }
        was_failing = why.is_some();
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = failing.changed() => {}
            () = tokio::time::sleep(LOG_RETRY), if was_failing => {
                let _ = log.recover().await;
            }
        }
    }
}

/// How often a failing log is tried again.
const LOG_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// The operators' console on the HTTP port: the reports of `model`, the alerts of the
/// feeds in `store` (where this instance publishes them), days refused after `today` as
/// gRPC refuses them, the page's default day by the clock that seals the days.
fn start_console(
    config: &ServeConfig,
    model: &ReadModel,
    today: reports::grpc::Today,
    store: Option<&FeedStore>,
    gate: &Gate,
    stop_rx: &watch::Receiver<bool>,
) -> webconsole::Console {
    let (clock, zone) = (config.clock.clone(), config.utc_offset);
    let console = webconsole::Console::new(model.clone(), today)
        .with_province_day(Arc::new(move || clock.now().with_timezone(&zone).date_naive()))
        .with_horizon(config.horizon_days)
        .with_audit(gate.audit_log())
        .with_stopping(stop_rx.clone())
        // A live stream writes at least this often, so the idle guard never cuts it.
        .with_heartbeat(config.limits.idle_timeout / 3);
    match store {
        Some(store) => console.with_feeds(store.clone(), config.offices.clone()),
        None => console,
    }
}

/// Starts the feeds on `store`, publishing what `model` judges: the publisher (day close,
/// revisions, alerts) and, over Kafka, the copy of each office's feed to its topic.
fn start_feeds(
    config: &ServeConfig,
    store: FeedStore,
    model: ReadModel,
    kafka: Option<eventlog::KafkaConfig>,
    supervisor: &Supervisor,
    tasks: &mut Vec<JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<FeedsService> {
    let stop_rx = &supervisor.shutdown.subscribe();
    let setup = feeds::Publishing {
        offices: config.offices.clone(),
        zone: config.utc_offset,
        clock: config.clock.clone(),
        catch_up_days: config.horizon_days,
    };
    let publisher = Publisher::new(model.clone(), store.clone(), setup);
    let stop = on_shutdown(stop_rx);
    tasks.push(supervisor.spawn(Part::Publisher, async move { publisher.run(stop).await.context("feeds stopped") }));
    if let Some(kafka) = kafka {
        let (forwarded, stop, format) = (store.clone(), on_shutdown(stop_rx), config.feed_topic_format);
        tasks.push(supervisor.spawn(Part::Forwarding, async move {
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
            feeds::forward::run(forwarded, connect, format, stop).await.context("feed forwarding stopped")
        }));
    }
    let service = FeedsService::new(store, model, config.offices.clone(), config.clock.clone(), config.utc_offset)
        .with_stopping(stop_rx.clone())
        .with_dhis2(config.dhis2.clone());
    Ok(service)
}

impl Running {
    /// Stops every part and waits until each has let go of its files. The error is the
    /// first part's failure, if one failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.supervisor.going_down().await;
        let mut first_error = Ok(());
        for task in self.tasks {
            let result = task.await.context("server task panicked").and_then(|r| r);
            if first_error.is_ok() {
                first_error = result;
            }
        }
        match self.supervisor.failure.lock().expect("failure lock poisoned").take() {
            Some(failure) => Err(failure),
            None => first_error,
        }
    }

    /// Serves until `until` completes or a part fails, then stops every part.
    pub async fn run_until(self, until: impl Future<Output = ()>) -> anyhow::Result<()> {
        let failed = on_shutdown(&self.supervisor.shutdown.subscribe());
        tokio::select! {
            () = until => {}
            () = failed => {}
        }
        self.stop().await
    }
}

const INTAKE: &str = wire::pb::intake_server::SERVICE_NAME;
const REPORTS: &str = wire::pb::reports_server::SERVICE_NAME;
const FEEDS: &str = wire::pb::feeds_server::SERVICE_NAME;
/// The whole server, in the health service.
const SERVER: &str = "";

/// A part of the server, as supervised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Aggregator,
    /// Over Kafka: the changelog applied to this instance's view.
    View,
    Publisher,
    /// Over Kafka: each office's feed copied to its topic.
    Forwarding,
    /// Intake's gRPC handlers.
    Intake,
    Grpc,
    Http,
}

impl Part {
    const ALL: [Part; 7] =
        [Part::Aggregator, Part::View, Part::Publisher, Part::Forwarding, Part::Intake, Part::Grpc, Part::Http];

    fn name(self) -> &'static str {
        match self {
            Part::Aggregator => "aggregator",
            Part::View => "view",
            Part::Publisher => "publisher",
            Part::Forwarding => "forwarding",
            Part::Intake => "intake",
            Part::Grpc => "grpc",
            Part::Http => "http",
        }
    }

    /// The gRPC service whose answers go wrong without this part (the servers
    /// themselves: the whole server only).
    fn service(self) -> Option<&'static str> {
        match self {
            Part::Aggregator | Part::View => Some(REPORTS),
            Part::Publisher | Part::Forwarding => Some(FEEDS),
            Part::Intake => Some(INTAKE),
            Part::Grpc | Part::Http => None,
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Part {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        Part::ALL.into_iter().find(|p| p.name() == text).ok_or_else(|| {
            let names: Vec<_> = Part::ALL.iter().map(|p| p.name()).collect();
            anyhow::anyhow!("fault part: {text:?} is none of {}", names.join(", "))
        })
    }
}

/// How an injected fault makes its part fail.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Panic,
    Error,
}

/// A failure injected into one part of the server once fired: the seam the supervision
/// tests use. Tests put one in [`ServeConfig::fault`]; debug builds also read
/// `DAYBOOK_FAULT=<part>:<panic|error>` (fired at start), so that a test can watch the
/// binary exit. Release builds ignore the variable.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Fault {
    part: Part,
    failure: Failure,
    fired: Arc<watch::Sender<bool>>,
}

impl Fault {
    /// A fault for `part`, armed but not fired.
    pub fn new(part: Part, failure: Failure) -> Self {
        Self { part, failure, fired: Arc::new(watch::channel(false).0) }
    }

    /// Makes the part fail now (intake: at its next request).
    pub fn fire(&self) {
        self.fired.send_replace(true);
    }

    fn from_env() -> Option<Self> {
        if !cfg!(debug_assertions) {
            return None;
        }
        let text = std::env::var("DAYBOOK_FAULT").ok().filter(|t| !t.is_empty())?;
        let parse = || -> anyhow::Result<Fault> {
            let (part, how) = text.split_once(':').context("DAYBOOK_FAULT: not <part>:<panic|error>")?;
            let failure = match how {
                "panic" => Failure::Panic,
                "error" => Failure::Error,
                other => anyhow::bail!("DAYBOOK_FAULT: {other:?} is neither panic nor error"),
            };
            Ok(Fault::new(part.parse()?, failure))
        };
        match parse() {
            Ok(fault) => {
                tracing::warn!(part = %fault.part, failure = ?fault.failure, "DAYBOOK_FAULT: injecting a failure");
                fault.fire();
                Some(fault)
            }
            Err(e) => {
                tracing::warn!(error = %e, "DAYBOOK_FAULT ignored");
                None
            }
        }
    }

    fn fired_for(&self, part: Part) -> bool {
        self.part == part && *self.fired.borrow()
    }

    /// Fails as told once fired for `part`; never completes for another part.
    async fn strike(&self, part: Part) -> anyhow::Result<()> {
        // Intake fails in its handlers, at the next request (`Watched`), not in the task
        // that follows its log's health: the test sees the request answered.
        if self.part != part || part == Part::Intake {
            return std::future::pending().await;
        }
        let _ = self.fired.subscribe().wait_for(|fired| *fired).await;
        self.fail()
    }

    fn fail(&self) -> anyhow::Result<()> {
        match self.failure {
            Failure::Panic => panic!("injected fault: {} panics", self.part),
            Failure::Error => Err(anyhow::anyhow!("injected fault: {} fails", self.part)),
        }
    }
}

/// Runs the server's parts and reports a failing one: its service and the server NOT_SERVING
/// in the health service, then every part shut down.
#[derive(Debug, Clone)]
struct Supervisor {
    shutdown: watch::Sender<bool>,
    health: HealthReporter,
    /// Set once the server is going down: no service is marked SERVING after that, and
    /// the health statuses are dropped, which ends health `Watch` streams (the gRPC server
    /// waits for every stream to end before it stops).
    down: Arc<tokio::sync::Mutex<bool>>,
    /// The first part's failure: what the server stopped for.
    failure: Arc<Mutex<Option<anyhow::Error>>>,
    fault: Option<Fault>,
}

impl Supervisor {
    fn new(health: HealthReporter, fault: Option<Fault>) -> Self {
        Self { shutdown: watch::channel(false).0, health, down: Arc::default(), failure: Arc::default(), fault }
    }

    /// Marks `service` in the health service; SERVING only while the server is up.
    async fn serving(&self, service: &str, serving: bool) {
        let down = self.down.lock().await;
        if !serving {
            self.health.set_service_status(service, ServingStatus::NotServing).await;
        } else if !*down {
            self.health.set_service_status(service, ServingStatus::Serving).await;
        }
    }

    /// `part` failed: its service and the server NOT_SERVING first, so that a client
    /// watching learns it before the connections close, then the shutdown.
    async fn failed(&self, part: Part, error: anyhow::Error) {
        tracing::error!(%part, error = format!("{error:#}"), "server part failed; shutting down");
        {
            let mut down = self.down.lock().await;
            *down = true;
            for service in part.service().into_iter().chain([SERVER]) {
                self.health.set_service_status(service, ServingStatus::NotServing).await;
            }
        }
        self.failure.lock().expect("failure lock poisoned").get_or_insert(error);
        self.going_down().await;
    }

    /// Starts shutting down: the server NOT_SERVING, every status dropped (ending health
    /// `Watch` streams, which would hold the gRPC server open), every part told to stop.
    async fn going_down(&self) {
        {
            let mut down = self.down.lock().await;
            *down = true;
            self.health.set_service_status(SERVER, ServingStatus::NotServing).await;
            let mut health = self.health.clone();
            for service in [INTAKE, REPORTS, FEEDS, SERVER] {
                health.clear_service_status(service).await;
            }
        }
        self.shutdown.send_replace(true);
    }

    /// Runs `part` on its own task. An error, a panic, or an end before the server was
    /// told to stop is a failure of the server ([`Self::failed`]).
    fn spawn(
        &self,
        part: Part,
        run: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> JoinHandle<anyhow::Result<()>> {
        let supervisor = self.clone();
        tokio::spawn(async move {
            let fault = supervisor.fault.clone();
            let run = async move {
                match fault {
                    Some(fault) => tokio::select! {
                        result = run => result,
                        result = fault.strike(part) => result,
                    },
                    None => run.await,
                }
            };
            let result = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(Ok(())) if !*supervisor.shutdown.borrow() => Err(anyhow::anyhow!("{part} ended on its own")),
                Ok(result) => result,
                Err(panic) => Err(anyhow::anyhow!("{part} panicked: {}", panic_message(&*panic))),
            };
            if let Err(e) = &result {
                supervisor.failed(part, anyhow::anyhow!("{e:#}")).await;
            }
            result
        })
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("?")
}

/// A gRPC service whose handlers are a supervised part: a handler that panics fails the
/// part (the request is answered INTERNAL), rather than only dropping its connection as
/// tonic would, unnoticed.
#[derive(Clone)]
struct Watched<S> {
    inner: S,
    part: Part,
    supervisor: Supervisor,
}

impl<S: NamedService> NamedService for Watched<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<tonic::body::Body>> for Watched<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (part, supervisor) = (self.part, self.supervisor.clone());
        let fault = supervisor.fault.clone().filter(|f| f.fired_for(part));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = async move {
                if let Some(fault) = fault {
                    fault.fail()?;
                }
                let Ok(answer) = answer.await;
                anyhow::Ok(answer)
            };
            let error = match AssertUnwindSafe(answer).catch_unwind().await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(error)) => error,
                Err(panic) => anyhow::anyhow!("{part} panicked: {}", panic_message(&*panic)),
            };
            let message = format!("{error:#}; the server is shutting down");
            supervisor.failed(part, error).await;
            Ok(tonic::Status::internal(message).into_http())
        })
    }
}
