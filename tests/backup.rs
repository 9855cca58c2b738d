//! Backup and restore of a data directory on the embedded log (deploy/README.md): the log
//! is the source of truth and can be copied while the server runs; a server started on
//! that copy alone rebuilds the same reports, and counts nothing twice.

use std::path::Path;

use tests::{Backend, small_province_day, start};

const DAY: &str = "2020-03-02";

/// Copies the directory tree `from` into `to`, file by file, as `cp -r` would.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_log_taken_while_serving_restores_every_report() {
    let (live, restored, cold) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut server = start(live.path(), &Backend::Embedded).await;
    let events = small_province_day(3, 10, DAY);
    let first = events[0].clone();
    server.post_all(events).await;
    let want = server.all_reports(DAY).await;
    assert_eq!(want["province"].population, 30);

    // The backup: the log alone, copied while the server runs.
    copy_tree(&live.path().join("log"), &restored.path().join("log"));
    server.running.stop().await.unwrap();
    // And a whole data directory copied while stopped.
    copy_tree(live.path(), cold.path());

    let mut from_log = start(restored.path(), &Backend::Embedded).await;
    assert_eq!(from_log.all_reports(DAY).await, want, "rebuilt from the log alone");
    // Its intake index was not in the backup: an event posted again is taken in again,
    // and the fold still counts it once.
    from_log.post_all(vec![first]).await;
    assert_eq!(from_log.all_reports(DAY).await, want, "an event posted again is counted once");
    from_log.running.stop().await.unwrap();

    let mut whole = start(cold.path(), &Backend::Embedded).await;
    assert_eq!(whole.all_reports(DAY).await, want, "restored with its projections");
    assert_eq!(whole.events_folded().await, 0, "nothing to fold again: the projections came with it");
    whole.running.stop().await.unwrap();
}
