//! `alert-latency`: how long an immediate alert takes from the moment intake acknowledges
//! its event (a fever reading) to the moment an office subscribed to its feed receives it,
//! on the embedded log and on Kafka (a tansu broker started for the run, or
//! `DAYBOOK_TEST_KAFKA`). Writes a markdown table (p50, p99, max).
//!
//!     cargo run --release -p bench --bin alert-latency -- --alerts 200 --out services/bench/ALERTS.md

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use daybook::{Roles, ServeArgs};
use wire::pb;
use wire::pb::feeds_client::FeedsClient;
use wire::pb::intake_client::IntakeClient;

#[derive(Parser)]
struct Args {
    /// Fever readings to time, one after the other.
    #[arg(long, default_value_t = 200)]
    alerts: usize,
    /// Where to write the table.
    #[arg(long, default_value = "services/bench/ALERTS.md")]
    out: std::path::PathBuf,
}

fn event(n: usize, date: &str, payload: pb::event::Payload) -> pb::Event {
    pb::Event {
        site: String::new(),
        event_id: format!("alert-bench-{n}"),
        source: "alert-latency".into(),
        school: "S1".into(),
        occurred_at: format!("{date}T08:00:00+08:00"),
        payload: Some(payload),
    }
}

/// Acknowledgement-to-delivery latencies of `alerts` fever readings on a server on `log`.
async fn measure(log: Option<String>, alerts: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let prefix = format!("alertbench{}", std::process::id());
    let args = ServeArgs {
        data_dir: Some(dir.path().to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse()?),
        http_addr: Some("127.0.0.1:0".parse()?),
        group: log.as_ref().map(|_| format!("{prefix}-aggregators")),
        log: log.map(|l| format!("{l}?prefix={prefix}.&partitions=4")),
        ..ServeArgs::default()
    };
    let running = daybook::start_roles(&args.resolve()?, Roles::All).await.context("starting daybook")?;
    let target = format!("http://{}", running.grpc_addr);
    let mut intake = IntakeClient::connect(target.clone()).await?;
    let mut feeds = FeedsClient::connect(target).await?;
    let date = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive();
    let date = date.format("%Y-%m-%d").to_string();
    let registered = pb::Registered {
        role: pb::Role::Student as i32,
        placement: Some(pb::Placement {
            department: "D1".into(),
            grade: "2019".into(),
            class_name: "C1".into(),
            dorm: String::new(),
        }),
        city: "Foshan".into(),
        on_campus: true,
    };
    intake
        .publish(event(
            0,
            &date,
            pb::event::Payload::Roster(pb::RosterEvent {
                person_id: "P1".into(),
                change: Some(pb::roster_event::Change::Registered(registered)),
            }),
        ))
        .await?;
    let mut stream = feeds.subscribe(pb::SubscribeRequest { office: "province".into(), after: 0 }).await?.into_inner();
    let mut latencies = Vec::with_capacity(alerts);
    for n in 1..=alerts {
        let reading = pb::TemperatureTaken { slot: pb::Slot::Noon as i32, celsius: 38.5 };
        let fever = event(
            n,
            &date,
            pb::event::Payload::Health(pb::HealthEvent {
                person_id: "P1".into(),
                kind: Some(pb::health_event::Kind::Temperature(reading)),
            }),
        );
        intake.publish(fever).await?;
        let acknowledged = Instant::now();
        let wanted = format!("alert-bench-{n}");
        loop {
            let item = tokio::time::timeout(Duration::from_secs(30), stream.message())
                .await
                .context("no alert within 30 s")??
                .context("feed closed")?;
            if let Some(pb::feed_item::Item::Alert(a)) = item.item
                && a.event_id == wanted
            {
                latencies.push(acknowledged.elapsed());
                break;
            }
        }
    }
    drop(stream);
    running.stop().await?;
    latencies.sort();
    Ok(latencies)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.alerts > 0, "alerts: must be at least 1");
    let broker = testbroker::broker();
    let mut table = String::from(
        "# Alert latency\n\nFrom intake's acknowledgement of a fever reading to its alert reaching a \
         subscriber of the province office's feed (`Feeds.Subscribe`), one reading at a time.\n\n\
         | log | alerts | p50 | p99 | max |\n| --- | ---: | ---: | ---: | ---: |\n",
    );
    for (name, log) in [("embedded", None), ("kafka (tansu)", Some(format!("kafka://{}", broker.addr)))] {
        eprintln!("alert-latency: {} alerts on the {name} log", args.alerts);
        let l = measure(log, args.alerts).await.with_context(|| format!("measuring on {name}"))?;
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        table.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            l.len(),
            ms(quantile(&l, 0.5)),
            ms(quantile(&l, 0.99)),
            ms(*l.last().expect("at least one"))
        ));
    }
    print!("{table}");
    std::fs::write(&args.out, &table).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}
