//! Security catalog (`.cat`) writer, reader and member verification.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use const_oid::ObjectIdentifier;
use der::asn1::{BmpString, OctetString, UtcTime};
use der::{Any, Decode, Encode, Tag, TagNumber, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::time::Time;

use crate::asn1::{
    from_utf16le, utf16le_nul, Attr, AttributeTypeAndOptionalValue, CatMemberInfo, CatNameValue,
    DigestInfo, IndirectData, LenientSet, TrustList, TrustedSubject, CAB_SIP_GUID, CATALOG_LIST,
    CATALOG_LIST_MEMBER, CATALOG_LIST_MEMBER2, CAT_MEMBERINFO, CAT_MEMBERINFO2, CAT_NAMEVALUE,
    FLAT_SIP_GUID, MEMBERINFO_VERSION, NAMEVALUE_FLAGS, NAMEVALUE_FLAG_BASE64, PE_SIP_GUID,
    SPC_CAB_DATA, SPC_INDIRECT_DATA, SPC_PE_IMAGE_DATA,
};
use crate::hash::{self, bytes_hash, pe_image_hash, HashAlg};
use crate::signed_data;
use crate::{Result, SignError, SigningCert};

/// Default `OSAttr` value of each member: Windows 10 (NT platform, 10.0).
pub const DEFAULT_OS_ATTR: &str = "2:10.0";

/// Catalog format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CatalogVersion {
    /// SHA-1 members, identifier = upper-case hex of the hash (UTF-16LE).
    V1,
    /// SHA-256 members, identifier = the raw hash.
    V2,
}

/// What kind of file a member is, i.e. which SIP hashes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberKind {
    /// A PE image, hashed with the Authenticode image hash.
    Pe,
    /// A flat file (e.g. the `.inf`), hashed whole.
    Flat,
    /// A cabinet file.
    Cab,
    /// Anything else: the SIP GUID, member-info tag or indirect-data type.
    Other(String),
}

impl fmt::Display for MemberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pe => f.write_str("PE image"),
            Self::Flat => f.write_str("flat file"),
            Self::Cab => f.write_str("cabinet"),
            Self::Other(s) => write!(f, "other ({s})"),
        }
    }
}

/// A name/value attribute (`CAT_NAMEVALUE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameValue {
    /// Attribute name, e.g. `File`.
    pub name: String,
    /// makecat flags (0x10010001 for plain text).
    pub flags: u32,
    /// Value as text (UTF-16 decoded; base64-flagged values as stored).
    pub value: String,
}

/// One member of a catalog, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogMember {
    /// Raw subject identifier (v2: the hash; v1: UTF-16LE hex text + NUL).
    pub identifier: Vec<u8>,
    /// Algorithm of [`CatalogMember::digest`].
    pub digest_algorithm: HashAlg,
    /// The file's hash (Authenticode image hash for PE members).
    pub digest: Vec<u8>,
    /// The `File` attribute.
    pub file_name: Option<String>,
    /// The `OSAttr` attribute.
    pub os_attr: Option<String>,
    /// Member kind, from the member info or the indirect data type.
    pub kind: MemberKind,
    /// All name/value attributes, in file order.
    pub attributes: Vec<NameValue>,
    /// Whether the member carries indirect data (v2 SHA-1 "compat"
    /// members written by makecat carry only the member info).
    pub has_indirect_data: bool,
}

/// A parsed catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    /// Format version (from the member algorithm).
    pub version: CatalogVersion,
    /// The 16-byte list identifier.
    pub list_identifier: Option<Vec<u8>>,
    /// The list's time (`thisUpdate`), seconds since 1970.
    pub this_update: Option<u64>,
    /// Catalog-level name/value attributes (e.g. `OS`).
    pub attributes: Vec<NameValue>,
    /// Members in file order.
    pub members: Vec<CatalogMember>,
    /// PKCS#7 SignedData version (1 for Windows catalogs).
    pub signed_data_version: u8,
    /// Number of signatures (0 for an unsigned catalog).
    pub signer_count: usize,
    /// Certificates carried in the envelope, DER.
    pub certificates: Vec<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct FileSpec {
    name: String,
    kind: MemberKind,
    sha1: Vec<u8>,
    sha256: Vec<u8>,
}

/// Builds a catalog from files.
///
/// ```no_run
/// # fn main() -> weir_sign::Result<()> {
/// use std::path::Path;
/// use weir_sign::{CatalogBuilder, CatalogVersion, TestCert};
/// let cert = TestCert::load_or_create(Path::new("target/test-cert"))?;
/// let mut b = CatalogBuilder::new(CatalogVersion::V2);
/// b.add_pe_file(Path::new("pkg/weir.sys"))?;
/// b.add_flat_file(Path::new("pkg/weir.inf"))?;
/// std::fs::write("pkg/weir.cat", b.build_signed(&cert, 1_700_000_000)?).ok();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CatalogBuilder {
    version: CatalogVersion,
    os_attr: String,
    sha1_compat: bool,
    catalog_attributes: Vec<(String, String)>,
    files: Vec<FileSpec>,
}

impl CatalogBuilder {
    /// A builder with defaults: members get `OSAttr` = [`DEFAULT_OS_ATTR`];
    /// v2 catalogs get the SHA-1 compat members; the catalog-level
    /// attribute `OS` = `_v100_X64` (Inf2Cat's value for Windows 10 x64).
    pub fn new(version: CatalogVersion) -> Self {
        Self {
            version,
            os_attr: DEFAULT_OS_ATTR.to_string(),
            sha1_compat: true,
            catalog_attributes: vec![("OS".to_string(), "_v100_X64".to_string())],
            files: Vec::new(),
        }
    }

    /// Sets the `OSAttr` value written on each member (e.g. `2:10.0`).
    pub fn os_attr(&mut self, value: &str) -> &mut Self {
        self.os_attr = value.to_string();
        self
    }

    /// Whether a v2 catalog also gets a SHA-1 member per file (as makecat
    /// writes; default on). Ignored for v1.
    pub fn sha1_compat(&mut self, on: bool) -> &mut Self {
        self.sha1_compat = on;
        self
    }

    /// Replaces the catalog-level name/value attributes (default
    /// `OS=_v100_X64`).
    pub fn catalog_attributes(&mut self, attrs: &[(&str, &str)]) -> &mut Self {
        self.catalog_attributes = attrs
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        self
    }

    /// Adds a PE image member (e.g. the signed `.sys`), named by its file
    /// name, hashed with the Authenticode image hash.
    pub fn add_pe_file(&mut self, path: &Path) -> Result<&mut Self> {
        let data = hash::read(path)?;
        let name = file_name(path)?;
        self.add_pe_bytes(&name, &data).map_err(|e| match e {
            SignError::Pe(m) => SignError::Pe(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Adds a flat member (e.g. the `.inf`), hashed whole.
    pub fn add_flat_file(&mut self, path: &Path) -> Result<&mut Self> {
        let data = hash::read(path)?;
        let name = file_name(path)?;
        self.add_flat_bytes(&name, &data)
    }

    /// Adds a file as a PE member if it parses as a PE image, else as a flat
    /// member (what makecat's SIP selection does for `.sys`/`.inf`).
    pub fn add_file(&mut self, path: &Path) -> Result<&mut Self> {
        let data = hash::read(path)?;
        let name = file_name(path)?;
        if hash::is_pe(&data) {
            self.add_pe_bytes(&name, &data)
        } else {
            self.add_flat_bytes(&name, &data)
        }
    }

    /// Adds a PE member from bytes.
    pub fn add_pe_bytes(&mut self, name: &str, data: &[u8]) -> Result<&mut Self> {
        let sha1 = pe_image_hash(data, HashAlg::Sha1)?;
        let sha256 = pe_image_hash(data, HashAlg::Sha256)?;
        self.push(name, MemberKind::Pe, sha1, sha256)
    }

    /// Adds a flat member from bytes.
    pub fn add_flat_bytes(&mut self, name: &str, data: &[u8]) -> Result<&mut Self> {
        let sha1 = bytes_hash(data, HashAlg::Sha1);
        let sha256 = bytes_hash(data, HashAlg::Sha256);
        self.push(name, MemberKind::Flat, sha1, sha256)
    }

    fn push(
        &mut self,
        name: &str,
        kind: MemberKind,
        sha1: Vec<u8>,
        sha256: Vec<u8>,
    ) -> Result<&mut Self> {
        if name.is_empty() || name.contains(['/', '\\', '\0']) {
            return Err(SignError::catalog(format!(
                "invalid member file name {name:?}"
            )));
        }
        if let Some(f) = self
            .files
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
        {
            return Err(SignError::catalog(format!(
                "file name {name:?} added twice (already as {:?})",
                f.name
            )));
        }
        if let Some(f) = self
            .files
            .iter()
            .find(|f| f.sha256 == sha256 && f.kind == kind)
        {
            return Err(SignError::catalog(format!(
                "{name:?} has the same content hash as {:?}; a catalog cannot list both",
                f.name
            )));
        }
        self.files.push(FileSpec {
            name: name.to_string(),
            kind,
            sha1,
            sha256,
        });
        Ok(self)
    }

    /// The DER trust list (the catalog's content), deterministic for the
    /// same files, options and time.
    pub fn trust_list_der(&self, time_unix: u64) -> Result<Vec<u8>> {
        if self.files.is_empty() {
            return Err(SignError::catalog("no files to catalog"));
        }
        let mut subjects = Vec::new();
        for f in &self.files {
            match self.version {
                CatalogVersion::V2 => {
                    subjects.push(self.main_member(f, HashAlg::Sha256, f.sha256.clone())?);
                    if self.sha1_compat {
                        subjects.push(TrustedSubject {
                            identifier: OctetString::new(f.sha1.clone())?,
                            attributes: Some(LenientSet(vec![member_info2(&f.kind)?])),
                        });
                    }
                }
                CatalogVersion::V1 => {
                    let id = utf16le_nul(&hex::encode_upper(&f.sha1));
                    subjects.push(self.main_member(f, HashAlg::Sha1, id)?);
                }
            }
        }
        subjects.sort_by(|a, b| a.identifier.as_bytes().cmp(b.identifier.as_bytes()));
        if let Some(w) = subjects
            .windows(2)
            .find(|w| matches!(w, [a, b] if a.identifier == b.identifier))
        {
            let id = w
                .first()
                .map(|s| hex::encode(s.identifier.as_bytes()))
                .unwrap_or_default();
            return Err(SignError::catalog(format!(
                "two members have the same identifier {id}"
            )));
        }

        let mut extensions = Vec::new();
        for (name, value) in &self.catalog_attributes {
            extensions.push(Extension {
                extn_id: CAT_NAMEVALUE,
                critical: false,
                extn_value: OctetString::new(name_value(name, value)?.to_der()?)?,
            });
        }
        let extensions = if extensions.is_empty() {
            None
        } else {
            Some(extensions)
        };
        let member_alg = match self.version {
            CatalogVersion::V1 => CATALOG_LIST_MEMBER,
            CatalogVersion::V2 => CATALOG_LIST_MEMBER2,
        };

        // List identifier: derived from everything else, so identical
        // inputs give identical catalogs.
        let mut seed = b"weir catalog list identifier\0".to_vec();
        seed.extend(subjects.to_der()?);
        if let Some(ext) = &extensions {
            seed.extend(ext.to_der()?);
        }
        seed.extend(member_alg.as_bytes());
        let list_id: Vec<u8> = bytes_hash(&seed, HashAlg::Sha256)
            .into_iter()
            .take(16)
            .collect();

        let time = UtcTime::from_unix_duration(Duration::from_secs(time_unix)).map_err(|e| {
            SignError::catalog(format!(
                "time {time_unix} not representable as UTCTime (1950-2049): {e}"
            ))
        })?;
        let ctl = TrustList {
            version: None,
            subject_usage: vec![CATALOG_LIST],
            list_identifier: Some(OctetString::new(list_id)?),
            sequence_number: None,
            this_update: Time::UtcTime(time),
            next_update: None,
            subject_algorithm: AlgorithmIdentifierOwned {
                oid: member_alg,
                parameters: Some(Any::null()),
            },
            trusted_subjects: Some(subjects),
            extensions,
        };
        Ok(ctl.to_der()?)
    }

    /// The catalog, unsigned (for `osslsigncode sign -in unsigned.cat`).
    pub fn build_unsigned(&self, time_unix: u64) -> Result<Vec<u8>> {
        signed_data::wrap_unsigned(&self.trust_list_der(time_unix)?)
    }

    /// The catalog signed with `signer`; `time_unix` is both the list's
    /// time and the signingTime attribute.
    pub fn build_signed(&self, signer: &SigningCert, time_unix: u64) -> Result<Vec<u8>> {
        signed_data::wrap_signed(&self.trust_list_der(time_unix)?, signer, time_unix)
    }

    fn main_member(
        &self,
        f: &FileSpec,
        alg: HashAlg,
        identifier: Vec<u8>,
    ) -> Result<TrustedSubject> {
        let digest = match alg {
            HashAlg::Sha1 => &f.sha1,
            HashAlg::Sha256 => &f.sha256,
        };
        let info = match self.version {
            CatalogVersion::V2 => member_info2(&f.kind)?,
            CatalogVersion::V1 => {
                let guid = match f.kind {
                    MemberKind::Pe => PE_SIP_GUID,
                    _ => FLAT_SIP_GUID,
                };
                attr(
                    CAT_MEMBERINFO,
                    Any::encode_from(&CatMemberInfo {
                        subject_guid: BmpString::from_utf8(guid)?,
                        cert_version: MEMBERINFO_VERSION,
                    })?,
                )?
            }
        };
        let mut attrs = vec![
            info,
            attr(
                CAT_NAMEVALUE,
                Any::encode_from(&name_value("File", &f.name)?)?,
            )?,
        ];
        if !self.os_attr.is_empty() {
            attrs.push(attr(
                CAT_NAMEVALUE,
                Any::encode_from(&name_value("OSAttr", &self.os_attr)?)?,
            )?);
        }
        attrs.push(attr(
            SPC_INDIRECT_DATA,
            Any::encode_from(&indirect_data(&f.kind, alg, digest)?)?,
        )?);
        Ok(TrustedSubject {
            identifier: OctetString::new(identifier)?,
            attributes: Some(LenientSet(attrs)),
        })
    }
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| SignError::catalog(format!("{}: no usable file name", path.display())))
}

fn attr(oid: ObjectIdentifier, value: Any) -> Result<Attr> {
    Ok(Attr {
        oid,
        values: LenientSet(vec![value]),
    })
}

fn name_value(name: &str, value: &str) -> Result<CatNameValue> {
    Ok(CatNameValue {
        tag: BmpString::from_utf8(name)?,
        flags: NAMEVALUE_FLAGS,
        value: OctetString::new(utf16le_nul(value))?,
    })
}

/// v2 member info: an empty context-specific tag, [0] PE, [1] cabinet,
/// [2] flat (as makecat writes it).
fn member_info2(kind: &MemberKind) -> Result<Attr> {
    let n = match kind {
        MemberKind::Pe => 0,
        MemberKind::Cab => 1,
        _ => 2,
    };
    let tag = Tag::ContextSpecific {
        constructed: false,
        number: TagNumber::new(n),
    };
    attr(CAT_MEMBERINFO2, Any::new(tag, Vec::<u8>::new())?)
}

fn indirect_data(kind: &MemberKind, alg: HashAlg, digest: &[u8]) -> Result<IndirectData> {
    let (value_type, value) = match kind {
        // SpcPeImageData { flags BIT STRING (empty), file [0] SpcLink
        //   { file [2] SpcString { unicode [0] "<<<Obsolete>>>" } } }
        MemberKind::Pe => {
            let mut v = vec![0x03, 0x01, 0x00, 0xA0, 0x20, 0xA2, 0x1E, 0x80, 0x1C];
            for u in "<<<Obsolete>>>".encode_utf16() {
                v.extend(u.to_be_bytes());
            }
            let mut seq = vec![0x30, u8::try_from(v.len()).unwrap_or(0)];
            seq.extend(v);
            (SPC_PE_IMAGE_DATA, Any::from_der(&seq)?)
        }
        // SpcLink { file [2] SpcString { unicode [0] "" } }
        _ => (SPC_CAB_DATA, Any::from_der(&[0xA2, 0x02, 0x80, 0x00])?),
    };
    Ok(IndirectData {
        data: AttributeTypeAndOptionalValue {
            value_type,
            value: Some(value),
        },
        message_digest: DigestInfo {
            digest_algorithm: AlgorithmIdentifierOwned {
                oid: alg.oid(),
                parameters: Some(Any::null()),
            },
            digest: OctetString::new(digest)?,
        },
    })
}

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

impl Catalog {
    /// Reads a catalog file.
    pub fn read_file(path: &Path) -> Result<Self> {
        let data = hash::read(path)?;
        Self::parse(&data).map_err(|e| match e {
            SignError::Catalog(m) => SignError::Catalog(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses a catalog (signed or not; ours or makecat's v1/v2).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let env = signed_data::unwrap(bytes)?;
        let ctl = TrustList::from_der(&env.ctl_der)
            .map_err(|e| SignError::catalog(format!("invalid certificate trust list: {e}")))?;
        if !ctl.subject_usage.contains(&CATALOG_LIST) {
            return Err(SignError::catalog(
                "the trust list is not a catalog list (usage 1.3.6.1.4.1.311.12.1.1 missing)",
            ));
        }
        let version = if ctl.subject_algorithm.oid == CATALOG_LIST_MEMBER2 {
            CatalogVersion::V2
        } else if ctl.subject_algorithm.oid == CATALOG_LIST_MEMBER {
            CatalogVersion::V1
        } else {
            return Err(SignError::catalog(format!(
                "unknown member algorithm {}",
                ctl.subject_algorithm.oid
            )));
        };
        let this_update = Some(ctl.this_update.to_unix_duration().as_secs());
        let mut attributes = Vec::new();
        for ext in ctl.extensions.iter().flatten() {
            if ext.extn_id == CAT_NAMEVALUE {
                attributes.push(read_name_value(
                    &CatNameValue::from_der(ext.extn_value.as_bytes()).map_err(|e| {
                        SignError::catalog(format!("invalid catalog attribute: {e}"))
                    })?,
                ));
            }
        }
        let mut members = Vec::new();
        for (i, s) in ctl.trusted_subjects.iter().flatten().enumerate() {
            members.push(read_member(version, s).map_err(|e| match e {
                SignError::Catalog(m) => SignError::Catalog(format!("member #{i}: {m}")),
                other => other,
            })?);
        }
        Ok(Self {
            version,
            list_identifier: ctl.list_identifier.map(|o| o.as_bytes().to_vec()),
            this_update,
            attributes,
            members,
            signed_data_version: env.version,
            signer_count: env.signer_count,
            certificates: env.certificates,
        })
    }

    /// Looks up a catalog-level attribute by name (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map(|a| a.value.as_str())
    }

    /// Members that carry a `File` name (the "main" members).
    pub fn named_members(&self) -> impl Iterator<Item = &CatalogMember> {
        self.members.iter().filter(|m| m.file_name.is_some())
    }
}

fn read_name_value(nv: &CatNameValue) -> NameValue {
    let raw = nv.value.as_bytes();
    let value = if nv.flags & NAMEVALUE_FLAG_BASE64 != 0 {
        String::from_utf8_lossy(raw)
            .trim_end_matches('\0')
            .to_string()
    } else {
        from_utf16le(raw).unwrap_or_else(|| String::from_utf8_lossy(raw).to_string())
    };
    NameValue {
        name: nv.tag.to_string(),
        flags: nv.flags,
        value,
    }
}

fn read_member(version: CatalogVersion, s: &TrustedSubject) -> Result<CatalogMember> {
    let identifier = s.identifier.as_bytes().to_vec();
    let mut kind_from_info = None;
    let mut indirect = None;
    let mut attributes = Vec::new();
    for a in s.attributes.iter().flat_map(|set| set.0.iter()) {
        for v in &a.values.0 {
            if a.oid == CAT_NAMEVALUE {
                let nv: CatNameValue = v.decode_as().map_err(|e| {
                    SignError::catalog(format!("invalid name/value attribute: {e}"))
                })?;
                attributes.push(read_name_value(&nv));
            } else if a.oid == CAT_MEMBERINFO2 {
                kind_from_info = Some(match v.tag() {
                    Tag::ContextSpecific { number, .. } => match number.value() {
                        0 => MemberKind::Pe,
                        1 => MemberKind::Cab,
                        2 => MemberKind::Flat,
                        n => MemberKind::Other(format!("member info [{n}]")),
                    },
                    t => MemberKind::Other(format!("member info {t}")),
                });
            } else if a.oid == CAT_MEMBERINFO {
                let info: CatMemberInfo = v
                    .decode_as()
                    .map_err(|e| SignError::catalog(format!("invalid member info: {e}")))?;
                let guid = info.subject_guid.to_string();
                kind_from_info = Some(if guid.eq_ignore_ascii_case(PE_SIP_GUID) {
                    MemberKind::Pe
                } else if guid.eq_ignore_ascii_case(FLAT_SIP_GUID) {
                    MemberKind::Flat
                } else if guid.eq_ignore_ascii_case(CAB_SIP_GUID) {
                    MemberKind::Cab
                } else {
                    MemberKind::Other(guid)
                });
            } else if a.oid == SPC_INDIRECT_DATA {
                let id: IndirectData = v
                    .decode_as()
                    .map_err(|e| SignError::catalog(format!("invalid indirect data: {e}")))?;
                indirect = Some(id);
            }
        }
    }
    let kind_from_indirect = indirect.as_ref().map(|id| {
        let t = id.data.value_type;
        if t == SPC_PE_IMAGE_DATA {
            MemberKind::Pe
        } else if t == SPC_CAB_DATA {
            MemberKind::Flat
        } else {
            MemberKind::Other(t.to_string())
        }
    });
    let kind = kind_from_info
        .or(kind_from_indirect)
        .unwrap_or_else(|| MemberKind::Other("no member info".into()));
    let (digest_algorithm, digest) = match &indirect {
        Some(id) => {
            let oid = id.message_digest.digest_algorithm.oid;
            let alg = HashAlg::from_oid(&oid)
                .ok_or_else(|| SignError::catalog(format!("unsupported digest algorithm {oid}")))?;
            (alg, id.message_digest.digest.as_bytes().to_vec())
        }
        None => digest_from_identifier(version, &identifier)?,
    };
    let find = |n: &str| {
        attributes
            .iter()
            .find(|a: &&NameValue| a.name.eq_ignore_ascii_case(n))
            .map(|a| a.value.clone())
    };
    Ok(CatalogMember {
        file_name: find("File"),
        os_attr: find("OSAttr"),
        identifier,
        digest_algorithm,
        digest,
        kind,
        attributes,
        has_indirect_data: indirect.is_some(),
    })
}

fn digest_from_identifier(version: CatalogVersion, id: &[u8]) -> Result<(HashAlg, Vec<u8>)> {
    let raw = match version {
        CatalogVersion::V2 if HashAlg::from_len(id.len()).is_some() => id.to_vec(),
        _ => {
            let text = from_utf16le(id).ok_or_else(|| {
                SignError::catalog("member identifier is neither a hash nor UTF-16 text")
            })?;
            hex::decode(text.trim()).map_err(|_| {
                SignError::catalog(format!("member identifier {text:?} is not a hex hash"))
            })?
        }
    };
    let alg = HashAlg::from_len(raw.len()).ok_or_else(|| {
        SignError::catalog(format!(
            "member identifier of {} bytes is not a SHA-1/SHA-256 hash",
            raw.len()
        ))
    })?;
    Ok((alg, raw))
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/// One thing wrong between files and a catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberProblem {
    /// The file's hash differs from the catalog's.
    HashMismatch {
        /// File checked.
        path: PathBuf,
        /// Member kind (decides how the hash is computed).
        kind: MemberKind,
        /// Algorithm.
        algorithm: HashAlg,
        /// Hash in the catalog, hex.
        expected: String,
        /// Hash of the file, hex.
        actual: String,
    },
    /// No member names the file and none has its hash.
    NotInCatalog {
        /// File checked.
        path: PathBuf,
    },
    /// The catalog has SHA-1 compat members but none for this file.
    MissingCompatMember {
        /// File checked.
        path: PathBuf,
        /// The SHA-1 that should be there, hex.
        sha1: String,
    },
    /// The file could not be hashed (unreadable, or not a PE image while
    /// the catalog lists it as one).
    Unhashable {
        /// File checked.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for MemberProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HashMismatch {
                path,
                kind,
                algorithm,
                expected,
                actual,
            } => write!(
                f,
                "{}: {algorithm} {} hash mismatch: catalog has {expected}, file has {actual}",
                path.display(),
                match kind {
                    MemberKind::Pe => "Authenticode image",
                    _ => "file",
                }
            ),
            Self::NotInCatalog { path } => {
                write!(f, "{}: not listed in the catalog", path.display())
            }
            Self::MissingCompatMember { path, sha1 } => write!(
                f,
                "{}: the catalog has no SHA-1 compat member {sha1} for this file",
                path.display()
            ),
            Self::Unhashable { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

/// A file that matched its catalog member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedFile {
    /// The file.
    pub path: PathBuf,
    /// Member kind.
    pub kind: MemberKind,
    /// Algorithm of the main member.
    pub algorithm: HashAlg,
    /// The matching hash, hex.
    pub digest: String,
}

/// Result of a successful [`verify_members`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every given file, verified.
    pub verified: Vec<VerifiedFile>,
    /// `File` names of catalog members that no given path covered.
    pub unchecked_members: Vec<String>,
}

fn file_digest(
    kind: &MemberKind,
    data: &[u8],
    alg: HashAlg,
) -> std::result::Result<Vec<u8>, String> {
    match kind {
        MemberKind::Pe => pe_image_hash(data, alg).map_err(|e| e.to_string()),
        _ => Ok(bytes_hash(data, alg)),
    }
}

/// Checks files against a catalog: for each path, the member with the same
/// `File` name (case-insensitive; failing that, a member with the file's
/// hash) must hold the file's hash — the Authenticode image hash for PE
/// members, the whole-file hash for flat members — and, if the catalog has
/// SHA-1 compat members, the file's SHA-1 must be among them.
///
/// Fails with [`SignError::Verification`] listing every problem.
pub fn verify_members<P: AsRef<Path>>(cat: &Catalog, paths: &[P]) -> Result<VerifyReport> {
    let compat: BTreeSet<&[u8]> = cat
        .members
        .iter()
        .filter(|m| !m.has_indirect_data && m.digest_algorithm == HashAlg::Sha1)
        .map(|m| m.digest.as_slice())
        .collect();
    let check_compat = cat.version == CatalogVersion::V2 && !compat.is_empty();
    let mut problems = Vec::new();
    let mut verified = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();

    for p in paths {
        let path = p.as_ref();
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                problems.push(MemberProblem::Unhashable {
                    path: path.to_path_buf(),
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let by_name: Vec<&CatalogMember> = cat
            .members
            .iter()
            .filter(|m| {
                m.file_name
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(name))
            })
            .collect();
        let members: Vec<&CatalogMember> = if by_name.is_empty() {
            cat.members
                .iter()
                .filter(|m| m.has_indirect_data || m.file_name.is_some())
                .filter(|m| {
                    file_digest(&m.kind, &data, m.digest_algorithm).is_ok_and(|d| d == m.digest)
                })
                .collect()
        } else {
            by_name
        };
        if members.is_empty() {
            problems.push(MemberProblem::NotInCatalog {
                path: path.to_path_buf(),
            });
            continue;
        }
        let mut ok = true;
        let mut kind = MemberKind::Flat;
        for m in &members {
            if let Some(f) = &m.file_name {
                covered.insert(f.to_ascii_lowercase());
            }
            kind = m.kind.clone();
            match file_digest(&m.kind, &data, m.digest_algorithm) {
                Ok(actual) if actual == m.digest => verified.push(VerifiedFile {
                    path: path.to_path_buf(),
                    kind: m.kind.clone(),
                    algorithm: m.digest_algorithm,
                    digest: hex::encode(&actual),
                }),
                Ok(actual) => {
                    ok = false;
                    problems.push(MemberProblem::HashMismatch {
                        path: path.to_path_buf(),
                        kind: m.kind.clone(),
                        algorithm: m.digest_algorithm,
                        expected: hex::encode(&m.digest),
                        actual: hex::encode(&actual),
                    });
                }
                Err(reason) => {
                    ok = false;
                    problems.push(MemberProblem::Unhashable {
                        path: path.to_path_buf(),
                        reason: format!("catalog lists it as a {}: {reason}", m.kind),
                    });
                }
            }
        }
        if ok && check_compat {
            if let Ok(sha1) = file_digest(&kind, &data, HashAlg::Sha1) {
                if !compat.contains(sha1.as_slice()) {
                    problems.push(MemberProblem::MissingCompatMember {
                        path: path.to_path_buf(),
                        sha1: hex::encode(&sha1),
                    });
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(SignError::Verification(problems));
    }
    let unchecked_members = cat
        .named_members()
        .filter_map(|m| m.file_name.clone())
        .filter(|f| !covered.contains(&f.to_ascii_lowercase()))
        .collect();
    Ok(VerifyReport {
        verified,
        unchecked_members,
    })
}
