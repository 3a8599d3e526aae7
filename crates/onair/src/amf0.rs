//! AMF0 values: encoding for what we write (RTMP commands, FLV and RTMP
//! metadata), bounded decoding for whatever a server sends.
//!
//! Why our own: of the crates that exist, `rml_amf0` (rml_rtmp's) and `amf`
//! (last release 2022) decode nested objects by unbounded recursion, so a
//! server could blow the send thread's stack with a few kilobytes of nested
//! object markers; `scuffle-amf0` is maintained but says of itself that it is
//! under development with unit tests not yet complete, and documents no depth
//! limit. The subset RTMP commands use is small (numbers, booleans, strings,
//! objects, ECMA/strict arrays, null, undefined, dates), so this module
//! decodes it with explicit limits: nesting depth ([`MAX_DEPTH`]), values per
//! decode ([`MAX_VALUES`]), and no allocation larger than the input itself
//! (every length is checked against the bytes left before anything is
//! reserved). Anything outside the subset (references, typed objects, AVM+)
//! is an error, never a panic.

use bytes::{Buf, BufMut, BytesMut};

/// Deepest nesting of objects/arrays a decode accepts. Real servers nest 2
/// (an info object inside a command); 32 leaves room and bounds the stack.
pub const MAX_DEPTH: usize = 32;
/// Most values (scalars and containers, all levels) one decode accepts: an
/// RTMP command from a server carries a handful.
pub const MAX_VALUES: usize = 4096;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const XML_DOCUMENT: u8 = 0x0F;

/// One AMF0 value. Objects keep their properties in wire order (servers
/// and FLV readers care about order less than people reading dumps do).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// IEEE 754 double.
    Number(f64),
    /// Boolean.
    Boolean(bool),
    /// A string (short or long on the wire; XML documents decode as strings).
    String(String),
    /// Anonymous object: (key, value) pairs.
    Object(Vec<(String, Value)>),
    /// Null.
    Null,
    /// Undefined.
    Undefined,
    /// Associative array: (key, value) pairs.
    EcmaArray(Vec<(String, Value)>),
    /// Dense array.
    StrictArray(Vec<Value>),
    /// Date: ms since the epoch and the (ignored) time zone.
    Date(f64, i16),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Property `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => {
                p.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Property `key` as a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// Why a decode failed. Never carries the input's text (servers echo keys).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0: truncated value")]
    Truncated,
    /// A marker outside the supported subset.
    #[error("AMF0: unsupported marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("AMF0: nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// More than [`MAX_VALUES`] values.
    #[error("AMF0: more than {MAX_VALUES} values")]
    TooManyValues,
    /// A string that is not UTF-8.
    #[error("AMF0: string is not UTF-8")]
    BadUtf8,
    /// A length that claims more than the input holds.
    #[error("AMF0: length {0} exceeds the input")]
    BadLength(u64),
}

/// Decodes every value in `input` (a command or data message body).
pub fn decode_all(input: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut d = Decoder {
        buf: input,
        values: 0,
    };
    let mut out = Vec::new();
    while !d.buf.is_empty() {
        out.push(d.value(0)?);
    }
    Ok(out)
}

struct Decoder<'a> {
    buf: &'a [u8],
    values: usize,
}

impl Decoder<'_> {
    fn need(&self, n: usize) -> Result<(), Amf0Error> {
        if self.buf.len() < n {
            Err(Amf0Error::Truncated)
        } else {
            Ok(())
        }
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        self.need(8)?;
        Ok(self.buf.get_f64())
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    fn string_of(&mut self, len: usize) -> Result<String, Amf0Error> {
        if self.buf.len() < len {
            return Err(Amf0Error::BadLength(len as u64));
        }
        let s = std::str::from_utf8(&self.buf[..len]).map_err(|_| Amf0Error::BadUtf8)?;
        let s = s.to_string();
        self.buf.advance(len);
        Ok(s)
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        self.need(2)?;
        let len = usize::from(self.buf.get_u16());
        self.string_of(len)
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Amf0Error::TooManyValues);
        }
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Value::Number(self.f64()?),
            BOOLEAN => Value::Boolean(self.u8()? != 0),
            STRING => Value::String(self.short_string()?),
            LONG_STRING | XML_DOCUMENT => {
                let len = self.u32()?;
                let len = usize::try_from(len).map_err(|_| Amf0Error::BadLength(len.into()))?;
                Value::String(self.string_of(len)?)
            }
            NULL => Value::Null,
            UNDEFINED => Value::Undefined,
            OBJECT => Value::Object(self.properties(depth + 1)?),
            ECMA_ARRAY => {
                // The count is a hint servers get wrong; the end marker rules.
                self.u32()?;
                Value::EcmaArray(self.properties(depth + 1)?)
            }
            STRICT_ARRAY => {
                let depth = depth + 1;
                if depth > MAX_DEPTH {
                    return Err(Amf0Error::TooDeep);
                }
                let count = self.u32()?;
                // Each element takes at least one byte.
                if count as usize > self.buf.len() {
                    return Err(Amf0Error::BadLength(count.into()));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(depth)?);
                }
                Value::StrictArray(items)
            }
            DATE => {
                let ms = self.f64()?;
                self.need(2)?;
                Value::Date(ms, self.buf.get_i16())
            }
            other => return Err(Amf0Error::UnsupportedMarker(other)),
        })
    }

    /// Key/value pairs up to the empty key + OBJECT_END. `depth` is the
    /// depth of the container being read.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.buf.first() == Some(&OBJECT_END) {
                self.buf.advance(1);
                return Ok(props);
            }
            let v = self.value(depth)?;
            props.push((key, v));
        }
    }
}

/// Appends `value`'s encoding to `out`. Encoding is only ever applied to
/// values we build, whose depth we control.
pub fn encode(out: &mut BytesMut, value: &Value) {
    match value {
        Value::Number(n) => {
            out.put_u8(NUMBER);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.put_u8(STRING);
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
            Err(_) => {
                out.put_u8(LONG_STRING);
                out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
                out.put_slice(&s.as_bytes()[..s.len().min(u32::MAX as usize)]);
            }
        },
        Value::Object(props) => {
            out.put_u8(OBJECT);
            encode_properties(out, props);
        }
        Value::Null => out.put_u8(NULL),
        Value::Undefined => out.put_u8(UNDEFINED),
        Value::EcmaArray(props) => {
            out.put_u8(ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            encode_properties(out, props);
        }
        Value::StrictArray(items) => {
            out.put_u8(STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for v in items {
                encode(out, v);
            }
        }
        Value::Date(ms, tz) => {
            out.put_u8(DATE);
            out.put_f64(*ms);
            out.put_i16(*tz);
        }
    }
}

fn encode_properties(out: &mut BytesMut, props: &[(String, Value)]) {
    for (k, v) in props {
        // Keys are short strings; a longer key (never built here) is cut.
        let key = &k.as_bytes()[..k.len().min(usize::from(u16::MAX))];
        out.put_u16(key.len() as u16);
        out.put_slice(key);
        encode(out, v);
    }
    out.put_u16(0);
    out.put_u8(OBJECT_END);
}

/// Encodes a sequence of values (a command: name, transaction id, ...).
pub fn encode_all(values: &[Value]) -> BytesMut {
    let mut out = BytesMut::with_capacity(128);
    for v in values {
        encode(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn round_trip_of_every_supported_shape() {
        let values = vec![
            s("connect"),
            Value::Number(1.0),
            Value::Object(vec![
                ("app".into(), s("live")),
                ("fpad".into(), Value::Boolean(false)),
                ("n".into(), Value::Null),
                ("u".into(), Value::Undefined),
                (
                    "fourCcList".into(),
                    Value::StrictArray(vec![s("hvc1"), s("av01")]),
                ),
                (
                    "map".into(),
                    Value::EcmaArray(vec![("hvc1".into(), Value::Number(4.0))]),
                ),
                ("when".into(), Value::Date(1.5e12, 0)),
            ]),
            Value::String("x".repeat(70_000)),
        ];
        let bytes = encode_all(&values);
        assert_eq!(decode_all(&bytes).unwrap(), values);
    }

    #[test]
    fn known_bytes_of_a_command() {
        let bytes = encode_all(&[s("FCPublish"), Value::Number(1001.0), Value::Null]);
        let mut want = vec![0x02, 0, 9];
        want.extend_from_slice(b"FCPublish");
        want.extend_from_slice(&[0x00, 0x40, 0x8F, 0x48, 0, 0, 0, 0, 0, 0x05]);
        assert_eq!(&bytes[..], &want[..]);
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        // 100 000 nested objects: a recursive decoder without a limit would
        // overflow the stack; ours stops at MAX_DEPTH.
        let mut bytes = vec![OBJECT];
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[0, 1, b'a', OBJECT]);
        }
        assert_eq!(decode_all(&bytes), Err(Amf0Error::TooDeep));
        let mut arrays = Vec::new();
        for _ in 0..100_000 {
            arrays.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        assert_eq!(decode_all(&arrays), Err(Amf0Error::TooDeep));
        // MAX_DEPTH itself is fine.
        let mut ok = Vec::new();
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        ok.push(NULL);
        assert!(decode_all(&ok).is_ok());
    }

    #[test]
    fn lengths_beyond_the_input_allocate_nothing() {
        assert_eq!(
            decode_all(&[LONG_STRING, 0xFF, 0xFF, 0xFF, 0xFF, b'a']),
            Err(Amf0Error::BadLength(u32::MAX.into()))
        );
        assert_eq!(
            decode_all(&[STRICT_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, NULL]),
            Err(Amf0Error::BadLength(u32::MAX.into()))
        );
        assert_eq!(
            decode_all(&[STRING, 0, 5, b'a']),
            Err(Amf0Error::BadLength(5))
        );
        assert_eq!(decode_all(&[NUMBER, 0, 0]), Err(Amf0Error::Truncated));
        assert_eq!(decode_all(&[OBJECT, 0, 1, b'a']), Err(Amf0Error::Truncated));
    }

    #[test]
    fn too_many_values_and_unknown_markers() {
        let bytes = vec![NULL; MAX_VALUES + 1];
        assert_eq!(decode_all(&bytes), Err(Amf0Error::TooManyValues));
        assert_eq!(
            decode_all(&[0x07, 0, 1]),
            Err(Amf0Error::UnsupportedMarker(0x07))
        );
        assert_eq!(decode_all(&[0x11]), Err(Amf0Error::UnsupportedMarker(0x11)));
        assert_eq!(decode_all(&[STRING, 0, 1, 0xFF]), Err(Amf0Error::BadUtf8));
    }

    #[test]
    fn lookups() {
        let info = Value::Object(vec![("code".into(), s("NetStream.Publish.Start"))]);
        assert_eq!(info.get_str("code"), Some("NetStream.Publish.Start"));
        assert_eq!(info.get_str("level"), None);
        assert_eq!(Value::Null.get("code"), None);
    }
}
