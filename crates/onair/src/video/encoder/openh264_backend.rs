//! The openh264 backend: the default build's H.264 encoder, and the
//! self-contained choice in the GPL build (`--video-encoder openh264`).
//!
//! Why it looks like this:
//! - SPS/PPS are known right after `new()` (one black frame is encoded inside
//!   it), because outputs build their AVC sequence header before the first
//!   packet and again on every reconnect. They are stripped from packets: they
//!   travel only in that header, and `ConstantId` keeps them identical for the
//!   whole life of the encoder (a bitrate change never alters them).
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
//!   is always false.

use super::nal::{
    strip_start_code, H264_IDR as NAL_IDR, H264_PPS as NAL_PPS, H264_SLICE as NAL_SLICE,
    H264_SPS as NAL_SPS,
};
use super::{VideoEncoderConfig, CODEC_H264 as CODEC, MAX_BITRATE_BPS, MIN_BITRATE_BPS};
use crate::packet::{EncodedPacket, MediaKind, VideoParams};
use crate::video::frame::I420Frame;
use crate::Error;
use bytes::Bytes;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level,
    Profile, RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};
use std::os::raw::{c_int, c_void};

/// Encoder threads: one slice per frame keeps openh264 single-threaded anyway,
/// and the other core belongs to capture, audio and the network.
const ENCODER_THREADS: u16 = 1;
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

/// The lowest H.264 level whose frame-size and macroblock-rate limits hold
/// this size and rate (4.2 at least: it also caps the bitrate at 50 Mbit/s,
/// which is what lets bitrate changes leave the SPS untouched).
fn level(cfg: &VideoEncoderConfig) -> Level {
    let mbs = u64::from(cfg.width.div_ceil(16)) * u64::from(cfg.height.div_ceil(16));
    let mbps = mbs * u64::from(cfg.fps);
    if mbs <= 8_704 && mbps <= 522_240 {
        Level::Level_4_2
    } else if mbs <= 36_864 && mbps <= 983_040 {
        Level::Level_5_1
    } else {
        Level::Level_5_2
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
pub(super) struct OpenH264Encoder {
    inner: Encoder,
    params: VideoParams,
    /// The SPS and PPS in `params.config`, kept to spot a change mid-stream.
    sps: Bytes,
    pps: Bytes,
    bitrate_bps: u32,
    /// Size of the last access unit: capacity hint for the next one.
    last_size: usize,
    param_set_changes: u64,
}

impl OpenH264Encoder {
    /// Creates the encoder and encodes one black frame to learn SPS/PPS, so
    /// [`params`](Self::params) is complete at once. The next encoded frame is
    /// an IDR.
    pub(super) fn new(cfg: &VideoEncoderConfig) -> Result<Self, Error> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(cfg.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(cfg.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .profile(Profile::Baseline)
            .level(level(cfg))
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
    pub(super) fn params(&self) -> &VideoParams {
        &self.params
    }

    /// How many times the encoder emitted an SPS/PPS differing from
    /// [`params`](Self::params). Always 0 by design (`ConstantId`, level
    /// fixed); nonzero would mean outputs' sequence headers are stale.
    pub(super) fn param_set_changes(&self) -> u64 {
        self.param_set_changes
    }

    /// The bitrate currently asked of the rate control, bit/s.
    pub(super) fn bitrate_bps(&self) -> u32 {
        self.bitrate_bps
    }

    /// Encodes one frame stamped `pts_ns`. Returns the access unit as AVCC
    /// (4-byte big-endian length before each NAL unit, SPS/PPS removed), or
    /// `None` if the encoder produced no picture for it (not expected: frame
    /// skipping is off). The frame must have the configured size.
    pub(super) fn encode(
        &mut self,
        frame: &I420Frame,
        pts_ns: u64,
    ) -> Result<Option<EncodedPacket>, Error> {
        if frame.width != self.params.width || frame.height != self.params.height {
            return Err(Error::Encoder {
                codec: CODEC,
                reason: format!(
                    "frame is {}x{}, encoder is {}x{}",
                    frame.width, frame.height, self.params.width, self.params.height
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
    pub(super) fn force_idr(&mut self) {
        self.inner.force_intra_frame();
    }

    /// Changes the target bitrate from the next frame on. Clamped to
    /// [`MIN_BITRATE_BPS`]..=[`MAX_BITRATE_BPS`]; SPS/PPS do not change.
    pub(super) fn set_bitrate(&mut self, bps: u32) -> Result<(), Error> {
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
