//! The `Weir` provider: its name, its id and its metadata block.
//!
//! The id is the one TraceLoggingProvider.h (and .NET's EventSource, and
//! `tracelogging::Guid::from_name`) derive from the name, so tools that
//! accept a provider by name (`wpr`'s `*Weir`, PerfView's `*Weir`,
//! `tracelog -guid *Weir`) reach it without a manifest:
//!
//! 1. SHA-1 over the 16 bytes of the EventSource namespace GUID
//!    `482C2DB2-C390-47C8-87F8-1A15BFC130FB` (in big-endian field order)
//!    followed by the name upper-cased (ASCII rules) in UTF-16BE;
//! 2. the first 16 bytes of the digest, with byte 7 set to
//!    `(byte & 0x0F) | 0x50` (the "version 5" nibble);
//! 3. read as a GUID in Windows' in-memory order (Data1..3 little-endian).
//!
//! `tests/differential.rs` recomputes it with the `sha1` crate, checks the
//! algorithm against the pair Microsoft's TRACELOGGING_DEFINE_PROVIDER
//! documentation gives (`MyCompany.MyComponent` =
//! `{ce5fa4ea-ab00-5402-8b76-9f76ac858fb5}`) and against
//! `tracelogging::Guid::from_name`.

/// The provider name.
pub const NAME: &str = "Weir";

/// `{29506611-661d-5855-fb09-d04b2205cbb1}`, derived from [`NAME`] (see the
/// module documentation).
pub const ID: Guid = Guid {
    data1: 0x2950_6611,
    data2: 0x661d,
    data3: 0x5855,
    data4: [0xfb, 0x09, 0xd0, 0x4b, 0x22, 0x05, 0xcb, 0xb1],
};

/// [`ID`] as text, the form `logman`, `wpr` and the docs use.
pub const ID_TEXT: &str = "29506611-661d-5855-fb09-d04b2205cbb1";

/// A GUID in Windows' field layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid {
    /// `Data1`.
    pub data1: u32,
    /// `Data2`.
    pub data2: u16,
    /// `Data3`.
    pub data3: u16,
    /// `Data4`.
    pub data4: [u8; 8],
}

impl Guid {
    /// The 16 bytes as a GUID lies in memory (Data1..3 little-endian).
    pub const fn to_bytes_le(&self) -> [u8; 16] {
        let a = self.data1.to_le_bytes();
        let b = self.data2.to_le_bytes();
        let c = self.data3.to_le_bytes();
        let d = self.data4;
        [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]
    }
}

const META_LEN: usize = 2 + NAME.len() + 1;

/// The provider metadata block every event carries (data descriptor type
/// `EVENT_DATA_DESCRIPTOR_TYPE_PROVIDER_METADATA`): `u16` size of the
/// block, the name, NUL. Weir joins no provider group, so no traits follow.
pub const METADATA: [u8; META_LEN] = metadata();

// Evaluated at compile time: an index out of range is a build error, not a
// panic at run time.
#[allow(clippy::indexing_slicing)]
const fn metadata() -> [u8; META_LEN] {
    let mut m = [0u8; META_LEN];
    let size = (META_LEN as u16).to_le_bytes();
    m[0] = size[0];
    m[1] = size[1];
    let name = NAME.as_bytes();
    let mut i = 0;
    while i < name.len() {
        m[2 + i] = name[i];
        i += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_size_name_nul() {
        assert_eq!(&METADATA, b"\x07\x00Weir\x00");
    }

    #[test]
    fn id_text_matches_id() {
        let b = ID.to_bytes_le();
        let text = format!(
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
            ID.data1,
            ID.data2,
            ID.data3,
            b[8],
            b[9],
            b[10..].iter().map(|x| format!("{x:02x}")).collect::<String>()
        );
        assert_eq!(text, ID_TEXT);
    }
}
