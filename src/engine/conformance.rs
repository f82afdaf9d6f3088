//! The conformance log (O.2.2 diagnostics): the latest events with the clause that caused
//! each, bounded by the configuration. Entries are 24 bytes (a time offset, one pointer to the
//! event's static code and clause, the flow number) so that a UE idle for a day holds little.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use super::event::{ConformanceEntry, Event, EventKind, FlowId};

struct Record {
    /// Nanoseconds after the log's epoch.
    after: u64,
    kind: &'static EventKind,
    /// Flows are numbered from 1, so `NonZeroU64` holds every one and `None` costs no space.
    flow: Option<NonZeroU64>,
}

pub(crate) struct ConformanceLog {
    epoch: Instant,
    keep: usize,
    records: VecDeque<Record>,
}

impl ConformanceLog {
    /// A log keeping the latest `keep` entries (0: none); `epoch` is no later than any `at`.
    pub(crate) fn new(epoch: Instant, keep: usize) -> Self {
        Self {
            epoch,
            keep,
            records: VecDeque::new(),
        }
    }

    pub(crate) fn record(&mut self, at: Instant, event: &Event) {
        if self.keep == 0 {
            return;
        }
        if self.records.len() >= self.keep {
            self.records.pop_front();
        }
        let after =
            u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        self.records.push_back(Record {
            after,
            kind: event.kind(),
            flow: event.flow().and_then(|f| NonZeroU64::new(f.0)),
        });
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = ConformanceEntry> + '_ {
        self.records.iter().map(|r| ConformanceEntry {
            at: self.epoch + Duration::from_nanos(r.after),
            event: r.kind.code,
            clause: r.kind.clause,
            flow: r.flow.map(|f| FlowId(f.get())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_as_recorded_and_the_oldest_go_first() {
        let epoch = Instant::now();
        let mut log = ConformanceLog::new(epoch, 2);
        let events = [
            Event::Deregistered,
            Event::KeepAliveSent { flow: FlowId(7) },
            Event::PongReceived { flow: FlowId(7) },
        ];
        for (i, event) in events.iter().enumerate() {
            log.record(epoch + Duration::from_millis(1500 * i as u64), event);
        }
        let got: Vec<_> = log.entries().collect();
        assert_eq!(
            got,
            vec![
                ConformanceEntry {
                    at: epoch + Duration::from_millis(1500),
                    event: "keepalive_sent",
                    clause: "RFC 5626 §4.4.1",
                    flow: Some(FlowId(7)),
                },
                ConformanceEntry {
                    at: epoch + Duration::from_millis(3000),
                    event: "pong_received",
                    clause: "RFC 5626 §4.4.1",
                    flow: Some(FlowId(7)),
                },
            ]
        );
        assert_eq!(std::mem::size_of::<Record>(), 24);
    }

    #[test]
    fn zero_keeps_nothing() {
        let epoch = Instant::now();
        let mut log = ConformanceLog::new(epoch, 0);
        log.record(epoch, &Event::Deregistered);
        assert_eq!(log.entries().count(), 0);
    }
}
