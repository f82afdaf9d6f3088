//! A test-only ClientHello parser: what the UE offers, read from the bytes it put on the wire.

/// The parts of a ClientHello the O.2.1 profile constrains.
#[derive(Debug)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub cipher_suites: Vec<u16>,
    pub compression_methods: Vec<u8>,
    pub supported_versions: Vec<u16>,
    pub supported_groups: Vec<u16>,
    pub key_share_groups: Vec<u16>,
    pub server_name: Option<String>,
    pub extensions: Vec<u16>,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Parses the first TLS record of `wire`, which must be a handshake record holding a whole
/// ClientHello.
pub fn parse(wire: &[u8]) -> ClientHello {
    assert_eq!(wire[0], 22, "first record is a handshake record");
    let record_len = u16_at(wire, 3) as usize;
    let hs = &wire[5..5 + record_len];
    assert_eq!(hs[0], 1, "handshake type client_hello");
    let body_len = ((hs[1] as usize) << 16) | ((hs[2] as usize) << 8) | hs[3] as usize;
    let b = &hs[4..4 + body_len];
    let legacy_version = u16_at(b, 0);
    let mut i = 2 + 32; // version + random
    let sid_len = b[i] as usize;
    i += 1 + sid_len;
    let suites_len = u16_at(b, i) as usize;
    i += 2;
    let cipher_suites = (0..suites_len / 2).map(|k| u16_at(b, i + 2 * k)).collect();
    i += suites_len;
    let comp_len = b[i] as usize;
    i += 1;
    let compression_methods = b[i..i + comp_len].to_vec();
    i += comp_len;
    let ext_total = u16_at(b, i) as usize;
    i += 2;
    let end = i + ext_total;
    let mut hello = ClientHello {
        legacy_version,
        cipher_suites,
        compression_methods,
        supported_versions: vec![],
        supported_groups: vec![],
        key_share_groups: vec![],
        server_name: None,
        extensions: vec![],
    };
    while i < end {
        let ty = u16_at(b, i);
        let len = u16_at(b, i + 2) as usize;
        let data = &b[i + 4..i + 4 + len];
        hello.extensions.push(ty);
        match ty {
            0 => {
                // server_name: list len(2) type(1) name len(2) name
                let name_len = u16_at(data, 3) as usize;
                hello.server_name = Some(String::from_utf8_lossy(&data[5..5 + name_len]).into());
            }
            10 => {
                let n = u16_at(data, 0) as usize;
                hello.supported_groups = (0..n / 2).map(|k| u16_at(data, 2 + 2 * k)).collect();
            }
            43 => {
                let n = data[0] as usize;
                hello.supported_versions = (0..n / 2).map(|k| u16_at(data, 1 + 2 * k)).collect();
            }
            51 => {
                let mut j = 2;
                while j < data.len() {
                    hello.key_share_groups.push(u16_at(data, j));
                    let klen = u16_at(data, j + 2) as usize;
                    j += 4 + klen;
                }
            }
            _ => {}
        }
        i += 4 + len;
    }
    hello
}
