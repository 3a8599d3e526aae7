//! Records checked against the ones FFmpeg's MP4 muxer writes for the same
//! parameter sets (libx265 and libsvtav1 output of a 64x64 test pattern).

use super::*;

/// x265's VPS, SPS and PPS of a 64x64 Main-profile stream.
const HEVC_VPS: &[u8] = &[
    0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03,
    0x00, 0x00, 0x03, 0x00, 0x1e, 0x95, 0x98, 0x09,
];
const HEVC_SPS: &[u8] = &[
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x1e, 0xa0, 0x20, 0x81, 0x05, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0, 0x16, 0x80, 0x80, 0x00,
    0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x04,
];
const HEVC_PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x22, 0x40];

/// The `hvcC` FFmpeg 5.1 writes for them.
const FFMPEG_HVCC: &str = "0101600000009000000000001ef000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003001e959809a10001002842010101600000030090000003000003001ea020810596566924caf0168080000003008000000f04a2000100074401c172b42240";

/// SVT-AV1's sequence header OBU (with size field) of a 64x64 stream.
const AV1_SEQUENCE_HEADER: &[u8] = &[
    0x0a, 0x0a, 0x00, 0x00, 0x00, 0x02, 0xaf, 0xff, 0x9f, 0x7f, 0x20, 0x08,
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn avc_record_layout() {
    let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x04];
    let pps = [0x68, 0xCE, 0x3C, 0x80];
    let rec = avc_config(&sps, &pps);
    assert_eq!(
        &rec[..],
        &[
            0x01, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0x00, 0x06, 0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x04,
            0x01, 0x00, 0x04, 0x68, 0xCE, 0x3C, 0x80
        ]
    );
    let (s, p) = avc_parameter_sets(&rec).unwrap();
    assert_eq!((&s[..], &p[..]), (&sps[..], &pps[..]));
    assert!(avc_parameter_sets(&rec[..7]).is_none());
}

#[test]
fn hevc_record_matches_ffmpeg() {
    // Any order in, VPS/SPS/PPS order out.
    let rec = hevc_config(&[HEVC_PPS, HEVC_SPS, HEVC_VPS]).unwrap();
    assert_eq!(hex(&rec), FFMPEG_HVCC);
    let err = hevc_config(&[HEVC_VPS, HEVC_PPS]).unwrap_err();
    assert!(err.to_string().contains("SPS"), "{err}");
    // A truncated SPS is an error, not a panic.
    for n in 0..HEVC_SPS.len() - 4 {
        let _ = hevc_config(&[HEVC_VPS, &HEVC_SPS[..n], HEVC_PPS]);
    }
}

#[test]
fn av1_record_matches_ffmpeg() {
    let rec = av1_config(AV1_SEQUENCE_HEADER).unwrap();
    assert_eq!(hex(&rec), "81000c000a0a00000002afff9f7f2008");
    // Without its size field the OBU is stored with one.
    let mut bare = vec![AV1_SEQUENCE_HEADER[0] & !0x02];
    bare.extend_from_slice(&AV1_SEQUENCE_HEADER[2..]);
    assert_eq!(av1_config(&bare).unwrap(), rec);
    // A temporal delimiter is not a sequence header.
    assert!(av1_config(&[0x12, 0x00]).is_err());
    for n in 0..AV1_SEQUENCE_HEADER.len() {
        let _ = av1_config(&AV1_SEQUENCE_HEADER[..n]);
    }
}

#[test]
fn annex_b_splitting() {
    let stream = [
        0, 0, 0, 1, 0x40, 1, 0, 0, 1, 0x42, 0, 0, 0, 0, 1, 0x44, 7, 0,
    ];
    let units: Vec<&[u8]> = annex_b_nal_units(&stream).collect();
    assert_eq!(units, vec![&[0x40, 1][..], &[0x42][..], &[0x44, 7][..]]);
    assert_eq!(annex_b_nal_units(&[]).count(), 0);
}
