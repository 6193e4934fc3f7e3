//! Sealing a PDF: a PAdES signature (`/SubFilter /ETSI.CAdES.detached`)
//! appended as an incremental update, so that any PDF reader that trusts the
//! seal's certificate (or its CA) can check it, and so can `giaoban verify`.
//!
//! # What is written
//! After the original bytes (untouched), one incremental update:
//! - the signature dictionary (`/Type /Sig /Filter /Adobe.PPKLite
//!   /SubFilter /ETSI.CAdES.detached /ByteRange [...] /Contents <...> /M
//!   (D:...) /Name /Reason /Location`);
//! - a signature field merged with its invisible widget (`/Rect [0 0 0 0]`,
//!   `/F 132`: print, locked) on page 1;
//! - page 1 again, with the widget in its `/Annots`;
//! - the catalog again, with `/AcroForm << /Fields [...] /SigFlags 3 >>`;
//! - a cross-reference table section for those objects and a trailer with
//!   `/Prev` (krilla, which makes the minutes, writes a classic
//!   cross-reference table; a file with a cross-reference stream is refused
//!   with a clear error rather than sealed wrongly).
//!
//! The CMS SignedData is detached over the `/ByteRange` (everything but the
//! `/Contents` hex string), SHA-256, with the signed attributes
//! content-type, message-digest and ESS signing-certificate-v2 (the
//! baseline of PAdES B-B); the signing time is the dictionary's `/M`. It
//! carries the seal's certificate and the rest of the chain given with it.
//!
//! # Keys
//! [`Seal`] holds the certificate (PEM, its chain after it) and the private
//! key (PEM: PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA
//! PRIVATE KEY`; ECDSA P-256 or RSA). [`Seal::generate`] makes a
//! self-signed P-256 seal when the province gives none.
//!
//! DER is written by hand here (a few TLVs): what is signed is exactly what
//! is written, with no round trip through a decoder.

use std::fmt::Write as _;

use base64::Engine as _;
use const_oid::ObjectIdentifier;
use der::Encode;
use rand::RngCore as _;
use sha2::Digest as _;
use x509_cert::Certificate;

use super::chain;

/// Room for the CMS in `/Contents`, besides the certificates it carries.
const CMS_OVERHEAD: usize = 4096;
/// Deepest page tree walked to find the first page.
const MAX_PAGE_TREE_DEPTH: usize = 32;

const OID_DATA: &str = "1.2.840.113549.1.7.1";
const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_SIGNING_CERT_V2: &str = "1.2.840.113549.1.9.16.2.47";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_CN: &str = "2.5.4.3";
const OID_O: &str = "2.5.4.10";
const OID_C: &str = "2.5.4.6";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_SKI: &str = "2.5.29.14";

/// Why a seal cannot be loaded or made, or a PDF cannot be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The certificate or key files are wrong (unreadable, not PEM, an
    /// unsupported key, a key that is not the certificate's).
    #[error("seal certificate or key: {0}")]
    Key(String),
    /// The PDF's structure is not one we can append a signature to.
    #[error("the PDF cannot be sealed: {0}")]
    Pdf(String),
    /// Writing the signature failed (an internal fault).
    #[error("sealing failed: {0}")]
    Internal(String),
}

fn key_err(m: impl Into<String>) -> SealError {
    SealError::Key(m.into())
}

fn pdf_err(m: impl Into<String>) -> SealError {
    SealError::Pdf(m.into())
}

/// The private key of a seal.
enum SealKey {
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

/// A seal: its certificate (and the chain above it) and its private key.
pub struct Seal {
    cert: Certificate,
    /// The seal's certificate, DER, as given.
    cert_der: Vec<u8>,
    /// The other certificates given after it (its CA chain), DER.
    chain_der: Vec<Vec<u8>>,
    key: SealKey,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seal")
            .field("subject", &self.subject())
            .finish_non_exhaustive()
    }
}

/// What a sealed PDF says about its seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealInfo {
    /// The text of `/Name`.
    pub name: String,
    /// The text of `/Reason`.
    pub reason: String,
    /// The text of `/Location` (may be empty).
    pub location: String,
    /// The signing time (`/M`), Unix seconds.
    pub at: i64,
}

impl Seal {
    /// A seal from PEM texts: `cert_pem` holds the seal's certificate first,
    /// then optionally its CA chain; `key_pem` its private key (ECDSA P-256
    /// or RSA; not encrypted).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Seal, SealError> {
        let certs = chain::pem_blocks(cert_pem, "CERTIFICATE").map_err(key_err)?;
        let mut certs = certs.into_iter();
        let cert_der = certs
            .next()
            .ok_or_else(|| key_err("no certificate in the PEM file"))?;
        let chain_der: Vec<Vec<u8>> = certs.collect();
        let cert = chain::parse_certificate(&cert_der).map_err(key_err)?;
        for c in &chain_der {
            chain::parse_certificate(c).map_err(key_err)?;
        }
        let key = parse_key(key_pem)?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| key_err("the certificate's public key is not whole bytes"))?;
        let matches = match &key {
            SealKey::P256(k) => {
                spki.algorithm.oid.to_string() == OID_EC_PUBLIC_KEY
                    && k.verifying_key().to_encoded_point(false).as_bytes() == bits
            }
            SealKey::Rsa(k) => {
                use rsa::pkcs1::DecodeRsaPublicKey as _;
                spki.algorithm.oid.to_string() == OID_RSA
                    && rsa::RsaPublicKey::from_pkcs1_der(bits)
                        .is_ok_and(|p| p == rsa::RsaPublicKey::from(k.as_ref()))
            }
        };
        if !matches {
            return Err(key_err(
                "the private key is not the key of the certificate (the first CERTIFICATE block)",
            ));
        }
        Ok(Seal {
            cert,
            cert_der,
            chain_der,
            key,
        })
    }

    /// A new self-signed seal: an ECDSA P-256 key and a certificate for
    /// `common_name` (organisation `organization`, country VN), valid from a
    /// day before `now` (Unix seconds) for `years` years, key usage
    /// digitalSignature and nonRepudiation. Returns the seal and its
    /// certificate and key as PEM.
    pub fn generate(
        common_name: &str,
        organization: &str,
        now: i64,
        years: u32,
    ) -> Result<(Seal, String, String), SealError> {
        let secret = loop {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
                break k;
            }
        };
        let signing = p256::ecdsa::SigningKey::from(&secret);
        let point = signing.verifying_key().to_encoded_point(false);

        let alg = seq(&[oid(OID_ECDSA_SHA256)?]);
        let spki = seq(&[
            seq(&[oid(OID_EC_PUBLIC_KEY)?, oid(OID_P256)?]),
            bit_string(point.as_bytes()),
        ]);
        let mut name_parts = vec![rdn(OID_C, 0x13, "VN")?];
        if !organization.trim().is_empty() {
            name_parts.push(rdn(OID_O, 0x0c, organization.trim())?);
        }
        name_parts.push(rdn(OID_CN, 0x0c, common_name.trim())?);
        let name = seq(&name_parts);
        let mut serial = [0u8; 16];
        rand::rng().fill_bytes(&mut serial);
        serial[0] &= 0x7f;
        serial[0] |= 0x40;
        let not_before = now - 86_400;
        let not_after = now + i64::from(years) * 365 * 86_400 + i64::from(years / 4) * 86_400;
        let ski = {
            let digest = sha1::Sha1::digest(point.as_bytes());
            tlv(0x04, &digest)
        };
        let ext = |id: &str, critical: bool, value: Vec<u8>| -> Result<Vec<u8>, SealError> {
            let mut parts = vec![oid(id)?];
            if critical {
                parts.push(vec![0x01, 0x01, 0xff]);
            }
            parts.push(tlv(0x04, &value));
            Ok(seq(&parts))
        };
        let extensions = seq(&[
            ext(OID_BASIC_CONSTRAINTS, true, seq(&[]))?,
            // digitalSignature (bit 0) and nonRepudiation (bit 1).
            ext(OID_KEY_USAGE, true, vec![0x03, 0x02, 0x06, 0xc0])?,
            ext(OID_SKI, false, ski)?,
        ]);
        let tbs = seq(&[
            tlv(0xa0, &[0x02, 0x01, 0x02]),
            tlv(0x02, &serial),
            alg.clone(),
            name.clone(),
            seq(&[time_der(not_before)?, time_der(not_after)?]),
            name,
            spki,
            tlv(0xa3, &extensions),
        ]);
        let sig: p256::ecdsa::Signature = signature::Signer::sign(&signing, &tbs);
        let cert_der = seq(&[tbs, alg, bit_string(sig.to_der().as_bytes())]);
        let cert = chain::parse_certificate(&cert_der).map_err(SealError::Internal)?;
        use p256::pkcs8::EncodePrivateKey as _;
        let key_der = secret
            .to_pkcs8_der()
            .map_err(|e| SealError::Internal(format!("encoding the key: {e}")))?;
        let cert_pem = pem("CERTIFICATE", &cert_der);
        let key_pem = pem("PRIVATE KEY", key_der.as_bytes());
        Ok((
            Seal {
                cert,
                cert_der,
                chain_der: Vec::new(),
                key: SealKey::P256(signing),
            },
            cert_pem,
            key_pem,
        ))
    }

    /// The seal's certificate, PEM, followed by the chain given with it.
    pub fn certificate_pem(&self) -> String {
        let mut s = pem("CERTIFICATE", &self.cert_der);
        for c in &self.chain_der {
            s.push_str(&pem("CERTIFICATE", c));
        }
        s
    }

    /// The seal's certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 of the seal's certificate (DER), lower-case hex.
    pub fn certificate_sha256(&self) -> String {
        crate::blobs::hex(&sha2::Sha256::digest(&self.cert_der))
    }

    /// The seal certificate's subject, readable (`CN=..., O=..., C=VN`).
    pub fn subject(&self) -> String {
        chain::name_to_string(&self.cert.tbs_certificate.subject)
    }

    /// The common name of the seal's certificate (its subject if none).
    pub fn common_name(&self) -> String {
        chain::name_attr(&self.cert.tbs_certificate.subject, OID_CN)
            .unwrap_or_else(|| self.subject())
    }

    /// The seal certificate's validity, Unix seconds (not before, not after).
    pub fn validity(&self) -> (i64, i64) {
        let v = &self.cert.tbs_certificate.validity;
        (chain::unix_of(&v.not_before), chain::unix_of(&v.not_after))
    }

    /// "ECDSA P-256" or "RSA 2048".
    pub fn key_algorithm(&self) -> String {
        match &self.key {
            SealKey::P256(_) => "ECDSA P-256".into(),
            SealKey::Rsa(k) => {
                use rsa::traits::PublicKeyParts as _;
                format!("RSA {}", k.size() * 8)
            }
        }
    }

    /// `pdf` with this seal's signature appended as an incremental update
    /// (see the module's documentation). The original bytes are kept as they
    /// are: the result starts with them.
    pub fn seal_pdf(&self, pdf: &[u8], info: &SealInfo) -> Result<Vec<u8>, SealError> {
        let doc = PdfIndex::read(pdf)?;
        let size = doc.size;
        let (sig_num, field_num) = (size, size + 1);

        let contents_len = 2
            * (CMS_OVERHEAD
                + self.cert_der.len()
                + self.chain_der.iter().map(Vec::len).sum::<usize>());
        let mut out = pdf.to_vec();
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        let mut offsets: Vec<(usize, usize)> = Vec::new();

        // The signature dictionary.
        offsets.push((sig_num, out.len()));
        let br_placeholder = format!("[0 {0:>10} {0:>10} {0:>10}]", 0);
        let _ = write!(
            out_str(&mut out),
            "{sig_num} 0 obj\n<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /ByteRange "
        );
        let br_at = out.len();
        out.extend_from_slice(br_placeholder.as_bytes());
        out.extend_from_slice(b" /Contents ");
        let contents_at = out.len();
        out.push(b'<');
        out.extend(std::iter::repeat_n(b'0', contents_len));
        out.push(b'>');
        let contents_end = out.len();
        let _ = write!(
            out_str(&mut out),
            " /M ({}) /Name {} /Reason {}",
            pdf_date(info.at)?,
            text_string(&info.name),
            text_string(&info.reason)
        );
        if !info.location.is_empty() {
            let _ = write!(
                out_str(&mut out),
                " /Location {}",
                text_string(&info.location)
            );
        }
        out.extend_from_slice(b" >>\nendobj\n");

        // The field and its widget, invisible, on page 1.
        offsets.push((field_num, out.len()));
        let _ = write!(
            out_str(&mut out),
            "{field_num} 0 obj\n<< /Type /Annot /Subtype /Widget /FT /Sig /T {} /V {sig_num} 0 R /F 132 /Rect [0 0 0 0] /P {} 0 R >>\nendobj\n",
            text_string("Con dấu"),
            doc.page
        );

        // Page 1 with the widget in /Annots.
        offsets.push((doc.page, out.len()));
        let page = doc.rewrite_dict(doc.page_dict, |key, value| match key {
            "Annots" => {
                let v = value.trim_ascii();
                match v.strip_suffix(b"]") {
                    Some(inner) if v.starts_with(b"[") => Ok(Some(format!(
                        "{} {field_num} 0 R]",
                        String::from_utf8_lossy(inner)
                    ))),
                    _ => Err(pdf_err(
                        "page 1 has /Annots as a reference, not an array: not supported",
                    )),
                }
            }
            _ => Ok(None),
        })?;
        let page = if page.1 {
            page.0
        } else {
            insert_entry(&page.0, &format!("/Annots [{field_num} 0 R]"))
        };
        let _ = writeln!(out_str(&mut out), "{} 0 obj", doc.page);
        out.extend_from_slice(page.as_bytes());
        out.extend_from_slice(b"\nendobj\n");

        // The catalog with its form.
        offsets.push((doc.root, out.len()));
        let (catalog, _) = doc.rewrite_dict(doc.root_dict, |key, _| match key {
            "AcroForm" => Err(pdf_err("the PDF already has a form: not supported")),
            _ => Ok(None),
        })?;
        let catalog = insert_entry(
            &catalog,
            &format!("/AcroForm << /Fields [{field_num} 0 R] /SigFlags 3 >>"),
        );
        let _ = writeln!(out_str(&mut out), "{} 0 obj", doc.root);
        out.extend_from_slice(catalog.as_bytes());
        out.extend_from_slice(b"\nendobj\n");

        // The cross-reference section and the trailer.
        let xref_at = out.len();
        offsets.sort_unstable();
        out.extend_from_slice(b"xref\n");
        let mut i = 0;
        while i < offsets.len() {
            let mut j = i + 1;
            while j < offsets.len() && offsets[j].0 == offsets[j - 1].0 + 1 {
                j += 1;
            }
            let _ = writeln!(out_str(&mut out), "{} {}", offsets[i].0, j - i);
            for (_, at) in &offsets[i..j] {
                let _ = write!(out_str(&mut out), "{at:010} 00000 n\r\n");
            }
            i = j;
        }
        let mut trailer = format!(
            "trailer\n<< /Size {} /Root {} 0 R /Prev {}",
            size + 2,
            doc.root,
            doc.startxref
        );
        if let Some(info_ref) = &doc.info {
            let _ = write!(trailer, " /Info {info_ref}");
        }
        if let Some(id) = &doc.id {
            let _ = write!(trailer, " /ID {id}");
        }
        let _ = write!(trailer, " >>\nstartxref\n{xref_at}\n%%EOF\n");
        out.extend_from_slice(trailer.as_bytes());

        // The byte range, then the signature over it.
        let total = out.len();
        let br = format!(
            "[0 {:>10} {:>10} {:>10}]",
            contents_at,
            contents_end,
            total - contents_end
        );
        if br.len() != br_placeholder.len() {
            return Err(pdf_err("the file is too large to seal"));
        }
        out[br_at..br_at + br.len()].copy_from_slice(br.as_bytes());
        let digest = {
            let mut h = sha2::Sha256::new();
            h.update(&out[..contents_at]);
            h.update(&out[contents_end..]);
            h.finalize().to_vec()
        };
        let cms = self.cms(&digest)?;
        let hex = crate::blobs::hex(&cms);
        if hex.len() > contents_len {
            return Err(SealError::Internal(format!(
                "the signature ({} bytes) does not fit its room ({} bytes)",
                cms.len(),
                contents_len / 2
            )));
        }
        out[contents_at + 1..contents_at + 1 + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(out)
    }

    /// The CMS SignedData (DER) over content whose SHA-256 is `digest`.
    fn cms(&self, digest: &[u8]) -> Result<Vec<u8>, SealError> {
        let tbs = &self.cert.tbs_certificate;
        let issuer = tbs
            .issuer
            .to_der()
            .map_err(|e| SealError::Internal(format!("issuer: {e}")))?;
        let serial = tbs
            .serial_number
            .to_der()
            .map_err(|e| SealError::Internal(format!("serial: {e}")))?;
        let sha256 = seq(&[oid(OID_SHA256)?]);
        let attr = |id: &str, value: Vec<u8>| -> Result<Vec<u8>, SealError> {
            Ok(seq(&[oid(id)?, tlv(0x31, &value)]))
        };
        let cert_hash = sha2::Sha256::digest(&self.cert_der);
        // ESSCertIDv2 { certHash, issuerSerial { GeneralNames { [4] Name }, serial } }
        // (hashAlgorithm left out: SHA-256 is its default).
        let ess = seq(&[seq(&[seq(&[
            tlv(0x04, &cert_hash),
            seq(&[seq(&[tlv(0xa4, &issuer)]), serial.clone()]),
        ])])]);
        let mut attrs = [
            attr(OID_CONTENT_TYPE, oid(OID_DATA)?)?,
            attr(OID_MESSAGE_DIGEST, tlv(0x04, digest))?,
            attr(OID_SIGNING_CERT_V2, ess)?,
        ];
        // DER: a SET OF in the order of its encodings.
        attrs.sort();
        let signed_attrs = tlv(0x31, &attrs.concat());
        let (sig_alg, signature) = match &self.key {
            SealKey::P256(k) => {
                let sig: p256::ecdsa::Signature = signature::Signer::sign(k, &signed_attrs);
                (
                    seq(&[oid(OID_ECDSA_SHA256)?]),
                    sig.to_der().as_bytes().to_vec(),
                )
            }
            SealKey::Rsa(k) => {
                let hashed = sha2::Sha256::digest(&signed_attrs);
                let sig = k
                    .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hashed)
                    .map_err(|e| SealError::Internal(format!("RSA signature: {e}")))?;
                (seq(&[oid(OID_RSA_SHA256)?, vec![0x05, 0x00]]), sig)
            }
        };
        let signer_info = seq(&[
            vec![0x02, 0x01, 0x01],
            seq(&[issuer, serial]),
            sha256.clone(),
            tlv(0xa0, &attrs.concat()),
            sig_alg,
            tlv(0x04, &signature),
        ]);
        let mut certs = self.cert_der.clone();
        for c in &self.chain_der {
            certs.extend_from_slice(c);
        }
        let signed_data = seq(&[
            vec![0x02, 0x01, 0x01],
            tlv(0x31, &sha256),
            seq(&[oid(OID_DATA)?]),
            tlv(0xa0, &certs),
            tlv(0x31, &signer_info),
        ]);
        Ok(seq(&[oid(OID_SIGNED_DATA)?, tlv(0xa0, &signed_data)]))
    }
}

/// Reads a private key from PEM.
fn parse_key(key_pem: &[u8]) -> Result<SealKey, SealError> {
    use p256::pkcs8::DecodePrivateKey as _;
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    let text = String::from_utf8_lossy(key_pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(key_err(
            "the private key is encrypted: give it unencrypted (readable by the server only)",
        ));
    }
    let one = |label: &str| -> Option<Result<Vec<u8>, SealError>> {
        text.contains(&format!("-----BEGIN {label}-----")).then(|| {
            let mut blocks = chain::pem_blocks(key_pem, label).map_err(key_err)?;
            if blocks.len() != 1 {
                return Err(key_err(format!("more than one {label} block")));
            }
            Ok(blocks.remove(0))
        })
    };
    if let Some(der) = one("PRIVATE KEY") {
        let der = der?;
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(&der) {
            return Ok(SealKey::P256(p256::ecdsa::SigningKey::from(&k)));
        }
        return match rsa::RsaPrivateKey::from_pkcs8_der(&der) {
            Ok(k) => Ok(SealKey::Rsa(Box::new(k))),
            Err(_) => Err(key_err(
                "the PRIVATE KEY is neither an ECDSA P-256 nor an RSA key",
            )),
        };
    }
    if let Some(der) = one("EC PRIVATE KEY") {
        let k = p256::SecretKey::from_sec1_der(&der?)
            .map_err(|_| key_err("the EC PRIVATE KEY is not a P-256 key"))?;
        return Ok(SealKey::P256(p256::ecdsa::SigningKey::from(&k)));
    }
    if let Some(der) = one("RSA PRIVATE KEY") {
        let k = rsa::RsaPrivateKey::from_pkcs1_der(&der?)
            .map_err(|e| key_err(format!("the RSA PRIVATE KEY cannot be read: {e}")))?;
        return Ok(SealKey::Rsa(Box::new(k)));
    }
    Err(key_err(
        "no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block in the key file",
    ))
}

// ---------------------------------------------------------------------------
// DER, by hand.

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(dotted: &str) -> Result<Vec<u8>, SealError> {
    ObjectIdentifier::new(dotted)
        .map_err(|e| SealError::Internal(format!("OID {dotted}: {e}")))?
        .to_der()
        .map_err(|e| SealError::Internal(format!("OID {dotted}: {e}")))
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(0);
    v.extend_from_slice(bytes);
    tlv(0x03, &v)
}

/// A relative distinguished name with one attribute (`tag`: 0x0c
/// UTF8String, 0x13 PrintableString).
fn rdn(id: &str, tag: u8, value: &str) -> Result<Vec<u8>, SealError> {
    Ok(tlv(0x31, &seq(&[oid(id)?, tlv(tag, value.as_bytes())])))
}

/// UTCTime before 2050, GeneralizedTime from then on (RFC 5280).
fn time_der(at: i64) -> Result<Vec<u8>, SealError> {
    let t = time::OffsetDateTime::from_unix_timestamp(at)
        .map_err(|e| SealError::Internal(format!("time: {e}")))?;
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok(if t.year() < 2050 {
        tlv(0x17, format!("{:02}{rest}", t.year() % 100).as_bytes())
    } else {
        tlv(0x18, format!("{:04}{rest}", t.year()).as_bytes())
    })
}

/// PEM text of `der` with `label`, 64 characters a line.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    let _ = writeln!(s, "-----END {label}-----");
    s
}

// ---------------------------------------------------------------------------
// PDF strings and dates.

/// A PDF text string: ASCII printable as is, anything else as UTF-16BE with
/// a byte order mark, in a literal string with octal escapes.
fn text_string(s: &str) -> String {
    let printable = s.chars().all(|c| (' '..='~').contains(&c));
    let bytes: Vec<u8> = if printable {
        s.as_bytes().to_vec()
    } else {
        let mut b = vec![0xfe, 0xff];
        for u in s.encode_utf16() {
            b.extend_from_slice(&u.to_be_bytes());
        }
        b
    };
    let mut out = String::from("(");
    for b in bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push(')');
    out
}

/// `D:YYYYMMDDHHmmSS+00'00'` (UTC).
fn pdf_date(at: i64) -> Result<String, SealError> {
    let t = time::OffsetDateTime::from_unix_timestamp(at)
        .map_err(|e| SealError::Internal(format!("time: {e}")))?;
    Ok(format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Appending text to a byte buffer with `write!`.
fn out_str(out: &mut Vec<u8>) -> ByteWriter<'_> {
    ByteWriter(out)
}

struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `dict` (`<< ... >>`) with `entry` added before its end.
fn insert_entry(dict: &str, entry: &str) -> String {
    let body = dict.trim_end();
    let body = body.strip_suffix(">>").unwrap_or(body);
    format!("{} {entry} >>", body.trim_end())
}

// ---------------------------------------------------------------------------
// Reading the structure of the PDF to update: the last trailer, the catalog
// and the first page.

struct PdfIndex<'a> {
    pdf: &'a [u8],
    /// Offset of the last cross-reference table.
    startxref: usize,
    /// The trailer's /Size: the first free object number.
    size: usize,
    /// Object number of the catalog.
    root: usize,
    /// Span of the catalog's dictionary.
    root_dict: (usize, usize),
    /// Object number of the first page.
    page: usize,
    page_dict: (usize, usize),
    /// The trailer's /Info and /ID values, as written.
    info: Option<String>,
    id: Option<String>,
}

impl<'a> PdfIndex<'a> {
    fn read(pdf: &'a [u8]) -> Result<PdfIndex<'a>, SealError> {
        if !pdf.starts_with(b"%PDF-") {
            return Err(pdf_err("not a PDF (no %PDF- header)"));
        }
        let tail_from = pdf.len().saturating_sub(1024);
        let sx = rfind(&pdf[tail_from..], b"startxref")
            .map(|i| tail_from + i)
            .ok_or_else(|| pdf_err("no startxref at the end"))?;
        let (startxref, _) = int_at(pdf, skip_ws(pdf, sx + b"startxref".len()))
            .ok_or_else(|| pdf_err("startxref has no offset"))?;
        if !pdf.get(startxref..).is_some_and(|s| s.starts_with(b"xref")) {
            return Err(pdf_err(
                "the cross-reference is a stream, not a table: not supported",
            ));
        }
        let xref = read_xref(pdf, startxref)?;
        let trailer_at = find(&pdf[xref.end..sx], b"trailer")
            .map(|i| xref.end + i)
            .ok_or_else(|| pdf_err("no trailer"))?;
        let t_start = skip_ws(pdf, trailer_at + b"trailer".len());
        let (trailer, _) = dict_entries(pdf, t_start)?;
        let get = |k: &str| trailer.iter().find(|(key, _, _)| key == k);
        let text = |s: usize, e: usize| String::from_utf8_lossy(&pdf[s..e]).trim().to_owned();
        if get("Prev").is_some() || get("Encrypt").is_some() {
            return Err(pdf_err(
                "the PDF was already updated or is encrypted: not supported",
            ));
        }
        let size = get("Size")
            .and_then(|&(_, s, _)| int_at(pdf, s))
            .map(|(n, _)| n)
            .ok_or_else(|| pdf_err("the trailer has no /Size"))?;
        let root = get("Root")
            .and_then(|&(_, s, _)| reference(pdf, s))
            .ok_or_else(|| pdf_err("the trailer has no /Root"))?;
        let info = get("Info").map(|&(_, s, e)| text(s, e));
        let id = get("ID").map(|&(_, s, e)| text(s, e));
        let object = |num: usize| -> Result<(usize, usize), SealError> {
            let at = xref
                .offsets
                .iter()
                .find(|(n, _)| *n == num)
                .map(|&(_, at)| at)
                .ok_or_else(|| pdf_err(format!("object {num} is not in the table")))?;
            // "num gen obj" then the dictionary.
            let (n, p) = int_at(pdf, at).ok_or_else(|| pdf_err("bad object header"))?;
            let (_, p) =
                int_at(pdf, skip_ws(pdf, p)).ok_or_else(|| pdf_err("bad object header"))?;
            let p = skip_ws(pdf, p);
            if n != num || !pdf[p..].starts_with(b"obj") {
                return Err(pdf_err(format!("object {num} is not where the table says")));
            }
            let start = skip_ws(pdf, p + 3);
            let (_, end) = dict_entries(pdf, start)?;
            Ok((start, end))
        };
        let root_dict = object(root)?;
        let entry_ref = |dict: (usize, usize), key: &str| -> Option<usize> {
            let (entries, _) = dict_entries(pdf, dict.0).ok()?;
            let (_, s, _) = entries.into_iter().find(|(k, _, _)| k == key)?;
            reference(pdf, s)
        };
        let entry_name = |dict: (usize, usize), key: &str| -> Option<String> {
            let (entries, _) = dict_entries(pdf, dict.0).ok()?;
            let (_, s, e) = entries.into_iter().find(|(k, _, _)| k == key)?;
            Some(text(s, e))
        };
        let mut node =
            entry_ref(root_dict, "Pages").ok_or_else(|| pdf_err("the catalog has no /Pages"))?;
        let mut depth = 0;
        let (page, page_dict) = loop {
            let dict = object(node)?;
            match entry_name(dict, "Type").as_deref() {
                Some("/Page") => break (node, dict),
                Some("/Pages") => {}
                _ => return Err(pdf_err("a page tree node is neither /Pages nor /Page")),
            }
            let (entries, _) = dict_entries(pdf, dict.0)?;
            let (_, s, _) = entries
                .into_iter()
                .find(|(k, _, _)| k == "Kids")
                .ok_or_else(|| pdf_err("a /Pages node has no /Kids"))?;
            let first = skip_ws(pdf, s);
            if pdf.get(first) != Some(&b'[') {
                return Err(pdf_err("/Kids is not an array"));
            }
            node = reference(pdf, skip_ws(pdf, first + 1))
                .ok_or_else(|| pdf_err("the page tree has no first page"))?;
            depth += 1;
            if depth > MAX_PAGE_TREE_DEPTH {
                return Err(pdf_err("the page tree is too deep"));
            }
        };
        Ok(PdfIndex {
            pdf,
            startxref,
            size,
            root,
            root_dict,
            page,
            page_dict,
            info,
            id,
        })
    }

    /// The dictionary at `span` rewritten: `f(key, value)` gives a new
    /// value for an entry, or `None` to keep it. Returns the text and
    /// whether `f` replaced anything.
    fn rewrite_dict(
        &self,
        span: (usize, usize),
        mut f: impl FnMut(&str, &[u8]) -> Result<Option<String>, SealError>,
    ) -> Result<(String, bool), SealError> {
        let (entries, end) = dict_entries(self.pdf, span.0)?;
        let mut out = Vec::new();
        let mut last = span.0;
        let mut replaced = false;
        for (key, s, e) in entries {
            if let Some(new) = f(&key, &self.pdf[s..e])? {
                out.extend_from_slice(&self.pdf[last..s]);
                out.push(b' ');
                out.extend_from_slice(new.as_bytes());
                last = e;
                replaced = true;
            }
        }
        out.extend_from_slice(&self.pdf[last..end]);
        Ok((String::from_utf8_lossy(&out).into_owned(), replaced))
    }
}

struct Xref {
    /// (object number, offset) of the objects in use.
    offsets: Vec<(usize, usize)>,
    /// Just past the last entry.
    end: usize,
}

fn read_xref(pdf: &[u8], at: usize) -> Result<Xref, SealError> {
    let mut p = skip_ws(pdf, at + 4);
    let mut offsets = Vec::new();
    while let Some((first, q)) = int_at(pdf, p) {
        let (count, q) =
            int_at(pdf, skip_ws(pdf, q)).ok_or_else(|| pdf_err("bad xref subsection"))?;
        p = skip_ws(pdf, q);
        for i in 0..count {
            let entry = pdf
                .get(p..p + 18)
                .ok_or_else(|| pdf_err("the xref table is cut short"))?;
            let off: usize = std::str::from_utf8(&entry[..10])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| pdf_err("bad xref entry"))?;
            if entry[17] == b'n' {
                offsets.push((first + i, off));
            }
            p = skip_ws(pdf, p + 18);
        }
    }
    Ok(Xref { offsets, end: p })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn is_white(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// Past white space and comments from `p`.
fn skip_ws(pdf: &[u8], mut p: usize) -> usize {
    while let Some(&b) = pdf.get(p) {
        if is_white(b) {
            p += 1;
        } else if b == b'%' {
            while pdf.get(p).is_some_and(|&c| c != b'\n' && c != b'\r') {
                p += 1;
            }
        } else {
            break;
        }
    }
    p
}

/// An unsigned integer at `p` and the offset past it.
fn int_at(pdf: &[u8], p: usize) -> Option<(usize, usize)> {
    let digits = pdf
        .get(p..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let n = std::str::from_utf8(&pdf[p..p + digits])
        .ok()?
        .parse()
        .ok()?;
    Some((n, p + digits))
}

/// The object number of a reference `N G R` at `p`.
fn reference(pdf: &[u8], p: usize) -> Option<usize> {
    let (n, q) = int_at(pdf, skip_ws(pdf, p))?;
    let (_, q) = int_at(pdf, skip_ws(pdf, q))?;
    let q = skip_ws(pdf, q);
    (pdf.get(q) == Some(&b'R')).then_some(n)
}

/// The entries of the dictionary opening at `p` (key without its `/`,
/// value span) and the offset past its `>>`.
#[allow(clippy::type_complexity)]
fn dict_entries(pdf: &[u8], p: usize) -> Result<(Vec<(String, usize, usize)>, usize), SealError> {
    if !pdf.get(p..).is_some_and(|s| s.starts_with(b"<<")) {
        return Err(pdf_err("a dictionary was expected"));
    }
    let mut p = p + 2;
    let mut out = Vec::new();
    loop {
        p = skip_ws(pdf, p);
        match pdf.get(p) {
            None => return Err(pdf_err("a dictionary is not closed")),
            Some(b'>') if pdf.get(p + 1) == Some(&b'>') => return Ok((out, p + 2)),
            Some(b'/') => {
                let end = name_end(pdf, p + 1);
                let key = String::from_utf8_lossy(&pdf[p + 1..end]).into_owned();
                let vs = skip_ws(pdf, end);
                let ve = skip_value(pdf, vs, 0)?;
                out.push((key, vs, ve));
                p = ve;
            }
            Some(_) => return Err(pdf_err("a dictionary key was expected")),
        }
    }
}

fn name_end(pdf: &[u8], mut p: usize) -> usize {
    while pdf
        .get(p)
        .is_some_and(|&b| !is_white(b) && !is_delimiter(b))
    {
        p += 1;
    }
    p
}

/// The offset past the value at `p`.
fn skip_value(pdf: &[u8], p: usize, depth: usize) -> Result<usize, SealError> {
    if depth > 32 {
        return Err(pdf_err("objects nested too deep"));
    }
    match pdf.get(p) {
        None => Err(pdf_err("a value was expected")),
        Some(b'/') => Ok(name_end(pdf, p + 1)),
        Some(b'<') if pdf.get(p + 1) == Some(&b'<') => {
            let mut q = p + 2;
            loop {
                q = skip_ws(pdf, q);
                match pdf.get(q) {
                    None => return Err(pdf_err("a dictionary is not closed")),
                    Some(b'>') if pdf.get(q + 1) == Some(&b'>') => return Ok(q + 2),
                    Some(_) => q = skip_value(pdf, q, depth + 1)?,
                }
            }
        }
        Some(b'<') => pdf[p..]
            .iter()
            .position(|&b| b == b'>')
            .map(|i| p + i + 1)
            .ok_or_else(|| pdf_err("a hex string is not closed")),
        Some(b'[') => {
            let mut q = p + 1;
            loop {
                q = skip_ws(pdf, q);
                match pdf.get(q) {
                    None => return Err(pdf_err("an array is not closed")),
                    Some(b']') => return Ok(q + 1),
                    Some(_) => q = skip_value(pdf, q, depth + 1)?,
                }
            }
        }
        Some(b'(') => {
            let mut level = 0usize;
            let mut q = p;
            while let Some(&b) = pdf.get(q) {
                match b {
                    b'\\' => q += 1,
                    b'(' => level += 1,
                    b')' => {
                        level -= 1;
                        if level == 0 {
                            return Ok(q + 1);
                        }
                    }
                    _ => {}
                }
                q += 1;
            }
            Err(pdf_err("a string is not closed"))
        }
        Some(b) if b.is_ascii_digit() => {
            // A number, or a reference "N G R".
            if let Some((_, q)) = int_at(pdf, p) {
                let r = skip_ws(pdf, q);
                if let Some((_, s)) = int_at(pdf, r) {
                    let t = skip_ws(pdf, s);
                    if pdf.get(t) == Some(&b'R')
                        && pdf
                            .get(t + 1)
                            .is_none_or(|&c| is_white(c) || is_delimiter(c))
                    {
                        return Ok(t + 1);
                    }
                }
            }
            Ok(name_end(pdf, p))
        }
        Some(b'>' | b']' | b')') => Err(pdf_err("unexpected end of an object")),
        Some(_) => {
            let end = name_end(pdf, p);
            if end == p {
                Err(pdf_err("unexpected byte"))
            } else {
                Ok(end)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{verify_pdf, FileStatus, ReasonCode, TrustStore, VerifyOptions};

    /// A small PDF made by krilla, as the minutes are.
    fn sample_pdf() -> Vec<u8> {
        let mut doc = krilla::Document::new();
        doc.set_metadata(
            krilla::metadata::Metadata::new()
                .title("Biên bản".into())
                .language("vi".into())
                .document_id("seal-test".into()),
        );
        let size = krilla::page::PageSettings::from_wh(595.0, 842.0).expect("size");
        for _ in 0..2 {
            let page = doc.start_page_with(size.clone());
            page.finish();
        }
        doc.finish().expect("pdf")
    }

    fn info() -> SealInfo {
        SealInfo {
            name: "ỦY BAN NHÂN DÂN TỈNH HƯNG YÊN".into(),
            reason: "Đóng dấu biên bản (bản 1)".into(),
            location: "Hưng Yên".into(),
            at: 1_780_000_000,
        }
    }

    fn opts() -> VerifyOptions {
        VerifyOptions {
            verification_time: Some(1_780_000_100),
            ..VerifyOptions::default()
        }
    }

    fn trust(pem: &str) -> TrustStore {
        let mut t = TrustStore::empty();
        t.add_pem_or_der(pem.as_bytes()).expect("trust");
        t
    }

    #[test]
    fn seal_generated_p256_verifies_and_tampering_shows() {
        let (seal, cert_pem, key_pem) = Seal::generate(
            "ỦY BAN NHÂN DÂN TỈNH HƯNG YÊN (con dấu số giaoban)",
            "ỦY BAN NHÂN DÂN TỈNH HƯNG YÊN",
            1_779_000_000,
            10,
        )
        .expect("generate");
        assert_eq!(seal.key_algorithm(), "ECDSA P-256");
        assert!(
            seal.subject().contains("con dấu số giaoban"),
            "{}",
            seal.subject()
        );
        // The PEM files load back as the same seal.
        let again = Seal::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).expect("reload");
        assert_eq!(again.certificate_der(), seal.certificate_der());

        let pdf = sample_pdf();
        let sealed = again.seal_pdf(&pdf, &info()).expect("seal");
        assert!(sealed.starts_with(&pdf), "the original bytes are kept");
        let text = String::from_utf8_lossy(&sealed[pdf.len()..]).into_owned();
        assert!(text.contains("/SubFilter /ETSI.CAdES.detached"), "{text}");
        assert!(text.contains("/SigFlags 3"), "{text}");
        assert!(text.contains(" /Prev "), "{text}");

        let r = verify_pdf(&sealed, &trust(&cert_pem), &opts()).expect("verify");
        assert_eq!(r.status, FileStatus::Valid, "{r:#?}");
        let s = &r.signatures[0];
        assert!(s.covers_whole_file);
        assert_eq!(s.signing_time_unix, Some(1_780_000_000));
        assert_eq!(s.pdf_reason.as_deref(), Some("Đóng dấu biên bản (bản 1)"));
        assert_eq!(
            s.signer_name.as_deref(),
            Some("ỦY BAN NHÂN DÂN TỈNH HƯNG YÊN (con dấu số giaoban)")
        );

        // Without the seal as anchor: intact but untrusted.
        let r = verify_pdf(&sealed, &TrustStore::empty(), &opts()).expect("verify");
        assert_eq!(r.status, FileStatus::Untrusted, "{r:#?}");

        // One byte changed inside the signed range (the original part).
        let mut bad = sealed.clone();
        let at = pdf.len() / 2;
        bad[at] ^= 0x01;
        let r = verify_pdf(&bad, &trust(&cert_pem), &opts()).expect("verify");
        assert_eq!(r.status, FileStatus::Invalid);
        assert!(r.signatures[0]
            .reasons
            .iter()
            .any(|x| x.code == ReasonCode::DigestMismatch));
    }

    #[test]
    fn seal_with_rsa_key_and_ca_chain() {
        use rsa::pkcs1::{EncodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
        // A CA (self-signed P-256, CA:true, keyCertSign) and an RSA seal
        // certificate it issues (CA:false, digitalSignature).
        let ca_key = p256::ecdsa::SigningKey::from(
            &p256::SecretKey::from_slice(&[7u8; 32]).expect("ca key"),
        );
        let ca_point = ca_key.verifying_key().to_encoded_point(false);
        let ca_spki = seq(&[
            seq(&[
                oid(OID_EC_PUBLIC_KEY).expect("oid"),
                oid(OID_P256).expect("oid"),
            ]),
            bit_string(ca_point.as_bytes()),
        ]);
        let ca_name = seq(&[rdn(OID_CN, 0x0c, "CA Tỉnh (thử nghiệm)").expect("rdn")]);
        let ca_der = test_cert(
            &ca_name,
            &ca_name,
            ca_spki,
            &[0x30, 0x03, 0x01, 0x01, 0xff],
            &[0x03, 0x02, 0x01, 0x06],
            &ca_key,
        );
        let ca_pem = pem("CERTIFICATE", &ca_der);

        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
        let pubkey = rsa::RsaPublicKey::from(&key).to_pkcs1_der().expect("pkcs1");
        let spki = seq(&[
            seq(&[oid(OID_RSA).expect("oid"), vec![0x05, 0x00]]),
            bit_string(pubkey.as_bytes()),
        ]);
        let subject = seq(&[rdn(OID_CN, 0x0c, "Sở Nội vụ (con dấu)").expect("rdn")]);
        let cert_der = test_cert(
            &ca_name,
            &subject,
            spki,
            &[0x30, 0x00],
            &[0x03, 0x02, 0x07, 0x80],
            &ca_key,
        );
        let key_pem = pem(
            "RSA PRIVATE KEY",
            key.to_pkcs1_der().expect("pkcs1").as_bytes(),
        );
        let chain_pem = format!("{}{}", pem("CERTIFICATE", &cert_der), ca_pem);
        let seal = Seal::from_pem(chain_pem.as_bytes(), key_pem.as_bytes()).expect("seal");
        assert_eq!(seal.key_algorithm(), "RSA 2048");
        let sealed = seal.seal_pdf(&sample_pdf(), &info()).expect("seal");
        let r = verify_pdf(&sealed, &trust(&ca_pem), &opts()).expect("verify");
        assert_eq!(r.status, FileStatus::Valid, "{r:#?}");
        assert_eq!(r.signatures[0].chain.len(), 2);
        assert!(r.signatures[0]
            .algorithm
            .as_deref()
            .unwrap_or("")
            .starts_with("RSA"));

        // A key that is not the certificate's.
        let (_, other_pem, other_key) = Seal::generate("Other", "", 1_779_000_000, 1).expect("o");
        assert!(matches!(
            Seal::from_pem(other_pem.as_bytes(), key_pem.as_bytes()),
            Err(SealError::Key(_))
        ));
        assert!(matches!(
            Seal::from_pem(chain_pem.as_bytes(), other_key.as_bytes()),
            Err(SealError::Key(_))
        ));
        assert!(matches!(
            Seal::from_pem(b"garbage", b"garbage"),
            Err(SealError::Key(_))
        ));
    }

    /// A certificate (DER) for `spki` named `subject`, issued by `issuer`
    /// with `signer`: basic constraints `bc` (DER) and key usage `ku` (DER
    /// BIT STRING), valid 2026-05..2026-09.
    fn test_cert(
        issuer: &[u8],
        subject: &[u8],
        spki: Vec<u8>,
        bc: &[u8],
        ku: &[u8],
        signer: &p256::ecdsa::SigningKey,
    ) -> Vec<u8> {
        let alg = seq(&[oid(OID_ECDSA_SHA256).expect("oid")]);
        let ext = seq(&[
            seq(&[
                oid(OID_BASIC_CONSTRAINTS).expect("oid"),
                vec![0x01, 0x01, 0xff],
                tlv(0x04, bc),
            ]),
            seq(&[oid(OID_KEY_USAGE).expect("oid"), tlv(0x04, ku)]),
        ]);
        let tbs = seq(&[
            tlv(0xa0, &[0x02, 0x01, 0x02]),
            tlv(0x02, &[0x01, 0x23]),
            alg.clone(),
            issuer.to_vec(),
            seq(&[
                time_der(1_779_000_000).expect("t"),
                time_der(1_790_000_000).expect("t"),
            ]),
            subject.to_vec(),
            spki,
            tlv(0xa3, &ext),
        ]);
        let sig: p256::ecdsa::Signature = signature::Signer::sign(signer, &tbs);
        seq(&[tbs, alg, bit_string(sig.to_der().as_bytes())])
    }

    #[test]
    fn seal_refuses_what_it_cannot_update() {
        let (seal, _, _) = Seal::generate("S", "", 1_779_000_000, 1).expect("seal");
        assert!(matches!(
            seal.seal_pdf(b"hello", &info()),
            Err(SealError::Pdf(_))
        ));
        let pdf = sample_pdf();
        let once = seal.seal_pdf(&pdf, &info()).expect("seal");
        // A sealed file has a /Prev: sealing twice is refused, not garbled.
        assert!(matches!(
            seal.seal_pdf(&once, &info()),
            Err(SealError::Pdf(_))
        ));
        for cut in [10, pdf.len() / 2, pdf.len() - 10] {
            assert!(seal.seal_pdf(&pdf[..cut], &info()).is_err());
        }
    }

    #[test]
    fn text_strings_escape() {
        assert_eq!(text_string("a(b)\\"), "(a\\(b\\)\\\\)");
        assert!(text_string("Ấ").starts_with("(\\376\\377"));
    }
}
