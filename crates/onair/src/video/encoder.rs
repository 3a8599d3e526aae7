//! VideoEncoder: I420 frames in, H.264 access units (AVCC) out.
//!
//! Why it looks like this:
//! - Bytes only (the seed's rule): no timing, no I/O. The pts given with a
//!   frame is copied to the packet; there are no B-frames, so dts == pts.
//! - SPS/PPS are known right after `new()` (one black frame is encoded inside
//!   it), because outputs build their AVC sequence header before the first
//!   packet and again on every reconnect. They are stripped from packets: they
//!   travel only in that header, and `ConstantId` keeps them identical for the
//!   whole life of the encoder (a bitrate change never alters them).
//! - Outputs on other threads ask for an IDR after congestion or a reconnect,
//!   and the bitrate may be changed live; both go through [`VideoControl`]
//!   (atomics only), read by the encoder thread before each frame, so no output
//!   ever touches the encoder or waits for it.
//! - Rate control is openh264's bitrate mode with frame skipping disabled:
//!   every captured frame yields exactly one access unit, which keeps the
//!   frame cadence (and the pattern's frame indices) intact for the muxer.
//!   The price (openh264 warns about it) is that the rate control can only
//!   move the QP, so it overshoots a little on hard content: measured
//!   2.67 Mbit/s for a 2.5 Mbit/s target over 8 s of the noisy test pattern
//!   (`long_run_bitrate_follows_target`). Congestion is the muxer's job.
//! - One slice per frame, one encoder thread (openh264 only parallelises
//!   across slices), Baseline profile (no B-frames, so dts == pts), the
//!   lowest level >= 4.2 that fits the size and rate (1080p60 is 4.2, 2160p30
//!   5.1), and no scene-change detection so IDRs come only from the period
//!   (`round(keyint_secs * fps)` frames, restarting at a forced IDR) or a request.
//! - Every frame is a reference frame (one temporal layer), so `disposable`
//!   is always false for now.

use super::bitrate::VideoBitrate;
use super::capture::CapturedFrame;
use super::frame::I420Frame;
use crate::limits;
use crate::packet::{EncodedPacket, MediaKind, PacketSink, VideoParams};
use crate::stats::{bump, EngineCounters};
use crate::Error;
use bytes::Bytes;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level,
    Profile, RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Codec name used in errors.
const CODEC: &str = "H.264";
/// Lowest accepted bitrate (bit/s): [`limits::VIDEO_BITRATE_BPS`].
pub const MIN_BITRATE_BPS: u32 = *limits::VIDEO_BITRATE_BPS.start();
/// Highest accepted bitrate (bit/s): [`limits::VIDEO_BITRATE_BPS`].
pub const MAX_BITRATE_BPS: u32 = *limits::VIDEO_BITRATE_BPS.end();
/// Encoder threads: one slice per frame keeps openh264 single-threaded anyway,
/// and the other core belongs to capture, audio and the network.
const ENCODER_THREADS: u16 = 1;
/// NAL unit types we look at.
const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
/// openh264's `ENCODER_OPTION_BITRATE` and `ENCODER_OPTION_MAX_BITRATE`
/// (codec_app_def.h), and `SPATIAL_LAYER_ALL` / `SPATIAL_LAYER_0`.
const ENCODER_OPTION_BITRATE: c_int = 5;
const ENCODER_OPTION_MAX_BITRATE: c_int = 6;
const SPATIAL_LAYER_ALL: c_int = 4;
const SPATIAL_LAYER_0: c_int = 0;
/// openh264's `ENCODER_OPTION_TRACE_LEVEL` and `WELS_LOG_ERROR`: set before
/// initialisation so its stderr warnings (e.g. about frame skipping being
/// off, which is deliberate) do not pollute the CLI's output.
const ENCODER_OPTION_TRACE_LEVEL: c_int = 25;
const WELS_LOG_ERROR: c_int = 1;

/// Mirror of openh264's `SBitrateInfo` (`{ LAYER_NUM iLayer; int iBitrate; }`,
/// `LAYER_NUM` being a C enum, i.e. an `int`).
#[repr(C)]
struct SBitrateInfo {
    layer: c_int,
    bitrate: c_int,
}

/// Settings of a [`VideoEncoder`].
#[derive(Clone, Copy, Debug, PartialEq)]
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

    /// The lowest H.264 level whose frame-size and macroblock-rate limits hold
    /// this size and rate (4.2 at least: it also caps the bitrate at 50 Mbit/s,
    /// which is what lets bitrate changes leave the SPS untouched).
    fn level(&self) -> Level {
        let mbs = u64::from(self.width.div_ceil(16)) * u64::from(self.height.div_ceil(16));
        let mbps = mbs * u64::from(self.fps);
        if mbs <= 8_704 && mbps <= 522_240 {
            Level::Level_4_2
        } else if mbs <= 36_864 && mbps <= 983_040 {
            Level::Level_5_1
        } else {
            Level::Level_5_2
        }
    }
}

/// Lets an `I420Frame` be fed to openh264 without copying.
struct FrameRef<'a>(&'a I420Frame);

impl YUVSource for FrameRef<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }
    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width as usize;
        (w, w / 2, w / 2)
    }
    fn y(&self) -> &[u8] {
        &self.0.y
    }
    fn u(&self) -> &[u8] {
        &self.0.u
    }
    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

/// An H.264 encoder (openh264, Baseline profile, constant bitrate, no B-frames).
pub struct VideoEncoder {
    inner: Encoder,
    cfg: VideoEncoderConfig,
    params: VideoParams,
    /// The SPS and PPS in `params.config`, kept to spot a change mid-stream.
    sps: Bytes,
    pps: Bytes,
    bitrate_bps: u32,
    /// Size of the last access unit: capacity hint for the next one.
    last_size: usize,
    param_set_changes: u64,
}

impl VideoEncoder {
    /// Creates the encoder and encodes one black frame to learn SPS/PPS, so
    /// [`params`](Self::params) is complete at once. The next encoded frame is
    /// an IDR.
    pub fn new(cfg: VideoEncoderConfig) -> Result<Self, Error> {
        cfg.validate()?;
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(cfg.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(cfg.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .profile(Profile::Baseline)
            .level(cfg.level())
            .complexity(Complexity::Low)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(cfg.keyint_frames()))
            .num_threads(ENCODER_THREADS);
        let mut inner =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(enc_err)?;
        let mut level = WELS_LOG_ERROR;
        // SAFETY: FFI edge. The encoder object exists (created above); trace
        // level is one of the options openh264 accepts before initialisation,
        // and it takes a pointer to an `int` that is only read during the call.
        // The wrapper sets its own trace level (quiet) right after init.
        unsafe {
            inner.raw_api().set_option(
                ENCODER_OPTION_TRACE_LEVEL,
                std::ptr::addr_of_mut!(level).cast::<c_void>(),
            );
        }
        let mut enc = Self {
            inner,
            cfg,
            params: VideoParams::h264(cfg.width, cfg.height, cfg.fps, cfg.bitrate_bps, &[], &[]),
            sps: Bytes::new(),
            pps: Bytes::new(),
            bitrate_bps: cfg.bitrate_bps,
            last_size: 0,
            param_set_changes: 0,
        };
        let black = I420Frame::black(cfg.width, cfg.height);
        let (sps, pps) = {
            let bs = enc
                .inner
                .encode_at(&FrameRef(&black), Timestamp::from_millis(0))
                .map_err(enc_err)?;
            let mut sps = None;
            let mut pps = None;
            for l in 0..bs.num_layers() {
                let Some(layer) = bs.layer(l) else { continue };
                for n in 0..layer.nal_count() {
                    let Some(nal) = layer.nal_unit(n).map(strip_start_code) else {
                        continue;
                    };
                    match nal.first().map(|b| b & 0x1f) {
                        Some(NAL_SPS) if sps.is_none() => sps = Some(Bytes::copy_from_slice(nal)),
                        Some(NAL_PPS) if pps.is_none() => pps = Some(Bytes::copy_from_slice(nal)),
                        _ => {}
                    }
                }
            }
            (sps, pps)
        };
        match (sps, pps) {
            (Some(sps), Some(pps)) => {
                enc.params.config = crate::codec_config::avc_config(&sps, &pps);
                enc.sps = sps;
                enc.pps = pps;
            }
            _ => {
                return Err(Error::Encoder {
                    codec: CODEC,
                    reason: "first frame carried no SPS/PPS".into(),
                })
            }
        }
        enc.force_idr();
        Ok(enc)
    }

    /// Codec parameters, SPS and PPS included (complete right after `new`).
    pub fn params(&self) -> &VideoParams {
        &self.params
    }

    /// The configuration the encoder was built with.
    pub fn config(&self) -> &VideoEncoderConfig {
        &self.cfg
    }

    /// How many times the encoder emitted an SPS/PPS differing from
    /// [`params`](Self::params). Always 0 by design (`ConstantId`, level
    /// fixed); nonzero would mean outputs' sequence headers are stale.
    pub fn param_set_changes(&self) -> u64 {
        self.param_set_changes
    }

    /// The bitrate currently asked of the rate control, bit/s.
    pub fn bitrate_bps(&self) -> u32 {
        self.bitrate_bps
    }

    /// Encodes one frame stamped `pts_ns`. Returns the access unit as AVCC
    /// (4-byte big-endian length before each NAL unit, SPS/PPS removed), or
    /// `None` if the encoder produced no picture for it (not expected: frame
    /// skipping is off). The frame must have the configured size.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        pts_ns: u64,
    ) -> Result<Option<EncodedPacket>, Error> {
        if frame.width != self.cfg.width || frame.height != self.cfg.height {
            return Err(Error::Encoder {
                codec: CODEC,
                reason: format!(
                    "frame is {}x{}, encoder is {}x{}",
                    frame.width, frame.height, self.cfg.width, self.cfg.height
                ),
            });
        }
        let luma = (frame.width as usize) * (frame.height as usize);
        if frame.y.len() < luma || frame.u.len() < luma / 4 || frame.v.len() < luma / 4 {
            return Err(Error::Encoder {
                codec: CODEC,
                reason: "frame planes are shorter than its size".into(),
            });
        }
        let bs = self
            .inner
            .encode_at(&FrameRef(frame), Timestamp::from_millis(pts_ns / 1_000_000))
            .map_err(enc_err)?;
        if matches!(bs.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.last_size + self.last_size / 4 + 64);
        let mut keyframe = false;
        let mut slices = 0usize;
        let mut referenced = false;
        for l in 0..bs.num_layers() {
            let Some(layer) = bs.layer(l) else { continue };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n).map(strip_start_code) else {
                    continue;
                };
                let Some(&header) = nal.first() else { continue };
                let kind = header & 0x1f;
                if kind == NAL_SPS || kind == NAL_PPS {
                    let known = if kind == NAL_SPS {
                        &self.sps
                    } else {
                        &self.pps
                    };
                    if nal != &known[..] {
                        self.param_set_changes += 1;
                        tracing::warn!(kind, "H.264 parameter set changed mid-stream");
                    }
                    continue;
                }
                if kind == NAL_IDR || kind == NAL_SLICE {
                    slices += 1;
                    keyframe |= kind == NAL_IDR;
                    referenced |= header & 0x60 != 0;
                }
                let len = u32::try_from(nal.len()).map_err(|_| Error::Encoder {
                    codec: CODEC,
                    reason: "NAL unit larger than 4 GiB".into(),
                })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(nal);
            }
        }
        if slices == 0 {
            return Ok(None);
        }
        self.last_size = out.len();
        Ok(Some(EncodedPacket {
            kind: MediaKind::Video,
            pts_ns,
            dts_ns: pts_ns,
            keyframe,
            disposable: !referenced,
            data: Bytes::from(out),
        }))
    }

    /// Makes the next encoded frame an IDR; the IDR period restarts from it
    /// (next periodic IDR `keyint_frames()` later).
    pub fn force_idr(&mut self) {
        self.inner.force_intra_frame();
    }

    /// Changes the target bitrate from the next frame on. Clamped to
    /// [`MIN_BITRATE_BPS`]..=[`MAX_BITRATE_BPS`]; SPS/PPS do not change.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), Error> {
        let bps = bps.clamp(MIN_BITRATE_BPS, MAX_BITRATE_BPS);
        if bps == self.bitrate_bps {
            return Ok(());
        }
        // openh264 rejects a target above the max, so order the two updates.
        if bps > self.bitrate_bps {
            self.set_option_bitrate(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, bps)?;
            self.set_option_bitrate(ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, bps)?;
        } else {
            self.set_option_bitrate(ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, bps)?;
            self.set_option_bitrate(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, bps)?;
        }
        self.bitrate_bps = bps;
        Ok(())
    }

    fn set_option_bitrate(&mut self, option: c_int, layer: c_int, bps: u32) -> Result<(), Error> {
        let mut info = SBitrateInfo {
            layer,
            bitrate: c_int::try_from(bps).unwrap_or(c_int::MAX),
        };
        // SAFETY: FFI edge. The encoder is initialised (new() encoded a frame).
        // Both options take a pointer to an `SBitrateInfo`, which our
        // `#[repr(C)]` mirror matches (two C ints); openh264 only reads it
        // during the call, and `info` outlives the call. We set no parameter
        // the Rust wrapper relies on (it caches nothing about bitrates).
        let rc = unsafe {
            self.inner
                .raw_api()
                .set_option(option, std::ptr::addr_of_mut!(info).cast::<c_void>())
        };
        if rc != 0 {
            return Err(Error::Encoder {
                codec: CODEC,
                reason: format!("SetOption({option}) for {bps} bit/s failed: {rc}"),
            });
        }
        Ok(())
    }
}

fn enc_err(e: openh264::Error) -> Error {
    Error::Encoder {
        codec: CODEC,
        reason: e.to_string(),
    }
}

/// Removes an Annex B start code (`00 00 01` or `00 00 00 01`) if present.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    if let Some(rest) = nal.strip_prefix(&[0, 0, 0, 1]) {
        rest
    } else if let Some(rest) = nal.strip_prefix(&[0, 0, 1]) {
        rest
    } else {
        nal
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
/// `frames` until the channel disconnects, applies `control` before each
/// frame, pushes packets to `sink`, counts `video_packets_encoded`. An
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
            while let Ok(captured) = frames.recv() {
                control.apply(&mut enc);
                match enc.encode(&captured.frame, captured.pts_ns) {
                    Ok(Some(packet)) => {
                        bump(&counters.video_packets_encoded);
                        sink.push(packet);
                    }
                    Ok(None) => bump(&counters.video_frames_skipped),
                    Err(e) => {
                        tracing::warn!(index = captured.index, error = %e, "video frame not encoded");
                        bump(&counters.video_frames_skipped);
                    }
                }
            }
            tracing::debug!("video encoder thread: input closed, exiting");
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::source::{
        decode_frame_index, decode_frame_index_strided, TestPattern, VideoSource,
    };
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;

    fn cfg(width: u32, height: u32, bitrate_bps: u32) -> VideoEncoderConfig {
        VideoEncoderConfig {
            width,
            height,
            fps: 30,
            bitrate_bps,
            keyint_secs: 1.0,
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
    fn sps_pps(params: &VideoParams) -> (Bytes, Bytes) {
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
            if enc.encode(&f, i * 33_333_333).unwrap().unwrap().keyframe {
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
        let mut dec = openh264::decoder::Decoder::new().unwrap();
        let mut decoded = Vec::new();
        for i in 0..40u64 {
            let f = pat.render(i + 1000);
            let pkt = enc.encode(&f, i * 33_333_333).unwrap().unwrap();
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
                let pkt = enc.encode(&f, i * 33_333_333).unwrap().unwrap();
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
        let mut dec = openh264::decoder::Decoder::new().unwrap();
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
