//! imstls's TLS session store (TS 33.203 O.2.1 "TLS session parameters", O.4.1).
//!
//! - keyed by P-CSCF identity (the rustls `ServerName`: the configured FQDN, the candidate
//!   host, or its IP address), so a session is only ever resumed towards the identity that
//!   created it;
//! - sessions expire after the configured lifetime (default 3600 s, at most 86 400 s),
//!   measured on the engine's caller-supplied clock;
//! - every entry carries a sequence number, so everything created since a [`StoreMark`]
//!   can be purged: O.4.1 requires removing the TLS sessions an incomplete registration
//!   created;
//! - the rustls session values themselves zeroize their secrets when dropped.

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

struct Stamped<T> {
    value: T,
    created: Instant,
    seq: u64,
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
        now.saturating_duration_since(stamped.created) < self.lifetime
    }

    fn stamp<T>(inner: &mut Inner, value: T) -> Stamped<T> {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        Stamped {
            value,
            created: inner.now,
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
        let stamped = Self::stamp(&mut inner, value);
        Self::entry(&mut inner, server_name).tls12 = Some(Box::new(stamped));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        let mut inner = self.inner.lock();
        let now = inner.now;
        let entry = inner.get_mut(server_name)?;
        match &entry.tls12 {
            Some(s) if self.alive(s, now) => Some(s.value.clone()),
            Some(_) => {
                entry.tls12 = None;
                None
            }
            None => None,
        }
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
        let stamped = Self::stamp(&mut inner, value);
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
        while let Some(ticket) = entry.tls13.pop_back() {
            if self.alive(&ticket, now) {
                return Some(ticket.value);
            }
        }
        None
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
