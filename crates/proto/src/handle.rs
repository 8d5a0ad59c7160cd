//! [`ConnectionHandle`], the name of one session of an endpoint. It has a
//! module of its own because the endpoint, its connections and the events
//! they report all name sessions, and none of them should need another's
//! internals to do so.

/// Names one session of an endpoint. Handles of ended sessions are never
/// confused with new ones: the generation changes when a slot is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle {
    /// The endpoint's slot for the session.
    pub(crate) index: u32,
    /// Bumped each time the slot is reused.
    pub(crate) generation: u32,
}

/// Slot indexes from here up are never issued by an endpoint (its slots
/// are live sessions, bounded by `max_connections`, far below 2^31), so a
/// handle built by [`ConnectionHandle::foreign`] never names one of its
/// sessions.
const FOREIGN_BASE: u32 = 1 << 31;

impl ConnectionHandle {
    /// A handle for a session some other carrier than the endpoint keeps
    /// (the server's plain-text gateway), so that the chat layer can key
    /// it like any session. `n` is the carrier's own number (its low 31
    /// bits are used; the carrier keeps them unique among its live
    /// sessions, and may bump `generation` when it reuses one).
    pub fn foreign(n: u32, generation: u32) -> Self {
        Self { index: FOREIGN_BASE | (n & !FOREIGN_BASE), generation }
    }

    /// Whether this handle came from [`ConnectionHandle::foreign`].
    pub fn is_foreign(self) -> bool {
        self.index & FOREIGN_BASE != 0
    }

    /// The handle as one number, to name a session outside the process
    /// that owns it (a cluster node tags the lines it publishes with it,
    /// so that its own feed does not echo a line to its sender).
    pub fn to_bits(self) -> u64 {
        (u64::from(self.index) << 32) | u64::from(self.generation)
    }

    /// The handle [`ConnectionHandle::to_bits`] gave.
    pub fn from_bits(bits: u64) -> Self {
        Self { index: (bits >> 32) as u32, generation: bits as u32 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_handles_are_told_apart() {
        let f = ConnectionHandle::foreign(7, 1);
        assert!(f.is_foreign());
        assert_ne!(f, ConnectionHandle::foreign(7, 2));
        assert!(!ConnectionHandle { index: 7, generation: 1 }.is_foreign());
        assert_eq!(ConnectionHandle::from_bits(f.to_bits()), f);
    }
}
