//! Prometheus metrics over HTTP at `/metrics`.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::auth::Gate;

/// Serves `/metrics`; when `gate` checks access, to a valid bearer token only.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    gate: Gate,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                        .into_response(),
                    Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                }
            }
        }),
    );
    let app = app.route_layer(axum::middleware::from_fn_with_state(gate, authenticated));
    axum::serve(listener, app).with_graceful_shutdown(stop).await.context("metrics server stopped")
}

/// 401 for a request without a valid `Authorization: Bearer <token>`, as gRPC answers
/// UNAUTHENTICATED.
async fn authenticated(
    axum::extract::State(gate): axum::extract::State<Gate>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match gate.identify(&tonic::metadata::MetadataMap::from_headers(request.headers().clone())) {
        Ok(_) => next.run(request).await,
        Err(status) => (axum::http::StatusCode::UNAUTHORIZED, status.message().to_owned()).into_response(),
    }
}
