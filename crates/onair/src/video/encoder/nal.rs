//! NAL unit plumbing shared by the H.264 and HEVC backends: Annex B (what
//! libavcodec's encoders emit) to length-prefixed (what FLV and MP4 carry),
//! and the few header fields the policies read.
//!
//! Why by hand: these are a dozen lines of framing (ISO/IEC 14496-15); the
//! crates that do it bring whole demuxers with them.
// The default build uses only the start-code helper (openh264 emits Annex B
// per NAL); the rest serves the libavcodec backend.
#![cfg_attr(not(feature = "avcodec"), allow(dead_code))]

/// H.264 `nal_unit_type`s we look at.
pub(super) const H264_SLICE: u8 = 1;
/// IDR slice.
pub(super) const H264_IDR: u8 = 5;
/// Sequence parameter set.
pub(super) const H264_SPS: u8 = 7;
/// Picture parameter set.
pub(super) const H264_PPS: u8 = 8;
/// Access unit delimiter.
pub(super) const H264_AUD: u8 = 9;

/// HEVC `nal_unit_type`s we look at (ITU-T H.265 table 7-1).
pub(super) const HEVC_VPS: u8 = 32;
/// Sequence parameter set.
pub(super) const HEVC_SPS: u8 = 33;
/// Picture parameter set.
pub(super) const HEVC_PPS: u8 = 34;
/// Access unit delimiter.
pub(super) const HEVC_AUD: u8 = 35;

/// Removes an Annex B start code (`00 00 01` or `00 00 00 01`) if present.
pub(super) fn strip_start_code(nal: &[u8]) -> &[u8] {
    if let Some(rest) = nal.strip_prefix(&[0, 0, 0, 1]) {
        rest
    } else if let Some(rest) = nal.strip_prefix(&[0, 0, 1]) {
        rest
    } else {
        nal
    }
}

/// The NAL units of an Annex B byte stream, without start codes (trailing
/// zero bytes, which belong to the next start code, are dropped).
pub(super) fn split_annexb(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&next| next - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

/// Appends `nal` with a 4-byte big-endian length before it. `None` if it
/// is larger than 4 GiB.
pub(super) fn push_length_prefixed(out: &mut Vec<u8>, nal: &[u8]) -> Option<()> {
    let len = u32::try_from(nal.len()).ok()?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
    Some(())
}

/// H.264 `nal_unit_type`.
pub(super) fn h264_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// HEVC `nal_unit_type`.
pub(super) fn hevc_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 0, 4,
        ];
        let nals = split_annexb(&data);
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 0, 4]]);
        assert_eq!(h264_type(nals[2]), H264_IDR);
        assert!(split_annexb(&[1, 2, 3]).is_empty());
        let mut out = Vec::new();
        push_length_prefixed(&mut out, nals[1]).unwrap();
        assert_eq!(out, vec![0, 0, 0, 2, 0x68, 3]);
        assert_eq!(hevc_type(&[0x40, 0x01]), HEVC_VPS);
        assert_eq!(strip_start_code(&[0, 0, 1, 9]), &[9]);
    }
}
