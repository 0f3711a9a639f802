//! A real Kafka-protocol broker for end-to-end tests: tansu, in memory, on a free port of
//! 127.0.0.1, killed when dropped; and a real external producer, Python's confluent-kafka.
//! Both are installed by `scripts/kafka-tools` (which `scripts/test` runs first).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tool(env: &str, cached: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("SLUICE_CACHE").unwrap_or_else(|| "/var/cache/sluice".into());
        PathBuf::from(cache).join(cached)
    });
    assert!(
        path.exists(),
        "{} is missing: run scripts/kafka-tools (scripts/test does) or set {env}",
        path.display()
    );
    path
}

pub struct Broker {
    child: Child,
    pub bootstrap: String,
    tansu: PathBuf,
}

impl Broker {
    pub fn start() -> Broker {
        let tansu = tool("SLUICE_TANSU", "tansu/bin/tansu");
        let port = super::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let broker = Broker {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            tansu,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    /// Topics must be created explicitly on tansu.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let out = Command::new(&self.tansu)
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.bootstrap)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Produces `(partition, payload)` records with confluent-kafka (acks=all), in order.
    pub fn produce(&self, topic: &str, records: &[(i32, String)]) {
        let python = tool("SLUICE_KAFKA_PYTHON", "kafka-venv/bin/python");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/produce.py");
        let mut child = Command::new(python)
            .args([script, &self.bootstrap, topic])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
            for (partition, payload) in records {
                assert!(!payload.contains('\n'), "one record per line");
                writeln!(stdin, "{partition}\t{payload}").unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "produce.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
