//! How fast onair's VideoEncoder (openh264) encodes the test pattern, alone.
//!
//! Why: the SPEC's claim "720p30 at 2500 kbps streams in real time on one core
//! with room to spare" is mostly a claim about the video encoder, the only
//! heavy stage. This measures it with nothing else running: frames are
//! rendered and encoded in order on one thread (the encoder is configured
//! single-threaded, as in the pipeline), and CPU time is read per thread
//! (`CLOCK_THREAD_CPUTIME_ID`), so other processes on a shared machine do not
//! inflate it the way wall time would.
//!
//! ```text
//! cargo run --release -p onair --example encode_speed -- [--size 1280x720] [--frames 600] [--fps 30] [--bitrate 2500000]
//! ```
//!
//! Prints one `key=value` line: frames, wall time, wall fps, encoder CPU
//! ms/frame, render CPU ms/frame, output bitrate, and `realtime_x` (how many
//! times real time one core would encode at this rate: frame interval / CPU
//! per frame, render included).

use onair::video::encoder::{EncoderKind, EncoderSettings, VideoEncoder, VideoEncoderConfig};
use onair::video::source::TestPattern;
use std::process::ExitCode;
use std::time::Instant;

/// CPU time consumed so far by the calling thread, in seconds.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // Linux supports. On failure the zeroed value is returned (harmless here).
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn parse() -> Result<(VideoEncoderConfig, u64), String> {
    let mut cfg = VideoEncoderConfig {
        width: 1280,
        height: 720,
        fps: 30,
        bitrate_bps: 2_500_000,
        keyint_secs: 2.0,
        encoder: EncoderSettings::named(EncoderKind::OpenH264),
    };
    let mut frames = 600u64;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let v = it.next().ok_or(format!("{arg} needs a value"))?;
        let bad = || format!("bad value {v:?} for {arg}");
        match arg.as_str() {
            "--size" => {
                let (w, h) = v.split_once('x').ok_or_else(bad)?;
                cfg.width = w.parse().map_err(|_| bad())?;
                cfg.height = h.parse().map_err(|_| bad())?;
            }
            "--frames" => frames = v.parse().map_err(|_| bad())?,
            "--fps" => cfg.fps = v.parse().map_err(|_| bad())?,
            "--bitrate" => cfg.bitrate_bps = v.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok((cfg, frames.max(1)))
}

fn main() -> ExitCode {
    let (cfg, frames) = match parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("encode_speed: {e}\nusage: encode_speed [--size WxH] [--frames N] [--fps N] [--bitrate BPS]");
            return ExitCode::from(2);
        }
    };
    let mut enc = match VideoEncoder::new(cfg.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("encode_speed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut pattern = TestPattern::new(cfg.width, cfg.height);
    let frame_ns = 1_000_000_000 / u64::from(cfg.fps);
    let (mut render_cpu, mut encode_cpu, mut bytes) = (0.0f64, 0.0f64, 0u64);
    let wall = Instant::now();
    for index in 0..frames {
        let t0 = thread_cpu_s();
        let frame = pattern.render(index);
        let t1 = thread_cpu_s();
        match enc.encode(&frame, index * frame_ns) {
            Ok(packets) => bytes += packets.iter().map(|p| p.data.len() as u64).sum::<u64>(),
            Err(e) => {
                eprintln!("encode_speed: frame {index}: {e}");
                return ExitCode::FAILURE;
            }
        }
        render_cpu += t1 - t0;
        encode_cpu += thread_cpu_s() - t1;
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let n = frames as f64;
    let encode_ms = encode_cpu * 1e3 / n;
    let render_ms = render_cpu * 1e3 / n;
    let interval_ms = 1e3 / f64::from(cfg.fps);
    println!(
        "size={}x{} frames={frames} wall_s={wall_s:.2} wall_fps={:.1} encode_cpu_ms_per_frame={encode_ms:.2} \
         render_cpu_ms_per_frame={render_ms:.2} cpu_fps={:.1} kbps={:.0} realtime_x={:.2}",
        cfg.width,
        cfg.height,
        n / wall_s,
        1e3 / (encode_ms + render_ms),
        bytes as f64 * 8.0 / (n / f64::from(cfg.fps)) / 1e3,
        interval_ms / (encode_ms + render_ms),
    );
    ExitCode::SUCCESS
}
