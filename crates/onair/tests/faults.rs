//! Golden rules under real faults: a real nginx-rtmp (or FFmpeg) behind a
//! fault proxy, a real pipeline, and FFmpeg judging what arrived.
//!
//! Every test prints its measured numbers (detection, resume, lateness) so
//! `scripts/bench-faults.sh` can collect them; the assertions are loose on
//! purpose (a busy 2-core machine), the tight numbers live in
//! docs/benchmarks.md.

mod common;

use common::*;
use onair::{LinkState, Streamer};
use onair_testkit::{
    require_tools, FaultProxy, FfmpegListener, HttpStatusServer, NetNs, NginxOptions, NginxRtmp,
};
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

fn nginx_for_faults() -> NginxRtmp {
    NginxRtmp::start(NginxOptions {
        // A publisher cut silently keeps its name busy until nginx drops it;
        // real ingests do the same with their own idle timeouts.
        drop_idle_publisher: Some(Duration::from_secs(2)),
        ..NginxOptions::default()
    })
    .expect("nginx starts")
}

#[test]
fn reset_is_detected_at_once_and_the_stream_resumes_at_the_present() {
    if !require_tools(&["nginx", "ffmpeg"]) {
        return;
    }
    let _serial = serial();
    let nginx = nginx_for_faults();
    let proxy = FaultProxy::start(nginx.addr()).expect("proxy");
    let streamer = Streamer::start(config(&proxy.rtmp_url("reset"))).expect("starts");
    let run = run_script(
        streamer,
        12 * SEC,
        vec![(4 * SEC, Box::new(|_| proxy.reset_all()))],
    );
    let cut = run.actions_at[0];
    let down = run.first_down_after(cut).expect("the reset was noticed");
    let live = run
        .first_state_after(down, LinkState::Live)
        .expect("live again");
    eprintln!(
        "reset: detected in {} ms, live again {} ms after the reset",
        ms(down - cut),
        ms(live - cut)
    );
    assert!(down - cut <= SEC, "reset detection took {:?}", down - cut);
    assert!(live - cut <= 3 * SEC, "resume took {:?}", live - cut);
    assert_eq!(run.final_stats.reconnects, 1);
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "reset");

    let recs = nginx.stop_and_collect();
    assert_eq!(recs.len(), 2, "one recording per session: {recs:?}");
    let judged: Vec<Judged> = recs.iter().map(|r| judge(r)).collect();
    for (r, j) in recs.iter().zip(&judged) {
        assert_clean(r, j);
    }
    // Resumed at the present: the second session starts with the frame that
    // was current when it came back, not with frames from the outage.
    let first_after = judged[1].first_index().expect("frames in the 2nd session");
    let expected = run.frame_at(live);
    eprintln!("reset: 2nd session starts at frame {first_after}, clock said ~{expected}");
    assert!(
        first_after + 15 >= expected && first_after <= expected + 15,
        "2nd session starts at frame {first_after}, expected about {expected}"
    );
    assert_no_backlog(&run, &judged, "reset");
}

#[test]
fn server_killed_and_restarted_twice() {
    if !require_tools(&["nginx", "ffmpeg"]) {
        return;
    }
    let _serial = serial();
    let nginx = std::cell::RefCell::new(nginx_for_faults());
    let url = nginx.borrow().url("restart");
    let streamer = Streamer::start(config(&url)).expect("starts");
    let run = run_script(
        streamer,
        16 * SEC,
        vec![
            (3 * SEC, Box::new(|_| nginx.borrow_mut().kill())),
            (
                5 * SEC,
                Box::new(|_| nginx.borrow_mut().restart().expect("restart")),
            ),
            (8 * SEC, Box::new(|_| nginx.borrow_mut().kill())),
            (
                10 * SEC,
                Box::new(|_| nginx.borrow_mut().restart().expect("restart")),
            ),
        ],
    );
    for (i, pair) in run.actions_at.chunks(2).enumerate() {
        let (killed, restarted) = (pair[0], pair[1]);
        let down = run.first_down_after(killed).expect("kill noticed");
        let live = run
            .first_state_after(restarted, LinkState::Live)
            .expect("live again");
        eprintln!(
            "restart {i}: close detected in {} ms; live {} ms after the server was back",
            ms(down - killed),
            ms(live - restarted)
        );
        assert!(
            down - killed <= SEC,
            "close detection took {:?}",
            down - killed
        );
        // 1.5 s plus the backoff step in force (at most 2 s here), loosely.
        assert!(
            live - restarted <= 5 * SEC,
            "resume took {:?}",
            live - restarted
        );
    }
    assert_eq!(run.final_stats.reconnects, 2);
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "restart");
    let recs = nginx.into_inner().stop_and_collect();
    assert!(!recs.is_empty());
    // The sessions cut by SIGKILL leave files nginx never finalized; what is
    // in them must still decode cleanly.
    judge_sessions(&recs, &run, "restart");
}

#[test]
fn dead_link_is_detected_within_the_stall_timeout() {
    if !require_tools(&["nginx", "ffmpeg"]) {
        return;
    }
    let _serial = serial();
    let nginx = nginx_for_faults();
    let proxy = FaultProxy::start(nginx.addr()).expect("proxy");
    let streamer = Streamer::start(config(&proxy.rtmp_url("dead"))).expect("starts");
    let run = run_script(
        streamer,
        18 * SEC,
        vec![
            (3 * SEC, Box::new(|_| proxy.blackhole())),
            (11 * SEC, Box::new(|_| proxy.resume())),
        ],
    );
    let (cut, back) = (run.actions_at[0], run.actions_at[1]);
    let down = run.first_down_after(cut).expect("dead link noticed");
    let live = run
        .first_state_after(back, LinkState::Live)
        .expect("live again");
    eprintln!(
        "dead link: detected in {} ms (stall timeout 5000); live {} ms after the link came back",
        ms(down - cut),
        ms(live - back)
    );
    assert!(
        down - cut <= Duration::from_millis(6500),
        "took {:?}",
        down - cut
    );
    assert!(live - back <= 6 * SEC, "resume took {:?}", live - back);
    // Memory stays bounded while down: the buffer never exceeded its bytes.
    let max_bytes = run.max_of(|s| s.buffer_bytes as f64);
    eprintln!("dead link: max buffer {max_bytes} bytes");
    assert!(max_bytes <= 2.0 * 1_330_000.0);
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "dead link");
    let recs = nginx.stop_and_collect();
    judge_sessions(&recs, &run, "dead link");
}

#[test]
fn paused_peer_counts_as_a_stall() {
    if !require_tools(&["nginx", "ffmpeg"]) {
        return;
    }
    let _serial = serial();
    let nginx = nginx_for_faults();
    let proxy = FaultProxy::start(nginx.addr()).expect("proxy");
    let streamer = Streamer::start(config(&proxy.rtmp_url("pause"))).expect("starts");
    let run = run_script(
        streamer,
        16 * SEC,
        vec![
            (3 * SEC, Box::new(|_| proxy.pause())),
            (10 * SEC, Box::new(|_| proxy.resume())),
        ],
    );
    let (cut, back) = (run.actions_at[0], run.actions_at[1]);
    let down = run.first_down_after(cut).expect("stall noticed");
    eprintln!("pause: stall detected in {} ms", ms(down - cut));
    assert!(
        down - cut <= Duration::from_millis(6500),
        "took {:?}",
        down - cut
    );
    let live = run
        .first_state_after(back, LinkState::Live)
        .expect("live again");
    eprintln!("pause: live {} ms after resume", ms(live - back));
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "pause");
    assert!(run.final_stats.reconnects >= 1);
}

#[test]
fn throttled_link_keeps_audio_bounds_latency_and_stays_decodable() {
    if !require_tools(&["ffmpeg"]) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("throttled.flv");
    let mut listener = FfmpegListener::start(&out).expect("ffmpeg listens");
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", listener.port())
        .parse()
        .expect("addr");
    let proxy = FaultProxy::start(upstream).expect("proxy");
    let link_bps = f64::from(VIDEO_BPS + AUDIO_BPS) * 0.6;
    // The last resort under test: dropping, without adaptation.
    let streamer = Streamer::start(config_fixed_bitrate(&proxy.rtmp_url("x"))).expect("starts");
    let bytes_at = std::cell::Cell::new((0u64, 0u64));
    let run = run_script(
        streamer,
        26 * SEC,
        vec![
            (
                3 * SEC,
                Box::new(|_| proxy.throttle(Some((link_bps / 8.0) as u64))),
            ),
            // Measure delivery over the last 15 s of the throttle (after the
            // buffers settled).
            (8 * SEC, Box::new(|_| bytes_at.set((proxy.bytes_up(), 0)))),
            (
                23 * SEC,
                Box::new(|_| bytes_at.set((bytes_at.get().0, proxy.bytes_up()))),
            ),
            (
                23 * SEC + Duration::from_millis(1),
                Box::new(|_| proxy.throttle(None)),
            ),
        ],
    );
    let (b0, b1) = bytes_at.get();
    let window = run.actions_at[2] - run.actions_at[1];
    let delivered_bps = (b1 - b0) as f64 * 8.0 / window.as_secs_f64();
    let s = &run.final_stats;
    let max_buffer_ms = run.max_of(|s| s.buffer_ms as f64);
    eprintln!(
        "throttle 60%: delivered {:.0} kbit/s of {:.0} ({:.0}%), max buffer {max_buffer_ms} ms, \
         video dropped {} (congestion), audio dropped {}, idr requests {}",
        delivered_bps / 1000.0,
        link_bps / 1000.0,
        100.0 * delivered_bps / link_bps,
        s.video_dropped_congestion,
        s.audio_frames_dropped,
        s.idr_requests
    );
    print_before_first_audio_drop(&run);
    assert_eq!(s.reconnects, 0, "a slow link is not a dead link");
    assert!(run.samples.iter().all(|x| x.stats.state == "live"));
    // The link also freezes for over a second at times (the kernel send
    // queue was seen frozen for 1.3-1.4 s: the proxy's thread or FFmpeg's
    // listener stalls on a loaded machine); audio overdraws the span bound
    // through such a freeze (muxer::AUDIO_OVERDRAFT) and is not lost.
    assert_eq!(s.audio_frames_dropped, 0, "golden rule 4: audio is kept");
    assert!(
        s.video_dropped_congestion > 0,
        "60% of the bitrate cannot carry all the video"
    );
    assert!(
        max_buffer_ms <= audio_overdraft_bound_ms(),
        "buffer latency {max_buffer_ms} ms above its bound"
    );
    assert!(
        delivered_bps >= 0.85 * link_bps,
        "delivered only {delivered_bps} of {link_bps}"
    );
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "throttle");

    listener
        .wait(10 * SEC)
        .expect("ffmpeg exits when the publisher leaves");
    let j = judge(&out);
    // FFmpeg kept exactly what was sent (-copyinkf): no mid-GOP drop anywhere.
    assert_eq!(j.decode_errors, "");
    assert_eq!(j.frame_num_gaps, 0, "a reference frame was dropped mid-GOP");
    assert!(j.first_is_key);
    assert!(j.indices_in_order());
    assert!(
        (j.audio_seconds - 26.0).abs() <= 1.0,
        "audio {} s for a 26 s run",
        j.audio_seconds
    );
}

#[test]
fn reconnect_now_skips_the_backoff_wait() {
    if !require_tools(&["nginx", "ffmpeg"]) {
        return;
    }
    let _serial = serial();
    let nginx = nginx_for_faults();
    let proxy = FaultProxy::start(nginx.addr()).expect("proxy");
    let streamer = Streamer::start(config(&proxy.rtmp_url("now"))).expect("starts");
    // Refused for 8.5 s: the backoff has reached its 4-8 s steps by then.
    let run = run_script(
        streamer,
        14 * SEC,
        vec![
            (
                2 * SEC,
                Box::new(|_| {
                    proxy.refuse(true);
                    proxy.reset_all();
                }),
            ),
            (
                Duration::from_millis(10_500),
                Box::new(|_| proxy.refuse(false)),
            ),
            (
                Duration::from_millis(10_510),
                Box::new(|s: &Streamer| s.reconnect_now()),
            ),
        ],
    );
    let back = run.actions_at[2];
    let live = run
        .first_state_after(back, LinkState::Live)
        .expect("live again");
    eprintln!("reconnect now: live {} ms after the call", ms(live - back));
    assert!(
        live - back <= Duration::from_millis(1500),
        "took {:?}",
        live - back
    );
    assert_eq!(run.final_stats.reconnects, 1);
}

#[test]
fn rejected_key_fails_fast_with_a_clear_error() {
    if !require_tools(&["nginx"]) {
        return;
    }
    let _serial = serial();
    let auth = HttpStatusServer::start(403).expect("http");
    let nginx = NginxRtmp::start(NginxOptions {
        on_publish: Some(auth.url()),
        ..NginxOptions::default()
    })
    .expect("nginx");
    let t0 = std::time::Instant::now();
    let err = match Streamer::start(config(&nginx.url("SECRET-KEY-42"))) {
        Ok(_) => panic!("a rejected key must not start"),
        Err(e) => {
            assert!(
                matches!(e, onair::Error::Publish { rejected: true, .. }),
                "not reported as a rejection: {e:?}"
            );
            e.to_string()
        }
    };
    eprintln!("rejected: failed after {} ms: {err}", ms(t0.elapsed()));
    assert!(err.contains("rejected"), "{err}");
    assert!(!err.contains("SECRET-KEY-42"), "the key leaked: {err}");
    assert!(t0.elapsed() <= 10 * SEC);
    assert!(auth.requests() >= 1);
}

/// Kernel faults need a private network namespace (root): skipped without
/// one, failed under CI.
fn namespace() -> Option<NetNs> {
    onair_testkit::require_netns("onair-faults")
}

#[test]
fn kernel_dead_link_and_reset_in_a_namespace() {
    if !require_tools(&["nginx", "ffmpeg", "ip", "iptables"]) {
        return;
    }
    let _serial = serial();
    let Some(ns) = namespace() else { return };
    let nginx = NginxRtmp::start(NginxOptions {
        drop_idle_publisher: Some(Duration::from_secs(2)),
        netns: Some(ns.name().to_owned()),
        ..NginxOptions::default()
    })
    .expect("nginx in the namespace");
    let port = nginx.port();
    let url = nginx.url("kernel");
    // The pipeline's threads are spawned inside the namespace, so its
    // sockets go through the namespace's lo, where the faults are.
    let streamer = ns
        .run_in(|| Streamer::start(config(&url)))
        .expect("setns")
        .expect("starts");
    let run = run_script(
        streamer,
        20 * SEC,
        vec![
            (
                3 * SEC,
                Box::new(|_| ns.iptables_drop_port(port).expect("DROP")),
            ),
            (10 * SEC, Box::new(|_| ns.iptables_flush().expect("flush"))),
            (
                14 * SEC,
                Box::new(|_| ns.iptables_reject_reset_port(port).expect("REJECT")),
            ),
            (16 * SEC, Box::new(|_| ns.iptables_flush().expect("flush"))),
        ],
    );
    let a = &run.actions_at;
    let down = run.first_down_after(a[0]).expect("DROP noticed");
    let live = run
        .first_state_after(a[1], LinkState::Live)
        .expect("live after DROP");
    eprintln!(
        "kernel DROP: detected in {} ms; live {} ms after the flush",
        ms(down - a[0]),
        ms(live - a[1])
    );
    assert!(
        down - a[0] <= Duration::from_millis(5500),
        "dead link detection took {:?}",
        down - a[0]
    );
    let down2 = run.first_down_after(a[2]).expect("RST noticed");
    eprintln!("kernel RST: detected in {} ms", ms(down2 - a[2]));
    assert!(
        down2 - a[2] <= SEC,
        "reset detection took {:?}",
        down2 - a[2]
    );
    let live2 = run
        .first_state_after(a[3], LinkState::Live)
        .expect("live after RST");
    eprintln!("kernel RST: live {} ms after the flush", ms(live2 - a[3]));
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "kernel faults");
    let recs = nginx.stop_and_collect();
    judge_sessions(&recs, &run, "kernel faults");
}

#[test]
fn kernel_tbf_throttle_in_a_namespace() {
    if !require_tools(&["nginx", "ffmpeg", "ip", "tc"]) {
        return;
    }
    let _serial = serial();
    let Some(ns) = namespace() else { return };
    let nginx = NginxRtmp::start(NginxOptions {
        netns: Some(ns.name().to_owned()),
        ..NginxOptions::default()
    })
    .expect("nginx in the namespace");
    let url = nginx.url("tbf");
    let streamer = ns
        .run_in(|| Streamer::start(config_fixed_bitrate(&url)))
        .expect("setns")
        .expect("starts");
    let link_kbit = u64::from(VIDEO_BPS + AUDIO_BPS) * 6 / 10 / 1000;
    let run = run_script(
        streamer,
        36 * SEC,
        vec![
            (
                3 * SEC,
                Box::new(|_| ns.tbf(link_kbit, 32 * 1024, 400).expect("tbf")),
            ),
            (33 * SEC, Box::new(|_| ns.clear_qdisc().expect("clear"))),
        ],
    );
    let s = &run.final_stats;
    let max_buffer_ms = run.max_of(|s| s.buffer_ms as f64);
    eprintln!(
        "kernel tbf 60%: max buffer {max_buffer_ms} ms, video dropped {}, audio dropped {}, reconnects {}",
        s.video_dropped_congestion, s.audio_frames_dropped, s.reconnects
    );
    print_before_first_audio_drop(&run);
    assert_eq!(s.reconnects, 0);
    assert_eq!(s.audio_frames_dropped, 0);
    assert!(s.video_dropped_congestion > 0);
    assert!(
        max_buffer_ms <= audio_overdraft_bound_ms(),
        "buffer latency {max_buffer_ms} ms above its bound"
    );
    assert_engines_on_time(&run, SKIPS_FOR_CPU, "kernel tbf");
    let recs = nginx.stop_and_collect();
    assert_eq!(recs.len(), 1);
    let j = judge(&recs[0]);
    assert_clean(&recs[0], &j);
}

/// Soak: 10 minutes of a dead link must not grow memory (< 5 MB).
/// Out of the default suite; run with `scripts/bench-faults.sh --soak` or
/// `cargo test --release -p onair --test faults -- --ignored soak --nocapture`.
#[test]
#[ignore = "10-minute soak; run by scripts/bench-faults.sh --soak"]
fn soak_ten_minutes_of_dead_link_keeps_memory_flat() {
    if !require_tools(&["nginx"]) {
        return;
    }
    let _serial = serial();
    let minutes: u64 = std::env::var("ONAIR_SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let nginx = nginx_for_faults();
    let proxy = FaultProxy::start(nginx.addr()).expect("proxy");
    let streamer = Streamer::start(config(&proxy.rtmp_url("soak"))).expect("starts");
    std::thread::sleep(3 * SEC);
    proxy.blackhole();
    // Let the outage settle (buffers full, reconnect loop at its cap).
    std::thread::sleep(40 * SEC);
    let before = onair_testkit::rss_kib(std::process::id());
    let t0 = std::time::Instant::now();
    let mut max = before;
    while t0.elapsed() < Duration::from_secs(minutes * 60) {
        std::thread::sleep(5 * SEC);
        max = max.max(onair_testkit::rss_kib(std::process::id()));
    }
    let after = onair_testkit::rss_kib(std::process::id());
    let s = streamer.stop().remove(0);
    eprintln!(
        "soak {minutes} min dead link: RSS {before} KiB -> {after} KiB (max {max}), growth {} KiB; \
         connect failures {}, video dropped {}, audio dropped {}",
        after as i64 - before as i64,
        s.connect_failures,
        s.video_dropped_disconnected,
        s.audio_frames_dropped
    );
    assert!(
        max.saturating_sub(before) < 5 * 1024,
        "memory grew {} KiB",
        max - before
    );
}

/// The FFmpeg CLI publishing through the same faults, for docs/benchmarks.md:
/// what a streamer using it would see. Not an assertion of FFmpeg's
/// behaviour, just a record; run by scripts/bench-faults.sh.
#[test]
#[ignore = "comparison record; run by scripts/bench-faults.sh"]
fn ffmpeg_cli_under_the_same_faults() {
    if !require_tools(&["nginx", "ffmpeg"]) {
        return;
    }
    let _serial = serial();
    for fault in ["reset", "blackhole", "throttle60"] {
        let nginx = nginx_for_faults();
        let proxy = FaultProxy::start(nginx.addr()).expect("proxy");
        let mut cmd = std::process::Command::new("ffmpeg");
        cmd.args([
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "25",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-b:v",
            "2500k",
            "-maxrate",
            "2500k",
            "-bufsize",
            "2500k",
            "-g",
            "60",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            "-f",
            "flv",
        ])
        .arg(proxy.rtmp_url("ffmpeg"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        let mut child = onair_testkit::procs::spawn(&mut cmd).expect("ffmpeg");
        let t0 = std::time::Instant::now();
        std::thread::sleep(4 * SEC);
        let fault_at = t0.elapsed();
        match fault {
            "reset" => proxy.reset_all(),
            "blackhole" => proxy.blackhole(),
            _ => proxy.throttle(Some((f64::from(VIDEO_BPS + AUDIO_BPS) * 0.6 / 8.0) as u64)),
        }
        let status = child.wait_timeout(40 * SEC).expect("wait");
        let ended = t0.elapsed();
        if fault == "blackhole" {
            proxy.resume();
        }
        let recs = nginx.stop_and_collect();
        let recorded: f64 = recs
            .iter()
            .filter_map(|r| onair_testkit::ffmpeg::probe(r).ok())
            .filter_map(|p| p.video().map(|v| v.nb_read_frames as f64 / f64::from(FPS)))
            .sum();
        eprintln!(
            "ffmpeg CLI, {fault} at {:.1} s: {} at {:.1} s; server recorded {recorded:.1} s of video in {} file(s)",
            fault_at.as_secs_f64(),
            match status {
                Some(s) if s.success() => "finished (exit 0)".to_string(),
                Some(s) => format!("exited with {s}"),
                None => "still running after 40 s (killed)".to_string(),
            },
            ended.as_secs_f64(),
            recs.len()
        );
    }
}
