//! Trust material for authenticating the P-CSCF (TS 33.203 O.2.1, O.5.1): operator trust
//! anchors from PEM or DER (memory or file), CRLs, and SPKI SHA-256 pins.

use std::path::PathBuf;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, SubjectPublicKeyInfoDer};
use rustls::RootCertStore;

use super::error::ConfigError;

/// Where a piece of trust material comes from.
#[derive(Debug, Clone)]
pub enum TrustSource {
    /// PEM text in memory (one or more sections).
    Pem(Vec<u8>),
    /// One DER object in memory.
    Der(Vec<u8>),
    /// A file holding PEM (one or more sections) or one DER object.
    File(PathBuf),
}

/// Builds the root store from the given sources; webpki-roots when there are none (an error
/// when the `webpki-roots` feature is off).
pub(crate) fn load_roots(sources: &[TrustSource]) -> Result<(RootCertStore, bool), ConfigError> {
    const FIELD: &str = "trust_anchors";
    if sources.is_empty() {
        return default_roots().map(|store| (store, true));
    }
    let mut store = RootCertStore::empty();
    for source in sources {
        for der in read_objects(FIELD, source, |pem| {
            CertificateDer::pem_slice_iter(pem)
                .map(|item| item.map(|c| c.as_ref().to_vec()))
                .collect()
        })? {
            store
                .add(CertificateDer::from(der))
                .map_err(|e| ConfigError::InvalidCertificate {
                    field: FIELD,
                    reason: e.to_string(),
                })?;
        }
    }
    if store.is_empty() {
        return Err(ConfigError::EmptyTrustStore);
    }
    Ok((store, false))
}

#[cfg(feature = "webpki-roots")]
fn default_roots() -> Result<RootCertStore, ConfigError> {
    Ok(RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
}

#[cfg(not(feature = "webpki-roots"))]
fn default_roots() -> Result<RootCertStore, ConfigError> {
    Err(ConfigError::NoTrustAnchors)
}

/// Reads the CRLs (validated later, when the verifier is built).
pub(crate) fn load_crls(
    sources: &[TrustSource],
) -> Result<Vec<CertificateRevocationListDer<'static>>, ConfigError> {
    let mut crls = Vec::new();
    for source in sources {
        for der in read_objects("crls", source, |pem| {
            CertificateRevocationListDer::pem_slice_iter(pem)
                .map(|item| item.map(|c| c.as_ref().to_vec()))
                .collect()
        })? {
            crls.push(CertificateRevocationListDer::from(der));
        }
    }
    Ok(crls)
}

/// Decodes SPKI SHA-256 pins given as standard base64 (RFC 7469 style).
pub(crate) fn parse_pins(pins: &[String]) -> Result<Vec<[u8; 32]>, ConfigError> {
    pins.iter()
        .map(|pin| {
            let bytes = decode_base64(pin.trim()).ok_or_else(|| ConfigError::InvalidPin {
                value: pin.clone(),
                reason: "not valid base64",
            })?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| ConfigError::InvalidPin {
                value: pin.clone(),
                reason: "a SHA-256 pin is 32 bytes (44 base64 characters)",
            })
        })
        .collect()
}

type PemParser = fn(&[u8]) -> Result<Vec<Vec<u8>>, rustls::pki_types::pem::Error>;

fn read_objects(
    field: &'static str,
    source: &TrustSource,
    parse_pem: PemParser,
) -> Result<Vec<Vec<u8>>, ConfigError> {
    let from_pem = |bytes: &[u8]| -> Result<Vec<Vec<u8>>, ConfigError> {
        let objects = parse_pem(bytes).map_err(|e| ConfigError::InvalidPem {
            field,
            reason: pem_error_text(&e),
        })?;
        if objects.is_empty() {
            return Err(ConfigError::NoObjectInPem { field });
        }
        Ok(objects)
    };
    match source {
        TrustSource::Pem(bytes) => from_pem(bytes),
        TrustSource::Der(bytes) if bytes.is_empty() => Err(ConfigError::InvalidCertificate {
            field,
            reason: "empty DER input".into(),
        }),
        TrustSource::Der(bytes) => Ok(vec![bytes.clone()]),
        TrustSource::File(path) => {
            let bytes = std::fs::read(path).map_err(|e| ConfigError::Io {
                field,
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if looks_like_pem(&bytes) {
                from_pem(&bytes)
            } else if bytes.first() == Some(&0x30) {
                Ok(vec![bytes])
            } else {
                Err(ConfigError::InvalidPem {
                    field,
                    reason: format!("{} is neither PEM nor DER", path.display()),
                })
            }
        }
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn pem_error_text(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        Error::IllegalSectionStart { .. } => "malformed BEGIN line".into(),
        Error::Base64Decode(_) => "bad base64 inside a PEM section".into(),
        Error::NoItemsFound => "no PEM section found".into(),
        other => format!("{other:?}"),
    }
}

/// Standard base64 (RFC 4648 §4, padding optional); None on any bad character. The decoder
/// is the PEM reader's (rustls-pki-types, already used for the trust anchors), so the pin
/// goes in as the body of a PEM section. Whitespace and `-` are refused first: PEM would
/// skip whitespace, and a line break or a `-----END` line could close the section early.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    if text.bytes().any(|b| b.is_ascii_whitespace() || b == b'-') {
        return None;
    }
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{text}\n-----END PUBLIC KEY-----\n");
    let bytes = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).ok()?;
    Some(bytes.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("Zm8").unwrap(), b"fo");
        assert!(decode_base64("Z").is_none());
        assert!(decode_base64("Zm9v!").is_none());
        assert!(decode_base64("Zm 9v").is_none());
        assert!(decode_base64("Zm9v\n-----END PUBLIC KEY-----").is_none());
        assert!(decode_base64("-----END PUBLIC KEY-----").is_none());
    }

    #[test]
    fn pins_must_be_32_byte_base64() {
        let good = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".to_string();
        assert_eq!(parse_pins(std::slice::from_ref(&good)).unwrap().len(), 1);
        assert!(matches!(
            parse_pins(&["abc".into()]),
            Err(ConfigError::InvalidPin { reason, .. }) if reason.contains("32 bytes")
        ));
        assert!(matches!(
            parse_pins(&["not base64!".into()]),
            Err(ConfigError::InvalidPin {
                reason: "not valid base64",
                ..
            })
        ));
    }

    #[test]
    fn malformed_and_empty_pem_are_clear_errors() {
        let broken = b"-----BEGIN CERTIFICATE-----\nMIIB$$$\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            load_roots(&[TrustSource::Pem(broken.to_vec())]),
            Err(ConfigError::InvalidPem {
                field: "trust_anchors",
                ..
            })
        ));
        let unterminated = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(matches!(
            load_roots(&[TrustSource::Pem(unterminated.to_vec())]),
            Err(ConfigError::InvalidPem { .. })
        ));
        assert!(matches!(
            load_roots(&[TrustSource::Pem(b"just text".to_vec())]),
            Err(ConfigError::NoObjectInPem {
                field: "trust_anchors"
            })
        ));
        assert!(matches!(
            load_roots(&[TrustSource::Der(vec![0x30, 0x03, 0x02, 0x01, 0x00])]),
            Err(ConfigError::InvalidCertificate { .. })
        ));
        assert!(matches!(
            load_roots(&[TrustSource::File("/nonexistent/ca.pem".into())]),
            Err(ConfigError::Io {
                field: "trust_anchors",
                ..
            })
        ));
    }

    #[cfg(feature = "webpki-roots")]
    #[test]
    fn no_sources_means_webpki_roots() {
        let (store, default_roots) = load_roots(&[]).unwrap();
        assert!(default_roots);
        assert!(store.len() > 50);
    }

    #[cfg(not(feature = "webpki-roots"))]
    #[test]
    fn no_sources_without_webpki_roots_is_an_error_naming_the_field() {
        let err = load_roots(&[]).unwrap_err();
        assert_eq!(err, ConfigError::NoTrustAnchors);
        assert_eq!(err.field(), "trust_anchors");
    }
}
