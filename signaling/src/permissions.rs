//! The one table of what each invitation role may do in a meeting, shared by
//! the REST API ([`crate::api`]), the WebSocket session ([`crate::session`])
//! and WHIP/WHEP ([`crate::whip`]). Every check of an invitee's right goes
//! through [`allows`]; `docs/protocol.md` ("Roles and permissions") prints
//! the same table.
//!
//! Staff accounts (admin, secretary, operator) are not invitees: their rights
//! over the REST API are the staff role lists of [`crate::api`].

use cabinet::Role;

use crate::protocol::ClientType;

/// Something an invitee may or may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Join the live meeting (WebSocket `join`/`resume`) and read the
    /// meeting, its agenda and its documents open to everyone (REST).
    Join,
    /// Send media: WebSocket `publish`, publisher `candidate`, `mute`, and
    /// WHIP ingest.
    Publish,
    /// Receive media: `subscriber_answer`, subscriber `candidate`,
    /// `set_quality`, `ice_restart`, and the WHEP main view.
    Receive,
    /// Read documents restricted to the committee (chair and members).
    ReadCommitteeDocuments,
}

impl Permission {
    /// Every permission, in a stable order (for tests and docs).
    pub const ALL: [Permission; 4] = [
        Permission::Join,
        Permission::Publish,
        Permission::Receive,
        Permission::ReadCommitteeDocuments,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Join => "join",
            Permission::Publish => "publish",
            Permission::Receive => "receive",
            Permission::ReadCommitteeDocuments => "read_committee_documents",
        }
    }
}

/// Whether an invitation of `role` gives `permission`: the table.
///
/// | role      | join | publish | receive | committee documents |
/// |-----------|------|---------|---------|---------------------|
/// | chair     | yes  | yes     | yes     | yes                 |
/// | member    | yes  | yes     | yes     | yes                 |
/// | secretary | yes  | yes     | yes     | no                  |
/// | bridge    | yes  | yes     | yes     | no                  |
/// | delegate  | yes  | yes     | yes     | no                  |
/// | observer  | yes  | no      | yes     | no                  |
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    match permission {
        P::Join | P::Receive => true,
        P::Publish => !matches!(role, Role::Observer),
        P::ReadCommitteeDocuments => matches!(role, Role::Chair | Role::Member),
    }
}

/// The permission a WebSocket client message needs once joined, or None if
/// every joined participant may send it. `pc` is the `candidate`'s `pc`
/// field (`publisher` or `subscriber`).
pub fn for_client_message(kind: ClientType, pc: Option<&str>) -> Option<Permission> {
    use ClientType as T;
    match kind {
        T::Publish | T::Mute => Some(Permission::Publish),
        T::Candidate if pc == Some("publisher") => Some(Permission::Publish),
        T::Candidate | T::SubscriberAnswer | T::SetQuality | T::IceRestart => {
            Some(Permission::Receive)
        }
        // join is checked against the invitation itself.
        T::Hello | T::Join | T::Resume | T::Ping | T::Leave => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers_only_watch() {
        for p in Permission::ALL {
            assert_eq!(
                allows(Role::Observer, p),
                matches!(p, Permission::Join | Permission::Receive),
                "{}",
                p.as_str()
            );
        }
        for r in Role::ALL {
            assert!(allows(r, Permission::Join));
            assert!(allows(r, Permission::Receive));
            assert_eq!(allows(r, Permission::Publish), r != Role::Observer);
        }
        assert!(allows(Role::Chair, Permission::ReadCommitteeDocuments));
        assert!(!allows(Role::Bridge, Permission::ReadCommitteeDocuments));
    }

    #[test]
    fn client_messages() {
        assert_eq!(
            for_client_message(ClientType::Publish, None),
            Some(Permission::Publish)
        );
        assert_eq!(
            for_client_message(ClientType::Candidate, Some("publisher")),
            Some(Permission::Publish)
        );
        assert_eq!(
            for_client_message(ClientType::Candidate, Some("subscriber")),
            Some(Permission::Receive)
        );
        assert_eq!(for_client_message(ClientType::Ping, None), None);
    }
}
