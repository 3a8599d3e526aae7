//! Decoder configuration records of the video codecs: `avcC` (H.264),
//! `hvcC` (HEVC) and `av1C` (AV1), built from the parameter sets an encoder
//! emits.
//!
//! Why here, once: FLV's (Enhanced RTMP's) sequence header and MP4's sample
//! entry carry exactly the same record, so [`VideoParams::config`] holds it as
//! bytes and every output copies it; an encoder backend only has to hand its
//! parameter sets to one of these builders. The record layouts themselves are
//! encoded by `mp4-atom` (ISO/IEC 14496-15 and the AV1-ISOBMFF binding); this
//! module only reads the few header fields the records repeat (profile,
//! level, chroma format, bit depth) out of the SPS or sequence header OBU.
//!
//! [`VideoParams::config`]: crate::packet::VideoParams::config

use std::fmt;

use bytes::Bytes;
use mp4_atom::{Atom, Av1c, Avcc, HvcCArray, Hvcc};

/// A parameter set that cannot be turned into a configuration record, with
/// the reason (which field was missing or out of range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err(reason: impl Into<String>) -> ConfigError {
    ConfigError(reason.into())
}

/// NAL length field size the records announce: every packet of every codec
/// here uses 4-byte big-endian lengths (`lengthSizeMinusOne = 3`).
pub const NAL_LENGTH_SIZE: u8 = 4;

/// HEVC NAL unit types that go into `hvcC` arrays, in the order written.
const HEVC_NAL_VPS: u8 = 32;
const HEVC_NAL_SPS: u8 = 33;
const HEVC_NAL_PPS: u8 = 34;
const HEVC_NAL_SEI_PREFIX: u8 = 39;

/// AV1 OBU type of a sequence header.
const AV1_OBU_SEQUENCE_HEADER: u8 = 1;

/// `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 5.3.3.1) from one SPS
/// and one PPS NAL unit (without start codes or length prefixes), with 4-byte
/// NAL lengths. Profile, compatibility and level are SPS bytes 1..4; a
/// truncated SPS gives zeros there rather than an error, as decoders read
/// them from the SPS itself.
pub fn avc_config(sps: &[u8], pps: &[u8]) -> Bytes {
    let avcc = Avcc {
        configuration_version: 1,
        avc_profile_indication: sps.get(1).copied().unwrap_or(0),
        profile_compatibility: sps.get(2).copied().unwrap_or(0),
        avc_level_indication: sps.get(3).copied().unwrap_or(0),
        length_size: NAL_LENGTH_SIZE,
        sequence_parameter_sets: vec![sps.to_vec()],
        picture_parameter_sets: vec![pps.to_vec()],
        ext: None,
    };
    encode_body(&avcc)
}

/// The first SPS and first PPS of an `avcC` record, for code that needs
/// them back (an Annex B dump, a check that the encoder's SPS did not change).
/// `None` if the record is malformed or lacks either.
pub fn avc_parameter_sets(avcc: &[u8]) -> Option<(Bytes, Bytes)> {
    let mut body = avcc;
    let rec = Avcc::decode_body(&mut body).ok()?;
    let sps = rec.sequence_parameter_sets.into_iter().next()?;
    let pps = rec.picture_parameter_sets.into_iter().next()?;
    Some((Bytes::from(sps), Bytes::from(pps)))
}

/// `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 8.3.3.1) from the
/// encoder's parameter set NAL units (without start codes or length
/// prefixes): at least one VPS, SPS and PPS, in any order; prefix SEI units
/// are kept, other types are ignored. Profile, tier, level, chroma format,
/// bit depths and temporal layering are read from the first SPS. Arrays are
/// marked complete (the `hvc1` sample entry and Enhanced RTMP's `hvc1`
/// require every parameter set to be in the record, none in the stream).
pub fn hevc_config(parameter_sets: &[&[u8]]) -> Result<Bytes, ConfigError> {
    let mut arrays: Vec<HvcCArray> = [
        HEVC_NAL_VPS,
        HEVC_NAL_SPS,
        HEVC_NAL_PPS,
        HEVC_NAL_SEI_PREFIX,
    ]
    .iter()
    .map(|&nal_unit_type| HvcCArray {
        completeness: true,
        nal_unit_type,
        nalus: Vec::new(),
    })
    .collect();
    for nal in parameter_sets {
        let Some(&first) = nal.first() else { continue };
        let kind = (first >> 1) & 0x3F;
        if let Some(array) = arrays.iter_mut().find(|a| a.nal_unit_type == kind) {
            if nal.len() > usize::from(u16::MAX) {
                return Err(err(format!(
                    "HEVC NAL unit of type {kind} is {} bytes",
                    nal.len()
                )));
            }
            array.nalus.push(nal.to_vec());
        }
    }
    for (kind, name) in [
        (HEVC_NAL_VPS, "VPS"),
        (HEVC_NAL_SPS, "SPS"),
        (HEVC_NAL_PPS, "PPS"),
    ] {
        if arrays
            .iter()
            .all(|a| a.nal_unit_type != kind || a.nalus.is_empty())
        {
            return Err(err(format!("HEVC parameter sets lack a {name}")));
        }
    }
    let sps = arrays
        .iter()
        .find(|a| a.nal_unit_type == HEVC_NAL_SPS)
        .and_then(|a| a.nalus.first())
        .ok_or_else(|| err("HEVC parameter sets lack an SPS"))?;
    let info = HevcSpsInfo::parse(sps)?;
    arrays.retain(|a| !a.nalus.is_empty());
    let hvcc = Hvcc {
        configuration_version: 1,
        general_profile_space: info.ptl[0] >> 6,
        general_tier_flag: info.ptl[0] & 0x20 != 0,
        general_profile_idc: info.ptl[0] & 0x1F,
        general_profile_compatibility_flags: [info.ptl[1], info.ptl[2], info.ptl[3], info.ptl[4]],
        general_constraint_indicator_flags: [
            info.ptl[5],
            info.ptl[6],
            info.ptl[7],
            info.ptl[8],
            info.ptl[9],
            info.ptl[10],
        ],
        general_level_idc: info.ptl[11],
        min_spatial_segmentation_idc: 0,
        parallelism_type: 0,
        chroma_format_idc: info.chroma_format_idc,
        bit_depth_luma_minus8: info.bit_depth_luma_minus8,
        bit_depth_chroma_minus8: info.bit_depth_chroma_minus8,
        avg_frame_rate: 0,
        constant_frame_rate: 0,
        num_temporal_layers: info.max_sub_layers,
        temporal_id_nested: info.temporal_id_nesting,
        length_size_minus_one: NAL_LENGTH_SIZE - 1,
        arrays,
    };
    Ok(encode_body(&hvcc))
}

/// `AV1CodecConfigurationRecord` (AV1-ISOBMFF 2.3.3) from the encoder's
/// sequence header OBU (OBU header included, with or without its size
/// field). Profile, level and tier of operating point 0, bit depth,
/// monochrome and chroma subsampling are read from it; the OBU is stored as
/// `configOBUs`, rewritten with a size field if it had none (the binding
/// requires one).
pub fn av1_config(sequence_header_obu: &[u8]) -> Result<Bytes, ConfigError> {
    let (obu, payload) = av1_sequence_header_obu(sequence_header_obu)?;
    let info = Av1SequenceInfo::parse(payload)?;
    let av1c = Av1c {
        seq_profile: info.seq_profile,
        seq_level_idx_0: info.seq_level_idx_0,
        seq_tier_0: info.seq_tier_0,
        high_bitdepth: info.high_bitdepth,
        twelve_bit: info.twelve_bit,
        monochrome: info.monochrome,
        chroma_subsampling_x: info.subsampling_x,
        chroma_subsampling_y: info.subsampling_y,
        chroma_sample_position: info.chroma_sample_position,
        initial_presentation_delay: None,
        config_obus: obu,
    };
    Ok(encode_body(&av1c))
}

/// The NAL units of an Annex B byte stream (`00 00 01` / `00 00 00 01` start
/// codes), without their start codes; empty units are skipped. Encoder
/// libraries hand out extradata and packets in this form; records and
/// packets here use length prefixes instead.
pub fn annex_b_nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (n, &(_, begin)) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(stream.len(), |&(sc, _)| sc);
        // A 4-byte start code's leading zero (and any trailing_zero_8bits)
        // belongs to no NAL unit.
        while end > begin && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > begin {
            units.push(&stream[begin..end]);
        }
    }
    units.into_iter()
}

fn encode_body<A: Atom>(atom: &A) -> Bytes {
    let mut out = Vec::with_capacity(64);
    // Encoding into a Vec cannot fail for these records (no length field
    // overflows: NAL units were bounded to u16 by the callers' inputs).
    if atom.encode_body(&mut out).is_err() {
        out.clear();
    }
    Bytes::from(out)
}

/// What `hvcC` repeats from an HEVC SPS.
struct HevcSpsInfo {
    /// general_profile_space .. general_level_idc: the 12 bytes of the
    /// general profile_tier_level, as `hvcC` lays them out.
    ptl: [u8; 12],
    max_sub_layers: u8,
    temporal_id_nesting: bool,
    chroma_format_idc: u8,
    bit_depth_luma_minus8: u8,
    bit_depth_chroma_minus8: u8,
}

impl HevcSpsInfo {
    /// Parses an SPS NAL unit (2-byte NAL header first), H.265 7.3.2.2.
    fn parse(nal: &[u8]) -> Result<Self, ConfigError> {
        let rbsp = unescape(nal.get(2..).ok_or_else(|| err("HEVC SPS is truncated"))?);
        let mut r = BitReader::new(&rbsp, "HEVC SPS");
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.bits(3)? as u8;
        let temporal_id_nesting = r.flag()?;
        let mut ptl = [0u8; 12];
        for b in &mut ptl {
            *b = r.bits(8)? as u8;
        }
        let mut sub_profile = [false; 8];
        let mut sub_level = [false; 8];
        for i in 0..usize::from(max_sub_layers_minus1) {
            sub_profile[i] = r.flag()?;
            sub_level[i] = r.flag()?;
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(2 * (8 - u32::from(max_sub_layers_minus1)))?;
        }
        for i in 0..usize::from(max_sub_layers_minus1) {
            if sub_profile[i] {
                r.skip(88)?;
            }
            if sub_level[i] {
                r.skip(8)?;
            }
        }
        r.ue()?; // sps_seq_parameter_set_id
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(err(format!(
                "HEVC SPS chroma_format_idc {chroma_format_idc}"
            )));
        }
        if chroma_format_idc == 3 {
            r.skip(1)?; // separate_colour_plane_flag
        }
        r.ue()?; // pic_width_in_luma_samples
        r.ue()?; // pic_height_in_luma_samples
        if r.flag()? {
            for _ in 0..4 {
                r.ue()?; // conformance window offsets
            }
        }
        let luma = r.ue()?;
        let chroma = r.ue()?;
        if luma > 8 || chroma > 8 {
            return Err(err(format!(
                "HEVC SPS bit depth {} / {}",
                luma + 8,
                chroma + 8
            )));
        }
        Ok(Self {
            ptl,
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            chroma_format_idc: chroma_format_idc as u8,
            bit_depth_luma_minus8: luma as u8,
            bit_depth_chroma_minus8: chroma as u8,
        })
    }
}

/// Splits a sequence header OBU into (the OBU with a size field, its
/// payload).
fn av1_sequence_header_obu(obu: &[u8]) -> Result<(Vec<u8>, &[u8]), ConfigError> {
    let header = *obu
        .first()
        .ok_or_else(|| err("AV1 sequence header OBU is empty"))?;
    let obu_type = (header >> 3) & 0x0F;
    if header & 0x80 != 0 || obu_type != AV1_OBU_SEQUENCE_HEADER {
        return Err(err(format!(
            "AV1 OBU of type {obu_type} is not a sequence header"
        )));
    }
    let extension = header & 0x04 != 0;
    let has_size = header & 0x02 != 0;
    let header_len = 1 + usize::from(extension);
    let rest = obu
        .get(header_len..)
        .ok_or_else(|| err("AV1 OBU header is truncated"))?;
    let payload = if has_size {
        let (size, used) = leb128(rest).ok_or_else(|| err("AV1 OBU size field is malformed"))?;
        let size = usize::try_from(size).map_err(|_| err("AV1 OBU size overflows"))?;
        rest.get(used..used.saturating_add(size))
            .ok_or_else(|| err("AV1 OBU is shorter than its size field"))?
    } else {
        rest
    };
    let mut out = Vec::with_capacity(header_len + 8 + payload.len());
    out.push(header | 0x02);
    out.extend_from_slice(&obu[1..header_len]);
    let mut size = payload.len() as u64;
    loop {
        let byte = (size & 0x7F) as u8;
        size >>= 7;
        if size == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(payload);
    Ok((out, payload))
}

/// An unsigned LEB128 number (AV1 4.10.5) and the bytes it took; at most 8
/// bytes, as the spec allows.
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// What `av1C` repeats from a sequence header OBU.
struct Av1SequenceInfo {
    seq_profile: u8,
    seq_level_idx_0: u8,
    seq_tier_0: bool,
    high_bitdepth: bool,
    twelve_bit: bool,
    monochrome: bool,
    subsampling_x: bool,
    subsampling_y: bool,
    chroma_sample_position: u8,
}

impl Av1SequenceInfo {
    /// Parses sequence_header_obu() (AV1 5.5.1) up to color_config().
    fn parse(payload: &[u8]) -> Result<Self, ConfigError> {
        let mut r = BitReader::new(payload, "AV1 sequence header");
        let seq_profile = r.bits(3)? as u8;
        if seq_profile > 2 {
            return Err(err(format!("AV1 seq_profile {seq_profile}")));
        }
        r.skip(1)?; // still_picture
        let reduced = r.flag()?;
        let seq_level_idx_0;
        let mut seq_tier_0 = false;
        if reduced {
            seq_level_idx_0 = r.bits(5)? as u8;
        } else {
            let mut decoder_model_info = false;
            let mut buffer_delay_length = 0;
            if r.flag()? {
                // timing_info()
                r.skip(64)?;
                if r.flag()? {
                    r.uvlc()?;
                }
                decoder_model_info = r.flag()?;
                if decoder_model_info {
                    buffer_delay_length = r.bits(5)? + 1;
                    r.skip(32 + 5 + 5)?;
                }
            }
            let initial_display_delay = r.flag()?;
            let count = r.bits(5)? + 1;
            let mut first = None;
            for _ in 0..count {
                r.skip(12)?; // operating_point_idc
                let level = r.bits(5)? as u8;
                let tier = level > 7 && r.flag()?;
                if decoder_model_info && r.flag()? {
                    r.skip(2 * buffer_delay_length + 1)?;
                }
                if initial_display_delay && r.flag()? {
                    r.skip(4)?;
                }
                first.get_or_insert((level, tier));
            }
            let (level, tier) = first.unwrap_or((0, false));
            seq_level_idx_0 = level;
            seq_tier_0 = tier;
        }
        let width_bits = r.bits(4)? + 1;
        let height_bits = r.bits(4)? + 1;
        r.skip(width_bits + height_bits)?;
        if !reduced && r.flag()? {
            r.skip(4 + 3)?; // frame id lengths
        }
        r.skip(3)?; // 128x128 superblock, filter intra, intra edge filter
        if !reduced {
            r.skip(4)?; // interintra, masked compound, warped motion, dual filter
            let order_hint = r.flag()?;
            if order_hint {
                r.skip(2)?; // jnt_comp, ref_frame_mvs
            }
            let force_screen_content_tools = if r.flag()? { 2 } else { r.bits(1)? };
            if force_screen_content_tools > 0 && !r.flag()? {
                r.skip(1)?; // seq_force_integer_mv
            }
            if order_hint {
                r.skip(3)?;
            }
        }
        r.skip(3)?; // superres, cdef, restoration
                    // color_config()
        let high_bitdepth = r.flag()?;
        let twelve_bit = seq_profile == 2 && high_bitdepth && r.flag()?;
        let monochrome = seq_profile != 1 && r.flag()?;
        let (mut cp, mut tc, mut mc) = (2, 2, 2);
        if r.flag()? {
            cp = r.bits(8)?;
            tc = r.bits(8)?;
            mc = r.bits(8)?;
        }
        let (mut subsampling_x, mut subsampling_y, mut chroma_sample_position) = (true, true, 0);
        if monochrome {
            r.skip(1)?; // color_range
        } else if cp == 1 && tc == 13 && mc == 0 {
            subsampling_x = false;
            subsampling_y = false;
        } else {
            r.skip(1)?; // color_range
            match seq_profile {
                0 => {}
                1 => {
                    subsampling_x = false;
                    subsampling_y = false;
                }
                _ if twelve_bit => {
                    subsampling_x = r.flag()?;
                    subsampling_y = subsampling_x && r.flag()?;
                }
                _ => subsampling_y = false,
            }
            if subsampling_x && subsampling_y {
                chroma_sample_position = r.bits(2)? as u8;
            }
        }
        Ok(Self {
            seq_profile,
            seq_level_idx_0,
            seq_tier_0,
            high_bitdepth,
            twelve_bit,
            monochrome,
            subsampling_x,
            subsampling_y,
            chroma_sample_position,
        })
    }
}

/// Removes H.26x emulation prevention bytes (`00 00 03` -> `00 00`).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first bit reader over a parameter set, failing (not panicking) at
/// the end of its data.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    fn truncated(&self) -> ConfigError {
        err(format!("{} is truncated (at bit {})", self.what, self.pos))
    }

    fn flag(&mut self) -> Result<bool, ConfigError> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| self.truncated())?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Up to 32 bits as a number.
    fn bits(&mut self, n: u32) -> Result<u32, ConfigError> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = (v << 1) | u32::from(self.flag()?);
        }
        Ok(v)
    }

    fn skip(&mut self, n: u32) -> Result<(), ConfigError> {
        let end = self.pos + n as usize;
        if end > self.data.len() * 8 {
            return Err(self.truncated());
        }
        self.pos = end;
        Ok(())
    }

    /// Exp-Golomb ue(v), bounded to 32 bits.
    fn ue(&mut self) -> Result<u32, ConfigError> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(err(format!("{}: Exp-Golomb code too long", self.what)));
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    /// AV1 uvlc(), bounded to 32 bits.
    fn uvlc(&mut self) -> Result<u32, ConfigError> {
        self.ue()
    }
}

#[cfg(test)]
mod tests;
