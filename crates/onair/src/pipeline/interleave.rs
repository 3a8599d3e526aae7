//! Interleaver: puts audio and video on one timeline, in decode order,
//! before the fan-out, for video encoders that hold frames.
//!
//! Why: x264, x265 and SVT-AV1 return a frame's packet a look-ahead later
//! (half a second at x264 veryfast on two cores), and with B-frames its dts
//! lies before its pts. Audio is encoded at once. Without this, every
//! output would see audio half a second ahead of the video of the same
//! instant; an RTMP session or a file that starts on an audio packet would
//! take it as time 0 and clamp the earlier video dts to it. So, as FFmpeg's
//! `av_interleaved_write_frame` and OBS's output interleaving do:
//! - audio is shifted by the video encoder's timeline offset (its reorder
//!   delay: video pts/dts are shifted by the same so that no dts is
//!   negative), and
//! - audio waits here until video has reached its dts, so what leaves is in
//!   dts order across both streams.
//!
//! Bounds: audio is never held longer than [`MAX_AUDIO_HOLD_NS`] of media
//! (a video encoder that stalls must not stop the sound), and once the
//! video encoder has ended ([`Interleaver::video_ended`]) audio flows
//! straight through. The lock is held only to decide and hand packets on;
//! `push` downstream never blocks (PacketSink's contract).

use crate::packet::{EncodedPacket, MediaKind, PacketSink};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Most audio media (ns) held waiting for video: above the largest delay
/// in use (x264 veryfast with frame threads, about 0.6 s; SVT-AV1 holds 55-66
/// frames, 1.8-2.2 s at 30 fps, plus up to
/// [`ENCODER_BURST_SLACK_MS`](crate::video::encoder::ENCODER_BURST_SLACK_MS)
/// of frames queued in front of it in a burst), far below the outputs' buffers.
pub const MAX_AUDIO_HOLD_NS: u64 = 3_000_000_000;

#[derive(Default)]
struct State {
    held: VecDeque<EncodedPacket>,
    /// Dts of the newest video packet.
    video_dts_ns: Option<u64>,
    video_ended: bool,
}

/// Sits between the encoder threads and the fan-out (see the module doc).
pub struct Interleaver {
    out: Arc<dyn PacketSink>,
    audio_offset_ns: u64,
    state: Mutex<State>,
}

impl Interleaver {
    /// Passes packets to `out`, audio shifted by `audio_offset_ns`.
    pub fn new(out: Arc<dyn PacketSink>, audio_offset_ns: u64) -> Self {
        Self {
            out,
            audio_offset_ns,
            state: Mutex::new(State::default()),
        }
    }

    /// The video encoder has drained and exited: release what is held and
    /// let audio through from now on.
    pub fn video_ended(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.video_ended = true;
        for p in st.held.drain(..) {
            self.out.push(p);
        }
    }

    /// Audio packets held now (for tests and stats).
    pub fn held(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .held
            .len()
    }
}

impl PacketSink for Interleaver {
    fn push(&self, mut packet: EncodedPacket) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match packet.kind {
            MediaKind::Video => {
                st.video_dts_ns = Some(packet.dts_ns);
                while st.held.front().is_some_and(|a| a.dts_ns <= packet.dts_ns) {
                    if let Some(a) = st.held.pop_front() {
                        self.out.push(a);
                    }
                }
                self.out.push(packet);
            }
            MediaKind::Audio => {
                packet.pts_ns += self.audio_offset_ns;
                packet.dts_ns += self.audio_offset_ns;
                let video_past = st.video_dts_ns.is_some_and(|v| packet.dts_ns <= v);
                if st.video_ended || (st.held.is_empty() && video_past) {
                    self.out.push(packet);
                    return;
                }
                st.held.push_back(packet);
                while let (Some(first), Some(last)) = (st.held.front(), st.held.back()) {
                    if last.dts_ns.saturating_sub(first.dts_ns) <= MAX_AUDIO_HOLD_NS {
                        break;
                    }
                    if let Some(a) = st.held.pop_front() {
                        self.out.push(a);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(MediaKind, u64)>>);
    impl PacketSink for Collect {
        fn push(&self, p: EncodedPacket) {
            self.0.lock().unwrap().push((p.kind, p.dts_ns));
        }
    }

    fn packet(kind: MediaKind, ms: u64) -> EncodedPacket {
        EncodedPacket {
            kind,
            pts_ns: ms * 1_000_000,
            dts_ns: ms * 1_000_000,
            keyframe: true,
            disposable: false,
            data: Bytes::new(),
        }
    }

    #[test]
    fn audio_waits_for_video_and_is_shifted() {
        let out = Arc::new(Collect::default());
        let il = Interleaver::new(out.clone(), 66_000_000);
        // Audio at 0, 21, 42 ms (shifted to 66, 87, 108) arrives before any video.
        for ms in [0, 21, 42] {
            il.push(packet(MediaKind::Audio, ms));
        }
        assert_eq!(il.held(), 3);
        il.push(packet(MediaKind::Video, 90)); // releases 66, 87
        il.push(packet(MediaKind::Audio, 63)); // 129: after 108, held
        il.push(packet(MediaKind::Video, 200)); // releases 108, 129
        il.push(packet(MediaKind::Audio, 84)); // 150 <= 200: straight through
        let got: Vec<_> = out
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|&(k, ns)| (k, ns / 1_000_000))
            .collect();
        use MediaKind::{Audio as A, Video as V};
        assert_eq!(
            got,
            vec![
                (A, 66),
                (A, 87),
                (V, 90),
                (A, 108),
                (A, 129),
                (V, 200),
                (A, 150)
            ]
        );
    }

    #[test]
    fn bounded_hold_and_release_at_end() {
        let out = Arc::new(Collect::default());
        let il = Interleaver::new(out.clone(), 0);
        for i in 0..200u64 {
            il.push(packet(MediaKind::Audio, i * 21));
        }
        // No video: at most MAX_AUDIO_HOLD_NS of audio is held.
        let held = il.held() as u64;
        assert!(held * 21 <= MAX_AUDIO_HOLD_NS / 1_000_000 + 21, "{held}");
        assert_eq!(out.0.lock().unwrap().len() as u64, 200 - held);
        il.video_ended();
        assert_eq!(il.held(), 0);
        il.push(packet(MediaKind::Audio, 5000));
        let got = out.0.lock().unwrap();
        assert_eq!(got.len(), 201);
        assert!(got.windows(2).all(|w| w[0].1 <= w[1].1));
    }
}
