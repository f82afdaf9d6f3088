//! A tiny, test-grade but correct SIP toolkit: stream framing with keep-alives ([`framer`]),
//! a parsed message type with response builders ([`message`]) and header value helpers
//! ([`params`]).

pub mod framer;
pub mod message;
pub mod params;

pub use framer::{Frame, FrameError, Framer, MAX_BODY_BYTES, MAX_HEADER_BYTES};
pub use message::{
    canonical_name, reason_phrase, response_to, same_header, SipError, SipMessage, StartLine,
};
pub use params::{split_list, unquote, with_tag, NameAddr};
