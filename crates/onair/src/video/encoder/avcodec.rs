//! The GPL build's video encoders through libavcodec: libx264, libx265,
//! libsvtav1 and the hardware ones (NVENC takes system-memory frames as they
//! are; VA-API needs a device and is probed, see `onair encoders`).
//!
//! Why it looks like this:
//! - The VideoEncoder contract holds for every encoder here: bytes only, IDR
//!   on request (`pict_type = I` with `forced-idr`), bitrate changed while
//!   running. libx264 and NVENC re-read `bit_rate`/`rc_max_rate`/
//!   `rc_buffer_size` before each frame (FFmpeg's `reconfig_encoder`);
//!   libx265 and libsvtav1 cannot change their rate control while open in
//!   FFmpeg 5.1, so for them a change drains the encoder and opens a new one
//!   (an IDR; its parameter sets are compared with the announced ones).
//! - GOPs are closed: every keyframe is an IDR (HEVC: IDR, not CRA), which a
//!   viewer or a reconnect can start from.
//! - Rate control is OBS's "CBR" for x264: ABR at the target with a VBV of
//!   one second at the same rate (`maxrate = bufsize = bitrate`); no NAL HRD,
//!   so a bitrate change never alters the SPS.
//! - Encoders hold frames (look-ahead, B-frames, frame threads): one frame in
//!   gives zero or more packets out, and [`AvEncoder::flush`] drains them at
//!   the end. With B-frames the decode order differs from the presentation
//!   order and the first frames' dts lie before their pts; the whole stream
//!   timeline is shifted by [`AvEncoder::timeline_offset_ns`] (the reorder
//!   delay, e.g. two frames for x264's B-pyramid) so no dts is negative: the
//!   pipeline shifts audio by the same amount, as FFmpeg's muxers do
//!   (`avoid_negative_ts make_non_negative`).
//! - Time base is one frame (`1/fps`): frame k of the capture clock is pts k.
//!   The packet's pts maps back to the exact capture time it was given with.
//! - Packets leave as FLV/MP4 want them: H.264/HEVC length-prefixed, without
//!   the parameter sets (they travel in the sequence header) unless the
//!   encoder was replaced (bitrate reopen, hardware fallback) with different
//!   ones, in which case each keyframe carries its own in-band.
//! - Pictures go in by reference where the encoder copies them anyway
//!   (libx264, libx265, SVT-AV1), else copied: see `av_picture.rs`.
//! - `disposable` is what the bitstream says: every slice with
//!   `nal_ref_idc == 0` (H.264) or of a sub-layer non-reference type (HEVC,
//!   one temporal layer), so the muxer drops non-reference B-frames first.

use super::av_picture::{borrow_planes, copy_planes, takes_pictures_by_reference};
use super::nal::{self, H264_AUD, H264_PPS, H264_SPS, HEVC_AUD, HEVC_PPS, HEVC_SPS, HEVC_VPS};
use super::{codec_label, EncoderKind, VideoEncoderConfig, MAX_BITRATE_BPS, MIN_BITRATE_BPS};
use crate::avcodec::{self as av, describe};
use crate::clock::Rate;
use crate::codec_config;
use crate::packet::{EncodedPacket, MediaKind, VideoCodec, VideoParams};
use crate::video::frame::I420Frame;
use crate::Error;
use bytes::Bytes;
use ff::format::Pixel;
use ff::packet::Ref as _;
use ffmpeg_next as ff;
use std::collections::VecDeque;
use std::sync::Arc;

/// Seconds of media the VBV buffer holds: one, as OBS's x264 CBR.
const VBV_SECONDS: u32 = 1;
/// Reorder delay assumed for an encoder that reports none but was asked for
/// B-frames (a B-pyramid's two frames), so that no dts can be negative.
const ASSUMED_B_DELAY_FRAMES: i64 = 2;

fn err(codec: VideoCodec, what: &str, e: ff::Error) -> Error {
    Error::Encoder {
        codec: codec_label(codec),
        reason: describe(what, e),
    }
}

/// AV1's temporal delimiter OBU type: not carried in MP4 or E-RTMP samples.
const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// First byte of an `av1C` record (marker 1, version 1).
const AV1C_MARKER: u8 = 0x81;
/// libavcodec's `AV_PKT_FLAG_DISPOSABLE`.
const PKT_FLAG_DISPOSABLE: i32 = 0x0010;

/// Parameter sets (or the AV1 sequence header) from `extradata`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct GlobalHeaders {
    /// H.264: SPS, PPS. HEVC: VPS, SPS, PPS. Without start codes. AV1: the
    /// sequence header OBU.
    pub(super) nals: Vec<Bytes>,
}

impl GlobalHeaders {
    fn parse(codec: VideoCodec, extradata: &[u8]) -> Self {
        let keep = |t: u8| match codec {
            VideoCodec::H264 => t == H264_SPS || t == H264_PPS,
            VideoCodec::Hevc => matches!(t, HEVC_VPS | HEVC_SPS | HEVC_PPS),
            VideoCodec::Av1 => false,
        };
        let nals = match codec {
            // An av1C already: its configOBUs hold the sequence header.
            VideoCodec::Av1 if extradata.first() == Some(&AV1C_MARKER) => {
                vec![Bytes::copy_from_slice(extradata.get(4..).unwrap_or(&[]))]
            }
            VideoCodec::Av1 if extradata.is_empty() => Vec::new(),
            VideoCodec::Av1 => vec![Bytes::copy_from_slice(extradata)],
            VideoCodec::H264 => nal::split_annexb(extradata)
                .into_iter()
                .filter(|n| keep(nal::h264_type(n)))
                .map(Bytes::copy_from_slice)
                .collect(),
            VideoCodec::Hevc => nal::split_annexb(extradata)
                .into_iter()
                .filter(|n| keep(nal::hevc_type(n)))
                .map(Bytes::copy_from_slice)
                .collect(),
        };
        Self { nals }
    }

    fn find(&self, codec: VideoCodec, t: u8) -> Option<Bytes> {
        self.nals
            .iter()
            .find(|n| match codec {
                VideoCodec::H264 => nal::h264_type(n) == t,
                _ => nal::hevc_type(n) == t,
            })
            .cloned()
    }
}

/// One opened libavcodec video encoder.
pub(super) struct AvEncoder {
    kind: EncoderKind,
    cfg: VideoEncoderConfig,
    enc: ff::encoder::Video,
    frame: ff::frame::Video,
    packet: ff::Packet,
    rate: Rate,
    headers: GlobalHeaders,
    bitrate_bps: u32,
    force_idr: bool,
    /// The encoder's reorder delay in frames (the timeline offset).
    delay_frames: i64,
    /// Capture times of the frames inside the encoder, by pts (1/fps).
    in_flight: VecDeque<(i64, u64)>,
    last_pts_tb: Option<i64>,
    last_dts_ns: Option<u64>,
    /// `flush` ran (the encoder got its end of stream).
    flushed: bool,
    /// Keyframes carry their parameter sets in-band (set by the wrapper when
    /// this encoder's differ from the announced ones).
    pub(super) inband_headers: bool,
    negative_dts: u64,
    /// Frames handed to libavcodec by reference (not copied); for tests.
    by_reference: u64,
}

impl AvEncoder {
    /// Opens `kind` for `cfg` (validated by the caller). `offset_frames`
    /// forces the timeline offset (a replacement encoder keeps its
    /// predecessor's); `None` takes this encoder's own reorder delay.
    pub(super) fn open(
        kind: EncoderKind,
        cfg: &VideoEncoderConfig,
        offset_frames: Option<i64>,
    ) -> Result<Self, Error> {
        av::init();
        let codec = kind.codec();
        let name = kind.ffmpeg_name().ok_or_else(|| Error::Encoder {
            codec: codec_label(codec),
            reason: format!("{kind} is not a libavcodec encoder"),
        })?;
        let found = ff::encoder::find_by_name(name).ok_or_else(|| Error::Encoder {
            codec: codec_label(codec),
            reason: format!("this libavcodec has no '{name}' encoder"),
        })?;
        if kind.hardware() == Some(super::Hardware::Vaapi) {
            super::vaapi_device_check()?;
        }
        let fps = i32::try_from(cfg.fps).unwrap_or(i32::MAX);
        let mut ctx = ff::codec::Context::new_with_codec(found)
            .encoder()
            .video()
            .map_err(|e| err(codec, "creating the encoder", e))?;
        ctx.set_width(cfg.width);
        ctx.set_height(cfg.height);
        ctx.set_format(Pixel::YUV420P);
        ctx.set_time_base((1, fps));
        ctx.set_frame_rate(Some((fps, 1)));
        ctx.set_gop(cfg.keyint_frames());
        if let Some(n) = cfg.encoder.bframes {
            ctx.set_max_b_frames(n as usize);
        }
        // Closed GOPs: every keyframe an IDR that nothing before it is needed
        // for, so a viewer, a reconnect or the keyframe gate can start there
        // (FFmpeg's libx264 and libx265 leave GOPs open unless told).
        ctx.set_flags(ff::codec::Flags::GLOBAL_HEADER | ff::codec::Flags::CLOSED_GOP);
        // Threads as the FFmpeg CLI and OBS leave them: the encoder's own
        // choice (x264: 1.5 per core, frame-parallel).
        // SAFETY: FFI edge: a plain int field of the context, before open.
        unsafe {
            (*ctx.as_mut_ptr()).thread_count = 0;
        }
        set_rate_control(&mut ctx, kind, cfg.bitrate_bps);
        let mut opts = ff::Dictionary::new();
        let preset = cfg
            .encoder
            .preset
            .clone()
            .or_else(|| kind.default_preset().map(str::to_owned));
        if let Some(p) = &preset {
            opts.set("preset", p);
        }
        if let Some(p) = &cfg.encoder.profile {
            opts.set("profile", p);
        }
        match kind {
            EncoderKind::X264 => opts.set("forced-idr", "1"),
            EncoderKind::X265 => {
                opts.set("forced-idr", "1");
                // x265 prints its banner through its own logger, not FFmpeg's.
                opts.set("x265-params", "log-level=error");
            }
            EncoderKind::H264Nvenc | EncoderKind::HevcNvenc => opts.set("forced-idr", "1"),
            _ => {}
        }
        // The user's own options last (`--encoder-opt`), each checked to be an
        // option of this encoder or of libavcodec's generic ones: libavcodec
        // silently ignores a key nobody takes.
        for (key, value) in &cfg.encoder.options {
            if !has_option(&mut ctx, key) {
                return Err(Error::InvalidConfig {
                    option: "encoder-opt",
                    reason: format!(
                        "{name} has no option '{key}' (see `ffmpeg -h encoder={name}`)"
                    ),
                });
            }
            opts.set(key, value);
        }
        // SVT-AV1 run by root makes threads real-time while opening: undone.
        let enc = super::sched::keep_normal_scheduling(|| ctx.open_as_with(found, opts))
            .map_err(|e| err(codec, &format!("opening {name}"), e))?;
        let headers = GlobalHeaders::parse(codec, &av::extradata(&enc));
        if headers.nals.is_empty() {
            return Err(Error::Encoder {
                codec: codec_label(codec),
                reason: format!("{name} gave no global headers (parameter sets)"),
            });
        }
        // SAFETY: FFI edge: reads plain int fields of the live, opened context.
        let (has_b, max_b) = unsafe {
            let p = enc.as_ptr();
            ((*p).has_b_frames, (*p).max_b_frames)
        };
        let own_delay = match i64::from(has_b) {
            0 if max_b > 0 => ASSUMED_B_DELAY_FRAMES,
            d => d,
        };
        Ok(Self {
            kind,
            cfg: cfg.clone(),
            enc,
            frame: ff::frame::Video::new(Pixel::YUV420P, cfg.width, cfg.height),
            packet: ff::Packet::empty(),
            rate: Rate::per_second(cfg.fps),
            headers,
            bitrate_bps: cfg.bitrate_bps,
            force_idr: true,
            delay_frames: offset_frames.unwrap_or(own_delay).max(own_delay),
            in_flight: VecDeque::new(),
            last_pts_tb: None,
            last_dts_ns: None,
            flushed: false,
            inband_headers: false,
            negative_dts: 0,
            by_reference: 0,
        })
    }

    pub(super) fn kind(&self) -> EncoderKind {
        self.kind
    }

    pub(super) fn headers(&self) -> &GlobalHeaders {
        &self.headers
    }

    /// The parameters for the outputs' sequence header: the codec's
    /// decoder configuration record (avcC, hvcC, av1C) built from the
    /// encoder's global headers (`crate::codec_config`).
    pub(super) fn params(&self) -> Result<VideoParams, Error> {
        let codec = self.kind.codec();
        let bad = |reason: String| Error::Encoder {
            codec: codec_label(codec),
            reason,
        };
        let config = match codec {
            VideoCodec::H264 => {
                let sps = self.headers.find(codec, H264_SPS);
                let pps = self.headers.find(codec, H264_PPS);
                match (sps, pps) {
                    (Some(sps), Some(pps)) => codec_config::avc_config(&sps, &pps),
                    _ => return Err(bad("no SPS/PPS in the encoder's global headers".into())),
                }
            }
            VideoCodec::Hevc => {
                let units: Vec<&[u8]> = self.headers.nals.iter().map(|n| &n[..]).collect();
                codec_config::hevc_config(&units).map_err(|e| bad(format!("hvcC: {e}")))?
            }
            VideoCodec::Av1 => {
                let seq = self.headers.nals.first().map_or(&[][..], |n| &n[..]);
                codec_config::av1_config(seq).map_err(|e| bad(format!("av1C: {e}")))?
            }
        };
        Ok(VideoParams {
            codec,
            width: self.cfg.width,
            height: self.cfg.height,
            fps: self.cfg.fps,
            bitrate_bps: self.cfg.bitrate_bps,
            config,
        })
    }

    /// Frames of reorder delay the timeline is shifted by.
    pub(super) fn delay_frames(&self) -> i64 {
        self.delay_frames
    }

    /// How much every timestamp is shifted (see the module doc).
    pub(super) fn timeline_offset_ns(&self) -> u64 {
        self.rate.time_of(self.delay_frames.max(0) as u64)
    }

    pub(super) fn bitrate_bps(&self) -> u32 {
        self.bitrate_bps
    }

    pub(super) fn config(&self) -> &VideoEncoderConfig {
        &self.cfg
    }

    pub(super) fn force_idr(&mut self) {
        self.force_idr = true;
    }

    /// True if this encoder changes its rate control while open (the
    /// others are reopened by the wrapper).
    pub(super) fn reconfigures_live(&self) -> bool {
        matches!(
            self.kind,
            EncoderKind::X264 | EncoderKind::H264Nvenc | EncoderKind::HevcNvenc
        )
    }

    /// Sets the target for the next frame (live-reconfiguring encoders only).
    pub(super) fn set_bitrate(&mut self, bps: u32) {
        let bps = bps.clamp(MIN_BITRATE_BPS, MAX_BITRATE_BPS);
        set_rate_control(&mut self.enc, self.kind, bps);
        self.bitrate_bps = bps;
        self.cfg.bitrate_bps = bps;
    }

    /// Dts that came out negative even after the offset (clamped; 0 expected).
    pub(super) fn negative_dts(&self) -> u64 {
        self.negative_dts
    }

    /// Frames handed to libavcodec by reference so far.
    pub(super) fn frames_by_reference(&self) -> u64 {
        self.by_reference
    }

    /// Encodes one frame stamped `pts_ns`; returns the packets that came out.
    /// With `shared` (the same picture, in its `Arc`), the encoder may borrow
    /// its planes instead of copying them (see the module doc).
    pub(super) fn encode(
        &mut self,
        frame: &I420Frame,
        shared: Option<&Arc<I420Frame>>,
        pts_ns: u64,
    ) -> Result<Vec<EncodedPacket>, Error> {
        let codec = self.kind.codec();
        // The nearest frame slot (capture times are exact slots).
        let slot = self
            .rate
            .expected_frames(pts_ns.saturating_add(self.rate.interval_ns() / 2));
        let mut pts_tb = i64::try_from(slot).unwrap_or(i64::MAX);
        // Strictly increasing whatever the caller did.
        if let Some(last) = self.last_pts_tb {
            pts_tb = pts_tb.max(last + 1);
        }
        self.last_pts_tb = Some(pts_tb);
        let mut borrowed = match shared {
            Some(picture) if takes_pictures_by_reference(self.kind) => borrow_planes(picture),
            _ => None,
        };
        let input = match borrowed.as_mut() {
            Some(f) => {
                self.by_reference += 1;
                f
            }
            None => {
                // SAFETY: FFI edge: the frame is ours; make_writable copies its
                // buffers only if the encoder still holds a reference to them.
                let rc = unsafe { ff::ffi::av_frame_make_writable(self.frame.as_mut_ptr()) };
                if rc < 0 {
                    return Err(err(codec, "preparing a frame", ff::Error::from(rc)));
                }
                copy_planes(frame, &mut self.frame);
                &mut self.frame
            }
        };
        input.set_pts(Some(pts_tb));
        input.set_kind(if std::mem::take(&mut self.force_idr) {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        self.in_flight.push_back((pts_tb, pts_ns));
        self.enc
            .send_frame(input)
            .map_err(|e| err(codec, "encoding", e))?;
        // `borrowed` drops here: libavcodec holds its own references (if any)
        // to the planes, each keeping the picture alive.
        drop(borrowed);
        self.drain()
    }

    /// Drains what the encoder still holds (end of stream). The encoder
    /// takes no more frames afterwards.
    pub(super) fn flush(&mut self) -> Result<Vec<EncodedPacket>, Error> {
        if self.last_pts_tb.is_none() {
            // Nothing went in, nothing comes out; no end of stream either:
            // SVT-AV1 never answers one that follows no frame (`Drop`).
            return Ok(Vec::new());
        }
        let codec = self.kind.codec();
        self.flushed = true;
        self.enc.send_eof().map_err(|e| err(codec, "flushing", e))?;
        self.drain()
    }

    fn drain(&mut self) -> Result<Vec<EncodedPacket>, Error> {
        let codec = self.kind.codec();
        let mut out = Vec::new();
        loop {
            match self.enc.receive_packet(&mut self.packet) {
                Ok(()) => out.push(self.convert()?),
                Err(ff::Error::Eof) => break,
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => break,
                Err(e) => return Err(err(codec, "encoding", e)),
            }
        }
        Ok(out)
    }

    fn convert(&mut self) -> Result<EncodedPacket, Error> {
        let codec = self.kind.codec();
        let offset = self.timeline_offset_ns();
        let pts_tb = self.packet.pts().unwrap_or(0);
        // The capture time given with this frame (frames leave in decode
        // order, so look it up rather than pop the front).
        let pts_ns = match self.in_flight.iter().position(|&(p, _)| p == pts_tb) {
            Some(i) => self.in_flight.remove(i).map_or(0, |(_, ns)| ns),
            None => self.rate.time_of(pts_tb.max(0) as u64),
        } + offset;
        let dts_tb = self.packet.dts().unwrap_or(pts_tb) + self.delay_frames;
        if dts_tb < 0 {
            self.negative_dts += 1;
        }
        let mut dts_ns = self.rate.time_of(dts_tb.max(0) as u64).min(pts_ns);
        // Monotonic across encoder replacements (bitrate reopen, fallback).
        if let Some(last) = self.last_dts_ns {
            dts_ns = dts_ns.max(last + 1).min(pts_ns.max(last + 1));
        }
        self.last_dts_ns = Some(dts_ns);
        let keyframe = self.packet.is_key();
        // SAFETY: FFI edge: reads the flags int of the packet we own.
        let flags = unsafe { (*self.packet.as_ptr()).flags };
        let raw = self.packet.data().unwrap_or(&[]);
        let (data, disposable) = match codec {
            VideoCodec::Av1 => (
                self.av1_sample(raw, keyframe),
                flags & PKT_FLAG_DISPOSABLE != 0,
            ),
            _ => self.length_prefixed(raw, keyframe)?,
        };
        Ok(EncodedPacket {
            kind: MediaKind::Video,
            pts_ns,
            dts_ns,
            keyframe,
            disposable,
            data,
        })
    }

    /// A temporal unit as MP4 and E-RTMP carry it: its OBUs without the
    /// temporal delimiter (libavcodec writes size fields); the sequence
    /// header in front on keyframes when [`Self::inband_headers`].
    fn av1_sample(&self, raw: &[u8], keyframe: bool) -> Bytes {
        let mut out = Vec::with_capacity(raw.len() + 32);
        if keyframe && self.inband_headers {
            if let Some(seq) = self.headers.nals.first() {
                out.extend_from_slice(seq);
            }
        }
        let mut rest = raw;
        while let Some((obu_type, len)) = obu_span(rest) {
            if obu_type != OBU_TEMPORAL_DELIMITER {
                out.extend_from_slice(&rest[..len]);
            }
            rest = &rest[len..];
        }
        // Anything not parseable (no size field) is kept as it came.
        out.extend_from_slice(rest);
        Bytes::from(out)
    }

    /// Annex B to length-prefixed, parameter sets and AUDs removed (put
    /// back in-band on keyframes when [`Self::inband_headers`]). Returns the
    /// data and whether every slice is a non-reference one.
    fn length_prefixed(&self, raw: &[u8], keyframe: bool) -> Result<(Bytes, bool), Error> {
        let codec = self.kind.codec();
        let too_big = || Error::Encoder {
            codec: codec_label(codec),
            reason: "NAL unit larger than 4 GiB".into(),
        };
        let mut out = Vec::with_capacity(raw.len() + 64);
        if keyframe && self.inband_headers {
            for ps in &self.headers.nals {
                nal::push_length_prefixed(&mut out, ps).ok_or_else(too_big)?;
            }
        }
        let mut slices = 0usize;
        let mut referenced = false;
        for unit in nal::split_annexb(raw) {
            match codec {
                VideoCodec::H264 => {
                    let t = nal::h264_type(unit);
                    if matches!(t, H264_SPS | H264_PPS | H264_AUD) {
                        continue;
                    }
                    if (1..=5).contains(&t) {
                        slices += 1;
                        referenced |= unit[0] & 0x60 != 0;
                    }
                }
                _ => {
                    let t = nal::hevc_type(unit);
                    if matches!(t, HEVC_VPS | HEVC_SPS | HEVC_PPS | HEVC_AUD) {
                        continue;
                    }
                    if t <= 31 {
                        slices += 1;
                        // Sub-layer non-reference: the even types below 16.
                        referenced |= !(t < 16 && t.is_multiple_of(2));
                    }
                }
            }
            nal::push_length_prefixed(&mut out, unit).ok_or_else(too_big)?;
        }
        Ok((Bytes::from(out), slices > 0 && !referenced))
    }
}

impl Drop for AvEncoder {
    /// Ends the stream before libavcodec frees the encoder: SVT-AV1 (1.4,
    /// through FFmpeg 5.1) waits forever in its deinit for an end of stream
    /// it never got, and, given an end of stream before any frame, waits
    /// forever for its answer (`svt_av1_enc_get_packet`): an encoder opened
    /// and dropped unused (a later part of the pipeline failed to start)
    /// hung the process. So one black frame goes in first when none did.
    /// What comes out is discarded.
    fn drop(&mut self) {
        if self.flushed {
            return;
        }
        if self.last_pts_tb.is_none() {
            copy_planes(
                &I420Frame::black(self.cfg.width, self.cfg.height),
                &mut self.frame,
            );
            self.frame.set_pts(Some(0));
            if self.enc.send_frame(&self.frame).is_err() {
                return;
            }
        }
        if self.enc.send_eof().is_ok() {
            while self.enc.receive_packet(&mut self.packet).is_ok() {}
        }
    }
}

/// Type and total length (header, size field, payload) of the OBU at the
/// start of `data`, if it has a size field and fits.
fn obu_span(data: &[u8]) -> Option<(u8, usize)> {
    let header = *data.first()?;
    let obu_type = (header >> 3) & 0x0f;
    let has_extension = header & 0x04 != 0;
    let has_size = header & 0x02 != 0;
    if !has_size {
        return None;
    }
    let mut pos = 1 + usize::from(has_extension);
    let mut size: u64 = 0;
    for i in 0..8 {
        let b = *data.get(pos)?;
        pos += 1;
        size |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    let end = pos.checked_add(usize::try_from(size).ok()?)?;
    (end <= data.len()).then_some((obu_type, end))
}

/// True if `key` is an AVOption of the encoder (its private options) or of
/// every codec context.
fn has_option(ctx: &mut ff::encoder::video::Video, key: &str) -> bool {
    let Ok(ckey) = std::ffi::CString::new(key) else {
        return false;
    };
    // SAFETY: FFI edge: the context is live (allocated with its codec, so its
    // private options are searchable as a child); av_opt_find only reads the
    // class tables; the key is a NUL-terminated string that outlives the call.
    let found = unsafe {
        ff::ffi::av_opt_find(
            ctx.as_mut_ptr().cast(),
            ckey.as_ptr(),
            std::ptr::null(),
            0,
            ff::ffi::AV_OPT_SEARCH_CHILDREN,
        )
    };
    !found.is_null()
}

/// Bitrate, VBV and (SVT-AV1) rate-control mode into the codec context.
fn set_rate_control(ctx: &mut ff::codec::Context, kind: EncoderKind, bps: u32) {
    let bps = i64::from(bps);
    // SAFETY: FFI edge: plain integer fields of a live AVCodecContext that
    // only this thread uses; libavcodec reads them at open and (x264,
    // NVENC) before each frame.
    unsafe {
        let p = ctx.as_mut_ptr();
        (*p).bit_rate = bps;
        if kind == EncoderKind::SvtAv1 {
            // SVT-AV1's CBR needs its low-delay structure; VBR at the target.
            (*p).rc_max_rate = 0;
        } else {
            (*p).rc_max_rate = bps;
            (*p).rc_buffer_size = i32::try_from(bps * i64::from(VBV_SECONDS)).unwrap_or(i32::MAX);
        }
    }
}
