//! Where a live meeting is hosted. One node hosts all of a meeting's live
//! sessions (its hub room and its media room); every admission asks the
//! placement first. The single-node server uses [`Local`]; a cluster adds an
//! implementation over NATS (a meeting claimed by one node, the others
//! redirect) without touching the sessions.

/// Where a meeting's live sessions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// This node hosts it.
    Here,
    /// Another node does: clients are sent there (its public URL).
    Elsewhere(String),
}

/// Decides which node hosts a meeting.
pub trait Placement: Send + Sync + 'static {
    /// Where the live sessions of `meeting_id` go. Called for every
    /// admission (WebSocket join, WHIP publisher); cheap.
    fn place(&self, meeting_id: &str) -> Placed;
}

/// One node: every meeting is here.
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Placement for Local {
    fn place(&self, _meeting_id: &str) -> Placed {
        Placed::Here
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts_everything() {
        let p: std::sync::Arc<dyn Placement> = std::sync::Arc::new(Local);
        assert_eq!(p.place("any"), Placed::Here);
    }
}
