//! The `onair` command. See `onair --help`.
//!
//! Why the CLI is thin: everything a Node user or a library user can do goes
//! through `onair::Streamer`; the CLI only parses, prints the status line and
//! the stats file, and maps failures to exit codes (0 ok, 1 runtime, 2 usage).

mod args;
mod colour;
mod report;
mod status;

use args::{Cli, Command, CommonArgs, NetArgs};
use clap::Parser;
use onair::output::server::LocalReceiver;
use onair::output::url::RtmpUrl;
use onair::{Error, InputState, RecordConfig, Stats, StreamOutputConfig, Streamer, StreamerConfig};
use status::StatsSink;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Environment variable holding the stream key.
const STREAM_KEY_ENV: &str = "ONAIR_STREAM_KEY";
/// How often the main loop looks at signals, events and the clock.
const POLL: Duration = Duration::from_millis(50);
/// Stats lines and the status line are written this often.
const STATS_PERIOD: Duration = Duration::from_secs(1);

/// How the command failed.
enum Failure {
    /// Bad arguments: exit 2.
    Usage(String),
    /// Something went wrong while running: exit 1.
    Runtime(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            // An existing recording file is a usage error: the command asks
            // for something that --overwrite would allow.
            Error::InvalidConfig { .. } | Error::InvalidUrl(_) | Error::FileExists { .. } => {
                Self::Usage(e.to_string())
            }
            other => Self::Runtime(other.to_string()),
        }
    }
}

/// SVT-AV1 prints its banner and settings ("Svt[info]: ...") to stderr with
/// its own logger, which only the `SVT_LOG` environment variable controls
/// (1 = errors). The CLI's stderr is for onair's own lines, so the GPL build
/// sets it, unless the user did, before any thread exists.
#[cfg(feature = "gpl")]
fn quiet_svt_av1() {
    if std::env::var_os("SVT_LOG").is_none() {
        std::env::set_var("SVT_LOG", "1");
    }
}

fn main() -> ExitCode {
    #[cfg(feature = "gpl")]
    quiet_svt_av1();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // One line that says what is wrong (clap's first line); the
            // usage and tips are one `--help` away.
            let rendered = e.render().to_string();
            let line = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments");
            eprintln!("onair: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ONAIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour::stderr_wants_colour())
        .init();
    let result = match cli.command {
        Command::Stream(a) => run_stream(a.url.as_deref(), &a.common, &a.net),
        Command::Record(a) => run_record(&a.file, &a.common),
        Command::Report(a) => run_report(&a),
        Command::Devices => {
            print_devices();
            Ok(())
        }
        Command::Encoders => {
            print_encoders();
            Ok(())
        }
        Command::Completions { shell } => {
            let mut cmd = <args::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "onair", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => write_man_pages(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("onair: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("onair: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The man pages: clap_mangen's rendering of the grammar, `onair.1` and one
/// page per subcommand (`onair-stream.1`, ...), written into `dir`.
fn write_man_pages(dir: &std::path::Path) -> Result<(), Failure> {
    let cmd = <args::Cli as clap::CommandFactory>::command();
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(cmd, dir))
        .map_err(|e| Failure::Runtime(format!("writing the man pages into {}: {e}", dir.display())))
}

fn run_stream(url: Option<&str>, common: &CommonArgs, net: &NetArgs) -> Result<(), Failure> {
    let key = std::env::var(STREAM_KEY_ENV).ok().filter(|k| !k.is_empty());
    let mut receiver = None;
    let url = match url {
        Some(u) => RtmpUrl::parse(u, key.as_deref())?,
        None => {
            let dir = std::env::current_dir()
                .map_err(|e| Failure::Runtime(format!("current directory: {e}")))?
                .join("onair-recordings");
            let r = LocalReceiver::start_default(dir.clone())
                .map_err(|e| Failure::Runtime(format!("starting the local receiver: {e}")))?;
            eprintln!(
                "onair: no URL given: streaming to the built-in receiver at {}; it records to {}",
                r.url(),
                dir.display()
            );
            let url = RtmpUrl::parse(&r.url(), None)?;
            receiver = Some(r);
            url
        }
    };
    let mut urls = vec![url];
    for extra in &net.also {
        urls.push(RtmpUrl::parse(extra, None)?);
    }
    let video = common.video_settings();
    let audio = common.audio_settings();
    let total_bps = video.as_ref().map_or(0, |v| u64::from(v.bitrate_bps))
        + audio.as_ref().map_or(0, |a| u64::from(a.bitrate_bps));
    let outputs = urls
        .into_iter()
        .map(|url| {
            let mut out = StreamOutputConfig::new(url);
            out.limits = Some(net.limits(total_bps));
            out.stall_timeout = net.stall_timeout;
            out.reconnect.max_delay = net.reconnect_max_delay;
            out.reconnect.max_retries = net.max_retries;
            out.ca_file.clone_from(&net.ca_file);
            out
        })
        .collect();
    let records = net
        .record
        .iter()
        .map(|path| record_config(path, common))
        .collect();
    let config = StreamerConfig {
        video,
        audio,
        outputs,
        records,
    };
    let result = run_streamer(config, common);
    if let Some(r) = receiver {
        let files = r.recordings();
        r.stop();
        for f in files {
            eprintln!("onair: the local receiver recorded {}", f.display());
        }
    }
    result
}

/// `onair report`: prints where the picture went (stdout, so a script can
/// pick it up).
fn run_report(a: &args::ReportArgs) -> Result<(), Failure> {
    match report::run(&a.stats, a.out.as_deref(), a.output.as_deref()) {
        Ok(path) => {
            println!("{}", path.display());
            Ok(())
        }
        Err(report::ReportError::Usage(e)) => Err(Failure::Usage(e)),
        Err(report::ReportError::Runtime(e)) => Err(Failure::Runtime(e)),
    }
}

fn print_devices() {
    let devices = onair::list_devices();
    println!("video (--video):");
    println!("  {:<24} moving test pattern with frame numbers", "test");
    for d in devices.iter().filter(|d| {
        matches!(
            d.kind,
            onair::DeviceKind::Screen | onair::DeviceKind::Window
        )
    }) {
        println!("  {:<24} {}", d.name, d.description);
    }
    println!("audio (--audio; mix with +, e.g. desktop+mic@0.6):");
    println!("  {:<24} 440 Hz tone with a 1 kHz beep each second", "test");
    println!("  {:<24} no audio", "none");
    for d in devices
        .iter()
        .filter(|d| d.kind == onair::DeviceKind::AudioInput)
    {
        println!("  {:<24} {}", d.name, d.description);
    }
    let sinks: Vec<_> = devices
        .iter()
        .filter(|d| d.kind == onair::DeviceKind::AudioSink)
        .collect();
    if !sinks.is_empty() {
        println!("PulseAudio sinks (what plays; record one through its monitor):");
        for d in sinks {
            println!("  {:<24} {}", d.name, d.description);
        }
    }
}

/// `onair encoders`: one line per encoder, usable ones marked; stdout, so a
/// script can grep it.
fn print_encoders() {
    println!("video encoders (--video-encoder):");
    for e in onair::video::encoder::list_encoders() {
        let mark = if e.usable { "yes" } else { "no " };
        println!("  {:<12} {} {}", e.kind.name(), mark, e.note);
    }
    println!("audio encoder: {} (AAC-LC)", onair::audio::encoder::BACKEND);
}

fn record_config(path: &std::path::Path, common: &CommonArgs) -> RecordConfig {
    let mut cfg = RecordConfig::new(path);
    cfg.overwrite = common.overwrite;
    cfg
}

/// `onair record FILE`: the Streamer runs with no stream output, so the
/// clock starts at once.
fn run_record(file: &std::path::Path, common: &CommonArgs) -> Result<(), Failure> {
    let config = StreamerConfig {
        video: common.video_settings(),
        audio: common.audio_settings(),
        outputs: Vec::new(),
        records: vec![record_config(file, common)],
    };
    run_streamer(config, common)
}

/// Runs until the duration elapses, a signal arrives, or every output failed.
fn run_streamer(config: StreamerConfig, common: &CommonArgs) -> Result<(), Failure> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, interrupted.clone())
            .map_err(|e| Failure::Runtime(format!("installing a signal handler: {e}")))?;
    }
    let mut live_report = match &common.report {
        Some(path) if !report::directory_exists(path) => {
            return Err(Failure::Usage(format!(
                "--report {}: the directory does not exist",
                path.display()
            )));
        }
        Some(path) => Some(report::LiveReport::new(path.clone())),
        None => None,
    };
    let fps = config.video.as_ref().map_or(0, |v| v.fps);
    let mut sink = StatsSink::open(common.stats_json.as_deref(), !common.quiet, fps)
        .map_err(|e| Failure::Runtime(format!("opening the stats file: {e}")))?;
    let streamer = Streamer::start(config)?;
    sink.set_output_names(streamer.stats().into_iter().map(|s| s.output).collect());
    let started = Instant::now();
    let mut next_stats = started + STATS_PERIOD;
    let mut failure = None;
    loop {
        std::thread::sleep(POLL);
        for event in streamer.events().try_iter() {
            sink.event(&event);
        }
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        if common.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        match streamer.input_state() {
            InputState::Live => {}
            // A file without --loop played to its end: a clean stop.
            InputState::Ended => {
                sink.clear_line();
                eprintln!("onair: the input file played to its end");
                break;
            }
            InputState::Failed(why) => {
                failure = Some(why);
                break;
            }
        }
        if streamer.all_outputs_failed() {
            failure = Some(
                streamer
                    .failure()
                    .unwrap_or_else(|| "every output failed".into()),
            );
            break;
        }
        if Instant::now() >= next_stats {
            next_stats += STATS_PERIOD;
            let stats = streamer.stats();
            if let Some(r) = live_report.as_mut() {
                r.record(&stats);
            }
            sink.write(&stats, false)
                .map_err(|e| Failure::Runtime(format!("writing stats: {e}")))?;
        }
    }
    sink.clear_line();
    let final_stats: Vec<Stats> = streamer.stop();
    // The picture first: a stats file that fails to write must not cost it.
    if let Some(mut r) = live_report {
        r.record(&final_stats);
        match r.finish() {
            Ok(path) => eprintln!("onair: report written to {}", path.display()),
            Err(e) => eprintln!("onair: warning: no report: {e}"),
        }
    }
    sink.write(&final_stats, true)
        .map_err(|e| Failure::Runtime(format!("writing stats: {e}")))?;
    sink.summary(&final_stats);
    // A recording that failed (disk full, I/O error) makes the run a runtime
    // failure (exit 1) even though the streams went on to the end.
    let record_failure = final_stats
        .iter()
        .find(|s| s.record_errors.is_some_and(|n| n > 0))
        .map(|s| {
            s.last_error
                .clone()
                .unwrap_or_else(|| format!("recording {} failed", s.output))
        });
    match failure.or(record_failure) {
        Some(f) => Err(Failure::Runtime(f)),
        None => Ok(()),
    }
}

impl From<onair::output::rtmp::RtmpError> for Failure {
    fn from(e: onair::output::rtmp::RtmpError) -> Self {
        Self::Runtime(e.to_string())
    }
}
