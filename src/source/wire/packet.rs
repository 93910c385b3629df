//! MySQL packet framing over one stream: a 4-byte header (3-byte length, sequence id), payloads
//! of 16 MB − 1 or more continued in the next packet. Reads go through one large buffer, and a
//! packet that lies whole in it is handed out in place, so a result row is parsed where it
//! arrived; only a packet split across refills (or over 16 MB) is copied, into one buffer kept
//! for the connection's life. A payload can also be read as a stream (`Payload`), across its
//! continuation packets, so a binlog event of any size goes from the socket into its one
//! destination without being reassembled first.

use std::io::{self, BufRead, BufReader, Read, Write};

/// The largest payload of one packet; a payload this long continues in the next.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;
/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 256 * 1024;

/// A socket, plain or TLS.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct Packets {
    reader: BufReader<Box<dyn Stream>>,
    seq: u8,
    /// A packet that did not lie whole in the read buffer, reassembled.
    spill: Vec<u8>,
}

impl Packets {
    pub fn new(stream: Box<dyn Stream>) -> Packets {
        Packets { reader: BufReader::with_capacity(READ_BUFFER, stream), seq: 0, spill: Vec::new() }
    }

    /// The stream, for a switch to TLS. Only between packets: nothing may be buffered.
    pub fn into_stream(self) -> Box<dyn Stream> {
        debug_assert!(self.reader.buffer().is_empty(), "bytes buffered before the TLS switch");
        self.reader.into_inner()
    }

    pub fn seq(&self) -> u8 {
        self.seq
    }

    pub fn set_seq(&mut self, seq: u8) {
        self.seq = seq;
    }

    /// Reads the next packet and passes its payload to `f`, in place when it lies whole in the
    /// read buffer. The returned payload slice lives only for the call.
    pub fn with_next<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
        let avail = self.reader.fill_buf()?;
        if avail.len() >= 4 {
            let len = u32::from_le_bytes([avail[0], avail[1], avail[2], 0]) as usize;
            if len < MAX_PAYLOAD && avail.len() >= 4 + len {
                self.seq = avail[3].wrapping_add(1);
                let out = f(&avail[4..4 + len]);
                self.reader.consume(4 + len);
                return Ok(out);
            }
        }
        let mut spill = std::mem::take(&mut self.spill);
        let read = self.read_into(&mut spill);
        let out = read.map(|_| f(&spill));
        // Keep the buffer for the next split packet, unless one huge row made it huge.
        if spill.capacity() <= 4 * READ_BUFFER {
            self.spill = spill;
        }
        out
    }

    /// Reads the next packet (all its continuations) into `buf`, replacing its content.
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        loop {
            let mut header = [0u8; 4];
            self.reader.read_exact(&mut header)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            self.seq = header[3].wrapping_add(1);
            let start = buf.len();
            buf.resize(start + len, 0);
            self.reader.read_exact(&mut buf[start..])?;
            if len < MAX_PAYLOAD {
                return Ok(());
            }
        }
    }

    /// The next payload as a stream, read as it arrives, continuation packets included.
    pub fn payload(&mut self) -> Payload<'_> {
        Payload { packets: self, left: 0, more: true, first: None }
    }

    /// Writes one payload as one or more packets, continuing the sequence.
    pub fn write(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 8);
        let mut rest = payload;
        loop {
            let n = rest.len().min(MAX_PAYLOAD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if n < MAX_PAYLOAD {
                break;
            }
        }
        let stream = self.reader.get_mut();
        stream.write_all(&out)?;
        stream.flush()
    }

    /// Writes a command: a new sequence starts at 0.
    pub fn command(&mut self, payload: &[u8]) -> io::Result<()> {
        self.seq = 0;
        self.write(payload)
    }
}

/// One payload read as a stream (`Packets::payload`): packet headers are read as the bytes
/// run out, and the stream ends where the payload does. Drop it only at the payload's end
/// (`finish`), or the next read starts inside this payload.
pub struct Payload<'a> {
    packets: &'a mut Packets,
    /// Bytes of the current packet not yet handed out.
    left: usize,
    /// Another packet follows the current one (or none was read yet).
    more: bool,
    /// The first packet's length.
    first: Option<usize>,
}

impl Payload<'_> {
    /// Reads packet headers until bytes are at hand or the payload ends.
    fn next_packet(&mut self) -> io::Result<()> {
        while self.left == 0 && self.more {
            let mut header = [0u8; 4];
            self.packets.reader.read_exact(&mut header)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            if header[3] != self.packets.seq {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("packet {} arrived where packet {} was due: the stream is out of sequence", header[3], self.packets.seq)));
            }
            self.packets.seq = header[3].wrapping_add(1);
            self.first.get_or_insert(len);
            self.left = len;
            self.more = len == MAX_PAYLOAD;
        }
        Ok(())
    }

    /// The first packet's length (reads its header if need be).
    pub fn first_len(&mut self) -> io::Result<usize> {
        self.next_packet()?;
        Ok(self.first.unwrap_or(0))
    }

    /// Reads what is left of the payload, and returns how many bytes that was.
    pub fn finish(mut self) -> io::Result<u64> {
        let mut n = 0;
        loop {
            let got = self.fill_buf()?.len();
            if got == 0 {
                return Ok(n);
            }
            self.consume(got);
            n += got as u64;
        }
    }
}

/// `Read` for a reader whose `BufRead` side is the one that knows its bounds.
pub fn read_buffered(r: &mut impl BufRead, out: &mut [u8]) -> io::Result<usize> {
    let avail = r.fill_buf()?;
    let n = avail.len().min(out.len());
    out[..n].copy_from_slice(&avail[..n]);
    r.consume(n);
    Ok(n)
}

impl Read for Payload<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

impl BufRead for Payload<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.next_packet()?;
        if self.left == 0 {
            return Ok(&[]);
        }
        let left = self.left;
        // A signal's interruption is not an error of the stream (read_exact retries it too).
        while let Err(e) = self.packets.reader.fill_buf() {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let buf = self.packets.reader.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection ended inside a packet"));
        }
        Ok(&buf[..buf.len().min(left)])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.left);
        self.left -= n;
        self.packets.reader.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::sync::{Arc, Mutex};

    /// Reads from a fixed input; what is written lands in a shared vector.
    struct Pipe(Cursor<Vec<u8>>, Arc<Mutex<Vec<u8>>>);
    impl Read for Pipe {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.0.read(b)
        }
    }
    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.1.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_payload_of_16_mb_or_more_continues_in_the_next_packet() {
        let big: Vec<u8> = (0..MAX_PAYLOAD + 10).map(|i| (i % 251) as u8).collect();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut w = Packets::new(Box::new(Pipe(Cursor::new(Vec::new()), sent.clone())));
        w.command(&big).unwrap();
        w.write(&[7u8; MAX_PAYLOAD][..]).unwrap();
        let written = sent.lock().unwrap().clone();
        assert_eq!(written.len(), big.len() + MAX_PAYLOAD + 4 * 4);
        let mut r = Packets::new(Box::new(Pipe(Cursor::new(written), Arc::default())));
        let mut buf = Vec::new();
        r.read_into(&mut buf).unwrap();
        assert_eq!(buf, big);
        assert_eq!(r.seq(), 2, "two packets carried it");
        let n = r.with_next(|p| p.len()).unwrap();
        assert_eq!(n, MAX_PAYLOAD);
        assert_eq!(r.seq(), 4, "a full packet is followed by an empty one");
    }

    #[test]
    fn a_payload_streams_across_its_continuation_packets() {
        // MAX_PAYLOAD + 10 bytes (two packets), then exactly MAX_PAYLOAD (a full packet and an
        // empty one), then a small one: each read as a stream, in odd-sized pieces.
        let big: Vec<u8> = (0..MAX_PAYLOAD + 10).map(|i| (i % 251) as u8).collect();
        let full = vec![3u8; MAX_PAYLOAD];
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut w = Packets::new(Box::new(Pipe(Cursor::new(Vec::new()), sent.clone())));
        w.command(&big).unwrap();
        w.write(&full).unwrap();
        w.write(b"tail").unwrap();
        let written = sent.lock().unwrap().clone();
        let mut r = Packets::new(Box::new(Pipe(Cursor::new(written), Arc::default())));
        for want in [&big[..], &full[..]] {
            let mut p = r.payload();
            assert_eq!(p.first_len().unwrap(), MAX_PAYLOAD);
            let mut got = vec![0u8; 12_345];
            p.read_exact(&mut got).unwrap();
            let mut rest = Vec::new();
            p.read_to_end(&mut rest).unwrap();
            got.extend(rest);
            assert!(got == want, "the payload read back is the one written");
        }
        let mut p = r.payload();
        assert_eq!(p.first_len().unwrap(), 4);
        p.consume(1);
        assert_eq!(p.finish().unwrap(), 3, "finish reads what is left of the payload");
        let mut end = r.payload();
        assert!(end.fill_buf().is_err(), "no payload past the last one");
    }

    #[test]
    fn a_packet_split_across_reads_is_reassembled() {
        let mut input = Vec::new();
        for (seq, body) in [(1u8, &b"first"[..]), (2, &vec![9u8; 300_000][..])] {
            input.extend_from_slice(&(body.len() as u32).to_le_bytes()[..3]);
            input.push(seq);
            input.extend_from_slice(body);
        }
        let mut r = Packets::new(Box::new(Pipe(Cursor::new(input), Arc::default())));
        assert_eq!(r.with_next(|p| p.to_vec()).unwrap(), b"first");
        assert_eq!(r.with_next(|p| p.len()).unwrap(), 300_000, "larger than the read buffer");
    }
}
