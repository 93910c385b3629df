//! Connection settings for the source server: parsed from a `mysql://user[:pass]@host[:port]`
//! URL, with the password taken from the URL, `MYSQL_PWD`, or a MySQL option file (`option_file`; `[client]`
//! section), in that order. The password is held only here and never formatted: `Display`
//! shows `mysql://user@host:port`. Every session is set to utf8mb4 and UTC. TLS follows the
//! MySQL client's `ssl-mode` (`required` encrypts, `verify_ca` also checks the certificate
//! against `ssl-ca`, `verify_identity` also its host name: what RDS and Aurora ask for).

use std::path::Path;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, SslOpts};

use super::SourceError;

/// Where and how to connect. Debug and Display never show the password.
#[derive(Clone)]
pub struct SourceConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: Option<String>,
    pub tls: TlsMode,
    /// PEM file of the certificate authorities the server's certificate must chain to.
    pub ssl_ca: Option<std::path::PathBuf>,
    /// How long a read or write on a session may wait for the server (None: for ever). A
    /// stopped server then shows as "did not answer for N s" instead of a silent wait.
    pub timeout: Option<Duration>,
}

/// The MySQL client's `--ssl-mode` values. `preferred` encrypts when the server offers TLS and
/// falls back to a plain connection (said once in the log) when it does not, as the client does;
/// without an ssl-mode the connection is plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceConfig({self})")
    }
}

impl std::fmt::Display for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mysql://{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Server flavour, detected from `SELECT VERSION()` (MariaDB reports 5.5.5 in the handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mysql,
    Mariadb,
}

impl SourceConfig {
    /// Parses the URL; fills a missing password from `MYSQL_PWD`, then from `option_file`
    /// (or `~/.my.cnf` when it exists).
    pub fn parse(url: &str, option_file: Option<&Path>) -> Result<SourceConfig, SourceError> {
        let parsed = url::Url::parse(url).map_err(|e| SourceError::BadUrl(format!("{e}")))?;
        if parsed.scheme() != "mysql" && parsed.scheme() != "mariadb" {
            return Err(SourceError::BadUrl(format!(
                "scheme {:?}: expected mysql://user@host:port",
                parsed.scheme()
            )));
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let mut cfg = SourceConfig {
            host: parsed.host_str().unwrap_or("127.0.0.1").to_string(),
            port: parsed.port().unwrap_or(3306),
            user: decode(parsed.username()),
            password: parsed.password().map(decode),
            tls: TlsMode::Disabled,
            ssl_ca: None,
            timeout: Some(DEFAULT_TIMEOUT),
        };
        let mut mode = None;
        for (k, v) in parsed.query_pairs() {
            match (k.as_ref(), v.to_ascii_lowercase().replace('-', "_").as_str()) {
                ("ssl-mode" | "sslmode", "disabled") => mode = Some(TlsMode::Disabled),
                ("ssl-mode" | "sslmode", "preferred") => mode = Some(TlsMode::Preferred),
                ("ssl-mode" | "sslmode", "required") => mode = Some(TlsMode::Required),
                ("ssl-mode" | "sslmode", "verify_ca") => mode = Some(TlsMode::VerifyCa),
                ("ssl-mode" | "sslmode", "verify_identity") => mode = Some(TlsMode::VerifyIdentity),
                ("ssl-mode" | "sslmode", value) => {
                    return Err(SourceError::BadUrl(format!("{k}={value}: expected one of disabled, preferred, required, verify_ca, verify_identity")))
                }
                ("ssl-ca" | "sslca", _) => cfg.ssl_ca = Some(std::path::PathBuf::from(v.as_ref())),
                (key, _) => return Err(SourceError::BadUrl(format!("unknown URL parameter {key:?} (known: ssl-mode, ssl-ca)"))),
            }
        }
        // As the MySQL client: a CA file alone means verify_ca.
        cfg.tls = mode.unwrap_or(if cfg.ssl_ca.is_some() { TlsMode::VerifyCa } else { TlsMode::Disabled });
        if let Some(ca) = &cfg.ssl_ca {
            if cfg.tls == TlsMode::Disabled {
                return Err(SourceError::BadUrl("ssl-ca is given but ssl-mode disables TLS".into()));
            }
            if !ca.is_file() {
                return Err(SourceError::BadUrl(format!("ssl-ca={}: no such file", ca.display())));
            }
        }
        if cfg.password.is_some() {
            tracing::warn!(
                "the source URL holds a password: it is hidden from `ps` and /proc once the command line is read, but your shell history and anyone who listed the processes before then saw it; give it in MYSQL_PWD or an option file ([client] password=…) instead"
            );
        }
        if cfg.password.is_none() {
            cfg.password = std::env::var("MYSQL_PWD").ok().filter(|p| !p.is_empty());
        }
        let default_file = std::env::var_os("HOME").map(|h| Path::new(&h).join(".my.cnf"));
        let file = option_file.map(Path::to_path_buf).or(default_file.filter(|p| p.exists()));
        if let Some(file) = file {
            let from_file = super::option_file::read(&file)?;
            if cfg.user.is_empty() {
                cfg.user = from_file.user.unwrap_or_default();
            }
            if cfg.password.is_none() {
                cfg.password = from_file.password;
            }
        }
        if cfg.user.is_empty() {
            cfg.user = "root".into();
        }
        Ok(cfg)
    }

    /// Opens a session: utf8mb4, UTC, REPEATABLE READ, long network timeouts for big chunks.
    pub fn connect(&self) -> Result<Conn, SourceError> {
        let mut opts = OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(self.password.clone())
            .prefer_socket(false)
            .tcp_nodelay(true)
            .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
            .read_timeout(self.timeout)
            .write_timeout(self.timeout)
            .stmt_cache_size(Some(32));
        let plain = opts.clone();
        if let Some(ssl) = self.ssl_opts() {
            opts = opts.ssl_opts(Some(ssl));
        }
        let opened = match Conn::new(opts) {
            Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported)) if self.tls == TlsMode::Preferred => {
                self.warn_unencrypted();
                Conn::new(plain)
            }
            other => other,
        };
        let mut conn = opened.map_err(|e| self.connect_error(e))?;
        SESSION_SETUP
            .iter()
            .try_for_each(|sql| conn.query_drop(sql))
            .map_err(|e| SourceError::query("setting up the session", e))?;
        Ok(conn)
    }

    /// `ssl-mode=preferred` met a server without TLS: said once per process, whichever reader
    /// connected.
    pub fn warn_unencrypted(&self) {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| tracing::warn!("{self}: the server offers no TLS; ssl-mode=preferred goes on unencrypted (ssl-mode=required refuses that)"));
    }
}

/// What every source session runs first, whichever reader opened it (the two readers must read
/// rows in the same character set and time zone to write the same files).
pub const SESSION_SETUP: [&str; 2] = [
    "SET NAMES utf8mb4, time_zone = '+00:00', net_read_timeout = 3600, net_write_timeout = 3600",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
];

/// Default bound of one wait for the source (`--source-timeout`; the export's lock wait adds to
/// it on the session that waits for the lock).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// I/O failures of the transport itself (a TLS or certificate failure is an I/O error too, but
/// one that repeats: not among them).
const TRANSPORT: [std::io::ErrorKind; 8] = [
    std::io::ErrorKind::ConnectionRefused,
    std::io::ErrorKind::ConnectionReset,
    std::io::ErrorKind::ConnectionAborted,
    std::io::ErrorKind::NotConnected,
    std::io::ErrorKind::BrokenPipe,
    std::io::ErrorKind::UnexpectedEof,
    std::io::ErrorKind::TimedOut,
    std::io::ErrorKind::WouldBlock,
];

/// Why a failure is the connection's, not the statement's (closed, reset, timed out, the server
/// shutting down or killing the session), in words; None for any other failure. After such a
/// failure the work can go on over a new connection.
pub fn lost_connection(e: &mysql::Error, timeout: Option<Duration>) -> Option<String> {
    use std::io::ErrorKind;
    match e {
        mysql::Error::IoError(io) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Some(format!("the source did not answer for {} s", timeout.map(|t| t.as_secs()).unwrap_or(0)))
        }
        mysql::Error::IoError(io) if TRANSPORT.contains(&io.kind()) => Some(format!("the source closed the connection ({io})")),
        mysql::Error::DriverError(mysql::DriverError::ConnectTimeout | mysql::DriverError::Timeout) => {
            Some(format!("the source did not answer for {} s", timeout.map(|t| t.as_secs()).unwrap_or(0)))
        }
        mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(Some((_, _, kind)))) if TRANSPORT.contains(kind) => {
            Some(format!("the connection to the source failed ({e})"))
        }
        mysql::Error::CodecError(mysql_common::proto::codec::error::PacketCodecError::Io(io)) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Some(format!("the source did not answer for {} s", timeout.map(|t| t.as_secs()).unwrap_or(0)))
        }
        mysql::Error::CodecError(mysql_common::proto::codec::error::PacketCodecError::Io(io)) if TRANSPORT.contains(&io.kind()) => {
            Some(format!("the connection to the source broke ({io})"))
        }
        // Server shutdown, gone away, lost during query, connection killed (MariaDB).
        mysql::Error::MySqlError(m) if [1053, 2006, 2013, 1927].contains(&m.code) => Some(format!("the source ended the session ({})", m.message)),
        _ => None,
    }
}

impl SourceConfig {
    /// The same source with another bound on one wait.
    /// A failure to connect in words: unreachable (it may come back) or refused.
    pub fn connect_error(&self, e: mysql::Error) -> SourceError {
        let reason = connect_reason(&e, self);
        match lost_connection(&e, self.timeout) {
            Some(lost) if lost.contains("did not answer") => SourceError::Unreachable { target: self.to_string(), reason: lost },
            Some(_) => SourceError::Unreachable { target: self.to_string(), reason },
            None => SourceError::Connect { target: self.to_string(), reason },
        }
    }

    /// The password, for the row reader's handshake (never formatted).
    pub(in crate::source) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub fn with_timeout(mut self, timeout: Option<Duration>) -> SourceConfig {
        self.timeout = timeout;
        self
    }

    /// The driver's TLS options for `tls` and `ssl_ca`; None for a plain connection.
    fn ssl_opts(&self) -> Option<SslOpts> {
        let base = match &self.ssl_ca {
            Some(ca) => SslOpts::default().with_root_cert_path(Some(ca.clone())),
            None => SslOpts::default(),
        };
        match self.tls {
            TlsMode::Disabled => None,
            TlsMode::Required | TlsMode::Preferred => Some(base.with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true)),
            TlsMode::VerifyCa => Some(base.with_danger_skip_domain_validation(true)),
            TlsMode::VerifyIdentity => Some(base),
        }
    }
}

/// Server version string and flavour of an open session.
pub fn server_version(conn: &mut Conn) -> Result<(String, Flavor), SourceError> {
    let version: Option<String> =
        conn.query_first("SELECT VERSION()").map_err(|e| SourceError::query("SELECT VERSION()", e))?;
    let version = version.unwrap_or_default();
    let flavor = if version.to_ascii_lowercase().contains("mariadb") { Flavor::Mariadb } else { Flavor::Mysql };
    Ok((version, flavor))
}

/// A connection failure in words: refused, access denied, unknown host; never the password.
fn connect_reason(e: &mysql::Error, cfg: &SourceConfig) -> String {
    let text = e.to_string();
    let ca = cfg.ssl_ca.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the system roots (give ssl-ca=FILE)".into());
    if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        return format!("TLS: the server's certificate is not signed by a certificate authority in {ca} ({text})");
    }
    if text.contains("NotValidForName") || text.contains("not valid for name") {
        return format!("TLS: the server's certificate does not name host {} (ssl-mode=verify_identity; connect by the name in the certificate, or use verify_ca) ({text})", cfg.host);
    }
    if text.contains("Expired") || text.contains("NotValidYet") {
        return format!("TLS: the server's certificate is outside its validity period ({text})");
    }
    if cfg.tls != TlsMode::Disabled && (text.contains("SSL") || text.contains("TLS") || text.contains("tls")) {
        return format!("TLS ({:?}, CA {ca}): {text}", cfg.tls);
    }
    match e {
        mysql::Error::MySqlError(me) if me.code == 1045 && cfg.tls == TlsMode::Disabled => {
            "access denied (check the user and the password from the URL, MYSQL_PWD or the option file; a server that requires TLS, as RDS can, also answers so: add ?ssl-mode=verify_identity&ssl-ca=FILE)".into()
        }
        mysql::Error::MySqlError(me) if me.code == 1045 => {
            "access denied (check the user and the password from the URL, MYSQL_PWD or the option file)".into()
        }
        mysql::Error::MySqlError(me) => format!("server error {}: {}", me.code, me.message),
        mysql::Error::IoError(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is the server running and listening on this port?)".into()
        }
        // The driver wraps a refused TCP connect in DriverError::CouldNotConnect.
        other if other.to_string().contains("Connection refused") => {
            "connection refused (is the server running and listening on this port?)".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ssl_mode_value_is_named_with_the_values_allowed() {
        let e = SourceConfig::parse("mysql://u@h/?ssl-mode=bogus", None).unwrap_err().to_string();
        assert!(e.contains("ssl-mode=bogus") && e.contains("verify_identity") && !e.contains("unknown"), "{e}");
        let e = SourceConfig::parse("mysql://u@h/?colour=red", None).unwrap_err().to_string();
        assert!(e.contains("unknown URL parameter \"colour\""), "{e}");
    }

    #[test]
    fn ssl_modes_follow_the_mysql_client() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let url = |q: &str| SourceConfig::parse(&format!("mysql://u@h/?{q}"), None);
        assert_eq!(url("ssl-mode=REQUIRED").unwrap().tls, TlsMode::Required);
        assert_eq!(url("ssl-mode=preferred").unwrap().tls, TlsMode::Preferred);
        let c = url(&format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca.display())).unwrap();
        assert_eq!((c.tls, c.ssl_ca.as_deref()), (TlsMode::VerifyIdentity, Some(ca.as_path())));
        assert_eq!(url(&format!("ssl-ca={}", ca.display())).unwrap().tls, TlsMode::VerifyCa, "a CA alone verifies it");
        assert!(url("ssl-ca=/nonexistent/ca.pem&ssl-mode=verify_ca").unwrap_err().to_string().contains("no such file"));
        assert!(url(&format!("ssl-ca={}&ssl-mode=disabled", ca.display())).is_err());
        assert!(c.ssl_opts().is_some_and(|o| !o.skip_domain_validation() && !o.accept_invalid_certs()));
        assert!(url("ssl-mode=required").unwrap().ssl_opts().is_some_and(|o| o.accept_invalid_certs()));
    }

    #[test]
    fn display_and_debug_never_show_the_password() {
        let cfg = SourceConfig::parse("mysql://bob:s%40cret@db.example:3307", None).unwrap();
        assert_eq!(cfg.to_string(), "mysql://bob@db.example:3307");
        assert!(!format!("{cfg:?}").contains("cret"));
        assert_eq!(cfg.password.as_deref(), Some("s@cret"));
    }

    #[test]
    fn option_file_supplies_a_missing_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my.cnf");
        std::fs::write(&file, "[mysqld]\npassword=wrong\n[client]\nuser = alice\npassword = \"pw\"\n").unwrap();
        let cfg = SourceConfig::parse("mysql://127.0.0.1:3307", Some(&file)).unwrap();
        assert_eq!(cfg.user, "alice");
        assert_eq!(cfg.password.as_deref(), Some("pw"));
    }

    #[test]
    fn only_transport_failures_count_as_a_lost_source() {
        use std::io::{Error, ErrorKind};
        let io = |k: ErrorKind, m: &str| mysql::Error::IoError(Error::new(k, m));
        let t = Some(Duration::from_secs(7));
        assert_eq!(lost_connection(&io(ErrorKind::WouldBlock, "x"), t).as_deref(), Some("the source did not answer for 7 s"));
        assert!(lost_connection(&io(ErrorKind::BrokenPipe, "server disconnected"), t).is_some());
        assert!(lost_connection(&io(ErrorKind::ConnectionRefused, "refused"), t).is_some());
        // A certificate the CA did not sign fails the same way every time: no reconnect loop.
        assert!(lost_connection(&io(ErrorKind::InvalidData, "invalid peer certificate: UnknownIssuer"), t).is_none());
        assert!(lost_connection(&mysql::Error::DriverError(mysql::DriverError::PacketTooLarge), t).is_none());
    }

    #[test]
    fn unknown_url_parameters_are_refused() {
        let err = SourceConfig::parse("mysql://u@h/?colour=blue", None).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
