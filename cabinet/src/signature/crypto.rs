//! Digests and public-key signature checks (RustCrypto).

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use rsa::pkcs1::DecodeRsaPublicKey;
use sha2::Digest;
use signature::hazmat::PrehashVerifier;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

pub(crate) const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub(crate) const OID_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(crate) const OID_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub(crate) const OID_SHA512: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A digest algorithm we can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlg> {
        match *oid {
            OID_SHA1 => Some(HashAlg::Sha1),
            OID_SHA256 => Some(HashAlg::Sha256),
            OID_SHA384 => Some(HashAlg::Sha384),
            OID_SHA512 => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }

    pub fn is_weak(self) -> bool {
        self == HashAlg::Sha1
    }

    /// The digest of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            HashAlg::Sha1 => run::<sha1::Sha1>(parts),
            HashAlg::Sha256 => run::<sha2::Sha256>(parts),
            HashAlg::Sha384 => run::<sha2::Sha384>(parts),
            HashAlg::Sha512 => run::<sha2::Sha512>(parts),
        }
    }
}

/// Why a signature check did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// An algorithm or key type we do not implement.
    Unsupported(String),
    /// The key or the signature value cannot be read.
    Malformed(String),
    /// The signature does not match.
    Mismatch,
}

/// What a successful check used.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// e.g. "RSA PKCS#1 v1.5 / SHA-256".
    pub algorithm: String,
    pub hash: HashAlg,
}

/// Checks `signature` over `message` (the concatenation of its parts) with the key in `spki`, by the
/// algorithm `alg`. `default_hash` is the hash to use when `alg` names none
/// (CMS signers may write plain `rsaEncryption` / `id-ecPublicKey`).
pub(crate) fn verify(
    spki: &SubjectPublicKeyInfoOwned,
    alg: &AlgorithmIdentifierOwned,
    default_hash: Option<HashAlg>,
    message: &[&[u8]],
    signature: &[u8],
) -> Result<Verified, VerifyError> {
    let need_default = || {
        default_hash.ok_or_else(|| VerifyError::Unsupported(format!("no digest for {}", alg.oid)))
    };
    let key_oid = spki.algorithm.oid;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| VerifyError::Malformed("public key bit string".into()))?;
    match alg.oid {
        OID_RSA | OID_RSA_SHA1 | OID_RSA_SHA256 | OID_RSA_SHA384 | OID_RSA_SHA512 => {
            let hash = match alg.oid {
                OID_RSA_SHA1 => HashAlg::Sha1,
                OID_RSA_SHA256 => HashAlg::Sha256,
                OID_RSA_SHA384 => HashAlg::Sha384,
                OID_RSA_SHA512 => HashAlg::Sha512,
                _ => need_default()?,
            };
            let key = rsa_key(key_oid, key_bytes)?;
            let hashed = hash.digest(message);
            let scheme = match hash {
                HashAlg::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
            };
            key.verify(scheme, &hashed, signature)
                .map_err(|_| VerifyError::Mismatch)?;
            Ok(Verified {
                algorithm: format!("RSA PKCS#1 v1.5 / {}", hash.name()),
                hash,
            })
        }
        OID_RSA_PSS => {
            let key = rsa_key(key_oid, key_bytes)?;
            let params = alg
                .parameters
                .as_ref()
                .ok_or_else(|| VerifyError::Malformed("RSA-PSS without parameters".into()))?
                .to_der()
                .map_err(|e| VerifyError::Malformed(e.to_string()))?;
            let params = rsa::pkcs1::RsaPssParams::from_der(&params)
                .map_err(|e| VerifyError::Malformed(format!("RSA-PSS parameters: {e}")))?;
            let hash = HashAlg::from_oid(&params.hash.oid).ok_or_else(|| {
                VerifyError::Unsupported(format!("RSA-PSS digest {}", params.hash.oid))
            })?;
            let mgf_hash = params.mask_gen.parameters.as_ref().map(|p| p.oid);
            if params.mask_gen.oid != OID_MGF1 || mgf_hash != Some(params.hash.oid) {
                return Err(VerifyError::Unsupported(
                    "RSA-PSS with a mask generation other than MGF1 over the same digest".into(),
                ));
            }
            let salt = usize::from(params.salt_len);
            let scheme = match hash {
                HashAlg::Sha1 => rsa::Pss::new_with_salt::<sha1::Sha1>(salt),
                HashAlg::Sha256 => rsa::Pss::new_with_salt::<sha2::Sha256>(salt),
                HashAlg::Sha384 => rsa::Pss::new_with_salt::<sha2::Sha384>(salt),
                HashAlg::Sha512 => rsa::Pss::new_with_salt::<sha2::Sha512>(salt),
            };
            let hashed = hash.digest(message);
            key.verify(scheme, &hashed, signature)
                .map_err(|_| VerifyError::Mismatch)?;
            Ok(Verified {
                algorithm: format!("RSA-PSS / {}", hash.name()),
                hash,
            })
        }
        OID_EC_PUBLIC_KEY | OID_ECDSA_SHA1 | OID_ECDSA_SHA256 | OID_ECDSA_SHA384
        | OID_ECDSA_SHA512 => {
            let hash = match alg.oid {
                OID_ECDSA_SHA1 => HashAlg::Sha1,
                OID_ECDSA_SHA256 => HashAlg::Sha256,
                OID_ECDSA_SHA384 => HashAlg::Sha384,
                OID_ECDSA_SHA512 => HashAlg::Sha512,
                _ => need_default()?,
            };
            if key_oid != OID_EC_PUBLIC_KEY {
                return Err(VerifyError::Malformed(format!(
                    "an ECDSA signature with a {key_oid} key"
                )));
            }
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| VerifyError::Unsupported("EC key without a named curve".into()))?;
            let hashed = hash.digest(message);
            let curve_name = match curve {
                OID_P256 => {
                    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                        .map_err(|_| VerifyError::Malformed("P-256 public key".into()))?;
                    let sig = p256::ecdsa::Signature::from_der(signature)
                        .map_err(|_| VerifyError::Malformed("ECDSA signature value".into()))?;
                    key.verify_prehash(&hashed, &sig)
                        .map_err(|_| VerifyError::Mismatch)?;
                    "P-256"
                }
                OID_P384 => {
                    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                        .map_err(|_| VerifyError::Malformed("P-384 public key".into()))?;
                    let sig = p384::ecdsa::Signature::from_der(signature)
                        .map_err(|_| VerifyError::Malformed("ECDSA signature value".into()))?;
                    key.verify_prehash(&hashed, &sig)
                        .map_err(|_| VerifyError::Mismatch)?;
                    "P-384"
                }
                other => return Err(VerifyError::Unsupported(format!("elliptic curve {other}"))),
            };
            Ok(Verified {
                algorithm: format!("ECDSA {curve_name} / {}", hash.name()),
                hash,
            })
        }
        other => Err(VerifyError::Unsupported(format!(
            "signature algorithm {other}"
        ))),
    }
}

fn rsa_key(key_oid: ObjectIdentifier, key_bytes: &[u8]) -> Result<rsa::RsaPublicKey, VerifyError> {
    if key_oid != OID_RSA && key_oid != OID_RSA_PSS {
        return Err(VerifyError::Malformed(format!(
            "an RSA signature with a {key_oid} key"
        )));
    }
    rsa::RsaPublicKey::from_pkcs1_der(key_bytes)
        .map_err(|e| VerifyError::Unsupported(format!("RSA public key: {e}")))
}
