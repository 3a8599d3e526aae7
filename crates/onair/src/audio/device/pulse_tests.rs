//! The PulseAudio backend against a real private server (onair-testkit's
//! `PulseServer`): two distinct tones, one played into the default sink
//! (desktop) and one into a real source set as default (mic); mixes carry
//! each at its volume; the server killed, restarted and stopped.

use super::*;
use onair_testkit::pcm::{
    assert_power, capture_after_tones, read_like_engine, tone_powers, wait_for_tones, Reads,
};
use onair_testkit::pulse::{NULL_SINK, RATE};
use onair_testkit::{require_tools, PulseServer, SCHEDULING_SLACK};
use std::sync::atomic::Ordering;

/// The tone played into the default sink: what `desktop` records.
const DESKTOP_HZ: f64 = 1000.0;
/// The tone played into the microphone's feed: what `mic` records.
const MIC_HZ: f64 = 600.0;
/// Power of the testkit's half-scale tone (amplitude 0.5) at volume 1.
const FULL_TONE_POWER: f64 = 0.25;
/// Relative error allowed on a tone's measured power (the server's
/// resampler and our own are both in the path).
const POWER_TOLERANCE: f64 = 0.2;
/// Power below which a tone counts as absent (-40 dB under the tone).
const ABSENT_POWER: f64 = FULL_TONE_POWER * 1e-4;
/// Power above which a tone counts as heard (a quarter of the amplitude of
/// the quietest tone the tests ask for).
const PRESENT_POWER: f64 = FULL_TONE_POWER / 64.0;
/// How long a capture waits for its tones (players start slowly on a busy
/// 2-core machine).
const FLOW_TIMEOUT: Duration = Duration::from_secs(10);

fn options(pulse: &PulseServer) -> DeviceOptions {
    DeviceOptions {
        pulse_server: Some(pulse.server()),
    }
}

fn counters() -> Arc<EngineCounters> {
    Arc::new(EngineCounters::default())
}

/// Reads `src` like the engine for `dur`.
fn read(src: &mut dyn AudioSource, dur: Duration) -> Reads {
    read_like_engine(|buf| src.read(buf), dur)
}

/// Waits until every tone of `hz` plays through `src` (players start
/// slowly; after a fault, the server and the capture come back); returns how
/// long that took.
fn tones_in(src: &mut dyn AudioSource, hz: &[f64], timeout: Duration) -> Option<Duration> {
    wait_for_tones(|b| src.read(b), RATE, hz, PRESENT_POWER, timeout)
}

/// How long a tone may take to come back after the server does: a few
/// reconnect attempts on a busy 2-core machine.
const BACK_TIMEOUT: Duration = Duration::from_secs(9);

#[test]
fn desktop_and_mic_each_name_their_source_and_mix_at_their_volumes() {
    if !require_tools(&["pulseaudio", "pacat", "pactl"]) {
        return;
    }
    let pulse = PulseServer::start_with_mic().expect("pulseaudio");
    let _tones = pulse
        .play_desktop_and_mic(DESKTOP_HZ as f32, MIC_HZ as f32)
        .expect("pacat");
    let opts = options(&pulse);
    let c = counters();
    let open = |spec: &str| {
        open_audio_with(spec, RATE, 2, &c, &opts).unwrap_or_else(|e| panic!("{spec}: {e}"))
    };

    let mut mix = open("desktop+mic@0.5");
    assert_eq!(mix.name(), "desktop+mic");
    let r = capture_after_tones(
        |b| mix.read(b),
        RATE,
        &[DESKTOP_HZ, MIC_HZ],
        PRESENT_POWER,
        FLOW_TIMEOUT,
        Duration::from_millis(1500),
    )
    .expect("tones heard");
    r.never_waited(SCHEDULING_SLACK).expect("mix reads");
    let [d, m] = tone_powers("desktop+mic@0.5", &r, RATE, [DESKTOP_HZ, MIC_HZ]);
    assert_power(
        "desktop in desktop+mic@0.5",
        d,
        FULL_TONE_POWER,
        1.0,
        POWER_TOLERANCE,
    );
    assert_power(
        "mic in desktop+mic@0.5",
        m,
        FULL_TONE_POWER,
        0.5,
        POWER_TOLERANCE,
    );
    drop(mix);

    let mut mic = open("mic@0.8");
    let r = capture_after_tones(
        |b| mic.read(b),
        RATE,
        &[MIC_HZ],
        PRESENT_POWER,
        FLOW_TIMEOUT,
        Duration::from_millis(1000),
    )
    .expect("tones heard");
    let [d, m] = tone_powers("mic@0.8", &r, RATE, [DESKTOP_HZ, MIC_HZ]);
    assert_power("mic alone", m, FULL_TONE_POWER, 0.8, POWER_TOLERANCE);
    assert!(d < ABSENT_POWER, "desktop tone leaks into mic: {d}");
    drop(mic);

    // Two sources by name in one process: the case the ALSA plugin could not do.
    let spec = format!(
        "pulse:{NULL_SINK}.monitor@0.5+pulse:{}",
        onair_testkit::pulse::MIC_SOURCE
    );
    let mut named = open(&spec);
    let r = capture_after_tones(
        |b| named.read(b),
        RATE,
        &[DESKTOP_HZ, MIC_HZ],
        PRESENT_POWER,
        FLOW_TIMEOUT,
        Duration::from_millis(1000),
    )
    .expect("tones heard");
    let [d, m] = tone_powers(&spec, &r, RATE, [DESKTOP_HZ, MIC_HZ]);
    assert_power("named monitor", d, FULL_TONE_POWER, 0.5, POWER_TOLERANCE);
    assert_power("named mic", m, FULL_TONE_POWER, 1.0, POWER_TOLERANCE);
}

#[test]
fn a_missing_source_or_server_is_reported_at_open() {
    if !require_tools(&["pulseaudio", "pactl"]) {
        return;
    }
    let mut pulse = PulseServer::start().expect("pulseaudio");
    let opts = options(&pulse);
    let t = Instant::now();
    let err = open_audio_with("pulse:no_such_source", RATE, 2, &counters(), &opts)
        .err()
        .expect("a missing source fails");
    eprintln!("missing source: {err} (after {:?})", t.elapsed());
    assert!(err.to_string().contains("no_such_source"), "{err}");
    pulse.kill();
    let err = open_audio_with("desktop", RATE, 2, &counters(), &opts)
        .err()
        .expect("no server fails");
    eprintln!("no server: {err}");
    assert!(t.elapsed() < FIRST_OPEN_WAIT, "{:?}", t.elapsed());
}

#[test]
fn server_killed_and_restarted_mid_capture_becomes_silence_then_sound_again() {
    if !require_tools(&["pulseaudio", "pacat", "pactl"]) {
        return;
    }
    let mut pulse = PulseServer::start_with_mic().expect("pulseaudio");
    let mut tone = pulse.play_tone(DESKTOP_HZ as f32).expect("pacat");
    let c = counters();
    let mut src =
        open_audio_with("desktop+mic", RATE, 2, &c, &options(&pulse)).expect("open desktop+mic");
    let r = capture_after_tones(
        |b| src.read(b),
        RATE,
        &[DESKTOP_HZ],
        PRESENT_POWER,
        FLOW_TIMEOUT,
        Duration::from_millis(1000),
    )
    .expect("tones heard");
    r.never_waited(SCHEDULING_SLACK).expect("reads before");
    let [d] = tone_powers("before the kill", &r, RATE, [DESKTOP_HZ]);
    assert_power(
        "desktop before the kill",
        d,
        FULL_TONE_POWER,
        1.0,
        POWER_TOLERANCE,
    );

    // Kill the server mid-capture: reads stay fast and turn to nothing
    // (the engine fills and counts silence).
    pulse.kill();
    tone.kill();
    let after = read(src.as_mut(), Duration::from_millis(1500));
    after
        .never_waited(SCHEDULING_SLACK)
        .expect("reads while down");
    let jitter_max = (RATE * JITTER_MAX_MS / 1000) as usize;
    assert!(
        after.frames() <= jitter_max + 4800,
        "{} frames after the death",
        after.frames()
    );
    assert!(after.empty_reads > 100, "{} empty reads", after.empty_reads);

    // Restart it: the device threads reconnect by themselves.
    pulse.restart().expect("pulseaudio restarts");
    let restarted = Instant::now();
    let _tone2 = pulse.play_tone(DESKTOP_HZ as f32).expect("pacat");
    let took =
        tones_in(src.as_mut(), &[DESKTOP_HZ], BACK_TIMEOUT).expect("the tone did not come back");
    eprintln!(
        "sound back {took:?} after the server restarted ({:?} since)",
        restarted.elapsed()
    );
    let reopens = c.audio_device_reopens.load(Ordering::Relaxed);
    eprintln!("reopens counted: {reopens}");
    assert!(reopens >= 2, "each input's reopen counted: {reopens}");
}

#[test]
fn a_stopped_server_bounds_open_and_stalls_into_silence_until_it_continues() {
    if !require_tools(&["pulseaudio", "pacat", "pactl"]) {
        return;
    }
    let mut pulse = PulseServer::start_with_mic().expect("pulseaudio");
    let _tone = pulse.play_tone(DESKTOP_HZ as f32).expect("pacat");
    pulse.pause().expect("SIGSTOP");
    let c = counters();
    let t = Instant::now();
    // Both inputs wait for the server at once: start is bounded by one
    // FIRST_OPEN_WAIT whatever the number of inputs.
    let mut src = open_audio_with("desktop+mic", RATE, 2, &c, &options(&pulse))
        .expect("a stopped server starts with silence");
    let open_took = t.elapsed();
    eprintln!("open with a stopped server returned in {open_took:?}");
    assert!(
        open_took < FIRST_OPEN_WAIT + SCHEDULING_SLACK,
        "{open_took:?}"
    );
    let r = read(src.as_mut(), Duration::from_millis(500));
    r.never_waited(SCHEDULING_SLACK)
        .expect("reads while stopped");
    assert_eq!(r.frames(), 0);
    pulse.resume().expect("SIGCONT");
    let continued = Instant::now();
    let took = tones_in(src.as_mut(), &[DESKTOP_HZ], BACK_TIMEOUT)
        .expect("no sound after the server continued");
    eprintln!(
        "sound {took:?} after SIGCONT ({:?} since)",
        continued.elapsed()
    );

    // Stopped mid-capture: the stall is noticed, reads stay fast, and the
    // stream is reopened once the server continues.
    let before = c.audio_device_reopens.load(Ordering::Relaxed);
    pulse.pause().expect("SIGSTOP");
    let stalled = read(src.as_mut(), STALL_TIMEOUT + RETRY_INTERVAL);
    stalled
        .never_waited(SCHEDULING_SLACK)
        .expect("reads while stalled");
    assert!(
        stalled.empty_reads > 100,
        "{} empty reads",
        stalled.empty_reads
    );
    pulse.resume().expect("SIGCONT");
    let took = tones_in(src.as_mut(), &[DESKTOP_HZ], BACK_TIMEOUT)
        .expect("no sound after the mid-run stop");
    eprintln!("sound back {took:?} after the mid-run SIGCONT");
    let after = c.audio_device_reopens.load(Ordering::Relaxed);
    assert!(after > before, "reopen counted: {before} -> {after}");
}
