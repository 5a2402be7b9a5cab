//! Port groups: several engines of one process serving one port, each with its own
//! listener (SO_REUSEPORT: the kernel spreads connections between them) and its own JS
//! thread (`serve({ module, workers })`). What the group shares lives here, in a
//! process-global registry keyed by the group's address:
//!
//! - a publish given to one engine is handed to every other engine's inboxes too, and each
//!   frames it once for its own subscribers;
//! - subscriber counts: each engine of a group keeps a count per topic, summed on demand;
//! - figures: a snapshot of any member (its metrics route, `app.metrics()`) sums the group,
//!   and each member's own figures say how the kernel spread the connections;
//! - the drain: announced for the group, every member's health route answers 503.
//!
//! A member is held weakly: an engine that is dropped (its worker ended) leaves the group.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::accept_point::{AcceptPoint, Seats};
use super::reply::{Inbox, ALL_THREADS};
use super::{listener, Shared};
use crate::ops::Snapshot;

/// How an engine stands in its port group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRole {
    /// The first: binds the port (refused if another process holds it; port 0 picks one)
    /// and opens it to the others.
    Founds,
    /// Binds the port the founder holds, with SO_REUSEPORT.
    Joins,
}

/// An engine's place in a port group (`Config::port_group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupJoin {
    pub role: GroupRole,
    /// The member's number (a worker's id), for the figures per member.
    pub member: u32,
}

/// Subscribers per topic on one engine (all its threads).
pub(crate) type TopicCounts = Mutex<HashMap<Box<[u8]>, u32>>;

struct Member {
    id: u32,
    shared: Weak<Shared>,
}

pub struct PortGroup {
    addr: SocketAddr,
    members: Mutex<Vec<Member>>,
    draining: AtomicBool,
    /// The group's one listener, where connections are handed out (`Balance::Handoff`):
    /// the group's rather than a member's, so that it outlives a member that crashes.
    accept_point: Mutex<Option<AcceptPoint>>,
}

static GROUPS: Mutex<Vec<Weak<PortGroup>>> = Mutex::new(Vec::new());

impl PortGroup {
    /// The live group on `addr`, if any.
    pub fn find(addr: SocketAddr) -> Option<Arc<PortGroup>> {
        let mut groups = GROUPS.lock().unwrap();
        groups.retain(|g| g.strong_count() > 0);
        groups
            .iter()
            .filter_map(Weak::upgrade)
            .find(|g| g.addr == addr)
    }

    /// The group on `addr`, made if there is none. A founder always starts a new one: a
    /// group whose engines are all gone may still be referenced by a late reader.
    pub(crate) fn enter(addr: SocketAddr, role: GroupRole) -> Arc<PortGroup> {
        if role == GroupRole::Joins {
            if let Some(g) = PortGroup::find(addr) {
                return g;
            }
        }
        let group = Arc::new(PortGroup {
            addr,
            members: Mutex::new(Vec::new()),
            draining: AtomicBool::new(false),
            accept_point: Mutex::new(None),
        });
        let mut groups = GROUPS.lock().unwrap();
        groups.retain(|g| g.strong_count() > 0 && g.upgrade().is_some_and(|g| g.addr != addr));
        groups.push(Arc::downgrade(&group));
        group
    }

    pub(crate) fn join(&self, member: u32, shared: &Arc<Shared>) {
        let mut members = self.members.lock().unwrap();
        members.retain(|m| m.shared.strong_count() > 0);
        members.push(Member {
            id: member,
            shared: Arc::downgrade(shared),
        });
    }

    /// Takes an engine out of the group (it is going away).
    pub(crate) fn leave(&self, shared: &Arc<Shared>) {
        let gone = Arc::as_ptr(shared);
        self.members
            .lock()
            .unwrap()
            .retain(|m| m.shared.strong_count() > 0 && m.shared.as_ptr() != gone);
    }

    /// Starts the group's accept point on `bound` (the founder's listener), or on a listener
    /// bound now (a member joining a group whose accept point stopped: every member had
    /// gone), unless one runs already.
    pub(crate) fn ensure_accept_point(
        self: &Arc<PortGroup>,
        bound: Option<std::net::TcpListener>,
    ) -> std::io::Result<()> {
        let mut point = self.accept_point.lock().unwrap();
        if point.as_ref().is_some_and(AcceptPoint::running) {
            return Ok(());
        }
        let listener = match bound {
            Some(l) => l,
            None => listener::bind(self.addr, listener::Group::Alone)?,
        };
        *point = Some(AcceptPoint::start(
            listener,
            Seats::Group(Arc::downgrade(self)),
        )?);
        Ok(())
    }

    /// A member began to shut down: once every member has, the group's accept point stops
    /// and the port refuses connections.
    pub(crate) fn member_stopping(&self) {
        if self
            .live()
            .iter()
            .all(|(_, s)| s.shutdown.load(Ordering::SeqCst))
        {
            if let Some(point) = self.accept_point.lock().unwrap().as_ref() {
                point.stop();
            }
        }
    }

    /// The engines alive in the group, in order of joining.
    pub(crate) fn serving(&self) -> Vec<Arc<Shared>> {
        self.live().into_iter().map(|(_, s)| s).collect()
    }

    /// The engines alive in the group, with their member numbers, in order of joining.
    fn live(&self) -> Vec<(u32, Arc<Shared>)> {
        let members = self.members.lock().unwrap();
        members
            .iter()
            .filter_map(|m| m.shared.upgrade().map(|s| (m.id, s)))
            .collect()
    }

    /// Hands publish ops (a run of `ALL_THREADS` ops one engine was given) to every other
    /// engine of the group. The socket an op leaves out lives on the sending engine: for
    /// the others it names nobody.
    pub(crate) fn forward(&self, from: &Arc<[Inbox]>, ops: &[u8]) {
        let peers = self.live();
        if peers.len() < 2 {
            return;
        }
        let mut copy = ops.to_vec();
        let mut at = 0;
        while at + 20 <= copy.len() {
            let len = u32::from_le_bytes(copy[at..at + 4].try_into().unwrap()) as usize;
            if len < 20 || at + len > copy.len() {
                break;
            }
            if copy[at + 5] == ALL_THREADS {
                copy[at + 7] = 0; // the status's high byte: the thread left out, plus one
            }
            at += len;
        }
        for (_, peer) in peers {
            // An engine that stopped serving reads its inbox no more.
            if Arc::ptr_eq(&peer.replier.inboxes, from) || peer.shutdown.load(Ordering::Relaxed) {
                continue;
            }
            for inbox in peer.replier.inboxes.iter() {
                inbox.push_from_afar(&copy);
            }
        }
    }

    /// Sockets subscribed to `topic` on the group's engines but `except` (the asking one,
    /// which counts its own).
    pub(crate) fn subscriber_count(&self, topic: &[u8], except: Option<&Arc<[Inbox]>>) -> u64 {
        let mut n = 0;
        for (_, peer) in self.live() {
            if except.is_some_and(|e| Arc::ptr_eq(&peer.replier.inboxes, e)) {
                continue;
            }
            if let Some(counts) = &peer.topic_counts {
                n += counts.lock().unwrap().get(topic).copied().unwrap_or(0) as u64;
            }
        }
        n
    }

    /// The figures of every member, summed.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let mut sum: Option<Snapshot> = None;
        for (_, peer) in self.live() {
            let s = peer.own_snapshot();
            match &mut sum {
                None => sum = Some(s),
                Some(total) => total.add(&s),
            }
        }
        sum
    }

    /// Each member's own figures, by member number.
    pub fn members(&self) -> Vec<(u32, Snapshot)> {
        self.live()
            .into_iter()
            .map(|(id, s)| (id, s.own_snapshot()))
            .collect()
    }

    /// From now on every member's health route answers `503 draining`.
    pub fn announce_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
