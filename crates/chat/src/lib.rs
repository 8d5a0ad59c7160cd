//! The udpchat application layer: what client and server say once the
//! transport's handshake is done (docs/PROTOCOL.md §15). The transport
//! (`udpchat-proto`) carries opaque messages; this crate gives them
//! meaning, so the server, the client and every tool share one codec and
//! one set of rules.
//!
//! Every message starts with a one-byte type; client-to-server types are
//! below 0x80, server-to-client types from 0x80. Strings are a varint
//! length and UTF-8 bytes; integers are QUIC varints, as in the transport.
//!
//! Decoding never trusts the peer: a malformed message is an error the
//! server answers (it does not end the session), and text that is not
//! UTF-8 is reported with the message id so the sender learns which line
//! was refused.
//!
//! This file has the messages; `codec.rs` has their bytes, `names.rs` the
//! nickname and room-name rules.

#![forbid(unsafe_code)]

use thiserror::Error;

mod codec;
pub mod discovery;
pub mod duration;
pub mod names;

pub use codec::LineRef;

/// The room every session starts in; it always exists. The one place the
/// name is spelled: everything else refers to this constant.
pub const LOBBY: &str = "lobby";

/// Close codes the chat server uses (the application range of the
/// transport's close codes, docs/PROTOCOL.md §7).
pub mod close {
    use udpchat_proto::code::APPLICATION_BASE;
    /// The client said QUIT.
    pub const QUIT: u64 = APPLICATION_BASE;
    pub const KICKED: u64 = APPLICATION_BASE + 1;
    pub const BANNED: u64 = APPLICATION_BASE + 2;
    /// The client did not read fast enough and its queue overflowed.
    pub const TOO_SLOW: u64 = APPLICATION_BASE + 3;
    pub const LOGIN_FAILED: u64 = APPLICATION_BASE + 4;
    pub const LOGIN_TIMEOUT: u64 = APPLICATION_BASE + 5;
    pub const TOO_MANY_SESSIONS: u64 = APPLICATION_BASE + 6;

    /// Whether a client should not reconnect after this code.
    pub fn is_final(code: u64) -> bool {
        matches!(code, KICKED | BANNED | LOGIN_FAILED | TOO_MANY_SESSIONS)
    }
}

/// Declares a wire enum (a varint on the wire) and its decoder, so each
/// value is written once.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl $name {
            pub fn from_byte(b: u64) -> Option<Self> {
                match b {
                    $($value => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

wire_enum! {
    /// What kind of line a room carries.
    LineKind {
        Normal = 0,
        /// `/me waves`
        Action = 1,
        /// Typed at the server console by the operator.
        Operator = 2,
    }
}

wire_enum! {
    /// Why a login was refused.
    RefuseCode {
        NickTaken = 1,
        NickInvalid = 2,
        BadPassword = 3,
        ServerFull = 4,
        TooManyAttempts = 5,
        Banned = 6,
        /// The nickname is registered and needs its account password.
        NickRegistered = 7,
    }
}

wire_enum! {
    /// Room and server notices.
    NoticeKind {
        Join = 1,
        Part = 2,
        Quit = 3,
        Timeout = 4,
        /// `text` is the new nickname.
        Nick = 5,
        /// `text` is the new topic.
        Topic = 6,
        /// `text` is the reason; `nick` the one kicked.
        Kick = 7,
        /// Free text from the server (shutdown, message of the day, ...).
        Server = 8,
    }
}

wire_enum! {
    /// Errors the server reports for a request.
    ErrorCode {
        LineTooLong = 1,
        InvalidUtf8 = 2,
        ControlCharacters = 3,
        RateLimited = 4,
        NotInRoom = 5,
        NoSuchNick = 6,
        NickTaken = 7,
        NotPermitted = 8,
        InvalidRequest = 9,
        NickInvalid = 10,
        RoomInvalid = 11,
        /// The server could not store the line; it was not delivered.
        StorageFailed = 12,
    }
}

/// Client to server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    /// The first message of a session. Passwords are empty when not
    /// needed: `server_password` if the server has one, `account_password`
    /// if the nickname is registered. `resume` lists rooms to rejoin with
    /// the last sequence number seen in each (after a reconnect); the
    /// server then sends exactly the lines after those, and does not put
    /// the session in the lobby by itself. `private_since` is the id of
    /// the last stored private message seen (0: none).
    Login {
        nick: String,
        server_password: String,
        account_password: String,
        resume: Vec<(String, u64)>,
        private_since: u64,
        /// Optional (§15.1): a random token naming this client instance
        /// across its sessions, 0 for none. With it, the server remembers
        /// the highest request id it stored from the client and
        /// acknowledges a resent line instead of storing it twice, so lines
        /// resent after a reconnect (even across a server restart) land
        /// exactly once (§15.8).
        origin: u64,
    },
    /// A line for a room; `id` comes back in the Ack or Error.
    Say {
        id: u64,
        room: String,
        text: String,
        action: bool,
    },
    Join {
        room: String,
    },
    Part {
        room: String,
        reason: String,
    },
    List,
    Who {
        room: String,
    },
    Nick {
        nick: String,
    },
    Private {
        id: u64,
        to: String,
        text: String,
    },
    /// `topic: None` asks for the topic; `Some` sets it.
    Topic {
        room: String,
        topic: Option<String>,
    },
    Quit {
        reason: String,
    },
    Kick {
        room: String,
        nick: String,
        reason: String,
    },
    Ban {
        target: String,
        reason: String,
        /// Optional (§15.1): seconds until the ban lapses; 0: never.
        expires_secs: u64,
    },
    /// Lifts a ban on a nickname or address (operators).
    Unban {
        target: String,
    },
    /// Up to `limit` lines of `room` with sequence numbers below `before`
    /// (0: the newest).
    History {
        room: String,
        before: u64,
        limit: u64,
    },
}

/// A room line: as the server accepts it, as the store keeps it, and as
/// clients receive it. `history` is not stored; the server sets it when it
/// replays a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub room: String,
    pub seq: u64,
    /// Milliseconds since the Unix epoch, server clock.
    pub time_ms: u64,
    pub from: String,
    pub text: String,
    pub kind: LineKind,
    /// Replayed from history rather than live.
    pub history: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub name: String,
    pub members: u64,
    pub topic: String,
}

/// Server to client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// `operator`: the account may kick, ban and set topics anywhere.
    Welcome {
        nick: String,
        server_name: String,
        motd: String,
        operator: bool,
    },
    LoginRefused {
        code: RefuseCode,
        text: String,
    },
    Line(Line),
    Ack {
        id: u64,
        room: String,
        seq: u64,
    },
    Error {
        id: u64,
        code: ErrorCode,
        text: String,
    },
    /// You joined `room`; `head` is its newest stored line's sequence
    /// number (0: none), so a client knows where live lines start.
    Joined {
        room: String,
        topic: String,
        members: Vec<String>,
        head: u64,
    },
    /// You left `room` (or were kicked out of it).
    Parted {
        room: String,
    },
    /// `room` is empty for server-wide notices.
    Notice {
        room: String,
        kind: NoticeKind,
        nick: String,
        text: String,
        time_ms: u64,
    },
    RoomList {
        rooms: Vec<RoomInfo>,
    },
    Members {
        room: String,
        nicks: Vec<String>,
    },
    /// `id` is the sender's request id (for the sender's own copy), `seq`
    /// the stored message's id when the recipient has an account (0 when
    /// not stored).
    Private {
        id: u64,
        seq: u64,
        from: String,
        to: String,
        text: String,
        time_ms: u64,
        history: bool,
    },
    Topic {
        room: String,
        topic: String,
    },
    /// The limits this session's requests are held to, sent right after
    /// Welcome and again whenever they change (§15.10). `rate_milli` is
    /// requests per second × 1000 after a burst of `rate_burst`; 0 lifts
    /// the rate limit. A client paces itself to them; one that does not is
    /// slowed down by the server, not refused.
    Limits {
        max_line_bytes: u64,
        rate_burst: u64,
        rate_milli: u64,
    },
}

/// A message that could not be decoded. `id` is the request id when the
/// message got far enough to have one (0 otherwise), so the sender learns
/// which line failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{kind} (request {id})")]
pub struct MsgError {
    pub id: u64,
    pub kind: MsgErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MsgErrorKind {
    #[error("malformed message")]
    Malformed,
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    #[error("unknown message type")]
    UnknownType,
}
