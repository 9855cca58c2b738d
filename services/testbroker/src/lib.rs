//! A real Kafka-API broker for tests. No Apache Kafka can be installed on these machines;
//! tansu (crates.io, pinned in `deploy/kafka-broker.sh`) speaks the protocol. A test gets
//! the broker in `DAYBOOK_TEST_KAFKA=host:port` when set, or starts its own tansu from
//! PATH or `~/.cargo/bin`; with neither it panics and says how to install one: a test
//! that needs a broker never skips.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn tansu_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    on_path.chain(cargo_home.map(|c| c.join("bin"))).map(|dir| dir.join("tansu")).find(|p| p.is_file()).unwrap_or_else(
        || {
            panic!(
                "the Kafka tests need a broker: set DAYBOOK_TEST_KAFKA=host:port, or put tansu on PATH \
             (install it with deploy/kafka-broker.sh install)"
            )
        },
    )
}

/// A tansu this test started; stopped when dropped.
pub struct Tansu {
    port: u16,
    storage: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Clients must authenticate (SASL/SCRAM).
    authentication: bool,
    /// The address it tells clients to reach it at, when not its own (a TLS front).
    advertised: Option<String>,
}

impl Tansu {
    /// Starts tansu on a free port with `storage` (`sqlite://tansu.db` keeps data across
    /// restarts; tansu 0.6.0's memory storage misbehaves, see deploy/KAFKA.md).
    pub fn start(storage: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let mut tansu =
            Self { port, storage: storage.to_owned(), dir, child: None, authentication: false, advertised: None };
        tansu.restart();
        tansu
    }

    /// Starts tansu (sqlite storage) requiring SASL/SCRAM-SHA-512, with one user. tansu
    /// 0.6.0 cannot add a user once authentication is on (its own client does not
    /// authenticate), so the user is added first and the broker restarted with it on.
    pub fn start_with_scram_user(name: &str, password: &str) -> Self {
        let mut tansu = Self::start("sqlite://tansu.db");
        let broker = format!("tcp://{}", tansu.addr());
        let created = Command::new(tansu_binary())
            .args(["user", "create", name, password, "--broker", &broker, "--mechanism", "scram512"])
            .current_dir(tansu.dir.path())
            .output()
            .expect("tansu user create runs");
        assert!(created.status.success(), "tansu user create: {}", String::from_utf8_lossy(&created.stderr));
        tansu.stop();
        tansu.authentication = true;
        tansu.restart();
        tansu
    }

    /// Starts tansu behind a [`TlsFront`] that speaks TLS with `cert_chain` and `key`
    /// (PEM files) and requires a client certificate from `client_ca`. Clients reach it
    /// at the front's `localhost:port` (returned), the name its certificate must carry.
    pub fn start_behind_tls(cert_chain: &Path, key: &Path, client_ca: &Path) -> (Self, TlsFront) {
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let front_addr = format!("localhost:{}", front.local_addr().unwrap().port());
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut tansu = Self {
            port,
            storage: "sqlite://tansu.db".to_owned(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            authentication: false,
            advertised: Some(front_addr.clone()),
        };
        tansu.restart();
        let front = TlsFront::start(front, front_addr, tansu.addr(), cert_chain, key, client_ca);
        (tansu, front)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id while it runs (a benchmark reads its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "tansu is running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = self.advertised.as_ref().map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("tansu.log")).unwrap();
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                &self.storage,
            ])
            .args(self.authentication.then_some("--authentication"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr()).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tansu exited with {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "tansu did not answer on {}: {}", self.addr(), self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it as an operator would (SIGTERM), killing it if that does not work.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        while TcpStream::connect(self.addr()).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The broker of one test: the one in `DAYBOOK_TEST_KAFKA`, or a tansu of its own.
pub struct Broker {
    pub addr: String,
    _own: Option<Tansu>,
}

impl Broker {
    /// A broker someone else runs.
    pub fn at(addr: &str) -> Self {
        Broker { addr: addr.to_owned(), _own: None }
    }
}

pub fn broker() -> Broker {
    match std::env::var("DAYBOOK_TEST_KAFKA") {
        Ok(addr) if !addr.trim().is_empty() => Broker { addr, _own: None },
        _ => {
            let tansu = Tansu::start("sqlite://tansu.db");
            Broker { addr: tansu.addr(), _own: Some(tansu) }
        }
    }
}

/// A TLS terminator in front of a broker: each connection's TLS handshake (with a client
/// certificate required) is done here, then its bytes go to the broker in clear. tansu
/// 0.6.0 cannot serve TLS (deploy/KAFKA.md); with this, a Kafka client's TLS settings meet
/// a real handshake and a real broker behind it.
pub struct TlsFront {
    pub addr: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TlsFront {
    fn start(
        listener: TcpListener,
        addr: String,
        broker: String,
        cert_chain: &Path,
        key: &Path,
        client_ca: &Path,
    ) -> Self {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};

        let certs = |path: &Path| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_file_iter(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .map(Result::unwrap)
                .collect()
        };
        let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in certs(client_ca) {
            roots.add(ca).unwrap();
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone()).build().unwrap();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(cert_chain), PrivateKeyDer::from_pem_file(key).unwrap())
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_io().build().unwrap();
        listener.set_nonblocking(true).unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, broker) = (acceptor.clone(), broker.clone());
                tokio::spawn(async move {
                    // A refused handshake (no or a foreign client certificate) just closes.
                    let Ok(mut client) = acceptor.accept(client).await else { return };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&broker).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        TlsFront { addr, runtime: Some(runtime) }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
