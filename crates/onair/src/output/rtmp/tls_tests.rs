//! RTMPS against a real TLS peer: nginx's `stream` module (OpenSSL) in front
//! of nginx-rtmp, with certificates made in the test (test kit `tls.rs`):
//! a good one for `localhost` and `127.0.0.1`, and three to refuse
//! (self-signed, wrong name, expired).

use super::tests::{
    assert_socket_options, connect_to_silent_server, publish_and_record, pump_against_frozen_nginx,
};
use super::tls::{MAX_RECORD_OVERHEAD, MAX_TLS_BACKLOG};
use super::*;
use crate::flv::tests::test_headers;
use onair_testkit::{require_tools, NginxOptions, NginxRtmp, TestPki};

const SECRET_KEY: &str = "s3cretKey_do_not_print";
/// Index of each certificate in [`NginxOptions::tls`]: [`TestPki::all`]'s order
/// (`onair_testkit::tls::CERT_NAMES`).
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
        tls: pki.all(),
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
    assert_socket_options(&p);
    assert!(matches!(p.stream, Transport::Tls(_)));
    let (_, counts) = publish_and_record(&nginx, p, key);
    assert_eq!(counts, (30, 30), "{}", nginx.error_log());
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
    // A server that accepts and never answers the ClientHello.
    let (err, took) = connect_to_silent_server("rtmps");
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
    // Freezes nginx (TLS front and RTMP): the receive window fills up.
    let (_frozen, _) = pump_against_frozen_nginx(&nginx, &mut p);
    let tls_held = p.stream.backlog_bytes();
    assert!(
        tls_held <= MAX_TLS_BACKLOG + MAX_RECORD_OVERHEAD,
        "{tls_held}"
    );
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
