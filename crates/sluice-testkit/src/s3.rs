//! A local S3-compatible server (moto, started by `scripts/s3-server`) of a test's own,
//! stopped when dropped — whether the test passed or not.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};

/// Servers one process may run at once.
const PER_PROCESS: u16 = 4;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-server")
}

pub struct Server {
    pub port: u16,
}

impl Server {
    /// Starts a server on a port of this process's own. The ports lie below the kernel's
    /// ephemeral range (32768+), where `free_port` servers live: moto binds its port a while
    /// after it is chosen, and a port another test grabbed meanwhile would answer in its place.
    pub fn start() -> Server {
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let base = 12_000 + u16::try_from(std::process::id() % 4_500).unwrap() * PER_PROCESS;
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % PER_PROCESS;
        let out = Command::new(script())
            .arg(port.to_string())
            .output()
            .expect("run scripts/s3-server");
        // Stopped on drop even when starting failed half-way (it may have come up late).
        let server = Server { port };
        assert!(
            out.status.success(),
            "scripts/s3-server {port} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            server.endpoint(),
            "the script prints the endpoint"
        );
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of `path` (a bucket, a key) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.port.to_string()])
            .output();
    }
}
