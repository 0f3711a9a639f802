//! Database servers of a test's own that speak only TLS: a PostgreSQL 15 cluster (initdb and
//! pg_ctl of the machine's binaries, run as the `postgres` user since initdb refuses root) and
//! a MariaDB (mariadb-install-db and mariadbd), each on a free port in a temporary folder, with
//! a CA and server certificates made for the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::net::free_port;

/// A certificate authority made for one test, and where its certificate is written.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_file: PathBuf,
}

/// A certificate and key signed by a [`TestCa`], as PEM files.
pub struct Signed {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCa {
    /// A new CA whose certificate is written to `dir/NAME.crt`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("sluice test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let cert_file = dir.join(format!("{name}.crt"));
        std::fs::write(&cert_file, cert.pem()).expect("write the CA certificate");
        TestCa {
            issuer: Issuer::new(params, key),
            cert_file,
        }
    }

    /// A certificate for `names` (host names or IP addresses; the first is also the common
    /// name, which PostgreSQL's `cert` authentication reads as the user) in `dir/FILE.{crt,key}`.
    pub fn sign(&self, dir: &Path, file: &str, names: &[&str]) -> Signed {
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut params = CertificateParams::new(names.clone()).expect("certificate params");
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let signed = Signed {
            cert_file: dir.join(format!("{file}.crt")),
            key_file: dir.join(format!("{file}.key")),
        };
        std::fs::write(&signed.cert_file, cert.pem()).expect("write the certificate");
        std::fs::write(&signed.key_file, key.serialize_pem()).expect("write the key");
        signed
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    c
}

/// The folder of the machine's PostgreSQL server programs (initdb, pg_ctl).
fn pg_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server programs under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb under /usr/lib/postgresql/*/bin")
}

/// A PostgreSQL cluster that accepts TCP connections only over TLS (`hostssl`), with
/// password (SCRAM) authentication for `postgres` and certificate authentication for the user
/// `certuser`. Stopped when dropped.
pub struct TlsPostgres {
    pub port: u16,
    /// The password of the `postgres` user.
    pub password: &'static str,
    /// The CA that signed the server's certificate (for `localhost` only).
    pub ca: TestCa,
    /// A client certificate for the user `certuser`.
    pub client: Signed,
    dir: tempfile::TempDir,
    bindir: PathBuf,
}

impl TlsPostgres {
    pub fn start() -> TlsPostgres {
        let dir = tempfile::Builder::new()
            .prefix("sluice-tls-pg")
            .tempdir()
            .expect("temporary folder");
        let root = dir.path();
        let ca = TestCa::new(root, "ca");
        let server = ca.sign(root, "server", &["localhost"]);
        let client = ca.sign(root, "client", &["certuser"]);
        let bindir = pg_bindir();
        let port = free_port();
        let data = root.join("data");
        run(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(root),
            "chown",
        );
        run(
            Command::new("chmod").arg("600").arg(&server.key_file),
            "chmod",
        );
        run(
            as_postgres(&bindir.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&data),
            "initdb",
        );
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n\
             ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\nssl_ca_file = '{ca}'\n\
             fsync = off\npassword_encryption = 'scram-sha-256'\n",
            root = root.display(),
            cert = server.cert_file.display(),
            key = server.key_file.display(),
            ca = ca.cert_file.display(),
        );
        append(&data.join("postgresql.conf"), &conf);
        // No `host`/`hostnossl` line: a plain TCP connection finds no entry ("no encryption").
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        run(
            as_postgres(&bindir.join("pg_ctl"))
                .args(["-w", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(root.join("server.log"))
                .arg("start"),
            "pg_ctl start",
        );
        let pg = TlsPostgres {
            port,
            password: "tls-test-pw",
            ca,
            client,
            dir,
            bindir,
        };
        pg.psql(&format!(
            "ALTER USER postgres PASSWORD '{}'; CREATE USER certuser",
            pg.password
        ));
        pg
    }

    /// Runs SQL as `postgres` over the Unix socket.
    pub fn psql(&self, sql: &str) {
        run(
            as_postgres(&self.bindir.join("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]),
            "psql",
        );
    }

    /// The first column of a query's rows in database `db`, as text, over the Unix socket.
    pub fn column(&self, db: &str, sql: &str) -> Vec<String> {
        let output = as_postgres(&self.bindir.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A `postgres://` URI as `postgres` with its password, to `host` (`localhost` is the name
    /// the certificate holds), with `params` appended.
    pub fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://postgres:{}@{host}:{}/postgres?{params}",
            self.password, self.port
        )
    }

    pub fn folder(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bindir.join("pg_ctl"))
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop")
            .output();
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// A MariaDB server that refuses connections without TLS (`require_secure_transport`), with
/// the user `sluice` (password [`TlsMariaDb::password`]). Stopped when dropped.
pub struct TlsMariaDb {
    pub port: u16,
    pub password: &'static str,
    /// The CA that signed the server's certificate (for `localhost` only).
    pub ca: TestCa,
    dir: tempfile::TempDir,
    server: std::process::Child,
}

impl TlsMariaDb {
    pub fn start() -> TlsMariaDb {
        let dir = tempfile::Builder::new()
            .prefix("sluice-tls-mariadb")
            .tempdir()
            .expect("temporary folder");
        let root = dir.path().to_path_buf();
        let root = root.as_path();
        let ca = TestCa::new(root, "ca");
        let cert = ca.sign(root, "server", &["localhost"]);
        let data = root.join("data");
        run(
            Command::new("mariadb-install-db")
                .args(["--no-defaults", "--user=root", "--skip-test-db"])
                .arg(format!("--datadir={}", data.display())),
            "mariadb-install-db",
        );
        let port = free_port();
        let socket = root.join("mariadb.sock");
        let server = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", root.join("mariadb.pid").display()))
            .arg(format!("--log-error={}", root.join("server.log").display()))
            .arg(format!("--ssl-ca={}", ca.cert_file.display()))
            .arg(format!("--ssl-cert={}", cert.cert_file.display()))
            .arg(format!("--ssl-key={}", cert.key_file.display()))
            .arg("--require-secure-transport=ON")
            .spawn()
            .expect("start mariadbd");
        let db = TlsMariaDb {
            port,
            password: "tls-test-pw",
            ca,
            dir,
            server,
        };
        let root = db.dir.path();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "mariadbd did not start within 60 s; see {}",
                root.join("server.log").display()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        db.sql(&format!(
            "CREATE USER 'sluice'@'%' IDENTIFIED BY '{}'; GRANT ALL ON *.* TO 'sluice'@'%'; \
             CREATE DATABASE test",
            db.password
        ));
        db
    }

    /// Runs SQL as root over the Unix socket.
    pub fn sql(&self, sql: &str) {
        run(
            Command::new("mariadb")
                .arg(format!(
                    "--socket={}",
                    self.dir.path().join("mariadb.sock").display()
                ))
                .args(["-u", "root", "-e", sql]),
            "mariadb",
        );
    }

    /// A `mysql://` URI as `sluice` to `host`, database `test`, with `params` appended.
    pub fn url(&self, host: &str, params: &str) -> String {
        format!(
            "mysql://sluice:{}@{host}:{}/test?{params}",
            self.password, self.port
        )
    }
}

impl Drop for TlsMariaDb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
