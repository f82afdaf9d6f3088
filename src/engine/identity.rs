//! The registering user's identities (IMPI, IMPUs). They are personal data: never logged,
//! and zeroized when the registration they belong to is torn down (O.4.1).

use std::fmt;

use zeroize::Zeroizing;

use super::UeError;

/// IMPI and IMPUs for one registration (TS 33.203 O.2.2 binding).
#[derive(Clone)]
pub struct Identity {
    impi: Zeroizing<String>,
    impus: Vec<Zeroizing<String>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data stays out of debug output.
        f.debug_struct("Identity")
            .field("impi", &"<redacted>")
            .field("impus", &self.impus.len())
            .finish()
    }
}

impl Identity {
    /// Validates and stores an IMPI (`user@realm` NAI) and at least one IMPU (`sip:`,
    /// `sips:` or `tel:` URI).
    pub fn new(impi: &str, impus: &[&str]) -> Result<Self, UeError> {
        let clean = |s: &str| !s.is_empty() && s.len() <= 512 && !s.chars().any(char::is_control);
        if !clean(impi) {
            return Err(UeError::InvalidIdentity(
                "IMPI must be 1..=512 characters without control characters",
            ));
        }
        if impus.is_empty() {
            return Err(UeError::InvalidIdentity("at least one IMPU is required"));
        }
        for impu in impus {
            if !clean(impu) {
                return Err(UeError::InvalidIdentity(
                    "IMPU must be 1..=512 characters without control characters",
                ));
            }
            // Compared in place: a lowercased copy would be an unwiped copy of the IMPU.
            let scheme = |prefix: &str| {
                impu.get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
            };
            if !(scheme("sip:") || scheme("sips:") || scheme("tel:")) {
                return Err(UeError::InvalidIdentity(
                    "IMPU must be a sip:, sips: or tel: URI",
                ));
            }
        }
        Ok(Self {
            impi: Zeroizing::new(impi.to_owned()),
            impus: impus
                .iter()
                .map(|s| Zeroizing::new((*s).to_owned()))
                .collect(),
        })
    }

    /// The private identity.
    pub fn impi(&self) -> &str {
        &self.impi
    }

    /// The public identities.
    pub fn impus(&self) -> impl Iterator<Item = &str> {
        self.impus.iter().map(|s| s.as_str())
    }

    /// True when `other` names the same subscriber: the same IMPI and the same IMPUs.
    pub fn same_subscriber(&self, other: &Identity) -> bool {
        self.impi == other.impi && self.impus == other.impus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_validated() {
        assert!(Identity::new("alice@ims.test", &["sip:alice@ims.test"]).is_ok());
        assert!(Identity::new("alice@ims.test", &["tel:+15551234"]).is_ok());
        assert!(Identity::new("", &["sip:a@b"]).is_err());
        assert!(Identity::new("a@b", &[]).is_err());
        assert!(Identity::new("a@b", &["mailto:a@b"]).is_err());
        assert!(Identity::new("a\r\nVia: x", &["sip:a@b"]).is_err());
        assert!(Identity::new("a@b", &["SIPS:a@b"]).is_ok());
        assert!(Identity::new("a@b", &["Tel:+1"]).is_ok());
        assert!(Identity::new("a@b", &["si"]).is_err());
        assert!(Identity::new("a@b", &["sìp:a@b"]).is_err());
    }

    #[test]
    fn the_same_subscriber_has_the_same_impi_and_impus() {
        let alice = Identity::new("alice@ims.test", &["sip:alice@ims.test"]).unwrap();
        let again = Identity::new("alice@ims.test", &["sip:alice@ims.test"]).unwrap();
        let other_impu = Identity::new("alice@ims.test", &["tel:+15551234"]).unwrap();
        let bob = Identity::new("bob@ims.test", &["sip:alice@ims.test"]).unwrap();
        assert!(alice.same_subscriber(&again));
        assert!(!alice.same_subscriber(&other_impu));
        assert!(!alice.same_subscriber(&bob));
    }

    #[test]
    fn debug_output_hides_the_impi() {
        let id = Identity::new("alice@ims.test", &["sip:alice@ims.test"]).unwrap();
        assert!(!format!("{id:?}").contains("alice"));
    }
}
