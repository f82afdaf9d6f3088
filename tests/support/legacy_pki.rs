//! P-CSCF certificates rcgen cannot (or will not) make, generated with the real `openssl`
//! command line tool: an RSA-1024 leaf and a leaf signed with ECDSA-SHA1, both under their
//! own throw-away root (ECDSA P-256, SHA-256) that the UE is told to trust. The files are
//! served by OpenSSL `s_server`; [`server_config`] serves the same files from a rustls server
//! (the simulator side).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use imstls_testkit::tls::TlsVersions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::Signer;
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use rustls::{ServerConfig, SignatureAlgorithm, SignatureScheme};

use super::openssl::tempdir::TempDir;
use super::SERVER_NAME;

/// One leaf: PEM files (leaf then root, as s_server's `-cert_chain` wants) and its key.
pub struct LegacyLeaf {
    pub chain: PathBuf,
    pub key: PathBuf,
}

pub struct LegacyPki {
    _dir: TempDir,
    pub root_pem: String,
    pub rsa1024: LegacyLeaf,
    pub sha1: LegacyLeaf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .expect("the openssl command line tool runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generated once per test binary.
pub fn legacy_pki() -> &'static LegacyPki {
    static PKI: OnceLock<LegacyPki> = OnceLock::new();
    PKI.get_or_init(generate)
}

fn generate() -> LegacyPki {
    let dir = TempDir::new();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "30",
            "-subj",
            "/CN=imstls legacy test root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    std::fs::write(
        d.join("leaf.ext"),
        format!(
            "subjectAltName=DNS:{SERVER_NAME},URI:sip:{SERVER_NAME}\n\
             extendedKeyUsage=serverAuth\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n"
        ),
    )
    .unwrap();
    let leaf = |name: &str, newkey: &[&str], digest: &str| -> LegacyLeaf {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let cert = format!("{name}.pem");
        let mut req = vec!["req", "-newkey"];
        req.extend_from_slice(newkey);
        req.extend_from_slice(&[
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=pcscf.ims.test",
        ]);
        openssl(d, &req);
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-set_serial",
                "7",
                "-out",
                &cert,
                "-days",
                "30",
                digest,
                "-extfile",
                "leaf.ext",
            ],
        );
        let chain = d.join(format!("{name}-chain.pem"));
        let mut pem = std::fs::read(d.join(&cert)).unwrap();
        pem.extend(std::fs::read(d.join("root.pem")).unwrap());
        std::fs::write(&chain, pem).unwrap();
        LegacyLeaf {
            chain,
            key: d.join(key),
        }
    };
    let rsa1024 = leaf("rsa1024", &["rsa:1024"], "-sha256");
    let sha1 = leaf(
        "sha1",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "-sha1",
    );
    LegacyPki {
        root_pem: std::fs::read_to_string(d.join("root.pem")).unwrap(),
        _dir: dir,
        rsa1024,
        sha1,
    }
}

/// A rustls server (the simulator's provider) presenting `leaf`. aws-lc-rs refuses to load
/// an RSA key under 2048 bits, so an RSA-1024 leaf signs through the `openssl` command line
/// tool ([`CliRsaKey`]): the UE sees a genuine RSA-1024 signature, as from OpenSSL itself.
pub fn server_config(
    leaf: &LegacyLeaf,
    versions: TlsVersions,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let general = |e: &dyn std::fmt::Display| rustls::Error::General(e.to_string());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&leaf.chain)
        .map_err(|e| general(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| general(&e))?;
    let key = PrivateKeyDer::from_pem_file(&leaf.key).map_err(|e| general(&e))?;
    let provider = imstls_testkit::tls::provider();
    let signing_key: Arc<dyn SigningKey> = match provider.key_provider.load_private_key(key) {
        Ok(key) => key,
        Err(_) => Arc::new(CliRsaKey {
            key: leaf.key.clone(),
        }),
    };
    let certified = CertifiedKey::new(chain, signing_key);
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions.protocol_versions())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    Ok(Arc::new(config))
}

/// An RSA private key that signs (RSASSA-PSS, SHA-256) through `openssl dgst`.
#[derive(Debug)]
pub struct CliRsaKey {
    key: PathBuf,
}

impl SigningKey for CliRsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::RSA_PSS_SHA256)
            .then(|| Box::new(CliRsaSigner(self.key.clone())) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

#[derive(Debug)]
struct CliRsaSigner(PathBuf);

impl Signer for CliRsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.0)
            .args([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ])
            .env("OPENSSL_CONF", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(message)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let out = child
            .wait_with_output()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        if !out.status.success() || out.stdout.is_empty() {
            return Err(rustls::Error::General("openssl dgst -sign failed".into()));
        }
        Ok(out.stdout)
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::RSA_PSS_SHA256
    }
}
