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
mod av_picture;
#[cfg(feature = "avcodec")]
mod avcodec;
mod choice;
mod input_queue;
mod nal;
mod openh264_backend;
#[cfg(feature = "avcodec")]
mod sched;

pub use crate::packet::VideoCodec;
pub use choice::{
    codec_label, list_encoders, parse_codec, parse_encoder_opt, probe, EncoderKind,
    EncoderSettings, EncoderStatus, Hardware, RESERVED_ENCODER_OPTS,
};
pub use input_queue::{input_queue_frames, ENCODER_BURST_SLACK_MS, ENCODER_QUEUE_BYTES};

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

    /// Frames the encoder took by reference instead of copying (0 for
    /// openh264 and the encoders that always get a copy): tells tests and
    /// benchmarks that the zero-copy path really ran.
    pub fn frames_by_reference(&self) -> u64 {
        match &self.backend {
            Backend::OpenH264(_) => 0,
            #[cfg(feature = "avcodec")]
            Backend::Av(e) => e.frames_by_reference(),
        }
    }

    /// Frames the queue between the CaptureThread and this encoder's thread
    /// holds ([`input_queue_frames`]): one for openh264, which returns each
    /// frame's packet at once in about the same time every frame; half a
    /// second for the encoders that hold frames and block in bursts.
    pub fn input_queue_frames(&self) -> usize {
        input_queue_frames(
            self.holds_frames(),
            self.cfg.width,
            self.cfg.height,
            self.cfg.fps,
        )
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
        self.encode_input(frame, None, pts_ns)
    }

    /// [`Self::encode`] for a picture the engines share: an encoder that
    /// copies its input anyway (x264, x265, SVT-AV1) borrows the planes,
    /// holding a clone of the `Arc` until it lets go of them, instead of
    /// copying the picture once more (see `av_picture.rs`).
    pub fn encode_shared(
        &mut self,
        frame: &Arc<I420Frame>,
        pts_ns: u64,
    ) -> Result<Vec<EncodedPacket>, Error> {
        self.encode_input(frame, Some(frame), pts_ns)
    }

    #[cfg_attr(not(feature = "avcodec"), allow(unused_variables))]
    fn encode_input(
        &mut self,
        frame: &I420Frame,
        shared: Option<&Arc<I420Frame>>,
        pts_ns: u64,
    ) -> Result<Vec<EncodedPacket>, Error> {
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
                let injected = std::mem::take(&mut self.inject_failure);
                let result = if injected {
                    Err(Error::Encoder {
                        codec: codec_label(self.kind.codec()),
                        reason: "injected device failure".into(),
                    })
                } else {
                    e.encode(frame, shared, pts_ns)
                };
                match result {
                    Ok(p) => out.extend(p),
                    Err(err) => {
                        let Some(to) = self.fallback_target(injected) else {
                            return Err(err);
                        };
                        self.fall_back(to, &err)?;
                        if let Backend::Av(e) = &mut self.backend {
                            out.extend(e.encode(frame, shared, pts_ns)?);
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
    /// codec for hardware encoders, and for a failure [`inject_failure`]
    /// made (tests, where there is no hardware to fail).
    ///
    /// [`inject_failure`]: Self::inject_failure
    #[cfg(feature = "avcodec")]
    fn fallback_target(&self, injected: bool) -> Option<EncoderKind> {
        self.kind.software_fallback().or_else(|| {
            injected
                .then(|| EncoderKind::default_for(self.kind.codec()).ok())
                .flatten()
        })
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
                match enc.encode_shared(&captured.frame, captured.pts_ns) {
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
mod tests;
