//! A private PulseAudio server per test, and a tone played into it.
//!
//! Why: desktop-audio capture can only be proved against a real sound server whose sound
//! the test controls, and the server dying mid-stream is a fault onair must survive. Each
//! [`PulseServer`] runs as the current user (root in a container: `--system=false` with a
//! private HOME and runtime dir, no D-Bus), has one null sink [`NULL_SINK`] whose monitor
//! is what "desktop" capture records, and listens on a private socket with anonymous auth.
//! Clients find it through `PULSE_SERVER` = [`PulseServer::server`].
//!
//! [`PulseServer::start_with_mic`] adds a real microphone-like source: a second null sink
//! [`MIC_SINK`] whose monitor is remapped (`module-remap-source`) into [`MIC_SOURCE`], a
//! source of its own that is the server's default source. A tone played into [`MIC_SINK`]
//! ([`PulseServer::play_tone_into`]) is what "mic" records, apart from what "desktop" records.

use crate::procs::{find_tool, wait_for, ChildGuard};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The null sink every server has; [`PulseServer::play_tone`] plays into it.
pub const NULL_SINK: &str = "onair_null";
/// The second null sink behind [`MIC_SOURCE`] (only with [`PulseServer::start_with_mic`]).
pub const MIC_SINK: &str = "onair_mic_feed";
/// A real source, the default one, remapped from [`MIC_SINK`]'s monitor: the "microphone".
pub const MIC_SOURCE: &str = "onair_mic";
/// Sample rate of the sink and of the tone.
pub const RATE: u32 = 48_000;
/// How long a server may take to answer `pactl info` (a busy 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`PulseServer::play_tone`] plays (longer than any capture test).
pub const TONE_SECONDS: u32 = 60;

/// A running PulseAudio, killed (by pid) on drop; its runtime dir is a temp dir.
#[derive(Debug)]
pub struct PulseServer {
    guard: ChildGuard,
    dir: tempfile::TempDir,
    with_mic: bool,
}

fn tool(name: &str) -> io::Result<std::path::PathBuf> {
    find_tool(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name} not found (apt: pulseaudio pulseaudio-utils)"),
        )
    })
}

/// The `-L` module arguments of the [`PulseServer::start_with_mic`] extras: the feed sink,
/// the remapped source, and that source made the default.
fn mic_modules() -> Vec<String> {
    vec![
        "-L".to_string(),
        format!("module-null-sink sink_name={MIC_SINK} rate={RATE}"),
        "-L".to_string(),
        format!(
            "module-remap-source source_name={MIC_SOURCE} master={MIC_SINK}.monitor \
             source_properties=device.description=onair-test-microphone"
        ),
    ]
}

fn spawn_server(dir: &Path, with_mic: bool) -> io::Result<ChildGuard> {
    let socket = dir.join("native");
    let _ = std::fs::remove_file(&socket);
    let extra = if with_mic { mic_modules() } else { Vec::new() };
    let child = Command::new(tool("pulseaudio")?)
        .args([
            "-n",
            "--daemonize=no",
            "--system=false",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--disable-shm=true",
            "-L",
            &format!("module-null-sink sink_name={NULL_SINK} rate={RATE}"),
            "-L",
            &format!(
                "module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ),
        ])
        .args(extra)
        .env("HOME", dir)
        .env("PULSE_RUNTIME_PATH", dir)
        .env("XDG_RUNTIME_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let guard = ChildGuard::new("pulseaudio", child);
    let pactl = tool("pactl")?;
    let server = format!("unix:{}", socket.display());
    let up = wait_for(START_TIMEOUT, || {
        Command::new(&pactl)
            .arg("info")
            .env("PULSE_SERVER", &server)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
    });
    if up.is_some() && with_mic {
        // The server picks its defaults by priority (a monitor may win): name them, as a
        // desktop's settings do: the remapped source is the microphone, NULL_SINK plays.
        for (what, name) in [
            ("set-default-source", MIC_SOURCE),
            ("set-default-sink", NULL_SINK),
        ] {
            let ok = Command::new(&pactl)
                .args([what, name])
                .env("PULSE_SERVER", &server)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
            if !ok {
                return Err(io::Error::other(format!("pactl {what} {name} failed")));
            }
        }
    }
    match up {
        Some(_) => Ok(guard),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("pulseaudio did not answer within {START_TIMEOUT:?}"),
        )),
    }
}

impl PulseServer {
    /// Starts a server in a fresh temp dir and waits until it answers.
    pub fn start() -> io::Result<PulseServer> {
        let dir = tempfile::Builder::new().prefix("onair-pulse-").tempdir()?;
        let guard = spawn_server(dir.path(), false)?;
        Ok(PulseServer {
            guard,
            dir,
            with_mic: false,
        })
    }

    /// Like [`PulseServer::start`], plus the microphone [`MIC_SOURCE`] (the default source,
    /// fed by [`MIC_SINK`]); [`NULL_SINK`] stays the default sink ("desktop").
    pub fn start_with_mic() -> io::Result<PulseServer> {
        let dir = tempfile::Builder::new().prefix("onair-pulse-").tempdir()?;
        let guard = spawn_server(dir.path(), true)?;
        Ok(PulseServer {
            guard,
            dir,
            with_mic: true,
        })
    }

    /// The value for `PULSE_SERVER`: `unix:DIR/native`.
    pub fn server(&self) -> String {
        format!("unix:{}", self.dir.path().join("native").display())
    }

    /// Kills the server (the sound-server-died fault). Idempotent.
    pub fn kill(&mut self) {
        self.guard.kill();
    }

    /// Starts `onair ARGS... --audio SPEC -q --duration SECS --stats-json DIR/NAME.jsonl`
    /// (the binary at `onair`; `args` e.g. `["record", "x.flv", "--video", "none"]`), its
    /// `PULSE_SERVER` pointing at this server (set on the child only).
    pub fn run_onair<A: AsRef<std::ffi::OsStr>>(
        &self,
        onair: &Path,
        dir: &Path,
        args: &[A],
        spec: &str,
        secs: u32,
    ) -> io::Result<OnairRun> {
        let stem = spec.replace(['+', '@', ':', '/'], "_");
        let stats = dir.join(format!("{stem}.jsonl"));
        let stderr = dir.join(format!("{stem}.err"));
        let started = Instant::now();
        let child = crate::procs::spawn(
            Command::new(onair)
                .args(args)
                .args(["--audio", spec, "-q", "--duration"])
                .arg(secs.to_string())
                .arg("--stats-json")
                .arg(&stats)
                .env("PULSE_SERVER", self.server())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr)?),
        )?;
        Ok(OnairRun {
            child,
            stats,
            stderr,
            secs,
            started,
        })
    }

    /// Stops the server with SIGSTOP (the hung-sound-server fault): its socket still
    /// accepts connections, nothing answers.
    pub fn pause(&mut self) -> io::Result<()> {
        self.guard.signal(libc::SIGSTOP)
    }

    /// Continues a server stopped by [`PulseServer::pause`].
    pub fn resume(&mut self) -> io::Result<()> {
        self.guard.signal(libc::SIGCONT)
    }

    /// Kills the server if it runs and starts a new one on the same socket.
    pub fn restart(&mut self) -> io::Result<()> {
        self.guard.kill();
        self.guard = spawn_server(self.dir.path(), self.with_mic)?;
        Ok(())
    }

    /// Plays a `hz` stereo sine (half scale, s16le) into [`NULL_SINK`] with `pacat`, for
    /// [`TONE_SECONDS`], fed from a thread that ends when pacat dies. Choose a `hz` that
    /// divides [`RATE`] so one second loops seamlessly.
    pub fn play_tone(&self, hz: f32) -> io::Result<ChildGuard> {
        self.play_tone_into(NULL_SINK, hz)
    }

    /// Plays `desktop_hz` into [`NULL_SINK`] (what "desktop" records) and `mic_hz` into
    /// [`MIC_SINK`] (what "mic" records, with [`PulseServer::start_with_mic`]): the two
    /// distinct tones a mix test tells apart.
    pub fn play_desktop_and_mic(
        &self,
        desktop_hz: f32,
        mic_hz: f32,
    ) -> io::Result<[ChildGuard; 2]> {
        Ok([
            self.play_tone_into(NULL_SINK, desktop_hz)?,
            self.play_tone_into(MIC_SINK, mic_hz)?,
        ])
    }

    /// [`PulseServer::play_tone`] into `sink` (e.g. [`MIC_SINK`], heard through
    /// [`MIC_SOURCE`]).
    pub fn play_tone_into(&self, sink: &str, hz: f32) -> io::Result<ChildGuard> {
        let child = Command::new(tool("pacat")?)
            .args([
                "--playback",
                &format!("--device={sink}"),
                "--format=s16le",
                &format!("--rate={RATE}"),
                "--channels=2",
            ])
            .env("PULSE_SERVER", self.server())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut guard = ChildGuard::new("pacat", child);
        let second = tone_second(hz);
        if let Some(mut stdin) = guard.child_mut().and_then(|c| c.stdin.take()) {
            std::thread::spawn(move || {
                for _ in 0..TONE_SECONDS {
                    if stdin.write_all(&second).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(guard)
    }
}

/// An onair run whose sound comes from a [`PulseServer`] (started by
/// [`PulseServer::run_onair`]); the test acts on the server while it runs, then
/// [`OnairRun::finish`] collects how it ended.
#[derive(Debug)]
pub struct OnairRun {
    child: ChildGuard,
    /// Its `--stats-json` file.
    pub stats: PathBuf,
    stderr: PathBuf,
    secs: u32,
    started: Instant,
}

/// How an [`OnairRun`] ended.
#[derive(Debug)]
pub struct OnairOutcome {
    /// onair's exit status.
    pub status: std::process::ExitStatus,
    /// The final `--stats-json` object.
    pub last_stats: serde_json::Value,
    /// onair's stderr.
    pub stderr: String,
    /// From spawn to exit: a start that waited for a hung device shows here.
    pub wall: Duration,
}

impl OnairRun {
    /// Waits for onair to end (its duration plus [`ONAIR_EXIT_SLACK`]) and reads its
    /// stats and stderr.
    pub fn finish(mut self) -> io::Result<OnairOutcome> {
        let status = self
            .child
            .wait_timeout(Duration::from_secs(u64::from(self.secs)) + ONAIR_EXIT_SLACK)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "onair did not exit"))?;
        let wall = self.started.elapsed();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines = crate::stats::read_stats(&self.stats)?;
        let last_stats = crate::stats::last(&lines)
            .cloned()
            .ok_or_else(|| io::Error::other("no stats line"))?;
        Ok(OnairOutcome {
            status,
            last_stats,
            stderr,
            wall,
        })
    }
}

/// How long past its `--duration` an [`OnairRun`] may take to exit.
pub const ONAIR_EXIT_SLACK: Duration = Duration::from_secs(30);

/// One second of a `hz` sine, half scale, stereo s16le at [`RATE`].
fn tone_second(hz: f32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(RATE as usize * 4);
    for i in 0..RATE {
        let v =
            (0.5 * (std::f32::consts::TAU * hz * i as f32 / RATE as f32).sin() * 32767.0) as i16;
        buf.extend_from_slice(&v.to_le_bytes());
        buf.extend_from_slice(&v.to_le_bytes());
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_second_is_a_whole_number_of_periods() {
        let s = tone_second(1000.0);
        assert_eq!(s.len(), RATE as usize * 4);
        let first = i16::from_le_bytes([s[0], s[1]]);
        assert_eq!(first, 0);
        let peak = s
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs())
            .max();
        assert!(
            peak.is_some_and(|p| (16_000..=16_384).contains(&p)),
            "{peak:?}"
        );
    }

    #[test]
    fn starts_plays_restarts() {
        if !crate::require_tools(&["pulseaudio", "pacat", "pactl"]) {
            return;
        }
        let mut p = PulseServer::start().expect("pulseaudio");
        let mut tone = p.play_tone(1000.0).expect("pacat");
        assert!(tone.try_wait().expect("try_wait").is_none());
        p.restart().expect("restart");
        tone.kill();
    }
}
