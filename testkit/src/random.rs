//! Random identifiers (nonces, tags, branches, cnonces) from the rustls crypto provider's CSPRNG.

/// Fills `buf` with random bytes.
///
/// The provider's generator only fails if the operating system cannot provide entropy; test tooling
/// cannot continue in that case, so this panics with a clear message.
pub(crate) fn fill(buf: &mut [u8]) {
    crate::tls::default_provider()
        .secure_random
        .fill(buf)
        .expect("the operating system provides random bytes");
}

/// Returns `n_bytes` random bytes rendered as lowercase hex (2 * `n_bytes` characters).
pub(crate) fn hex(n_bytes: usize) -> String {
    let mut buf = vec![0u8; n_bytes];
    fill(&mut buf);
    to_hex(&buf)
}

/// Lowercase hex rendering of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_has_twice_the_length_and_differs_between_calls() {
        let a = hex(8);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, hex(8));
    }

    #[test]
    fn to_hex_is_lowercase() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
