//! The test kit's peers and judges for tests that are not written in Rust
//! (the Node addon's `node --test` suite), so that every test of the project
//! uses one nginx setup, one fault proxy and one FFmpeg judge.
//!
//! ```text
//! testkit-peer nginx         prints {"port":P,"record_dir":"DIR"}; runs until "stop" or EOF on stdin
//! testkit-peer nginx-tls     the same nginx with RTMPS fronts and a test CA (tls.rs) made for it;
//!                              prints {"port":P,"record_dir":"DIR","ca_file":"PEM",
//!                              "tls_ports":{"good":P,"self_signed":P,"wrong_name":P,"expired":P}}
//! testkit-peer proxy PORT    a FaultProxy to 127.0.0.1:PORT; prints {"port":P}; stdin commands:
//!                              cut MS        reset every connection, refuse new ones for MS ms
//!                              connections   how many connections were accepted so far
//!                              stop          (or EOF) end
//! testkit-peer judge FILE    prints {"frames":{"h264":N,"aac":N},"decode_errors":"..."}
//! ```
//!
//! Every process it starts is killed when it ends (the test kit's guards), and
//! it ends when its parent closes its stdin, even if the parent test crashed.

use onair_testkit::{ffmpeg, FaultProxy, NginxOptions, NginxRtmp, TestPki};
use serde_json::json;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["nginx"] => nginx(),
        ["nginx-tls"] => nginx_tls(),
        ["proxy", port] => proxy(port),
        ["judge", file] => judge(Path::new(file)),
        _ => Err("usage: testkit-peer nginx | nginx-tls | proxy PORT | judge FILE".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testkit-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints one JSON line and flushes it (the parent waits for it).
fn announce(v: serde_json::Value) -> Result<(), String> {
    let mut out = io::stdout().lock();
    writeln!(out, "{v}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}

/// Runs `on_line` for each stdin line until "stop" or EOF.
fn serve_stdin(mut on_line: impl FnMut(&str) -> Result<(), String>) -> Result<(), String> {
    for line in io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let line = line.trim();
        if line == "stop" {
            break;
        }
        if !line.is_empty() {
            on_line(line)?;
        }
    }
    Ok(())
}

fn nginx() -> Result<(), String> {
    let nginx = NginxRtmp::start(NginxOptions::default()).map_err(|e| format!("nginx: {e}"))?;
    announce(json!({
        "port": nginx.port(),
        "record_dir": nginx.record_dir(),
    }))?;
    serve_stdin(|line| Err(format!("unknown command {line:?}")))?;
    // Killed by pid on drop; the test read its recordings while it ran.
    drop(nginx);
    Ok(())
}

/// nginx behind TLS fronts, one per certificate of a test PKI (good, self-signed, wrong
/// name, expired), for the RTMPS tests of the Node addon (`caFile`, refused certificates).
fn nginx_tls() -> Result<(), String> {
    let pki = TestPki::new().map_err(|e| format!("pki: {e}"))?;
    let opts = NginxOptions {
        tls: pki.all(),
        ..NginxOptions::default()
    };
    let nginx = NginxRtmp::start(opts).map_err(|e| format!("nginx: {e}"))?;
    let tls_ports: serde_json::Map<String, serde_json::Value> = onair_testkit::tls::CERT_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), json!(nginx.tls_port(i))))
        .collect();
    announce(json!({
        "port": nginx.port(),
        "record_dir": nginx.record_dir(),
        "ca_file": pki.ca_file(),
        "tls_ports": tls_ports,
    }))?;
    serve_stdin(|line| Err(format!("unknown command {line:?}")))?;
    // nginx first (killed by pid on drop), then the certificates it read.
    drop(nginx);
    drop(pki);
    Ok(())
}

fn proxy(port: &str) -> Result<(), String> {
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let upstream = SocketAddr::from(([127, 0, 0, 1], port));
    let proxy = FaultProxy::start(upstream).map_err(|e| format!("proxy: {e}"))?;
    let proxy = Arc::new(proxy);
    announce(json!({ "port": proxy.port() }))?;
    serve_stdin(
        |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["cut", ms] => {
                let ms: u64 = ms.parse().map_err(|_| format!("bad duration {ms:?}"))?;
                proxy.refuse(true);
                proxy.reset_all();
                // Detached: a "stop" during the refusal must not wait for it.
                let p = Arc::clone(&proxy);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    p.refuse(false);
                });
                announce(json!({ "done": "cut" }))
            }
            ["connections"] => announce(json!({ "connections": proxy.connections() })),
            _ => Err(format!("unknown command {line:?}")),
        },
    )
}

fn judge(file: &Path) -> Result<(), String> {
    let probe = ffmpeg::probe(file).map_err(|e| format!("ffprobe: {e}"))?;
    let frames: serde_json::Map<String, serde_json::Value> = probe
        .streams
        .iter()
        .map(|s| (s.codec_name.clone(), json!(s.nb_read_frames)))
        .collect();
    let errors = ffmpeg::decode_errors(file).map_err(|e| format!("ffmpeg: {e}"))?;
    announce(json!({ "frames": frames, "decode_errors": errors }))
}
