//! CMS SignedData (RFC 5652): parsing with bounded work, and checking one
//! signer's signature over detached content or an encapsulated one.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode};
use x509_cert::Certificate;

use super::asn1::{self, Tlv};
use super::chain;
use super::crypto::{self, HashAlg, VerifyError};
use super::report::{Reason, ReasonCode};

pub(crate) const OID_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub(crate) const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub(crate) const OID_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const OID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const OID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const OID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const OID_SIGNATURE_TIMESTAMP: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// Most certificates accepted in one SignedData.
const MAX_CERTS: usize = 64;

/// A SignedData with exactly one signer.
pub(crate) struct Parsed {
    pub econtent_type: ObjectIdentifier,
    /// The encapsulated content, when not detached.
    pub econtent: Option<Vec<u8>>,
    pub certs: Vec<Certificate>,
    /// The TBSCertificate bytes of each of `certs`, as encoded.
    pub certs_tbs: Vec<Vec<u8>>,
    pub signer: SignerInfo,
    /// The SignedData's digestAlgorithms (must list the signer's).
    pub digest_algorithms: Vec<ObjectIdentifier>,
    /// The signed attributes exactly as encoded, re-tagged as a SET (what
    /// the signature covers).
    pub signed_attrs_der: Option<Vec<u8>>,
}

fn nth<'a>(items: &[Tlv<'a>], i: usize, what: &str) -> Result<Tlv<'a>, String> {
    items
        .get(i)
        .copied()
        .ok_or_else(|| format!("CMS: {what} missing"))
}

/// Parses a DER ContentInfo holding a SignedData. Zero bytes after it (the
/// padding of a PDF /Contents) are allowed; anything else is not.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    // Some signers write BER (indefinite lengths): re-encode with definite
    // lengths first. Certificates and signed attributes are DER already
    // (they are signed as DER), so their bytes do not change.
    let (normalized, used) =
        asn1::normalize_lengths(bytes, asn1::Limits::default()).map_err(|e| format!("CMS: {e}"))?;
    if bytes[used..].iter().any(|&b| b != 0) {
        return Err("CMS: unexpected data after the SignedData".into());
    }
    let len = asn1::check_limits(&normalized, asn1::Limits::default())
        .map_err(|e| format!("CMS: {e}"))?;
    let der = &normalized[..len];

    // Raw walk: count certificates and signers before decoding (the decoder
    // sorts SETs, which costs the square of their size), and take the raw
    // signed attributes.
    let (ci, _) = asn1::read_tlv(der)?;
    let ci_items = asn1::children(ci.value)?;
    let explicit = nth(&ci_items, 1, "content")?;
    let sd_items = asn1::children(explicit.value)?;
    let sd = nth(&sd_items, 0, "SignedData")?;
    let fields = asn1::children(sd.value)?;
    for f in &fields {
        if f.tag == 0xa0 && asn1::children(f.value)?.len() > MAX_CERTS {
            return Err(format!("CMS: more than {MAX_CERTS} certificates"));
        }
    }
    let signer_infos = fields
        .last()
        .copied()
        .filter(|t| t.tag == 0x31)
        .ok_or("CMS: signerInfos missing")?;
    let signers = asn1::children(signer_infos.value)?;
    if signers.len() != 1 {
        return Err(format!(
            "CMS: {} signers, exactly one expected",
            signers.len()
        ));
    }
    let si_fields = asn1::children(signers[0].value)?;
    let signed_attrs_der = match si_fields.get(3) {
        Some(t) if t.tag == 0xa0 => {
            let mut raw = t.raw.to_vec();
            raw[0] = 0x31;
            Some(raw)
        }
        _ => None,
    };

    let ci = ContentInfo::from_der(der).map_err(|e| format!("CMS ContentInfo: {e}"))?;
    if ci.content_type != OID_SIGNED_DATA {
        return Err(format!(
            "CMS content type {} is not SignedData",
            ci.content_type
        ));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| format!("CMS SignedData: {e}"))?;
    // The certificates, from their own bytes: a certificate's signature is
    // over its TBSCertificate exactly as encoded.
    let mut certs = Vec::new();
    let mut certs_tbs = Vec::new();
    for f in fields.iter().filter(|f| f.tag == 0xa0) {
        for c in asn1::children(f.value)?.iter().filter(|c| c.tag == 0x30) {
            certs.push(chain::parse_certificate(c.raw)?);
            let (tbs, _) = asn1::read_tlv(c.value)?;
            certs_tbs.push(tbs.raw.to_vec());
        }
    }
    let econtent = match &sd.encap_content_info.econtent {
        None => None,
        Some(any) => Some(
            any.decode_as::<OctetString>()
                .map_err(|e| format!("CMS encapsulated content: {e}"))?
                .into_bytes(),
        ),
    };
    let signer = sd
        .signer_infos
        .0
        .iter()
        .next()
        .cloned()
        .ok_or("CMS: no signer")?;
    if signer.signed_attrs.is_some() != signed_attrs_der.is_some() {
        return Err("CMS: signed attributes inconsistent".into());
    }
    Ok(Parsed {
        digest_algorithms: sd.digest_algorithms.iter().map(|a| a.oid).collect(),
        econtent_type: sd.encap_content_info.econtent_type,
        econtent,
        certs,
        certs_tbs,
        signer,
        signed_attrs_der,
    })
}

/// What checking the signer gave.
pub(crate) struct SignerOutcome {
    /// Index in `Parsed::certs` of the signer's certificate.
    pub signer_cert: Option<usize>,
    pub algorithm: Option<String>,
    pub reasons: Vec<Reason>,
    /// The signingTime signed attribute, Unix seconds.
    pub signing_time_attr: Option<i64>,
    /// The signature timestamp token (unsigned attribute), DER.
    pub timestamp_token: Option<Vec<u8>>,
}

/// Checks the signer of `p` over `content` (the concatenated parts): the
/// message digest and the signature.
pub(crate) fn check_signer(p: &Parsed, content: &[&[u8]]) -> SignerOutcome {
    let mut out = SignerOutcome {
        signer_cert: None,
        algorithm: None,
        reasons: Vec::new(),
        signing_time_attr: None,
        timestamp_token: None,
    };
    let si = &p.signer;

    // Unsigned attributes first: the timestamp token does not depend on the
    // rest.
    if let Some(attrs) = &si.unsigned_attrs {
        if let Some(a) = attrs.iter().find(|a| a.oid == OID_SIGNATURE_TIMESTAMP) {
            out.timestamp_token = a.values.iter().next().and_then(|v| v.to_der().ok());
        }
    }

    let signer_cert = chain::find_signer(&p.certs, &si.sid);
    out.signer_cert = signer_cert.and_then(|c| p.certs.iter().position(|x| std::ptr::eq(x, c)));
    let Some(cert) = signer_cert else {
        out.reasons.push(Reason::new(
            ReasonCode::Malformed,
            "the signer's certificate is not in the signature",
        ));
        return out;
    };

    let Some(hash) = HashAlg::from_oid(&si.digest_alg.oid) else {
        out.reasons.push(Reason::new(
            ReasonCode::Unsupported,
            format!("digest algorithm {} is not supported", si.digest_alg.oid),
        ));
        return out;
    };
    if !p.digest_algorithms.contains(&si.digest_alg.oid) {
        out.reasons.push(Reason::new(
            ReasonCode::Malformed,
            "the signer's digest algorithm is not listed in the SignedData",
        ));
    }
    if hash.is_weak() {
        out.reasons.push(Reason::new(
            ReasonCode::WeakAlgorithm,
            "the document digest is SHA-1, which is no longer secure",
        ));
    }
    let digest = hash.digest(content);

    let signed_message: Vec<u8>;
    let message: Vec<&[u8]> = match (&si.signed_attrs, &p.signed_attrs_der) {
        (Some(attrs), Some(raw)) => {
            // messageDigest: exactly one, equal to our digest.
            let md: Vec<_> = attrs
                .iter()
                .filter(|a| a.oid == OID_MESSAGE_DIGEST)
                .collect();
            let value = match md.as_slice() {
                [a] if a.values.len() == 1 => a
                    .values
                    .iter()
                    .next()
                    .and_then(|v| v.decode_as::<OctetString>().ok()),
                _ => None,
            };
            match value {
                None => {
                    out.reasons.push(Reason::new(
                        ReasonCode::Malformed,
                        "the signed attributes have no single messageDigest",
                    ));
                    return out;
                }
                Some(v) if v.as_bytes() != digest.as_slice() => {
                    out.reasons.push(Reason::new(
                        ReasonCode::DigestMismatch,
                        "the signed content was changed after signing (digest mismatch)",
                    ));
                }
                Some(_) => {}
            }
            let ct = attrs
                .iter()
                .find(|a| a.oid == OID_CONTENT_TYPE)
                .and_then(|a| a.values.iter().next())
                .and_then(|v| v.decode_as::<ObjectIdentifier>().ok());
            if ct != Some(p.econtent_type) {
                out.reasons.push(Reason::new(
                    ReasonCode::Malformed,
                    "the contentType signed attribute is missing or does not match",
                ));
            }
            if let Some(a) = attrs.iter().find(|a| a.oid == OID_SIGNING_TIME) {
                out.signing_time_attr = a
                    .values
                    .iter()
                    .next()
                    .and_then(|v| v.to_der().ok())
                    .and_then(|d| x509_cert::time::Time::from_der(&d).ok())
                    .map(|t| chain::unix_of(&t));
            }
            signed_message = raw.clone();
            vec![signed_message.as_slice()]
        }
        _ => content.to_vec(),
    };

    match crypto::verify(
        &cert.tbs_certificate.subject_public_key_info,
        &si.signature_algorithm,
        Some(hash),
        &message,
        si.signature.as_bytes(),
    ) {
        Ok(v) => {
            if v.hash.is_weak() && !hash.is_weak() {
                out.reasons.push(Reason::new(
                    ReasonCode::WeakAlgorithm,
                    "the signature uses SHA-1, which is no longer secure",
                ));
            }
            out.algorithm = Some(v.algorithm);
        }
        Err(VerifyError::Mismatch) => out.reasons.push(Reason::new(
            ReasonCode::BadSignature,
            "the signature value does not verify with the signer's public key",
        )),
        Err(VerifyError::Malformed(m)) => out.reasons.push(Reason::new(
            ReasonCode::Malformed,
            format!("cannot check the signature: {m}"),
        )),
        Err(VerifyError::Unsupported(m)) => out.reasons.push(Reason::new(
            ReasonCode::Unsupported,
            format!("cannot check the signature: {m} is not supported"),
        )),
    }
    out
}

/// The fields of an RFC 3161 TSTInfo that we use.
pub(crate) struct TstInfo {
    pub hash: Option<HashAlg>,
    pub hash_oid: ObjectIdentifier,
    pub hashed_message: Vec<u8>,
    /// Unix seconds.
    pub gen_time: i64,
}

/// Reads a TSTInfo: SEQUENCE { version, policy, messageImprint
/// SEQUENCE { hashAlgorithm, hashedMessage }, serialNumber, genTime, ... }.
pub(crate) fn parse_tst_info(der: &[u8]) -> Result<TstInfo, String> {
    asn1::check_limits(der, asn1::Limits::default())?;
    let (seq, _) = asn1::read_tlv(der)?;
    let items = asn1::children(seq.value)?;
    let imprint = nth(&items, 2, "TSTInfo messageImprint")?;
    let imprint = asn1::children(imprint.value)?;
    let alg = spki::AlgorithmIdentifierOwned::from_der(nth(&imprint, 0, "hashAlgorithm")?.raw)
        .map_err(|e| format!("TSTInfo hashAlgorithm: {e}"))?;
    let hashed = OctetString::from_der(nth(&imprint, 1, "hashedMessage")?.raw)
        .map_err(|e| format!("TSTInfo hashedMessage: {e}"))?;
    let gen_time = nth(&items, 4, "TSTInfo genTime")?;
    if gen_time.tag != 0x18 {
        return Err("TSTInfo genTime is not a GeneralizedTime".into());
    }
    let gen_time =
        parse_generalized_time(gen_time.value).ok_or("TSTInfo genTime: not YYYYMMDDHHMMSS[.f]Z")?;
    Ok(TstInfo {
        hash: HashAlg::from_oid(&alg.oid),
        hash_oid: alg.oid,
        hashed_message: hashed.into_bytes(),
        gen_time,
    })
}

/// Parses a DER GeneralizedTime value as RFC 3161 allows it:
/// `YYYYMMDDHHMMSS[.fraction]Z` (the fraction is dropped).
fn parse_generalized_time(v: &[u8]) -> Option<i64> {
    let v = v.strip_suffix(b"Z")?;
    let (main, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    if main.len() != 14
        || !main.iter().all(u8::is_ascii_digit)
        || !frac.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let n =
        |a: usize, b: usize| -> Option<u32> { std::str::from_utf8(&main[a..b]).ok()?.parse().ok() };
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0, 4)?).ok()?,
        time::Month::try_from(u8::try_from(n(4, 6)?).ok()?).ok()?,
        u8::try_from(n(6, 8)?).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(n(8, 10)?).ok()?,
        u8::try_from(n(10, 12)?).ok()?,
        u8::try_from(n(12, 14)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn generalized_time() {
        assert_eq!(super::parse_generalized_time(b"19700101000001Z"), Some(1));
        assert_eq!(
            super::parse_generalized_time(b"19700101000001.123Z"),
            Some(1)
        );
        assert_eq!(super::parse_generalized_time(b"19700101000001"), None);
        assert_eq!(super::parse_generalized_time(b"1970010100000Z"), None);
        assert_eq!(super::parse_generalized_time(b"19701301000000Z"), None);
    }
}
