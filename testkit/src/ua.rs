//! A minimal SIP UA acting as "the SIP stack" on top of imstls: builds REGISTER (with RFC 5626
//! outbound Contact parameters and RFC 7616 Digest credentials), reads the registrar's answers,
//! and answers terminating requests.
//!
//! The password is kept in a [`Password`], zeroized on drop and never shown by `Debug`.

use std::fmt;
use std::net::SocketAddr;

use zeroize::Zeroizing;

use crate::digest::Challenge;
use crate::registrar::{DEFAULT_IMPI, DEFAULT_IMPU, DEFAULT_PASSWORD};
use crate::sip::{reason_phrase, response_to, unquote, NameAddr, SipMessage};

/// A secret string: zeroized when dropped, redacted in `Debug`.
#[derive(Clone, Default)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password(Zeroizing::new(s.to_owned()))
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password(Zeroizing::new(s))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Who the UA is and where it registers.
#[derive(Clone, Debug)]
pub struct UaConfig {
    /// Private identity: the Digest username.
    pub impi: String,
    /// Public identity: From/To of REGISTER, e.g. `sip:alice@ims.test`.
    pub impu: String,
    /// The Digest password.
    pub password: Password,
    /// Home domain / realm host: Request-URI `sip:<server_name>`.
    pub server_name: String,
    /// The local address written in Via and Contact.
    pub local_addr: SocketAddr,
    /// `+sip.instance` value, `urn:uuid:...`.
    pub instance_id: String,
    /// RFC 5626 `reg-id`.
    pub reg_id: u32,
    /// Expiry asked for, seconds.
    pub expires: u32,
}

impl Default for UaConfig {
    /// The registrar's default user ([`DEFAULT_IMPI`]) in `ims.test`, local address
    /// 127.0.0.1:5061, a random instance id, reg-id 1, expires 3600.
    fn default() -> Self {
        UaConfig {
            impi: DEFAULT_IMPI.to_owned(),
            impu: DEFAULT_IMPU.to_owned(),
            password: DEFAULT_PASSWORD.into(),
            server_name: "ims.test".to_owned(),
            local_addr: SocketAddr::from(([127, 0, 0, 1], 5061)),
            instance_id: random_urn_uuid(),
            reg_id: 1,
            expires: 3600,
        }
    }
}

/// What a response meant to the UA.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UaOutcome {
    /// 401/407 with a Digest challenge (stored; [`Ua::next_register`] answers it).
    Challenged {
        /// `stale=true`: same credentials, new nonce (O.3.1.3: retry on the same flow).
        stale: bool,
    },
    /// 2xx to a REGISTER.
    Registered {
        /// Granted expiry (our Contact's `expires`, else `Expires`, else what we asked).
        expires: u32,
        /// RFC 5626 `Flow-Timer`, if the registrar sent one.
        flow_timer: Option<u32>,
    },
    /// 2xx to a de-REGISTER.
    Deregistered,
    /// A final failure to a REGISTER (or a 401 without a usable challenge).
    Failed {
        /// The status code.
        status: u16,
        /// `Retry-After` seconds, if any.
        retry_after: Option<u32>,
    },
    /// A 1xx.
    Provisional(u16),
    /// A response to a non-REGISTER request this UA sent.
    OtherResponse {
        /// The CSeq method.
        method: String,
        /// The status code.
        status: u16,
    },
    /// Not a response to anything this UA sent (or not a response at all).
    Unmatched,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Register,
    Deregister,
}

/// The UA.
#[derive(Debug)]
pub struct Ua {
    config: UaConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
    challenge: Option<Challenge>,
    nc: u32,
    pending: Option<(u32, Pending)>,
    registered_expires: Option<u32>,
}

impl Ua {
    /// A UA with a fresh Call-ID and From-tag.
    pub fn new(config: UaConfig) -> Ua {
        Ua {
            config,
            call_id: format!("{}@imstls-testkit", crate::random::hex(12)),
            from_tag: crate::random::hex(6),
            cseq: 0,
            challenge: None,
            nc: 0,
            pending: None,
            registered_expires: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &UaConfig {
        &self.config
    }

    /// Changes the address written in Via and Contact (e.g. the socket's real local address).
    pub fn set_local_addr(&mut self, addr: SocketAddr) {
        self.config.local_addr = addr;
    }

    /// The Call-ID used by the registration.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The last challenge received, if any.
    pub fn last_challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// The granted expiry while registered.
    pub fn registered_expires(&self) -> Option<u32> {
        self.registered_expires
    }

    /// Starts a new registration (new Call-ID and From-tag, challenge forgotten), e.g. after a
    /// flow was lost.
    pub fn new_registration(&mut self) {
        self.call_id = format!("{}@imstls-testkit", crate::random::hex(12));
        self.from_tag = crate::random::hex(6);
        self.challenge = None;
        self.nc = 0;
        self.pending = None;
        self.registered_expires = None;
    }

    /// A complete REGISTER asking for `config.expires`, with Digest credentials answering
    /// `authorization` when given.
    pub fn register_request(&mut self, authorization: Option<&Challenge>) -> Vec<u8> {
        self.build_register(authorization, self.config.expires, Pending::Register)
    }

    /// [`Ua::register_request`] answering the stored challenge (none before the first 401).
    pub fn next_register(&mut self) -> Vec<u8> {
        let challenge = self.challenge.clone();
        self.register_request(challenge.as_ref())
    }

    /// A de-REGISTER (Contact `expires=0`, `Expires: 0`).
    pub fn deregister_request(&mut self, authorization: Option<&Challenge>) -> Vec<u8> {
        self.build_register(authorization, 0, Pending::Deregister)
    }

    /// [`Ua::deregister_request`] answering the stored challenge.
    pub fn next_deregister(&mut self) -> Vec<u8> {
        let challenge = self.challenge.clone();
        self.deregister_request(challenge.as_ref())
    }

    /// An out-of-dialog request (e.g. `MESSAGE`, `OPTIONS`) to `target` with `body`
    /// (`Content-Type: text/plain` when not empty).
    pub fn request(&mut self, method: &str, target: &str, body: &[u8]) -> Vec<u8> {
        self.cseq += 1;
        let mut m = SipMessage::request(method, target);
        m.push_header("Via", &self.via());
        m.push_header("Max-Forwards", "70");
        m.push_header(
            "From",
            &format!("<{}>;tag={}", self.config.impu, self.from_tag),
        );
        m.push_header("To", &format!("<{target}>"));
        m.push_header(
            "Call-ID",
            &format!("{}@imstls-testkit", crate::random::hex(12)),
        );
        m.push_header("CSeq", &format!("{} {method}", self.cseq));
        if !body.is_empty() {
            m.push_header("Content-Type", "text/plain");
        }
        m.body = body.to_vec();
        m.to_bytes()
    }

    /// A response (e.g. 200 OK) to a request received from the P-CSCF.
    pub fn answer(&self, request: &SipMessage, code: u16) -> Vec<u8> {
        response_to(request, code, reason_phrase(code), &crate::random::hex(6)).to_bytes()
    }

    /// Interprets a response.
    pub fn handle_response(&mut self, msg: &SipMessage) -> UaOutcome {
        let Some(status) = msg.status() else {
            return UaOutcome::Unmatched;
        };
        let Some((cseq, method)) = msg.cseq() else {
            return UaOutcome::Unmatched;
        };
        if method != "REGISTER" {
            return UaOutcome::OtherResponse {
                method: method.to_owned(),
                status,
            };
        }
        let pending = match self.pending {
            Some((n, p)) if n == cseq && msg.header("Call-ID") == Some(self.call_id.as_str()) => p,
            _ => return UaOutcome::Unmatched,
        };
        if status < 200 {
            return UaOutcome::Provisional(status);
        }
        self.pending = None;
        match status {
            200..=299 if pending == Pending::Deregister => {
                self.registered_expires = None;
                UaOutcome::Deregistered
            }
            200..=299 => {
                let expires = self.granted_expires(msg);
                self.registered_expires = Some(expires);
                UaOutcome::Registered {
                    expires,
                    flow_timer: msg.header("Flow-Timer").and_then(|v| v.trim().parse().ok()),
                }
            }
            401 | 407 => {
                let header = if status == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                match msg
                    .headers_named(header)
                    .find_map(|v| Challenge::parse(v).ok())
                {
                    Some(challenge) => {
                        let stale = challenge.stale;
                        self.challenge = Some(challenge);
                        UaOutcome::Challenged { stale }
                    }
                    None => UaOutcome::Failed {
                        status,
                        retry_after: None,
                    },
                }
            }
            _ => UaOutcome::Failed {
                status,
                retry_after: msg
                    .header("Retry-After")
                    .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|v| v.parse().ok()),
            },
        }
    }

    fn granted_expires(&self, msg: &SipMessage) -> u32 {
        let ours = self.contact_uri();
        msg.header_list("Contact")
            .into_iter()
            .filter_map(NameAddr::parse)
            .find(|c| {
                c.uri == ours
                    || c.param("+sip.instance")
                        .flatten()
                        .is_some_and(|i| unquote(i) == format!("<{}>", self.config.instance_id))
            })
            .and_then(|c| c.param("expires").flatten().and_then(|v| v.parse().ok()))
            .or_else(|| msg.header("Expires").and_then(|v| v.trim().parse().ok()))
            .unwrap_or(self.config.expires)
    }

    fn build_register(
        &mut self,
        authorization: Option<&Challenge>,
        expires: u32,
        pending: Pending,
    ) -> Vec<u8> {
        self.cseq += 1;
        self.pending = Some((self.cseq, pending));
        let request_uri = format!("sip:{}", self.config.server_name);
        let mut m = SipMessage::request("REGISTER", &request_uri);
        m.push_header("Via", &self.via());
        m.push_header("Max-Forwards", "70");
        m.push_header(
            "From",
            &format!("<{}>;tag={}", self.config.impu, self.from_tag),
        );
        m.push_header("To", &format!("<{}>", self.config.impu));
        m.push_header("Call-ID", &self.call_id);
        m.push_header("CSeq", &format!("{} REGISTER", self.cseq));
        m.push_header(
            "Contact",
            &format!(
                "<{}>;+sip.instance=\"<{}>\";reg-id={};expires={expires}",
                self.contact_uri(),
                self.config.instance_id,
                self.config.reg_id
            ),
        );
        m.push_header("Supported", "outbound, path");
        m.push_header("Expires", &expires.to_string());
        if let Some(challenge) = authorization {
            if self.challenge.as_ref().map(|c| &c.nonce) == Some(&challenge.nonce) {
                self.nc += 1;
            } else {
                self.challenge = Some(challenge.clone());
                self.nc = 1;
            }
            let cnonce = crate::random::hex(8);
            if let Ok(auth) = challenge.respond(
                &self.config.impi,
                self.config.password.expose(),
                "REGISTER",
                &request_uri,
                &cnonce,
                self.nc,
            ) {
                m.push_header("Authorization", &auth.to_header_value());
            }
        }
        m.to_bytes()
    }

    fn via(&self) -> String {
        format!(
            "SIP/2.0/TLS {};branch=z9hG4bK{};rport",
            self.config.local_addr,
            crate::random::hex(8)
        )
    }

    fn contact_uri(&self) -> String {
        let user = self
            .config
            .impu
            .split_once(':')
            .map_or(self.config.impu.as_str(), |(_, rest)| rest);
        let user = user.split_once('@').map_or(user, |(u, _)| u);
        format!("sip:{user}@{};transport=tls", self.config.local_addr)
    }
}

/// A random (version 4) `urn:uuid:` URN.
pub fn random_urn_uuid() -> String {
    let mut b = [0u8; 16];
    crate::random::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::random::to_hex(&b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_has_every_header_the_registrar_and_annex_o_expect() {
        let mut ua = Ua::new(UaConfig {
            local_addr: "[::1]:40000".parse().unwrap(),
            expires: 600,
            ..UaConfig::default()
        });
        let first = SipMessage::parse(&ua.register_request(None)).unwrap();
        assert_eq!(first.request_uri(), Some("sip:ims.test"));
        let via = first.header("Via").unwrap();
        assert!(
            via.starts_with("SIP/2.0/TLS [::1]:40000;branch=z9hG4bK"),
            "{via}"
        );
        assert!(via.ends_with(";rport"));
        assert_eq!(first.header("Max-Forwards"), Some("70"));
        assert!(first.header("From").unwrap().contains(";tag="));
        assert_eq!(first.header("To"), Some("<sip:alice@ims.test>"));
        let contact = NameAddr::parse(first.header("Contact").unwrap()).unwrap();
        assert_eq!(contact.uri, "sip:alice@[::1]:40000;transport=tls");
        assert_eq!(contact.param("reg-id"), Some(Some("1")));
        assert_eq!(contact.param("expires"), Some(Some("600")));
        assert!(contact
            .param("+sip.instance")
            .flatten()
            .unwrap()
            .starts_with("\"<urn:uuid:"));
        assert!(first.has_option("Supported", "outbound") && first.has_option("Supported", "path"));
        assert_eq!(first.header("Expires"), Some("600"));
        assert_eq!(first.header("Content-Length"), Some("0"));
        assert_eq!(first.header("Authorization"), None);

        let second = SipMessage::parse(&ua.deregister_request(None)).unwrap();
        assert_eq!(second.cseq(), Some((2, "REGISTER")));
        assert_eq!(second.header("Call-ID"), first.header("Call-ID"));
        assert_eq!(second.header("Expires"), Some("0"));
    }

    #[test]
    fn password_never_shows_in_debug() {
        let ua = Ua::new(UaConfig {
            password: "hunter2-secret".into(),
            ..UaConfig::default()
        });
        assert!(!format!("{ua:?}").contains("hunter2"));
        assert!(!format!("{:?}", ua.config()).contains("hunter2"));
    }

    #[test]
    fn responses_to_other_transactions_are_unmatched() {
        let mut ua = Ua::new(UaConfig::default());
        let req = SipMessage::parse(&ua.register_request(None)).unwrap();
        let mut resp = response_to(&req, 200, "OK", "t");
        resp.set_header("Call-ID", "someone-else");
        assert_eq!(ua.handle_response(&resp), UaOutcome::Unmatched);
        let trying = response_to(&req, 100, "Trying", "t");
        assert_eq!(ua.handle_response(&trying), UaOutcome::Provisional(100));
        assert_eq!(ua.handle_response(&req), UaOutcome::Unmatched);
    }

    #[test]
    fn urn_uuid_is_version_4() {
        let u = random_urn_uuid();
        assert_eq!(u.len(), "urn:uuid:".len() + 36);
        assert_eq!(&u[23..24], "4");
    }
}
