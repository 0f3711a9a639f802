//! Trigger rules as the executor applies them: what a task does given how its upstream tasks
//! ended, and that a skipped or upstream_failed task passes it on downstream.

use std::time::Duration;

use sluice_core::TaskState::{self, *};
use sluice_core::TriggerRule::{self, *};

use crate::on_both;
use crate::support::{Journal, Project, Step, What, fake, pipeline, task};

/// How an upstream task ends.
#[derive(Debug, Clone, Copy)]
enum Up {
    Ok,
    Fail,
    /// Skipped by its own rule (one_failed over a task that succeeded).
    Skip,
    /// Upstream_failed (all_success over a task that failed).
    Blocked,
}

/// (the rule of `t`, how its upstream tasks end, the state `t` and its own downstream task end in)
const CASES: &[(TriggerRule, &[Up], TaskState)] = &[
    (AllSuccess, &[Up::Ok, Up::Ok], Success),
    (AllSuccess, &[Up::Ok, Up::Fail], UpstreamFailed),
    (AllSuccess, &[Up::Ok, Up::Blocked], UpstreamFailed),
    (AllSuccess, &[Up::Ok, Up::Skip], Skipped),
    (AllFailed, &[Up::Fail, Up::Blocked], Success),
    (AllFailed, &[Up::Fail, Up::Ok], Skipped),
    (AllFailed, &[Up::Fail, Up::Skip], Skipped),
    (AllDone, &[Up::Ok, Up::Fail, Up::Skip, Up::Blocked], Success),
    (OneSuccess, &[Up::Fail, Up::Ok], Success),
    (OneSuccess, &[Up::Fail, Up::Blocked], UpstreamFailed),
    (OneSuccess, &[Up::Skip, Up::Skip], Skipped),
    (OneFailed, &[Up::Ok, Up::Fail], Success),
    (OneFailed, &[Up::Ok, Up::Blocked], Success),
    (OneFailed, &[Up::Ok, Up::Skip], Skipped),
    (NoneFailed, &[Up::Ok, Up::Skip], Success),
    (NoneFailed, &[Up::Ok, Up::Fail], UpstreamFailed),
    (NoneFailed, &[Up::Skip, Up::Blocked], UpstreamFailed),
    (NoneSkipped, &[Up::Ok, Up::Fail], Success),
    (NoneSkipped, &[Up::Ok, Up::Skip], Skipped),
    (Always, &[Up::Fail, Up::Blocked], Success),
];

async fn each_rule_decides_from_how_the_upstream_tasks_ended(project: Project) {
    let journal = Journal::new();
    let mut wrong = Vec::new();
    for (n, (rule, ups, want)) in CASES.iter().enumerate() {
        // (task, its upstream tasks)
        let mut tasks: Vec<(sluice_core::Task, Vec<String>)> = Vec::new();
        let mut names = Vec::new();
        for (k, up) in ups.iter().enumerate() {
            let (root, name) = (format!("root{k}"), format!("up{k}"));
            let ok = || fake(&journal, &[Step::Succeed]);
            let fail = || fake(&journal, &[Step::Fail]);
            match up {
                Up::Ok => tasks.push((task(&name, ok()), vec![])),
                Up::Fail => tasks.push((task(&name, fail()), vec![])),
                Up::Skip | Up::Blocked => {
                    let (root_action, rule) = match up {
                        Up::Skip => (ok(), OneFailed),
                        _ => (fail(), AllSuccess),
                    };
                    tasks.push((task(&root, root_action), vec![]));
                    let mut t = task(&name, ok());
                    t.trigger_rule = rule;
                    tasks.push((t, vec![root]));
                }
            }
            names.push(name);
        }
        let mut t = task("t", fake(&journal, &[Step::Succeed]));
        t.trigger_rule = *rule;
        tasks.push((t, names));
        let after_t = task("after_t", fake(&journal, &[Step::Succeed]));
        tasks.push((after_t, vec!["t".into()]));
        let afters: Vec<Vec<&str>> = tasks
            .iter()
            .map(|(_, after)| after.iter().map(String::as_str).collect())
            .collect();
        let tasks = tasks.iter().zip(&afters);
        let tasks = tasks.map(|((t, _), after)| (t.clone(), after.as_slice()));
        let p = pipeline(&format!("rules_{n}"), tasks.collect());

        let outcome = project.run(&p).await;
        let states = project.states(&outcome.run);
        let got = (states["t"], states["after_t"]);
        let tries = project.outcomes(&outcome.run, "t").len();
        let want_tries = usize::from(*want == Success);
        if got != (*want, *want) || tries != want_tries {
            wrong.push(format!(
                "{rule:?} over {ups:?}: t {} after_t {} with {tries} tries; expected {want} with {want_tries}",
                got.0, got.1
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong decisions:\n{}", wrong.join("\n"));
}
on_both!(each_rule_decides_from_how_the_upstream_tasks_ended, paused);

/// `one_success` starts as soon as one upstream task succeeded; `all_done` waits for every one.
async fn one_success_fires_early_and_all_done_waits(project: Project) {
    let journal = Journal::new();
    let slow = fake(&journal, &[Step::Work(Duration::from_secs(60))]);
    let mut early = task("early", fake(&journal, &[Step::Succeed]));
    early.trigger_rule = OneSuccess;
    let mut late = task("late", fake(&journal, &[Step::Succeed]));
    late.trigger_rule = AllDone;
    let p = pipeline(
        "early_and_late",
        vec![
            (task("fast", fake(&journal, &[Step::Succeed])), &[]),
            (task("slow", slow), &[]),
            (early, &["fast", "slow"]),
            (late, &["fast", "slow"]),
        ],
    );
    let outcome = project.run(&p).await;
    assert_eq!(outcome.run.state, sluice_core::RunState::Success);
    let slow_ended = journal.at("slow", 1, What::Ended);
    assert!(journal.at("early", 1, What::Started) < slow_ended);
    assert!(journal.at("late", 1, What::Started) >= slow_ended);
}
on_both!(one_success_fires_early_and_all_done_waits, paused);
