//! The `ue` CLI's runner: the managed driver (`imstls::driver::Driver`, the one C and Java
//! users get as `imstls_driver`) owns the socket, the clock and the timers, as in the
//! product; this plays "the SIP stack" with the small UA from `imstls-testkit`.

use std::time::Instant;

use imstls::driver::{Driver, DriverError};
use imstls::{Event, UeError};
use imstls_testkit::sip::SipMessage;
use imstls_testkit::ua::Ua;

#[path = "stack.rs"]
#[allow(dead_code)] // `report` is the sans-IO engine's
mod stack;

use stack::Report;

/// The driver and the SIP UA acting as the stack.
pub struct ManagedLink {
    pub driver: Driver,
    ua: Ua,
}

impl ManagedLink {
    pub fn new(driver: Driver, ua: Ua) -> ManagedLink {
        ManagedLink { driver, ua }
    }

    /// Runs the driver until its next event (already acted upon as the stack would) or until
    /// `deadline`.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>, DriverError> {
        loop {
            if let Some(event) = self.driver.poll_event() {
                self.act_as_stack(&event)?;
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.driver.run(left)?;
        }
    }

    /// What a SIP stack does with the driver's events.
    fn act_as_stack(&mut self, event: &Event) -> Result<(), DriverError> {
        match event {
            Event::RegisterNow { reason, .. } => {
                // Via and Contact name the socket's own address.
                if let Some(local) = self.driver.binding().and_then(|b| b.local_addr) {
                    self.ua.set_local_addr(local);
                }
                let request = stack::register_request(&mut self.ua, *reason);
                self.driver.send_sip(&request)?;
            }
            Event::SipReceived { flow, message } => {
                let Ok(message) = SipMessage::parse(message) else {
                    return Ok(()); // not ours to judge: a real stack would log and drop it
                };
                if message.is_request() {
                    let answer = self.ua.answer(&message, 200);
                    return self.driver.send_sip(&answer);
                }
                let flow = *flow;
                let result = match Report::of(self.ua.handle_response(&message)) {
                    Some(Report::Challenged { stale }) => {
                        self.driver.registration_challenged(flow, stale)
                    }
                    Some(Report::Succeeded {
                        expires,
                        flow_timer,
                    }) => self
                        .driver
                        .registration_succeeded(flow, expires, flow_timer),
                    Some(Report::Failed {
                        status,
                        retry_after,
                    }) => self.driver.registration_failed(flow, status, retry_after),
                    None => Ok(()),
                };
                // An answer for a flow that is gone belongs to an earlier procedure (O.4.1).
                if !matches!(
                    result,
                    Err(DriverError::Engine(UeError::StaleReport { .. }))
                ) {
                    result?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
