//! Restart: stop the server, start it again on the same directory: every number is
//! unchanged, duplicates are still known, and new events fold on top.

use daybook::{Roles, ServeArgs};
use tests::{Backend, School, Slot, checks, small_province_day, start, start_with, student, teacher};
use wire::pb;

const DAY: &str = "2020-03-02";

#[tokio::test]
async fn on_the_embedded_log_reports_survive_a_restart_and_new_events_fold_on_top() {
    reports_survive_a_restart_and_new_events_fold_on_top(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_reports_survive_a_restart_and_new_events_fold_on_top() {
    reports_survive_a_restart_and_new_events_fold_on_top(Backend::kafka()).await;
}

async fn reports_survive_a_restart_and_new_events_fold_on_top(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = School::new("S1", "Guangzhou", DAY);
    let mut events = vec![s.register("07:00", &student("A", "C01", "B1")), s.register("07:00", &teacher("T"))];
    events.push(s.temperature("07:30", "A", Slot::Morning, 38.0));
    events.push(s.temperature("07:30", "T", Slot::Morning, 36.4));
    let reading = events[2].clone();

    let mut server = start(dir.path(), &backend).await;
    server.post_all(events).await;
    let units = [
        "province",
        "city:Guangzhou",
        "school:S1",
        "department:S1/D1",
        "grade:S1/D1/2019",
        "class:S1/D1/2019/C01",
        "dorm:S1/B1",
    ];
    let mut before = Vec::new();
    for unit in units {
        before.push(server.report(unit, DAY).await);
    }
    server.running.stop().await.unwrap();

    let mut server = start(dir.path(), &backend).await;
    for (unit, earlier) in units.iter().zip(&before) {
        assert_eq!(&server.report(unit, DAY).await, earlier, "{unit} changed across the restart");
    }
    let again = server.intake.publish(reading).await.unwrap().into_inner();
    assert_eq!(again.outcome, pb::Outcome::Duplicate as i32);
    server.post_all(vec![s.temperature("12:00", "T", Slot::Noon, 37.9)]).await;
    let school = server.report("school:S1", DAY).await;
    assert_eq!((school.population, school.fever), (2, 2));
    assert_eq!(checks(&school, Slot::Noon), (1, 2));
    let status = server.reports.get_status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.total_lag, 0);
    server.running.stop().await.unwrap();
}

/// On the embedded log, aggregators fold shares of the partitions in parallel into one
/// store. Every report is the same as one aggregator's, also when a restart with another
/// count hands partitions to aggregators that did not fold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregators_folding_shares_of_the_log_give_the_reports_of_one() {
    let events = small_province_day(12, 25, DAY);
    let (first, second) = events.split_at(events.len() / 2);
    let fold_threads =
        |dir: &std::path::Path, n: u32| ServeArgs { fold_threads: Some(n), ..Backend::Embedded.args(dir) };

    let alone = tempfile::tempdir().unwrap();
    let mut server = start_with(fold_threads(alone.path(), 1), Roles::All).await;
    server.post_all(events.clone()).await;
    let expected = server.all_reports(DAY).await;
    server.running.stop().await.unwrap();
    assert!(expected.len() > 100, "every unit of 12 schools: {}", expected.len());

    let dir = tempfile::tempdir().unwrap();
    let mut server = start_with(fold_threads(dir.path(), 2), Roles::All).await;
    server.post_all(first.to_vec()).await;
    server.caught_up().await;
    server.running.stop().await.unwrap();
    // Three shares of four partitions: partitions 2 and 3 change hands.
    let mut server = start_with(fold_threads(dir.path(), 3), Roles::All).await;
    server.post_all(second.to_vec()).await;
    assert_eq!(server.all_reports(DAY).await, expected);
    assert_eq!(server.events_folded().await, second.len() as u64, "only the new events are folded");
    server.running.stop().await.unwrap();
}
