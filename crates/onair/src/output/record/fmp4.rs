//! Fragmented MP4 (ISO/IEC 14496-12 §8.8) built from `EncodedPacket`s.
//!
//! Why fragmented: a classic MP4 keeps its sample tables (`moov`) at the end,
//! so a crash (kill -9, power loss) leaves an unplayable file. A fragmented
//! file writes an empty-table `moov` (with `mvex`) first, then self-contained
//! `moof` + `mdat` pairs: whatever whole fragments reached the disk play.
//!
//! Why `mp4-atom` (kixelated/mp4-atom): it is a maintained, widely used
//! (moq-rs, hang) encoder/decoder for every box we need (`ftyp`, `moov` with
//! `mvex`/`trex`, `avc1`/`avcC`, `mp4a`/`esds`, `moof`/`traf`/`tfdt`/`trun`),
//! with round-trip tests against real files. It leaves policy to us, which is
//! what we want: we decide fragment boundaries, timescales and offsets. The
//! higher-level crates did not fit: `mp4` (alfg/mp4-rust) only writes a
//! `moov` at the end (not crash-safe) and is barely maintained; `muxide`
//! wants Annex-B input and finalises on `finish`, so its fragmented mode does
//! not give us control of flush points.
//!
//! This module is pure (bytes in, bytes out, no I/O) so it can be tested
//! exhaustively; `record.rs` decides when to write and sync.

use crate::packet::{EncodedPacket, MediaKind, StreamHeaders, VideoCodec, VideoParams};
use mp4_atom::{
    Atom, Audio, Av01, Av1c, Avc1, Avcc, Codec, Dinf, Dref, Encode, Esds, FourCC, Ftyp, Hdlr, Hvc1,
    Hvcc, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz,
    Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd,
};
use std::io;

/// Video track timescale: the usual 90 kHz, exact for every integer frame rate.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Media per fragment: a kill -9 loses at most about this much (plus what
/// the writer had not flushed yet).
pub const FRAGMENT_DURATION_NS: u64 = 1_000_000_000;
/// Sample flags of a sync sample: depends on no other sample.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// Sample flags of a non-sync video sample: depends on others, non-sync bit.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;
/// MPEG-4 object type of AAC in `esds`.
const OBJECT_TYPE_AAC: u8 = 0x40;
/// MPEG-4 stream type of audio in `esds`.
const STREAM_TYPE_AUDIO: u8 = 5;

/// One queued sample of the fragment being built.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Decode time in the track's timescale, from the file's origin.
    dts: u64,
    /// pts - dts in the track's timescale.
    cts: i64,
    size: u32,
    sync: bool,
}

/// One track's pending samples and their payloads.
#[derive(Debug, Default)]
struct Track {
    id: u32,
    timescale: u32,
    samples: Vec<Sample>,
    data: Vec<u8>,
}

/// Builds a fragmented MP4: [`Fmp4Writer::init_segment`] once, then the bytes
/// returned by [`Fmp4Writer::push`] and [`Fmp4Writer::finish`] in order.
#[derive(Debug)]
pub struct Fmp4Writer {
    headers: StreamHeaders,
    video: Option<Track>,
    audio: Option<Track>,
    /// Duration of one AAC frame in the audio timescale.
    audio_frame: u32,
    /// Nominal frame duration in the video timescale (last sample of the file).
    video_frame: u32,
    origin_ns: Option<u64>,
    fragment_start_ns: Option<u64>,
    sequence: u32,
    last_video_duration: Option<u32>,
}

fn scale(ns: u64, timescale: u32) -> u64 {
    ((u128::from(ns) * u128::from(timescale) + 500_000_000) / 1_000_000_000) as u64
}

fn to_io(e: mp4_atom::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl Fmp4Writer {
    /// A writer for the tracks `headers` describe (video track 1, audio next).
    pub fn new(headers: &StreamHeaders) -> Self {
        let mut next_id = 1;
        let video = headers.video.as_ref().map(|_| {
            let t = Track {
                id: next_id,
                timescale: VIDEO_TIMESCALE,
                ..Track::default()
            };
            next_id += 1;
            t
        });
        let audio = headers.audio.as_ref().map(|a| Track {
            id: next_id,
            timescale: a.sample_rate.max(1),
            ..Track::default()
        });
        Self {
            headers: headers.clone(),
            video,
            audio,
            audio_frame: headers.audio.as_ref().map_or(1024, |a| a.frame_samples),
            video_frame: headers
                .video
                .as_ref()
                .map_or(VIDEO_TIMESCALE / 30, |v| VIDEO_TIMESCALE / v.fps.max(1)),
            origin_ns: None,
            fragment_start_ns: None,
            sequence: 0,
            last_video_duration: None,
        }
    }

    /// `ftyp` + `moov` (empty sample tables, `mvex` announcing fragments).
    pub fn init_segment(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(1024);
        Ftyp {
            major_brand: FourCC::new(b"iso5"),
            minor_version: 512,
            compatible_brands: vec![
                FourCC::new(b"iso5"),
                FourCC::new(b"iso6"),
                FourCC::new(
                    &self
                        .headers
                        .video
                        .as_ref()
                        .map(|v| v.codec)
                        .unwrap_or_default()
                        .fourcc(),
                ),
                FourCC::new(b"mp41"),
            ],
        }
        .encode(&mut out)
        .map_err(to_io)?;
        let mut trak = Vec::new();
        let mut trex = Vec::new();
        if let (Some(t), Some(v)) = (&self.video, &self.headers.video) {
            let codec = sample_entry(v)?;
            trak.push(Trak {
                tkhd: Tkhd {
                    track_id: t.id,
                    enabled: true,
                    in_movie: true,
                    width: u16::try_from(v.width).unwrap_or(u16::MAX).into(),
                    height: u16::try_from(v.height).unwrap_or(u16::MAX).into(),
                    ..Tkhd::default()
                },
                mdia: media(
                    t,
                    b"vide",
                    "onair video",
                    codec,
                    Minf {
                        vmhd: Some(Vmhd::default()),
                        ..Minf::default()
                    },
                ),
                ..Trak::default()
            });
            trex.push(Trex {
                track_id: t.id,
                default_sample_description_index: 1,
                ..Trex::default()
            });
        }
        if let (Some(t), Some(a)) = (&self.audio, &self.headers.audio) {
            let asc = a.asc.to_vec();
            let profile = asc.first().map_or(2, |b| b >> 3);
            let freq_index = match (asc.first(), asc.get(1)) {
                (Some(b0), Some(b1)) => ((b0 & 0x07) << 1) | (b1 >> 7),
                _ => 3,
            };
            let chan_conf = asc.get(1).map_or(2, |b| (b >> 3) & 0x0F);
            let esds = Esds {
                es_desc: mp4_atom::esds::EsDescriptor {
                    es_id: u16::try_from(t.id).unwrap_or(2),
                    dec_config: mp4_atom::esds::DecoderConfig {
                        object_type_indication: OBJECT_TYPE_AAC,
                        stream_type: STREAM_TYPE_AUDIO,
                        max_bitrate: a.bitrate_bps,
                        avg_bitrate: a.bitrate_bps,
                        dec_specific: Some(mp4_atom::esds::DecoderSpecific {
                            profile,
                            freq_index,
                            chan_conf,
                            raw: asc,
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            };
            let codec = Mp4a {
                audio: Audio {
                    data_reference_index: 1,
                    channel_count: u16::try_from(a.channels).unwrap_or(2),
                    sample_size: 16,
                    sample_rate: u16::try_from(a.sample_rate).unwrap_or(48_000).into(),
                },
                esds,
                btrt: None,
                taic: None,
            };
            trak.push(Trak {
                tkhd: Tkhd {
                    track_id: t.id,
                    alternate_group: 1,
                    enabled: true,
                    in_movie: true,
                    volume: 1.into(),
                    ..Tkhd::default()
                },
                mdia: media(
                    t,
                    b"soun",
                    "onair audio",
                    Codec::from(codec),
                    Minf {
                        smhd: Some(Smhd::default()),
                        ..Minf::default()
                    },
                ),
                ..Trak::default()
            });
            trex.push(Trex {
                track_id: t.id,
                default_sample_description_index: 1,
                ..Trex::default()
            });
        }
        let next_track_id = u32::try_from(trak.len()).unwrap_or(2) + 1;
        Moov {
            mvhd: Mvhd {
                timescale: 1000,
                rate: 1.into(),
                volume: 1.into(),
                next_track_id,
                ..Mvhd::default()
            },
            mvex: Some(Mvex { mehd: None, trex }),
            trak,
            ..Moov::default()
        }
        .encode(&mut out)
        .map_err(to_io)?;
        Ok(out)
    }

    /// Adds one packet. Returns a complete `moof` + `mdat` when the packet
    /// closed a fragment (about every [`FRAGMENT_DURATION_NS`] of media).
    ///
    /// Fragments are cut when a video packet arrives (its dts gives the last
    /// duration of the fragment exactly), or on audio if there is no video.
    pub fn push(&mut self, packet: &EncodedPacket) -> io::Result<Option<Vec<u8>>> {
        let origin = *self.origin_ns.get_or_insert(packet.dts_ns);
        let drives_cuts = match packet.kind {
            MediaKind::Video => true,
            MediaKind::Audio => self.video.is_none(),
        };
        let mut out = None;
        if drives_cuts {
            let due = self
                .fragment_start_ns
                .is_some_and(|s| packet.dts_ns.saturating_sub(s) >= FRAGMENT_DURATION_NS);
            if due {
                let next_video =
                    (packet.kind == MediaKind::Video).then(|| packet.dts_ns.saturating_sub(origin));
                out = self.fragment(next_video)?;
            }
        }
        let track = match packet.kind {
            MediaKind::Video => self.video.as_mut(),
            MediaKind::Audio => self.audio.as_mut(),
        };
        let Some(track) = track else {
            return Ok(out);
        };
        let rel_dts = packet.dts_ns.saturating_sub(origin);
        let rel_pts = packet.pts_ns.saturating_sub(origin);
        let dts = scale(rel_dts, track.timescale);
        let cts = scale(rel_pts, track.timescale) as i64 - dts as i64;
        let size = u32::try_from(packet.data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sample over 4 GiB"))?;
        track.samples.push(Sample {
            dts,
            cts,
            size,
            sync: packet.keyframe || packet.kind == MediaKind::Audio,
        });
        track.data.extend_from_slice(&packet.data);
        if self.fragment_start_ns.is_none() {
            self.fragment_start_ns = Some(packet.dts_ns);
        }
        Ok(out)
    }

    /// The last fragment (whatever is pending), or `None` if nothing is.
    pub fn finish(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.fragment(None)
    }

    /// Builds `moof` + `mdat` of the pending samples and clears them.
    /// `next_video_dts_ns`: decode time (from the origin) of the video sample
    /// that follows, which fixes the duration of the last pending one.
    fn fragment(&mut self, next_video_dts_ns: Option<u64>) -> io::Result<Option<Vec<u8>>> {
        self.fragment_start_ns = None;
        let mut trafs = Vec::new();
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        if let Some(v) = self.video.as_mut() {
            if !v.samples.is_empty() {
                let next = next_video_dts_ns.map(|ns| scale(ns, v.timescale));
                let fallback = self.last_video_duration.unwrap_or(self.video_frame);
                let mut entries = Vec::with_capacity(v.samples.len());
                for (i, s) in v.samples.iter().enumerate() {
                    let following = v.samples.get(i + 1).map(|n| n.dts).or(next);
                    let duration = following
                        .map(|n| u32::try_from(n.saturating_sub(s.dts)).unwrap_or(u32::MAX))
                        .unwrap_or(fallback);
                    self.last_video_duration = Some(duration);
                    entries.push(TrunEntry {
                        duration: Some(duration),
                        size: Some(s.size),
                        flags: Some(if s.sync { FLAGS_SYNC } else { FLAGS_NON_SYNC }),
                        cts: Some(s.cts),
                    });
                }
                trafs.push(traf(v.id, v.samples[0].dts, entries));
                payloads.push(std::mem::take(&mut v.data));
                v.samples.clear();
            }
        }
        if let Some(a) = self.audio.as_mut() {
            if !a.samples.is_empty() {
                let entries = a
                    .samples
                    .iter()
                    .map(|s| TrunEntry {
                        duration: Some(self.audio_frame),
                        size: Some(s.size),
                        flags: Some(FLAGS_SYNC),
                        cts: Some(0),
                    })
                    .collect();
                trafs.push(traf(a.id, a.samples[0].dts, entries));
                payloads.push(std::mem::take(&mut a.data));
                a.samples.clear();
            }
        }
        if trafs.is_empty() {
            return Ok(None);
        }
        self.sequence += 1;
        let mut moof = Moof {
            mfhd: Mfhd {
                sequence_number: self.sequence,
            },
            traf: trafs,
        };
        // Encode once to learn the moof's size (data offsets do not change
        // it: they are always present), then fix the offsets.
        let mut probe = Vec::new();
        moof.encode(&mut probe).map_err(to_io)?;
        let mut offset = probe.len() + 8;
        for (t, p) in moof.traf.iter_mut().zip(&payloads) {
            let off = i32::try_from(offset)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "fragment over 2 GiB"))?;
            if let Some(run) = t.trun.first_mut() {
                run.data_offset = Some(off);
            }
            offset += p.len();
        }
        let data_len: usize = payloads.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(probe.len() + 8 + data_len);
        moof.encode(&mut out).map_err(to_io)?;
        let mdat_size = u32::try_from(data_len + 8)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "fragment over 4 GiB"))?;
        out.extend_from_slice(&mdat_size.to_be_bytes());
        out.extend_from_slice(b"mdat");
        for p in payloads {
            out.extend_from_slice(&p);
        }
        Ok(Some(out))
    }
}

fn traf(track_id: u32, base_dts: u64, entries: Vec<TrunEntry>) -> Traf {
    Traf {
        tfhd: Tfhd {
            track_id,
            default_base_is_moof: true,
            ..Tfhd::default()
        },
        tfdt: Some(Tfdt {
            base_media_decode_time: base_dts,
        }),
        trun: vec![Trun {
            data_offset: Some(0),
            samples: TrunSamples::Explicit(entries),
        }],
        ..Traf::default()
    }
}

fn media(track: &Track, handler: &[u8; 4], name: &str, codec: Codec, minf: Minf) -> Mdia {
    Mdia {
        mdhd: Mdhd {
            timescale: track.timescale,
            language: "und".into(),
            ..Mdhd::default()
        },
        hdlr: Hdlr {
            handler: FourCC::new(handler),
            name: name.into(),
        },
        minf: Minf {
            dinf: Dinf {
                dref: Dref {
                    entries: vec![Url {
                        location: String::new(),
                    }
                    .into()],
                },
            },
            stbl: Stbl {
                stsd: Stsd {
                    codecs: vec![codec],
                },
                stts: Stts::default(),
                stsc: Stsc::default(),
                stsz: Stsz::default(),
                stco: Some(Stco::default()),
                ..Stbl::default()
            },
            ..minf
        },
    }
}

/// The video sample entry: `avc1`, `hvc1` or `av01` around the stream's
/// configuration record, which `mp4-atom` decodes from the bytes the
/// encoder's [`crate::codec_config`] built (so a malformed record fails the
/// recording here, with its name, instead of writing an unreadable file).
fn sample_entry(v: &VideoParams) -> io::Result<Codec> {
    let visual = Visual {
        data_reference_index: 1,
        width: u16::try_from(v.width).unwrap_or(u16::MAX),
        height: u16::try_from(v.height).unwrap_or(u16::MAX),
        ..Visual::default()
    };
    let bad = |what: &str, e: mp4_atom::Error| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{what} record: {e}"))
    };
    let mut record = &v.config[..];
    Ok(match v.codec {
        VideoCodec::H264 => Codec::from(Avc1 {
            visual,
            avcc: Avcc::decode_body(&mut record).map_err(|e| bad("avcC", e))?,
            ..Avc1::default()
        }),
        VideoCodec::Hevc => Codec::from(Hvc1 {
            visual,
            hvcc: Hvcc::decode_body(&mut record).map_err(|e| bad("hvcC", e))?,
            ..Hvc1::default()
        }),
        VideoCodec::Av1 => Codec::from(Av01 {
            visual,
            av1c: Av1c::decode_body(&mut record).map_err(|e| bad("av1C", e))?,
            ..Av01::default()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mp4_atom::{Any, Decode};

    fn headers() -> StreamHeaders {
        crate::packet::test_headers()
    }

    fn packet(kind: MediaKind, t_ns: u64, key: bool, len: usize) -> EncodedPacket {
        EncodedPacket {
            kind,
            pts_ns: t_ns,
            dts_ns: t_ns,
            keyframe: key,
            disposable: false,
            data: Bytes::from(vec![0xAB; len]),
        }
    }

    /// Feeds 3.5 s of 30 fps video + 48 kHz AAC; returns the file bytes.
    fn file() -> Vec<u8> {
        let mut w = Fmp4Writer::new(&headers());
        let mut out = w.init_segment().expect("init");
        let start = 5_000_000_000u64; // the origin is the first packet, not 0
        let mut events: Vec<EncodedPacket> = (0..105u64)
            .map(|i| {
                packet(
                    MediaKind::Video,
                    start + i * 1_000_000_000 / 30,
                    i % 60 == 0,
                    100,
                )
            })
            .collect();
        events.extend((0..164u64).map(|i| {
            packet(
                MediaKind::Audio,
                start + i * 1024 * 1_000_000_000 / 48_000,
                true,
                10,
            )
        }));
        events.sort_by_key(|p| p.dts_ns);
        for p in &events {
            if let Some(f) = w.push(p).expect("push") {
                out.extend(f);
            }
        }
        if let Some(f) = w.finish().expect("finish") {
            out.extend(f);
        }
        out
    }

    #[test]
    fn fragments_are_self_consistent() {
        let bytes = file();
        let mut buf = std::io::Cursor::new(bytes.as_slice());
        let mut moofs = Vec::new();
        let mut video_samples = 0;
        let mut audio_samples = 0;
        let mut last_moof_start = 0;
        let mut video_time = 0u64;
        while (buf.position() as usize) < bytes.len() {
            let pos = buf.position() as usize;
            match Any::decode(&mut buf).expect("decode") {
                Any::Moof(m) => {
                    last_moof_start = pos;
                    moofs.push(m);
                }
                Any::Mdat(mdat) => {
                    let m = moofs.last().expect("mdat after moof");
                    let mut offset = 0usize;
                    for t in &m.traf {
                        let run = &t.trun[0];
                        let start = last_moof_start + run.data_offset.expect("offset") as usize;
                        let mdat_data_start = pos + 8;
                        assert_eq!(
                            start,
                            mdat_data_start + offset,
                            "data offset points into mdat"
                        );
                        let total: u32 = run.samples.iter().map(|s| s.size.unwrap_or(0)).sum();
                        offset += total as usize;
                        let base = t.tfdt.as_ref().expect("tfdt").base_media_decode_time;
                        if t.tfhd.track_id == 1 {
                            assert_eq!(base, video_time, "video decode times are continuous");
                            video_time += run
                                .samples
                                .iter()
                                .map(|s| u64::from(s.duration.unwrap_or(0)))
                                .sum::<u64>();
                            video_samples += run.samples.len();
                        } else {
                            audio_samples += run.samples.len();
                        }
                    }
                    assert_eq!(offset, mdat.data.len());
                }
                Any::Ftyp(_) | Any::Moov(_) => {}
                other => panic!("unexpected box {other:?}"),
            }
        }
        assert_eq!(video_samples, 105);
        assert_eq!(audio_samples, 164);
        // 3.5 s of media in ~1 s fragments.
        assert!((3..=5).contains(&moofs.len()), "{} fragments", moofs.len());
        assert_eq!(video_time, 105 * 3000);
        let seqs: Vec<u32> = moofs.iter().map(|m| m.mfhd.sequence_number).collect();
        assert_eq!(seqs, (1..=moofs.len() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn init_segment_describes_both_tracks() {
        let w = Fmp4Writer::new(&headers());
        let init = w.init_segment().expect("init");
        let mut buf = std::io::Cursor::new(init.as_slice());
        assert!(matches!(Any::decode(&mut buf).expect("ftyp"), Any::Ftyp(_)));
        let Any::Moov(moov) = Any::decode(&mut buf).expect("moov") else {
            panic!("no moov");
        };
        assert_eq!(moov.trak.len(), 2);
        assert_eq!(moov.mvex.expect("mvex").trex.len(), 2);
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, VIDEO_TIMESCALE);
        assert_eq!(moov.trak[1].mdia.mdhd.timescale, 48_000);
    }
}
