//! Prometheus metrics over HTTP/1.1 at `/metrics`, over TLS when the server has it.
//!
//! Its own accept loop rather than `axum::serve`: each connection is guarded by
//! [`Idle`] (a silent client is let go) and its TLS handshake runs on the connection's
//! own task, so a slow handshake holds up nobody else.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::auth::Gate;
use crate::tls::Idle;

/// `/metrics`; when `gate` checks access, to a valid bearer token only.
fn app(registry: Arc<Registry>, gate: Gate) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut body = String::new();
                    match prometheus_client::encoding::text::encode(&mut body, &registry) {
                        Ok(()) => {
                            ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                                .into_response()
                        }
                        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                    }
                }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(gate, authenticated))
}

/// Serves until `stop`, then waits for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    gate: Gate,
    tls: Option<Arc<ServerConfig>>,
    idle_timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = TowerToHyperService::new(app(registry, gate));
    let tls = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(idle_timeout);
    tokio::pin!(stop);
    loop {
        let tcp = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let io = Idle::new(tcp, idle_timeout);
        let (tls, service, http, watcher) = (tls.clone(), service.clone(), http.clone(), graceful.watcher());
        tokio::spawn(async move {
            let served = match tls {
                Some(tls) => match tokio::time::timeout(idle_timeout, tls.accept(io)).await {
                    Ok(Ok(io)) => watcher.watch(http.serve_connection(TokioIo::new(io), service)).await,
                    Ok(Err(e)) => return tracing::debug!(error = %e, "metrics: TLS handshake failed"),
                    Err(_) => return tracing::debug!("metrics: TLS handshake timed out"),
                },
                None => watcher.watch(http.serve_connection(TokioIo::new(io), service)).await,
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "metrics: connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// 401 for a request without a valid `Authorization: Bearer <token>`, as gRPC answers
/// UNAUTHENTICATED.
async fn authenticated(
    axum::extract::State(gate): axum::extract::State<Gate>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match gate.identify(&tonic::metadata::MetadataMap::from_headers(request.headers().clone()), None) {
        Ok(_) => next.run(request).await,
        Err(status) => (axum::http::StatusCode::UNAUTHORIZED, status.message().to_owned()).into_response(),
    }
}
