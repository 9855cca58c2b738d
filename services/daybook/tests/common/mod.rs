//! Helpers shared by the tests that run the `daybook` binary.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `daybook serve` on `data` with `args`, its stderr into `log`, until it has logged
/// `wanted`; the process still runs, and what it wrote so far.
// The child goes back to the caller, which stops and waits for it.
#[allow(clippy::zombie_processes)]
pub fn serve_until(data: &std::path::Path, log: &std::path::Path, args: &[&str], wanted: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_daybook"))
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("daybook serve starts");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let output = std::fs::read_to_string(log).unwrap_or_default();
        if output.contains(wanted) {
            return (child, output);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("never logged {wanted:?}: {output}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A log line's `name=value` field.
pub fn field<'a>(output: &'a str, name: &str) -> &'a str {
    let start = output.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {output}")) + name.len() + 1;
    output[start..].split_whitespace().next().unwrap()
}

/// Stops a server as its service manager would, and waits for it.
pub fn stop(mut child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
}
