//! What the CLI's client commands share: a channel to a running server that sends the
//! caller's token (`--token`, `DAYBOOK_TOKEN`) with every call.

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds `authorization: Bearer <token>` to each call, when there is a token.
#[derive(Clone, Default)]
pub struct Credentials(Option<MetadataValue<Ascii>>);

impl Credentials {
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let value = match token {
            Some(token) => Some(format!("Bearer {token}").parse().context("the token is not valid ASCII")?),
            None => None,
        };
        Ok(Self(value))
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connection that sends the caller's credentials.
pub type Connection = InterceptedService<Channel, Credentials>;

pub async fn connect(target: &str, token: Option<&str>, tls: &crate::tls::ClientArgs) -> anyhow::Result<Connection> {
    Ok(InterceptedService::new(tls.connect(target).await?, Credentials::new(token)?))
}
