//! `daybook token` and client commands with `DAYBOOK_TOKEN`, as an operator runs them:
//! a token issued offline on the data directory before `serve`, then used, listed and
//! revoked through the running server.

use std::process::{Command, Output};

use daybook::ServeArgs;

fn daybook(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_daybook"));
    command.args(args).env_remove("DAYBOOK_TOKEN").env_remove("DAYBOOK_TARGET");
    if let Some(token) = token {
        command.env("DAYBOOK_TOKEN", token);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_issued_offline_works_on_the_server_and_is_revoked_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let issued = stdout(&daybook(
        &["token", "issue", "--data-dir", data, "--name", "ops", "--read", "province", "--persons", "--admin"],
        None,
    ));
    let ops = issued.lines().last().unwrap().to_owned();
    assert!(ops.starts_with("dbk_") && ops.len() > 40, "{issued}");
    let office =
        stdout(&daybook(&["token", "issue", "--data-dir", data, "--name", "office", "--read", "city:Foshan"], None));
    let office = office.lines().last().unwrap().to_owned();
    // The same token issued on another instance's data directory (over Kafka each
    // process keeps its own tokens).
    let other = tempfile::tempdir().unwrap();
    let secret_file = other.path().join("ops.secret");
    std::fs::write(&secret_file, &ops).unwrap();
    let again = stdout(&daybook(
        &["token", "issue", "--data-dir", other.path().to_str().unwrap(), "--name", "ops", "--read", "province"]
            .into_iter()
            .chain(["--secret-file", secret_file.to_str().unwrap()])
            .collect::<Vec<_>>(),
        None,
    ));
    assert_eq!(again.lines().last(), Some(ops.as_str()));
    let store = daybook::auth::Tokens::open(other.path()).unwrap();
    assert_eq!(store.authenticate(&ops).map(|a| a.name), Some("ops".to_owned()));
    drop(store);
    let listed = stdout(&daybook(&["token", "list", "--data-dir", data], None));
    assert!(listed.contains("ops\tpost: -\tread: province\tpersons,admin"), "{listed}");
    assert!(!listed.contains(&ops), "the secret is not listed");

    let args = ServeArgs {
        data_dir: Some(dir.path().to_owned()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        partitions: Some(2),
        auth: Some("required".into()),
        ..ServeArgs::default()
    };
    let running = daybook::start(&args.resolve().unwrap()).await.unwrap();
    let target = format!("http://{}", running.grpc_addr);
    let report = |token: Option<&str>| daybook(&["report", "--target", &target, "--unit", "province", "--json"], token);
    let refused = tokio::task::block_in_place(|| report(None));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unauthenticated"), "{refused:?}");
    let refused = tokio::task::block_in_place(|| report(Some(&office)));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("permissiondenied"), "{refused:?}");
    let shown = tokio::task::block_in_place(|| stdout(&report(Some(&ops))));
    assert!(shown.contains("\"unit\": \"province\""), "{shown}");

    let revoke = ["token", "revoke", "--target", &target, "office"];
    assert!(!tokio::task::block_in_place(|| daybook(&revoke, Some(&office))).status.success(), "no admin right");
    tokio::task::block_in_place(|| stdout(&daybook(&revoke, Some(&ops))));
    let listed = tokio::task::block_in_place(|| stdout(&daybook(&["token", "list", "--target", &target], Some(&ops))));
    assert!(listed.lines().any(|l| l.starts_with("office\t") && l.contains("REVOKED")), "{listed}");
    let audit = tokio::task::block_in_place(|| stdout(&daybook(&["audit", "--target", &target], Some(&ops))));
    assert_eq!(audit.lines().next(), Some("at,token,call,unit,detail"));
    running.stop().await.unwrap();
}
