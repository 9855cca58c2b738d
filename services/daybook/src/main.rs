//! `daybook`: one binary, one subcommand per job. See `daybook --help`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use daybook::{Roles, ServeArgs, report};

// mimalloc rather than glibc's malloc: the fold allocates a small value per event and frees
// it at each checkpoint, and glibc spent a fifth of the fold's CPU in malloc, free and
// consolidation (services/bench/PROFILE.md, sixth session).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "daybook", version, about = "Event-sourced daily reports for epidemic prevention in schools")]
struct Cli {
    /// A TOML config file for `serve` and `demo` (see deploy/daybook.toml).
    #[arg(long, global = true, env = "DAYBOOK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run intake, the log, the aggregator and reports in one process.
    Serve(ServeArgs),
    /// Run only the gRPC intake, appending to a Kafka log (`--log kafka://…`).
    Intake(ServeArgs),
    /// Run only an aggregator of a Kafka log, with the report queries; start several to
    /// share the schools.
    Aggregate(ServeArgs),
    /// Post a synthetic day of the province's events to a running server.
    Simulate(SimulateArgs),
    /// Print the daily report of a unit.
    Report(ReportArgs),
    /// Write the daily report table of a level, or the observation list, to a CSV or XLSX
    /// file (Chinese and English headers).
    Export(ExportArgs),
    /// Serve, post a small simulated day, print what came out, and keep serving.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Share of the province to simulate (1 = 156 schools, 590,000 persons).
        #[arg(long, default_value_t = 0.01)]
        scale: f64,
    },
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// The daybook gRPC address.
    #[arg(long, env = "DAYBOOK_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Share of the province to simulate: 1 is 156 schools, 558,000 students, 32,000 staff.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Same seed, same province and same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The day to simulate, YYYY-MM-DD; today by default.
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Concurrent streams to the server.
    #[arg(long, default_value_t = 4)]
    streams: usize,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// The daybook gRPC address.
    #[arg(long, env = "DAYBOOK_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// The unit: province, city:NAME, school:S001, department:S001/D01, grade:S001/D01/2019,
    /// class:S001/D01/2019/C01 or dorm:S001/B01-101.
    #[arg(long, default_value = "province")]
    unit: String,
    /// The day, YYYY-MM-DD; today by default.
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The daybook gRPC address.
    #[arg(long, env = "DAYBOOK_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// `reports` (the daily report table of --level) or `observation` (persons under home or
    /// centralized observation).
    #[arg(long, default_value = "reports")]
    what: String,
    /// Units under this one (province, city:NAME, school:S001, …).
    #[arg(long, default_value = "province")]
    unit: String,
    /// The level whose units are the rows: province, city, school, department, grade,
    /// class or dorm.
    #[arg(long, default_value = "school")]
    level: String,
    /// The day, YYYY-MM-DD; today by default.
    #[arg(long)]
    date: Option<NaiveDate>,
    /// csv or xlsx.
    #[arg(long, default_value = "xlsx")]
    format: String,
    /// Where to write; a file named after what it holds in the current directory by default.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Today in the province (UTC+8), the day reports are about by default.
fn today() -> NaiveDate {
    chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset")).date_naive()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aggregator::keep_freed_memory_a_while();
    let cli = Cli::parse();
    let quiet = !matches!(cli.command, Command::Serve(_) | Command::Intake(_) | Command::Aggregate(_));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| (if quiet { "warn" } else { "info" }).into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let file = match &cli.config {
        Some(path) => ServeArgs::from_file(path)?,
        None => ServeArgs::default(),
    };
    match cli.command {
        Command::Serve(args) => serve(args.or(file), Roles::All).await,
        Command::Intake(args) => serve(args.or(file), Roles::Intake).await,
        Command::Aggregate(args) => serve(args.or(file), Roles::Aggregate).await,
        Command::Simulate(args) => {
            let summary =
                simulate(&args.target, args.scale, args.seed, args.date.unwrap_or_else(today), args.streams).await?;
            println!("{summary}");
            Ok(())
        }
        Command::Report(args) => {
            let mut client = report::connect(&args.target).await?;
            let date = args.date.unwrap_or_else(today).format("%Y-%m-%d").to_string();
            let r = report::fetch(&mut client, &args.unit, &date).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report::to_json(&r))?);
            } else {
                print!("{}", report::render(&r));
            }
            Ok(())
        }
        Command::Export(args) => {
            let date = args.date.unwrap_or_else(today).format("%Y-%m-%d").to_string();
            let file =
                daybook::files::fetch(&args.target, &args.what, &args.unit, &args.level, &date, &args.format).await?;
            let path = args.out.unwrap_or_else(|| PathBuf::from(&file.file_name));
            std::fs::write(&path, &file.content).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {} ({} bytes)", path.display(), file.content.len());
            Ok(())
        }
        Command::Demo { serve, scale } => demo(serve.or(file), scale).await,
    }
}

async fn serve(args: ServeArgs, roles: Roles) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let running = daybook::start_roles(&config, roles).await?;
    eprintln!(
        "daybook {roles:?} serving gRPC on {} and metrics on http://{}/metrics; Ctrl-C stops",
        running.grpc_addr, running.http_addr
    );
    running.run_until(shutdown_signal()).await
}

/// Ctrl-C or SIGTERM (what service managers send).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn simulate(target: &str, scale: f64, seed: u64, date: NaiveDate, streams: usize) -> anyhow::Result<String> {
    let options = simulator::SimulateOptions { target: target.to_owned(), scale, seed, date, streams, progress: true };
    let s = simulator::run(&options).await?;
    let mut text = format!(
        "posted {} events for {} persons in {} schools on {date}: {} accepted, {} duplicates (already posted before), {} rejected",
        s.events_sent, s.persons, s.schools, s.accepted, s.duplicates, s.rejected
    );
    for problem in &s.first_problems {
        text.push_str(&format!("\n  rejected: {problem}"));
    }
    Ok(text)
}

async fn demo(args: ServeArgs, scale: f64) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let running = daybook::start(&config).await?;
    let target = format!("http://{}", running.grpc_addr);
    println!("1. daybook is serving gRPC on {} (data in {}/)", running.grpc_addr, config.data_dir.display());
    let date = today();
    println!("2. Posting one simulated day ({date}) of a province at scale {scale} over gRPC...");
    println!("   {}", simulate(&target, scale, 1, date, 4).await?);
    let mut client = report::connect(&target).await?;
    report::wait_until_folded(&mut client, Duration::from_secs(300)).await.context("waiting for the aggregator")?;
    let day = date.format("%Y-%m-%d").to_string();
    println!("3. Every accepted event is folded. The province's daily report:\n");
    print!("{}", report::render(&report::fetch(&mut client, "province", &day).await?));
    let schools = client
        .list_units(wire::pb::ListUnitsRequest { level: wire::pb::Level::School as i32, parent: String::new() })
        .await?
        .into_inner()
        .units;
    let mut levels = String::new();
    for level in [
        wire::pb::Level::City,
        wire::pb::Level::School,
        wire::pb::Level::Department,
        wire::pb::Level::Grade,
        wire::pb::Level::Class,
        wire::pb::Level::Dorm,
    ] {
        let n = client
            .list_units(wire::pb::ListUnitsRequest { level: level as i32, parent: String::new() })
            .await?
            .into_inner()
            .units
            .len();
        levels.push_str(&format!(" {n} {},", level.as_str_name().trim_start_matches("LEVEL_").to_lowercase()));
    }
    println!("\n   Reports exist for every unit at every level:{}", levels.trim_end_matches(','));
    if let Some(school) = schools.first() {
        println!("   For one of them:  cargo run -p daybook -- report --target {target} --unit {}", school.unit);
    }
    println!("   As a file:        cargo run -p daybook -- export --target {target} --level school --format xlsx");
    println!(
        "   The day is sealed at 16:00 (UTC+8) and pushed to the offices' feeds (Feeds.Subscribe: \
         `province`, and `cdc-<city>` per city); fever and case alerts go out at once."
    );
    println!("   Metrics:          curl http://{}/metrics\n\nStill serving; Ctrl-C stops.", running.http_addr);
    running.run_until(shutdown_signal()).await
}
