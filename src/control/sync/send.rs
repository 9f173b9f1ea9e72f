//! The sender: drains every worker's outgoing ring, turns each entry (and
//! its template) into records with the current snapshot, packs them into
//! datagrams ([`Batcher`]: sent when full or `flush_ms` after the first
//! record) and sends each datagram to the group or to every peer.

#![forbid(unsafe_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::counters::SyncCounters;
use crate::lb::live::Live;
use crate::lb::persist::{TemplateEntry, TemplateKey};
use crate::lb::snapshot::Snapshot;
use crate::lb::sync_record::{conn_record, template_record, NotSent};
use crate::lb::sync_ring::{Consumer, Outgoing};
use crate::wire::ipvs_sync::{EncodeError, MessageBuilder, SyncConn};

/// Items taken from one worker's ring per pass.
pub const PER_PASS: usize = 1024;
/// Pause of a pass that found nothing.
const IDLE: Duration = Duration::from_millis(1);

/// A datagram ready to send, with what it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The message.
    pub bytes: Vec<u8>,
    /// Connection records in it.
    pub conns: u64,
    /// Template records in it.
    pub templates: u64,
}

/// Packs records into messages: a message leaves when the next record does
/// not fit, or once its first record has waited `flush_ms`. Time is given
/// by the caller (ms on any clock), so tests drive it.
#[derive(Debug)]
pub struct Batcher {
    builder: MessageBuilder,
    flush_ms: u64,
    first_at: Option<u64>,
    conns: u64,
    templates: u64,
}

impl Batcher {
    /// Messages of sync id `syncid`, at most `maxlen` bytes.
    pub fn new(syncid: u8, maxlen: usize, flush_ms: u64) -> Batcher {
        Batcher {
            builder: MessageBuilder::new(syncid, maxlen),
            flush_ms,
            first_at: None,
            conns: 0,
            templates: 0,
        }
    }

    /// Adds `rec`; returns the message it did not fit in, if any.
    pub fn push(
        &mut self,
        rec: &SyncConn,
        template: bool,
        now_ms: u64,
    ) -> Result<Option<Datagram>, EncodeError> {
        let mut full = None;
        match self.builder.push(rec) {
            Ok(()) => {}
            Err(EncodeError::Full) => {
                full = self.take();
                self.builder.push(rec)?;
            }
            Err(e) => return Err(e),
        }
        if template {
            self.templates += 1;
        } else {
            self.conns += 1;
        }
        self.first_at.get_or_insert(now_ms);
        Ok(full)
    }

    /// The message, once its first record has waited `flush_ms`.
    pub fn due(&mut self, now_ms: u64) -> Option<Datagram> {
        let first = self.first_at?;
        (now_ms.saturating_sub(first) >= self.flush_ms)
            .then(|| self.take())
            .flatten()
    }

    /// The message now, if it has a record.
    pub fn take(&mut self) -> Option<Datagram> {
        let bytes = self.builder.take()?;
        self.first_at = None;
        let d = Datagram {
            bytes,
            conns: self.conns,
            templates: self.templates,
        };
        (self.conns, self.templates) = (0, 0);
        Some(d)
    }
}

/// The records of one outgoing item: its connection, then its template
/// (IPVS syncs a connection's controlling template with it).
pub fn records_of(o: &Outgoing, snap: &Snapshot) -> [Option<Result<SyncConn, NotSent>>; 2] {
    let e = &o.entry;
    let conn = Some(conn_record(e, snap, 0));
    let tpl = e.has_template().then(|| {
        let st = snap.service(e.svc).ok_or(NotSent::NoService)?;
        let p = st.persistence.ok_or(NotSent::NotPersistent)?;
        let t = TemplateEntry {
            key: TemplateKey::new(e.svc, e.key.client(), p.prefix_len),
            rs: e.rs,
            refs: 1,
            expires: 0,
        };
        template_record(&t, snap, 0)
    });
    [conn, tpl]
}

/// Everything the sender thread runs with.
pub struct Sender {
    /// One consumer per worker.
    pub rings: Vec<Consumer<Outgoing>>,
    /// The tables the workers forward with.
    pub live: Arc<Live>,
    /// The sending socket.
    pub socket: UdpSocket,
    /// Where every datagram goes (the group, or each peer).
    pub dests: Vec<SocketAddr>,
    /// The packer.
    pub batcher: Batcher,
    /// Shared counters.
    pub counters: Arc<SyncCounters>,
    /// Set to stop; the pending message is sent first.
    pub stop: Arc<AtomicBool>,
}

impl Sender {
    /// The thread's loop: until `stop`, then a last flush.
    pub fn run(mut self) {
        let start = Instant::now();
        let mut items = Vec::with_capacity(PER_PASS);
        let mut rings = std::mem::take(&mut self.rings);
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let now = || start.elapsed().as_millis() as u64;
            let tables = self.live.load();
            let mut any = 0;
            for ring in &mut rings {
                items.clear();
                any += ring.drain(PER_PASS, |o| items.push(o));
                SyncCounters::add(&self.counters.drained, items.len() as u64);
                for o in &items {
                    for rec in records_of(o, &tables.snap).into_iter().flatten() {
                        self.pack(rec, now());
                    }
                }
            }
            if let Some(d) = self.batcher.due(now()) {
                self.send(&d);
            }
            if stopping {
                if let Some(d) = self.batcher.take() {
                    self.send(&d);
                }
                return;
            }
            if any == 0 {
                std::thread::sleep(IDLE);
            }
        }
    }

    fn pack(&mut self, rec: Result<SyncConn, NotSent>, now_ms: u64) {
        let rec = match rec {
            Ok(r) => r,
            Err(why) => return self.counters.not_sent(why),
        };
        let template = rec.flags & crate::wire::ipvs_sync::flags::TEMPLATE != 0;
        match self.batcher.push(&rec, template, now_ms) {
            Ok(Some(d)) => self.send(&d),
            Ok(None) => {}
            Err(_) => SyncCounters::add(&self.counters.not_sent_encode, 1),
        }
    }

    fn send(&self, d: &Datagram) {
        let c = &self.counters;
        for dest in &self.dests {
            match self.socket.send_to(&d.bytes, dest) {
                Ok(_) => SyncCounters::add(&c.datagrams_sent, 1),
                Err(_) => SyncCounters::add(&c.send_errors, 1),
            }
        }
        SyncCounters::add(&c.conns_sent, d.conns);
        SyncCounters::add(&c.templates_sent, d.templates);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipvs_sync::{Message, SyncAddrs, V4_LEN};
    use std::net::Ipv4Addr;

    fn rec(i: u16) -> SyncConn {
        SyncConn {
            protocol: 17,
            flags: 3,
            state: 0,
            cport: i,
            vport: 53,
            dport: 53,
            fwmark: 0,
            timeout: 300,
            addrs: SyncAddrs::V4 {
                client: Ipv4Addr::new(192, 0, 2, 1),
                virt: Ipv4Addr::new(10, 0, 0, 1),
                dest: Ipv4Addr::new(10, 0, 1, 1),
            },
            seq: None,
            pe: None,
        }
    }

    #[test]
    fn full_messages_leave_at_once_and_the_rest_after_flush_ms() {
        // Room for 3 records of 36 bytes after the 8-byte header.
        let mut b = Batcher::new(7, 8 + 3 * V4_LEN, 100);
        let mut out = Vec::new();
        for i in 0..7 {
            out.extend(b.push(&rec(i), i == 6, 1000 + u64::from(i)).unwrap());
        }
        assert_eq!(out.len(), 2, "two full messages");
        assert!(out.iter().all(|d| d.conns == 3 && d.templates == 0));
        assert_eq!(b.due(1000 + 6 + 99), None, "the 7th waits less than 100 ms");
        let last = b
            .due(1006 + 100)
            .expect("due 100 ms after its first record");
        assert_eq!((last.conns, last.templates), (0, 1));
        assert_eq!(b.due(5000), None, "nothing left");
        let m = Message::new_checked(&out[1].bytes[..]).unwrap();
        assert_eq!((m.syncid(), m.nr_conns()), (7, 3));
        let ports: Vec<u16> = m.records().map(|r| r.cport()).collect();
        assert_eq!(ports, vec![3, 4, 5], "in order");
    }

    #[test]
    fn the_flush_clock_starts_at_the_first_record_of_each_message() {
        let mut b = Batcher::new(0, 1472, 50);
        assert!(b.push(&rec(1), false, 0).unwrap().is_none());
        assert!(b.push(&rec(2), false, 40).unwrap().is_none());
        assert_eq!(b.due(49), None);
        assert_eq!(b.due(50).map(|d| d.conns), Some(2));
        assert!(b.push(&rec(3), false, 60).unwrap().is_none());
        assert_eq!(b.due(100), None, "a new message, a new clock");
        assert_eq!(b.due(110).map(|d| d.conns), Some(1));
    }
}
