//! What a caller hears from a service this instance does not run: UNIMPLEMENTED naming
//! the service and what serves it, where tonic would answer with an empty message.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{Service, http};
use tonic::server::NamedService;

/// Stands in for the service `N` names (a generated server type; only its name is used).
pub struct Unserved<N> {
    message: Arc<str>,
    name: PhantomData<fn() -> N>,
}

impl<N> Clone for Unserved<N> {
    fn clone(&self) -> Self {
        Self { message: self.message.clone(), name: PhantomData }
    }
}

impl<N: NamedService> Unserved<N> {
    /// `runs`: what this instance does serve; `served_by`: the command that serves `N`.
    pub fn new(runs: &str, served_by: &str) -> Self {
        let message = format!("{} is not served by this instance ({runs}); {served_by} serves it", N::NAME);
        Self { message: message.into(), name: PhantomData }
    }
}

impl<N: NamedService> NamedService for Unserved<N> {
    const NAME: &'static str = N::NAME;
}

impl<N, B> Service<http::Request<B>> for Unserved<N> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<B>) -> Self::Future {
        std::future::ready(Ok(tonic::Status::unimplemented(self.message.to_string()).into_http()))
    }
}
