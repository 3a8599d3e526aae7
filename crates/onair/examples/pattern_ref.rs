//! Reference frames of the built-in test pattern, for PSNR measurements.
//!
//! Why: to judge what a server received, FFmpeg's `psnr` filter needs the
//! exact pictures onair encoded. `TestPattern` is deterministic when frames are
//! rendered in order 0, 1, 2, ... (the noise band comes from a fixed-seed PRNG
//! that advances once per rendered frame), which is what the CaptureThread does
//! as long as it never skips a slot. So rendering frames `0..N` here gives the
//! reference for a stream whose first received frame is index 0 and that has
//! no gap; `--indices` checks that on the decoded recording.
//!
//! When the encoder was busy and a frame was skipped (`video_frames_skipped`),
//! the CaptureThread still rendered it, so the noise stays in step; the
//! recording just lacks that index. `--indices --save-list F` writes the index
//! of every received frame to `F`, and `--select F` then writes exactly those
//! frames (rendering all the others in between, unwritten), aligned one to one.
//!
//! ```text
//! # write frames 0..1800 of the 1280x720 pattern as raw I420 (yuv420p)
//! cargo run --release -p onair --example pattern_ref -- --size 1280x720 --frames 1800 -o ref.yuv
//! # read back the frame indices of a decoded recording (raw yuv420p on stdin;
//! # passthrough, or FFmpeg duplicates frames to fill timestamp gaps)
//! ffmpeg -v error -i rec.flv -fps_mode passthrough -f rawvideo -pix_fmt yuv420p - |
//!   cargo run --release -p onair --example pattern_ref -- --indices --save-list idx.txt
//! # the reference for exactly the frames received
//! cargo run --release -p onair --example pattern_ref -- --select idx.txt -o ref.yuv
//! ```
//!
//! `--indices` prints one line: `frames=N first=I last=J gaps=G unreadable=U`,
//! where a gap is any step between consecutive readable indices other than +1.

use onair::video::source::{decode_frame_index, TestPattern};
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: pattern_ref [--size WxH] [--frames N | --select LIST] [-o FILE]\n       \
                     pattern_ref [--size WxH] --indices [--save-list LIST]   (raw yuv420p on stdin)";

struct Args {
    width: u32,
    height: u32,
    frames: u64,
    out: Option<String>,
    indices: bool,
    /// `--select`: the frame indices to write, non-decreasing.
    select: Option<Vec<u64>>,
    /// `--save-list`: where `--indices` writes each frame's index.
    save_list: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        width: 1280,
        height: 720,
        frames: 1800,
        out: None,
        indices: false,
        select: None,
        save_list: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--size" => {
                let v = value("--size")?;
                let (w, h) = v.split_once('x').ok_or(format!("bad size {v:?}"))?;
                a.width = w.parse().map_err(|_| format!("bad width {w:?}"))?;
                a.height = h.parse().map_err(|_| format!("bad height {h:?}"))?;
                if !a.width.is_multiple_of(2)
                    || !a.height.is_multiple_of(2)
                    || a.width < 16
                    || a.height < 16
                {
                    return Err(format!("size {v} must be even and at least 16x16"));
                }
            }
            "--frames" => {
                let v = value("--frames")?;
                a.frames = v.parse().map_err(|_| format!("bad frame count {v:?}"))?;
            }
            "-o" | "--output" => a.out = Some(value("-o")?),
            "--indices" => a.indices = true,
            "--save-list" => a.save_list = Some(value("--save-list")?),
            "--select" => {
                let path = value("--select")?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                let list = text
                    .lines()
                    .map(|l| l.trim().parse::<u64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("{path}: one frame index per line expected"))?;
                if list.windows(2).any(|w| w[1] < w[0]) {
                    return Err(format!("{path}: indices must not decrease"));
                }
                a.select = Some(list);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn write_frames(a: &Args) -> io::Result<()> {
    let sink: Box<dyn Write> = match &a.out {
        Some(path) => Box::new(std::fs::File::create(path)?),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut pattern = TestPattern::new(a.width, a.height);
    let Some(list) = &a.select else {
        for index in 0..a.frames {
            let f = pattern.render(index);
            out.write_all(&f.y)?;
            out.write_all(&f.u)?;
            out.write_all(&f.v)?;
        }
        return out.flush();
    };
    // Render every index in order (the noise PRNG advances once per render),
    // writing each one as many times as the list names it.
    let mut wanted = list.iter().peekable();
    let mut index = 0u64;
    while wanted.peek().is_some() {
        let f = pattern.render(index);
        while wanted.next_if_eq(&&index).is_some() {
            out.write_all(&f.y)?;
            out.write_all(&f.u)?;
            out.write_all(&f.v)?;
        }
        index += 1;
    }
    out.flush()
}

fn read_indices(a: &Args) -> io::Result<()> {
    let luma = a.width as usize * a.height as usize;
    let mut frame = vec![0u8; luma + luma / 2];
    let mut input = io::stdin().lock();
    let mut list = match &a.save_list {
        Some(path) => Some(BufWriter::new(std::fs::File::create(path)?)),
        None => None,
    };
    let (mut frames, mut gaps, mut unreadable) = (0u64, 0u64, 0u64);
    let (mut first, mut last) = (None::<u64>, None::<u64>);
    loop {
        match input.read_exact(&mut frame) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        frames += 1;
        let decoded = decode_frame_index(&frame[..luma], a.width, a.height);
        if let Some(list) = list.as_mut() {
            match decoded {
                Some(i) => writeln!(list, "{i}")?,
                None => writeln!(list, "?")?,
            }
        }
        match decoded {
            Some(i) => {
                if last.is_some_and(|l| i != l + 1) {
                    gaps += 1;
                }
                first.get_or_insert(i);
                last = Some(i);
            }
            None => unreadable += 1,
        }
    }
    if let Some(mut list) = list {
        list.flush()?;
    }
    let show = |v: Option<u64>| v.map_or("none".to_string(), |i| i.to_string());
    println!(
        "frames={frames} first={} last={} gaps={gaps} unreadable={unreadable}",
        show(first),
        show(last)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pattern_ref: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if args.indices {
        read_indices(&args)
    } else {
        write_frames(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (e.g. `| head -c`) is a normal way to stop reading.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pattern_ref: {e}");
            ExitCode::FAILURE
        }
    }
}
