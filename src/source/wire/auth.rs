//! The handshake of a row-reader connection: the server's greeting, TLS when the `ssl-mode`
//! asks for it, and authentication by `mysql_native_password`, `caching_sha2_password` (the
//! fast path from the server's cache, full authentication with the password over TLS, or
//! encrypted with the server's RSA key on a plain connection) or MariaDB's `client_ed25519`,
//! including a switch from one to another at the server's request. Any other plugin is
//! `Unsupported`, and the export goes on through the `mysql` crate.

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse, SslRequest};
use mysql_common::proto::MySerialize;

use super::packet::{Packets, MAX_PAYLOAD};
use super::{server_error, WireError};
use crate::source::connect::{SourceConfig, TlsMode};

/// utf8mb4_general_ci, as the handshake names it.
const UTF8MB4: u8 = 45;

/// What the handshake settled.
pub struct Greeting {
    pub plugin: String,
    pub tls: bool,
}

fn client_flags() -> CapabilityFlags {
    CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_MULTI_RESULTS
}

fn serialize(s: &impl MySerialize) -> Vec<u8> {
    let mut buf = Vec::new();
    s.serialize(&mut buf);
    buf
}

/// Greets the server on `plain` and authenticates; returns the packets, over TLS when used.
pub fn handshake(plain: std::net::TcpStream, cfg: &SourceConfig, password: Option<&str>) -> Result<(Packets, Greeting), WireError> {
    let mut packets = Packets::new(Box::new(plain.try_clone().map_err(WireError::Io)?));
    let mut payload = Vec::new();
    packets.read_into(&mut payload).map_err(WireError::Io)?;
    if payload.first() == Some(&0xff) {
        return Err(server_error(&payload));
    }
    let hello: HandshakePacket = ParseBuf(&payload).parse(()).map_err(|e| WireError::Protocol(format!("the server's greeting: {e}")))?;
    if !hello.capabilities().contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        return Err(WireError::Unsupported("the server does not speak protocol 4.1".into()));
    }
    let mut caps = client_flags() & hello.capabilities();
    let offers_tls = hello.capabilities().contains(CapabilityFlags::CLIENT_SSL);
    let use_tls = match cfg.tls {
        TlsMode::Disabled => false,
        TlsMode::Preferred => {
            if !offers_tls {
                cfg.warn_unencrypted();
            }
            offers_tls
        }
        _ if !offers_tls => return Err(WireError::Tls(format!("ssl-mode={:?} but the server offers no TLS", cfg.tls).to_lowercase())),
        _ => true,
    };
    let mut nonce = hello.scramble_1_ref().to_vec();
    nonce.extend_from_slice(hello.scramble_2_ref().unwrap_or(&[]));
    nonce.resize(20, 0);
    let server_version = hello.server_version_parsed().unwrap_or((0, 0, 0));
    let first_plugin = match hello.auth_plugin() {
        Some(AuthPlugin::CachingSha2Password) => AuthPlugin::CachingSha2Password,
        _ => AuthPlugin::MysqlNativePassword,
    };
    drop(hello);
    let seq = packets.seq();
    if use_tls {
        caps |= CapabilityFlags::CLIENT_SSL;
        packets.write(&serialize(&SslRequest::new(caps, MAX_PAYLOAD as u32, UTF8MB4))).map_err(WireError::Io)?;
        let seq = packets.seq();
        drop(packets.into_stream());
        let secure = super::tls::secure(plain, &cfg.host, cfg.tls, cfg.ssl_ca.as_deref())?;
        packets = Packets::new(secure);
        packets.set_seq(seq);
    } else {
        packets.set_seq(seq);
    }
    let data = first_plugin.gen_data(password, &nonce).map(|d| d.into_owned());
    let response = HandshakeResponse::new(
        data.as_deref(),
        server_version,
        Some(cfg.user.as_bytes()),
        None::<&[u8]>,
        Some(first_plugin.clone()),
        caps,
        None,
        MAX_PAYLOAD as u32,
    );
    packets.write(&serialize(&response)).map_err(WireError::Io)?;
    let mut auth = Auth { packets: &mut packets, password, nonce, plugin: first_plugin.into_owned(), tls: use_tls, switched: false };
    auth.finish()?;
    let plugin = String::from_utf8_lossy(auth.plugin.as_bytes()).into_owned();
    Ok((packets, Greeting { plugin, tls: use_tls }))
}

struct Auth<'a> {
    packets: &'a mut Packets,
    password: Option<&'a str>,
    nonce: Vec<u8>,
    plugin: AuthPlugin<'static>,
    tls: bool,
    switched: bool,
}

impl Auth<'_> {
    fn read(&mut self) -> Result<Vec<u8>, WireError> {
        let mut p = Vec::new();
        self.packets.read_into(&mut p).map_err(WireError::Io)?;
        match p.first() {
            Some(0xff) => Err(server_error(&p)),
            None => Err(WireError::Protocol("an empty packet during authentication".into())),
            _ => Ok(p),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), WireError> {
        self.packets.write(data).map_err(WireError::Io)
    }

    /// Reads the server's answers until it accepts or refuses.
    fn finish(&mut self) -> Result<(), WireError> {
        loop {
            let p = self.read()?;
            match (p[0], &self.plugin) {
                (0x00, _) => return Ok(()),
                (0xfe, _) if !self.switched => self.switch(&p)?,
                (0x01, AuthPlugin::CachingSha2Password) => match p.get(1) {
                    // Fast path: the server had the password's hash cached; an OK follows.
                    Some(0x03) => continue,
                    Some(0x04) => self.full_sha2()?,
                    _ => return Err(WireError::Protocol(format!("caching_sha2_password: unexpected {:?}", &p[..p.len().min(8)]))),
                },
                (byte, plugin) => {
                    return Err(WireError::Protocol(format!("unexpected packet 0x{byte:02x} while authenticating with {}", String::from_utf8_lossy(plugin.as_bytes()))))
                }
            }
        }
    }

    fn switch(&mut self, p: &[u8]) -> Result<(), WireError> {
        self.switched = true;
        if p.len() == 1 {
            return Err(WireError::Unsupported("the server asks for the pre-4.1 password hash (mysql_old_password)".into()));
        }
        let request: AuthSwitchRequest = ParseBuf(p).parse(()).map_err(|e| WireError::Protocol(format!("auth switch: {e}")))?;
        let plugin = request.auth_plugin().into_owned();
        match plugin {
            AuthPlugin::MysqlNativePassword | AuthPlugin::CachingSha2Password | AuthPlugin::Ed25519 => {}
            other => {
                return Err(WireError::Unsupported(format!("authentication plugin {} is not served by the row reader", String::from_utf8_lossy(other.as_bytes()))))
            }
        }
        self.nonce = switch_nonce(p, &plugin);
        self.plugin = plugin;
        let reply = self.plugin.gen_data(self.password, &self.nonce).map(|d| serialize(&d.into_owned())).unwrap_or_default();
        self.write(&reply)
    }

    /// caching_sha2_password's full authentication: the password in clear over TLS, or XORed
    /// with the nonce and encrypted with the server's RSA public key (OAEP) without it.
    fn full_sha2(&mut self) -> Result<(), WireError> {
        let mut pass: Vec<u8> = self.password.unwrap_or_default().as_bytes().to_vec();
        pass.push(0);
        if self.tls {
            return self.write(&pass);
        }
        self.write(&[0x02])?;
        let key = self.read()?;
        let pem = key.get(1..).filter(|k| k.starts_with(b"-----BEGIN")).ok_or_else(|| {
            WireError::Protocol("caching_sha2_password: the server sent no RSA public key".into())
        })?;
        // RSA-OAEP (SHA-1) seals at most the key's size less 42 bytes; a longer password would
        // make the encryption panic. 2048-bit keys (MySQL's default) allow 213 bytes.
        let key_bytes = std::panic::catch_unwind(|| mysql_common::crypto::rsa::PublicKey::from_pem(pem).num_octets())
            .map_err(|_| WireError::Protocol("caching_sha2_password: the server's RSA key could not be read".into()))?;
        if pass.len() + 42 > key_bytes {
            return Err(WireError::Unsupported(format!(
                "caching_sha2_password: a password of {} bytes is too long to send encrypted with the server's {}-bit RSA key; connect with ssl-mode=required or stronger",
                pass.len() - 1,
                key_bytes * 8
            )));
        }
        for (i, c) in pass.iter_mut().enumerate() {
            *c ^= self.nonce[i % self.nonce.len()];
        }
        let sealed = std::panic::catch_unwind(|| mysql_common::crypto::encrypt(&pass, pem))
            .map_err(|_| WireError::Protocol("caching_sha2_password: the server's RSA key could not be read".into()))?;
        self.write(&sealed)
    }
}

/// The nonce of an auth switch request (0xfe, the plugin's name, NUL, its data). Taken from the
/// packet whole: `AuthSwitchRequest::plugin_data()` drops a trailing 0x00, which ends the
/// scramble of native and caching_sha2 but can be the last random byte of ed25519's 32-byte
/// nonce (then 1 connection in 256 failed).
fn switch_nonce(p: &[u8], plugin: &AuthPlugin) -> Vec<u8> {
    let name_end = p[1..].iter().position(|&b| b == 0).map_or(p.len(), |i| i + 2);
    let data = p.get(name_end..).unwrap_or_default();
    match plugin {
        AuthPlugin::Ed25519 => data.to_vec(),
        _ => data[..data.len().min(20)].to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_nonce_keeps_a_last_zero_byte_and_a_scramble_loses_its_terminator() {
        let mut ed = vec![0xfe];
        ed.extend_from_slice(b"client_ed25519\0");
        let nonce: Vec<u8> = (1..=31).chain([0]).collect();
        ed.extend_from_slice(&nonce);
        assert_eq!(switch_nonce(&ed, &AuthPlugin::Ed25519), nonce);
        let mut native = vec![0xfe];
        native.extend_from_slice(b"mysql_native_password\0");
        native.extend_from_slice(&[7u8; 20]);
        native.push(0);
        assert_eq!(switch_nonce(&native, &AuthPlugin::MysqlNativePassword), vec![7u8; 20]);
    }
}
