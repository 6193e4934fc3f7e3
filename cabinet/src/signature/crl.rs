//! Certificate revocation lists (RFC 5280 §5) from the trust folder, and
//! the revocation check of a signer's chain.
//!
//! A closed network has no OCSP responder and cannot fetch CRLs: an
//! administrator copies the CAs' CRL files into the trust folder by hand.
//! Each certificate below the trust anchor (the signer, then every
//! intermediate CA) is looked up in the newest usable CRL of its issuer:
//!
//! - a CRL is usable when it is signed by the issuer's key (the certificate
//!   that issued the checked certificate in the path), the issuer may sign
//!   CRLs (key usage cRLSign, when the extension is present), it is already
//!   valid (thisUpdate not in the future), and it is a complete CRL for that
//!   certificate (no delta CRL, no indirect CRL, no partition by reasons;
//!   a partition by distribution point or by user/CA certificates must
//!   include the certificate). Any other CRL is ignored, and the report says
//!   why;
//! - listed on any usable CRL (even an expired one: a revocation is not
//!   undone) -> `revoked`, whatever the revocation date, unless the signing
//!   time comes from a verified RFC 3161 timestamp earlier than the
//!   revocation date: the key is then proven to have signed before it was
//!   revoked (a signing time claimed by the signer proves nothing: a stolen
//!   key can back-date);
//! - not listed, and the newest usable CRL is current (nextUpdate not
//!   passed at verification time) -> `checked_good`;
//! - otherwise (no usable CRL, or the newest has expired or has no
//!   nextUpdate) -> `not_checked`.

use std::collections::HashMap;

use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::{CrlDistributionPoints, IssuingDistributionPoint, KeyUsage};
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::asn1;
use super::chain::{hex, name_to_string, unix_of};
use super::crypto::{self, VerifyError};
use super::report::{
    rfc3339, CertRevocation, CrlSummary, Reason, ReasonCode, RevocationReport, RevocationStatus,
};

const OID_AKI: &str = "2.5.29.35";
const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_DELTA_CRL: &str = "2.5.29.27";
const OID_IDP: &str = "2.5.29.28";
const OID_REASON_CODE: &str = "2.5.29.21";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";
const OID_FRESHEST_CRL: &str = "2.5.29.46";
const OID_AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";

/// Bounds for walking a CRL: it may list hundreds of thousands of serials
/// (the file size limit of the trust store bounds the rest).
const CRL_LIMITS: asn1::Limits = asn1::Limits {
    max_depth: 32,
    max_children: 4_000_000,
    max_nodes: 16_000_000,
};

/// Which certificates a CRL covers (issuing distribution point).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every certificate of the issuer.
    All,
    /// End-entity certificates only.
    UserCerts,
    /// CA certificates only.
    CaCerts,
}

/// One CRL of the trust folder, parsed at load time. Its signature is
/// checked when it is used, against the issuer certificate of the path.
#[derive(Debug, Clone)]
pub(crate) struct Crl {
    /// The file it came from (name only), for messages.
    pub file: String,
    pub issuer: Name,
    /// authorityKeyIdentifier of the CRL, to pick the right issuer key.
    aki: Option<Vec<u8>>,
    /// The TBSCertList as encoded: what the signature covers.
    tbs: Vec<u8>,
    sig_alg: AlgorithmIdentifierOwned,
    signature: Vec<u8>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// Serial number (DER INTEGER value octets) -> earliest revocation date.
    revoked: HashMap<Vec<u8>, i64>,
    scope: Scope,
    /// The distribution point names the CRL is limited to (empty: none).
    dp_names: Vec<Vec<u8>>,
    /// Why the CRL cannot be used at all (delta, indirect, by reasons...).
    unusable: Option<String>,
}

impl Crl {
    /// Parses one DER CRL (bounded work); `file` names it in messages.
    pub(crate) fn parse(der: &[u8], file: &str) -> Result<Crl, String> {
        let len = asn1::check_limits(der, CRL_LIMITS)?;
        if len != der.len() {
            return Err("data after the CRL".into());
        }
        let (outer, _) = asn1::read_tlv(der)?;
        let parts = asn1::children(outer.value)?;
        let [tbs, alg, sig] = parts.as_slice() else {
            return Err("a CRL is a sequence of three elements".into());
        };
        if outer.tag != 0x30 || tbs.tag != 0x30 {
            return Err("not a CRL (CertificateList)".into());
        }
        // A version 1 CRL has no version field; the decoder wants one.
        let first = asn1::read_tlv(tbs.value)?.0;
        let patched;
        let to_decode = if first.tag == 0x02 {
            der
        } else {
            let mut new_tbs = vec![0x02, 0x01, 0x00];
            new_tbs.extend_from_slice(tbs.value);
            let mut body = vec![0x30];
            asn1::push_length(&mut body, new_tbs.len());
            body.extend_from_slice(&new_tbs);
            body.extend_from_slice(alg.raw);
            body.extend_from_slice(sig.raw);
            let mut all = vec![0x30];
            asn1::push_length(&mut all, body.len());
            all.extend_from_slice(&body);
            patched = all;
            &patched
        };
        let list = CertificateList::from_der(to_decode).map_err(|e| format!("bad CRL: {e}"))?;
        let t = &list.tbs_cert_list;
        if t.signature != list.signature_algorithm {
            return Err("the CRL names two different signature algorithms".into());
        }
        let signature = list
            .signature
            .as_bytes()
            .ok_or("the CRL signature is not a whole number of bytes")?
            .to_vec();
        let mut crl = Crl {
            file: file.to_owned(),
            issuer: t.issuer.clone(),
            aki: None,
            tbs: tbs.raw.to_vec(),
            sig_alg: list.signature_algorithm.clone(),
            signature,
            this_update: unix_of(&t.this_update),
            next_update: t.next_update.as_ref().map(unix_of),
            revoked: HashMap::new(),
            scope: Scope::All,
            dp_names: Vec::new(),
            unusable: None,
        };
        for ext in t.crl_extensions.as_deref().unwrap_or(&[]) {
            let oid = ext.extn_id.to_string();
            let value = ext.extn_value.as_bytes();
            match oid.as_str() {
                OID_CRL_NUMBER | OID_FRESHEST_CRL | OID_AUTHORITY_INFO_ACCESS => {}
                OID_AKI => {
                    let a = x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(value)
                        .map_err(|e| format!("bad authority key identifier: {e}"))?;
                    crl.aki = a.key_identifier.map(|k| k.as_bytes().to_vec());
                }
                OID_DELTA_CRL => {
                    crl.unusable = Some("it is a delta CRL (not supported)".into());
                }
                OID_IDP => {
                    let idp = IssuingDistributionPoint::from_der(value)
                        .map_err(|e| format!("bad issuing distribution point: {e}"))?;
                    if idp.indirect_crl {
                        crl.unusable = Some("it is an indirect CRL (not supported)".into());
                    } else if idp.only_some_reasons.is_some() {
                        crl.unusable =
                            Some("it covers only some revocation reasons (not supported)".into());
                    } else if idp.only_contains_attribute_certs {
                        crl.unusable = Some("it covers attribute certificates only".into());
                    }
                    if idp.only_contains_user_certs {
                        crl.scope = Scope::UserCerts;
                    } else if idp.only_contains_ca_certs {
                        crl.scope = Scope::CaCerts;
                    }
                    match idp.distribution_point {
                        None => {}
                        Some(DistributionPointName::FullName(names)) => {
                            for n in names {
                                crl.dp_names.push(n.to_der().map_err(|e| e.to_string())?);
                            }
                        }
                        Some(DistributionPointName::NameRelativeToCRLIssuer(_)) => {
                            crl.unusable = Some(
                                "its distribution point is a name relative to the issuer (not supported)"
                                    .into(),
                            );
                        }
                    }
                }
                _ if ext.critical => {
                    crl.unusable = Some(format!("it has an unknown critical extension {oid}"));
                }
                _ => {}
            }
        }
        for entry in t.revoked_certificates.as_deref().unwrap_or(&[]) {
            let mut at = unix_of(&entry.revocation_date);
            for ext in entry.crl_entry_extensions.as_deref().unwrap_or(&[]) {
                let oid = ext.extn_id.to_string();
                match oid.as_str() {
                    OID_REASON_CODE => {}
                    OID_INVALIDITY_DATE => {
                        // The key may have been compromised earlier than
                        // the revocation: the earlier date counts.
                        if let Ok(g) =
                            der::asn1::GeneralizedTime::from_der(ext.extn_value.as_bytes())
                        {
                            let t =
                                i64::try_from(g.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
                            at = at.min(t);
                        }
                    }
                    _ if ext.critical => {
                        crl.unusable = Some(format!(
                            "an entry has an unknown critical extension {oid} (not supported)"
                        ));
                    }
                    _ => {}
                }
            }
            let serial = entry.serial_number.as_bytes().to_vec();
            let e = crl.revoked.entry(serial).or_insert(at);
            *e = (*e).min(at);
        }
        Ok(crl)
    }

    /// Why the CRL cannot be used at all, if so.
    pub(crate) fn unusable_reason(&self) -> Option<String> {
        self.unusable.clone()
    }

    pub(crate) fn issuer_text(&self) -> String {
        name_to_string(&self.issuer)
    }

    fn summary(&self) -> CrlSummary {
        CrlSummary {
            issuer: self.issuer_text(),
            this_update: rfc3339(self.this_update),
            next_update: self.next_update.map(rfc3339),
            file: self.file.clone(),
        }
    }

    /// Is this CRL signed by `issuer`'s key, and may `issuer` sign CRLs?
    pub(crate) fn check_signed_by(&self, issuer: &Certificate) -> Result<(), String> {
        if let Ok(Some((_, ku))) = issuer.tbs_certificate.get::<KeyUsage>() {
            if !ku.crl_sign() {
                return Err("its issuer's key usage does not allow signing CRLs".into());
            }
        }
        crypto::verify(
            &issuer.tbs_certificate.subject_public_key_info,
            &self.sig_alg,
            None,
            &[&self.tbs],
            &self.signature,
        )
        .map(|_| ())
        .map_err(|e| match e {
            VerifyError::Mismatch => {
                "its signature does not verify with the issuer's key (changed or forged)".to_owned()
            }
            VerifyError::Malformed(m) | VerifyError::Unsupported(m) => {
                format!("its signature cannot be checked: {m}")
            }
        })
    }

    /// Does this CRL cover `cert` (scope and distribution point)?
    fn covers(&self, cert: &Certificate) -> Result<(), String> {
        let is_ca = matches!(
            cert.tbs_certificate
                .get::<x509_cert::ext::pkix::BasicConstraints>(),
            Ok(Some((_, bc))) if bc.ca
        );
        match self.scope {
            Scope::UserCerts if is_ca => {
                return Err("it covers end-entity certificates only".into())
            }
            Scope::CaCerts if !is_ca => return Err("it covers CA certificates only".into()),
            _ => {}
        }
        if self.dp_names.is_empty() {
            return Ok(());
        }
        let mut cert_names = Vec::new();
        if let Ok(Some((_, dps))) = cert.tbs_certificate.get::<CrlDistributionPoints>() {
            for dp in dps.0 {
                if let Some(DistributionPointName::FullName(names)) = dp.distribution_point {
                    for n in names {
                        if let Ok(d) = n.to_der() {
                            cert_names.push(d);
                        }
                    }
                }
            }
        }
        if cert_names.iter().any(|n| self.dp_names.contains(n)) {
            Ok(())
        } else {
            Err("it is for another distribution point than the certificate's".into())
        }
    }
}

/// The `-----BEGIN X509 CRL-----` blocks of a PEM text, or the bytes
/// themselves when they are not PEM.
pub(crate) fn crl_ders(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        super::chain::pem_blocks(bytes, "X509 CRL")
    } else {
        Ok(vec![bytes.to_vec()])
    }
}

fn same_name(a: &Name, b: &Name) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn ski(cert: &Certificate) -> Option<Vec<u8>> {
    match cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
    {
        Ok(Some((_, s))) => Some(s.0.as_bytes().to_vec()),
        _ => None,
    }
}

/// The time of a signature, and whether it is proven (a verified RFC 3161
/// timestamp) or only claimed by the signer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SigningTime {
    pub at: i64,
    pub proven: bool,
}

/// Checks every certificate of `path` (leaf first, each element's issuer
/// next; the bool marks trust anchors) below its first trust anchor
/// against the CRLs. `now` judges CRL freshness. Returns the report and
/// the reasons it adds to the signature (`revoked`, or a
/// `revocation_not_checked` warning).
pub(crate) fn check_path(
    path: &[(Certificate, bool)],
    anchored: bool,
    crls: &[Crl],
    signing: SigningTime,
    now: i64,
) -> (RevocationReport, Vec<Reason>) {
    let checked_at = rfc3339(now);
    if !anchored {
        let report = RevocationReport {
            status: RevocationStatus::NotChecked,
            message: "revocation not checked: the chain does not reach a trust anchor".into(),
            checked_at,
            certificates: Vec::new(),
        };
        return (report, Vec::new());
    }
    let mut certificates = Vec::new();
    for (i, (cert, is_anchor)) in path.iter().enumerate() {
        if *is_anchor {
            break;
        }
        let Some((issuer, _)) = path.get(i + 1) else {
            break;
        };
        certificates.push(check_one(cert, issuer, crls, signing, now));
    }
    let status = certificates
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(RevocationStatus::CheckedGood);
    let mut reasons = Vec::new();
    let message = match status {
        RevocationStatus::CheckedGood if certificates.is_empty() => {
            "the signer's certificate is itself a trust anchor: nothing to check".to_owned()
        }
        RevocationStatus::CheckedGood => {
            "checked against current CRLs: no certificate of the chain is revoked".to_owned()
        }
        RevocationStatus::Revoked | RevocationStatus::NotChecked => {
            let worst: Vec<String> = certificates
                .iter()
                .filter(|c| c.status == status)
                .map(|c| c.message.clone())
                .collect();
            let text = worst.join("; ");
            let code = if status == RevocationStatus::Revoked {
                ReasonCode::Revoked
            } else {
                ReasonCode::RevocationNotChecked
            };
            reasons.push(Reason::new(code, text.clone()));
            text
        }
    };
    let report = RevocationReport {
        status,
        message,
        checked_at,
        certificates,
    };
    (report, reasons)
}

fn check_one(
    cert: &Certificate,
    issuer: &Certificate,
    crls: &[Crl],
    signing: SigningTime,
    now: i64,
) -> CertRevocation {
    let tbs = &cert.tbs_certificate;
    let who = name_to_string(&tbs.subject);
    let serial = hex(tbs.serial_number.as_bytes());
    let issuer_text = name_to_string(&issuer.tbs_certificate.subject);
    let issuer_key = ski(issuer);
    let mut ignored = Vec::new();
    let mut usable: Vec<&Crl> = Vec::new();
    for crl in crls {
        if !same_name(&crl.issuer, &tbs.issuer) {
            continue;
        }
        if let (Some(want), Some(have)) = (&crl.aki, &issuer_key) {
            if want != have {
                // Another key under the same name: a renewed CA
                // certificate, or a forgery.
                ignored.push(format!(
                    "CRL {} ignored: it is for another key of that name (authority key identifier {})",
                    crl.file,
                    hex(want)
                ));
                continue;
            }
        }
        let why = if let Some(u) = &crl.unusable {
            Err(u.clone())
        } else if let Err(e) = crl.covers(cert) {
            Err(e)
        } else if let Err(e) = crl.check_signed_by(issuer) {
            Err(e)
        } else if crl.this_update > now {
            Err(format!(
                "it is not valid yet (this update {})",
                rfc3339(crl.this_update)
            ))
        } else {
            Ok(())
        };
        match why {
            Ok(()) => usable.push(crl),
            Err(e) => ignored.push(format!("CRL {} ignored: {e}", crl.file)),
        }
    }
    let ignored_note = if ignored.is_empty() {
        String::new()
    } else {
        format!(" ({})", ignored.join("; "))
    };
    let newest = usable.iter().copied().max_by_key(|c| c.this_update);
    // A revocation on any usable CRL counts, the earliest date first.
    let listed = usable
        .iter()
        .filter_map(|c| {
            c.revoked
                .get(tbs.serial_number.as_bytes())
                .map(|at| (*at, *c))
        })
        .min_by_key(|(at, _)| *at);
    let mut out = CertRevocation {
        subject: who.clone(),
        serial: serial.clone(),
        status: RevocationStatus::NotChecked,
        message: String::new(),
        crl: newest.map(Crl::summary),
        revoked_at: None,
    };
    if let Some((at, crl)) = listed {
        out.crl = Some(crl.summary());
        out.revoked_at = Some(rfc3339(at));
        if signing.proven && signing.at < at {
            out.status = RevocationStatus::CheckedGood;
            out.message = format!(
                "the certificate of {who} (serial {serial}) was revoked on {}, after the signing time {} proven by a timestamp (CRL {} of {issuer_text}){ignored_note}",
                rfc3339(at),
                rfc3339(signing.at),
                crl.file
            );
        } else {
            out.status = RevocationStatus::Revoked;
            let when = if signing.proven {
                format!(
                    "before the timestamped signing time {}",
                    rfc3339(signing.at)
                )
            } else {
                format!(
                    "and the signing time {} is only claimed by the signer",
                    rfc3339(signing.at)
                )
            };
            out.message = format!(
                "the certificate of {who} (serial {serial}) was revoked on {} {when} (CRL {} of {issuer_text}, this update {})",
                rfc3339(at),
                crl.file,
                rfc3339(crl.this_update)
            );
        }
        return out;
    }
    match newest {
        None => {
            out.message = format!(
                "revocation of {who} not checked: no usable CRL of {issuer_text} in the trust folder{ignored_note}"
            );
        }
        Some(crl) => match crl.next_update {
            Some(next) if next >= now => {
                out.status = RevocationStatus::CheckedGood;
                out.message = format!(
                    "{who} is not on the CRL {} of {issuer_text} (this update {}, next update {}){ignored_note}",
                    crl.file,
                    rfc3339(crl.this_update),
                    rfc3339(next)
                );
            }
            Some(next) => {
                out.message = format!(
                    "revocation of {who} not checked: the newest CRL of {issuer_text} ({}) expired on {} (next update passed; copy a current CRL into the trust folder){ignored_note}",
                    crl.file,
                    rfc3339(next)
                );
            }
            None => {
                out.message = format!(
                    "revocation of {who} not checked: the CRL {} of {issuer_text} has no next update, so whether it is current is unknown{ignored_note}",
                    crl.file
                );
            }
        },
    }
    out
}
