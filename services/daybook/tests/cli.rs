//! The command line as an operator uses it: what `--help` tells (each server command
//! lists the settings it reads, each with its default) and a file exported.

use std::process::Command;

mod common;
use common::{field, serve_until, stop};

fn help(command: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_daybook")).args([command, "--help"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn each_server_command_lists_the_settings_it_reads_with_their_defaults() {
    let serve = help("serve");
    for shown in [
        "--fever-threshold",
        "[default: 37.3]",
        "[default: 09:00]",
        "[default: 127.0.0.1:50051]",
        "[default: one per core]",
        "[default: 0.9]",
    ] {
        assert!(serve.contains(shown), "serve --help lacks {shown}: {serve}");
    }
    assert!(!serve.contains("--publish-feeds"), "serve always publishes the feeds");
    let intake = help("intake");
    for not_read in ["--fold-threads", "--fever-threshold", "--close-time", "--dhis2-mapping", "--publish-feeds"] {
        assert!(!intake.contains(not_read), "intake --help lists {not_read}, which intake does not read");
    }
    assert!(intake.contains("--clock-skew-minutes") && intake.contains("[default: 10]"), "{intake}");
    let aggregate = help("aggregate");
    assert!(!aggregate.contains("--fold-threads") && !aggregate.contains("--clock-skew-minutes"), "{aggregate}");
    assert!(aggregate.contains("--publish-feeds") && aggregate.contains("[default: false]"), "{aggregate}");
}

#[test]
fn a_setting_hidden_from_a_commands_help_is_still_accepted() {
    // A shared environment or config file may set it for every command.
    let output = Command::new(env!("CARGO_BIN_EXE_daybook"))
        .args(["intake", "--fold-threads", "2", "--log", "embedded", "--data-dir", "/nonexistent/daybook"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}

#[test]
fn export_writes_the_daily_report_table_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--clock-skew-minutes", "1440"];
    let (server, output) =
        serve_until(&dir.path().join("data"), &dir.path().join("serve.log"), &args, "daybook serving");
    let target = format!("http://{}", field(&output, "grpc_addr"));
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_daybook")).args(args).output().unwrap();
    // Yesterday in the province (UTC+8), a day within the server's horizon.
    let zone = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let date = chrono::Utc::now().with_timezone(&zone).date_naive().pred_opt().unwrap().to_string();
    let simulated = run(&["simulate", "--target", &target, "--scale", "0.01", "--date", &date]);
    assert!(simulated.status.success(), "{}", String::from_utf8_lossy(&simulated.stderr));
    let file = dir.path().join("schools.csv");
    // Until the fold has registered both schools (it follows intake by a moment).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let export = || {
        run(&[
            "export",
            "--target",
            &target,
            "--level",
            "school",
            "--format",
            "csv",
            "--date",
            &date,
            "--out",
            file.to_str().unwrap(),
        ])
    };
    let mut exported = export();
    while exported.status.success()
        && std::fs::read_to_string(&file).unwrap().lines().count() < 3
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
        exported = export();
    }
    stop(server);
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let csv = std::fs::read_to_string(&file).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.contains("单位 / Unit") && header.contains("名称 / Name"), "{header}");
    // Scale 0.01 is two schools: a row each, named by the simulator.
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("school:S001") && csv.contains("第1技工学校"), "{csv}");
}
