//! Just enough X.509 (DER) reading for what is *reported* about the P-CSCF certificate: the
//! `TlsEstablished` summary (subject, issuer, validity, subjectAltNames) and the names listed
//! in a name mismatch. No accept/refuse decision reads it: chain, names and SPKI pins go
//! through webpki only ([`super::verify`]), so that one parser decides.
//!
//! The input is untrusted (it comes from the P-CSCF): every read is bounds-checked and
//! every failure is an [`X509Error`], never a panic.

use std::fmt;
use std::net::IpAddr;

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Error(&'static str);

impl fmt::Display for X509Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed certificate: {}", self.0)
    }
}

impl std::error::Error for X509Error {}

const TAG_BOOLEAN: u8 = 0x01;
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_PRINTABLE_STRING: u8 = 0x13;
const TAG_IA5_STRING: u8 = 0x16;
const TAG_UTC_TIME: u8 = 0x17;
const TAG_GENERALIZED_TIME: u8 = 0x18;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_VERSION: u8 = 0xa0;
const TAG_EXTENSIONS: u8 = 0xa3;
const TAG_SAN_DNS: u8 = 0x82;
const TAG_SAN_URI: u8 = 0x86;
const TAG_SAN_IP: u8 = 0x87;

/// 2.5.29.17 subjectAltName
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// 2.5.4.3 commonName
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// A forward-only DER reader over a borrowed slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads one TLV; returns (tag, value, whole encoding).
    fn read_any(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), X509Error> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(X509Error("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(X509Error("multi-byte tags are not used in certificates"));
        }
        let (&first_len, mut after_len) = after_tag.split_first().ok_or(X509Error("truncated"))?;
        let len = if first_len < 0x80 {
            usize::from(first_len)
        } else {
            let count = usize::from(first_len & 0x7f);
            if count == 0 || count > 4 {
                return Err(X509Error("unsupported length encoding"));
            }
            if after_len.len() < count {
                return Err(X509Error("truncated"));
            }
            let (len_bytes, rest) = after_len.split_at(count);
            after_len = rest;
            // Big-endian, 1 to 4 bytes (a fold over them was vectorised into 2.7 KB of code).
            let mut be = [0u8; 4];
            be[4 - count..].copy_from_slice(len_bytes);
            u32::from_be_bytes(be) as usize
        };
        if after_len.len() < len {
            return Err(X509Error("truncated"));
        }
        let (value, rest) = after_len.split_at(len);
        let header_len = input.len() - after_len.len();
        let whole = &input[..header_len + len];
        self.rest = rest;
        Ok((tag, value, whole))
    }

    fn read(&mut self, expected: u8) -> Result<&'a [u8], X509Error> {
        let (tag, value, _) = self.read_any()?;
        if tag != expected {
            return Err(X509Error("unexpected field"));
        }
        Ok(value)
    }

    fn read_whole(&mut self, expected: u8) -> Result<&'a [u8], X509Error> {
        let (tag, _, whole) = self.read_any()?;
        if tag != expected {
            return Err(X509Error("unexpected field"));
        }
        Ok(whole)
    }

    fn skip_if(&mut self, tag: u8) -> Result<(), X509Error> {
        if self.peek_tag() == Some(tag) {
            self.read_any()?;
        }
        Ok(())
    }
}

/// The subjectAltName entries that can carry a P-CSCF identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectAltNames {
    /// `uniformResourceIdentifier` entries, verbatim.
    pub uris: Vec<String>,
    /// `dNSName` entries, verbatim.
    pub dns_names: Vec<String>,
    /// `iPAddress` entries.
    pub ip_addresses: Vec<IpAddr>,
}

impl SubjectAltNames {
    /// True when the certificate has no usable subjectAltName entry at all.
    #[cfg(feature = "_internal_test_exports")] // only tests and fuzz targets call it
    pub fn is_empty(&self) -> bool {
        self.uris.is_empty() && self.dns_names.is_empty() && self.ip_addresses.is_empty()
    }
}

/// What imstls reads from a certificate, beyond webpki's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo<'a> {
    /// The DER SubjectPublicKeyInfo (reported only; pins hash webpki's).
    pub spki: &'a [u8],
    /// Subject commonName, for diagnostics only: never used as an identity (RFC 5922 §7.1,
    /// TS 33.203 O.5.1).
    pub subject_common_name: Option<String>,
    /// Issuer commonName, for diagnostics.
    pub issuer_common_name: Option<String>,
    /// notBefore as seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter as seconds since the Unix epoch.
    pub not_after: i64,
    /// The subjectAltName entries.
    pub subject_alt_names: SubjectAltNames,
}

/// Reads the fields imstls needs from a DER certificate.
pub fn parse_certificate(der: &[u8]) -> Result<CertificateInfo<'_>, X509Error> {
    let mut outer = Reader::new(der);
    let certificate = outer.read(TAG_SEQUENCE)?;
    if !outer.is_empty() {
        return Err(X509Error("trailing data"));
    }
    let mut cert = Reader::new(certificate);
    let tbs = cert.read(TAG_SEQUENCE)?;
    let mut tbs = Reader::new(tbs);
    tbs.skip_if(TAG_VERSION)?;
    tbs.read(TAG_INTEGER)?; // serialNumber
    tbs.read(TAG_SEQUENCE)?; // signature algorithm
    let issuer = tbs.read(TAG_SEQUENCE)?;
    let validity = tbs.read(TAG_SEQUENCE)?;
    let subject = tbs.read(TAG_SEQUENCE)?;
    let spki = tbs.read_whole(TAG_SEQUENCE)?;

    let mut validity = Reader::new(validity);
    let not_before = read_time(&mut validity)?;
    let not_after = read_time(&mut validity)?;

    let mut subject_alt_names = SubjectAltNames::default();
    while !tbs.is_empty() {
        let (tag, value, _) = tbs.read_any()?;
        if tag == TAG_EXTENSIONS {
            subject_alt_names = read_extensions(value)?;
        }
    }

    Ok(CertificateInfo {
        spki,
        subject_common_name: common_name(subject)?,
        issuer_common_name: common_name(issuer)?,
        not_before,
        not_after,
        subject_alt_names,
    })
}

fn read_extensions(explicit: &[u8]) -> Result<SubjectAltNames, X509Error> {
    let mut wrapper = Reader::new(explicit);
    let mut extensions = Reader::new(wrapper.read(TAG_SEQUENCE)?);
    let mut names = SubjectAltNames::default();
    let mut seen_san = false;
    while !extensions.is_empty() {
        let mut extension = Reader::new(extensions.read(TAG_SEQUENCE)?);
        let oid = extension.read(TAG_OID)?;
        extension.skip_if(TAG_BOOLEAN)?;
        let value = extension.read(TAG_OCTET_STRING)?;
        if oid == OID_SUBJECT_ALT_NAME {
            if seen_san {
                return Err(X509Error("duplicate subjectAltName extension"));
            }
            seen_san = true;
            names = read_general_names(value)?;
        }
    }
    Ok(names)
}

fn read_general_names(value: &[u8]) -> Result<SubjectAltNames, X509Error> {
    let mut outer = Reader::new(value);
    let mut list = Reader::new(outer.read(TAG_SEQUENCE)?);
    let mut names = SubjectAltNames::default();
    while !list.is_empty() {
        let (tag, value, _) = list.read_any()?;
        match tag {
            TAG_SAN_DNS => names.dns_names.push(ascii(value)?),
            TAG_SAN_URI => names.uris.push(ascii(value)?),
            TAG_SAN_IP => names.ip_addresses.push(match value.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(value).expect("length checked")),
                16 => IpAddr::from(<[u8; 16]>::try_from(value).expect("length checked")),
                _ => return Err(X509Error("bad iPAddress length")),
            }),
            // Other GeneralName forms (email, directoryName, ...) never name a P-CSCF.
            _ => {}
        }
    }
    Ok(names)
}

fn ascii(value: &[u8]) -> Result<String, X509Error> {
    if !value.is_ascii() {
        return Err(X509Error("non-ASCII IA5String"));
    }
    Ok(String::from_utf8_lossy(value).into_owned())
}

/// The first commonName of a Name, if any (diagnostics only).
fn common_name(name: &[u8]) -> Result<Option<String>, X509Error> {
    let mut rdns = Reader::new(name);
    while !rdns.is_empty() {
        let mut set = Reader::new(rdns.read(TAG_SET)?);
        while !set.is_empty() {
            let mut attribute = Reader::new(set.read(TAG_SEQUENCE)?);
            let oid = attribute.read(TAG_OID)?;
            let (tag, value, _) = attribute.read_any()?;
            if oid == OID_COMMON_NAME
                && matches!(tag, TAG_UTF8_STRING | TAG_PRINTABLE_STRING | TAG_IA5_STRING)
            {
                return Ok(Some(String::from_utf8_lossy(value).into_owned()));
            }
        }
    }
    Ok(None)
}

fn read_time(reader: &mut Reader<'_>) -> Result<i64, X509Error> {
    let (tag, value, _) = reader.read_any()?;
    // Only ASCII may be sliced by byte index below; anything else is malformed anyway.
    if !value.is_ascii() {
        return Err(X509Error("bad time"));
    }
    let text = std::str::from_utf8(value).map_err(|_| X509Error("bad time"))?;
    let (year, rest) = match tag {
        TAG_UTC_TIME if text.len() == 13 => {
            let yy = digits(&text[0..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        TAG_GENERALIZED_TIME if text.len() == 15 => (digits(&text[0..4])?, &text[4..]),
        _ => return Err(X509Error("bad time")),
    };
    if !rest.ends_with('Z') {
        return Err(X509Error("time is not UTC"));
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(X509Error("bad time"));
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second.min(60))
}

fn digits(text: &str) -> Result<i64, X509Error> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(X509Error("bad time"));
    }
    text.parse().map_err(|_| X509Error("bad time"))
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC time, e.g. `2026-11-28T12:00:00Z`.
pub fn format_utc(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    // Inverse of days_from_civil (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_convert_to_unix_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 28), 20_785);
    }

    #[test]
    fn utc_formatting_inverts_the_civil_conversion() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        let t = days_from_civil(2026, 11, 28) * 86_400 + 3_723;
        assert_eq!(format_utc(t), "2026-11-28T01:02:03Z");
    }

    #[test]
    fn a_non_ascii_validity_time_is_an_error_not_a_panic() {
        // A UTCTime of 13 bytes whose 4th byte starts a multi-byte UTF-8 character (found by
        // libFuzzer: slicing the text at byte 4 panicked).
        let mut reader = Reader::new(b"\x17\x0d112\xe9\xa6\xad4738Z\x00\x00");
        assert_eq!(read_time(&mut reader), Err(X509Error("bad time")));
    }

    #[test]
    fn long_form_lengths_of_one_to_four_bytes_are_read_big_endian() {
        // X.690 §8.1.3.5: the long form's first octet counts the length octets that follow.
        let value = vec![0xabu8; 0x0102];
        for header in [
            &[0x04, 0x82, 0x01, 0x02][..],
            &[0x04, 0x83, 0x00, 0x01, 0x02][..],
        ] {
            let der = [header, &value[..], &[0x05, 0x00]].concat();
            let mut reader = Reader::new(&der);
            assert_eq!(reader.read(0x04), Ok(&value[..]), "{header:02x?}");
            assert_eq!(reader.read(0x05), Ok(&[][..]));
            assert!(reader.is_empty());
        }
        let mut reader = Reader::new(&[0x04, 0x81, 0x01, 0x7f]);
        assert_eq!(reader.read(0x04), Ok(&[0x7f][..]));
        // Four length octets: 0x01000000 bytes announced, three present.
        let mut reader = Reader::new(&[0x04, 0x84, 0x01, 0x00, 0x00, 0x00, 1, 2, 3]);
        assert_eq!(reader.read(0x04), Err(X509Error("truncated")));
        let mut reader = Reader::new(&[0x04, 0x85, 0, 0, 0, 0, 1, 0]);
        assert_eq!(
            reader.read(0x04),
            Err(X509Error("unsupported length encoding"))
        );
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error_not_a_panic() {
        assert!(parse_certificate(&[]).is_err());
        assert!(parse_certificate(&[0x30]).is_err());
        assert!(parse_certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(parse_certificate(&[0x30, 0x80]).is_err());
        assert!(parse_certificate(&[0x1f, 0x01, 0x00]).is_err());
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = parse_certificate(&bytes);
        }
    }
}
