//! Trust anchors and certificate paths.

use std::path::Path;

use base64::Engine as _;
use der::{Decode, Encode, Tagged};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::asn1;
use super::crl::{self, Crl};
use super::crypto::{self, VerifyError};
use super::report::{rfc3339, CertSummary, Reason, ReasonCode};
use super::SignatureError;

/// Most certificates in a trust store.
const MAX_ANCHORS: usize = 10_000;
/// Largest certificate file read into a trust store.
const MAX_CERT_FILE: u64 = 16 << 20;
/// Longest path, leaf and anchor included.
const MAX_PATH: usize = 10;
/// Most issuer candidates tried while building one path.
const MAX_TRIES: usize = 64;
/// Most CRLs in a trust store.
const MAX_CRLS: usize = 1_000;

/// The certificates we trust as anchors (e.g. the government CA's roots).
///
/// Every certificate in the store is an anchor: a chain that reaches one of
/// them is trusted, whatever lies above it. The store also holds the CRLs
/// of the trust folder (files ending in .crl), against which the
/// certificates of a chain are checked for revocation.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    anchor_der: Vec<Vec<u8>>,
    pub(crate) crls: Vec<Crl>,
}

impl TrustStore {
    /// A store with no anchor: every signature is at best untrusted.
    pub fn empty() -> TrustStore {
        TrustStore::default()
    }

    /// Loads every certificate of a folder (files ending in .pem, .crt,
    /// .cer or .der, PEM or DER, not recursive) and every CRL (files ending
    /// in .crl, PEM or DER), or the certificates of one file (a PEM bundle
    /// or one DER certificate). A file that cannot be read or parsed is an
    /// error; a CRL whose signature does not verify with an anchor that
    /// issued it, or that has expired, is kept but logged (a verification
    /// ignores it, and says so in its report).
    pub fn from_path(path: impl AsRef<Path>) -> Result<TrustStore, SignatureError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| SignatureError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let mut store = TrustStore::empty();
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(
                            e.to_ascii_lowercase().as_str(),
                            "pem" | "crt" | "cer" | "der" | "crl"
                        )
                    })
                })
                .collect();
            files.sort();
            for f in files {
                store.load_file(&f)?;
            }
        } else {
            store.load_file(path)?;
        }
        if store.anchors.is_empty() {
            return Err(SignatureError::Trust(format!(
                "no certificate found in {}",
                path.display()
            )));
        }
        for w in store.crl_warnings(time::OffsetDateTime::now_utc().unix_timestamp()) {
            tracing::warn!(trust = %path.display(), "{w}");
        }
        Ok(store)
    }

    /// What is wrong with the CRLs at time `now` (Unix seconds), as far as
    /// the anchors tell: one issued by an anchor whose signature does not
    /// verify, one past its next update, one that cannot be used at all.
    /// (A CRL of an intermediate CA is checked when a chain brings that CA's
    /// certificate.)
    pub fn crl_warnings(&self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.crls {
            if let Some(u) = &c.unusable_reason() {
                out.push(format!("CRL {} cannot be used: {u}", c.file));
                continue;
            }
            let issuers: Vec<&Certificate> = self
                .anchors
                .iter()
                .filter(|a| same_name(&a.tbs_certificate.subject, &c.issuer))
                .collect();
            if !issuers.is_empty() {
                let errors: Vec<String> = issuers
                    .iter()
                    .filter_map(|a| c.check_signed_by(a).err())
                    .collect();
                if errors.len() == issuers.len() {
                    out.push(format!(
                        "CRL {} of {}: {}; it will be ignored",
                        c.file,
                        c.issuer_text(),
                        errors.join("; ")
                    ));
                }
            }
            match c.next_update {
                Some(n) if n < now => out.push(format!(
                    "CRL {} of {} expired on {}: revocation is not checked for that CA until a current CRL is copied in",
                    c.file,
                    c.issuer_text(),
                    rfc3339(n)
                )),
                _ => {}
            }
        }
        out
    }

    fn load_file(&mut self, path: &Path) -> Result<(), SignatureError> {
        let io = |e: std::io::Error| SignatureError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Ok(());
        }
        if meta.len() > MAX_CERT_FILE {
            return Err(SignatureError::Trust(format!(
                "{}: larger than {MAX_CERT_FILE} bytes",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let is_crl = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("crl"));
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let added = if is_crl {
            self.add_crl_pem_or_der(&bytes, &file)
        } else {
            self.add_pem_or_der(&bytes)
        };
        added.map_err(|e| SignatureError::Trust(format!("{}: {e}", path.display())))?;
        Ok(())
    }

    /// Adds the CRLs of a PEM file (`X509 CRL` blocks) or one DER CRL;
    /// `file` names them in reports. Returns how many were added.
    pub fn add_crl_pem_or_der(&mut self, bytes: &[u8], file: &str) -> Result<usize, String> {
        let mut n = 0;
        for der in crl::crl_ders(bytes)? {
            if self.crls.len() >= MAX_CRLS {
                return Err(format!("more than {MAX_CRLS} CRLs"));
            }
            self.crls.push(Crl::parse(&der, file)?);
            n += 1;
        }
        Ok(n)
    }

    /// How many CRLs the store has.
    pub fn crl_count(&self) -> usize {
        self.crls.len()
    }

    /// Adds the certificates of a PEM bundle, or one DER certificate.
    /// Returns how many were added.
    pub fn add_pem_or_der(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let ders = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            pem_certificates(bytes)?
        } else {
            vec![bytes.to_vec()]
        };
        let mut n = 0;
        for der in ders {
            let cert = parse_certificate(&der)?;
            if self.anchors.len() >= MAX_ANCHORS {
                return Err(format!("more than {MAX_ANCHORS} trust anchors"));
            }
            if !self.anchor_der.contains(&der) {
                self.anchors.push(cert);
                self.anchor_der.push(der);
                n += 1;
            }
        }
        Ok(n)
    }

    /// How many anchors the store has.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    fn is_anchor(&self, cert: &Certificate) -> bool {
        match cert.to_der() {
            Ok(der) => self.anchor_der.contains(&der),
            Err(_) => false,
        }
    }
}

/// The `CERTIFICATE` blocks of a PEM text, decoded.
fn pem_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    pem_blocks(bytes, "CERTIFICATE")
}

/// The blocks of a PEM text with the given label, decoded.
pub(crate) fn pem_blocks(bytes: &[u8], label: &str) -> Result<Vec<Vec<u8>>, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut rest: &str = &text;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let (begin, end) = (begin.as_str(), end.as_str());
    while let Some(b) = rest.find(begin) {
        let after = &rest[b + begin.len()..];
        let e = after.find(end).ok_or("PEM block without its END line")?;
        let body: String = after[..e].chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("bad base64 in a PEM block: {e}"))?;
        out.push(der);
        rest = &after[e + end.len()..];
    }
    if out.is_empty() {
        return Err(format!("no {label} block in the PEM file"));
    }
    Ok(out)
}

/// Parses one DER certificate, with bounded work.
pub(crate) fn parse_certificate(der: &[u8]) -> Result<Certificate, String> {
    let len = asn1::check_limits(der, asn1::Limits::default())?;
    if len != der.len() {
        return Err("data after the certificate".into());
    }
    Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))
}

/// A readable form of a name: `CN=..., O=..., C=VN`.
pub(crate) fn name_to_string(name: &Name) -> String {
    let mut parts = Vec::new();
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            let label = match atv.oid.to_string().as_str() {
                "2.5.4.3" => "CN".to_owned(),
                "2.5.4.10" => "O".to_owned(),
                "2.5.4.11" => "OU".to_owned(),
                "2.5.4.6" => "C".to_owned(),
                "2.5.4.7" => "L".to_owned(),
                "2.5.4.8" => "ST".to_owned(),
                "2.5.4.5" => "SERIALNUMBER".to_owned(),
                "0.9.2342.19200300.100.1.1" => "UID".to_owned(),
                "1.2.840.113549.1.9.1" => "E".to_owned(),
                other => other.to_owned(),
            };
            parts.push(format!("{label}={}", any_to_string(&atv.value)));
        }
    }
    parts.join(", ")
}

/// The first value of an attribute (e.g. CN = 2.5.4.3) in a name.
pub(crate) fn name_attr(name: &Name, oid: &str) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid.to_string() == oid)
        .map(|atv| any_to_string(&atv.value))
}

fn any_to_string(v: &der::Any) -> String {
    let bytes = v.value();
    match v.tag() {
        // BMPString: UTF-16BE.
        der::Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // TeletexString: treat as Latin-1.
        der::Tag::TeletexString => bytes.iter().map(|&b| char::from(b)).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

pub(crate) fn unix_of(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

pub(crate) fn summary(cert: &Certificate, anchor: bool) -> CertSummary {
    let tbs = &cert.tbs_certificate;
    CertSummary {
        subject: name_to_string(&tbs.subject),
        issuer: name_to_string(&tbs.issuer),
        serial: hex(tbs.serial_number.as_bytes()),
        not_before: rfc3339(unix_of(&tbs.validity.not_before)),
        not_after: rfc3339(unix_of(&tbs.validity.not_after)),
        trust_anchor: anchor,
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// The outcome of path building and checking.
pub(crate) struct ChainOutcome {
    pub chain: Vec<CertSummary>,
    pub reasons: Vec<Reason>,
    /// A path to an anchor was found.
    pub anchored: bool,
    /// The certificates of `chain`, leaf first, each with whether it is a
    /// trust anchor (for the revocation check).
    pub path: Vec<(Certificate, bool)>,
}

fn same_name(a: &Name, b: &Name) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn ski(cert: &Certificate) -> Option<Vec<u8>> {
    match cert.tbs_certificate.get::<SubjectKeyIdentifier>() {
        Ok(Some((_, s))) => Some(s.0.as_bytes().to_vec()),
        _ => None,
    }
}

fn aki(cert: &Certificate) -> Option<Vec<u8>> {
    match cert.tbs_certificate.get::<AuthorityKeyIdentifier>() {
        Ok(Some((_, a))) => a.key_identifier.map(|k| k.as_bytes().to_vec()),
        _ => None,
    }
}

/// Does `issuer`'s key verify `cert`'s signature? `tbs` is the
/// TBSCertificate as encoded, when known (else it is re-encoded).
pub(crate) fn signed_by(
    cert: &Certificate,
    tbs: Option<&[u8]>,
    issuer: &Certificate,
) -> Result<(), VerifyError> {
    let encoded;
    let tbs = match tbs {
        Some(t) => t,
        None => {
            encoded = cert
                .tbs_certificate
                .to_der()
                .map_err(|e| VerifyError::Malformed(e.to_string()))?;
            &encoded
        }
    };
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| VerifyError::Malformed("certificate signature bit string".into()))?;
    crypto::verify(
        &issuer.tbs_certificate.subject_public_key_info,
        &cert.signature_algorithm,
        None,
        &[tbs],
        sig,
    )
    .map(|_| ())
}

struct Builder<'a> {
    pool: &'a [Certificate],
    /// TBSCertificate bytes of the pool's certificates, in the same order.
    pool_tbs: &'a [Vec<u8>],
    trust: &'a TrustStore,
    tries: usize,
    /// Issuers found by name whose signature check failed.
    failures: Vec<String>,
}

impl<'a> Builder<'a> {
    /// Extends `path` (its last element is the certificate to find an issuer
    /// for) up to an anchor. The bool says whether each element is an anchor.
    fn extend(&mut self, path: &mut Vec<(&'a Certificate, bool)>) -> bool {
        let Some(&(cur, cur_anchor)) = path.last() else {
            return false;
        };
        if cur_anchor {
            return true;
        }
        if path.len() >= MAX_PATH {
            return false;
        }
        let issuer_name = &cur.tbs_certificate.issuer;
        let want_key = aki(cur);
        let candidates = self
            .trust
            .anchors
            .iter()
            .map(|c| (c, true))
            .chain(self.pool.iter().map(|c| (c, false)));
        let candidates: Vec<(&'a Certificate, bool)> = candidates
            .filter(|(c, _)| same_name(&c.tbs_certificate.subject, issuer_name))
            .filter(|(c, _)| !path.iter().any(|(p, _)| std::ptr::eq(*p, *c) || *p == *c))
            .collect();
        for (cand, is_anchor) in candidates {
            self.tries += 1;
            if self.tries > MAX_TRIES {
                return false;
            }
            if let (Some(want), Some(have)) = (&want_key, ski(cand)) {
                if *want != have {
                    continue;
                }
            }
            let anchor = is_anchor || self.trust.is_anchor(cand);
            let tbs = self
                .pool
                .iter()
                .position(|p| std::ptr::eq(p, cur))
                .and_then(|i| self.pool_tbs.get(i))
                .map(Vec::as_slice);
            match signed_by(cur, tbs, cand) {
                Ok(()) => {}
                Err(e) => {
                    self.failures.push(format!(
                        "{} is not signed by {}: {}",
                        name_to_string(&cur.tbs_certificate.subject),
                        name_to_string(&cand.tbs_certificate.subject),
                        match e {
                            VerifyError::Mismatch => "signature mismatch".to_owned(),
                            VerifyError::Malformed(m) | VerifyError::Unsupported(m) => m,
                        }
                    ));
                    continue;
                }
            }
            path.push((cand, anchor));
            if self.extend(path) {
                return true;
            }
            path.pop();
        }
        false
    }
}

const KNOWN_EXTENSIONS: &[&str] = &[
    "2.5.29.14",            // subjectKeyIdentifier
    "2.5.29.35",            // authorityKeyIdentifier
    "2.5.29.15",            // keyUsage
    "2.5.29.37",            // extKeyUsage
    "2.5.29.19",            // basicConstraints
    "2.5.29.17",            // subjectAltName
    "2.5.29.18",            // issuerAltName
    "2.5.29.31",            // cRLDistributionPoints
    "2.5.29.32",            // certificatePolicies
    "2.5.29.46",            // freshestCRL
    "1.3.6.1.5.5.7.1.1",    // authorityInfoAccess
    "1.3.6.1.5.5.7.1.3",    // qcStatements
    "1.3.6.1.5.5.7.48.1.5", // ocsp-nocheck
];

/// Builds a path from `leaf` to an anchor of `trust` (issuers taken from
/// `pool` and the store) and checks it at time `at` (Unix seconds).
pub(crate) fn check_chain(
    leaf: &Certificate,
    pool: &[Certificate],
    pool_tbs: &[Vec<u8>],
    trust: &TrustStore,
    at: i64,
) -> ChainOutcome {
    let mut reasons = Vec::new();
    let mut b = Builder {
        pool,
        pool_tbs,
        trust,
        tries: 0,
        failures: Vec::new(),
    };
    let mut path: Vec<(&Certificate, bool)> = vec![(leaf, trust.is_anchor(leaf))];
    let anchored = b.extend(&mut path);
    if !anchored {
        // For display and the validity checks: the leaf and what the pool
        // has above it by name.
        path.truncate(1);
        while path.len() < MAX_PATH {
            let Some(&(cur, _)) = path.last() else { break };
            if same_name(&cur.tbs_certificate.subject, &cur.tbs_certificate.issuer) {
                break;
            }
            let next = pool.iter().find(|c| {
                same_name(&c.tbs_certificate.subject, &cur.tbs_certificate.issuer)
                    && !path.iter().any(|(p, _)| *p == *c)
            });
            match next {
                Some(n) => path.push((n, false)),
                None => break,
            }
        }
        if b.failures.is_empty() {
            reasons.push(Reason::new(
                ReasonCode::UntrustedChain,
                format!(
                    "the certificate of {} does not chain to a trust anchor (issuer: {})",
                    name_to_string(&leaf.tbs_certificate.subject),
                    name_to_string(&leaf.tbs_certificate.issuer)
                ),
            ));
        } else {
            reasons.push(Reason::new(
                ReasonCode::BadCertificateSignature,
                b.failures.join("; "),
            ));
        }
    }

    // Checks on every certificate of the path.
    for (i, &(cert, is_anchor)) in path.iter().enumerate() {
        let tbs = &cert.tbs_certificate;
        let who = if i == 0 {
            format!(
                "the signer's certificate ({})",
                name_to_string(&tbs.subject)
            )
        } else {
            format!("the CA certificate {}", name_to_string(&tbs.subject))
        };
        let nb = unix_of(&tbs.validity.not_before);
        let na = unix_of(&tbs.validity.not_after);
        if at > na {
            reasons.push(Reason::new(
                ReasonCode::ExpiredAtSigning,
                format!(
                    "{who} had expired at signing time ({} > not after {})",
                    rfc3339(at),
                    rfc3339(na)
                ),
            ));
        }
        if at < nb {
            reasons.push(Reason::new(
                ReasonCode::NotYetValidAtSigning,
                format!(
                    "{who} was not yet valid at signing time ({} < not before {})",
                    rfc3339(at),
                    rfc3339(nb)
                ),
            ));
        }
        for ext in tbs.extensions.as_deref().unwrap_or(&[]) {
            let oid = ext.extn_id.to_string();
            if ext.critical && !KNOWN_EXTENSIONS.contains(&oid.as_str()) {
                reasons.push(Reason::new(
                    ReasonCode::UnsupportedCriticalExtension,
                    format!("{who} has an unknown critical extension {oid}"),
                ));
            }
        }
        let ku = tbs.get::<KeyUsage>();
        if i == 0 {
            match ku {
                Ok(Some((_, ku))) => {
                    if !ku.digital_signature() && !ku.non_repudiation() {
                        reasons.push(Reason::new(
                            ReasonCode::BadKeyUsage,
                            format!("{who} allows neither digitalSignature nor nonRepudiation"),
                        ));
                    }
                }
                Ok(None) => {}
                Err(e) => reasons.push(Reason::new(
                    ReasonCode::Malformed,
                    format!("{who}: bad key usage extension: {e}"),
                )),
            }
            continue;
        }
        // An issuer.
        let bc = tbs.get::<BasicConstraints>();
        match bc {
            Ok(Some((_, bc))) => {
                if !bc.ca {
                    reasons.push(Reason::new(
                        ReasonCode::NotCa,
                        format!("{who} is not a CA (basic constraints)"),
                    ));
                } else if let Some(max) = bc.path_len_constraint {
                    // Intermediate CAs below this one (self-issued excepted).
                    let below = path[1..i]
                        .iter()
                        .filter(|(c, _)| {
                            !same_name(&c.tbs_certificate.subject, &c.tbs_certificate.issuer)
                        })
                        .count();
                    if below > usize::from(max) {
                        reasons.push(Reason::new(
                            ReasonCode::NotCa,
                            format!("{who}: path length constraint {max} exceeded"),
                        ));
                    }
                }
            }
            Ok(None) if !is_anchor => reasons.push(Reason::new(
                ReasonCode::NotCa,
                format!("{who} has no basic constraints: not a CA"),
            )),
            Ok(None) => {}
            Err(e) => reasons.push(Reason::new(
                ReasonCode::Malformed,
                format!("{who}: bad basic constraints extension: {e}"),
            )),
        }
        if let Ok(Some((_, ku))) = ku {
            if !ku.key_cert_sign() {
                reasons.push(Reason::new(
                    ReasonCode::NotCa,
                    format!("{who}: key usage lacks keyCertSign"),
                ));
            }
        }
    }
    ChainOutcome {
        chain: path.iter().map(|(c, a)| summary(c, *a)).collect(),
        reasons,
        anchored,
        path: path.iter().map(|(c, a)| ((*c).clone(), *a)).collect(),
    }
}

/// The certificate among `certs` that `sid` names.
pub(crate) fn find_signer<'a>(
    certs: &'a [Certificate],
    sid: &cms::signed_data::SignerIdentifier,
) -> Option<&'a Certificate> {
    use cms::signed_data::SignerIdentifier;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => certs.iter().find(|c| {
            c.tbs_certificate.serial_number == ias.serial_number
                && same_name(&c.tbs_certificate.issuer, &ias.issuer)
        }),
        SignerIdentifier::SubjectKeyIdentifier(k) => {
            let want = k.0.as_bytes();
            certs.iter().find(|c| ski(c).as_deref() == Some(want))
        }
    }
}
