//! The TLS key log for Wireshark: NSS key-log lines ("`LABEL <client random hex> <secret
//! hex>`") written to a sink the application chose explicitly. Anyone holding these lines
//! can decrypt the captured flow, SIP digest and all: a debugging aid, off by default.
//!
//! Unlike rustls's `KeyLogFile`, nothing here reads `SSLKEYLOGFILE` or any other variable:
//! only [`UeConfigBuilder::key_log_file`](super::UeConfigBuilder::key_log_file) or
//! [`UeConfigBuilder::key_log_sink`](super::UeConfigBuilder::key_log_sink) turn it on.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use super::error::ConfigError;

/// Where key-log lines go. `line` is one NSS key-log line without its newline; it holds a
/// TLS secret, so copy it nowhere else and wipe what you keep.
pub trait KeyLogSink: Send + Sync {
    /// Takes one line. Called from within TLS processing: return quickly.
    fn write_line(&self, line: &str);
}

/// Appends key-log lines to a file (created with mode 0600 on Unix).
pub(crate) struct KeyLogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl KeyLogFile {
    pub(crate) fn open(path: &Path) -> Result<Self, ConfigError> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|e| ConfigError::Io {
            field: "key_log",
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }
}

impl KeyLogSink for KeyLogFile {
    fn write_line(&self, line: &str) {
        let Ok(mut file) = self.file.lock() else {
            return;
        };
        let mut record = Zeroizing::new(Vec::with_capacity(line.len() + 1));
        record.extend_from_slice(line.as_bytes());
        record.push(b'\n');
        // One write per line so concurrent UEs sharing the file never interleave a line;
        // a failing write is dropped (the key log never takes a flow down).
        let _ = file.write_all(&record).and_then(|()| file.flush());
    }
}

impl fmt::Debug for KeyLogFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyLogFile({})", self.path.display())
    }
}

/// rustls's `KeyLog`, formatting NSS lines for the configured sink.
pub(crate) struct NssKeyLog {
    pub(crate) sink: Arc<dyn KeyLogSink>,
}

impl fmt::Debug for NssKeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NssKeyLog")
    }
}

impl rustls::KeyLog for NssKeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        self.sink
            .write_line(&nss_line(label, client_random, secret));
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// `LABEL <client_random hex> <secret hex>`, lowercase hex (the NSS key-log format).
pub(crate) fn nss_line(label: &str, client_random: &[u8], secret: &[u8]) -> Zeroizing<String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = Zeroizing::new(String::with_capacity(
        label.len() + 2 + 2 * (client_random.len() + secret.len()),
    ));
    line.push_str(label);
    for bytes in [client_random, secret] {
        line.push(' ');
        for byte in bytes {
            line.push(HEX[usize::from(byte >> 4)] as char);
            line.push(HEX[usize::from(byte & 0x0f)] as char);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_nss_format() {
        let line = nss_line("CLIENT_RANDOM", &[0xab; 32], &[0x01, 0xfe]);
        assert_eq!(
            line.as_str(),
            format!("CLIENT_RANDOM {} 01fe", "ab".repeat(32))
        );
    }
}
