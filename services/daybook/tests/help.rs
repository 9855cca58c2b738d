//! What `--help` tells an operator: each server command lists the settings it reads, each
//! with its default.

use std::process::Command;

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
