//! MariaDB servers of a test's own, for what the shared server cannot show: a primary and a
//! replica in GTID replication that the test promotes, a server that requires TLS. Each is a
//! fresh datadir in a temporary folder (Debian's mariadb-install-db), listening on a free
//! loopback port, with the tests' user `m2d` created outside the binlog; it is killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

pub const USER: &str = "m2d";
pub const PASSWORD: &str = "m2d-local-pass";

pub struct PrivateServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    server_id: u32,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PrivateServer {
    /// Installs a datadir and starts mariadbd with the binlog on (ROW, FULL images, GTIDs as
    /// MariaDB always has them), `server_id`, and `extra` options.
    pub fn start(server_id: u32, extra: &[String]) -> PrivateServer {
        super::services(); // mariadb-server is installed by then
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // A temporary folder of its own: at start a server deletes every `#sql*` file in its
        // tmpdir, so servers sharing one (/tmp) break each other's temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg(format!("--user={}", whoami()))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .expect("mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let child = launch(dir.path(), port, server_id, extra);
        let mut server = PrivateServer { port, dir, child, server_id, extra: extra.to_vec() };
        server.wait_ready();
        let grant = format!(
            "SET sql_log_bin = 0; CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION; CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}'; GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'localhost' WITH GRANT OPTION"
        );
        server.root(&["-e", &grant]).unwrap();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.root(&["-e", "SELECT 1"]).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mariadbd exited ({status}): {}", self.error_log());
            }
            assert!(Instant::now() < deadline, "mariadbd did not start: {}", self.error_log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (SIGKILL, as a crash), waits `down`, and starts it again on the same
    /// port and datadir.
    pub fn crash_and_restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = launch(self.dir.path(), self.port, self.server_id, &self.extra);
        self.wait_ready();
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the server: it keeps its connections but answers nothing.
    pub fn pause(&self, paused: bool) {
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }
}

/// Starts mariadbd on `dir`'s datadir (see `PrivateServer::start`).
fn launch(dir: &Path, port: u16, server_id: u32, extra: &[String]) -> Child {
    {
        let data = dir.join("data");
        let tmp = dir.join("tmp");
        let p = |name: &str| dir.join(name).display().to_string();
        Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--user={}", whoami()))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--socket={}", p("mysqld.sock")))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--pid-file={}", p("mariadbd.pid")))
            .arg(format!("--log-error={}", p("error.log")))
            .arg(format!("--log-bin={}", p("mysql-bin")))
            .args(["--binlog-format=ROW", "--binlog-row-image=FULL", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2"])
            .args(["--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci", "--log-slave-updates=ON"])
            .arg(format!("--server-id={server_id}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd")
    }
}

impl PrivateServer {

    /// Runs the mariadb client as root over the socket.
    pub fn root(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "--protocol=socket", "-uroot", "-N"])
            .arg(format!("--socket={}", self.dir.path().join("mysqld.sock").display()))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn url(&self) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// The URL without the password (given in MYSQL_PWD instead).
    pub fn url_without_password(&self) -> String {
        format!("mysql://{USER}@127.0.0.1:{}", self.port)
    }

    pub fn conn(&self) -> mysql::Conn {
        super::connect_to(&self.url())
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes this server a GTID replica of `primary` and waits until it runs.
    pub fn replicate_from(&self, primary: &PrivateServer) {
        let sql = format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{USER}', MASTER_PASSWORD='{PASSWORD}', MASTER_USE_GTID=slave_pos; START SLAVE",
            primary.port
        );
        self.root(&["-e", &sql]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = self.conn();
        loop {
            let row: mysql::Row = conn.query_first("SHOW SLAVE STATUS").unwrap().expect("a replica");
            let running = |name: &str| row.get_opt::<String, _>(name).and_then(Result::ok).unwrap_or_default();
            let status = format!("io {}, sql {}, error {}", running("Slave_IO_Running"), running("Slave_SQL_Running"), running("Last_Error"));
            if running("Slave_IO_Running") == "Yes" && running("Slave_SQL_Running") == "Yes" {
                return;
            }
            assert!(Instant::now() < deadline, "replication did not start: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until this replica has applied everything `primary` has logged.
    pub fn catch_up_with(&self, primary: &PrivateServer) {
        let pos = primary.root(&["-e", "SELECT @@GLOBAL.gtid_binlog_pos"]).unwrap();
        let waited = self.root(&["-e", &format!("SELECT MASTER_GTID_WAIT('{}', 60)", pos.trim())]).unwrap();
        assert_eq!(waited.trim(), "0", "the replica did not reach {pos}");
    }

    /// Promotes this replica: replication stopped and forgotten, writes allowed.
    pub fn promote(&self) {
        self.root(&["-e", "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF"]).unwrap();
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A CA, a server certificate it signs for 127.0.0.1 (only), and a second CA that signs
/// nothing, made with the openssl command in `dir`: (ca.pem, server-cert.pem, server-key.pem,
/// other-ca.pem).
pub fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    for ca in ["ca", "other-ca"] {
        run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &format!("/CN=mysql2ddb test {ca}"), "-keyout", &format!("{ca}-key.pem"), "-out", &format!("{ca}.pem")]);
    }
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server-key.pem", "-out", "server.csr"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n").unwrap();
    run(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server-cert.pem"]);
    (dir.join("ca.pem"), dir.join("server-cert.pem"), dir.join("server-key.pem"), dir.join("other-ca.pem"))
}
