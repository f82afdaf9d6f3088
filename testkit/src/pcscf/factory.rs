//! [`PcscfFactory`]: what an in-memory test needs to open many [`PcscfCore`] connections to "the
//! same P-CSCF": one long-lived server config per certificate kind (so sessions resume), one
//! shared registrar, and flow numbering.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::ServerConfig;

use super::PcscfCore;
use crate::pki::{CertKind, TestPki};
use crate::registrar::{FlowId, RegistrarConfig, SharedRegistrar};
use crate::tls::{server_config, TlsVersions};

/// Opens simulated P-CSCF connections sharing configuration and registrar.
#[derive(Debug)]
pub struct PcscfFactory {
    pki: Arc<TestPki>,
    versions: TlsVersions,
    request_client_cert: bool,
    cert: CertKind,
    configs: HashMap<CertKind, Arc<ServerConfig>>,
    registrar: SharedRegistrar,
    flows: FlowId,
}

impl PcscfFactory {
    /// A factory serving `CertKind::Good` over TLS 1.2 and 1.3, with the default registrar.
    pub fn new(pki: Arc<TestPki>) -> PcscfFactory {
        PcscfFactory::with(pki, TlsVersions::Both, false, RegistrarConfig::default())
    }

    /// A factory with explicit TLS versions, CertificateRequest behaviour and registrar.
    pub fn with(
        pki: Arc<TestPki>,
        versions: TlsVersions,
        request_client_cert: bool,
        registrar: RegistrarConfig,
    ) -> PcscfFactory {
        PcscfFactory {
            pki,
            versions,
            request_client_cert,
            cert: CertKind::Good,
            configs: HashMap::new(),
            registrar: SharedRegistrar::new(registrar),
            flows: 0,
        }
    }

    /// The PKI.
    pub fn pki(&self) -> &Arc<TestPki> {
        &self.pki
    }

    /// The registrar shared by every connection.
    pub fn registrar(&self) -> SharedRegistrar {
        self.registrar.clone()
    }

    /// Serves `kind` on connections opened from now on.
    pub fn set_cert(&mut self, kind: CertKind) {
        self.cert = kind;
    }

    /// The long-lived server config for the current certificate kind.
    pub fn server_config(&mut self) -> Result<Arc<ServerConfig>, rustls::Error> {
        if let Some(config) = self.configs.get(&self.cert) {
            return Ok(config.clone());
        }
        let config = server_config(
            &self.pki,
            self.cert,
            self.versions,
            self.request_client_cert,
        )?;
        self.configs.insert(self.cert, config.clone());
        Ok(config)
    }

    /// A new connection (flow ids 1, 2, 3, ...).
    pub fn connection(&mut self) -> Result<PcscfCore, rustls::Error> {
        let config = self.server_config()?;
        self.flows += 1;
        let mut core = PcscfCore::new(config, self.registrar.clone(), self.flows)?;
        core.set_client_cert_requested(self.request_client_cert);
        Ok(core)
    }
}
