//! PKCS#7 SignedData (version 1) around a catalog's trust list, built by
//! hand: the `cms` builder would emit version 3 for non-`data` content,
//! while Windows' catalogs are version 1.

use std::time::Duration;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_TIME};
use const_oid::db::rfc5912::RSA_ENCRYPTION;
use der::asn1::{OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode, Reader, SliceReader};
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

use crate::asn1::MS_CTL;
use crate::hash::{bytes_hash, HashAlg};
use crate::{Result, SignError, SigningCert};

fn alg_with_null(oid: const_oid::ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::null()),
    }
}

fn encap(ctl_der: &[u8]) -> Result<EncapsulatedContentInfo> {
    Ok(EncapsulatedContentInfo {
        econtent_type: MS_CTL,
        econtent: Some(Any::from_der(ctl_der)?),
    })
}

fn content_info(sd: &SignedData) -> Result<Vec<u8>> {
    let ci = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(sd)?,
    };
    Ok(ci.to_der()?)
}

/// An unsigned catalog: SignedData v1 with no digest algorithms, no
/// certificates and no signer infos (what makecat writes before signing;
/// `osslsigncode sign` can sign it).
pub fn wrap_unsigned(ctl_der: &[u8]) -> Result<Vec<u8>> {
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: encap(ctl_der)?,
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    content_info(&sd)
}

/// A signed catalog: SignedData v1, SHA-256 / RSA PKCS#1 v1.5, signed
/// attributes contentType, messageDigest (over the trust list's content
/// octets) and signingTime, the signer's certificate included.
pub fn wrap_signed(
    ctl_der: &[u8],
    signer: &SigningCert,
    signing_time_unix: u64,
) -> Result<Vec<u8>> {
    let encap = encap(ctl_der)?;
    let content_octets = encap
        .econtent
        .as_ref()
        .map(|a| a.value().to_vec())
        .unwrap_or_default();
    let digest = bytes_hash(&content_octets, HashAlg::Sha256);
    let time =
        UtcTime::from_unix_duration(Duration::from_secs(signing_time_unix)).map_err(|e| {
            SignError::catalog(format!(
                "signing time {signing_time_unix} not representable as UTCTime: {e}"
            ))
        })?;

    let attr = |oid, value: Any| -> Result<Attribute> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value])?,
        })
    };
    let signed_attrs = SetOfVec::try_from(vec![
        attr(ID_CONTENT_TYPE, Any::encode_from(&MS_CTL)?)?,
        attr(ID_SIGNING_TIME, Any::encode_from(&time)?)?,
        attr(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest)?)?,
        )?,
    ])?;
    let to_sign = signed_attrs.to_der()?;
    let key = rsa::pkcs1v15::SigningKey::<Sha256>::new(signer.private_key().clone());
    let signature = key
        .try_sign(&to_sign)
        .map_err(|e| SignError::Key(format!("RSA signing failed: {e}")))?
        .to_vec();

    let tbs = &signer.certificate().tbs_certificate;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: alg_with_null(HashAlg::Sha256.oid()),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: alg_with_null(RSA_ENCRYPTION),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![alg_with_null(HashAlg::Sha256.oid())])?,
        encap_content_info: encap,
        certificates: Some(CertificateSet(SetOfVec::try_from(vec![
            CertificateChoices::Certificate(signer.certificate().clone()),
        ])?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    content_info(&sd)
}

/// What [`unwrap`] finds in a catalog file.
pub struct Unwrapped {
    /// DER of the trust list (a SEQUENCE).
    pub ctl_der: Vec<u8>,
    /// SignedData version.
    pub version: u8,
    /// Number of signer infos.
    pub signer_count: usize,
    /// Certificates carried, DER.
    pub certificates: Vec<Vec<u8>>,
}

/// Opens the PKCS#7 envelope of a catalog. Trailing zero padding after the
/// DER structure is tolerated.
pub fn unwrap(bytes: &[u8]) -> Result<Unwrapped> {
    let mut reader = SliceReader::new(bytes)
        .map_err(|e| SignError::catalog(format!("file too large or empty: {e}")))?;
    let ci = ContentInfo::decode(&mut reader)
        .map_err(|e| SignError::catalog(format!("not a PKCS#7 ContentInfo: {e}")))?;
    let consumed = usize::try_from(u32::from(reader.position())).unwrap_or(usize::MAX);
    if bytes
        .get(consumed..)
        .is_some_and(|rest| rest.iter().any(|b| *b != 0))
    {
        return Err(SignError::catalog(
            "unexpected data after the PKCS#7 structure",
        ));
    }
    if ci.content_type != ID_SIGNED_DATA {
        return Err(SignError::catalog(format!(
            "PKCS#7 content type is {}, not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| SignError::catalog(format!("invalid SignedData: {e}")))?;
    if sd.encap_content_info.econtent_type != MS_CTL {
        return Err(SignError::catalog(format!(
            "signed content type is {}, not a certificate trust list (1.3.6.1.4.1.311.10.1)",
            sd.encap_content_info.econtent_type
        )));
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .ok_or_else(|| SignError::catalog("SignedData carries no content (detached)"))?;
    let ctl_der = econtent.to_der()?;
    let version = match sd.version {
        CmsVersion::V0 => 0,
        CmsVersion::V1 => 1,
        CmsVersion::V2 => 2,
        CmsVersion::V3 => 3,
        CmsVersion::V4 => 4,
        CmsVersion::V5 => 5,
    };
    let certificates = sd
        .certificates
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(cert) => cert.to_der().ok(),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Unwrapped {
        ctl_der,
        version,
        signer_count: sd.signer_infos.0.len(),
        certificates,
    })
}
