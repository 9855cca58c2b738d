//! Log lines and errors as an operator's tools read them: plain text without escape
//! sequences when stderr is a file or the journal, one JSON object per line with
//! `--log-format json`, and a user error as one line.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `daybook serve` on a fresh data directory with `args` until it logs that it is
/// serving, and returns what it wrote to stderr.
fn serve_output(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_daybook"))
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("daybook serve starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let output = loop {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if output.contains("daybook serving") {
            break output;
        }
        assert!(Instant::now() < deadline, "never said it was serving: {output}");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    output
}

#[test]
fn logs_to_a_file_carry_no_escape_sequences() {
    let output = serve_output(&[]);
    assert!(!output.contains('\x1b'), "{output:?}");
    assert!(output.lines().any(|l| l.contains("INFO") && l.contains("daybook serving")), "{output}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let output = serve_output(&["--log-format", "json"]);
    let lines: Vec<serde_json::Value> =
        output.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let serving = lines
        .iter()
        .find(|l| l["fields"]["message"] == "daybook serving")
        .unwrap_or_else(|| panic!("no serving line in {output}"));
    assert_eq!(serving["level"], "INFO");
    assert!(serving["fields"]["grpc_addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{serving}");
}

#[test]
fn a_user_error_is_one_line_even_with_backtraces_asked_for() {
    // A data directory that is a file: the server cannot start.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_daybook"))
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("INFO") && !l.contains("WARN")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
}
