//! Adaptive bitrate against real shaping: the kernel's tbf in a private
//! network namespace in front of a real nginx-rtmp, the pipeline publishing
//! through it, and FFmpeg judging what the server recorded (frames by the
//! numbers the test pattern carries, freezes, decode errors, frame_num gaps).
//!
//! The assertions are loose (a busy 2-core machine); the tight numbers of
//! issue 9 (converged in 3 s, back to 80 % in 14 s) are measured by
//! `scripts/bench-abr.sh` and kept in docs/benchmarks.md.

mod common;

use common::*;
use onair::{Stats, Streamer};
use onair_testkit::{ffmpeg, require_tools, NginxOptions, NginxRtmp};
use std::path::Path;
use std::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);
/// The slow link of issue 9: 1500 kbit/s under a 2500k ceiling.
const LINK_KBIT: u64 = 1500;
/// A collapse below what the floor (276k at 720p30) and the audio need.
const COLLAPSE_KBIT: u64 = 350;

/// Video kbit/s the server received over the media span `[from_s, to_s)`.
fn video_kbps(path: &Path, from_s: f64, to_s: f64) -> f64 {
    let bytes: u64 = ffmpeg::packet_times(path, "v")
        .expect("ffprobe packets")
        .iter()
        .filter(|p| p.pts_time.is_some_and(|t| t >= from_s && t < to_s))
        .map(|p| p.size)
        .sum();
    bytes as f64 * 8.0 / 1000.0 / (to_s - from_s)
}

/// First sample at or after `t` for which `f` holds, as seconds after `t`.
fn secs_until(run: &Run, t: Instant, f: impl Fn(&Stats) -> bool) -> Option<f64> {
    run.samples
        .iter()
        .find(|s| s.at >= t && f(&s.stats))
        .map(|s| (s.at - t).as_secs_f64())
}

/// The slow link of issue 9, freed; then a collapse below the floor, freed.
#[test]
fn a_slow_link_lowers_the_bitrate_instead_of_dropping_frames() {
    if !require_tools(&["nginx", "ffmpeg", "ip", "tc"]) {
        return;
    }
    let _serial = serial();
    let Some(ns) = onair_testkit::require_netns("onair-abr") else {
        return;
    };
    let nginx = NginxRtmp::start(NginxOptions {
        netns: Some(ns.name().to_owned()),
        ..NginxOptions::default()
    })
    .expect("nginx in the namespace");
    let url = nginx.url("abr");
    let streamer = ns
        .run_in(|| Streamer::start(config(&url)))
        .expect("setns")
        .expect("starts");
    let run = run_script(
        streamer,
        74 * SEC,
        vec![
            (
                3 * SEC,
                Box::new(|_| ns.tbf(LINK_KBIT, 32 * 1024, 400).expect("tbf")),
            ),
            (33 * SEC, Box::new(|_| ns.clear_qdisc().expect("clear"))),
            (
                48 * SEC,
                Box::new(|_| ns.tbf(COLLAPSE_KBIT, 16 * 1024, 400).expect("tbf")),
            ),
            (58 * SEC, Box::new(|_| ns.clear_qdisc().expect("clear"))),
        ],
    );
    let a = &run.actions_at;
    let (throttled, freed, collapsed, freed_again) = (a[0], a[1], a[2], a[3]);
    let at = |t: Instant| (t - run.started).as_secs_f64();
    print_timeline(&run);
    let s = &run.final_stats;
    let converged = secs_until(&run, throttled, |x| {
        x.video_bitrate_kbps <= LINK_KBIT * 85 / 100
    });
    let floor_kbps = u64::from(onair::video::bitrate::default_floor_bps(WIDTH, HEIGHT, FPS)) / 1000;
    let at_floor = secs_until(&run, collapsed, |x| {
        x.video_bitrate_kbps <= floor_kbps && x.bitrate_reason == Some("floor")
    });
    let back_to_80 = |from: Instant| {
        secs_until(&run, from, |x| {
            x.video_bitrate_kbps >= u64::from(VIDEO_BPS) * 8 / 10 / 1000
        })
    };
    let recovered = back_to_80(freed);
    let recovered_again = back_to_80(freed_again);
    let sample_at = |t: Instant| {
        run.samples
            .iter()
            .rev()
            .find(|x| x.at <= t)
            .map(|x| x.stats.clone())
            .unwrap_or_default()
    };
    let before_collapse = sample_at(collapsed);
    let end_of_collapse = sample_at(freed_again);
    eprintln!(
        "adaptive, {LINK_KBIT} kbit/s: bitrate down in {converged:?} s, back to 80 % {recovered:?} s \
         after the link freed; link estimate {} kbit/s; video dropped {} (congestion), audio \
         dropped {} before the collapse",
        before_collapse.link_kbps,
        before_collapse.video_dropped_congestion,
        before_collapse.audio_frames_dropped,
    );
    eprintln!(
        "collapse to {COLLAPSE_KBIT} kbit/s: at the floor ({floor_kbps}k) in {at_floor:?} s; \
         video dropped {}, audio dropped {} by its end; back to 80 % {recovered_again:?} s after \
         the link freed again (TCP's own backoff included)",
        end_of_collapse.video_dropped_congestion - before_collapse.video_dropped_congestion,
        end_of_collapse.audio_frames_dropped - before_collapse.audio_frames_dropped,
    );
    assert_eq!(s.reconnects, 0, "a slow link is not a dead link");
    assert_eq!(
        before_collapse.audio_frames_dropped, 0,
        "audio is never dropped while the link carries the floor"
    );
    assert!(
        converged.is_some_and(|c| c <= 6.0),
        "the bitrate came down in {converged:?} s"
    );
    // Below the floor: the encoder holds the floor and the muxer drops
    // video (keyframe-aware), the last resort; audio goes through.
    assert!(
        at_floor.is_some_and(|c| c <= 8.0),
        "held at the floor after {at_floor:?} s"
    );
    assert!(
        end_of_collapse.video_dropped_congestion > before_collapse.video_dropped_congestion,
        "a link below the floor cannot carry every frame"
    );
    // The collapse's first seconds are a TCP stall (tbf drops a window, the
    // sender backs off): nothing moves, and the 2000 ms latency bound, which
    // the StreamBuffer keeps honest (MAX_IN_FLIGHT), drops audio there. All
    // of it is in the collapse: none before it (asserted above).
    assert!(
        s.audio_frames_dropped * 100 <= s.audio_frames_sent * 8,
        "audio dropped {} of {} (more than 8 %)",
        s.audio_frames_dropped,
        s.audio_frames_sent
    );
    assert!(
        recovered.is_some_and(|r| r <= 15.0),
        "back to 80 % of the ceiling in {recovered:?} s"
    );
    // After a collapse the way back is longer (TCP itself backed off), but
    // it starts by itself.
    let last = &run.final_stats;
    assert!(
        last.video_bitrate_kbps >= 3 * floor_kbps,
        "still at {} kbit/s 16 s after the collapse ended",
        last.video_bitrate_kbps
    );

    let recs = nginx.stop_and_collect();
    assert_eq!(recs.len(), 1, "one session, one recording");
    let j = judge(&recs[0]);
    assert_clean(&recs[0], &j);
    let (from, to) = (at(throttled) + 10.0, at(freed));
    let (share, freeze) = j.delivery(from, to);
    let kbps = video_kbps(&recs[0], from, to);
    eprintln!(
        "viewer, {from:.1}..{to:.1} s: {:.1} % of the frames, longest freeze {freeze:.2} s, \
         video {kbps:.0} kbit/s; audio {:.1} s",
        share * 100.0,
        j.audio_seconds
    );
    assert!(
        share >= 0.95,
        "{:.1} % of the frames reached the viewer",
        share * 100.0
    );
    assert!(freeze <= 0.5, "a {freeze:.2} s freeze");
    assert!(
        kbps >= 900.0,
        "the link was left unused: video {kbps:.0} kbit/s"
    );
    let wall = (run.samples.last().map_or(run.started, |x| x.at) - run.started).as_secs_f64();
    assert!(
        j.audio_seconds >= wall - 6.0,
        "audio {:.1} s for {wall:.1} s of stream",
        j.audio_seconds
    );
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "adaptive");
}

/// One line per half second: what the controller saw and did (diagnostics).
fn print_timeline(run: &Run) {
    let mut next = run.started;
    for x in &run.samples {
        if x.at < next {
            continue;
        }
        next += Duration::from_millis(500);
        let s = &x.stats;
        eprintln!(
            "  {:5.1} s  target {:5} k  wanted {:5} k  link {:5} k  sent {:5.0} k  buffer {:4} ms \
             kernel {:6} B  congestion {:.2}  {:8}  dropped v{} a{}",
            (x.at - run.started).as_secs_f64(),
            s.video_bitrate_kbps,
            s.wanted_video_kbps,
            s.link_kbps,
            s.kbps,
            s.buffer_ms,
            s.kernel_unsent_bytes,
            s.congestion,
            s.bitrate_reason.unwrap_or("-"),
            s.video_dropped_congestion,
            s.audio_frames_dropped
        );
    }
}

/// Two destinations share one encoder; one of them gets a link that cannot
/// carry even half the bitrate, is reset in the middle of its throttle, and
/// the user lowers the bitrate by hand during it. The healthy destination
/// keeps every frame at no less than half the ceiling (the policy in
/// docs/ARCHITECTURE.md); the slow one drops frames on its own, cleanly;
/// the manual bitrate becomes the ceiling and is never exceeded; the slow
/// destination's next session starts from its last good estimate.
#[test]
fn a_slow_destination_does_not_drag_a_healthy_one_down_without_limit() {
    if !require_tools(&["nginx", "ffmpeg"]) {
        return;
    }
    let _serial = serial();
    let nginx = NginxRtmp::start(NginxOptions::default()).expect("nginx");
    let proxy = small_buffer_proxy(nginx.addr());
    let mut cfg = config(&nginx.url("healthy"));
    cfg.outputs.push(onair::StreamOutputConfig::new(
        onair::output::url::RtmpUrl::parse(&proxy.rtmp_url("slow"), None).expect("url"),
    ));
    let streamer = Streamer::start(cfg).expect("starts");
    const SLOW_KBIT: u64 = 900;
    let run = run_script(
        streamer,
        46 * SEC,
        vec![
            (
                3 * SEC,
                Box::new(|_| proxy.throttle(Some(SLOW_KBIT * 1000 / 8))),
            ),
            (15 * SEC, Box::new(|_| proxy.reset_all())),
            (22 * SEC, Box::new(|s| s.set_video_bitrate(2_000_000))),
            (32 * SEC, Box::new(|_| proxy.throttle(None))),
        ],
    );
    let a = &run.actions_at;
    let (healthy, slow) = (&run.final_outputs[0], &run.final_outputs[1]);
    eprintln!(
        "healthy: dropped v{} a{}, reconnects {}; slow: dropped v{} a{}, reconnects {}",
        healthy.video_dropped_congestion,
        healthy.audio_frames_dropped,
        healthy.reconnects,
        slow.video_dropped_congestion,
        slow.audio_frames_dropped,
        slow.reconnects
    );
    let during = |from: Instant, to: Instant| {
        run.samples
            .iter()
            .filter(move |x| x.at >= from && x.at < to)
            .map(|x| &x.outputs)
    };
    let targets = |from: Instant, to: Instant| {
        let t: Vec<u64> = during(from, to).map(|s| s[0].video_bitrate_kbps).collect();
        (
            t.iter().copied().min().unwrap_or(0),
            t.iter().copied().max().unwrap_or(0),
        )
    };
    // Throttled, before the manual change: the encoder follows the slow
    // destination down to half of what the healthy one wants, no lower.
    let (lo, hi) = targets(a[0] + 4 * SEC, a[2]);
    eprintln!("encoder target while one destination is slow: {lo}..{hi} kbit/s");
    assert!(
        lo >= 1200,
        "the slow destination dragged the encoder to {lo}k"
    );
    assert!(hi < 2400, "the encoder ignored the slow destination: {hi}k");
    // The manual bitrate is the new ceiling, never exceeded.
    let (lo2, hi2) = targets(a[2] + SEC, a[3]);
    eprintln!("after the manual 2000k: {lo2}..{hi2} kbit/s");
    assert!(hi2 <= 2000 && lo2 >= 950, "{lo2}..{hi2}");
    // The slow destination's new session starts from its last good wish.
    let before: Vec<u64> = during(a[1] - SEC, a[1])
        .map(|s| s[1].wanted_video_kbps)
        .collect();
    let after_live = run
        .samples
        .iter()
        .find(|x| x.at > a[1] + Duration::from_millis(200) && x.outputs[1].state == "live")
        .map(|x| x.outputs[1].wanted_video_kbps);
    eprintln!(
        "slow wish before the reset {:?}, first after {after_live:?}",
        before.last()
    );
    assert!(
        after_live.is_some_and(|w| w < 2000 && before.last().is_some_and(|b| w <= b * 13 / 10)),
        "the new session forgot the slow link: {after_live:?} after {before:?}"
    );
    // Back to the (new) ceiling once the link frees.
    let (_, hi3) = targets(a[3] + 10 * SEC, a[3] + 14 * SEC);
    assert_eq!(hi3, 2000, "back to the ceiling after the link freed");

    assert_eq!(healthy.video_dropped_congestion, 0);
    assert_eq!(healthy.audio_frames_dropped, 0);
    assert_eq!(healthy.reconnects, 0);
    assert!(
        slow.video_dropped_congestion > 0,
        "900 kbit/s cannot carry 1.25 Mbit/s"
    );
    assert_eq!(slow.reconnects, 1);

    let recs = nginx.stop_and_collect();
    let named = |key: &str| -> Vec<std::path::PathBuf> {
        recs.iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(key))
            })
            .cloned()
            .collect()
    };
    let healthy_recs = named("healthy");
    assert_eq!(healthy_recs.len(), 1, "{recs:?}");
    let j = judge(&healthy_recs[0]);
    assert_clean(&healthy_recs[0], &j);
    let t = |i: Instant| (i - run.started).as_secs_f64();
    let (share, freeze) = j.delivery(t(a[0]), t(a[3]));
    let kbps = video_kbps(&healthy_recs[0], t(a[0]) + 4.0, t(a[2]));
    eprintln!(
        "healthy viewer: {:.1} % of the frames, longest freeze {freeze:.2} s, video {kbps:.0} kbit/s",
        share * 100.0
    );
    // The healthy output's own drops are asserted exactly 0 above; what the
    // viewer still misses is frames the engines skipped for CPU (allowed up
    // to 1 %, `assert_engines_on_time`). Alone on this 2-core machine: 0.0x s;
    // beside the other lane's tests: freezes of 0.17-0.20 s and 98.9-99.1 %
    // (measured), so the bound is the engines' tick bound, not a frame.
    assert!(
        share >= 0.98 && freeze <= onair_testkit::stats::MAX_TICK_LATENESS_MS / 1000.0,
        "{share} {freeze}"
    );
    assert!(kbps >= 1000.0, "healthy destination got {kbps:.0} kbit/s");
    for r in named("slow") {
        let j = judge(&r);
        assert_eq!(j.decode_errors, "", "{}", r.display());
        assert_eq!(j.frame_num_gaps, 0, "{}: a mid-GOP drop", r.display());
        assert!(j.indices_in_order(), "{}", r.display());
    }
}
