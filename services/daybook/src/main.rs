//! `daybook`: one binary, one subcommand per job. See `daybook --help`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    /// The token client commands send (`authorization: Bearer`), for a server that checks
    /// access; prefer the environment variable to the flag, which others may see.
    #[arg(long, global = true, env = "DAYBOOK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How log lines are written to stderr: `text` (coloured on a terminal only) or `json`
    /// (one object per line, for journald and log shippers).
    #[arg(long, global = true, env = "DAYBOOK_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
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
    /// Print the service-window inspection report of the province, a city or a hall, with
    /// its findings.
    Inspections(InspectionsArgs),
    /// Write the daily report table of a level, or the observation list, to a CSV or XLSX
    /// file (Chinese and English headers).
    Export(ExportArgs),
    /// Issue, list and revoke the tokens callers present, offline on a data directory or
    /// through a running server (with an admin token).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the audit log of person-level reads (who, what, when) as CSV.
    Audit {
        #[command(flatten)]
        at: StoreArgs,
        /// Entries at or after this instant (RFC 3339).
        #[arg(long, default_value = "")]
        since: String,
    },
    /// Serve, post a small simulated day, print what came out, and keep serving.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Share of the province to simulate (1 = 156 schools, 590,000 persons).
        #[arg(long, default_value_t = 0.01)]
        scale: f64,
    },
}

/// Where the tokens are: a data directory no server holds, or a running server.
#[derive(clap::Args)]
struct StoreArgs {
    /// The data directory of a server that is not running.
    #[arg(long, conflicts_with = "target")]
    data_dir: Option<PathBuf>,
    /// A running server (the caller's token needs the admin right).
    #[arg(long, env = "DAYBOOK_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a token; it is printed once, as the last line (only its hash is kept).
    Issue {
        #[command(flatten)]
        at: StoreArgs,
        /// Letters, digits, '.', '_' or '-'.
        #[arg(long)]
        name: String,
        /// Schools it may post events for, comma-separated ("*" for all).
        #[arg(long, value_delimiter = ',')]
        post: Vec<String>,
        /// Units it may read, with everything under them: province, city:NAME, school:S001…
        #[arg(long, value_delimiter = ',')]
        read: Vec<String>,
        /// The right to person-level data (observation list, key persons, alerts naming a
        /// person, exports of persons).
        #[arg(long)]
        persons: bool,
        /// The right to issue and revoke tokens and read the audit log.
        #[arg(long)]
        admin: bool,
        /// Take the secret from this file (one printed by an earlier `token issue`) rather
        /// than making a new one: over Kafka, issue the same token on every instance.
        /// Offline (`--data-dir`) only.
        #[arg(long, requires = "data_dir")]
        secret_file: Option<PathBuf>,
    },
    /// List the tokens and their scopes.
    List {
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Revoke a token at once, also on a running server.
    Revoke {
        #[command(flatten)]
        at: StoreArgs,
        name: String,
    },
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// The daybook gRPC address.
    #[arg(long, env = "DAYBOOK_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Share of the province to simulate: 1 is 156 schools, 558,000 students, 32,000 staff
    /// (2.2 million events a day) and 72 service halls inspected about twice a week (26
    /// halls at small scales); by default a small share, as `demo` posts.
    #[arg(long, default_value_t = 0.01)]
    scale: f64,
    /// Same seed, same province and same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The day to simulate, YYYY-MM-DD; yesterday by default (a whole day: intake refuses
    /// today's events dated ahead of its clock).
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Concurrent streams to the server.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    #[command(flatten)]
    tls: daybook::tls::ClientArgs,
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
    #[command(flatten)]
    tls: daybook::tls::ClientArgs,
}

#[derive(clap::Args)]
struct InspectionsArgs {
    /// The daybook gRPC address.
    #[arg(long, env = "DAYBOOK_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// The unit: province, city:NAME or hall:CODE.
    #[arg(long, default_value = "province")]
    unit: String,
    /// The day, YYYY-MM-DD; today by default.
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Which findings to list: open (overdue ones included), overdue, or all.
    #[arg(long, default_value = "open")]
    findings: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: daybook::tls::ClientArgs,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The daybook gRPC address.
    #[arg(long, env = "DAYBOOK_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// `reports` (the daily report table of --level), `observation` (persons under home or
    /// centralized observation), `inspections` (the inspection reports of --unit and the
    /// units under it) or `findings` (the inspection findings under --unit).
    #[arg(long, default_value = "reports")]
    what: String,
    /// Units under this one (province, city:NAME, school:S001, …).
    #[arg(long, default_value = "province")]
    unit: String,
    /// The level whose units are the rows: province, city, school, department, grade,
    /// class or dorm.
    #[arg(long, default_value = "school")]
    level: String,
    /// The day, YYYY-MM-DD; today by default: of the daily reports, or of the observation
    /// list as it stood at that day's end (within the server's horizon).
    #[arg(long)]
    date: Option<NaiveDate>,
    /// csv, xlsx, or dhis2 (the daily reports as a DHIS2 data value set, deploy/DHIS2.md).
    #[arg(long, default_value = "xlsx")]
    format: String,
    /// Where to write; a file named after what it holds in the current directory by default.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    tls: daybook::tls::ClientArgs,
}

/// Today in the province (`utc-offset` of the config file or DAYBOOK_UTC_OFFSET, UTC+8 by
/// default), the day reports are about by default.
fn today(zone: chrono::FixedOffset) -> NaiveDate {
    chrono::Utc::now().with_timezone(&zone).date_naive()
}

/// The last whole day: the simulated day, whose evening is not ahead of the clock.
fn yesterday(zone: chrono::FixedOffset) -> NaiveDate {
    today(zone).pred_opt().expect("a day before today")
}

/// Settings `daybook intake` reads not: the fold's, the close's, the feeds'.
const NOT_READ_BY_INTAKE: [&str; 13] = [
    "group",
    "feed_topic_format",
    "partitions",
    "fold_threads",
    "fever_threshold",
    "observation_days",
    "close_time",
    "close_lag_days",
    "coverage_threshold",
    "city_offices",
    "dhis2_mapping",
    "publish_feeds",
    "stall_after_secs",
];

/// Settings `daybook aggregate` reads not: the embedded log's, intake's.
const NOT_READ_BY_AGGREGATE: [&str; 4] = ["partitions", "fold_threads", "clock_skew_minutes", "rate_limit_posts"];

/// The command line, with each server command's help showing its settings' defaults and
/// only the settings it reads.
fn parse_args() -> Cli {
    let command = Cli::command()
        .mut_subcommand("serve", |c| ServeArgs::help_for_role(c, &["publish_feeds"]))
        .mut_subcommand("intake", |c| ServeArgs::help_for_role(c, &NOT_READ_BY_INTAKE))
        .mut_subcommand("aggregate", |c| ServeArgs::help_for_role(c, &NOT_READ_BY_AGGREGATE))
        .mut_subcommand("demo", ServeArgs::help_with_defaults);
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    aggregator::keep_freed_memory_a_while();
    match run(parse_args()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with its causes, as a user reads it: no backtrace, even with
            // RUST_BACKTRACE set (a defect's panic still prints one).
            let mut message = format!("{e:#}");
            // What a plain-text client gets from a TLS port (the connection closed on it, seen
            // as a protocol error, a transport error or, under load, a cancelled call), said
            // so it can be acted on.
            let closed_on_us = ["h2 protocol error", "transport error", "operation was canceled"];
            if closed_on_us.iter().any(|seen| message.contains(seen)) {
                message.push_str(" (if the server has TLS, it answers TLS only: use an https:// target)");
            }
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let quiet = !matches!(cli.command, Command::Serve(_) | Command::Intake(_) | Command::Aggregate(_));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| (if quiet { "warn" } else { "info" }).into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format.as_str() {
        "json" => logs.json().init(),
        // Escape sequences only where a terminal reads them, not in a file or the journal.
        _ => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
    let file = match &cli.config {
        Some(path) => ServeArgs::from_file(path)?,
        None => ServeArgs::default(),
    };
    // Client commands count today in the province's zone, as the server counts days.
    let env_zone = ServeArgs { utc_offset: std::env::var("DAYBOOK_UTC_OFFSET").ok(), ..ServeArgs::default() };
    let zone = env_zone.or(file.clone())?.province_zone()?;
    match cli.command {
        Command::Serve(args) => serve(args.or(file)?, Roles::All).await,
        Command::Intake(args) => serve(args.or(file)?, Roles::Intake).await,
        Command::Aggregate(args) => serve(args.or(file)?, Roles::Aggregate).await,
        Command::Token(command) => token(command, cli.token.as_deref()).await,
        Command::Audit { at, since } => {
            let entries = match &at.data_dir {
                Some(dir) => daybook::auth::Tokens::open(dir)?.audit_entries(&since, usize::MAX)?,
                None => {
                    let mut admin = admin_client(&at.target, cli.token.as_deref()).await?;
                    let request = wire::pb::ListAuditRequest { since, limit: 0 };
                    admin.list_audit(request).await?.into_inner().entries
                }
            };
            println!("at,token,call,unit,detail");
            for e in entries {
                println!("{},{},{},{},{}", e.at, e.token, e.call, e.unit, e.detail);
            }
            Ok(())
        }
        Command::Simulate(args) => {
            let tls = args.tls.config(&args.target)?;
            let date = args.date.unwrap_or_else(|| yesterday(zone));
            let summary = simulate(&args.target, cli.token, tls, args.scale, args.seed, date, args.streams).await?;
            println!("{summary}");
            Ok(())
        }
        Command::Report(args) => {
            let mut client = report::connect(&args.target, cli.token.as_deref(), &args.tls).await?;
            let date = args.date.unwrap_or_else(|| today(zone)).format("%Y-%m-%d").to_string();
            let r = report::fetch(&mut client, &args.unit, &date).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&wire::json::report_to_json(&r))?);
            } else {
                print!("{}", report::render(&r));
            }
            Ok(())
        }
        Command::Inspections(args) => {
            let mut client = report::connect(&args.target, cli.token.as_deref(), &args.tls).await?;
            let date = args.date.unwrap_or_else(|| today(zone)).format("%Y-%m-%d").to_string();
            let filter = daybook::inspections::parse_filter(&args.findings)?;
            let (r, findings) = daybook::inspections::fetch(&mut client, &args.unit, &date, filter).await?;
            if args.json {
                let mut json = wire::inspection_report_to_json(&r);
                json["findings"] = findings.iter().map(wire::json::finding_to_json).collect();
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                print!("{}", daybook::inspections::render(&r, &findings));
            }
            Ok(())
        }
        Command::Export(args) => {
            let date = args.date.unwrap_or_else(|| today(zone)).format("%Y-%m-%d").to_string();
            let connection = daybook::client::connect(&args.target, cli.token.as_deref(), &args.tls).await?;
            // A province's export takes a while: a spinner on a terminal (indicatif draws
            // nothing when stderr is a file).
            let waiting = indicatif::ProgressBar::new_spinner()
                .with_style(indicatif::ProgressStyle::with_template("{spinner} exporting {msg}: {elapsed}")?)
                .with_message(format!("{} of {}", args.what, args.unit));
            waiting.enable_steady_tick(Duration::from_millis(120));
            let fetched =
                daybook::files::fetch(connection, &args.what, &args.unit, &args.level, &date, &args.format).await;
            waiting.finish_and_clear();
            let file = fetched?;
            let path = args.out.unwrap_or_else(|| PathBuf::from(&file.file_name));
            std::fs::write(&path, &file.content).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {} ({} bytes)", path.display(), file.content.len());
            Ok(())
        }
        Command::Demo { serve, scale } => demo(serve.or(file)?, scale).await,
    }
}

async fn serve(args: ServeArgs, roles: Roles) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let services = config.services.unwrap_or_else(|| roles.services(config.publish_feeds));
    let running = daybook::start_on(&config, services, daybook::Listeners::bind(&config).await?).await?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    println!(
        "daybook ({services}) serving gRPC on {} and metrics on {scheme}://{}/metrics; Ctrl-C stops",
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

async fn simulate(
    target: &str,
    token: Option<String>,
    tls: Option<tonic::transport::ClientTlsConfig>,
    scale: f64,
    seed: u64,
    date: NaiveDate,
    streams: usize,
) -> anyhow::Result<String> {
    let target = target.to_owned();
    let options = simulator::SimulateOptions { target, scale, seed, date, streams, progress: true, token, tls };
    let s = simulator::run(&options).await?;
    let mut text = format!(
        "posted {} events for {} persons in {} schools and {} service halls on {date}: {} accepted, {} duplicates (already posted before), {} rejected",
        s.events_sent, s.persons, s.schools, s.halls, s.accepted, s.duplicates, s.rejected
    );
    for problem in &s.first_problems {
        text.push_str(&format!("\n  rejected: {problem}"));
    }
    Ok(text)
}

async fn demo(args: ServeArgs, scale: f64) -> anyhow::Result<()> {
    // The demo posts today's whole simulated day at once, its evening included, so that
    // its reports are today's, open, not yesterday's sealed ones revised: it lets events
    // be up to a day ahead, where a deployment refuses more than clock-skew-minutes.
    let args = ServeArgs { clock_skew_minutes: args.clock_skew_minutes.or(Some(24 * 60)), ..args };
    let config = args.resolve()?;
    // The demo's own clients speak plain text on loopback.
    anyhow::ensure!(config.tls.is_none(), "demo: runs without TLS; leave tls-cert and tls-key unset");
    let running = daybook::start(&config).await?;
    let target = format!("http://{}", running.grpc_addr);
    println!("1. daybook is serving gRPC on {} (data in {}/)", running.grpc_addr, config.data_dir.display());
    let date = today(config.utc_offset);
    println!("2. Posting one simulated day ({date}) of a province at scale {scale} over gRPC...");
    println!("   {}", simulate(&target, None, None, scale, 1, date, 4).await?);
    let mut client = report::connect(&target, None, &Default::default()).await?;
    report::wait_until_folded(&mut client, Duration::from_secs(300)).await.context("waiting for the aggregator")?;
    let day = date.format("%Y-%m-%d").to_string();
    println!("3. Every accepted event is folded. The province's daily report:\n");
    print!("{}", report::render(&report::fetch(&mut client, "province", &day).await?));
    let schools = client
        .list_units(wire::pb::ListUnitsRequest { level: wire::pb::Level::School as i32, ..Default::default() })
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
            .list_units(wire::pb::ListUnitsRequest { level: level as i32, ..Default::default() })
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
        "   The day is sealed the next morning at 09:00 (UTC+8) and pushed to the offices' feeds (Feeds.Subscribe: \
         `province`, and `cdc-<city>` per city); fever and case alerts go out at once."
    );
    println!("   Metrics:          curl http://{}/metrics", running.http_addr);
    println!(
        "   Access is not checked on loopback. To check it, stop, issue a token, serve with --auth required:\n     \
         cargo run -p daybook -- token issue --data-dir {} --name ops --read province --persons --admin\n     \
         cargo run -p daybook -- serve --auth required   (clients: DAYBOOK_TOKEN=<token> cargo run -p daybook -- report)",
        config.data_dir.display()
    );
    println!("\nStill serving; Ctrl-C stops.");
    running.run_until(shutdown_signal()).await
}

async fn admin_client(
    target: &str,
    token: Option<&str>,
) -> anyhow::Result<wire::pb::admin_client::AdminClient<daybook::client::Connection>> {
    let plain = daybook::tls::ClientArgs::default();
    Ok(wire::pb::admin_client::AdminClient::new(daybook::client::connect(target, token, &plain).await?))
}

/// `daybook token …`, on a data directory or through a running server.
async fn token(command: TokenCommand, caller: Option<&str>) -> anyhow::Result<()> {
    let (at, request) = match command {
        TokenCommand::Issue { at, name, post, read, persons, admin, secret_file } => {
            let scope = wire::pb::TokenScope { name, post, read, persons, admin, ..Default::default() };
            let secret = match secret_file {
                Some(path) => {
                    Some(std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
                }
                None => None,
            };
            (at, TokenRequest::Issue(scope, secret))
        }
        TokenCommand::List { at } => (at, TokenRequest::List),
        TokenCommand::Revoke { at, name } => (at, TokenRequest::Revoke(name)),
    };
    let status = |s: tonic::Status| anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    match (&at.data_dir, request) {
        (Some(dir), TokenRequest::Issue(scope, given)) => {
            let secret = daybook::auth::Tokens::open(dir)?.issue_with(&scope, given.as_deref()).map_err(status)?;
            println!("issued token {} (keep it secret; it is not shown again):\n{secret}", scope.name);
        }
        (Some(dir), TokenRequest::List) => print_tokens(&daybook::auth::Tokens::open(dir)?.list().map_err(status)?),
        (Some(dir), TokenRequest::Revoke(name)) => {
            daybook::auth::Tokens::open(dir)?.revoke(&name).map_err(status)?;
            println!("revoked {name}");
        }
        (None, request) => {
            let mut admin = admin_client(&at.target, caller).await?;
            match request {
                TokenRequest::Issue(scope, _) => {
                    let name = scope.name.clone();
                    let request = wire::pb::IssueTokenRequest { scope: Some(scope) };
                    let secret = admin.issue_token(request).await.map_err(status)?.into_inner().token;
                    println!("issued token {name} (keep it secret; it is not shown again):\n{secret}");
                }
                TokenRequest::List => {
                    let tokens = admin.list_tokens(wire::pb::ListTokensRequest {}).await.map_err(status)?;
                    print_tokens(&tokens.into_inner().tokens);
                }
                TokenRequest::Revoke(name) => {
                    let request = wire::pb::RevokeTokenRequest { name: name.clone() };
                    admin.revoke_token(request).await.map_err(status)?;
                    println!("revoked {name}");
                }
            }
        }
    }
    Ok(())
}

enum TokenRequest {
    /// The scope, and a secret to use rather than a new one.
    Issue(wire::pb::TokenScope, Option<String>),
    List,
    Revoke(String),
}

fn print_tokens(tokens: &[wire::pb::TokenScope]) {
    for t in tokens {
        let rights =
            [(t.persons, "persons"), (t.admin, "admin")].iter().filter(|r| r.0).map(|r| r.1).collect::<Vec<_>>();
        let state = if t.revoked_at.is_empty() {
            format!("issued {}", t.issued_at)
        } else {
            format!("REVOKED {}", t.revoked_at)
        };
        println!(
            "{}\tpost: {}\tread: {}\t{}\t{state}",
            t.name,
            if t.post.is_empty() { "-".into() } else { t.post.join(",") },
            if t.read.is_empty() { "-".into() } else { t.read.join(",") },
            if rights.is_empty() { "counts only".into() } else { rights.join(",") },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulate_posts_a_small_share_of_the_province_by_default() {
        let Command::Simulate(args) = Cli::try_parse_from(["daybook", "simulate"]).unwrap().command else {
            panic!("not simulate")
        };
        assert_eq!(args.scale, 0.01, "1 % of the province, as the demo posts, not its 2.2 million events");
    }
}
