//! RTMPS against a real TLS peer: nginx's `stream` module (OpenSSL) in front
//! of nginx-rtmp, with certificates made in the test (test kit `tls.rs`):
//! a good one for `localhost` and `127.0.0.1`, and three to refuse
//! (self-signed, wrong name, expired).

use super::tests::{publish_synthetic, read_flv_tags};
use super::tls::{MAX_RECORD_OVERHEAD, MAX_TLS_BACKLOG};
use super::*;
use crate::flv::tests::test_headers;
use onair_testkit::{require_tools, NginxOptions, NginxRtmp, TestPki, SCHEDULING_SLACK};
use std::process::Command;

const SECRET_KEY: &str = "s3cretKey_do_not_print";
/// Index of each certificate in [`NginxOptions::tls`] (see [`nginx_with_fronts`]).
const GOOD: usize = 0;
const SELF_SIGNED: usize = 1;
const WRONG_NAME: usize = 2;
const EXPIRED: usize = 3;

/// nginx-rtmp with one TLS front per test certificate; `None` when nginx is
/// missing (the test skips, or fails under CI).
fn nginx_with_fronts() -> Option<(TestPki, NginxRtmp)> {
    if !require_tools(&["nginx"]) {
        return None;
    }
    let pki = TestPki::new().expect("test certificates");
    let opts = NginxOptions {
        tls: vec![
            pki.good.clone(),
            pki.self_signed.clone(),
            pki.wrong_name.clone(),
            pki.expired.clone(),
        ],
        ..NginxOptions::default()
    };
    let nginx = NginxRtmp::start(opts).expect("nginx with TLS fronts starts");
    Some((pki, nginx))
}

fn trusting(pki: &TestPki) -> ConnectOptions {
    ConnectOptions {
        tls: Some(TlsClient::new(Some(&pki.ca_file())).expect("CA file loads")),
        ..ConnectOptions::default()
    }
}

fn rtmps(nginx: &NginxRtmp, front: usize, host: &str, key: &str) -> RtmpUrl {
    let url = nginx.rtmps_url(front, host, key).expect("front exists");
    RtmpUrl::parse(&url, None).expect("url parses")
}

#[test]
fn rtmps_publish_by_address_and_by_name_reaches_nginx() {
    let Some((pki, nginx)) = nginx_with_fronts() else {
        return;
    };
    let opts = trusting(&pki);
    // By address: checked against the certificate's IP SAN (no SNI).
    let key = "tlsip";
    let p = RtmpPublisher::connect(
        &rtmps(&nginx, GOOD, "127.0.0.1", key),
        &opts,
        &test_headers(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    // The socket under TLS is still ours, with the same options.
    let sock = socket2::SockRef::from(p.stream.tcp());
    assert_eq!(sock.tcp_user_timeout().unwrap(), Some(DEFAULT_USER_TIMEOUT));
    assert!(sock.tcp_nodelay().unwrap());
    assert!(p.ms_since_last_ack().is_some());
    assert!(matches!(p.stream, Transport::Tls(_)));
    let sent = publish_synthetic(p, 30);
    let recording = onair_testkit::wait_for(Duration::from_secs(3), || {
        let path = nginx.recordings().into_iter().find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tlsip-"))
        })?;
        let tags = read_flv_tags(&path);
        (tags.len() >= sent - 1).then_some(tags)
    })
    .unwrap_or_else(|| panic!("no complete recording: {}", nginx.error_log()));
    let media = |t: u8| {
        recording
            .iter()
            .filter(|tag| tag.0 == t && tag.2[1] == 0x01)
            .count()
    };
    assert_eq!(
        (media(flv::TAG_VIDEO), media(flv::TAG_AUDIO)),
        (30, 30),
        "{}",
        nginx.error_log()
    );
    // By name: SNI and the DNS SAN.
    let p = RtmpPublisher::connect(
        &rtmps(&nginx, GOOD, "localhost", "tlsname"),
        &opts,
        &test_headers(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    p.close(Duration::from_millis(500));
}

#[test]
fn bad_certificates_are_refused_at_once_saying_which_check_failed() {
    let Some((pki, nginx)) = nginx_with_fronts() else {
        return;
    };
    let opts = trusting(&pki);
    let system_only = ConnectOptions {
        tls: Some(TlsClient::new(None).expect("system store")),
        ..ConnectOptions::default()
    };
    for (front, host, opts, expected) in [
        (SELF_SIGNED, "localhost", &opts, "unknown issuer"),
        (
            WRONG_NAME,
            "localhost",
            &opts,
            "wrong name: not valid for localhost",
        ),
        (
            WRONG_NAME,
            "127.0.0.1",
            &opts,
            "wrong name: not valid for 127.0.0.1",
        ),
        (EXPIRED, "127.0.0.1", &opts, "expired"),
        // A good certificate from an authority the system does not trust.
        (GOOD, "localhost", &system_only, "unknown issuer"),
    ] {
        let url = rtmps(&nginx, front, host, SECRET_KEY);
        let start = Instant::now();
        let err = RtmpPublisher::connect(&url, opts, &test_headers()).unwrap_err();
        let took = start.elapsed();
        assert!(err.is_certificate_failure(), "{front}/{host}: {err}");
        assert!(!err.is_rejection());
        let text = err.to_string();
        assert!(text.contains(expected), "{front}/{host}: {text}");
        assert!(text.starts_with("TLS certificate of "), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(!format!("{text} {err:?}").contains(SECRET_KEY));
        assert!(took < Duration::from_secs(2), "{front}/{host}: {took:?}");
    }
}

#[test]
fn tls_handshake_is_bounded_by_the_handshake_timeout() {
    // A server that accepts and never answers the ClientHello; it reads
    // until the client gives up and closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        while matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {}
    });
    let url = RtmpUrl::parse(&format!("rtmps://127.0.0.1:{port}/live/k"), None).unwrap();
    let opts = ConnectOptions {
        handshake_timeout: Duration::from_millis(500),
        ..ConnectOptions::default()
    };
    let start = Instant::now();
    let err = RtmpPublisher::connect(&url, &opts, &test_headers()).unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(
            err,
            RtmpError::Timeout {
                stage: Stage::TlsHandshake
            }
        ),
        "{err}"
    );
    assert!(
        !err.is_certificate_failure(),
        "a timeout is a network fault"
    );
    assert!(took < Duration::from_millis(1500), "{took:?}");
    holder.join().unwrap();
}

#[test]
fn stalled_tls_pump_is_bounded_and_counts_what_tls_holds() {
    let Some((pki, nginx)) = nginx_with_fronts() else {
        return;
    };
    let opts = ConnectOptions {
        send_buffer_bytes: Some(64 * 1024),
        ..trusting(&pki)
    };
    let mut p = RtmpPublisher::connect(
        &rtmps(&nginx, GOOD, "127.0.0.1", "stall"),
        &opts,
        &test_headers(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    p.pump(Duration::from_millis(500)).unwrap();
    // Freeze nginx (TLS front and RTMP): the receive window fills up.
    let pid = nginx.pid().expect("nginx runs").to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let big = Bytes::from(vec![0x27u8; 256 * 1024]);
    for i in 0..40 {
        p.queue_media(MediaKind::Video, i * 33, big.clone())
            .unwrap();
    }
    for _ in 0..5 {
        let start = Instant::now();
        p.pump(Duration::from_millis(100)).unwrap();
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(100) + SCHEDULING_SLACK,
            "pump blocked for {took:?}"
        );
    }
    let tls_held = p.stream.backlog_bytes();
    assert!(
        tls_held <= MAX_TLS_BACKLOG + MAX_RECORD_OVERHEAD,
        "{tls_held}"
    );
    assert!(p.kernel_unsent_bytes() > 0);
    // Everything taken from the session but not acknowledged counts:
    // pending includes what TLS holds, the acked offset excludes it.
    assert_eq!(p.pending_bytes(), p.session.pending_bytes() + tls_held);
    assert!(p.pending_bytes() > 5 * 1024 * 1024);
    assert!(
        p.acked_offset() + (p.kernel_unsent_bytes() + tls_held) as u64 <= p.session.consumed(),
        "acked {} kernel {} tls {tls_held} consumed {}",
        p.acked_offset(),
        p.kernel_unsent_bytes(),
        p.session.consumed()
    );
    assert_eq!(p.pump(Duration::from_millis(50)).unwrap(), 0);
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
}

#[test]
fn a_ca_file_without_certificates_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for path in [empty, dir.path().join("missing.pem")] {
        let err = TlsClient::new(Some(&path)).unwrap_err();
        assert!(
            matches!(
                err,
                crate::Error::InvalidConfig {
                    option: "ca-file",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
}
