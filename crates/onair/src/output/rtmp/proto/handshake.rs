//! Client side of the RTMP handshake (spec section 5.2): C0+C1 out, S0+S1+S2
//! in, C2 out.
//!
//! Why the plain handshake (zeros in C1's version field, no digest): nginx-
//! rtmp, FFmpeg's listener, and the big ingests accept it, and it is what
//! OBS sends over plain RTMP. The digest ("complex") handshake only matters
//! to servers that serve encrypted Flash players.
//!
//! Sans-IO and bounded: the caller passes the time and the random bytes, and
//! feeds whatever arrives; at most S0+S1+S2 (3073 bytes) are ever held, and
//! bytes after S2 (the server may send its first chunks right behind it) are
//! handed back. S0 must say version 3. S2 should echo C1; many servers get
//! the echo wrong, so a mismatch is reported, not refused.

/// RTMP version byte (C0/S0).
pub const RTMP_VERSION: u8 = 3;
/// Size of C1/S1/C2/S2.
pub const PACKET_LEN: usize = 1536;
/// Random part of C1.
pub const RANDOM_LEN: usize = PACKET_LEN - 8;

/// Why the handshake failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// S0 asked for another version (6 = RTMPE, or not RTMP at all).
    #[error("server answered with version {0}, not RTMP 3 (not an RTMP server, or RTMPE)")]
    BadVersion(u8),
    /// Input after completion (a bug in the caller).
    #[error("handshake already complete")]
    AlreadyDone,
}

/// What to do after feeding bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeStep {
    /// Need more bytes; send `send` (C2, once S1 is in) if not empty.
    InProgress {
        /// Bytes to send now.
        send: Vec<u8>,
    },
    /// Done: send `send`, then feed `leftover` to the session.
    Done {
        /// Bytes to send now (C2 if S1 and S2 came together).
        send: Vec<u8>,
        /// Bytes the server sent after S2.
        leftover: Vec<u8>,
        /// Whether S2 echoed our C1's random bytes.
        echo_ok: bool,
    },
}

/// The client handshake's state.
#[derive(Debug)]
pub struct ClientHandshake {
    c1: Vec<u8>,
    received: Vec<u8>,
    c2_sent: bool,
    done: bool,
}

impl ClientHandshake {
    /// Starts a handshake: returns it and C0+C1 to send. `epoch_ms` is our
    /// time field; `random` fills C1 (1528 bytes; shorter is zero-padded).
    pub fn start(epoch_ms: u32, random: &[u8]) -> (Self, Vec<u8>) {
        let mut c1 = Vec::with_capacity(PACKET_LEN);
        c1.extend_from_slice(&epoch_ms.to_be_bytes());
        c1.extend_from_slice(&[0; 4]);
        c1.extend_from_slice(&random[..random.len().min(RANDOM_LEN)]);
        c1.resize(PACKET_LEN, 0);
        let mut out = Vec::with_capacity(1 + PACKET_LEN);
        out.push(RTMP_VERSION);
        out.extend_from_slice(&c1);
        (
            Self {
                c1,
                received: Vec::with_capacity(1 + 2 * PACKET_LEN),
                c2_sent: false,
                done: false,
            },
            out,
        )
    }

    /// Feeds bytes from the server; `now_ms` goes into C2's second time field.
    pub fn feed(&mut self, input: &[u8], now_ms: u32) -> Result<HandshakeStep, HandshakeError> {
        if self.done {
            return Err(HandshakeError::AlreadyDone);
        }
        let want = 1 + 2 * PACKET_LEN;
        let take = (want - self.received.len()).min(input.len());
        self.received.extend_from_slice(&input[..take]);
        let rest = &input[take..];
        if let Some(&v) = self.received.first() {
            if v != RTMP_VERSION {
                return Err(HandshakeError::BadVersion(v));
            }
        }
        let mut send = Vec::new();
        if !self.c2_sent && self.received.len() > PACKET_LEN {
            // C2 echoes S1: its time, our time, its random bytes.
            let s1 = &self.received[1..=PACKET_LEN];
            send.extend_from_slice(&s1[..4]);
            send.extend_from_slice(&now_ms.to_be_bytes());
            send.extend_from_slice(&s1[8..]);
            self.c2_sent = true;
        }
        if self.received.len() < want {
            return Ok(HandshakeStep::InProgress { send });
        }
        self.done = true;
        let s2 = &self.received[1 + PACKET_LEN..];
        let echo_ok = s2[8..] == self.c1[8..];
        // The handshake buffer is no longer needed.
        self.received = Vec::new();
        Ok(HandshakeStep::Done {
            send,
            leftover: rest.to_vec(),
            echo_ok,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-behaved server's S0+S1+S2 for `c0c1`.
    fn server_answer(c0c1: &[u8]) -> Vec<u8> {
        let mut s = vec![RTMP_VERSION];
        s.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 0]);
        s.extend((0..RANDOM_LEN).map(|i| (i * 7) as u8));
        s.extend_from_slice(&c0c1[1..]);
        s
    }

    #[test]
    fn whole_answer_at_once_with_leftover() {
        let (mut hs, c0c1) = ClientHandshake::start(5, &[0xAB; RANDOM_LEN]);
        assert_eq!(c0c1.len(), 1 + PACKET_LEN);
        assert_eq!(&c0c1[..9], &[3, 0, 0, 0, 5, 0, 0, 0, 0]);
        let mut answer = server_answer(&c0c1);
        answer.extend_from_slice(b"chunks");
        let step = hs.feed(&answer, 9).unwrap();
        let HandshakeStep::Done {
            send,
            leftover,
            echo_ok,
        } = step
        else {
            panic!("not done");
        };
        assert!(echo_ok);
        assert_eq!(leftover, b"chunks");
        assert_eq!(send.len(), PACKET_LEN);
        assert_eq!(&send[..8], &[0, 0, 0, 7, 0, 0, 0, 9]);
        assert_eq!(&send[8..], &answer[9..1 + PACKET_LEN]);
        assert_eq!(hs.feed(b"x", 0), Err(HandshakeError::AlreadyDone));
    }

    #[test]
    fn byte_by_byte() {
        let (mut hs, c0c1) = ClientHandshake::start(0, &[1, 2, 3]);
        let answer = server_answer(&c0c1);
        let mut c2 = Vec::new();
        for (i, b) in answer.iter().enumerate() {
            match hs.feed(&[*b], 0).unwrap() {
                HandshakeStep::InProgress { send } => c2.extend(send),
                HandshakeStep::Done { send, leftover, .. } => {
                    c2.extend(send);
                    assert!(leftover.is_empty());
                    assert_eq!(i, answer.len() - 1);
                }
            }
        }
        assert_eq!(c2.len(), PACKET_LEN);
    }

    #[test]
    fn wrong_version_and_bad_echo() {
        let (mut hs, _) = ClientHandshake::start(0, &[]);
        assert_eq!(
            hs.feed(b"HTTP/1.1 400", 0),
            Err(HandshakeError::BadVersion(b'H'))
        );
        let (mut hs, c0c1) = ClientHandshake::start(0, &[9; RANDOM_LEN]);
        let mut answer = server_answer(&c0c1);
        let last = answer.len() - 1;
        answer[last] ^= 1;
        assert!(matches!(
            hs.feed(&answer, 0),
            Ok(HandshakeStep::Done { echo_ok: false, .. })
        ));
    }
}
