//! In-memory drivers: a client and its own testkit `PcscfCore` exchange bytes directly, with
//! no socket and no thread, on the caller's clock.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use imstls::{Event, Output, Ue};
use imstls_testkit::sip::{Frame, Framer, SipMessage};
use imstls_testkit::ua::{Ua, UaOutcome};
use imstls_testkit::PcscfCore;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::clients::{act_as_stack, Error};

/// Runs the engine's outputs against `core` in memory, acting as the SIP stack at `now`,
/// until `until` accepts an event (Ok(true)) or nothing is left to do (Ok(false)).
pub fn pump(
    ue: &mut Ue,
    ua: &mut Ua,
    core: &mut PcscfCore,
    now: Instant,
    until: impl Fn(&Event) -> bool,
) -> Result<bool, Error> {
    loop {
        match ue.poll_output() {
            Output::Connect { flow, .. } => ue.connected(now, flow, None, None)?,
            Output::Close { .. } => {}
            Output::Transmit { flow, data } => {
                core.receive(&data);
                let answer = core.take_output();
                if !answer.is_empty() {
                    ue.receive(now, flow, &answer)?;
                }
            }
            Output::Event(event) => {
                act_as_stack(ue, ua, &event, now)?;
                if until(&event) {
                    return Ok(true);
                }
            }
            Output::Timeout(_) => return Ok(false),
            other => return Err(format!("unexpected output {other:?}").into()),
        }
    }
}

/// What a bare integration keeps per connection: the rustls connection and a SIP framer
/// (held only for their heap).
#[allow(dead_code)]
pub struct BareFlow {
    conn: ClientConnection,
    framer: Framer,
}

/// The same exchange with bare rustls, in memory.
pub fn bare_in_memory(
    config: Arc<ClientConfig>,
    server_name: &'static str,
    ua: &mut Ua,
    core: &mut PcscfCore,
) -> Result<BareFlow, Error> {
    let mut conn = ClientConnection::new(config, ServerName::try_from(server_name)?)?;
    let mut framer = Framer::new();
    let mut plaintext = [0u8; 4096];
    let mut sent_first = false;
    loop {
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        if !out.is_empty() {
            core.receive(&out);
        }
        let answer = core.take_output();
        if answer.is_empty() {
            return Err("stuck".into());
        }
        let mut input = &answer[..];
        while !input.is_empty() {
            conn.read_tls(&mut input)?;
            conn.process_new_packets()?;
        }
        if !sent_first && !conn.is_handshaking() {
            ua.new_registration();
            conn.writer().write_all(&ua.next_register())?;
            sent_first = true;
        }
        loop {
            match conn.reader().read(&mut plaintext) {
                Ok(0) => return Err("closed".into()),
                Ok(n) => framer.push(&plaintext[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        while let Some(frame) = framer.next_frame()? {
            if let Frame::Message(bytes) = frame {
                match ua.handle_response(&SipMessage::parse(&bytes)?) {
                    UaOutcome::Challenged { .. } => conn.writer().write_all(&ua.next_register())?,
                    UaOutcome::Registered { .. } => {
                        // Flush anything pending (nothing in practice), then sit idle.
                        let mut out = Vec::new();
                        while conn.wants_write() {
                            conn.write_tls(&mut out)?;
                        }
                        core.receive(&out);
                        // Give back the drained receive buffer, as imstls's framer does once
                        // everything in it is delivered: the same framer behaviour on both
                        // sides (B4 compares like with like).
                        if framer.buffered() == 0 {
                            framer = Framer::new();
                        }
                        return Ok(BareFlow { conn, framer });
                    }
                    other => return Err(format!("unexpected {other:?}").into()),
                }
            }
        }
    }
}
