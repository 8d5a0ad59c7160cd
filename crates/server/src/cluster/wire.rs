//! How the chat core's items travel in the cluster's stream
//! (docs/SCALING.md, "What the stream holds"): one subject per kind (and
//! per room for lines, so a room can be read or limited alone), the chat
//! codec's own encoding for lines and notices, JSON for operators' changes
//! and accounts, and headers naming the node and session that published.
//!
//! Subjects (room names hex-encoded, since a NATS subject token cannot hold
//! every character a room name may have):
//! - `udpchat.line.<hex room>`: a room line (`ServerMsg::Line`, its seq 0:
//!   the stream's sequence is its number);
//! - `udpchat.notice` / `udpchat.shared`: a notice for some rooms, to be
//!   delivered by every node / by every node but the publisher's;
//! - `udpchat.admin`: an `AdminChange`; `udpchat.account`: an account.

use std::collections::BTreeSet;

use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};
use udpchat_chat::ServerMsg;

use crate::chat::{ClusterPrivate, Fed, FedItem};
use crate::store::{Account, AdminChange};

/// Every subject of the stream.
pub const ALL: &str = "udpchat.>";
const LINE: &str = "udpchat.line.";
const NOTICE: &str = "udpchat.notice";
const SHARED: &str = "udpchat.shared";
const ADMIN: &str = "udpchat.admin";
const ACCOUNT: &str = "udpchat.account";
const PRIVATE: &str = "udpchat.private";

/// JetStream's de-duplication header: a resend with the same id within
/// the stream's duplicate window is stored once.
const MSG_ID: &str = "Nats-Msg-Id";
const NODE: &str = "Udpchat-Node";
const SESSION: &str = "Udpchat-Session";

/// One message to publish.
pub struct Outgoing {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct AccountRecord {
    folded: String,
    account: Option<Account>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn headers(node: u64, session: Option<u64>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(NODE, format!("{node:x}").as_str());
    if let Some(s) = session {
        h.insert(SESSION, format!("{s:x}").as_str());
    }
    h
}

/// Marks a client's request (origin 0: none) so that its resends through
/// any node within the stream's duplicate window are stored once.
fn dedupe(headers: &mut HeaderMap, origin: u64, id: u64) {
    if origin != 0 {
        headers.insert(MSG_ID, format!("{origin:x}.{id}").as_str());
    }
}

/// A room line; `origin` and `id` (the sending client's, §15.7) make
/// resends through any node one message.
pub fn line(node: u64, session: Option<u64>, origin_id: Option<(u64, u64)>, line: &udpchat_chat::Line) -> Outgoing {
    let mut headers = headers(node, session);
    if let Some((origin, id)) = origin_id {
        dedupe(&mut headers, origin, id);
    }
    let msg = ServerMsg::Line(udpchat_chat::Line { seq: 0, history: false, ..line.clone() });
    Outgoing { subject: format!("{LINE}{}", hex(line.room.as_bytes())), headers, payload: msg.to_bytes() }
}

/// A notice for `rooms`: the room names (NUL-separated: a room name has
/// no control characters), an empty name, then the encoded notice.
pub fn notice(node: u64, rooms: &BTreeSet<String>, msg: &ServerMsg, shared: bool) -> Outgoing {
    let mut payload = Vec::new();
    for room in rooms {
        payload.extend_from_slice(room.as_bytes());
        payload.push(0);
    }
    payload.push(0);
    payload.extend_from_slice(&msg.to_bytes());
    let subject = if shared { SHARED } else { NOTICE };
    Outgoing { subject: subject.to_owned(), headers: headers(node, None), payload }
}

pub fn admin(node: u64, change: &AdminChange) -> Outgoing {
    let payload = serde_json::to_vec(change).unwrap_or_default();
    Outgoing { subject: ADMIN.to_owned(), headers: headers(node, None), payload }
}

/// An account for every node's store (None: deleted), from `udpchat user`.
pub fn account(folded: &str, account: Option<&Account>) -> Outgoing {
    let record = AccountRecord { folded: folded.to_owned(), account: account.cloned() };
    let payload = serde_json::to_vec(&record).unwrap_or_default();
    Outgoing { subject: ACCOUNT.to_owned(), headers: headers(0, None), payload }
}

/// A private message; `origin_id` as for a line.
pub fn private(node: u64, session: u64, origin_id: (u64, u64), private: &ClusterPrivate) -> Outgoing {
    let mut headers = headers(node, Some(session));
    dedupe(&mut headers, origin_id.0, origin_id.1);
    let payload = serde_json::to_vec(private).unwrap_or_default();
    Outgoing { subject: PRIVATE.to_owned(), headers, payload }
}

/// Why a message of the stream is not a udpchat item.
#[derive(Debug, thiserror::Error)]
#[error("stream message {seq} on {subject} is not a udpchat item ({why}); skipped")]
pub struct Unreadable {
    pub seq: u64,
    pub subject: String,
    pub why: String,
}

/// Reads one message of the stream.
pub fn read(seq: u64, subject: &str, headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Fed, Unreadable> {
    let fail = |why: String| Unreadable { seq, subject: subject.to_owned(), why };
    let header = |name: &str| headers.and_then(|h| h.get(name)).and_then(|v| u64::from_str_radix(v.as_str(), 16).ok());
    let (node, session) = (header(NODE).unwrap_or(0), header(SESSION));
    let item = if let Some(room) = subject.strip_prefix(LINE) {
        let room = unhex(room).and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| fail("room".into()))?;
        match ServerMsg::decode(payload) {
            Ok(ServerMsg::Line(line)) if line.room == room => FedItem::Line(line),
            Ok(_) => return Err(fail("not a line of that room".into())),
            Err(e) => return Err(fail(e.to_string())),
        }
    } else if subject == NOTICE || subject == SHARED {
        let mut rooms = BTreeSet::new();
        let mut rest = payload;
        loop {
            let end = rest.iter().position(|&b| b == 0).ok_or_else(|| fail("rooms".into()))?;
            let (name, tail) = rest.split_at(end);
            rest = &tail[1..];
            if name.is_empty() {
                break;
            }
            rooms.insert(String::from_utf8(name.to_vec()).map_err(|e| fail(e.to_string()))?);
        }
        let msg = ServerMsg::decode(rest).map_err(|e| fail(e.to_string()))?;
        FedItem::Notice { rooms, msg, shared: subject == SHARED }
    } else if subject == ADMIN {
        FedItem::Admin(serde_json::from_slice(payload).map_err(|e| fail(e.to_string()))?)
    } else if subject == PRIVATE {
        FedItem::Private(serde_json::from_slice(payload).map_err(|e| fail(e.to_string()))?)
    } else if subject == ACCOUNT {
        let record: AccountRecord = serde_json::from_slice(payload).map_err(|e| fail(e.to_string()))?;
        FedItem::Account { folded: record.folded, account: record.account }
    } else {
        return Err(fail("unknown subject".into()));
    };
    Ok(Fed { seq, node, session, item })
}

/// The key of a nickname's lease: KV keys allow few characters.
pub fn lease_key(folded: &str) -> String {
    format!("n{}", hex(folded.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_chat::{Line, LineKind, NoticeKind};

    #[test]
    fn items_read_back_as_published() {
        let l = Line {
            room: "café".into(),
            seq: 0,
            time_ms: 5,
            from: "ana".into(),
            text: "hi".into(),
            kind: LineKind::Normal,
            history: false,
        };
        let out = line(7, Some(9), Some((0xab, 3)), &l);
        assert_eq!(out.headers.get(MSG_ID).unwrap().as_str(), "ab.3");
        let fed = read(42, &out.subject, Some(&out.headers), &out.payload).unwrap();
        assert_eq!((fed.seq, fed.node, fed.session), (42, 7, Some(9)));
        assert!(matches!(fed.item, FedItem::Line(got) if got == l));

        let rooms = BTreeSet::from(["a".to_owned(), "b".to_owned()]);
        let msg = ServerMsg::Notice {
            room: String::new(),
            kind: NoticeKind::Quit,
            nick: "ana".into(),
            text: "bye".into(),
            time_ms: 1,
        };
        let out = notice(7, &rooms, &msg, true);
        let fed = read(43, &out.subject, Some(&out.headers), &out.payload).unwrap();
        assert!(matches!(fed.item, FedItem::Notice { rooms: r, msg: m, shared: true } if r == rooms && m == msg));

        let change = AdminChange::Ban { target: "bob".into(), expires_ms: 0, reason: "spam".into() };
        let out = admin(7, &change);
        let fed = read(44, &out.subject, Some(&out.headers), &out.payload).unwrap();
        assert!(matches!(fed.item, FedItem::Admin(c) if c == change));

        assert!(read(45, "udpchat.line.zz", None, b"x").is_err());
        assert!(read(46, "udpchat.notice", None, b"no nul").is_err());
        assert_eq!(lease_key("Ana"), "n416e61");
    }
}
