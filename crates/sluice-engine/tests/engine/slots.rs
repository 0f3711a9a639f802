//! Which ready task starts when: pools' slots shared by every run of the process, and
//! priorities among ready tasks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::RunState;
use sluice_engine::Pools;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::on_both;
use crate::support::{Journal, NoProgress, Project, Step, fake, pipeline, run_on, task};

/// Two runs of three tasks each, all in a pool of two slots: never more than two at once, and
/// the six tries take three rounds.
async fn pools_share_their_slots_across_runs(project: Project) {
    let journal = Journal::new();
    let work = || fake(&journal, &[Step::Work(Duration::from_secs(10))]);
    let in_pool = |id: &str| {
        let mut t = task(id, work());
        t.pool = Some("db".into());
        t
    };
    let p = pipeline(
        "pooled",
        vec![
            (in_pool("a"), &[]),
            (in_pool("b"), &[]),
            (in_pool("c"), &[]),
        ],
    );
    let pools = Arc::new(Pools::new(&BTreeMap::from([("db".to_string(), 2)])));
    let exec = project.executor(8, pools);

    let before = Instant::now();
    let (first, second) = tokio::join!(
        run_on(&exec, &p, 1, &NoProgress, CancellationToken::new()),
        run_on(&exec, &p, 2, &NoProgress, CancellationToken::new()),
    );
    let took = before.elapsed();
    assert_eq!(first.run.state, RunState::Success);
    assert_eq!(second.run.state, RunState::Success);
    assert_eq!(journal.starts().len(), 6);
    assert_eq!(journal.peak(), 2, "the pool has two slots");
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_millis(30_500),
        "three rounds of 10 s, took {took:?}"
    );
}
on_both!(pools_share_their_slots_across_runs, paused);

/// One slot: the ready task of highest priority starts first, first come among equals.
async fn ready_tasks_start_by_priority(project: Project) {
    let journal = Journal::new();
    let with_priority = |id: &str, priority: i64| {
        let mut t = task(id, fake(&journal, &[Step::Succeed]));
        t.priority = priority;
        t
    };
    let p = pipeline(
        "priorities",
        vec![
            (with_priority("a", 1), &[]),
            (with_priority("b", 5), &[]),
            (with_priority("c", 3), &[]),
            (with_priority("d", 5), &[]),
            (with_priority("e", 10), &["b"]),
        ],
    );
    let exec = project.executor(1, Arc::new(Pools::default()));
    let outcome = run_on(&exec, &p, 1, &NoProgress, CancellationToken::new()).await;
    assert_eq!(outcome.run.state, RunState::Success);
    // `e` becomes ready when `b` ends, and goes ahead of the tasks that waited longer.
    assert_eq!(journal.starts(), ["b", "e", "d", "c", "a"]);
}
on_both!(ready_tasks_start_by_priority, paused);
