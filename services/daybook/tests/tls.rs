//! TLS on both ports, with certificates the test makes (rcgen): a real tonic client over
//! TLS gets a report, a plain-text client or one that trusts another CA is refused; with
//! `tls-client-ca` a client needs a certificate from that CA (mTLS), and the server side
//! names it by its CN; `/metrics` is served over TLS to a rustls client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use daybook::tls::{ClientArgs, ServerTls, TlsFiles, client_name};
use daybook::{Running, ServeArgs};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// A CA, and what it signs.
struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// A leaf for `names` (DNS names or IPs) with subject CN `cn`: PEM certificate, PEM
    /// key and the DER certificate.
    fn sign(&self, cn: &str, names: &[&str]) -> (String, String, CertificateDer<'static>) {
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::OrganizationName, "daybook test");
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, self.0.pem()).unwrap();
        path
    }
}

/// Writes a leaf's certificate and key; gives their paths.
fn write_pair(
    dir: &Path,
    name: &str,
    (cert, key, _): &(String, String, CertificateDer<'static>),
) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    (cert_path, key_path)
}

/// The files of one TLS setup: the server CA, the server's pair, a client CA and a client
/// pair it signed, and a pair a stranger's CA signed.
struct Pki {
    dir: tempfile::TempDir,
    server_ca: PathBuf,
    server: (PathBuf, PathBuf),
    client_ca: PathBuf,
    client: (PathBuf, PathBuf),
    client_der: CertificateDer<'static>,
    stranger: (PathBuf, PathBuf),
    stranger_ca: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca, stranger_ca) = (Ca::new("daybook CA"), Ca::new("school CA"), Ca::new("elsewhere"));
    let server = write_pair(dir.path(), "server", &server_ca.sign("daybook", &["localhost", "127.0.0.1"]));
    let client_leaf = client_ca.sign("school-S001", &[]);
    let client = write_pair(dir.path(), "client", &client_leaf);
    let stranger = write_pair(dir.path(), "stranger", &stranger_ca.sign("school-S001", &[]));
    Pki {
        server_ca: server_ca.write(dir.path(), "server-ca.pem"),
        client_ca: client_ca.write(dir.path(), "client-ca.pem"),
        stranger_ca: stranger_ca.write(dir.path(), "stranger-ca.pem"),
        server,
        client,
        client_der: client_leaf.2,
        stranger,
        dir,
    }
}

async fn serve(pki: &Pki, data: &Path, mutual: bool) -> Running {
    daybook::start(&serve_args(pki, data, mutual).resolve().unwrap()).await.unwrap()
}

fn serve_args(pki: &Pki, data: &Path, mutual: bool) -> ServeArgs {
    ServeArgs {
        data_dir: Some(data.to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        partitions: Some(2),
        fold_threads: Some(1),
        tls_cert: Some(pki.server.0.clone()),
        tls_key: Some(pki.server.1.clone()),
        tls_client_ca: mutual.then(|| pki.client_ca.clone()),
        ..ServeArgs::default()
    }
}

fn client(ca: &Path, pair: Option<&(PathBuf, PathBuf)>) -> ClientArgs {
    ClientArgs { tls_ca: Some(ca.to_owned()), tls_cert: pair.map(|p| p.0.clone()), tls_key: pair.map(|p| p.1.clone()) }
}

/// The province's report for today, through the `daybook report` client.
async fn report(target: &str, tls: &ClientArgs) -> anyhow::Result<String> {
    let mut client = daybook::report::connect(target, None, tls).await?;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    Ok(daybook::report::fetch(&mut client, "province", &today).await?.unit)
}

#[tokio::test]
async fn a_tls_client_gets_a_report_and_a_plain_one_is_refused() {
    let (pki, data) = (pki(), tempfile::tempdir().unwrap());
    let server = serve(&pki, data.path(), false).await;
    let port = server.grpc_addr.port();

    let trusted = client(&pki.server_ca, None);
    assert_eq!(report(&format!("https://localhost:{port}"), &trusted).await.unwrap(), "province");
    assert_eq!(report(&format!("https://127.0.0.1:{port}"), &trusted).await.unwrap(), "province", "IP SAN");

    let plain = report(&format!("http://127.0.0.1:{port}"), &ClientArgs::default()).await;
    assert!(plain.is_err(), "a plain-text client got an answer from a TLS port");
    // The CLI says what to do about it (run apart: the server shares this test's thread).
    let target = format!("http://127.0.0.1:{port}");
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_daybook"))
            .args(["report", "--unit", "province", "--target", &target])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&cli.stderr);
    assert!(!cli.status.success() && said.contains("use an https:// target"), "{said}");
    let distrusting = report(&format!("https://localhost:{port}"), &client(&pki.stranger_ca, None)).await;
    let error = format!("{:#}", distrusting.unwrap_err());
    assert!(error.contains("connecting to daybook"), "{error}");
    let no_ca = report(&format!("https://localhost:{port}"), &ClientArgs::default()).await.unwrap_err();
    assert!(no_ca.to_string().contains("--tls-ca"), "{no_ca}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_its_certificates_get_in() {
    let (pki, data) = (pki(), tempfile::tempdir().unwrap());
    let server = serve(&pki, data.path(), true).await;
    let target = format!("https://localhost:{}", server.grpc_addr.port());

    assert!(report(&target, &client(&pki.server_ca, None)).await.is_err(), "a client without a certificate got in");
    let stranger = report(&target, &client(&pki.server_ca, Some(&pki.stranger))).await;
    assert!(stranger.is_err(), "a certificate from another CA got in");
    assert_eq!(report(&target, &client(&pki.server_ca, Some(&pki.client))).await.unwrap(), "province");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn with_access_checked_a_client_certificate_stands_for_the_token_it_names() {
    let (pki, data) = (pki(), tempfile::tempdir().unwrap());
    let tokens = daybook::auth::Tokens::open(data.path()).unwrap();
    let scope =
        |name: &str| wire::pb::TokenScope { name: name.into(), read: vec!["province".into()], ..Default::default() };
    tokens.issue(&scope("school-S001")).unwrap();
    drop(tokens);
    let args = ServeArgs { auth: Some("required".into()), ..serve_args(&pki, data.path(), true) };
    let server = daybook::start(&args.clone().resolve().unwrap()).await.unwrap();
    let target = format!("https://localhost:{}", server.grpc_addr.port());
    // The client's certificate says CN=school-S001: no bearer token needed.
    assert_eq!(report(&target, &client(&pki.server_ca, Some(&pki.client))).await.unwrap(), "province");
    server.stop().await.unwrap();

    // Revoked, the name no longer stands for anything.
    daybook::auth::Tokens::open(data.path()).unwrap().revoke("school-S001").unwrap();
    let server = daybook::start(&args.resolve().unwrap()).await.unwrap();
    let target = format!("https://localhost:{}", server.grpc_addr.port());
    let refused = report(&target, &client(&pki.server_ca, Some(&pki.client))).await.unwrap_err();
    assert!(format!("{refused:#}").contains("unauthenticated"), "{refused:#}");
    server.stop().await.unwrap();
}

/// What the auth layer will do: read the client's chain from the request (tonic's
/// `peer_certs`) on a server set up as daybook's is (`ServerTls`, `tls::incoming`), and
/// name the client by its certificate's CN.
#[tokio::test]
async fn the_server_names_an_mtls_client_by_its_certificate_cn() {
    let pki = pki();
    assert_eq!(client_name(std::slice::from_ref(&pki.client_der)).as_deref(), Some("school-S001"));

    let files =
        TlsFiles { cert: pki.server.0.clone(), key: pki.server.1.clone(), client_ca: Some(pki.client_ca.clone()) };
    let tls = ServerTls::load(&files, std::time::Duration::from_secs(5)).unwrap();
    let (names_tx, mut names) = tokio::sync::mpsc::unbounded_channel();
    let (_, health) = tonic_health::server::health_reporter();
    let health = tonic::service::interceptor::InterceptedService::new(health, move |request: tonic::Request<()>| {
        let certs = request.peer_certs().expect("the client's certificates, from tonic");
        names_tx.send(client_name(&certs)).unwrap();
        Ok(request)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let incoming = daybook::tls::incoming(listener, std::time::Duration::from_secs(5));
    let server = tonic::transport::Server::builder().tls_config(tls.grpc).unwrap().add_service(health);
    tokio::spawn(server.serve_with_incoming(incoming));

    let channel =
        client(&pki.server_ca, Some(&pki.client)).connect(&format!("https://localhost:{port}")).await.unwrap();
    let answer = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await;
    let status = answer.unwrap().into_inner().status();
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving);
    assert_eq!(names.recv().await.unwrap().as_deref(), Some("school-S001"));
}

/// GET /metrics over TLS with a rustls client trusting `ca`, presenting `identity`.
async fn get_metrics(
    addr: std::net::SocketAddr,
    ca: &Path,
    identity: Option<&(PathBuf, PathBuf)>,
) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca)?)?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            vec![CertificateDer::from_pem_file(cert)?],
            rustls::pki_types::PrivateKeyDer::from_pem_file(key)?,
        )?,
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn metrics_are_served_over_tls_and_mtls() {
    let pki = pki();
    for mutual in [false, true] {
        let data = tempfile::tempdir().unwrap();
        let server = serve(&pki, data.path(), mutual).await;
        let answer = get_metrics(server.http_addr, &pki.server_ca, Some(&pki.client)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains("daybook_events_folded_total"), "{answer}");
        let without = get_metrics(server.http_addr, &pki.server_ca, None).await;
        assert_eq!(without.is_ok(), !mutual, "mutual = {mutual}: {without:?}");

        // A plain-text request gets no metrics back.
        let mut tcp = tokio::net::TcpStream::connect(server.http_addr).await.unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
        assert!(!String::from_utf8_lossy(&answer).contains("daybook_events_folded_total"));
        server.stop().await.unwrap();
    }
    drop(pki.dir);
}

#[tokio::test]
async fn bad_tls_settings_stop_the_start_naming_the_setting() {
    let (pki, data) = (pki(), tempfile::tempdir().unwrap());
    let start = |cert: &Path, key: &Path| ServeArgs {
        data_dir: Some(data.path().to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        tls_cert: Some(cert.to_owned()),
        tls_key: Some(key.to_owned()),
        ..ServeArgs::default()
    };
    let err = daybook::start(&start(&pki.server.0, &pki.client.1).resolve().unwrap()).await.unwrap_err();
    assert!(format!("{err:#}").contains("tls-key"), "{err:#}");
    let err = daybook::start(&start(&pki.server.1, &pki.server.1).resolve().unwrap()).await.unwrap_err();
    assert!(format!("{err:#}").contains("tls-cert"), "{err:#}");
    let err = ServeArgs { tls_cert: Some(pki.server.0.clone()), ..ServeArgs::default() }.resolve().unwrap_err();
    assert!(err.to_string().starts_with("tls-cert: needs tls-key"), "{err}");
}
