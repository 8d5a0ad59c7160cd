//! What the front end asked to send, from the request to the server's
//! answer: requests wait in the outbox while logging in or reconnecting;
//! lines and private messages (the requests with an id, acknowledged by
//! `Ack` or refused by `Error`, docs/PROTOCOL.md "Acknowledgements") are
//! then kept as unacknowledged until the answer comes. When a session ends
//! before the answer, they go back to the front of the queue, in order and
//! with the same ids, to be sent again by the next session (the server
//! recognises a resend by the Login origin and stores it once, issue 10);
//! only when the client stops are they reported as unconfirmed.

use std::collections::{BTreeMap, VecDeque};

use udpchat_chat::ClientMsg;

/// Requests held while logging in, reconnecting or pacing. The driver
/// stops taking requests from the front end while this many wait, so the
/// front end waits (back-pressure) and nothing is dropped; a caller that
/// pushes past it anyway loses the oldest (reported as unconfirmed).
pub const MAX_OUTBOX: usize = 1000;
/// Lines awaiting their acknowledgement; beyond this the oldest is given
/// up on and reported as unconfirmed at once. The server answers every
/// line, so only a stalled session gets here.
pub const MAX_UNACKED: usize = 10_000;

/// The request id of a message the server acknowledges.
pub fn request_id(msg: &ClientMsg) -> Option<u64> {
    match msg {
        ClientMsg::Say { id, .. } | ClientMsg::Private { id, .. } => Some(*id),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<ClientMsg>,
    /// By id, so the oldest is the first.
    unacked: BTreeMap<u64, ClientMsg>,
    /// Lines given up on before their session ended (dropped from a full
    /// outbox or past [`MAX_UNACKED`]), reported with the others.
    lost: Vec<u64>,
}

impl Outbox {
    pub fn push(&mut self, msg: ClientMsg) {
        if self.queue.len() >= MAX_OUTBOX
            && let Some(id) = self.queue.pop_front().as_ref().and_then(request_id)
        {
            self.lost.push(id);
        }
        self.queue.push_back(msg);
    }

    /// Whether the queue is full: take no more requests for now.
    pub fn is_full(&self) -> bool {
        self.queue.len() >= MAX_OUTBOX
    }

    /// Nothing queued and nothing awaiting an answer.
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.unacked.is_empty()
    }

    /// Lines (requests with an id) queued or awaiting their answer.
    pub fn lines_pending(&self) -> usize {
        self.unacked.len() + self.queue.iter().filter(|m| request_id(m).is_some()).count()
    }

    /// The session ended: every line sent and not answered goes back to
    /// the front of the queue, in id order, to be sent again unchanged.
    pub fn requeue_unacked(&mut self) {
        let unacked = std::mem::take(&mut self.unacked);
        for (_, msg) in unacked.into_iter().rev() {
            self.queue.push_front(msg);
        }
    }

    pub fn front(&self) -> Option<&ClientMsg> {
        self.queue.front()
    }

    /// The front message went out; returns it.
    pub fn sent(&mut self) -> Option<ClientMsg> {
        let msg = self.queue.pop_front()?;
        if let Some(id) = request_id(&msg) {
            self.unacked.insert(id, msg.clone());
            if self.unacked.len() > MAX_UNACKED
                && let Some((old, _)) = self.unacked.pop_first()
            {
                self.lost.push(old);
            }
        }
        Some(msg)
    }

    /// The answer for `id` came (an Ack or an Error): the line as sent.
    pub fn answered(&mut self, id: u64) -> Option<ClientMsg> {
        self.unacked.remove(&id)
    }

    /// The session ended and the server cannot tell a resend (it never
    /// sent `Limits`, so it predates origins): every line sent and not
    /// answered, and those given up on, in id order; queued lines stay.
    pub fn unconfirmed_sent(&mut self) -> Vec<u64> {
        let mut ids = std::mem::take(&mut self.lost);
        ids.extend(std::mem::take(&mut self.unacked).into_keys());
        ids.sort_unstable();
        ids
    }

    /// The client stops: every line not answered (sent or still queued)
    /// and those given up on, in id order; the queue is emptied.
    pub fn unconfirmed(&mut self) -> Vec<u64> {
        let mut ids = std::mem::take(&mut self.lost);
        ids.extend(std::mem::take(&mut self.unacked).into_keys());
        ids.extend(std::mem::take(&mut self.queue).iter().filter_map(request_id));
        ids.sort_unstable();
        ids
    }

    /// Requests waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(id: u64) -> ClientMsg {
        ClientMsg::Say { id, room: "r".into(), text: "t".into(), action: false }
    }

    #[test]
    fn sent_lines_wait_for_their_answer() {
        let mut o = Outbox::default();
        o.push(say(1));
        o.push(ClientMsg::List);
        o.push(say(2));
        assert!(o.sent().is_some());
        assert!(o.sent().is_some());
        assert_eq!(o.queued(), 1);
        assert!(o.answered(1).is_some());
        assert!(o.answered(1).is_none());
        o.sent();
        assert!(!o.is_idle());
        o.push(say(3));
        assert_eq!(o.unconfirmed(), vec![2, 3], "sent and queued lines both count");
        assert!(o.is_idle());
    }

    #[test]
    fn unanswered_lines_go_back_in_order_before_the_queue() {
        let mut o = Outbox::default();
        for id in 1..=3 {
            o.push(say(id));
            o.sent();
        }
        o.push(say(4));
        o.answered(2);
        o.requeue_unacked();
        let ids: Vec<u64> = std::iter::from_fn(|| o.sent()).filter_map(|m| request_id(&m)).collect();
        assert_eq!(ids, [1, 3, 4]);
        assert_eq!(o.lines_pending(), 3);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_reports_it() {
        let mut o = Outbox::default();
        for id in 1..=MAX_OUTBOX as u64 + 1 {
            o.push(say(id));
        }
        assert_eq!(o.queued(), MAX_OUTBOX);
        assert_eq!(o.lost, vec![1]);
        assert_eq!(o.unconfirmed().len(), MAX_OUTBOX + 1, "the lost one is reported with the rest");
    }
}
