//! `sluice check` on a folder of cases: each case is a project under `tests/check_cases/NAME/`
//! whose `expected.txt` holds the exact diagnostics. Set `SLUICE_BLESS=1` to rewrite them.

use crate::common;

use std::path::Path;

use common::TestProject;

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "expected.txt" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn check_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_cases");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 9, "the case folder is missing cases");
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let project = TestProject::new();
        copy_dir(&case, project.path());
        let out = project.sluice(&["check"]);
        let expected_path = case.join("expected.txt");
        let actual = out.stdout.clone();
        let expected_code = if matches!(name.as_str(), "valid" | "valid_streams") {
            0
        } else {
            1
        };
        if out.code != expected_code {
            failures.push(format!(
                "case {name}: expected exit code {expected_code}\n{}",
                out.explain()
            ));
            continue;
        }
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "case {name}:\n--- expected ---\n{expected}\n--- actual ---\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
