//! The deployment files as shipped (`deploy/`), checked against what the binary reads and
//! what the tools that run them require: no Docker engine or systemd as PID 1 here, so
//! the files' structure, their settings, and systemd's own offline checks of the units
//! (`systemd-analyze verify` and `security`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `DAYBOOK_*` variable the binary reads (its flags' `env = "…"`).
fn settings_read() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in ["services/daybook/src/config.rs", "services/daybook/src/main.rs"] {
        for part in read(file).split("env = \"").skip(1) {
            out.insert(part.split('"').next().unwrap().to_owned());
        }
    }
    assert!(out.contains("DAYBOOK_LOG") && out.contains("DAYBOOK_PUBLISH_FEEDS"), "{out:?}");
    out
}

/// Every `DAYBOOK_*` name in `text`.
fn settings_named(text: &str) -> BTreeSet<String> {
    text.split("DAYBOOK_")
        .skip(1)
        .map(|rest| {
            format!("DAYBOOK_{}", rest.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect::<String>())
        })
        .collect()
}

fn compose() -> Value {
    let mut compose: Value = serde_yaml::from_str(&read("deploy/compose.yaml")).unwrap();
    compose.apply_merge().unwrap();
    compose
}

fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(value, |v, key| &v[*key]).as_str().unwrap_or_else(|| panic!("{path:?} is not text"))
}

#[test]
fn the_compose_file_runs_a_cluster_that_keeps_its_log_and_starts_in_order() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let brokers: Vec<&str> =
        services.keys().map(|k| k.as_str().unwrap()).filter(|name| name.starts_with("kafka-")).collect();
    assert_eq!(brokers.len(), 3);
    for broker in &brokers {
        let service = &compose["services"][*broker];
        // KRaft: 16 bytes in base64url without padding, one id for the whole cluster.
        let id = text(service, &["environment", "CLUSTER_ID"]);
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id);
        assert_eq!(bytes.map(|b| b.len()).ok(), Some(16), "{broker}: CLUSTER_ID {id} is not a KRaft cluster id");
        // The log where the volume is, or it is lost with the container.
        let log_dirs = text(service, &["environment", "KAFKA_LOG_DIRS"]);
        let mounts: Vec<&str> = service["volumes"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(
            mounts.iter().any(|m| m.split(':').nth(1) == Some(log_dirs)),
            "{broker}: {log_dirs} not on a volume: {mounts:?}"
        );
        assert!(service["healthcheck"]["test"].is_sequence(), "{broker}: no health check to start daybook on");
    }
    let known = settings_read();
    let mut feeds = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert!(service["restart"].as_str().is_some_and(|r| r != "no"), "{name}: no restart policy");
        if brokers.contains(&name) {
            continue;
        }
        assert_eq!(text(service, &["image"]), "daybook:latest");
        for broker in &brokers {
            assert_eq!(
                service["depends_on"][*broker]["condition"].as_str(),
                Some("service_healthy"),
                "{name}: starts before {broker} answers"
            );
        }
        let environment = service["environment"].as_mapping().unwrap();
        for key in environment.keys().map(|k| k.as_str().unwrap()).filter(|k| k.starts_with("DAYBOOK_")) {
            assert!(known.contains(key), "{name}: {key} is read by no daybook flag");
        }
        if service["environment"]["DAYBOOK_PUBLISH_FEEDS"].as_str() == Some("true") {
            feeds.push(name);
        }
    }
    assert_eq!(feeds.len(), 1, "exactly one aggregator publishes the feeds: {feeds:?}");
    // Every file it names is shipped.
    for shipped in ["deploy/README.md", "deploy/Dockerfile", "deploy/KAFKA.md"] {
        assert!(repo().join(shipped).is_file(), "{shipped} is named but missing");
    }
}

/// Every `/run/secrets/NAME` in `text`.
fn secrets_named(text: &str) -> BTreeSet<String> {
    text.split("/run/secrets/")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect())
        .collect()
}

#[test]
fn the_compose_cluster_speaks_only_tls_with_the_certificates_the_script_makes() {
    let compose = compose();
    let secrets = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(repo().join("deploy/make-secrets.sh")).arg(secrets.path()).output().unwrap();
    assert!(made.status.success(), "make-secrets.sh: {}", String::from_utf8_lossy(&made.stderr));
    // Every secret the compose file mounts is a file the script makes.
    let declared: BTreeSet<String> =
        compose["secrets"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect();
    for name in &declared {
        let file = text(&compose, &["secrets", name, "file"]);
        let made = secrets.path().join(file.strip_prefix("./secrets/").unwrap_or_else(|| panic!("{name}: {file}")));
        assert!(made.is_file(), "secret {name}: make-secrets.sh makes no {}", made.display());
    }
    for (name, config) in compose["configs"].as_mapping().unwrap() {
        let file = repo().join("deploy").join(text(config, &["file"]));
        assert!(file.is_file(), "config {name:?}: {} is not shipped", file.display());
    }
    let health = read("deploy/kafka-health.properties");
    for (name, service) in compose["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        // A service names only secrets it mounts (the brokers' health check's too).
        let mounted: BTreeSet<String> =
            service["secrets"].as_sequence().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
        let mut used = secrets_named(&serde_yaml::to_string(&service["environment"]).unwrap());
        if name.starts_with("kafka-") {
            used.extend(secrets_named(&health));
            let map = text(service, &["environment", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]);
            assert!(map.split(',').all(|l| l.ends_with(":SSL")), "{name}: a listener without TLS: {map}");
            assert_eq!(text(service, &["environment", "KAFKA_SSL_CLIENT_AUTH"]), "required", "{name}");
            // The apache/kafka image demands JKS stores for a listener named with SSL.
            let advertised = text(service, &["environment", "KAFKA_ADVERTISED_LISTENERS"]);
            assert!(!advertised.contains("SSL://"), "{name}: {advertised}");
            // Its certificate names it as its peers reach it, and as its health check does.
            let host = advertised.split("://").nth(1).unwrap().split(':').next().unwrap();
            for host in [host, "localhost"] {
                let verified = std::process::Command::new("openssl")
                    .args(["verify", "-verify_hostname", host, "-CAfile"])
                    .args([secrets.path().join("kafka-ca.pem"), secrets.path().join("kafka-broker-cert.pem")])
                    .output()
                    .expect("openssl runs");
                assert!(verified.status.success(), "{name}: the broker certificate is not valid for {host}");
            }
        } else {
            let log = text(service, &["environment", "DAYBOOK_LOG"]);
            eventlog::KafkaConfig::from_url(log).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(log.contains("&security-protocol=ssl&"), "{name}: {log}");
        }
        assert!(used.is_subset(&mounted), "{name}: uses secrets {used:?}, mounts {mounted:?}");
        assert!(mounted.is_subset(&declared), "{name}: mounts undeclared secrets {mounted:?}");
    }
}

#[test]
fn the_image_builds_the_binary_the_compose_file_runs() {
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked -p daybook"), "{dockerfile}");
    assert!(dockerfile.contains("/usr/local/bin/daybook"), "daybook on the PATH: compose runs `daybook …`");
    let compose = compose();
    for (name, service) in compose["services"].as_mapping().unwrap() {
        if let Some(command) = service["command"].as_sequence() {
            assert_eq!(command[0].as_str(), Some("daybook"), "{name:?}");
        }
    }
}

#[test]
fn the_systemd_units_are_hardened_and_name_only_settings_that_exist() {
    let known = settings_read();
    let units: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    let names: BTreeSet<String> = units.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for unit in ["daybook-serve.service", "daybook-intake.service", "daybook-aggregate.service"] {
        assert!(names.contains(unit), "{unit} is not shipped: {names:?}");
    }
    for unit in &units {
        let text = std::fs::read_to_string(unit).unwrap();
        for setting in settings_named(&text) {
            assert!(known.contains(&setting), "{}: {setting} is read by no daybook flag", unit.display());
        }
        // systemd's own score, offline: 0 (safe) to 10 (exposed); 9.2 before hardening.
        let output = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit)
            .output()
            .expect("systemd-analyze runs (Debian's systemd package; .ci/run installs it)");
        let report = String::from_utf8_lossy(&output.stdout);
        let score: f64 = report
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1)?.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no score for {}: {report}", unit.display()));
        assert!(score <= 2.0, "{}: exposure {score}:\n{report}", unit.display());
        // systemd's own parse of every directive: a typo or a bad value is a warning on
        // stderr. The unit's binary must exist for it, so a copy points at a stand-in.
        let stand_in = tempfile::tempdir().unwrap();
        let binary = stand_in.path().join("daybook");
        std::fs::write(&binary, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let copy = stand_in.path().join(unit.file_name().unwrap());
        std::fs::write(&copy, text.replace("/usr/local/bin/daybook", binary.to_str().unwrap())).unwrap();
        let verified =
            std::process::Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy).output().unwrap();
        let said = String::from_utf8_lossy(&verified.stderr);
        assert!(verified.status.success() && said.trim().is_empty(), "{}: {said}", unit.display());
    }
}

/// The metric names in PromQL text: `daybook_…` and `process_…` identifiers.
fn metrics_named(promql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["daybook_", "process_"] {
        for rest in promql.split(prefix).skip(1) {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            out.insert(format!("{prefix}{name}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_and_the_dashboard_ask_for_metrics_the_server_exports() {
    let rules: Value = serde_yaml::from_str(&read("deploy/monitoring/alerts.yaml")).unwrap();
    let mut asked = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            asked.push((format!("alert {}", text(rule, &["alert"])), text(rule, &["expr"]).to_owned()));
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(&read("deploy/monitoring/dashboard.json")).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            asked.push((format!("panel {}", panel["title"]), target["expr"].as_str().unwrap().to_owned()));
        }
    }
    assert!(asked.len() > 10, "{asked:?}");

    // A server with something in each family: an event accepted (and posted again), one
    // for a person on no roster, one refused.
    let dir = tempfile::tempdir().unwrap();
    let mut server = tests::start(dir.path(), &tests::Backend::Embedded).await;
    let mut school = tests::School::new("S1", "Guangzhou", "2020-03-02");
    let nobody = school.temperature("07:40", "X", tests::Slot::Morning, 36.5);
    let registered = school.register("07:00", &tests::teacher("T"));
    server.post_all(vec![registered.clone(), nobody]).await;
    let again = server.intake.publish(registered).await.unwrap().into_inner();
    assert_eq!(again.outcome, tests::Outcome::Duplicate as i32);
    let _ = server.intake.publish(school.temperature("07:30", "T", tests::Slot::Morning, 99.0)).await;
    server.caught_up().await;
    // Lag and positions are measured every few seconds.
    let mut metrics = String::new();
    for _ in 0..300 {
        metrics = tests::http_get(server.running.http_addr, "/metrics").await;
        if metrics.contains("\ndaybook_log_lag{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Every gRPC call counted by method and code; a made-up path as `unknown`.
    for call in [r#"method="daybook.v1.Intake/Publish",code="OK"} 1"#, r#"Publish",code="INVALID_ARGUMENT"} 1"#] {
        assert!(metrics.contains(call), "{call} in {metrics}");
    }
    assert!(metrics.contains(r#"daybook_grpc_request_duration_seconds_count{method="daybook.v1.Intake/Publish"} 2"#));
    // S1's last event was acknowledged at the harness clock's instant, 2020-01-01 00:00 UTC.
    assert!(
        metrics.contains("daybook_school_last_event_accepted_timestamp_seconds{school=\"S1\"} 1577836800\n"),
        "{metrics}"
    );
    let exported: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(rest) => rest.split(' ').next(),
            None if !l.starts_with('#') => l.split(['{', ' ']).next(),
            None => None,
        })
        .map(str::to_owned)
        .collect();
    // A family shows in /metrics once it has a sample: the stall gauge gets its first
    // when a partition is watched, which this embedded server's one reader never needs,
    // the feeds' when a day is sealed, an item published or a feed subscribed or forwarded
    // (tests/feeds.rs sees those). Each must still be registered under that name.
    let registered_later = [
        ("daybook_partition_stalled", "services/aggregator/src/lib.rs"),
        ("daybook_sealed_reports", "services/feeds/src/metrics.rs"),
        ("daybook_feed_items_total", "services/feeds/src/metrics.rs"),
        ("daybook_feed_subscribers", "services/feeds/src/metrics.rs"),
        ("daybook_feed_forward_lag", "services/feeds/src/metrics.rs"),
    ];
    for (metric, file) in registered_later {
        let registered = metric.strip_suffix("_total").unwrap_or(metric);
        assert!(read(file).contains(&format!("\"{registered}\"")), "{metric} is registered by no one");
    }
    let registered_later: Vec<&str> = registered_later.iter().map(|(metric, _)| *metric).collect();
    for (what, expr) in &asked {
        for metric in metrics_named(expr) {
            let known = exported.contains(&metric) || registered_later.contains(&metric.as_str());
            assert!(known, "{what}: {metric} is not exported ({expr})");
        }
    }
    server.running.stop().await.unwrap();
}
