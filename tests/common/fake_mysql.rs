//! A MySQL 8 server's side of the handshake for `caching_sha2_password`, for the paths no local
//! server offers (MariaDB has no such plugin): the fast path from the server's cache, full
//! authentication with the password sent over TLS, and full authentication with the password
//! encrypted by the server's RSA key on a plain connection. The scramble is checked by the
//! formula MySQL documents (computed here with `sha2`), and the RSA ciphertext is opened by
//! the `openssl` command, not by the client's own code. After authentication every command is
//! answered with OK.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sha2Path {
    /// The server has the password's hash cached: `0x01 0x03`, then OK.
    Fast,
    /// `0x01 0x04`: the password in clear (over TLS) or RSA-encrypted (plain).
    Full,
}

pub struct FakeServer {
    pub port: u16,
    thread: Option<std::thread::JoinHandle<Result<String, String>>>,
}

impl FakeServer {
    /// Serves one connection. `tls`: offer TLS with `cert`/`key` (PEM files); `rsa_key`: the
    /// private key whose public half is sent on request.
    pub fn start(password: &'static str, path: Sha2Path, tls: Option<(PathBuf, PathBuf)>, rsa_key: Option<PathBuf>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
            serve(sock, password, path, tls, rsa_key)
        });
        FakeServer { port, thread: Some(thread) }
    }

    /// What the server saw: "fast", "full over TLS" or "full by RSA", or why it refused.
    pub fn outcome(mut self) -> Result<String, String> {
        self.thread.take().unwrap().join().unwrap()
    }
}

trait Io: Read + Write {}
impl<T: Read + Write> Io for T {}

struct Conn {
    io: Box<dyn Io>,
    seq: u8,
}

impl Conn {
    fn read(&mut self) -> Result<Vec<u8>, String> {
        let mut h = [0u8; 4];
        self.io.read_exact(&mut h).map_err(|e| format!("read header: {e}"))?;
        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
        self.seq = h[3].wrapping_add(1);
        let mut p = vec![0; len];
        self.io.read_exact(&mut p).map_err(|e| format!("read payload: {e}"))?;
        Ok(p)
    }

    fn write(&mut self, p: &[u8]) -> Result<(), String> {
        let mut out = (p.len() as u32).to_le_bytes()[..3].to_vec();
        out.push(self.seq);
        self.seq = self.seq.wrapping_add(1);
        out.extend_from_slice(p);
        self.io.write_all(&out).and_then(|_| self.io.flush()).map_err(|e| format!("write: {e}"))
    }

    fn ok(&mut self) -> Result<(), String> {
        self.write(&[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00])
    }

    fn err(&mut self, why: &str) -> Result<String, String> {
        let mut p = vec![0xff, 0x15, 0x04, b'#'];
        p.extend_from_slice(b"28000");
        p.extend_from_slice(why.as_bytes());
        self.write(&p)?;
        Err(why.to_string())
    }
}

const PROTOCOL_41: u32 = 0x200;
const SSL: u32 = 0x800;
const SECURE_CONNECTION: u32 = 0x8000;
const PLUGIN_AUTH: u32 = 0x8_0000;

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

fn serve(sock: TcpStream, password: &str, path: Sha2Path, tls: Option<(PathBuf, PathBuf)>, rsa_key: Option<PathBuf>) -> Result<String, String> {
    let nonce: Vec<u8> = (0..20u8).map(|i| b'A' + (i * 7) % 26).collect();
    let caps: u32 = PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | 0x1 | 0x4 | 0x2000 | if tls.is_some() { SSL } else { 0 };
    let mut hello = vec![10u8];
    hello.extend_from_slice(b"8.0.36-fake\0");
    hello.extend_from_slice(&7u32.to_le_bytes());
    hello.extend_from_slice(&nonce[..8]);
    hello.push(0);
    hello.extend_from_slice(&(caps as u16).to_le_bytes());
    hello.push(255);
    hello.extend_from_slice(&2u16.to_le_bytes());
    hello.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    hello.push(21);
    hello.extend_from_slice(&[0; 10]);
    hello.extend_from_slice(&nonce[8..]);
    hello.push(0);
    hello.extend_from_slice(b"caching_sha2_password\0");
    let plain = sock.try_clone().unwrap();
    let mut conn = Conn { io: Box::new(sock), seq: 0 };
    conn.write(&hello)?;
    let mut response = conn.read()?;
    let client_caps = u32::from_le_bytes(response[..4].try_into().unwrap());
    let mut over_tls = false;
    if client_caps & SSL != 0 {
        let (cert, key) = tls.clone().ok_or("the client asked for TLS, which was not offered")?;
        let seq = conn.seq;
        let certs: Vec<_> = rustls_pemfile::certs(&mut &std::fs::read(cert).unwrap()[..]).map(|c| c.unwrap()).collect();
        let key = rustls_pemfile::private_key(&mut &std::fs::read(key).unwrap()[..]).unwrap().unwrap();
        let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
        let server = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        conn = Conn { io: Box::new(rustls::StreamOwned::new(server, plain)), seq };
        response = conn.read()?;
        over_tls = true;
    }
    // caps(4) max packet(4) charset(1) reserved(23) user\0 len(1) scramble plugin\0
    let rest = &response[32..];
    let user_end = rest.iter().position(|&b| b == 0).unwrap();
    let rest = &rest[user_end + 1..];
    let scramble = &rest[1..1 + rest[0] as usize];
    let plugin = &rest[1 + rest[0] as usize..];
    if !plugin.starts_with(b"caching_sha2_password") {
        return conn.err("expected caching_sha2_password");
    }
    // MySQL: XOR(SHA256(password), SHA256(SHA256(SHA256(password)), nonce)).
    let stage1 = sha256(&[password.as_bytes()]);
    let stage2 = sha256(&[&stage1]);
    let mask = sha256(&[&stage2, &nonce]);
    let expected: Vec<u8> = stage1.iter().zip(&mask).map(|(a, b)| a ^ b).collect();
    if scramble != expected.as_slice() {
        return conn.err("scramble does not match the password");
    }
    let outcome = match path {
        Sha2Path::Fast => {
            conn.write(&[0x01, 0x03])?;
            "fast".to_string()
        }
        Sha2Path::Full if over_tls => {
            conn.write(&[0x01, 0x04])?;
            let sent = conn.read()?;
            if sent != [password.as_bytes(), &[0]].concat() {
                return conn.err("the password sent over TLS is wrong");
            }
            "full over TLS".to_string()
        }
        Sha2Path::Full => {
            conn.write(&[0x01, 0x04])?;
            if conn.read()? != [0x02] {
                return conn.err("expected a request for the public key");
            }
            let key = rsa_key.clone().ok_or("no RSA key to send")?;
            let public = openssl(&["rsa", "-in", key.to_str().unwrap(), "-pubout"], None)?;
            conn.write(&[&[0x01u8][..], &public].concat())?;
            let sealed = conn.read()?;
            let opened = openssl(&["pkeyutl", "-decrypt", "-inkey", key.to_str().unwrap(), "-pkeyopt", "rsa_padding_mode:oaep"], Some(&sealed))?;
            let clear: Vec<u8> = opened.iter().enumerate().map(|(i, b)| b ^ nonce[i % nonce.len()]).collect();
            if clear != [password.as_bytes(), &[0]].concat() {
                return conn.err("the RSA-encrypted password is wrong");
            }
            "full by RSA".to_string()
        }
    };
    conn.ok()?;
    // Session setup and whatever follows: OK to each command until the client goes.
    while let Ok(cmd) = conn.read() {
        if cmd.first() == Some(&0x01) {
            break;
        }
        conn.ok()?;
    }
    Ok(outcome)
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let mut cmd = Command::new("openssl");
    cmd.args(args).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("openssl: {e}"))?;
    child.stdin.take().unwrap().write_all(input.unwrap_or_default()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

/// A 2048-bit RSA private key in `dir`, made by openssl.
pub fn rsa_key(dir: &Path) -> PathBuf {
    let path = dir.join("rsa-key.pem");
    openssl(&["genrsa", "-out", path.to_str().unwrap(), "2048"], None).unwrap();
    path
}
