//! A Sluice project in a temporary folder, and the real `sluice` binary run against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `sluice` binary of this build. Cargo builds it before the binary's own integration
/// tests (`CARGO_BIN_EXE_sluice`, which nextest also sets when they run); from another crate's
/// tests it is `target/<profile>/sluice`, beside the folder of the test executable
/// (`target/<profile>/deps/`), and must have been built.
pub fn sluice_bin() -> PathBuf {
    let path = ["NEXTEST_BIN_EXE_sluice", "CARGO_BIN_EXE_sluice"]
        .iter()
        .find_map(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("the test executable's path");
            let profile = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test executable is in target/<profile>/deps");
            profile.join("sluice")
        });
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build --release -p sluice)",
        path.display()
    );
    path
}

/// A project folder, deleted when dropped.
pub struct TestProject {
    pub dir: tempfile::TempDir,
    /// The project's root: `dir` itself, or the folder `sluice init` made in it.
    root: PathBuf,
    bin: PathBuf,
}

/// How a run of the binary ended.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub command: String,
}

impl Outcome {
    /// Describes the command and its output, for assertion messages that diagnose themselves.
    pub fn explain(&self) -> String {
        format!(
            "command: {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.explain()))
    }
}

/// The outcome of `sluice ARGS` from the process's output.
pub fn outcome(args: &[&str], output: Output) -> Outcome {
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        command: format!("sluice {}", args.join(" ")),
    }
}

impl TestProject {
    /// An empty project: `sluice.yaml` and an empty `pipelines/`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sluice.yaml"), "name: test\n").unwrap();
        std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
        TestProject {
            root: dir.path().to_path_buf(),
            dir,
            bin: sluice_bin(),
        }
    }

    /// The demo project, as `sluice init` creates it for a new user.
    pub fn demo() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("demo");
        let init = Command::new(sluice_bin())
            .arg("init")
            .arg(&root)
            .output()
            .expect("run sluice init");
        assert!(
            init.status.success(),
            "sluice init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        TestProject {
            dir,
            root,
            bin: sluice_bin(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Writes a file of the project (its folders created as needed).
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    /// A file of the project; empty when it does not exist.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    /// `sluice ARGS --project DIR`, to be run (the environment's `SLUICE_PROJECT` left out).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg("--project")
            .arg(self.path())
            .env_remove("SLUICE_PROJECT");
        cmd
    }

    /// Runs `sluice ARGS --project DIR` to its end.
    pub fn sluice(&self, args: &[&str]) -> Outcome {
        let output = self.command(args).output().expect("run sluice");
        outcome(args, output)
    }
}

impl Default for TestProject {
    fn default() -> Self {
        TestProject::new()
    }
}
