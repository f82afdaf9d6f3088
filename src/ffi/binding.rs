//! `imstls_binding`: a snapshot of the binding the P-CSCF keeps for this UE (TS 33.203 O.2.2
//! / Q.1), for diagnostics.

use std::ffi::{c_char, CString};

use zeroize::Zeroize;

use crate::engine::Binding;

use super::boundary::{c_string, free_boxed, guard, opt_arg};

/// The O.2.2 binding: addresses and ports, IMPI and IMPUs, and the TLS parameters of the
/// flow. A snapshot taken by `imstls_ue_binding` / `imstls_driver_binding`: immutable, owned
/// by you, freed with `imstls_binding_free` (which zeroizes the identities).
///
/// It holds personal data (IMPI, IMPUs, the UE's address): do not log it. Strings are
/// NUL-terminated UTF-8 borrowed from the binding until it is freed; `""` when unknown.
pub struct imstls_binding {
    flow: u64,
    registered: bool,
    resumed: bool,
    pcscf: CString,
    local_addr: CString,
    remote_addr: CString,
    impi: CString,
    impus: Vec<CString>,
    tls_version: CString,
    cipher_suite: CString,
    kx_group: CString,
    peer_subject: CString,
    peer_sans: Vec<CString>,
    peer_not_after: i64,
}

impl imstls_binding {
    pub(crate) fn new(binding: &Binding) -> Self {
        let address = |a: Option<std::net::SocketAddr>| match a {
            Some(a) => address_c_string(a),
            None => c_string(""),
        };
        let peer = binding.tls.peer_certificate();
        let peer = peer.as_ref();
        Self {
            flow: binding.flow.0,
            registered: binding.registered,
            resumed: binding.tls.resumed,
            pcscf: c_string(&binding.pcscf),
            local_addr: address(binding.local_addr),
            remote_addr: address(binding.remote_addr),
            impi: secret_c_string(&binding.impi),
            impus: binding.impus.iter().map(|i| secret_c_string(i)).collect(),
            tls_version: c_string(binding.tls.version),
            cipher_suite: c_string(binding.tls.cipher_suite),
            kx_group: c_string(binding.tls.key_exchange_group.unwrap_or("")),
            peer_subject: c_string(
                peer.and_then(|p| p.subject_common_name.as_deref())
                    .unwrap_or(""),
            ),
            peer_sans: peer
                .map(|p| p.subject_alt_names.iter().map(|n| c_string(n)).collect())
                .unwrap_or_default(),
            peer_not_after: peer.map_or(0, |p| p.not_after),
        }
    }
}

/// A C string of personal data made without leaving a copy behind: one allocation of the
/// final size (room for the NUL, so `CString::new` keeps it), NULs replaced as `c_string`
/// does.
fn secret_c_string(text: &str) -> CString {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend(text.bytes().map(|b| if b == 0 { b'?' } else { b }));
    let buffer = bytes.as_ptr();
    let c = CString::new(bytes).expect("NULs were replaced");
    debug_assert_eq!(c.as_ptr().cast::<u8>(), buffer, "no reallocation");
    c
}

/// The UE's address (personal data) formatted on the stack, then copied once.
fn address_c_string(address: std::net::SocketAddr) -> CString {
    use std::io::Write as _;
    // "[ffff:...:ffff%4294967295]:65535" is 58 bytes.
    let mut buffer = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let c = match write!(cursor, "{address}") {
        Ok(()) => {
            let len = usize::try_from(cursor.position()).unwrap_or(0);
            std::str::from_utf8(&buffer[..len]).map_or_else(|_| c_string(""), secret_c_string)
        }
        Err(_) => c_string(""),
    };
    buffer.zeroize();
    c
}

impl Drop for imstls_binding {
    fn drop(&mut self) {
        let wipe = |s: &mut CString| {
            let mut bytes = std::mem::take(s).into_bytes();
            bytes.zeroize();
        };
        wipe(&mut self.impi);
        wipe(&mut self.local_addr);
        for impu in &mut self.impus {
            wipe(impu);
        }
    }
}

fn text(
    binding: *const imstls_binding,
    get: impl FnOnce(&imstls_binding) -> &CString,
) -> *const c_char {
    opt_arg(binding).map_or(c"".as_ptr(), |b| get(b).as_ptr())
}

/// The flow the binding is on.
///
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_flow(binding: *const imstls_binding) -> u64 {
    guard(|| opt_arg(binding).map_or(0, |b| b.flow))
}

/// True when the UE is registered on this flow.
///
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_registered(binding: *const imstls_binding) -> bool {
    guard(|| opt_arg(binding).is_some_and(|b| b.registered))
}

/// The P-CSCF candidate as configured, `host:port`.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_pcscf(binding: *const imstls_binding) -> *const c_char {
    guard(|| text(binding, |b| &b.pcscf))
}

/// The UE's address and port as reported for the flow (`"192.0.2.1:40000"`,
/// `"[2001:db8::1]:40000"`); `""` when unknown. Personal data.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_local_addr(binding: *const imstls_binding) -> *const c_char {
    guard(|| text(binding, |b| &b.local_addr))
}

/// The P-CSCF's address and port; `""` when unknown.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_remote_addr(binding: *const imstls_binding) -> *const c_char {
    guard(|| text(binding, |b| &b.remote_addr))
}

/// The private identity. Personal data.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_impi(binding: *const imstls_binding) -> *const c_char {
    guard(|| text(binding, |b| &b.impi))
}

/// How many public identities the registration carries.
///
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_impu_count(binding: *const imstls_binding) -> usize {
    guard(|| opt_arg(binding).map_or(0, |b| b.impus.len()))
}

/// The `index`-th public identity; NULL when out of range. Personal data.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_impu(
    binding: *const imstls_binding,
    index: usize,
) -> *const c_char {
    guard(|| {
        opt_arg(binding)
            .and_then(|b| b.impus.get(index))
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// `"TLSv1.3"` or `"TLSv1.2"`.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_tls_version(binding: *const imstls_binding) -> *const c_char {
    guard(|| text(binding, |b| &b.tls_version))
}

/// The IANA cipher suite name.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_cipher_suite(binding: *const imstls_binding) -> *const c_char {
    guard(|| text(binding, |b| &b.cipher_suite))
}

/// The key-exchange group (`""` on a TLS 1.2 resumption).
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_kx_group(binding: *const imstls_binding) -> *const c_char {
    guard(|| text(binding, |b| &b.kx_group))
}

/// True when the TLS handshake resumed a session.
///
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_resumed(binding: *const imstls_binding) -> bool {
    guard(|| opt_arg(binding).is_some_and(|b| b.resumed))
}

/// The P-CSCF certificate's subject commonName (diagnostics only: never used for matching);
/// `""` when absent or after a resumed handshake.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_peer_subject(binding: *const imstls_binding) -> *const c_char {
    guard(|| text(binding, |b| &b.peer_subject))
}

/// How many subjectAltName entries the P-CSCF certificate has (0 after a resumption).
///
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_peer_san_count(binding: *const imstls_binding) -> usize {
    guard(|| opt_arg(binding).map_or(0, |b| b.peer_sans.len()))
}

/// The `index`-th subjectAltName (`sip:` URI, DNS name or IP); NULL when out of range.
///
/// - Lifetime: borrowed from `binding`.
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_peer_san(
    binding: *const imstls_binding,
    index: usize,
) -> *const c_char {
    guard(|| {
        opt_arg(binding)
            .and_then(|b| b.peer_sans.get(index))
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// The P-CSCF certificate's notAfter, seconds since the Unix epoch (0 when unknown).
///
/// - Thread safety: any thread; the binding is immutable.
#[no_mangle]
pub extern "C" fn imstls_binding_peer_not_after(binding: *const imstls_binding) -> i64 {
    guard(|| opt_arg(binding).map_or(0, |b| b.peer_not_after))
}

/// Frees a binding snapshot, zeroizing the identities; NULL is a no-op.
///
/// - Thread safety: once, when no other thread reads it.
#[no_mangle]
pub extern "C" fn imstls_binding_free(binding: *mut imstls_binding) {
    guard(|| free_boxed(binding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_strings_are_built_in_place() {
        // The debug assertion inside checks that CString::new did not move the buffer.
        let c = secret_c_string("alice@ims.test\0x");
        assert_eq!(c.as_bytes(), b"alice@ims.test?x");
        assert_eq!(secret_c_string("").as_bytes(), b"");
    }

    #[test]
    fn addresses_are_formatted_without_a_heap_copy() {
        for address in [
            "192.0.2.1:40000",
            "[2001:db8::1]:5061",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
        ] {
            let parsed: std::net::SocketAddr = address.parse().unwrap();
            assert_eq!(
                address_c_string(parsed).to_str().unwrap(),
                parsed.to_string()
            );
        }
    }
}
