//! Every gRPC call counted by method and status code, and timed: a layer over the whole
//! gRPC server, so no service can be left out.
//!
//! The code is read off the response's headers: tonic answers a failed unary call with its
//! status there (trailers only), so a call without one succeeded as far as its handler
//! goes. A stream is counted and timed when it starts; how it ends is not known here. A
//! path no service serves is counted as method `unknown`, so that a client making up paths
//! cannot grow the metric's label set without end.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tonic::codegen::{Service, http};

type Labels = Vec<(String, String)>;

/// Seconds from 1 ms to about 16 s, doubling.
#[derive(Clone)]
struct Buckets;

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 2.0, 15))
    }
}

/// The counters and histograms, and the layer that fills them.
#[derive(Clone)]
pub struct GrpcMetrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, Buckets>,
}

impl GrpcMetrics {
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = Self { requests: Family::default(), latency: Family::new_with_constructor(Buckets) };
        registry.register("daybook_grpc_requests", "gRPC calls by method and status code", metrics.requests.clone());
        registry.register(
            "daybook_grpc_request_duration_seconds",
            "gRPC calls' time to their response headers (a unary call's whole time), by method",
            metrics.latency.clone(),
        );
        metrics
    }

    fn record(&self, path: &str, code: &str, elapsed: f64) {
        // UNIMPLEMENTED is what an unserved path gets: its method is not named.
        let method = if code == "UNIMPLEMENTED" { "unknown" } else { path.trim_start_matches('/') };
        let method = ("method".to_owned(), method.to_owned());
        self.requests.get_or_create(&vec![method.clone(), ("code".to_owned(), code.to_owned())]).inc();
        self.latency.get_or_create(&vec![method]).observe(elapsed);
    }
}

impl<S> tower_layer::Layer<S> for GrpcMetrics {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured { inner, metrics: self.clone() }
    }
}

/// A gRPC service whose calls are counted and timed.
#[derive(Clone)]
pub struct Measured<S> {
    inner: S,
    metrics: GrpcMetrics,
}

impl<S, B, RB> Service<http::Request<B>> for Measured<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let (metrics, started) = (self.metrics.clone(), Instant::now());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            let code = match &response {
                Ok(response) => code_name(response.headers().get("grpc-status")),
                // The connection, not the call, failed.
                Err(_) => "UNAVAILABLE",
            };
            metrics.record(&path, code, started.elapsed().as_secs_f64());
            response
        })
    }
}

/// The name of a `grpc-status` header's code; none is OK.
fn code_name(status: Option<&http::HeaderValue>) -> &'static str {
    let Some(status) = status else { return "OK" };
    let code = status.to_str().ok().and_then(|s| s.parse::<i32>().ok()).unwrap_or(2);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_nothing_serves_is_counted_as_unknown_and_codes_by_name() {
        let mut registry = Registry::default();
        let metrics = GrpcMetrics::registered(&mut registry);
        metrics.record("/daybook.v1.Reports/GetDailyReport", "NOT_FOUND", 0.002);
        for made_up in ["/daybook.v1.Reports/Nope1", "/x.Y/Nope2"] {
            metrics.record(made_up, "UNIMPLEMENTED", 0.001);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"{method="daybook.v1.Reports/GetDailyReport",code="NOT_FOUND"} 1"#), "{text}");
        assert!(text.contains(r#"{method="unknown",code="UNIMPLEMENTED"} 2"#), "{text}");
        assert!(!text.contains("Nope"), "{text}");
        assert_eq!(code_name(None), "OK");
        assert_eq!(code_name(Some(&http::HeaderValue::from_static("16"))), "UNAUTHENTICATED");
    }
}
