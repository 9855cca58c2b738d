//! Connection limits: one gRPC connection holds at most `max-streams` calls at once (the
//! next waits for a free stream); a connection that sends nothing is closed after the idle
//! timeout, on both ports, while a live one with an open stream outlives it (it answers
//! the server's HTTP/2 pings).

use std::time::{Duration, Instant};

use daybook::{Running, ServeArgs, ServeConfig};
use tokio::io::AsyncReadExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const IDLE: Duration = Duration::from_millis(800);

/// `daybook serve` with the default stream cap and a short idle timeout.
async fn serve(data: &std::path::Path) -> (Running, ServeConfig) {
    let args = ServeArgs {
        data_dir: Some(data.to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        partitions: Some(2),
        fold_threads: Some(1),
        ..ServeArgs::default()
    };
    let mut config = args.resolve().unwrap();
    // Shorter than the settings allow (whole seconds), so that the test is quick.
    config.limits.idle_timeout = IDLE;
    config.limits.keepalive = Duration::from_millis(200);
    config.limits.keepalive_timeout = Duration::from_millis(300);
    (daybook::start(&config).await.unwrap(), config)
}

fn watch() -> HealthCheckRequest {
    HealthCheckRequest { service: String::new() }
}

#[tokio::test]
async fn a_connection_holds_at_most_max_streams_calls_and_the_next_waits() {
    let data = tempfile::tempdir().unwrap();
    let (server, config) = serve(data.path()).await;
    assert_eq!(config.limits.max_streams, 100, "the default");
    // One channel is one HTTP/2 connection.
    let channel = daybook::tls::ClientArgs::default().connect(&format!("http://{}", server.grpc_addr)).await.unwrap();
    let mut health = HealthClient::new(channel);
    let mut open = Vec::new();
    for _ in 0..100 {
        let mut stream = health.watch(watch()).await.unwrap().into_inner();
        stream.message().await.unwrap().expect("a first status");
        open.push(stream);
    }
    let mut extra = health.clone();
    let mut waiting = tokio::spawn(async move { extra.watch(watch()).await.map(|_| ()) });
    let early = tokio::time::timeout(Duration::from_millis(500), &mut waiting).await;
    assert!(early.is_err(), "the 101st stream opened beside 100 others: {early:?}");

    open.pop();
    let late = tokio::time::timeout(Duration::from_secs(10), waiting).await;
    late.expect("the 101st stream opens once one closes").unwrap().unwrap();
    drop(open);
    server.stop().await.unwrap();
}

/// How long a TCP connection to `addr` that sends nothing stays open.
async fn silent_connection_lasts(addr: std::net::SocketAddr) -> Duration {
    let start = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 256];
    // The server may write (its HTTP/2 SETTINGS) before it closes: read to the end.
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("the silent connection was closed");
    start.elapsed()
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout_on_both_ports() {
    let data = tempfile::tempdir().unwrap();
    let (server, _) = serve(data.path()).await;
    for (port, addr) in [("grpc", server.grpc_addr), ("http", server.http_addr)] {
        let lasted = silent_connection_lasts(addr).await;
        assert!(lasted >= IDLE && lasted < IDLE * 4, "{port}: closed after {lasted:?}, idle timeout {IDLE:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_live_connection_with_an_open_stream_outlives_the_idle_timeout() {
    let data = tempfile::tempdir().unwrap();
    let (server, _) = serve(data.path()).await;
    let channel = daybook::tls::ClientArgs::default().connect(&format!("http://{}", server.grpc_addr)).await.unwrap();
    let mut health = HealthClient::new(channel);
    let mut stream = health.watch(watch()).await.unwrap().into_inner();
    stream.message().await.unwrap().expect("a first status");
    tokio::time::sleep(IDLE * 3).await;
    // Still open: no status change to read, and no error either.
    let next = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(next.is_err(), "the stream ended though its client was live: {next:?}");
    server.stop().await.unwrap();
}
