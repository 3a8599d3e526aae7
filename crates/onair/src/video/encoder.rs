//! VideoEncoder: I420 frames in, encoded access units out (H.264/HEVC
//! length-prefixed, AV1 OBUs), whichever encoder does the work.
//!
//! Why it looks like this:
//! - Bytes only (the seed's rule): no timing, no I/O. The pts given with a
//!   frame is copied to its packet (shifted by [`VideoEncoder::timeline_offset_ns`],
//!   0 without B-frames); dts follows the encoder's decode order.
//! - One interface, several backends: openh264 (`openh264.rs`, both builds,
//!   the default build's only one) and libavcodec's encoders (`avcodec.rs`,
//!   the GPL build: x264, x265, SVT-AV1, NVENC, VA-API). [`EncoderSettings`]
//!   names one (`--video-encoder`, `--video-codec`, `--preset`, `--profile`,
//!   `--bframes`); `choice.rs` holds the table and `onair encoders`.
//! - Parameter sets are known right after `new()`, because outputs build their
//!   sequence header before the first packet and again on every reconnect;
//!   packets carry none (unless the encoder had to be replaced, see below).
//! - Outputs on other threads ask for an IDR after congestion or a reconnect,
//!   and the bitrate may be changed live; both go through [`VideoControl`]
//!   (atomics only), read by the encoder thread before each frame, so no output
//!   ever touches the encoder or waits for it. Every backend honours both.
//! - One frame in gives zero or more packets out (libavcodec's encoders hold
//!   frames for look-ahead and B-frames); [`VideoEncoder::flush`] drains them
//!   when the input ends, so every frame given is a packet in the end.
//! - A hardware encoder that fails mid-stream is replaced by the software
//!   encoder of the same codec ([`EncoderKind::software_fallback`]) at once,
//!   with the same settings and timeline, and a warning says so; the stream
//!   does not stop. Its parameter sets differ from the announced ones, so
//!   from then on every keyframe carries them in-band (decoders take them
//!   there; the sequence header stays the one sent).

#[cfg(feature = "avcodec")]
mod avcodec;
#[cfg(all(test, feature = "avcodec"))]
mod avcodec_tests;
mod choice;
mod nal;
mod openh264_backend;

pub use crate::packet::VideoCodec;
pub use choice::{
    codec_label, list_encoders, parse_codec, probe, EncoderKind, EncoderSettings, EncoderStatus,
    Hardware,
};

use super::bitrate::VideoBitrate;
use super::capture::CapturedFrame;
use super::frame::I420Frame;
use crate::limits;
use crate::packet::{EncodedPacket, PacketSink, VideoParams};
use crate::stats::{bump, EngineCounters};
use crate::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Codec name used in errors.
const CODEC_H264: &str = "H.264";
/// Lowest accepted bitrate (bit/s): [`limits::VIDEO_BITRATE_BPS`].
pub const MIN_BITRATE_BPS: u32 = *limits::VIDEO_BITRATE_BPS.start();
/// Highest accepted bitrate (bit/s): [`limits::VIDEO_BITRATE_BPS`].
pub const MAX_BITRATE_BPS: u32 = *limits::VIDEO_BITRATE_BPS.end();
/// Frame size and rate `onair encoders` probes with: small enough to open
/// in milliseconds, large enough for every hardware encoder's minimum.
const PROBE_SIZE: (u32, u32) = (256, 144);

/// Settings of a [`VideoEncoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct VideoEncoderConfig {
    /// Width in pixels (even, [`limits::ENCODER_SIDE_MIN`]..=3840; see [`limits::check_size`]).
    pub width: u32,
    /// Height in pixels (even, [`limits::ENCODER_SIDE_MIN`]..=3840; see [`limits::check_size`]).
    pub height: u32,
    /// Frames per second ([`limits::FPS`]).
    pub fps: u32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Seconds between IDR frames; the IDR period is `round(keyint_secs * fps)` frames.
    pub keyint_secs: f32,
    /// Which encoder and its knobs (default: this build's H.264 encoder).
    pub encoder: EncoderSettings,
}

impl VideoEncoderConfig {
    /// IDR period in frames: `round(keyint_secs * fps)`, at least 1.
    pub fn keyint_frames(&self) -> u32 {
        ((self.keyint_secs * self.fps as f32).round() as u32).max(1)
    }

    /// The ranges of [`crate::limits`], except the smallest side: the encoder
    /// takes down to [`limits::ENCODER_SIDE_MIN`] (tests encode tiny frames).
    fn validate(&self) -> Result<(), Error> {
        let check = |option: &'static str, r: Result<(), String>| {
            r.map_err(|reason| Error::InvalidConfig { option, reason })
        };
        let (w, h) = (self.width, self.height);
        let min = limits::ENCODER_SIDE_MIN;
        if w < min || h < min || !w.is_multiple_of(2) || !h.is_multiple_of(2) {
            return check(
                "size",
                Err(format!("{w}x{h} must be even and at least {min}x{min}")),
            );
        }
        // Scaled up to the options' minimum, the same check the options get.
        check(
            "size",
            limits::check_size(w.max(*limits::SIDE.start()), h.max(*limits::SIDE.start())),
        )?;
        check("fps", limits::check_fps(self.fps))?;
        check(
            "video-bitrate",
            limits::check_video_bitrate(self.bitrate_bps),
        )?;
        check("keyint", limits::check_keyint(self.keyint_secs))
    }
}

enum Backend {
    // Boxed: the backends differ in size (openh264's struct is 7.5 KB) and
    // live as long as the stream; one allocation at open.
    OpenH264(Box<openh264_backend::OpenH264Encoder>),
    #[cfg(feature = "avcodec")]
    Av(Box<avcodec::AvEncoder>),
}

/// A video encoder of any backend (see the module doc).
pub struct VideoEncoder {
    backend: Backend,
    kind: EncoderKind,
    cfg: VideoEncoderConfig,
    /// What the outputs announced in their sequence header.
    params: VideoParams,
    /// The parameter sets (AV1: sequence header) inside `params.config`.
    #[cfg(feature = "avcodec")]
    announced: avcodec::GlobalHeaders,
    param_set_changes: u64,
    /// Packets drained from an encoder that was replaced, not yet returned.
    pending: Vec<EncodedPacket>,
    /// The encoder this one replaced after a failure, and why.
    fallback: Option<(EncoderKind, String)>,
    /// Test hook: the next encode fails as a dying device would.
    #[cfg(feature = "avcodec")]
    inject_failure: bool,
}

impl VideoEncoder {
    /// Opens the encoder `cfg.encoder` picks. The parameter sets are known
    /// when it returns ([`params`](Self::params)); the next frame is an IDR.
    pub fn new(cfg: VideoEncoderConfig) -> Result<Self, Error> {
        cfg.validate()?;
        let kind = cfg.encoder.resolve()?;
        let backend = open_backend(kind, &cfg, None)?;
        let params = match &backend {
            Backend::OpenH264(e) => e.params().clone(),
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => e.params()?,
        };
        #[cfg(feature = "avcodec")]
        let announced = match &backend {
            Backend::Av(e) => e.headers().clone(),
            Backend::OpenH264(_) => avcodec::GlobalHeaders::default(),
        };
        Ok(Self {
            backend,
            kind,
            cfg,
            params,
            #[cfg(feature = "avcodec")]
            announced,
            param_set_changes: 0,
            pending: Vec::new(),
            fallback: None,
            #[cfg(feature = "avcodec")]
            inject_failure: false,
        })
    }

    /// The encoder at work now (after a fallback, the software one).
    pub fn kind(&self) -> EncoderKind {
        self.kind
    }

    /// The encoder that failed and why, if this one took over mid-stream.
    pub fn fell_back_from(&self) -> Option<&(EncoderKind, String)> {
        self.fallback.as_ref()
    }

    /// Codec parameters, parameter sets included (complete right after `new`).
    pub fn params(&self) -> &VideoParams {
        &self.params
    }

    /// The configuration the encoder was built with.
    pub fn config(&self) -> &VideoEncoderConfig {
        &self.cfg
    }

    /// How many times the encoder emitted parameter sets differing from
    /// [`params`](Self::params): 0 unless an encoder was replaced (a bitrate
    /// change on an encoder that cannot reconfigure, a hardware fallback)
    /// with different ones, which then travel in-band on keyframes.
    pub fn param_set_changes(&self) -> u64 {
        match &self.backend {
            Backend::OpenH264(e) => self.param_set_changes + e.param_set_changes(),
            #[cfg(feature = "avcodec")]
            Backend::Av(_) => self.param_set_changes,
        }
    }

    /// The bitrate currently asked of the rate control, bit/s.
    pub fn bitrate_bps(&self) -> u32 {
        match &self.backend {
            Backend::OpenH264(e) => e.bitrate_bps(),
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => e.bitrate_bps(),
        }
    }

    /// How much every packet's pts and dts are shifted from the capture
    /// time: the encoder's reorder delay (B-frames), so that no dts is
    /// negative. The pipeline shifts audio by the same amount.
    pub fn timeline_offset_ns(&self) -> u64 {
        match &self.backend {
            Backend::OpenH264(_) => 0,
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => e.timeline_offset_ns(),
        }
    }

    /// Packets whose dts came out negative even after the timeline offset
    /// and were clamped (0 unless an encoder reorders more than it reports).
    pub fn negative_dts(&self) -> u64 {
        match &self.backend {
            Backend::OpenH264(_) => 0,
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => e.negative_dts(),
        }
    }

    /// True if packets can come out later than their frame went in
    /// (look-ahead, B-frames, frame threads): outputs then need the
    /// pipeline's interleaving. openh264 returns each frame's packet at once.
    pub fn holds_frames(&self) -> bool {
        !matches!(self.backend, Backend::OpenH264(_))
    }

    /// Encodes one frame stamped `pts_ns` (the configured size) and returns
    /// the packets that came out, in decode order: one for openh264, zero or
    /// more for encoders that hold frames.
    pub fn encode(&mut self, frame: &I420Frame, pts_ns: u64) -> Result<Vec<EncodedPacket>, Error> {
        if frame.width != self.cfg.width || frame.height != self.cfg.height {
            return Err(Error::Encoder {
                codec: codec_label(self.kind.codec()),
                reason: format!(
                    "frame is {}x{}, encoder is {}x{}",
                    frame.width, frame.height, self.cfg.width, self.cfg.height
                ),
            });
        }
        let luma = (frame.width as usize) * (frame.height as usize);
        if frame.y.len() < luma || frame.u.len() < luma / 4 || frame.v.len() < luma / 4 {
            return Err(Error::Encoder {
                codec: codec_label(self.kind.codec()),
                reason: "frame planes are shorter than its size".into(),
            });
        }
        let mut out = std::mem::take(&mut self.pending);
        match &mut self.backend {
            Backend::OpenH264(e) => out.extend(e.encode(frame, pts_ns)?),
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => {
                let result = if std::mem::take(&mut self.inject_failure) {
                    Err(Error::Encoder {
                        codec: codec_label(self.kind.codec()),
                        reason: "injected device failure".into(),
                    })
                } else {
                    e.encode(frame, pts_ns)
                };
                match result {
                    Ok(p) => out.extend(p),
                    Err(err) => {
                        let Some(to) = self.fallback_target() else {
                            return Err(err);
                        };
                        self.fall_back(to, &err)?;
                        if let Backend::Av(e) = &mut self.backend {
                            out.extend(e.encode(frame, pts_ns)?);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Drains the packets the encoder still holds (the input ended).
    pub fn flush(&mut self) -> Result<Vec<EncodedPacket>, Error> {
        #[allow(unused_mut)] // nothing to add without the avcodec backend
        let mut out = std::mem::take(&mut self.pending);
        match &mut self.backend {
            Backend::OpenH264(_) => {}
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => out.extend(e.flush()?),
        }
        Ok(out)
    }

    /// Makes the next encoded frame an IDR; the IDR period restarts from it
    /// (next periodic IDR `keyint_frames()` later).
    pub fn force_idr(&mut self) {
        match &mut self.backend {
            Backend::OpenH264(e) => e.force_idr(),
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => e.force_idr(),
        }
    }

    /// Changes the target bitrate from the next frame on. Clamped to
    /// [`MIN_BITRATE_BPS`]..=[`MAX_BITRATE_BPS`]. Encoders that cannot
    /// change it while open (x265, SVT-AV1, VA-API) are drained and opened
    /// again at the new rate, starting with an IDR.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), Error> {
        let bps = bps.clamp(MIN_BITRATE_BPS, MAX_BITRATE_BPS);
        match &mut self.backend {
            Backend::OpenH264(e) => e.set_bitrate(bps),
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => {
                if bps == e.bitrate_bps() {
                    return Ok(());
                }
                if e.reconfigures_live() {
                    e.set_bitrate(bps);
                    return Ok(());
                }
                let mut cfg = e.config().clone();
                cfg.bitrate_bps = bps;
                let kind = e.kind();
                self.replace(kind, &cfg)
            }
        }
    }

    /// Where a failing encoder falls back to: the software encoder of its
    /// codec for hardware encoders (and, in tests, for an injected failure).
    #[cfg(feature = "avcodec")]
    fn fallback_target(&self) -> Option<EncoderKind> {
        self.kind
            .software_fallback()
            .or_else(|| cfg!(test).then(|| EncoderKind::default_for(self.kind.codec()).ok())?)
    }

    #[cfg(feature = "avcodec")]
    fn fall_back(&mut self, to: EncoderKind, why: &Error) -> Result<(), Error> {
        tracing::warn!(
            from = %self.kind,
            to = %to,
            error = %why,
            "video encoder failed mid-stream; continuing with the software encoder"
        );
        let mut cfg = self.cfg.clone();
        cfg.bitrate_bps = self.bitrate_bps();
        // Knobs of the hardware encoder (preset names, profiles) mean
        // something else to the software one: keep only the B-frames.
        cfg.encoder = EncoderSettings {
            encoder: Some(to),
            bframes: cfg.encoder.bframes,
            ..EncoderSettings::default()
        };
        self.fallback = Some((self.kind, why.to_string()));
        // The failed encoder's held frames are lost with its device.
        self.replace_unflushed(to, &cfg)
    }

    /// Drains the current encoder and opens `kind` for `cfg` on the same timeline.
    #[cfg(feature = "avcodec")]
    fn replace(&mut self, kind: EncoderKind, cfg: &VideoEncoderConfig) -> Result<(), Error> {
        if let Backend::Av(e) = &mut self.backend {
            let drained = e.flush()?;
            self.pending.extend(drained);
        }
        self.replace_unflushed(kind, cfg)
    }

    #[cfg(feature = "avcodec")]
    fn replace_unflushed(
        &mut self,
        kind: EncoderKind,
        cfg: &VideoEncoderConfig,
    ) -> Result<(), Error> {
        let Backend::Av(old) = &self.backend else {
            return Ok(());
        };
        let delay = old.delay_frames();
        let mut new = avcodec::AvEncoder::open(kind, cfg, Some(delay))?;
        if new.delay_frames() != delay {
            // More reorder delay than the timeline allows: no B-frames then.
            let mut no_b = cfg.clone();
            no_b.encoder.bframes = Some(0);
            new = avcodec::AvEncoder::open(kind, &no_b, Some(delay))?;
        }
        if new.headers() != &self.announced && new.headers() != old.headers() {
            self.param_set_changes += 1;
        }
        new.inband_headers = new.headers() != &self.announced;
        self.backend = Backend::Av(Box::new(new));
        self.kind = kind;
        Ok(())
    }

    /// Makes the next `encode` fail as a dying hardware device would, so
    /// tests exercise the fallback where there is no hardware.
    #[cfg(feature = "avcodec")]
    #[doc(hidden)]
    pub fn inject_failure(&mut self) {
        self.inject_failure = true;
    }
}

fn open_backend(
    kind: EncoderKind,
    cfg: &VideoEncoderConfig,
    _offset_frames: Option<i64>,
) -> Result<Backend, Error> {
    match kind {
        EncoderKind::OpenH264 => Ok(Backend::OpenH264(Box::new(
            openh264_backend::OpenH264Encoder::new(cfg)?,
        ))),
        #[cfg(feature = "avcodec")]
        _ => Ok(Backend::Av(Box::new(avcodec::AvEncoder::open(
            kind,
            cfg,
            _offset_frames,
        )?))),
        #[cfg(not(feature = "avcodec"))]
        _ => Err(Error::InvalidConfig {
            option: "video-encoder",
            reason: format!("{kind} needs the GPL build"),
        }),
    }
}

/// Opens `kind` on a small frame, encodes one frame and drains it: what
/// `onair encoders` calls usable. The error says why not, for a human.
pub(crate) fn probe_encode(kind: EncoderKind) -> Result<(), String> {
    match kind.hardware() {
        Some(Hardware::Vaapi) => vaapi_device_check().map_err(|e| e.to_string())?,
        Some(Hardware::Nvenc) if !std::path::Path::new(NVIDIA_CONTROL_DEVICE).exists() => {
            return Err(format!(
                "no NVIDIA driver ({NVIDIA_CONTROL_DEVICE} missing)"
            ));
        }
        _ => {}
    }
    let cfg = VideoEncoderConfig {
        width: PROBE_SIZE.0,
        height: PROBE_SIZE.1,
        fps: 30,
        bitrate_bps: 500_000,
        keyint_secs: 1.0,
        encoder: EncoderSettings::named(kind),
    };
    let mut enc = VideoEncoder::new(cfg).map_err(|e| e.to_string())?;
    let mut packets = enc
        .encode(&I420Frame::black(PROBE_SIZE.0, PROBE_SIZE.1), 0)
        .map_err(|e| e.to_string())?;
    packets.extend(enc.flush().map_err(|e| e.to_string())?);
    if packets.is_empty() {
        return Err("opened, but gave no packet for a frame".into());
    }
    Ok(())
}

/// The device node whose presence says the NVIDIA driver is loaded.
const NVIDIA_CONTROL_DEVICE: &str = "/dev/nvidiactl";
/// Where DRM render nodes (VA-API devices) live.
const DRI_DIR: &str = "/dev/dri";

/// A VA-API encoder needs a DRM render node; says clearly when there is none.
pub(crate) fn vaapi_device_check() -> Result<(), Error> {
    let has_render_node = std::fs::read_dir(DRI_DIR)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false);
    if has_render_node {
        Ok(())
    } else {
        Err(Error::Encoder {
            codec: "VA-API",
            reason: format!("no VA-API device ({DRI_DIR}/renderD* missing)"),
        })
    }
}

/// Requests to the encoder thread from other threads (outputs, the API):
/// force an IDR; and the shared [`VideoBitrate`] the thread resolves before
/// each frame. Cheap to clone; atomics only, never blocks.
#[derive(Clone, Debug)]
pub struct VideoControl {
    idr: Arc<AtomicBool>,
    bitrate: Arc<VideoBitrate>,
}

impl VideoControl {
    /// A control with nothing pending, following `bitrate`.
    pub fn new(bitrate: Arc<VideoBitrate>) -> Self {
        Self {
            idr: Arc::new(AtomicBool::new(false)),
            bitrate,
        }
    }

    /// Asks for the next encoded frame to be an IDR (requests coalesce).
    pub fn request_idr(&self) {
        self.idr.store(true, Ordering::Release);
    }

    /// The bitrate this encoder follows (ceiling, wishes, current target).
    pub fn bitrate(&self) -> &Arc<VideoBitrate> {
        &self.bitrate
    }

    /// Takes (and clears) a pending IDR request.
    pub fn take_idr_request(&self) -> bool {
        self.idr.swap(false, Ordering::AcqRel)
    }

    /// Applies pending requests to `enc` (called before each frame): the
    /// bitrate resolved now, then an IDR if one was asked for.
    pub fn apply(&self, enc: &mut VideoEncoder) {
        let want = self.bitrate.resolve();
        if want != enc.bitrate_bps() {
            match enc.set_bitrate(want) {
                Ok(()) => tracing::debug!(bps = enc.bitrate_bps(), "video bitrate changed"),
                Err(e) => tracing::warn!(error = %e, "video bitrate change failed"),
            }
            self.bitrate.set_current(enc.bitrate_bps());
        }
        if self.take_idr_request() {
            enc.force_idr();
        }
    }
}

/// Runs `enc` on its own thread ("onair-video-enc"): takes frames from
/// `frames` until the channel disconnects (then drains the encoder), applies
/// `control` before each frame, pushes packets to `sink`, counts
/// `video_packets_encoded`. An
/// encoding error is logged and the frame counted in `video_frames_skipped`;
/// the thread never panics on it.
pub fn spawn_encoder_thread(
    mut enc: VideoEncoder,
    frames: crossbeam_channel::Receiver<CapturedFrame>,
    control: VideoControl,
    sink: Arc<dyn PacketSink>,
    counters: Arc<EngineCounters>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("onair-video-enc".into())
        .spawn(move || {
            let push = |packets: Vec<EncodedPacket>| {
                for packet in packets {
                    bump(&counters.video_packets_encoded);
                    sink.push(packet);
                }
            };
            while let Ok(captured) = frames.recv() {
                control.apply(&mut enc);
                match enc.encode(&captured.frame, captured.pts_ns) {
                    Ok(packets) => push(packets),
                    Err(e) => {
                        tracing::warn!(index = captured.index, error = %e, "video frame not encoded");
                        bump(&counters.video_frames_skipped);
                    }
                }
            }
            match enc.flush() {
                Ok(packets) => push(packets),
                Err(e) => tracing::warn!(error = %e, "video encoder not drained"),
            }
            tracing::debug!("video encoder thread: input closed, exiting");
        })
}

#[cfg(test)]
mod tests {
    use super::nal::{H264_IDR as NAL_IDR, H264_PPS as NAL_PPS, H264_SPS as NAL_SPS};
    use super::*;
    use crate::packet::MediaKind;
    use crate::video::source::{
        decode_frame_index, decode_frame_index_strided, TestPattern, VideoSource,
    };
    use ::openh264::formats::YUVSource;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;

    fn cfg(width: u32, height: u32, bitrate_bps: u32) -> VideoEncoderConfig {
        VideoEncoderConfig {
            width,
            height,
            fps: 30,
            bitrate_bps,
            keyint_secs: 1.0,
            encoder: EncoderSettings::named(EncoderKind::OpenH264),
        }
    }

    /// Splits AVCC data into NAL units, checking the framing is exact.
    fn walk_avcc(data: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            assert!(rest.len() >= 4, "truncated length prefix");
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            assert!(len > 0 && rest.len() >= 4 + len, "bad NAL length {len}");
            out.push(&rest[4..4 + len]);
            rest = &rest[4 + len..];
        }
        out
    }

    /// SPS and PPS out of the parameters' `avcC`.
    fn sps_pps(params: &VideoParams) -> (bytes::Bytes, bytes::Bytes) {
        crate::codec_config::avc_parameter_sets(&params.config).expect("avcC with SPS and PPS")
    }

    fn annexb(params: &VideoParams, pkt: &EncodedPacket) -> Vec<u8> {
        let mut v = Vec::new();
        if pkt.keyframe {
            let (sps, pps) = sps_pps(params);
            for ps in [&sps, &pps] {
                v.extend_from_slice(&[0, 0, 0, 1]);
                v.extend_from_slice(ps);
            }
        }
        for nal in walk_avcc(&pkt.data) {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(nal);
        }
        v
    }

    #[test]
    fn sps_pps_known_after_new() {
        let enc = VideoEncoder::new(cfg(640, 360, 1_000_000)).unwrap();
        let p = enc.params();
        let (sps, pps) = sps_pps(p);
        assert_eq!(sps[0] & 0x1f, NAL_SPS);
        assert_eq!(pps[0] & 0x1f, NAL_PPS);
        // profile_idc 66 (Baseline); level >= 4.2.
        assert_eq!(sps[1], 66);
        assert!(sps[3] >= 42, "level {}", sps[3]);
        assert_eq!(
            (p.width, p.height, p.fps, p.bitrate_bps),
            (640, 360, 30, 1_000_000)
        );
    }

    #[test]
    fn level_fits_size_and_rate() {
        let mut c = cfg(1920, 1080, 6_000_000);
        c.fps = 60;
        let enc = VideoEncoder::new(c).unwrap();
        assert_eq!(sps_pps(enc.params()).0[3], 42);
        let enc = VideoEncoder::new(cfg(3840, 2160, 20_000_000)).unwrap();
        assert!(sps_pps(enc.params()).0[3] >= 51);
    }

    #[test]
    fn sps_unchanged_by_bitrate_changes_and_idr() {
        let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
        let mut pat = TestPattern::new(320, 240);
        for (i, bps) in [(0u64, 8_000_000u32), (10, 100_000), (20, 45_000_000)] {
            enc.set_bitrate(bps).unwrap();
            enc.force_idr();
            bytes_over(&mut enc, &mut pat, i, 10);
        }
        assert_eq!(enc.param_set_changes(), 0);
    }

    #[test]
    fn rejects_bad_config() {
        assert!(VideoEncoder::new(cfg(641, 360, 1_000_000)).is_err());
        assert!(VideoEncoder::new(cfg(640, 360, 10)).is_err());
        let mut c = cfg(640, 360, 1_000_000);
        c.fps = 0;
        assert!(VideoEncoder::new(c).is_err());
    }

    #[test]
    fn first_packet_is_avcc_keyframe_and_gop_is_keyint() {
        let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
        let mut pat = TestPattern::new(320, 240);
        let fps = crate::clock::Rate::per_second(30);
        let mut keys = Vec::new();
        for i in 0..95u64 {
            let f = pat.grab(i, fps.time_of(i)).unwrap();
            let pkt = enc
                .encode(&f, fps.time_of(i))
                .unwrap()
                .pop()
                .expect("no frame skipping");
            assert_eq!(pkt.kind, MediaKind::Video);
            assert_eq!(pkt.pts_ns, fps.time_of(i));
            assert_eq!(pkt.dts_ns, pkt.pts_ns);
            let nals = walk_avcc(&pkt.data);
            assert!(nals
                .iter()
                .all(|n| !matches!(n[0] & 0x1f, NAL_SPS | NAL_PPS)));
            let has_idr = nals.iter().any(|n| n[0] & 0x1f == NAL_IDR);
            assert_eq!(pkt.keyframe, has_idr);
            assert!(
                !pkt.disposable,
                "single temporal layer: every frame is a reference"
            );
            if pkt.keyframe {
                keys.push(i);
            }
        }
        assert_eq!(keys, vec![0, 30, 60, 90]);
    }

    #[test]
    fn force_idr_mid_gop() {
        let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
        let mut pat = TestPattern::new(320, 240);
        let mut keys = Vec::new();
        for i in 0..45u64 {
            if i == 7 {
                enc.force_idr();
            }
            let f = pat.render(i);
            if enc
                .encode(&f, i * 33_333_333)
                .unwrap()
                .pop()
                .unwrap()
                .keyframe
            {
                keys.push(i);
            }
        }
        // The IDR period restarts at the forced IDR.
        assert_eq!(keys, vec![0, 7, 37]);
    }

    #[test]
    fn control_applies_idr_and_bitrate() {
        let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
        let ctl = test_control(500_000);
        let other = ctl.clone();
        other.request_idr();
        other.bitrate().set_ceiling(800_000);
        ctl.apply(&mut enc);
        assert_eq!(enc.bitrate_bps(), 800_000);
        assert_eq!(ctl.bitrate().current(), 800_000);
        assert!(!ctl.take_idr_request());
        // A wish below the ceiling is followed; the floor bounds it.
        let wish = ctl.bitrate().register();
        wish.set(60_000);
        ctl.apply(&mut enc);
        assert_eq!(enc.bitrate_bps(), 100_000, "held at the floor");
    }

    fn test_control(ceiling: u32) -> VideoControl {
        VideoControl::new(Arc::new(VideoBitrate::new(ceiling, 100_000, true)))
    }

    #[test]
    fn wrong_size_frame_is_an_error() {
        let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
        assert!(enc.encode(&I420Frame::black(640, 360), 0).is_err());
    }

    fn bytes_over(enc: &mut VideoEncoder, pat: &mut TestPattern, from: u64, n: u64) -> usize {
        (from..from + n)
            .map(|i| {
                let f = pat.render(i);
                enc.encode(&f, i * 1_000_000_000 / 30)
                    .unwrap()
                    .pop()
                    .unwrap()
                    .data
                    .len()
            })
            .sum()
    }

    #[test]
    fn set_bitrate_changes_output_size() {
        let mut enc = VideoEncoder::new(cfg(640, 360, 500_000)).unwrap();
        let mut pat = TestPattern::new(640, 360);
        // Let the rate control settle, then measure 60 frames (2 s) at each rate.
        bytes_over(&mut enc, &mut pat, 0, 30);
        let low = bytes_over(&mut enc, &mut pat, 30, 60);
        enc.set_bitrate(4_000_000).unwrap();
        bytes_over(&mut enc, &mut pat, 90, 30);
        let high = bytes_over(&mut enc, &mut pat, 120, 60);
        enc.set_bitrate(500_000).unwrap();
        bytes_over(&mut enc, &mut pat, 180, 30);
        let low2 = bytes_over(&mut enc, &mut pat, 210, 60);
        eprintln!("2 s at 500k: {low} B, at 4000k: {high} B, back at 500k: {low2} B");
        assert!(high > 2 * low, "low {low} high {high}");
        assert!(high > 2 * low2, "low2 {low2} high {high}");
        // Rate control roughly honours the target (500 kbit/s * 2 s = 125 kB).
        assert!(low < 250_000, "{low}");
    }

    #[test]
    fn decodes_back_with_frame_index() {
        let (w, h) = (640u32, 360u32);
        let mut enc = VideoEncoder::new(cfg(w, h, 1_000_000)).unwrap();
        let mut pat = TestPattern::new(w, h);
        let mut dec = ::openh264::decoder::Decoder::new().unwrap();
        let mut decoded = Vec::new();
        for i in 0..40u64 {
            let f = pat.render(i + 1000);
            let pkt = enc.encode(&f, i * 33_333_333).unwrap().pop().unwrap();
            if let Some(yuv) = dec.decode(&annexb(enc.params(), &pkt)).unwrap() {
                let (dw, dh) = yuv.dimensions();
                assert_eq!((dw as u32, dh as u32), (w, h));
                let stride = yuv.strides().0;
                decoded.push(decode_frame_index_strided(yuv.y(), w, h, stride));
            }
        }
        assert!(decoded.len() >= 30, "decoded {}", decoded.len());
        let first = decoded[0].expect("index readable");
        for (k, idx) in decoded.iter().enumerate() {
            assert_eq!(*idx, Some(first + k as u64));
        }
        assert!((1000..1010).contains(&first));
    }

    /// What the integration tests do: FFmpeg decodes the stream to grey
    /// frames, `decode_frame_index` reads each one. 720p at 2.5 Mbit/s.
    #[test]
    fn ffmpeg_reads_frame_indices_at_streaming_bitrate() {
        if !onair_testkit::require_tools(&["ffmpeg"]) {
            return;
        }
        // Streaming default, and the smallest size at a starved bitrate.
        for (w, h, bps) in [(1280u32, 720u32, 2_500_000u32), (160, 120, 100_000)] {
            let mut enc = VideoEncoder::new(cfg(w, h, bps)).unwrap();
            let mut pat = TestPattern::new(w, h);
            let n = 90u64;
            let mut stream = Vec::new();
            for i in 0..n {
                let f = pat.render(i + 5000);
                let pkt = enc.encode(&f, i * 33_333_333).unwrap().pop().unwrap();
                stream.extend(annexb(enc.params(), &pkt));
            }
            let dir = tempfile::tempdir().unwrap();
            let input = dir.path().join("in.h264");
            std::fs::write(&input, &stream).unwrap();
            let out = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-f", "h264", "-i"])
                .arg(&input)
                .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let frame_len = (w * h) as usize;
            let frames: Vec<_> = out.stdout.chunks_exact(frame_len).collect();
            assert_eq!(frames.len() as u64, n);
            for (k, luma) in frames.iter().enumerate() {
                assert_eq!(
                    decode_frame_index(luma, w, h),
                    Some(5000 + k as u64),
                    "{w}x{h} frame {k}"
                );
            }
        }
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<EncodedPacket>>);
    impl PacketSink for Collect {
        fn push(&self, packet: EncodedPacket) {
            self.0.lock().unwrap().push(packet);
        }
    }

    #[test]
    fn encoder_thread_runs_until_disconnect() {
        let enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sink = Arc::new(Collect::default());
        let counters = Arc::new(EngineCounters::default());
        let ctl = test_control(500_000);
        let h = spawn_encoder_thread(enc, rx, ctl.clone(), sink.clone(), counters.clone()).unwrap();
        let mut pat = TestPattern::new(320, 240);
        for i in 0..10u64 {
            if i == 5 {
                ctl.request_idr();
            }
            let frame = pat.render(i);
            tx.send(CapturedFrame {
                index: i,
                pts_ns: i * 1000,
                frame,
                duplicate: false,
            })
            .unwrap();
        }
        // A wrong-size frame is counted skipped, not a panic.
        tx.send(CapturedFrame {
            index: 10,
            pts_ns: 10_000,
            frame: Arc::new(I420Frame::black(64, 64)),
            duplicate: false,
        })
        .unwrap();
        drop(tx);
        h.join().unwrap();
        let got = sink.0.lock().unwrap();
        assert_eq!(got.len(), 10);
        assert_eq!(counters.video_packets_encoded.load(Ordering::Relaxed), 10);
        assert_eq!(counters.video_frames_skipped.load(Ordering::Relaxed), 1);
        // The request lands before frame 4 or 5 (the thread may run ahead of
        // the request by one frame), and only there.
        let keys: Vec<_> = (0..10).filter(|&i| got[i].keyframe).collect();
        assert!(keys == vec![0, 5] || keys == vec![0, 4], "{keys:?}");
    }

    #[test]
    fn long_run_bitrate_follows_target() {
        let (w, h) = (1280u32, 720u32);
        let mut enc = VideoEncoder::new(cfg(w, h, 2_500_000)).unwrap();
        let mut pat = TestPattern::new(w, h);
        bytes_over(&mut enc, &mut pat, 0, 60);
        let secs = 8u64;
        let bytes = bytes_over(&mut enc, &mut pat, 60, 30 * secs);
        let kbps = bytes as f64 * 8.0 / secs as f64 / 1000.0;
        eprintln!("720p30 target 2500 kbit/s: measured {kbps:.0} kbit/s over {secs} s");
        assert!((1500.0..3500.0).contains(&kbps), "{kbps}");
    }

    /// The whole video engine live: TestPattern -> CaptureThread -> encoder
    /// thread -> sink, decoded back: every packet's pixels carry the index its
    /// pts says, and keyframes arrive every keyint.
    #[test]
    fn live_pipeline_pts_match_pixels() {
        use crate::clock::{MasterClock, Rate};
        use crate::video::capture::CaptureThread;
        let (w, h) = (640u32, 360u32);
        let fps = Rate::per_second(30);
        let enc = VideoEncoder::new(cfg(w, h, 1_000_000)).unwrap();
        let params = enc.params().clone();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sink = Arc::new(Collect::default());
        let counters = Arc::new(EngineCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let enc_thread = spawn_encoder_thread(
            enc,
            rx,
            test_control(500_000),
            sink.clone(),
            counters.clone(),
        )
        .unwrap();
        let cap = CaptureThread::spawn(
            MasterClock::start(),
            fps,
            Box::new(TestPattern::new(w, h)),
            tx,
            counters.clone(),
            stop.clone(),
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1200));
        stop.store(true, Ordering::Release);
        cap.join();
        enc_thread.join().unwrap();
        let packets = sink.0.lock().unwrap();
        assert!(packets.len() >= 30, "{} packets", packets.len());
        assert!(packets[0].keyframe);
        let mut dec = ::openh264::decoder::Decoder::new().unwrap();
        for pkt in packets.iter() {
            // time_of rounds down, so look 1 ns later to land inside the slot.
            let index = fps.expected_frames(pkt.pts_ns + 1);
            assert_eq!(fps.time_of(index), pkt.pts_ns);
            let yuv = dec
                .decode(&annexb(&params, pkt))
                .unwrap()
                .expect("no decoder delay");
            let got = decode_frame_index_strided(yuv.y(), w, h, yuv.strides().0);
            assert_eq!(got, Some(index));
        }
        let encoded = counters.video_packets_encoded.load(Ordering::Relaxed);
        assert_eq!(encoded, packets.len() as u64);
    }

    // Encode speed is a benchmark, not a test: `examples/encode_speed`
    // (docs/benchmarks.md) measures it in thread CPU time.
}
