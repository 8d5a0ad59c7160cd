//! The bytes of the chat messages (docs/PROTOCOL.md §15): encoding,
//! decoding that never trusts the peer, and [`LineRef`], a room line read
//! in place for receivers that see millions of them.

use super::*;
use udpchat_proto::coding::{DecodeError, Reader, Writer};

mod ty {
    pub const LOGIN: u8 = 0x01;
    pub const SAY: u8 = 0x02;
    pub const JOIN: u8 = 0x03;
    pub const PART: u8 = 0x04;
    pub const LIST: u8 = 0x05;
    pub const WHO: u8 = 0x06;
    pub const NICK: u8 = 0x07;
    pub const PRIVATE: u8 = 0x08;
    pub const TOPIC: u8 = 0x09;
    pub const QUIT: u8 = 0x0a;
    pub const KICK: u8 = 0x0b;
    pub const BAN: u8 = 0x0c;
    pub const HISTORY: u8 = 0x0d;
    pub const UNBAN: u8 = 0x0e;

    pub const WELCOME: u8 = 0x81;
    pub const LOGIN_REFUSED: u8 = 0x82;
    pub const LINE: u8 = 0x83;
    pub const ACK: u8 = 0x84;
    pub const ERROR: u8 = 0x85;
    pub const JOINED: u8 = 0x86;
    pub const PARTED: u8 = 0x87;
    pub const NOTICE: u8 = 0x88;
    pub const ROOM_LIST: u8 = 0x89;
    pub const MEMBERS: u8 = 0x8a;
    pub const PRIVATE_LINE: u8 = 0x8b;
    pub const TOPIC_IS: u8 = 0x8c;
    pub const LIMITS: u8 = 0x8d;
}

struct MsgReader<'a> {
    r: Reader<'a>,
    id: u64,
}

impl<'a> MsgReader<'a> {
    fn err(&self, kind: MsgErrorKind) -> MsgError {
        MsgError { id: self.id, kind }
    }
    fn varint(&mut self) -> Result<u64, MsgError> {
        self.r.varint().map_err(|_: DecodeError| self.err(MsgErrorKind::Malformed))
    }
    fn id(&mut self) -> Result<u64, MsgError> {
        self.id = self.varint()?;
        Ok(self.id)
    }
    fn str(&mut self) -> Result<&'a str, MsgError> {
        let bytes = self.r.varint_bytes().map_err(|_| self.err(MsgErrorKind::Malformed))?;
        std::str::from_utf8(bytes).map_err(|_| self.err(MsgErrorKind::InvalidUtf8))
    }
    fn string(&mut self) -> Result<String, MsgError> {
        self.str().map(str::to_owned)
    }
    fn strings(&mut self) -> Result<Vec<String>, MsgError> {
        let n = self.varint()?;
        // Each string takes at least one byte: a count above the remaining
        // length is malformed, and the allocation stays bounded.
        if n > self.r.remaining() as u64 {
            return Err(self.err(MsgErrorKind::Malformed));
        }
        (0..n).map(|_| self.string()).collect()
    }
    fn flag(&mut self) -> Result<bool, MsgError> {
        match self.varint()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.err(MsgErrorKind::Malformed)),
        }
    }
    fn kind<T>(&mut self, f: fn(u64) -> Option<T>) -> Result<T, MsgError> {
        let v = self.varint()?;
        f(v).ok_or(self.err(MsgErrorKind::Malformed))
    }
    /// An optional trailing varint (§15.1): absent means 0.
    fn optional_varint(&mut self) -> Result<u64, MsgError> {
        if self.r.is_empty() { Ok(0) } else { self.varint() }
    }
    fn end(&self) -> Result<(), MsgError> {
        if self.r.is_empty() { Ok(()) } else { Err(self.err(MsgErrorKind::Malformed)) }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.put_varint_bytes(s.as_bytes());
}

impl ClientMsg {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ClientMsg::Login { nick, server_password, account_password, resume, private_since, origin } => {
                out.put_u8(ty::LOGIN);
                put_str(out, nick);
                put_str(out, server_password);
                put_str(out, account_password);
                out.put_varint(resume.len() as u64);
                for (room, since) in resume {
                    put_str(out, room);
                    out.put_varint(*since);
                }
                out.put_varint(*private_since);
                // Optional: left out when 0, so a Login without an origin
                // is byte for byte what it was before origins existed.
                if *origin != 0 {
                    out.put_varint(*origin);
                }
            }
            ClientMsg::Say { id, room, text, action } => {
                out.put_u8(ty::SAY);
                out.put_varint(*id);
                put_str(out, room);
                put_str(out, text);
                out.put_varint(u64::from(*action));
            }
            ClientMsg::Join { room } => {
                out.put_u8(ty::JOIN);
                put_str(out, room);
            }
            ClientMsg::Part { room, reason } => {
                out.put_u8(ty::PART);
                put_str(out, room);
                put_str(out, reason);
            }
            ClientMsg::List => out.put_u8(ty::LIST),
            ClientMsg::Who { room } => {
                out.put_u8(ty::WHO);
                put_str(out, room);
            }
            ClientMsg::Nick { nick } => {
                out.put_u8(ty::NICK);
                put_str(out, nick);
            }
            ClientMsg::Private { id, to, text } => {
                out.put_u8(ty::PRIVATE);
                out.put_varint(*id);
                put_str(out, to);
                put_str(out, text);
            }
            ClientMsg::Topic { room, topic } => {
                out.put_u8(ty::TOPIC);
                put_str(out, room);
                match topic {
                    None => out.put_varint(0),
                    Some(t) => {
                        out.put_varint(1);
                        put_str(out, t);
                    }
                }
            }
            ClientMsg::Quit { reason } => {
                out.put_u8(ty::QUIT);
                put_str(out, reason);
            }
            ClientMsg::Kick { room, nick, reason } => {
                out.put_u8(ty::KICK);
                put_str(out, room);
                put_str(out, nick);
                put_str(out, reason);
            }
            ClientMsg::Ban { target, reason, expires_secs } => {
                out.put_u8(ty::BAN);
                put_str(out, target);
                put_str(out, reason);
                if *expires_secs != 0 {
                    out.put_varint(*expires_secs);
                }
            }
            ClientMsg::Unban { target } => {
                out.put_u8(ty::UNBAN);
                put_str(out, target);
            }
            ClientMsg::History { room, before, limit } => {
                out.put_u8(ty::HISTORY);
                put_str(out, room);
                out.put_varint(*before);
                out.put_varint(*limit);
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MsgError> {
        let mut m = MsgReader { r: Reader::new(bytes), id: 0 };
        let t = m.r.u8().map_err(|_| m.err(MsgErrorKind::Malformed))?;
        let msg = match t {
            ty::LOGIN => {
                let nick = m.string()?;
                let server_password = m.string()?;
                let account_password = m.string()?;
                let n = m.varint()?;
                if n > m.r.remaining() as u64 {
                    return Err(m.err(MsgErrorKind::Malformed));
                }
                let mut resume = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    resume.push((m.string()?, m.varint()?));
                }
                let private_since = m.varint()?;
                ClientMsg::Login {
                    nick,
                    server_password,
                    account_password,
                    resume,
                    private_since,
                    origin: m.optional_varint()?,
                }
            }
            ty::SAY => {
                let id = m.id()?;
                ClientMsg::Say { id, room: m.string()?, text: m.string()?, action: m.flag()? }
            }
            ty::JOIN => ClientMsg::Join { room: m.string()? },
            ty::PART => ClientMsg::Part { room: m.string()?, reason: m.string()? },
            ty::LIST => ClientMsg::List,
            ty::WHO => ClientMsg::Who { room: m.string()? },
            ty::NICK => ClientMsg::Nick { nick: m.string()? },
            ty::PRIVATE => {
                let id = m.id()?;
                ClientMsg::Private { id, to: m.string()?, text: m.string()? }
            }
            ty::TOPIC => {
                let room = m.string()?;
                let topic = if m.flag()? { Some(m.string()?) } else { None };
                ClientMsg::Topic { room, topic }
            }
            ty::QUIT => ClientMsg::Quit { reason: m.string()? },
            ty::KICK => ClientMsg::Kick { room: m.string()?, nick: m.string()?, reason: m.string()? },
            ty::BAN => ClientMsg::Ban { target: m.string()?, reason: m.string()?, expires_secs: m.optional_varint()? },
            ty::UNBAN => ClientMsg::Unban { target: m.string()? },
            ty::HISTORY => ClientMsg::History { room: m.string()?, before: m.varint()?, limit: m.varint()? },
            _ => return Err(m.err(MsgErrorKind::UnknownType)),
        };
        m.end()?;
        Ok(msg)
    }
}

impl ServerMsg {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ServerMsg::Welcome { nick, server_name, motd, operator } => {
                out.put_u8(ty::WELCOME);
                put_str(out, nick);
                put_str(out, server_name);
                put_str(out, motd);
                out.put_varint(u64::from(*operator));
            }
            ServerMsg::LoginRefused { code, text } => {
                out.put_u8(ty::LOGIN_REFUSED);
                out.put_varint(*code as u64);
                put_str(out, text);
            }
            ServerMsg::Line(line) => {
                out.put_u8(ty::LINE);
                put_str(out, &line.room);
                out.put_varint(line.seq);
                out.put_varint(line.time_ms);
                put_str(out, &line.from);
                put_str(out, &line.text);
                out.put_varint(line.kind as u64);
                out.put_varint(u64::from(line.history));
            }
            ServerMsg::Ack { id, room, seq } => {
                out.put_u8(ty::ACK);
                out.put_varint(*id);
                put_str(out, room);
                out.put_varint(*seq);
            }
            ServerMsg::Error { id, code, text } => {
                out.put_u8(ty::ERROR);
                out.put_varint(*id);
                out.put_varint(*code as u64);
                put_str(out, text);
            }
            ServerMsg::Joined { room, topic, members, head } => {
                out.put_u8(ty::JOINED);
                put_str(out, room);
                put_str(out, topic);
                out.put_varint(members.len() as u64);
                for m in members {
                    put_str(out, m);
                }
                out.put_varint(*head);
            }
            ServerMsg::Parted { room } => {
                out.put_u8(ty::PARTED);
                put_str(out, room);
            }
            ServerMsg::Notice { room, kind, nick, text, time_ms } => {
                out.put_u8(ty::NOTICE);
                put_str(out, room);
                out.put_varint(*kind as u64);
                put_str(out, nick);
                put_str(out, text);
                out.put_varint(*time_ms);
            }
            ServerMsg::RoomList { rooms } => {
                out.put_u8(ty::ROOM_LIST);
                out.put_varint(rooms.len() as u64);
                for r in rooms {
                    put_str(out, &r.name);
                    out.put_varint(r.members);
                    put_str(out, &r.topic);
                }
            }
            ServerMsg::Members { room, nicks } => {
                out.put_u8(ty::MEMBERS);
                put_str(out, room);
                out.put_varint(nicks.len() as u64);
                for n in nicks {
                    put_str(out, n);
                }
            }
            ServerMsg::Private { id, seq, from, to, text, time_ms, history } => {
                out.put_u8(ty::PRIVATE_LINE);
                out.put_varint(*id);
                out.put_varint(*seq);
                put_str(out, from);
                put_str(out, to);
                put_str(out, text);
                out.put_varint(*time_ms);
                out.put_varint(u64::from(*history));
            }
            ServerMsg::Limits { max_line_bytes, rate_burst, rate_milli } => {
                out.put_u8(ty::LIMITS);
                out.put_varint(*max_line_bytes);
                out.put_varint(*rate_burst);
                out.put_varint(*rate_milli);
            }
            ServerMsg::Topic { room, topic } => {
                out.put_u8(ty::TOPIC_IS);
                put_str(out, room);
                put_str(out, topic);
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MsgError> {
        let mut m = MsgReader { r: Reader::new(bytes), id: 0 };
        let t = m.r.u8().map_err(|_| m.err(MsgErrorKind::Malformed))?;
        let msg = match t {
            ty::WELCOME => ServerMsg::Welcome {
                nick: m.string()?,
                server_name: m.string()?,
                motd: m.string()?,
                operator: m.flag()?,
            },
            ty::LOGIN_REFUSED => ServerMsg::LoginRefused { code: m.kind(RefuseCode::from_byte)?, text: m.string()? },
            ty::LINE => ServerMsg::Line(LineRef::read(&mut m)?.to_owned()),
            ty::ACK => ServerMsg::Ack { id: m.varint()?, room: m.string()?, seq: m.varint()? },
            ty::ERROR => ServerMsg::Error { id: m.varint()?, code: m.kind(ErrorCode::from_byte)?, text: m.string()? },
            ty::JOINED => {
                ServerMsg::Joined { room: m.string()?, topic: m.string()?, members: m.strings()?, head: m.varint()? }
            }
            ty::PARTED => ServerMsg::Parted { room: m.string()? },
            ty::NOTICE => ServerMsg::Notice {
                room: m.string()?,
                kind: m.kind(NoticeKind::from_byte)?,
                nick: m.string()?,
                text: m.string()?,
                time_ms: m.varint()?,
            },
            ty::ROOM_LIST => {
                let n = m.varint()?;
                if n > m.r.remaining() as u64 {
                    return Err(m.err(MsgErrorKind::Malformed));
                }
                let mut rooms = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    rooms.push(RoomInfo { name: m.string()?, members: m.varint()?, topic: m.string()? });
                }
                ServerMsg::RoomList { rooms }
            }
            ty::MEMBERS => ServerMsg::Members { room: m.string()?, nicks: m.strings()? },
            ty::PRIVATE_LINE => ServerMsg::Private {
                id: m.varint()?,
                seq: m.varint()?,
                from: m.string()?,
                to: m.string()?,
                text: m.string()?,
                time_ms: m.varint()?,
                history: m.flag()?,
            },
            ty::TOPIC_IS => ServerMsg::Topic { room: m.string()?, topic: m.string()? },
            ty::LIMITS => {
                ServerMsg::Limits { max_line_bytes: m.varint()?, rate_burst: m.varint()?, rate_milli: m.varint()? }
            }
            _ => return Err(m.err(MsgErrorKind::UnknownType)),
        };
        m.end()?;
        Ok(msg)
    }
}

/// A room line read in place, its strings borrowed from the message: for
/// readers that only look at lines and see millions of them (`udpchat
/// bench`). [`ServerMsg::decode`] gives the owned [`Line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRef<'a> {
    pub room: &'a str,
    pub seq: u64,
    pub time_ms: u64,
    pub from: &'a str,
    pub text: &'a str,
    pub kind: LineKind,
    pub history: bool,
}

impl<'a> LineRef<'a> {
    /// The line in `bytes`, or `Ok(None)` when the message is another
    /// kind (decode those with [`ServerMsg::decode`]).
    pub fn decode(bytes: &'a [u8]) -> Result<Option<Self>, MsgError> {
        if bytes.first() != Some(&ty::LINE) {
            return Ok(None);
        }
        let mut m = MsgReader { r: Reader::new(&bytes[1..]), id: 0 };
        let line = Self::read(&mut m)?;
        m.end()?;
        Ok(Some(line))
    }

    fn read(m: &mut MsgReader<'a>) -> Result<Self, MsgError> {
        Ok(Self {
            room: m.str()?,
            seq: m.varint()?,
            time_ms: m.varint()?,
            from: m.str()?,
            text: m.str()?,
            kind: m.kind(LineKind::from_byte)?,
            history: m.flag()?,
        })
    }

    pub fn to_owned(&self) -> Line {
        Line {
            room: self.room.to_owned(),
            seq: self.seq,
            time_ms: self.time_ms,
            from: self.from.to_owned(),
            text: self.text.to_owned(),
            kind: self.kind,
            history: self.history,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn client_samples() -> Vec<ClientMsg> {
        vec![
            ClientMsg::Login {
                nick: "ana".into(),
                server_password: "GAS1".into(),
                account_password: String::new(),
                resume: vec![("lobby".into(), 41), ("rust".into(), 0)],
                private_since: 7,
                origin: 0,
            },
            ClientMsg::Login {
                nick: "ana".into(),
                server_password: String::new(),
                account_password: String::new(),
                resume: Vec::new(),
                private_since: 0,
                origin: 0x1234_5678_9abc,
            },
            ClientMsg::Say { id: 7, room: "lobby".into(), text: "héllo".into(), action: true },
            ClientMsg::Join { room: "rust".into() },
            ClientMsg::Part { room: "rust".into(), reason: "bye".into() },
            ClientMsg::List,
            ClientMsg::Who { room: "lobby".into() },
            ClientMsg::Nick { nick: "bob".into() },
            ClientMsg::Private { id: 9, to: "bob".into(), text: "psst".into() },
            ClientMsg::Topic { room: "lobby".into(), topic: None },
            ClientMsg::Topic { room: "lobby".into(), topic: Some("news".into()) },
            ClientMsg::Quit { reason: String::new() },
            ClientMsg::Kick { room: "lobby".into(), nick: "eve".into(), reason: "spam".into() },
            ClientMsg::Ban { target: "eve".into(), reason: "spam".into(), expires_secs: 0 },
            ClientMsg::Ban { target: "10.0.0.9".into(), reason: String::new(), expires_secs: 3600 },
            ClientMsg::Unban { target: "eve".into() },
            ClientMsg::History { room: "lobby".into(), before: 100, limit: 50 },
        ]
    }

    fn server_samples() -> Vec<ServerMsg> {
        vec![
            ServerMsg::Welcome { nick: "ana".into(), server_name: "udpchat".into(), motd: "hi".into(), operator: true },
            ServerMsg::LoginRefused { code: RefuseCode::NickTaken, text: "taken".into() },
            ServerMsg::Line(Line {
                room: "lobby".into(),
                seq: 5,
                time_ms: 1_700_000_000_000,
                from: "ana".into(),
                text: "hello".into(),
                kind: LineKind::Operator,
                history: true,
            }),
            ServerMsg::Ack { id: 7, room: "lobby".into(), seq: 5 },
            ServerMsg::Error { id: 7, code: ErrorCode::LineTooLong, text: "too long".into() },
            ServerMsg::Joined {
                room: "rust".into(),
                topic: String::new(),
                members: vec!["a".into(), "b".into()],
                head: 9,
            },
            ServerMsg::Parted { room: "rust".into() },
            ServerMsg::Notice {
                room: String::new(),
                kind: NoticeKind::Server,
                nick: String::new(),
                text: "bye".into(),
                time_ms: 1,
            },
            ServerMsg::RoomList { rooms: vec![RoomInfo { name: "lobby".into(), members: 3, topic: "t".into() }] },
            ServerMsg::Members { room: "lobby".into(), nicks: vec!["a".into()] },
            ServerMsg::Private {
                id: 3,
                seq: 4,
                from: "a".into(),
                to: "b".into(),
                text: "x".into(),
                time_ms: 2,
                history: false,
            },
            ServerMsg::Topic { room: "lobby".into(), topic: "t".into() },
            ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 5, rate_milli: 2000 },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in client_samples() {
            assert_eq!(ClientMsg::decode(&m.to_bytes()), Ok(m));
        }
        for m in server_samples() {
            assert_eq!(ServerMsg::decode(&m.to_bytes()), Ok(m));
        }
    }

    #[test]
    fn line_views_agree_with_owned_lines() {
        for m in server_samples() {
            let bytes = m.to_bytes();
            match (&m, LineRef::decode(&bytes)) {
                (ServerMsg::Line(line), Ok(Some(view))) => assert_eq!(&view.to_owned(), line),
                (ServerMsg::Line(_), other) => panic!("line not viewed: {other:?}"),
                (_, other) => assert_eq!(other, Ok(None)),
            }
        }
    }

    #[test]
    fn invalid_utf8_names_the_request() {
        let mut bytes = vec![ty::SAY, 42];
        put_str(&mut bytes, "lobby");
        bytes.put_varint_bytes(&[0xff, 0xfe]);
        bytes.put_varint(0);
        assert_eq!(ClientMsg::decode(&bytes), Err(MsgError { id: 42, kind: MsgErrorKind::InvalidUtf8 }));
    }

    #[test]
    fn trailing_bytes_and_unknown_types_are_errors() {
        let mut bytes = ClientMsg::List.to_bytes();
        bytes.push(0);
        assert_eq!(ClientMsg::decode(&bytes).unwrap_err().kind, MsgErrorKind::Malformed);
        assert_eq!(ClientMsg::decode(&[0x7f]).unwrap_err().kind, MsgErrorKind::UnknownType);
        assert_eq!(ClientMsg::decode(&[]).unwrap_err().kind, MsgErrorKind::Malformed);
    }

    #[test]
    fn optional_fields_are_absent_when_zero_and_nothing_may_follow_them() {
        // A Login without an origin is byte for byte the Login of before
        // origins (a client written to the older spec keeps working).
        let login = |origin| ClientMsg::Login {
            nick: "ana".into(),
            server_password: String::new(),
            account_password: String::new(),
            resume: Vec::new(),
            private_since: 0,
            origin,
        };
        let old = login(0).to_bytes();
        assert_eq!(old, [0x01, 3, b'a', b'n', b'a', 0, 0, 0, 0]);
        let mut with = login(9).to_bytes();
        assert_eq!(with.len(), old.len() + 1);
        with.push(0);
        assert_eq!(ClientMsg::decode(&with).unwrap_err().kind, MsgErrorKind::Malformed);
        let ban = ClientMsg::Ban { target: "eve".into(), reason: String::new(), expires_secs: 0 };
        assert_eq!(ban.to_bytes(), [0x0c, 3, b'e', b'v', b'e', 0]);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ClientMsg::decode(&bytes);
            let _ = ServerMsg::decode(&bytes);
            let _ = LineRef::decode(&bytes);
        }
    }
}
