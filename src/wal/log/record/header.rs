//! The file header: the first 24 bytes of every log, snapshot and layout marker (12 in format
//! 1), which say what the file is, which version of the format it holds, and the log id that
//! seeds its records' checksums (the layout is specified in `docs/log-format.md`).

use super::{
    HEADER_LEN, HEADER_LEN_V1, LAYOUT_VERSION, LAYOUT_VERSION_3, MAGIC, Seed, VERSION, VERSION_1,
    VERSION_2, u32_at, u64_at,
};
use crate::crc32c;

/// The 24-byte header of a new log or snapshot, of the version this build writes.
pub fn encode_header(log_id: u64) -> [u8; HEADER_LEN] {
    encode_header_version(VERSION, log_id)
}

/// The 24-byte header with another version: [`LAYOUT_VERSION`] for the layout marker.
pub fn encode_header_version(version: u32, log_id: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    // Magic, then version: u32 little-endian.
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    // Log id: u64 little-endian, the records' checksum seed.
    h[12..20].copy_from_slice(&log_id.to_le_bytes());
    // CRC-32C of the 20 bytes before it.
    let crc = crc32c::checksum(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A file header that was read and checks out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    /// The log id (0 for version 1, which has none).
    pub log_id: u64,
}

impl Header {
    /// How many bytes the header takes in the file.
    pub fn size(&self) -> usize {
        if self.version == VERSION_1 { HEADER_LEN_V1 } else { HEADER_LEN }
    }

    pub fn seed(&self) -> Seed {
        if self.version == VERSION_1 { Seed::V1 } else { Seed::log(self.log_id) }
    }
}

/// Why a file header is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderFault {
    /// Shorter than a header; `prefix` says whether its bytes are a prefix of a walkv header (a
    /// creation that was interrupted).
    Short { len: usize, prefix: bool },
    /// Not a walkv log at all.
    BadMagic,
    /// Written by a newer walkv.
    Newer(u32),
    /// Magic right, but the version or the header's checksum is wrong.
    Damaged(String),
}

/// The versions with a 24-byte header (a log id and a checksum), oldest first.
const SEEDED_VERSIONS: [u32; 4] = [VERSION_2, LAYOUT_VERSION_3, VERSION, LAYOUT_VERSION];

/// Reads a file header from the first bytes of a file (`buf` may be shorter than a header).
pub fn decode_header(buf: &[u8]) -> Result<Header, HeaderFault> {
    let n = buf.len().min(HEADER_LEN_V1);
    if n < HEADER_LEN_V1 {
        let starts = |version: u32| {
            let mut start = MAGIC.to_vec();
            start.extend_from_slice(&version.to_le_bytes());
            buf[..n] == start[..n]
        };
        let prefix = starts(VERSION_1) || SEEDED_VERSIONS.into_iter().any(starts);
        return Err(HeaderFault::Short { len: n, prefix });
    }
    // The version of a seeded header whose checksum holds with `magic` and `version` in place
    // of what the file says: a header of ours with that field damaged.
    let checks_out_as = |magic: &[u8], version: u32| {
        buf.len() >= HEADER_LEN
            && crc32c::checksum_parts(&[magic, &version.to_le_bytes(), &buf[12..20]])
                == u32_at(buf, 20)
    };
    if buf[..8] != MAGIC {
        if checks_out_as(&MAGIC, u32_at(buf, 8)) && SEEDED_VERSIONS.contains(&u32_at(buf, 8)) {
            return Err(HeaderFault::Damaged("the file header's magic is damaged".into()));
        }
        return Err(HeaderFault::BadMagic);
    }
    let version = u32_at(buf, 8);
    let known = version == VERSION_1 || SEEDED_VERSIONS.contains(&version);
    if !known && SEEDED_VERSIONS.iter().any(|&v| checks_out_as(&buf[..8], v)) {
        return Err(HeaderFault::Damaged("the file header's version field is damaged".into()));
    }
    match version {
        VERSION_1 => Ok(Header { version: VERSION_1, log_id: 0 }),
        v if known && buf.len() < HEADER_LEN => {
            Err(HeaderFault::Short { len: buf.len(), prefix: v != VERSION_1 })
        }
        v if known => {
            let stored = u32_at(buf, 20);
            let computed = crc32c::checksum(&buf[..20]);
            if stored != computed {
                return Err(HeaderFault::Damaged(format!(
                    "the file header's checksum does not match (stored {stored:#010x}, computed \
                     {computed:#010x})"
                )));
            }
            Ok(Header { version: v, log_id: u64_at(buf, 12) })
        }
        v if v > LAYOUT_VERSION => Err(HeaderFault::Newer(v)),
        v => Err(HeaderFault::Damaged(format!("unknown format version {v}"))),
    }
}
