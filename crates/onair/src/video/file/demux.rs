//! The demuxer thread of one file ([`super::DEMUX_THREAD_NAME`]): reads
//! packets, decodes the streams the pipeline wants, converts pictures to
//! I420 at the pipeline's size (swscale) and sound to interleaved f32 at the
//! engine's rate and channels (swresample), stamps both with media time on
//! the pipeline's timeline, and hands them over. Owns every FFmpeg object;
//! nothing here is shared but [`super::Shared`] and the audio ring.
//!
//! Policies: decode ahead by [`super::VIDEO_AHEAD_FRAMES`] /
//! [`super::AUDIO_AHEAD_MS`] then wait; a gap in the audio longer than
//! [`AUDIO_GAP_MS`] is filled with silence (so audio keeps its place against
//! the pictures); [`MAX_DECODE_ERRORS_IN_A_ROW`] packets that fail to decode
//! in a row make the file fail (a few corrupt packets are skipped, as FFmpeg
//! does).

use super::{
    lock, FileWants, Shared, TimedPicture, AHEAD_SLEEP, AUDIO_AHEAD_MS, IDLE_POLL,
    VIDEO_AHEAD_FRAMES, VIDEO_POOL_FRAMES,
};
use crate::video::frame::FramePool;
use crossbeam_channel::Sender;
use ff::format::{Pixel, Sample};
use ff::software::{resampling, scaling};
use ff::{codec, frame, media, Packet, Rational};
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

mod convert;

/// A jump forward in audio timestamps beyond this is filled with silence;
/// smaller ones are rounding and codec framing, ignored.
pub const AUDIO_GAP_MS: u64 = 40;
/// This many packets in a row that do not decode make the file fail.
pub const MAX_DECODE_ERRORS_IN_A_ROW: u32 = 25;
/// A pass that ends more than this (plus [`TRUNCATION_SLACK_SHARE`] of the
/// declared length) before the length the file's header declares is a file
/// cut short: it fails instead of ending or looping on what is left.
pub const TRUNCATION_SLACK_S: f64 = 0.25;
/// See [`TRUNCATION_SLACK_S`].
pub const TRUNCATION_SLACK_SHARE: f64 = 0.02;
/// Picture duration assumed when the file gives no frame rate.
const FALLBACK_FRAME_NS: u64 = 1_000_000_000 / 30;
const NS_PER_S: i128 = 1_000_000_000;

/// What the opener hands the thread.
pub(super) struct Job {
    pub path: PathBuf,
    pub looping: bool,
    pub wants: FileWants,
    pub shared: Arc<Shared>,
    pub audio_out: Option<rtrb::Producer<f32>>,
    /// Ok(description of the streams) once open, or Err(why not).
    pub opened: Sender<Result<String, String>>,
}

/// The thread's body.
pub(super) fn run(job: Job) {
    let Job {
        path,
        looping,
        wants,
        shared,
        audio_out,
        opened,
    } = job;
    let mut demuxer = match Demuxer::open(&path, wants, audio_out) {
        Ok(d) => d,
        Err(reason) => {
            let _ = opened.send(Err(reason));
            return;
        }
    };
    let _ = opened.send(Ok(demuxer.describe()));
    if let Err(what) = demuxer.play(looping, &shared) {
        shared.fail(format!("{}: {what}", shared.name));
    }
    tracing::debug!(file = %shared.name, "demuxer thread stopped");
}

/// Everything the thread owns.
struct Demuxer {
    input: ff::format::context::Input,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// Media time 0 of the file (the earliest start of the wanted streams),
    /// in ns of the file's own clock.
    origin_ns: i64,
    /// Where the current pass starts on the pipeline's timeline, ns.
    pass_start_ns: u64,
    /// Seconds of the file, for messages.
    duration_s: f64,
}

struct VideoTrack {
    index: usize,
    time_base: Rational,
    decoder: ff::decoder::Video,
    /// The scaler and the input (format, width, height) it was made for:
    /// remade when a stream changes size or format mid-way.
    scaler: Option<(scaling::Context, (Pixel, u32, u32))>,
    out: (u32, u32),
    decoded: frame::Video,
    scaled: frame::Video,
    /// The pictures handed out, reused once the engines let go of them.
    pool: FramePool,
    /// Nominal picture duration (the stream's average frame rate).
    frame_ns: u64,
    /// Pipeline time of the last picture queued in this pass.
    last_at_ns: Option<u64>,
    errors_in_a_row: u32,
    codec: String,
}

struct AudioTrack {
    index: usize,
    time_base: Rational,
    decoder: ff::decoder::Audio,
    resampler: Option<(resampling::Context, (Sample, u64, u32))>,
    out_rate: u32,
    out_channels: u32,
    ring: rtrb::Producer<f32>,
    /// Sample frames written to the ring since the start (all passes).
    written: u64,
    decoded: frame::Audio,
    converted: frame::Audio,
    /// Sample frames `converted` was allocated for.
    converted_capacity: usize,
    /// The converted samples as f32, reused.
    scratch: Vec<f32>,
    errors_in_a_row: u32,
    codec: String,
}

fn ts_to_ns(ts: i64, tb: Rational) -> i64 {
    let v = i128::from(ts) * i128::from(tb.numerator()) * NS_PER_S
        / i128::from(tb.denominator()).max(1);
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn frame_ns_of(rate: Rational) -> Option<u64> {
    (rate.numerator() > 0 && rate.denominator() > 0)
        .then(|| (i128::from(rate.denominator()) * NS_PER_S / i128::from(rate.numerator())) as u64)
}

impl Demuxer {
    fn open(
        path: &Path,
        wants: FileWants,
        audio_out: Option<rtrb::Producer<f32>>,
    ) -> Result<Demuxer, String> {
        if let Err(e) = std::fs::metadata(path) {
            return Err(format!("cannot open: {e}"));
        }
        let input =
            ff::format::input(&path).map_err(|e| format!("not a readable media file: {e}"))?;
        let mut origin_ns = i64::MAX;
        let video = match wants.video {
            None => None,
            Some(out) => {
                let stream = input
                    .streams()
                    .best(media::Type::Video)
                    .ok_or("has no video stream")?;
                let mut ctx = codec::context::Context::from_parameters(stream.parameters())
                    .map_err(|e| format!("video stream: {e}"))?;
                ctx.set_threading(codec::threading::Config {
                    kind: codec::threading::Type::Frame,
                    ..Default::default()
                });
                let codec = ctx.id();
                let mut decoder = ctx.decoder();
                decoder.set_packet_time_base(stream.time_base());
                let decoder = decoder
                    .video()
                    .map_err(|e| format!("no decoder for its video ({codec:?}): {e}"))?;
                let time_base = stream.time_base();
                if stream.start_time() != ff::ffi::AV_NOPTS_VALUE {
                    origin_ns = origin_ns.min(ts_to_ns(stream.start_time(), time_base));
                }
                Some(VideoTrack {
                    index: stream.index(),
                    time_base,
                    frame_ns: frame_ns_of(stream.avg_frame_rate())
                        .or_else(|| frame_ns_of(stream.rate()))
                        .unwrap_or(FALLBACK_FRAME_NS),
                    decoder,
                    scaler: None,
                    out,
                    decoded: frame::Video::empty(),
                    scaled: frame::Video::empty(),
                    pool: FramePool::new(out.0, out.1, VIDEO_POOL_FRAMES),
                    last_at_ns: None,
                    errors_in_a_row: 0,
                    codec: format!("{codec:?}").to_lowercase(),
                })
            }
        };
        let audio = match (wants.audio, audio_out) {
            (Some((out_rate, out_channels)), Some(ring)) => {
                let stream = input
                    .streams()
                    .best(media::Type::Audio)
                    .ok_or("has no audio stream")?;
                let ctx = codec::context::Context::from_parameters(stream.parameters())
                    .map_err(|e| format!("audio stream: {e}"))?;
                let codec = ctx.id();
                let mut decoder = ctx.decoder();
                decoder.set_packet_time_base(stream.time_base());
                let decoder = decoder
                    .audio()
                    .map_err(|e| format!("no decoder for its audio ({codec:?}): {e}"))?;
                let time_base = stream.time_base();
                if stream.start_time() != ff::ffi::AV_NOPTS_VALUE {
                    origin_ns = origin_ns.min(ts_to_ns(stream.start_time(), time_base));
                }
                Some(AudioTrack {
                    index: stream.index(),
                    time_base,
                    decoder,
                    resampler: None,
                    out_rate,
                    out_channels,
                    ring,
                    written: 0,
                    decoded: frame::Audio::empty(),
                    converted: frame::Audio::empty(),
                    converted_capacity: 0,
                    scratch: Vec::new(),
                    errors_in_a_row: 0,
                    codec: format!("{codec:?}").to_lowercase(),
                })
            }
            _ => None,
        };
        let duration_s = if input.duration() > 0 {
            input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
        } else {
            0.0
        };
        Ok(Demuxer {
            input,
            video,
            audio,
            origin_ns: if origin_ns == i64::MAX { 0 } else { origin_ns },
            pass_start_ns: 0,
            duration_s,
        })
    }

    /// One line about what is played, for the log.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.video {
            parts.push(format!(
                "video {} {}x{} {:?} at {:.3} fps -> {}x{}",
                v.codec,
                v.decoder.width(),
                v.decoder.height(),
                v.decoder.format(),
                1e9 / v.frame_ns as f64,
                v.out.0,
                v.out.1
            ));
        }
        if let Some(a) = &self.audio {
            parts.push(format!(
                "audio {} {} Hz {} ch -> {} Hz {} ch",
                a.codec,
                a.decoder.rate(),
                a.decoder.channels(),
                a.out_rate,
                a.out_channels
            ));
        }
        format!("{:.2} s; {}", self.duration_s, parts.join("; "))
    }

    /// Media time of `ts` (in `tb`) on the pipeline's timeline, ns.
    fn pipeline_ns(&self, ts: i64, tb: Rational) -> u64 {
        let rel = ts_to_ns(ts, tb).saturating_sub(self.origin_ns).max(0) as u64;
        self.pass_start_ns.saturating_add(rel)
    }

    /// True when the consumers are short of decoded media and there is room.
    fn wants_more(&self, shared: &Shared) -> bool {
        let (video_short, video_room) = if self.video.is_some() {
            let queued = lock(&shared.video).len();
            (queued < VIDEO_AHEAD_FRAMES, queued < shared.video_max)
        } else {
            (false, true)
        };
        let (audio_short, audio_room) = match &self.audio {
            None => (false, true),
            Some(a) => {
                let per_ms = (a.out_rate / 1000).max(1) as usize * a.out_channels as usize;
                let filled = a.ring.buffer().capacity() - a.ring.slots();
                (
                    filled < AUDIO_AHEAD_MS as usize * per_ms,
                    a.ring.slots() >= 100 * per_ms,
                )
            }
        };
        (video_short || audio_short) && video_room && audio_room
    }

    /// Plays the file (every pass of it with `looping`) until the end, a
    /// stop, or a failure (returned, without the file's name).
    fn play(&mut self, looping: bool, shared: &Shared) -> Result<(), String> {
        loop {
            if shared.stopped() {
                return Ok(());
            }
            if !self.wants_more(shared) {
                std::thread::sleep(AHEAD_SLEEP);
                continue;
            }
            // A fresh packet per read: `av_read_frame` fills the packet it is
            // given without unreferencing what it held, so a reused one leaked
            // every packet's buffer (a raw 720p30 clip: 41 MB/s, and a page
            // fault per 4 KiB of every new one).
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => self.decode_packet(&packet, shared)?,
                Err(ff::Error::Eof) => {
                    let end = self.finish_pass(shared)?;
                    if !looping {
                        shared.end_ns.store(end, Ordering::Relaxed);
                        shared.finished.store(true, Ordering::Release);
                        tracing::info!(file = %shared.name, "played to its end");
                        return Ok(());
                    }
                    self.rewind(end)?;
                    shared.loops.fetch_add(1, Ordering::Relaxed);
                }
                Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => {
                    std::thread::sleep(IDLE_POLL);
                }
                Err(e) => {
                    return Err(format!(
                    "reading the file failed after {:.2} s of media: {} (truncated or corrupt?)",
                    self.position_s(),
                    describe(&e)
                ))
                }
            }
        }
    }

    /// Seconds into the current pass decoded so far, for messages.
    fn position_s(&self) -> f64 {
        let v = self
            .video
            .as_ref()
            .and_then(|v| v.last_at_ns)
            .unwrap_or(self.pass_start_ns);
        let a = self.audio.as_ref().map_or(self.pass_start_ns, |a| {
            (u128::from(a.written) * 1_000_000_000 / u128::from(a.out_rate.max(1))) as u64
        });
        v.max(a).saturating_sub(self.pass_start_ns) as f64 / 1e9
    }

    fn decode_packet(&mut self, packet: &Packet, shared: &Shared) -> Result<(), String> {
        let index = packet.stream();
        let position = self.position_s();
        if let Some(v) = self.video.as_mut().filter(|v| v.index == index) {
            let sent = v.decoder.send_packet(packet);
            count_errors(&mut v.errors_in_a_row, "video", position, sent)?;
            self.receive_video(shared)
        } else if let Some(a) = self.audio.as_mut().filter(|a| a.index == index) {
            let sent = a.decoder.send_packet(packet);
            count_errors(&mut a.errors_in_a_row, "audio", position, sent)?;
            self.receive_audio(shared)
        } else {
            Ok(())
        }
    }

    fn receive_video(&mut self, shared: &Shared) -> Result<(), String> {
        loop {
            let Some(v) = self.video.as_mut() else {
                return Ok(());
            };
            match v.decoder.receive_frame(&mut v.decoded) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => return Ok(()),
                // A frame-threaded decoder reports a bad packet here.
                Err(e) => {
                    let position = self.position_s();
                    let Some(v) = self.video.as_mut() else {
                        return Ok(());
                    };
                    return count_errors(&mut v.errors_in_a_row, "video", position, Err(e));
                }
            }
            let ts = v.decoded.timestamp();
            let (tb, frame_ns, last) = (v.time_base, v.frame_ns, v.last_at_ns);
            let mut at = match ts {
                Some(ts) => self.pipeline_ns(ts, tb),
                None => last.map_or(self.pass_start_ns, |l| l + frame_ns),
            };
            if let Some(l) = last {
                // Broken files go backwards; pictures never do.
                at = at.max(l);
            }
            let Some(v) = self.video.as_mut() else {
                return Ok(());
            };
            v.last_at_ns = Some(at);
            let picture = v.convert()?;
            push_picture(shared, TimedPicture { at_ns: at, picture });
        }
    }

    fn receive_audio(&mut self, shared: &Shared) -> Result<(), String> {
        loop {
            let Some(a) = self.audio.as_mut() else {
                return Ok(());
            };
            match a.decoder.receive_frame(&mut a.decoded) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => return Ok(()),
                Err(e) => {
                    let position = self.position_s();
                    let Some(a) = self.audio.as_mut() else {
                        return Ok(());
                    };
                    return count_errors(&mut a.errors_in_a_row, "audio", position, Err(e));
                }
            }
            let ts = a.decoded.timestamp();
            let tb = a.time_base;
            if let Some(ts) = ts {
                // Keep the audio at its place against the pictures: a jump
                // forward in the file's timestamps becomes silence.
                let at = self.pipeline_ns(ts, tb);
                let Some(a) = self.audio.as_mut() else {
                    return Ok(());
                };
                let expected = (u128::from(at) * u128::from(a.out_rate) / 1_000_000_000) as u64;
                let gap_limit = u64::from(a.out_rate) * AUDIO_GAP_MS / 1000;
                if expected > a.written + gap_limit {
                    let pad = expected - a.written;
                    a.push_silence(pad, shared);
                    shared.padded_frames.fetch_add(pad, Ordering::Relaxed);
                }
            }
            if let Some(a) = self.audio.as_mut() {
                a.convert_and_push(shared)?;
            }
        }
    }

    /// The end of a pass: drains the decoders, pads the audio to the pass's
    /// length, returns where the pass ends on the pipeline's timeline.
    fn finish_pass(&mut self, shared: &Shared) -> Result<u64, String> {
        if let Some(v) = self.video.as_mut() {
            let _ = v.decoder.send_eof();
            self.receive_video(shared)?;
        }
        if let Some(a) = self.audio.as_mut() {
            let _ = a.decoder.send_eof();
            self.receive_audio(shared)?;
        }
        let video_end = self
            .video
            .as_ref()
            .and_then(|v| v.last_at_ns.map(|l| l + v.frame_ns))
            .unwrap_or(self.pass_start_ns);
        let audio_end = self.audio.as_ref().map_or(self.pass_start_ns, |a| {
            (u128::from(a.written) * 1_000_000_000 / u128::from(a.out_rate.max(1))) as u64
        });
        let end = video_end.max(audio_end);
        // A file cut short often just ends (the demuxer sees an early end of
        // file, not an error): compare with the length its header declares.
        let played_s = end.saturating_sub(self.pass_start_ns) as f64 / 1e9;
        let missing_s = self.duration_s - played_s;
        if missing_s > TRUNCATION_SLACK_S + self.duration_s * TRUNCATION_SLACK_SHARE {
            return Err(format!(
                "the file ends after {played_s:.2} s of the {:.2} s its header declares (truncated?)",
                self.duration_s
            ));
        }
        // Nothing decoded in a whole pass: looping would spin forever.
        let video_empty = self.video.as_ref().is_some_and(|v| v.last_at_ns.is_none());
        if end <= self.pass_start_ns || video_empty {
            return Err(format!(
                "no {} could be decoded from it",
                if video_empty { "picture" } else { "sound" }
            ));
        }
        if let Some(a) = self.audio.as_mut() {
            let target = (u128::from(end) * u128::from(a.out_rate) / 1_000_000_000) as u64;
            if target > a.written {
                let pad = target - a.written;
                a.push_silence(pad, shared);
                shared.padded_frames.fetch_add(pad, Ordering::Relaxed);
            }
        }
        Ok(end)
    }

    /// Back to the start of the file for the next pass, which begins at
    /// `next_start_ns` on the pipeline's timeline.
    fn rewind(&mut self, next_start_ns: u64) -> Result<(), String> {
        let origin_us = self.origin_ns / 1000;
        self.input
            .seek(origin_us, i64::MIN..origin_us.saturating_add(1))
            .or_else(|_| self.input.seek(i64::MIN, ..))
            .map_err(|e| format!("seeking back to the start to loop: {e}"))?;
        if let Some(v) = self.video.as_mut() {
            v.decoder.flush();
            v.last_at_ns = None;
        }
        if let Some(a) = self.audio.as_mut() {
            a.decoder.flush();
        }
        self.pass_start_ns = next_start_ns;
        Ok(())
    }
}

/// Counts decode errors of one stream: a few are skipped (with a warning),
/// a run of [`MAX_DECODE_ERRORS_IN_A_ROW`] fails the file.
fn count_errors(
    errors: &mut u32,
    kind: &str,
    position: f64,
    sent: Result<(), ff::Error>,
) -> Result<(), String> {
    match sent {
        Ok(()) => {
            *errors = 0;
            Ok(())
        }
        // The decoder's output is full: receiving comes right after.
        Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => Ok(()),
        Err(e) => {
            *errors += 1;
            let e = describe(&e);
            if *errors >= MAX_DECODE_ERRORS_IN_A_ROW {
                return Err(format!(
                    "decoding its {kind} failed {errors} times in a row at {position:.2} s: {e} (corrupt file?)"
                ));
            }
            tracing::warn!("{kind} packet at {position:.2} s does not decode: {e}; skipped");
            Ok(())
        }
    }
}

/// An FFmpeg error for a human: its text, or its code when FFmpeg has none.
fn describe(e: &ff::Error) -> String {
    let text = e.to_string();
    if text.trim().is_empty() {
        format!("{e:?}")
    } else {
        text
    }
}

/// Queues a picture, waiting while the queue is full (the consumer drains
/// it at the frame rate) unless the pipeline stopped.
fn push_picture(shared: &Shared, picture: TimedPicture) {
    loop {
        {
            let mut q = lock(&shared.video);
            if q.len() < shared.video_max {
                q.push_back(picture);
                return;
            }
        }
        if shared.stopped() {
            return;
        }
        std::thread::sleep(IDLE_POLL);
    }
}
