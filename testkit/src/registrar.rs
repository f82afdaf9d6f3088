//! A sans-IO SIP registrar (RFC 3261 §10.3) with Digest authentication (RFC 7616) and RFC 5626
//! outbound support: requests in, responses out, no clock, no I/O.
//!
//! Bindings do not expire by time (the registrar has no clock); they end with expires=0 or when
//! their flow closes ([`Registrar::flow_closed`] marks them unusable, as RFC 5626 §5.3 does).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::digest::{Algorithm, Authorization, Challenge};
use crate::sip::{reason_phrase, response_to, unquote, NameAddr, SipMessage};

/// The IMPI of the default registrar user (see [`RegistrarConfig::default`]).
pub const DEFAULT_IMPI: &str = "alice@ims.test";
/// The IMPU matching [`DEFAULT_IMPI`].
pub const DEFAULT_IMPU: &str = "sip:alice@ims.test";
/// The password of the default registrar user.
pub const DEFAULT_PASSWORD: &str = "alice-secret";
/// How many issued nonces are remembered; older ones become unknown (→ 401 stale=true).
const MAX_NONCES: usize = 1024;

/// Identifies the transport flow (connection) a request arrived on.
pub type FlowId = u64;

/// Registrar behaviour.
#[derive(Clone)]
pub struct RegistrarConfig {
    /// Digest realm and home domain (default `ims.test`).
    pub realm: String,
    /// Known subscribers: (IMPI = Digest username, password).
    pub users: Vec<(String, String)>,
    /// Algorithm challenged with (default MD5).
    pub algorithm: Algorithm,
    /// Offer `qop="auth"` (default true); false gives an RFC 2069 style challenge.
    pub qop_auth: bool,
    /// Expiry granted when the REGISTER asks for none (default 3600 s).
    pub default_expires: u32,
    /// Largest expiry granted (default 7200 s); larger requests are cut down to it.
    pub max_expires: u32,
    /// RFC 5626 §5.4: when set, a 200 OK to a REGISTER with `Supported: outbound` and a `reg-id`
    /// Contact carries `Require: outbound` and `Flow-Timer: N`.
    pub flow_timer: Option<u32>,
    /// One-shot: the next correctly authenticated REGISTER gets 401 with stale=true.
    pub stale_next: bool,
    /// When set, every REGISTER is answered with this status (e.g. 403, 503).
    pub reject_all_with: Option<u16>,
    /// `Retry-After` seconds added to rejections made through `reject_all_with`.
    pub retry_after: Option<u32>,
}

impl Default for RegistrarConfig {
    /// Realm `ims.test`, one user [`DEFAULT_IMPI`] / [`DEFAULT_PASSWORD`], MD5 with qop=auth,
    /// expires 3600 (max 7200), no Flow-Timer, no faults.
    fn default() -> Self {
        RegistrarConfig {
            realm: "ims.test".to_owned(),
            users: vec![(DEFAULT_IMPI.to_owned(), DEFAULT_PASSWORD.to_owned())],
            algorithm: Algorithm::Md5,
            qop_auth: true,
            default_expires: 3600,
            max_expires: 7200,
            flow_timer: None,
            stale_next: false,
            reject_all_with: None,
            retry_after: None,
        }
    }
}

impl fmt::Debug for RegistrarConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("RegistrarConfig")
            .field("realm", &self.realm)
            .field("users", &users)
            .field("algorithm", &self.algorithm)
            .field("qop_auth", &self.qop_auth)
            .field("default_expires", &self.default_expires)
            .field("max_expires", &self.max_expires)
            .field("flow_timer", &self.flow_timer)
            .field("stale_next", &self.stale_next)
            .field("reject_all_with", &self.reject_all_with)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

/// One registered contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The address-of-record (To URI of the REGISTER).
    pub aor: String,
    /// The authenticated IMPI.
    pub impi: String,
    /// The Contact URI.
    pub contact: String,
    /// `+sip.instance` (unquoted), if any.
    pub instance_id: Option<String>,
    /// `reg-id`, if any.
    pub reg_id: Option<u32>,
    /// Granted expiry in seconds.
    pub expires: u32,
    /// The flow the binding was made on.
    pub flow: FlowId,
    /// False once that flow has closed.
    pub flow_alive: bool,
}

/// Where a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// The flow (connection) it arrived on.
    pub flow: FlowId,
    /// It is the first SIP request on that flow.
    pub first_on_connection: bool,
}

/// What the registrar noticed about a REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterInfo {
    /// The REGISTER carried an `Authorization` header with a non-empty response.
    pub authorized: bool,
    /// The expiry the REGISTER asked for (Contact `expires` param, else `Expires`), if any.
    pub expires: Option<u32>,
    /// `Supported: outbound` and a Contact with `reg-id` (RFC 5626).
    pub has_outbound: bool,
    /// It was the first SIP request on its flow.
    pub first_on_connection: bool,
    /// The status code answered.
    pub status: u16,
}

/// The registrar's answer to one request.
#[derive(Clone, Debug)]
pub struct Handled {
    /// The response to send (`None` for ACK).
    pub response: Option<SipMessage>,
    /// Set when the request was a REGISTER.
    pub register: Option<RegisterInfo>,
}

/// Counters of what the registrar has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistrarStats {
    /// REGISTER requests received.
    pub registers: usize,
    /// 401 challenges sent (fresh and stale).
    pub challenges: usize,
    /// 401 challenges with stale=true.
    pub stale_challenges: usize,
    /// 200 OK to REGISTER.
    pub successes: usize,
    /// Other final responses to REGISTER (403, 400, `reject_all_with` ...).
    pub rejections: usize,
}

/// The sans-IO registrar.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    nonces: HashMap<String, Algorithm>,
    nonce_order: VecDeque<String>,
    bindings: Vec<Binding>,
    stats: RegistrarStats,
}

impl Registrar {
    /// A registrar with no bindings.
    pub fn new(config: RegistrarConfig) -> Registrar {
        Registrar {
            config,
            nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            bindings: Vec::new(),
            stats: RegistrarStats::default(),
        }
    }

    /// The current configuration.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Mutable access to the configuration (knobs take effect on the next request).
    pub fn config_mut(&mut self) -> &mut RegistrarConfig {
        &mut self.config
    }

    /// Makes the next correctly authenticated REGISTER get 401 stale=true (one shot).
    pub fn set_stale_next(&mut self) {
        self.config.stale_next = true;
    }

    /// Answers every REGISTER with `status` (or back to normal with `None`).
    pub fn set_reject_all_with(&mut self, status: Option<u16>) {
        self.config.reject_all_with = status;
    }

    /// Sets the Flow-Timer advertised to outbound registrations.
    pub fn set_flow_timer(&mut self, seconds: Option<u32>) {
        self.config.flow_timer = seconds;
    }

    /// Forgets every issued nonce: the next authenticated REGISTER gets 401 stale=true.
    pub fn forget_nonces(&mut self) {
        self.nonces.clear();
        self.nonce_order.clear();
    }

    /// All bindings, including those whose flow has closed.
    pub fn bindings(&self) -> Vec<Binding> {
        self.bindings.clone()
    }

    /// Whether `aor` has a binding on a live flow (URI compared case-insensitively).
    pub fn is_registered(&self, aor: &str) -> bool {
        self.bindings
            .iter()
            .any(|b| b.flow_alive && b.aor.eq_ignore_ascii_case(aor))
    }

    /// Whether `flow` carries a live binding.
    pub fn is_flow_registered(&self, flow: FlowId) -> bool {
        self.bindings.iter().any(|b| b.flow_alive && b.flow == flow)
    }

    /// Counters.
    pub fn stats(&self) -> RegistrarStats {
        self.stats
    }

    /// Marks the bindings made on `flow` unusable (the connection closed).
    pub fn flow_closed(&mut self, flow: FlowId) {
        for b in self.bindings.iter_mut().filter(|b| b.flow == flow) {
            b.flow_alive = false;
        }
    }

    /// Handles one request. REGISTER goes through authentication and binding; any other
    /// request gets 200 when its flow is registered, else 403; ACK gets nothing.
    pub fn handle_request(&mut self, request: &SipMessage, ctx: RequestContext) -> Handled {
        match request.method() {
            Some("REGISTER") => {
                self.stats.registers += 1;
                let (response, mut info) = self.register(request, ctx);
                let status = response.status().unwrap_or(500);
                info.status = status;
                match status {
                    200 => self.stats.successes += 1,
                    401 => self.stats.challenges += 1,
                    _ => self.stats.rejections += 1,
                }
                Handled {
                    response: Some(response),
                    register: Some(info),
                }
            }
            Some("ACK") => Handled {
                response: None,
                register: None,
            },
            Some(_) => {
                let code = if self.is_flow_registered(ctx.flow) {
                    200
                } else {
                    403
                };
                Handled {
                    response: Some(respond(request, code)),
                    register: None,
                }
            }
            None => Handled {
                response: None,
                register: None,
            },
        }
    }

    fn register(&mut self, req: &SipMessage, ctx: RequestContext) -> (SipMessage, RegisterInfo) {
        let contacts: Vec<NameAddr> = req
            .header_list("Contact")
            .into_iter()
            .filter_map(NameAddr::parse)
            .collect();
        let header_expires = req
            .header("Expires")
            .and_then(|v| v.trim().parse::<u32>().ok());
        let contact_expires = contacts
            .first()
            .and_then(|c| c.param("expires").flatten())
            .and_then(|v| v.parse::<u32>().ok());
        let has_outbound = req.has_option("Supported", "outbound")
            && contacts
                .iter()
                .any(|c| c.param("reg-id").flatten().is_some());
        let authorization = req.header("Authorization");
        let mut info = RegisterInfo {
            authorized: authorization
                .and_then(|a| Authorization::parse(a).ok())
                .is_some_and(|a| !a.response.is_empty()),
            expires: contact_expires.or(header_expires),
            has_outbound,
            first_on_connection: ctx.first_on_connection,
            status: 0,
        };

        if let Some(code) = self.config.reject_all_with {
            let mut resp = respond(req, code);
            if let Some(secs) = self.config.retry_after {
                resp.push_header("Retry-After", &secs.to_string());
            }
            return (resp, info);
        }

        let Some(authorization) = authorization else {
            return (self.challenge(req, false), info);
        };
        let auth = match Authorization::parse(authorization) {
            Ok(a) => a,
            Err(_) => return (respond(req, 400), info),
        };
        if auth.nonce.is_empty() || auth.response.is_empty() {
            info.authorized = false;
            return (self.challenge(req, false), info);
        }
        let Some(password) = self
            .config
            .users
            .iter()
            .find(|(impi, _)| *impi == auth.username)
            .map(|(_, pw)| pw.clone())
        else {
            return (respond(req, 403), info);
        };
        let Some(&nonce_alg) = self.nonces.get(&auth.nonce) else {
            return (self.challenge(req, true), info);
        };
        if nonce_alg != auth.algorithm || !auth.verify("REGISTER", &password) {
            return (respond(req, 403), info);
        }
        if self.config.stale_next {
            self.config.stale_next = false;
            self.nonces.remove(&auth.nonce);
            self.nonce_order.retain(|n| *n != auth.nonce);
            return (self.challenge(req, true), info);
        }

        let aor = req
            .header("To")
            .and_then(NameAddr::parse)
            .map(|na| na.uri)
            .unwrap_or_default();
        self.apply_bindings(&aor, &auth.username, &contacts, header_expires, ctx.flow);

        let mut resp = respond(req, 200);
        for b in self
            .bindings
            .iter()
            .filter(|b| b.aor.eq_ignore_ascii_case(&aor))
        {
            let mut contact = contacts
                .iter()
                .find(|c| c.uri == b.contact)
                .cloned()
                .unwrap_or_else(|| NameAddr::from_uri(&b.contact));
            contact.set_param("expires", Some(&b.expires.to_string()));
            resp.push_header("Contact", &contact.to_string());
        }
        let granted = self
            .bindings
            .iter()
            .find(|b| contacts.first().is_some_and(|c| c.uri == b.contact))
            .map_or(0, |b| b.expires);
        resp.push_header("Expires", &granted.to_string());
        if !aor.is_empty() {
            resp.push_header("P-Associated-URI", &format!("<{aor}>"));
        }
        if let (true, Some(secs), true) = (has_outbound, self.config.flow_timer, granted > 0) {
            resp.push_header("Require", "outbound");
            resp.push_header("Flow-Timer", &secs.to_string());
        }
        (resp, info)
    }

    fn apply_bindings(
        &mut self,
        aor: &str,
        impi: &str,
        contacts: &[NameAddr],
        header_expires: Option<u32>,
        flow: FlowId,
    ) {
        for contact in contacts {
            if contact.uri == "*" {
                if header_expires == Some(0) {
                    self.bindings.retain(|b| !b.aor.eq_ignore_ascii_case(aor));
                }
                continue;
            }
            let expires = contact
                .param("expires")
                .flatten()
                .and_then(|v| v.parse::<u32>().ok())
                .or(header_expires)
                .unwrap_or(self.config.default_expires)
                .min(self.config.max_expires);
            let instance_id = contact
                .param("+sip.instance")
                .flatten()
                .map(|v| unquote(v).to_owned());
            let reg_id = contact
                .param("reg-id")
                .flatten()
                .and_then(|v| v.parse::<u32>().ok());
            let same = |b: &Binding| {
                b.aor.eq_ignore_ascii_case(aor)
                    && match (&instance_id, reg_id, &b.instance_id, b.reg_id) {
                        (Some(i), Some(r), Some(bi), Some(br)) => i == bi && r == br,
                        _ => b.contact == contact.uri,
                    }
            };
            self.bindings.retain(|b| !same(b));
            if expires > 0 {
                self.bindings.push(Binding {
                    aor: aor.to_owned(),
                    impi: impi.to_owned(),
                    contact: contact.uri.clone(),
                    instance_id,
                    reg_id,
                    expires,
                    flow,
                    flow_alive: true,
                });
            }
        }
    }

    fn challenge(&mut self, req: &SipMessage, stale: bool) -> SipMessage {
        let nonce = crate::random::hex(16);
        if self.nonce_order.len() >= MAX_NONCES {
            if let Some(old) = self.nonce_order.pop_front() {
                self.nonces.remove(&old);
            }
        }
        self.nonces.insert(nonce.clone(), self.config.algorithm);
        self.nonce_order.push_back(nonce.clone());
        let mut challenge = Challenge::new(
            &self.config.realm,
            &nonce,
            self.config.algorithm,
            self.config.qop_auth,
        );
        challenge.opaque = Some(crate::random::hex(8));
        challenge.stale = stale;
        if stale {
            self.stats.stale_challenges += 1;
        }
        let mut resp = respond(req, 401);
        resp.push_header("WWW-Authenticate", &challenge.to_header_value());
        resp
    }
}

/// A response with the standard reason phrase and a fresh To-tag.
fn respond(req: &SipMessage, code: u16) -> SipMessage {
    response_to(req, code, reason_phrase(code), &crate::random::hex(6))
}

/// A [`Registrar`] shared by every connection of a simulator.
#[derive(Clone, Debug)]
pub struct SharedRegistrar {
    inner: Arc<Mutex<Registrar>>,
}

impl SharedRegistrar {
    /// A new shared registrar.
    pub fn new(config: RegistrarConfig) -> SharedRegistrar {
        SharedRegistrar {
            inner: Arc::new(Mutex::new(Registrar::new(config))),
        }
    }

    /// Locks the registrar (a panic in another holder does not make it unusable).
    pub fn lock(&self) -> MutexGuard<'_, Registrar> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`Registrar::set_stale_next`].
    pub fn set_stale_next(&self) {
        self.lock().set_stale_next();
    }

    /// See [`Registrar::set_reject_all_with`].
    pub fn set_reject_all_with(&self, status: Option<u16>) {
        self.lock().set_reject_all_with(status);
    }

    /// See [`Registrar::set_flow_timer`].
    pub fn set_flow_timer(&self, seconds: Option<u32>) {
        self.lock().set_flow_timer(seconds);
    }

    /// See [`Registrar::bindings`].
    pub fn bindings(&self) -> Vec<Binding> {
        self.lock().bindings()
    }

    /// See [`Registrar::is_registered`].
    pub fn is_registered(&self, aor: &str) -> bool {
        self.lock().is_registered(aor)
    }

    /// See [`Registrar::stats`].
    pub fn stats(&self) -> RegistrarStats {
        self.lock().stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ua::{Ua, UaConfig, UaOutcome};

    const FLOW: RequestContext = RequestContext {
        flow: 1,
        first_on_connection: true,
    };
    const LATER: RequestContext = RequestContext {
        flow: 1,
        first_on_connection: false,
    };

    fn exchange(
        reg: &mut Registrar,
        ua: &mut Ua,
        req: Vec<u8>,
        ctx: RequestContext,
    ) -> (UaOutcome, RegisterInfo) {
        let req = SipMessage::parse(&req).unwrap();
        let handled = reg.handle_request(&req, ctx);
        let resp = SipMessage::parse(&handled.response.unwrap().to_bytes()).unwrap();
        (ua.handle_response(&resp), handled.register.unwrap())
    }

    fn register(reg: &mut Registrar, ua: &mut Ua) -> UaOutcome {
        let req = ua.register_request(None);
        let (outcome, info) = exchange(reg, ua, req, FLOW);
        assert_eq!(outcome, UaOutcome::Challenged { stale: false });
        assert!(!info.authorized);
        assert!(info.first_on_connection);
        let req = ua.next_register();
        exchange(reg, ua, req, LATER).0
    }

    #[test]
    fn challenge_then_register_then_deregister() {
        for algorithm in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha256Sess] {
            let mut reg = Registrar::new(RegistrarConfig {
                algorithm,
                ..RegistrarConfig::default()
            });
            let mut ua = Ua::new(UaConfig {
                expires: 600,
                ..UaConfig::default()
            });
            assert_eq!(
                register(&mut reg, &mut ua),
                UaOutcome::Registered {
                    expires: 600,
                    flow_timer: None
                }
            );
            assert!(reg.is_registered(DEFAULT_IMPU));
            assert!(reg.is_flow_registered(1));
            let b = &reg.bindings()[0];
            assert_eq!(b.reg_id, Some(1));
            assert_eq!(
                b.instance_id.as_deref(),
                Some(&*format!("<{}>", ua.config().instance_id))
            );

            // Re-REGISTER with the cached challenge (nc=2) still succeeds.
            let req = ua.next_register();
            assert!(matches!(
                exchange(&mut reg, &mut ua, req, LATER).0,
                UaOutcome::Registered { .. }
            ));
            assert_eq!(reg.bindings().len(), 1);

            let req = ua.next_deregister();
            let (outcome, info) = exchange(&mut reg, &mut ua, req, LATER);
            assert_eq!(outcome, UaOutcome::Deregistered);
            assert_eq!(info.expires, Some(0));
            assert!(!reg.is_registered(DEFAULT_IMPU));
        }
    }

    #[test]
    fn wrong_password_is_forbidden() {
        let mut reg = Registrar::new(RegistrarConfig::default());
        let mut ua = Ua::new(UaConfig {
            password: "wrong".into(),
            ..UaConfig::default()
        });
        assert_eq!(
            register(&mut reg, &mut ua),
            UaOutcome::Failed {
                status: 403,
                retry_after: None
            }
        );
        assert_eq!(reg.stats().rejections, 1);
    }

    #[test]
    fn unknown_user_is_forbidden() {
        let mut reg = Registrar::new(RegistrarConfig::default());
        let mut ua = Ua::new(UaConfig {
            impi: "mallory@ims.test".into(),
            ..UaConfig::default()
        });
        assert!(matches!(
            register(&mut reg, &mut ua),
            UaOutcome::Failed { status: 403, .. }
        ));
    }

    #[test]
    fn stale_next_and_unknown_nonces_get_stale_challenges() {
        let mut reg = Registrar::new(RegistrarConfig::default());
        let mut ua = Ua::new(UaConfig::default());
        assert!(matches!(
            register(&mut reg, &mut ua),
            UaOutcome::Registered { .. }
        ));

        reg.set_stale_next();
        let req = ua.next_register();
        assert_eq!(
            exchange(&mut reg, &mut ua, req, LATER).0,
            UaOutcome::Challenged { stale: true }
        );
        let req = ua.next_register();
        assert!(matches!(
            exchange(&mut reg, &mut ua, req, LATER).0,
            UaOutcome::Registered { .. }
        ));

        reg.forget_nonces();
        let req = ua.next_register();
        assert_eq!(
            exchange(&mut reg, &mut ua, req, LATER).0,
            UaOutcome::Challenged { stale: true }
        );
        assert_eq!(reg.stats().stale_challenges, 2);
    }

    #[test]
    fn outbound_registrations_get_a_flow_timer() {
        let mut reg = Registrar::new(RegistrarConfig {
            flow_timer: Some(120),
            max_expires: 300,
            ..RegistrarConfig::default()
        });
        let mut ua = Ua::new(UaConfig::default());
        assert_eq!(
            register(&mut reg, &mut ua),
            UaOutcome::Registered {
                expires: 300,
                flow_timer: Some(120)
            }
        );
    }

    #[test]
    fn reject_all_with_answers_every_register() {
        let mut reg = Registrar::new(RegistrarConfig {
            reject_all_with: Some(503),
            retry_after: Some(30),
            ..RegistrarConfig::default()
        });
        let mut ua = Ua::new(UaConfig::default());
        let req = ua.register_request(None);
        assert_eq!(
            exchange(&mut reg, &mut ua, req, FLOW).0,
            UaOutcome::Failed {
                status: 503,
                retry_after: Some(30)
            }
        );
    }

    #[test]
    fn other_requests_need_a_registered_flow() {
        let mut reg = Registrar::new(RegistrarConfig::default());
        let mut ua = Ua::new(UaConfig::default());
        let msg = SipMessage::parse(&ua.request("MESSAGE", "sip:bob@ims.test", b"hi")).unwrap();
        let status =
            |reg: &mut Registrar, ctx| reg.handle_request(&msg, ctx).response.unwrap().status();
        assert_eq!(status(&mut reg, FLOW), Some(403));
        assert!(matches!(
            register(&mut reg, &mut ua),
            UaOutcome::Registered { .. }
        ));
        assert_eq!(status(&mut reg, LATER), Some(200));
        let other_flow = RequestContext {
            flow: 2,
            first_on_connection: true,
        };
        assert_eq!(status(&mut reg, other_flow), Some(403));
        reg.flow_closed(1);
        assert_eq!(status(&mut reg, LATER), Some(403));
        assert!(!reg.is_registered(DEFAULT_IMPU));
    }

    #[test]
    fn malformed_authorization_is_a_bad_request() {
        let mut reg = Registrar::new(RegistrarConfig::default());
        let mut ua = Ua::new(UaConfig::default());
        let mut req = SipMessage::parse(&ua.register_request(None)).unwrap();
        req.push_header("Authorization", "Digest username=\"unterminated");
        let handled = reg.handle_request(&req, FLOW);
        assert_eq!(handled.response.unwrap().status(), Some(400));
    }
}
