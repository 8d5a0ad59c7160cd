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
