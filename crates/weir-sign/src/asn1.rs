//! ASN.1 structures of a security catalog (a Microsoft certificate trust
//! list holding file hashes), written from the published layout.

use std::cmp::Ordering;

use const_oid::ObjectIdentifier;
use der::asn1::{BmpString, Int, OctetString};
use der::{
    Any, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag, Writer,
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::time::Time;

/// szOID_CTL: content type of a catalog's SignedData.
pub const MS_CTL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.1");
/// szOID_CATALOG_LIST: the CTL's subject usage.
pub const CATALOG_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.1");
/// szOID_CATALOG_LIST_MEMBER: member hash algorithm of v1 catalogs (SHA-1).
pub const CATALOG_LIST_MEMBER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.2");
/// szOID_CATALOG_LIST_MEMBER2: member hash algorithm of v2 catalogs (SHA-256).
pub const CATALOG_LIST_MEMBER2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.3");
/// CAT_NAMEVALUE_OBJID: a name/value attribute.
pub const CAT_NAMEVALUE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.1");
/// CAT_MEMBERINFO_OBJID: v1 member information (SIP GUID, version).
pub const CAT_MEMBERINFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.2");
/// CAT_MEMBERINFO2_OBJID: v2 member information (SIP kind as a context tag).
pub const CAT_MEMBERINFO2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.3");
/// SPC_INDIRECT_DATA_OBJID.
pub const SPC_INDIRECT_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// SPC_PE_IMAGE_DATA_OBJID.
pub const SPC_PE_IMAGE_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// SPC_CAB_DATA_OBJID.
pub const SPC_CAB_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.25");

/// The PE SIP.
pub const PE_SIP_GUID: &str = "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}";
/// The flat-file SIP.
pub const FLAT_SIP_GUID: &str = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}";
/// The cabinet SIP.
pub const CAB_SIP_GUID: &str = "{C689AABA-8E78-11D0-8C47-00C04FC295EE}";
/// Version number in v1 member information.
pub const MEMBERINFO_VERSION: u32 = 512;
/// Name/value flags written by makecat for plain text attributes:
/// CRYPTCAT_ATTR_NAMEASCII | CRYPTCAT_ATTR_DATAASCII | CRYPTCAT_ATTR_AUTHENTICATED.
pub const NAMEVALUE_FLAGS: u32 = 0x1001_0001;
/// CRYPTCAT_ATTR_DATABASE64: the value is base64 text, not UTF-16.
pub const NAMEVALUE_FLAG_BASE64: u32 = 0x0002_0000;

/// A SET OF that keeps the order it was read in (so that catalogs written
/// by other tools are read even when their sets are not DER-sorted) and
/// sorts by encoding when written (DER).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LenientSet<T>(pub Vec<T>);

impl<T> FixedTag for LenientSet<T> {
    const TAG: Tag = Tag::Set;
}

impl<'a, T: der::Decode<'a>> DecodeValue<'a> for LenientSet<T> {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        reader.read_nested(header.length, |r| {
            let mut items = Vec::new();
            while !r.is_finished() {
                items.push(T::decode(r)?);
            }
            Ok(Self(items))
        })
    }
}

impl<T: Encode> LenientSet<T> {
    fn sorted_encodings(&self) -> der::Result<Vec<Vec<u8>>> {
        let mut encs = self
            .0
            .iter()
            .map(|item| item.to_der())
            .collect::<der::Result<Vec<_>>>()?;
        encs.sort_by(|a, b| der_set_order(a, b));
        Ok(encs)
    }
}

/// X.690 DER SET OF order: compare encodings as octet strings, the shorter
/// one padded with zeros at the end.
fn der_set_order(a: &[u8], b: &[u8]) -> Ordering {
    let len = a.len().max(b.len());
    let pad = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    (0..len)
        .map(|i| pad(a, i).cmp(&pad(b, i)))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

impl<T: Encode> EncodeValue for LenientSet<T> {
    fn value_len(&self) -> der::Result<Length> {
        self.0
            .iter()
            // `Length + Length` is checked: it returns a Result.
            .try_fold(Length::ZERO, |len, item| {
                std::ops::Add::add(len, item.encoded_len()?)
            })
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        for enc in self.sorted_encodings()? {
            writer.write(&enc)?;
        }
        Ok(())
    }
}

/// An attribute: `SEQUENCE { type OID, values SET OF ANY }`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct Attr {
    pub oid: ObjectIdentifier,
    pub values: LenientSet<Any>,
}

/// `CertificateTrustList` (the catalog's content).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TrustList {
    pub version: Option<Int>,
    pub subject_usage: Vec<ObjectIdentifier>,
    pub list_identifier: Option<OctetString>,
    pub sequence_number: Option<Int>,
    pub this_update: Time,
    pub next_update: Option<Time>,
    pub subject_algorithm: AlgorithmIdentifierOwned,
    pub trusted_subjects: Option<Vec<TrustedSubject>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<Vec<Extension>>,
}

/// One catalog member.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TrustedSubject {
    pub identifier: OctetString,
    pub attributes: Option<LenientSet<Attr>>,
}

/// `CAT_NAMEVALUE`: `SEQUENCE { tag BMPString, flags INTEGER, value OCTET STRING }`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CatNameValue {
    pub tag: BmpString,
    pub flags: u32,
    pub value: OctetString,
}

/// `CAT_MEMBERINFO`: `SEQUENCE { subjectGuid BMPString, certVersion INTEGER }`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CatMemberInfo {
    pub subject_guid: BmpString,
    pub cert_version: u32,
}

/// `SpcIndirectDataContent`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct IndirectData {
    pub data: AttributeTypeAndOptionalValue,
    pub message_digest: DigestInfo,
}

/// `SpcAttributeTypeAndOptionalValue`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct AttributeTypeAndOptionalValue {
    pub value_type: ObjectIdentifier,
    pub value: Option<Any>,
}

/// `DigestInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct DigestInfo {
    pub digest_algorithm: AlgorithmIdentifierOwned,
    pub digest: OctetString,
}

/// UTF-16LE with a terminating NUL, as catalogs store text values.
pub fn utf16le_nul(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(std::iter::once(0u16))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Decodes UTF-16LE text, dropping trailing NULs; `None` if not UTF-16.
pub fn from_utf16le(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| match c {
            [a, b] => u16::from_le_bytes([*a, *b]),
            _ => 0,
        })
        .collect();
    let mut s = String::from_utf16(&units).ok()?;
    while s.ends_with('\0') {
        s.pop();
    }
    Some(s)
}
