//! `daybook serve`: intake, embedded log, aggregator and reports in one process.

use std::net::SocketAddr;
use std::sync::Arc;

use aggregator::{AggregatorMetrics, FoldConfig, Projections};
use anyhow::Context;
use domain::Rules;
use eventlog::EmbeddedLog;
use intake::{IntakeMetrics, IntakeService};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::ServeConfig;

/// A running server; [`Running::stop`] shuts it down and releases the data directory.
#[derive(Debug)]
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

fn on_shutdown(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Opens the data directory, binds both addresses and starts every part.
pub async fn start(config: &ServeConfig) -> anyhow::Result<Running> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    let log = EmbeddedLog::open(&dir.join("log"), config.partitions).context("opening the embedded log")?;
    let mut registry = Registry::default();
    let intake_metrics = IntakeMetrics::default();
    intake_metrics.register(&mut registry);
    let aggregator_metrics = AggregatorMetrics::default();
    aggregator_metrics.register(&mut registry);

    let intake =
        IntakeService::open(log.clone(), &dir.join("intake"), intake_metrics).context("opening the intake index")?;
    let projections =
        Projections::new(aggregator::store::open(&dir.join("projections")).context("opening the projections")?);
    let reports = aggregator::grpc::ReportsService::new(
        projections.clone(),
        log.clone(),
        aggregator_metrics.folded_total.clone(),
    );

    let (shutdown, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let fold = FoldConfig { rules: Rules { fever_threshold_celsius: config.fever_threshold }, zone: config.utc_offset };
    let aggregator_log = log.clone();
    let stop = on_shutdown(&stop_rx);
    tasks.push(spawn_part(&shutdown, async move {
        aggregator::run(aggregator_log, None::<EmbeddedLog>, "aggregator", projections, fold, aggregator_metrics, stop)
            .await
            .context("aggregator stopped")
    }));

    let grpc = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
    let grpc_addr = grpc.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<wire::pb::intake_server::IntakeServer<IntakeService<EmbeddedLog>>>().await;
    health
        .set_serving::<wire::pb::reports_server::ReportsServer<aggregator::grpc::ReportsService<EmbeddedLog>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wire::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(intake.into_server())
        .add_service(reports.into_server());
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

    tracing::info!(%grpc_addr, %http_addr, data_dir = %dir.display(), "daybook serving");
    Ok(Running { grpc_addr, http_addr, shutdown, tasks })
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
