//! imstls's TLS session store (TS 33.203 O.2.1 "TLS session parameters", O.4.1).
//!
//! - keyed by P-CSCF identity (the rustls `ServerName`: the configured FQDN, the candidate
//!   host, or its IP address), so a session is only ever resumed towards the identity that
//!   created it;
//! - sessions expire once the configured lifetime (default 3600 s, at most 86 400 s) has
//!   passed since the **full handshake that authenticated the P-CSCF**, measured on the
//!   engine's caller-supplied clock. Resuming does not renew it (see "Dating sessions");
//! - every entry carries a sequence number, so everything created since a [`StoreMark`]
//!   can be purged: O.4.1 requires removing the TLS sessions an incomplete registration
//!   created;
//! - the rustls session values themselves zeroize their secrets when dropped.
//!
//! # Dating sessions
//!
//! rustls stores a new TLS 1.2 session or TLS 1.3 ticket after *every* handshake, resumed
//! ones included, so "stored at" is not "authenticated at": dating by insertion would let a
//! UE that reconnects within the lifetime resume forever on a certificate checked once. Each
//! entry therefore carries `authenticated_at`, the start of the full handshake it descends
//! from, and every handshake is bracketed by the store:
//!
//! 1. [`SessionStore::begin_handshake`] (called by [`TlsFlow::connect`](crate::tls::TlsFlow::connect)
//!    before rustls looks anything up) opens an attempt and notes its start;
//! 2. whatever rustls then takes from the store for that P-CSCF lowers the attempt's
//!    inherited date to that entry's `authenticated_at`;
//! 3. an entry rustls inserts during the attempt gets the inherited date, or the attempt's
//!    start when nothing was handed out (no session offered: the handshake must be full);
//! 4. once the handshake is known to be full (the server declined what was offered),
//!    [`SessionStore::handshake_was_full`] restamps what the attempt inserted, and dates what
//!    it inserts later, with the attempt's start.
//!
//! Every date is at or before the certificate check it stands for (the attempt's start
//! precedes the check; an inherited date is the older handshake's own), so an entry can only
//! look older than it is, never younger. An entry rustls offers to insert outside an attempt
//! for that P-CSCF cannot be dated and is not kept. One handshake at a time per store (the
//! engine runs one flow at a time).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// At most this many TLS 1.3 tickets are kept per P-CSCF (rustls keeps 8 too).
const MAX_TICKETS_PER_SERVER: usize = 8;
/// At most this many P-CSCF identities are remembered.
const MAX_SERVERS: usize = 32;

/// A point in the store's history; see [`SessionStore::purge_since`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreMark(u64);

/// Identifies one handshake attempt; see [`SessionStore::begin_handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeId(u64);

struct Stamped<T> {
    value: T,
    /// When the full handshake this entry descends from started (see the module doc).
    authenticated_at: Instant,
    seq: u64,
}

/// The handshake in progress.
struct Attempt {
    id: HandshakeId,
    server: ServerName<'static>,
    started: Instant,
    /// Entries stored from this sequence number on were inserted during the attempt.
    first_seq: u64,
    /// The oldest `authenticated_at` of the entries handed to rustls during the attempt.
    inherited: Option<Instant>,
}

impl Attempt {
    fn authenticated_at(&self) -> Instant {
        self.inherited
            .map_or(self.started, |inherited| inherited.min(self.started))
    }
}

struct ServerEntry {
    server: ServerName<'static>,
    kx_hint: Option<NamedGroup>,
    // Boxed: most P-CSCFs speak TLS 1.3, and an empty slot should not cost its full size.
    tls12: Option<Box<Stamped<Tls12ClientSessionValue>>>,
    tls13: VecDeque<Stamped<Tls13ClientSessionValue>>,
}

impl ServerEntry {
    fn is_empty(&self) -> bool {
        self.tls12.is_none() && self.tls13.is_empty()
    }

    fn len(&self) -> usize {
        usize::from(self.tls12.is_some()) + self.tls13.len()
    }
}

struct Inner {
    now: Instant,
    next_seq: u64,
    next_handshake: u64,
    attempt: Option<Attempt>,
    // A handful of identities at most (bounded by MAX_SERVERS): a short Vec is smaller than
    // a hash map and is searched without cloning the name.
    servers: Vec<ServerEntry>,
}

impl Inner {
    fn position(&self, server: &ServerName<'_>) -> Option<usize> {
        self.servers.iter().position(|e| e.server == *server)
    }

    fn get_mut(&mut self, server: &ServerName<'_>) -> Option<&mut ServerEntry> {
        let at = self.position(server)?;
        Some(&mut self.servers[at])
    }

    /// The date for an entry inserted now for `server`: `None` outside an attempt for it.
    fn date_for(&self, server: &ServerName<'_>) -> Option<Instant> {
        self.attempt
            .as_ref()
            .filter(|a| a.server == *server)
            .map(Attempt::authenticated_at)
    }

    /// Notes that an entry dated `authenticated_at` was handed to rustls for `server`.
    fn handed_out(&mut self, server: &ServerName<'_>, authenticated_at: Instant) {
        if let Some(attempt) = self.attempt.as_mut().filter(|a| a.server == *server) {
            attempt.inherited = Some(
                attempt
                    .inherited
                    .map_or(authenticated_at, |i| i.min(authenticated_at)),
            );
        }
    }

    /// Drops emptied identities and gives unused capacity back (an idle UE keeps little).
    fn compact(&mut self) {
        self.servers
            .retain(|e| !e.is_empty() || e.kx_hint.is_some());
        for entry in &mut self.servers {
            entry.tls13.shrink_to_fit();
        }
        self.servers.shrink_to_fit();
    }
}

/// The session store. Shared with rustls through an `Arc`; all methods take `&self`.
pub struct SessionStore {
    lifetime: Duration,
    inner: Mutex<Inner>,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("lifetime", &self.lifetime)
            .field("sessions", &self.len())
            .finish()
    }
}

impl SessionStore {
    /// A store whose sessions live `lifetime`, starting its clock at `now`.
    pub fn new(lifetime: Duration, now: Instant) -> Self {
        Self {
            lifetime,
            inner: Mutex::new(Inner {
                now,
                next_seq: 0,
                next_handshake: 0,
                attempt: None,
                servers: Vec::new(),
            }),
        }
    }

    /// Advances the store's clock (the engine calls this with every input). Time never goes
    /// backwards: an earlier instant is ignored.
    pub fn set_now(&self, now: Instant) {
        let mut inner = self.inner.lock();
        if now > inner.now {
            inner.now = now;
        }
    }

    /// Opens the handshake attempt towards `server` (step 1 in the module doc); call it
    /// before rustls builds its ClientHello. A previous attempt ends here.
    pub fn begin_handshake(&self, server: &ServerName<'static>) -> HandshakeId {
        let mut inner = self.inner.lock();
        let id = HandshakeId(inner.next_handshake);
        inner.next_handshake += 1;
        inner.attempt = Some(Attempt {
            id,
            server: server.clone(),
            started: inner.now,
            first_seq: inner.next_seq,
            inherited: None,
        });
        id
    }

    /// The attempt `id` completed a full handshake, so it authenticated the P-CSCF itself:
    /// what it stored, and will store, is dated from its start (step 4 in the module doc).
    /// Does nothing once another attempt has begun.
    pub fn handshake_was_full(&self, id: HandshakeId) {
        let mut inner = self.inner.lock();
        let Inner {
            attempt, servers, ..
        } = &mut *inner;
        let Some(attempt) = attempt.as_mut().filter(|a| a.id == id) else {
            return;
        };
        attempt.inherited = None;
        let (started, first_seq) = (attempt.started, attempt.first_seq);
        if let Some(entry) = servers.iter_mut().find(|e| e.server == attempt.server) {
            if let Some(session) = entry.tls12.as_mut().filter(|s| s.seq >= first_seq) {
                session.authenticated_at = started;
            }
            for ticket in entry.tls13.iter_mut().filter(|t| t.seq >= first_seq) {
                ticket.authenticated_at = started;
            }
        }
    }

    /// The current point in history: entries stored after this are "since" it.
    pub fn mark(&self) -> StoreMark {
        StoreMark(self.inner.lock().next_seq)
    }

    /// Removes every session and ticket stored at or after `mark` (O.4.1: data of an
    /// incomplete registration). Returns how many were removed.
    pub fn purge_since(&self, mark: StoreMark) -> usize {
        let mut inner = self.inner.lock();
        let mut removed = 0;
        for entry in &mut inner.servers {
            if entry.tls12.as_ref().is_some_and(|s| s.seq >= mark.0) {
                entry.tls12 = None;
                removed += 1;
            }
            let before = entry.tls13.len();
            entry.tls13.retain(|t| t.seq < mark.0);
            removed += before - entry.tls13.len();
        }
        inner.compact();
        removed
    }

    /// Removes every session and ticket for one P-CSCF identity (O.3.1.1, O.3.1.2).
    pub fn purge_server(&self, server: &ServerName<'_>) -> usize {
        let mut inner = self.inner.lock();
        let removed = match inner.position(server) {
            Some(at) => inner.servers.swap_remove(at).len(),
            None => 0,
        };
        inner.compact();
        removed
    }

    /// Removes everything.
    pub fn purge_all(&self) -> usize {
        let mut inner = self.inner.lock();
        let removed = inner.servers.iter().map(ServerEntry::len).sum();
        inner.servers = Vec::new();
        removed
    }

    /// How many live (unexpired) sessions and tickets are stored.
    pub fn len(&self) -> usize {
        let inner = self.inner.lock();
        let now = inner.now;
        inner
            .servers
            .iter()
            .map(|e| {
                usize::from(e.tls12.as_ref().is_some_and(|s| self.alive(s, now)))
                    + e.tls13.iter().filter(|t| self.alive(t, now)).count()
            })
            .sum()
    }

    /// True when no live session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn alive<T>(&self, stamped: &Stamped<T>, now: Instant) -> bool {
        now.saturating_duration_since(stamped.authenticated_at) < self.lifetime
    }

    fn stamp<T>(inner: &mut Inner, value: T, authenticated_at: Instant) -> Stamped<T> {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        Stamped {
            value,
            authenticated_at,
            seq,
        }
    }

    fn entry<'a>(inner: &'a mut Inner, server: ServerName<'static>) -> &'a mut ServerEntry {
        let at = match inner.position(&server) {
            Some(at) => at,
            None => {
                if inner.servers.len() >= MAX_SERVERS {
                    // Forget the identity with the oldest newest-entry.
                    let oldest = inner
                        .servers
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| {
                            e.tls13
                                .back()
                                .map(|t| t.seq)
                                .max(e.tls12.as_ref().map(|s| s.seq))
                        })
                        .map(|(at, _)| at);
                    if let Some(oldest) = oldest {
                        inner.servers.swap_remove(oldest);
                    }
                }
                // One identity is the common case: no spare slots.
                inner.servers.reserve_exact(1);
                inner.servers.push(ServerEntry {
                    server,
                    kx_hint: None,
                    tls12: None,
                    tls13: VecDeque::new(),
                });
                inner.servers.len() - 1
            }
        };
        &mut inner.servers[at]
    }
}

impl ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        let mut inner = self.inner.lock();
        Self::entry(&mut inner, server_name).kx_hint = Some(group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        let inner = self.inner.lock();
        inner
            .position(server_name)
            .and_then(|at| inner.servers[at].kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        let mut inner = self.inner.lock();
        // Undatable (no attempt for this P-CSCF): dropped, which zeroizes it.
        let Some(authenticated_at) = inner.date_for(&server_name) else {
            return;
        };
        let stamped = Self::stamp(&mut inner, value, authenticated_at);
        Self::entry(&mut inner, server_name).tls12 = Some(Box::new(stamped));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        let mut inner = self.inner.lock();
        let now = inner.now;
        let entry = inner.get_mut(server_name)?;
        let (value, authenticated_at) = match &entry.tls12 {
            Some(s) if self.alive(s, now) => (s.value.clone(), s.authenticated_at),
            Some(_) => {
                entry.tls12 = None;
                return None;
            }
            None => return None,
        };
        inner.handed_out(server_name, authenticated_at);
        Some(value)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        if let Some(entry) = self.inner.lock().get_mut(server_name) {
            entry.tls12 = None;
        }
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let mut inner = self.inner.lock();
        let Some(authenticated_at) = inner.date_for(&server_name) else {
            return;
        };
        let stamped = Self::stamp(&mut inner, value, authenticated_at);
        let entry = Self::entry(&mut inner, server_name);
        if entry.tls13.len() >= MAX_TICKETS_PER_SERVER {
            entry.tls13.pop_front();
        }
        entry.tls13.push_back(stamped);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let mut inner = self.inner.lock();
        let now = inner.now;
        let entry = inner.get_mut(server_name)?;
        // Newest first; expired tickets are dropped on the way.
        let mut live = None;
        while let Some(ticket) = entry.tls13.pop_back() {
            if self.alive(&ticket, now) {
                live = Some(ticket);
                break;
            }
        }
        let ticket = live?;
        inner.handed_out(server_name, ticket.authenticated_at);
        Some(ticket.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: usize) -> ServerName<'static> {
        ServerName::try_from(format!("pcscf{i}.ims.test")).unwrap()
    }

    #[test]
    fn identities_are_bounded_and_the_newest_is_kept() {
        let store = SessionStore::new(Duration::from_secs(3600), Instant::now());
        for i in 0..MAX_SERVERS + 5 {
            store.set_kx_hint(name(i), NamedGroup::X25519);
        }
        assert_eq!(store.inner.lock().servers.len(), MAX_SERVERS);
        assert_eq!(
            store.kx_hint(&name(MAX_SERVERS + 4)),
            Some(NamedGroup::X25519)
        );
        // Setting a hint again for a known identity does not add an entry.
        store.set_kx_hint(name(MAX_SERVERS + 4), NamedGroup::secp256r1);
        assert_eq!(store.inner.lock().servers.len(), MAX_SERVERS);
        assert_eq!(
            store.kx_hint(&name(MAX_SERVERS + 4)),
            Some(NamedGroup::secp256r1)
        );
    }

    #[test]
    fn purging_one_identity_leaves_the_others_and_gives_capacity_back() {
        let store = SessionStore::new(Duration::from_secs(3600), Instant::now());
        for i in 0..3 {
            store.set_kx_hint(name(i), NamedGroup::X25519);
        }
        assert_eq!(store.purge_server(&name(1)), 0, "hints are not sessions");
        assert_eq!(store.kx_hint(&name(1)), None);
        assert_eq!(store.kx_hint(&name(0)), Some(NamedGroup::X25519));
        assert_eq!(store.kx_hint(&name(2)), Some(NamedGroup::X25519));
        let inner = store.inner.lock();
        assert_eq!(inner.servers.len(), 2);
        assert_eq!(inner.servers.capacity(), 2);
        drop(inner);
        assert_eq!(store.purge_all(), 0);
        assert_eq!(store.inner.lock().servers.capacity(), 0);
        assert_eq!(store.kx_hint(&name(0)), None);
    }
}
