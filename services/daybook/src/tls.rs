//! TLS on both ports and in the CLI's clients (rustls on the ring provider), the guard
//! that closes silent connections, and [`client_name`]: the subject CN of an mTLS
//! client's certificate, which the auth layer maps to a token name.
//!
//! The server reads its certificate, key and client CA once, at start; a bad file stops
//! it there, naming the setting. With `tls-client-ca` both ports require a client
//! certificate signed by that CA (mTLS): the gRPC handlers find the chain in
//! `tonic::Request::peer_certs()`.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::server::Connected;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Where the server's TLS material lives (`tls-cert`, `tls-key`, `tls-client-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the CA(s) client certificates must chain to; set, a client without one is
    /// refused in the handshake.
    pub client_ca: Option<PathBuf>,
}

/// The server's TLS, read and checked: one config per port.
#[derive(Clone)]
pub struct ServerTls {
    pub grpc: ServerTlsConfig,
    pub http: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

fn read(path: &Path, setting: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{setting}: reading {}", path.display()))
}

fn certificates(pem: &[u8], path: &Path, setting: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{setting}: {}: {e}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{setting}: {} holds no PEM certificate", path.display());
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ServerTls {
    /// Reads and checks the files; `handshake_timeout` bounds a client's handshake.
    pub fn load(files: &TlsFiles, handshake_timeout: Duration) -> anyhow::Result<Self> {
        let cert_pem = read(&files.cert, "tls-cert")?;
        let key_pem = read(&files.key, "tls-key")?;
        let certs = certificates(&cert_pem, &files.cert, "tls-cert")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| anyhow::anyhow!("tls-key: {}: {e}", files.key.display()))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("rustls protocol versions")?;
        let mut grpc =
            ServerTlsConfig::new().identity(Identity::from_pem(&cert_pem, &key_pem)).timeout(handshake_timeout);
        let builder = match &files.client_ca {
            Some(path) => {
                let ca_pem = read(path, "tls-client-ca")?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(&ca_pem, path, "tls-client-ca")? {
                    roots.add(cert).with_context(|| format!("tls-client-ca: {}", path.display()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .with_context(|| format!("tls-client-ca: {}", path.display()))?;
                grpc = grpc.client_ca_root(Certificate::from_pem(&ca_pem));
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut http = builder.with_single_cert(certs, key).context("tls-key: does not go with tls-cert")?;
        // The HTTP port speaks HTTP/1.1 only (Prometheus scrapes).
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { grpc, http: Arc::new(http) })
    }
}

/// The subject common name (CN) of the leaf certificate of `certs`, as a client presented
/// it (`tonic::Request::peer_certs()`): what names an mTLS client. `None` when there is
/// no certificate, it does not parse, or its subject has no CN or more than one.
pub fn client_name(certs: &[CertificateDer<'_>]) -> Option<String> {
    let leaf = certs.first()?;
    let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
    common_name(cert.subject())
}

/// The one CN of an X.501 Name's RDNSequence contents (`SEQUENCE OF SET OF
/// AttributeTypeAndValue`, without the outer tag, as webpki gives it).
fn common_name(mut rdns: &[u8]) -> Option<String> {
    // id-at-commonName, 2.5.4.3.
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut found = None;
    while !rdns.is_empty() {
        let (tag, mut set, rest) = der(rdns)?;
        rdns = rest;
        if tag != 0x31 {
            return None;
        }
        while !set.is_empty() {
            let (tag, pair, rest) = der(set)?;
            set = rest;
            let (oid_tag, oid, value) = der(pair)?;
            if tag != 0x30 || oid_tag != 0x06 {
                return None;
            }
            if oid != CN {
                continue;
            }
            let (value_tag, text, _) = der(value)?;
            // UTF8String, PrintableString, IA5String: the forms a CN is written in.
            if !matches!(value_tag, 0x0c | 0x13 | 0x16) || found.is_some() {
                return None;
            }
            found = Some(String::from_utf8(text.to_vec()).ok()?);
        }
    }
    found
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |len, b| (len << 8) | usize::from(*b)), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The CLI's TLS flags, for the commands that connect to a server (`report`, `export`,
/// `simulate`). TLS is used when the target is `https://`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// PEM: the CA that signed the server's certificate (needed for an https:// target).
    #[arg(long, env = "DAYBOOK_TARGET_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM: this client's certificate, for a server that requires one (mTLS).
    #[arg(long, env = "DAYBOOK_TARGET_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM: the key of --tls-cert.
    #[arg(long, env = "DAYBOOK_TARGET_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ClientArgs {
    /// The TLS settings for a connection to `target`: `None` for `http://`.
    pub fn config(&self, target: &str) -> anyhow::Result<Option<ClientTlsConfig>> {
        if !target.starts_with("https://") {
            anyhow::ensure!(
                self.tls_ca.is_none() && self.tls_cert.is_none(),
                "--tls-ca and --tls-cert need an https:// target, not {target}"
            );
            return Ok(None);
        }
        let ca = self.tls_ca.as_ref().with_context(|| format!("{target}: an https:// target needs --tls-ca"))?;
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca, "--tls-ca")?));
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config = config.identity(Identity::from_pem(read(cert, "--tls-cert")?, read(key, "--tls-key")?));
        }
        Ok(Some(config))
    }

    /// A channel to `target`, over TLS when it is `https://`.
    pub async fn connect(&self, target: &str) -> anyhow::Result<tonic::transport::Channel> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(target.to_owned())
            .with_context(|| format!("{target:?} is not a server address like http://127.0.0.1:50051"))?
            .connect_timeout(Duration::from_secs(10));
        if let Some(tls) = self.config(target)? {
            endpoint = endpoint.tls_config(tls).context("TLS settings")?;
        }
        endpoint.connect().await.with_context(|| format!("connecting to daybook at {target}"))
    }
}

/// A connection closed when nothing moves on it for `timeout`, neither from its peer nor
/// to it: a read then fails with `TimedOut`, which ends the connection. A silent client,
/// one that never sends the HTTP/2 preface or a TLS hello, is let go. Live HTTP/2
/// connections always read within the keepalive interval (the server's pings are
/// answered), so the timeout must be longer than that interval. An HTTP/1.1 stream the
/// server writes to (the console's live updates, with a heartbeat shorter than the
/// timeout) is live too, though its client sends nothing after the request.
#[derive(Debug)]
pub struct Idle<IO> {
    io: IO,
    timeout: Duration,
    last_active: Instant,
    // Moved on only when it fires, not at every read: no timer work on a busy stream.
    deadline: Pin<Box<Sleep>>,
}

/// The gRPC port's connections, each guarded by [`Idle`]: what the server hands tonic
/// (which adds TLS on top when configured).
pub fn incoming(
    listener: tokio::net::TcpListener,
    idle_timeout: Duration,
) -> impl tokio_stream::Stream<Item = io::Result<Idle<tokio::net::TcpStream>>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |tcp| tcp.map(|tcp| Idle::new(tcp, idle_timeout)))
}

impl<IO> Idle<IO> {
    pub fn new(io: IO, timeout: Duration) -> Self {
        let now = Instant::now();
        Self { io, timeout, last_active: now, deadline: Box::pin(tokio::time::sleep_until(now + timeout)) }
    }

    /// Bytes that went out keep the connection alive, as bytes that came in do.
    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.last_active = Instant::now();
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Idle<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_active = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => loop {
                if this.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let due = this.last_active + this.timeout;
                if due <= Instant::now() {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle")));
                }
                this.deadline.as_mut().reset(due);
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Idle<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

// tonic finds the peer's address, and under TLS its certificates, through this.
impl<IO: Connected> Connected for Idle<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RDNSequence's contents: one SET with one (OID, value) pair per attribute.
    fn name(attributes: &[(&[u8], u8, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (oid, tag, text) in attributes {
            let mut pair = vec![0x06, oid.len() as u8];
            pair.extend_from_slice(oid);
            pair.extend([*tag, text.len() as u8]);
            pair.extend_from_slice(text.as_bytes());
            let mut set = vec![0x30, pair.len() as u8];
            set.extend(pair);
            out.extend([0x31, set.len() as u8]);
            out.extend(set);
        }
        out
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];

    #[test]
    fn the_common_name_is_found_among_other_attributes() {
        assert_eq!(
            common_name(&name(&[(O, 0x0c, "Daybook"), (CN, 0x0c, "school-S001")])).as_deref(),
            Some("school-S001")
        );
        assert_eq!(common_name(&name(&[(CN, 0x13, "cdc-foshan")])).as_deref(), Some("cdc-foshan"));
    }

    #[test]
    fn no_cn_two_cns_or_broken_der_name_nobody() {
        assert_eq!(common_name(&name(&[(O, 0x0c, "Daybook")])), None);
        assert_eq!(common_name(&name(&[(CN, 0x0c, "a"), (CN, 0x0c, "b")])), None);
        // A BMPString CN is not read as UTF-8.
        assert_eq!(common_name(&name(&[(CN, 0x1e, "ab")])), None);
        let mut cut = name(&[(CN, 0x0c, "school-S001")]);
        cut.pop();
        assert_eq!(common_name(&cut), None);
        assert_eq!(client_name(&[]), None);
        assert_eq!(client_name(&[CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])]), None);
    }
}
