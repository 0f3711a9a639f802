//! `sluice check`: every problem in every pipeline file, as file:line:col with a hint.

use crate::workspace::Workspace;
use crate::{Global, exit};

pub fn run(global: &Global, json: bool) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let project = &ws.project;
    let errors = project.errors().count();
    let warnings = project.diagnostics.len() - errors;
    let ok = errors == 0;
    if json {
        let pipelines: Vec<serde_json::Value> = project
            .pipelines
            .iter()
            .map(|p| {
                serde_json::json!({
                    "pipeline": p.id,
                    "file": p.file,
                    "schedule": p.timetable.schedule.describe(),
                    "tasks": p.tasks.iter().map(|t| &t.id).collect::<Vec<_>>(),
                })
            })
            .collect();
        let streams: Vec<serde_json::Value> = project
            .streams
            .iter()
            .map(|s| {
                serde_json::json!({
                    "stream": s.id,
                    "file": s.file,
                    "topics": s.source.topics,
                    "group": s.source.group,
                })
            })
            .collect();
        let out = serde_json::json!({
            "ok": ok,
            "pipelines": pipelines,
            "streams": streams,
            "problems": project.diagnostics,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for d in &project.diagnostics {
            println!("{d}");
        }
        let files = project
            .files
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len();
        let streams = match project.streams.len() {
            0 => String::new(),
            n => format!(" and {n} stream{}", plural(n)),
        };
        let warned = match warnings {
            0 => String::new(),
            n => format!(", {n} warning{}", plural(n)),
        };
        if ok {
            println!(
                "ok: {} pipeline{}{streams} in {} file{}, no problems{warned}",
                project.pipelines.len(),
                plural(project.pipelines.len()),
                files,
                plural(files)
            );
        } else {
            println!(
                "{errors} problem{} found{warned}; {} pipeline{} valid",
                plural(errors),
                project.pipelines.len(),
                plural(project.pipelines.len())
            );
        }
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
