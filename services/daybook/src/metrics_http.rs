//! The HTTP port: Prometheus metrics at `/metrics` and the operators' console (`/`,
//! `/api/v1/…`, the `webconsole` crate), over HTTP/1.1, over TLS when the server has it.
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

/// `/metrics`, and the console where this process reads reports; when `gate` checks
/// access, to a valid bearer token only (the console's page itself is public: it asks
/// for a token).
fn app(registry: Arc<Registry>, gate: Gate, console: Option<webconsole::Console>) -> Router {
    let metrics = metrics_app(registry, gate.clone());
    match console {
        Some(console) => metrics.merge(console.pages()).merge(console.api().route_layer(
            axum::middleware::from_fn_with_state(gate.for_traffic(crate::auth::Traffic::Reads), with_access),
        )),
        None => metrics,
    }
}

fn metrics_app(registry: Arc<Registry>, gate: Gate) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| {
                let registry = registry.clone();
                async move {
                    let mut body = String::new();
                    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
                        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
                    }
                    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
                    if accept.contains("application/openmetrics-text") {
                        ([(CONTENT_TYPE, OPENMETRICS)], body).into_response()
                    } else {
                        ([(CONTENT_TYPE, PROMETHEUS_TEXT)], to_prometheus_text(&body)).into_response()
                    }
                }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(gate, authenticated))
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as Prometheus's classic text format (0.0.4), for a scraper that does
/// not ask for OpenMetrics: there a counter's family is named with its `_total` suffix
/// (else the samples read as untyped), there is no `# UNIT` nor `# EOF`, and an info
/// metric is a gauge named `_info`.
fn to_prometheus_text(openmetrics: &str) -> String {
    let kinds: std::collections::HashMap<&str, &str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' ')).collect();
    let family = |name: &str| match kinds.get(name).copied() {
        Some("counter") => (format!("{name}_total"), "counter"),
        Some("info") => (format!("{name}_info"), "gauge"),
        Some(kind @ ("gauge" | "histogram" | "summary")) => (name.to_owned(), kind),
        _ => (name.to_owned(), "untyped"),
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, _)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            let (sample, kind) = family(name);
            out += &format!("# TYPE {sample} {kind}\n");
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out += &format!("# HELP {} {help}\n", family(name).0);
        } else {
            out += line;
            out.push('\n');
        }
    }
    out
}

/// Serves until `stop`, then waits for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    gate: Gate,
    console: Option<webconsole::Console>,
    tls: Option<Arc<ServerConfig>>,
    idle_timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = TowerToHyperService::new(app(registry, gate, console));
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

/// The console's API passes the gRPC reads' own gate (token, rate limit, open streams),
/// which leaves the caller's `Access` in the request's extensions; a refusal is answered
/// as the API answers errors (401, 429).
async fn with_access(
    axum::extract::State(mut gate): axum::extract::State<crate::auth::GateFor>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tonic::service::Interceptor;
    let metadata = tonic::metadata::MetadataMap::from_headers(request.headers().clone());
    let passed = gate.call(tonic::Request::from_parts(metadata, Default::default(), ()));
    match passed.map(|p| p.extensions().get::<domain::access::Access>().cloned()) {
        Ok(Some(access)) => {
            request.extensions_mut().insert(access);
            next.run(request).await
        }
        Ok(None) => webconsole::error(&tonic::Status::internal("the gate left no access")),
        Err(status) => webconsole::error(&status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_a_counters_family_by_its_samples_and_drops_openmetrics_lines() {
        let openmetrics = "# HELP daybook_events_accepted Events accepted.\n\
            # TYPE daybook_events_accepted counter\n\
            daybook_events_accepted_total{kind=\"health\"} 3\n\
            # HELP daybook_lag Records behind.\n\
            # TYPE daybook_lag gauge\n\
            # UNIT daybook_lag records\n\
            daybook_lag 7\n\
            # HELP daybook_build Build.\n\
            # TYPE daybook_build info\n\
            daybook_build_info{version=\"0.1.0\"} 1\n\
            # EOF\n";
        let classic = to_prometheus_text(openmetrics);
        assert_eq!(
            classic,
            "# HELP daybook_events_accepted_total Events accepted.\n\
             # TYPE daybook_events_accepted_total counter\n\
             daybook_events_accepted_total{kind=\"health\"} 3\n\
             # HELP daybook_lag Records behind.\n\
             # TYPE daybook_lag gauge\n\
             daybook_lag 7\n\
             # HELP daybook_build_info Build.\n\
             # TYPE daybook_build_info gauge\n\
             daybook_build_info{version=\"0.1.0\"} 1\n"
        );
    }
}
