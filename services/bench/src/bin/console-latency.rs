//! `console-latency`: the operators' console at a province's scale. Serves on the
//! embedded log, posts a simulated day (`--scale 1`: the province's 590,000 persons),
//! then times the console's JSON API as the page calls it (each view's calls at once:
//! the province, a city, a school, a class; p50 and p99 of `--rounds`) and the live
//! update, from intake's acknowledgement of an event to the `changed` event on the
//! stream of the class it happened in. Writes a markdown table.
//!
//!     cargo run --release -p bench --bin console-latency -- --scale 1 --out services/bench/CONSOLE.md

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use daybook::{Roles, ServeArgs};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use wire::pb;
use wire::pb::intake_client::IntakeClient;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Times each view is read.
    #[arg(long, default_value_t = 50)]
    rounds: usize,
    /// Live updates timed, one after the other.
    #[arg(long, default_value_t = 50)]
    updates: usize,
    #[arg(long, default_value = "services/bench/CONSOLE.md")]
    out: std::path::PathBuf,
}

/// One GET on its own connection; the status and how long the whole answer took.
async fn get(addr: &str, path: &str) -> anyhow::Result<(u16, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let status = String::from_utf8_lossy(&answer[..answer.len().min(12)]).split(' ').nth(1).unwrap_or("0").parse()?;
    Ok((status, started.elapsed()))
}

/// The calls of one view at once, as the page makes them; the time until all answered.
async fn view(addr: &str, paths: &[String]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let answers = futures_join(addr, paths).await?;
    for (path, (status, _)) in paths.iter().zip(answers) {
        anyhow::ensure!(status == 200, "{path}: HTTP {status}");
    }
    Ok(started.elapsed())
}

async fn futures_join(addr: &str, paths: &[String]) -> anyhow::Result<Vec<(u16, Duration)>> {
    let calls: Vec<_> = paths.iter().map(|p| tokio::spawn(get_owned(addr.to_owned(), p.clone()))).collect();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await??);
    }
    Ok(out)
}

async fn get_owned(addr: String, path: String) -> anyhow::Result<(u16, Duration)> {
    get(&addr, &path).await
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn encode(unit: &str) -> String {
    unit.replace(':', "%3A").replace('/', "%2F")
}

/// The page's calls for `unit` on `date`.
fn calls(unit: &str, date: &str) -> Vec<String> {
    let unit = encode(unit);
    let mut paths = vec![
        format!("/api/v1/report?unit={unit}&date={date}"),
        format!("/api/v1/children?unit={unit}&date={date}"),
        format!("/api/v1/series?unit={unit}&to={date}"),
    ];
    if unit == "province" || unit.starts_with("city") {
        paths.push(format!("/api/v1/stragglers?under={unit}&date={date}"));
    }
    paths
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let config = ServeArgs {
        data_dir: Some(dir.path().to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse()?),
        http_addr: Some("127.0.0.1:0".parse()?),
        ..ServeArgs::default()
    };
    let running = daybook::start_roles(&config.resolve()?, Roles::All).await.context("starting daybook")?;
    let http = running.http_addr.to_string();
    let target = format!("http://{}", running.grpc_addr);
    let intake = IntakeClient::connect(target.clone()).await?;
    let mut reports = pb::reports_client::ReportsClient::connect(target).await?;

    let zone = chrono::FixedOffset::east_opt(8 * 3600).expect("an offset");
    let date = chrono::Utc::now().with_timezone(&zone).date_naive();
    let day = date.format("%Y-%m-%d").to_string();
    eprintln!("generating the province (scale {}, seed {})", args.scale, args.seed);
    let province = simulator::Province::generate(args.scale, args.seed);
    let started = Instant::now();
    let mut events = 0;
    // Two streams at a time, a school's day each.
    let schools: Vec<usize> = (0..province.schools().len()).collect();
    for pair in schools.chunks(2) {
        let mut posts = Vec::new();
        for &school in pair {
            let day_events = simulator::day_events(&province, school, date, args.seed);
            events += day_events.len();
            let mut intake = intake.clone();
            posts.push(tokio::spawn(async move { intake.publish_stream(tokio_stream::iter(day_events)).await }));
        }
        for post in posts {
            post.await??;
        }
    }
    // Then the service halls' day (registrations and inspections), on one stream.
    let halls: Vec<_> =
        province.halls().iter().flat_map(|hall| simulator::hall_events(hall, date, args.seed)).collect();
    events += halls.len();
    intake.clone().publish_stream(tokio_stream::iter(halls)).await?;
    daybook::report::wait_until_folded(&mut reports, Duration::from_secs(3600)).await?;
    eprintln!("{events} events of {} persons posted and folded in {:.0?}", province.persons(), started.elapsed());

    let school = &province.schools()[0];
    let student = school.persons.iter().find(|p| p.class.is_some()).context("a student")?;
    let placement = student.placement();
    let class_unit =
        format!("class:{}/{}/{}/{}", school.code, placement.department, placement.grade, placement.class_name);
    let views = [
        ("the province", "province".to_owned()),
        ("a city", format!("city:{}", school.city)),
        ("a school", format!("school:{}", school.code)),
        ("a class", class_unit.clone()),
    ];
    let mut rows = Vec::new();
    // The page's first paint of the province, as it loads: who the token is, the view's
    // calls at once, then the newest alerts.
    let mut first_paint = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let started = Instant::now();
        view(&http, &["/api/v1/info".to_owned()]).await?;
        view(&http, &calls("province", &day)).await?;
        view(&http, &["/api/v1/alerts?limit=50".to_owned()]).await?;
        first_paint.push(started.elapsed());
    }
    first_paint.sort();
    rows.push(("first paint of the province: info, the view's calls, the newest alerts (ms)".to_owned(), first_paint));
    for (name, unit) in &views {
        let paths = calls(unit, &day);
        let mut times = Vec::with_capacity(args.rounds);
        for _ in 0..args.rounds {
            times.push(view(&http, &paths).await?);
        }
        times.sort();
        rows.push((format!("{name} (`{unit}`): {} calls at once (ms)", paths.len()), times));
    }

    // Live: the class's stream hears of a symptom of one of its persons.
    let mut stream = TcpStream::connect(&http).await?;
    let live = format!("/api/v1/live?unit={}&date={day}", encode(&class_unit));
    stream.write_all(format!("GET {live} HTTP/1.0\r\nHost: {http}\r\n\r\n").as_bytes()).await?;
    let mut lines = BufReader::new(stream).lines();
    let mut wait_for = async |event: &str| -> anyhow::Result<()> {
        let wanted = format!("event: {event}");
        while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await?? {
            if line == wanted {
                return Ok(());
            }
        }
        anyhow::bail!("the live stream ended")
    };
    wait_for("hello").await?;
    // Each a cough of another of the class's students: each changes the class's report.
    let classmates: Vec<String> = school
        .persons
        .iter()
        .filter(|p| p.class == student.class && p.department == student.department)
        .map(|p| p.id())
        .take(args.updates)
        .collect();
    let mut intake = intake.clone();
    let mut updates = Vec::with_capacity(classmates.len());
    for (n, person) in classmates.iter().enumerate() {
        let symptom = pb::SymptomsReported { symptoms: vec![pb::Symptom::Cough as i32] };
        let now = chrono::Utc::now().with_timezone(&zone);
        let event = pb::Event {
            site: String::new(),
            event_id: format!("console-bench-{n}"),
            source: "console-latency".into(),
            school: school.code.clone(),
            occurred_at: now.max(date.and_hms_opt(0, 0, 0).unwrap().and_local_timezone(zone).unwrap()).to_rfc3339(),
            payload: Some(pb::event::Payload::Health(pb::HealthEvent {
                person_id: person.clone(),
                kind: Some(pb::health_event::Kind::Symptoms(symptom)),
            })),
        };
        // Apart by more than the stream's least spacing between looks: each a lone event,
        // as an operator sees one (a burst is looked at every 250 ms).
        tokio::time::sleep(Duration::from_millis(300)).await;
        intake.publish(event).await?;
        let acked = Instant::now();
        wait_for("changed").await?;
        updates.push(acked.elapsed());
    }
    updates.sort();
    let live_row =
        format!("live update: acknowledged → `changed` on the class's stream, {} coughs (ms)", updates.len());
    rows.push((live_row, updates));

    let mut table = format!(
        "# The console at scale\n\nWritten by `console-latency` (`services/bench/src/bin/console-latency.rs`).\n\n\
         - command: `cargo run --release -p bench --bin console-latency -- --scale {} --seed {}`\n\
         - load: {} schools, {} persons, {events} events on {day}, on the embedded log\n\
         - each view: the page's calls for it at once (report, children, 14-day series, and for a city or the province the stragglers), {} rounds; live: a cough of each of the class's students (at most {}), one after the other\n\n\
         | measure | p50 | p99 | max | issue 26 target |\n| --- | --- | --- | --- | --- |\n",
        args.scale,
        args.seed,
        province.schools().len(),
        province.persons(),
        args.rounds,
        args.updates,
    );
    for (name, times) in &rows {
        let target = if name.starts_with("live") { "within 1 s" } else { "first paint < 1 s" };
        let max = times.last().map_or(0.0, |t| t.as_secs_f64() * 1000.0);
        table += &format!(
            "| {name} | {:.1} | {:.1} | {max:.1} | {target} |\n",
            percentile(times, 0.5),
            percentile(times, 0.99)
        );
    }
    std::fs::write(&args.out, &table).with_context(|| format!("writing {}", args.out.display()))?;
    print!("{table}");
    running.stop().await
}
