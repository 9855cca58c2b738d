//! Shared by the tests that run `daybook aggregate` as processes of their own (to kill
//! them): starting one, and a Reports client that waits for it to answer.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tonic::transport::Channel;
use wire::pb::reports_client::ReportsClient;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `daybook aggregate` of `group` on `log`, its data in `dir/data` and its output
/// appended to `dir/aggregator.log`, serving gRPC on `port`; `env` adds settings.
pub fn spawn_aggregator(log: &str, group: &str, dir: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    let output = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("aggregator.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_daybook"))
        .arg("aggregate")
        .env("DAYBOOK_LOG", log)
        .env("DAYBOOK_GROUP", group)
        .env("DAYBOOK_DATA_DIR", dir.join("data"))
        .env("DAYBOOK_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("DAYBOOK_HTTP_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .expect("daybook aggregate starts")
}

/// A Reports client of the aggregator on `port`, once it answers (within a minute).
pub async fn reports_client(port: u16) -> ReportsClient<Channel> {
    for _ in 0..600 {
        if let Ok(client) = ReportsClient::connect(format!("http://127.0.0.1:{port}")).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the aggregator on port {port} never answered")
}
