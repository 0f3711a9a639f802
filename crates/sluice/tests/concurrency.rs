//! Concurrency controls against the real binary: `priority` orders ready tasks, and a pool's
//! slots bound tasks across every run of the process (here a parallel backfill).

use crate::common;

use common::TestProject;

#[test]
fn higher_priority_runs_first_among_ready_tasks() {
    let p = TestProject::new();
    p.write("sluice.yaml", "name: test\nparallelism: 1\n");
    let task = |name: &str, priority: &str| {
        format!("  {name}:\n{priority}    shell: {{ command: \"echo {name} >> order.txt\" }}\n")
    };
    p.write(
        "pipelines/p.yaml",
        &format!(
            "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n{}{}{}{}",
            task("low", "    priority: 1\n"),
            task("high", "    priority: 10\n"),
            task("mid", "    priority: 5\n"),
            task("plain", ""),
        ),
    );
    let run = p.sluice(&["run", "p", "--date", "2024-01-01"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(p.read("order.txt"), "high\nmid\nlow\nplain\n");
}

#[test]
fn a_pool_bounds_its_tasks_across_runs() {
    let p = TestProject::new();
    p.write("sluice.yaml", "name: test\npools: { db: 1 }\n");
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\ndefaults: { pool: db }\ntasks:\n  \
         a: { shell: { command: \"echo start >> slots.txt; sleep 0.2; echo end >> slots.txt\" } }\n  \
         b: { shell: { command: \"echo start >> slots.txt; sleep 0.2; echo end >> slots.txt\" } }\n  \
         free: { pool: none_needed, shell: { command: \"true\" } }\n",
    );
    // An unknown pool is reported with its task.
    let check = p.sluice(&["check"]);
    assert_eq!(check.code, 1, "{}", check.explain());
    assert!(
        check.stdout.contains(
            "task `free` takes a slot of pool `none_needed`, which sluice.yaml does not define"
        ),
        "{}",
        check.explain()
    );
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\ndefaults: { pool: db }\ntasks:\n  \
         a: { shell: { command: \"echo start >> slots.txt; sleep 0.2; echo end >> slots.txt\" } }\n  \
         b: { shell: { command: \"echo start >> slots.txt; sleep 0.2; echo end >> slots.txt\" } }\n",
    );
    let backfill = p.sluice(&[
        "backfill",
        "p",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
        "--parallel",
        "3",
    ]);
    assert_eq!(backfill.code, 0, "{}", backfill.explain());
    // Six tries, one slot: never two at once.
    let lines: Vec<String> = p.read("slots.txt").lines().map(String::from).collect();
    assert_eq!(lines.len(), 12, "{lines:?}");
    for pair in lines.chunks(2) {
        assert_eq!(pair, ["start", "end"], "{lines:?}");
    }
}
