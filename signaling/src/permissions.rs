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
    /// Ask for the floor: `raise_hand`, `lower_hand`.
    RequestFloor,
    /// Run the floor and the room: `give_floor`, `take_floor`,
    /// `clear_hand`, `mute_participant`, `mute_all`, `lock_meeting`,
    /// `remove_participant`, `set_current_item`, and reading the
    /// attendance (REST).
    Moderate,
    /// Open and close the meeting: `start_meeting`, `end_meeting`.
    Preside,
    /// Declare who presides a bridge point and how many attend there:
    /// `declare_attendance`.
    DeclareAttendance,
    /// Cast a ballot (`cast_vote`); each poll also names the roles that
    /// vote in it.
    Vote,
    /// Present a document to everyone (`present_document`, `present_page`,
    /// `stop_presenting`): the chair and the secretary at any time; any
    /// other role only while it holds the floor and the chair lets the
    /// floor present (`allow_presenting`), which the live meeting checks.
    Present,
}

impl Permission {
    /// Every permission, in a stable order (for tests and docs).
    pub const ALL: [Permission; 10] = [
        Permission::Join,
        Permission::Publish,
        Permission::Receive,
        Permission::ReadCommitteeDocuments,
        Permission::RequestFloor,
        Permission::Moderate,
        Permission::Preside,
        Permission::DeclareAttendance,
        Permission::Vote,
        Permission::Present,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Join => "join",
            Permission::Publish => "publish",
            Permission::Receive => "receive",
            Permission::ReadCommitteeDocuments => "read_committee_documents",
            Permission::RequestFloor => "request_floor",
            Permission::Moderate => "moderate",
            Permission::Preside => "preside",
            Permission::DeclareAttendance => "declare_attendance",
            Permission::Vote => "vote",
            Permission::Present => "present",
        }
    }
}

/// Whether an invitation of `role` gives `permission`: the table.
///
/// | role      | join | publish | receive | committee documents | request floor | moderate | preside | declare attendance | vote | present |
/// |-----------|------|---------|---------|---------------------|---------------|----------|---------|--------------------|------|---------|
/// | chair     | yes  | yes     | yes     | yes                 | yes           | yes      | yes     | yes                | yes  | yes     |
/// | member    | yes  | yes     | yes     | yes                 | yes           | no       | no      | yes                | yes  | floor   |
/// | secretary | yes  | yes     | yes     | no                  | yes           | yes      | no      | yes                | no   | yes     |
/// | bridge    | yes  | yes     | yes     | no                  | yes           | no       | no      | yes                | yes  | floor   |
/// | delegate  | yes  | yes     | yes     | no                  | yes           | no       | no      | yes                | yes  | floor   |
/// | observer  | yes  | no      | yes     | no                  | no            | no       | no      | no                 | no   | no      |
///
/// (`floor`: only while holding the floor, when the chair allows it.)
///
/// (`vote` is the right to send a ballot at all; each poll names the roles
/// that vote in it: by default the chair and the members, a bridge point
/// only where the poll lets it vote as a unit.)
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    match permission {
        P::Join | P::Receive => true,
        P::Publish | P::RequestFloor | P::DeclareAttendance => !matches!(role, Role::Observer),
        P::ReadCommitteeDocuments => matches!(role, Role::Chair | Role::Member),
        P::Moderate => matches!(role, Role::Chair | Role::Secretary),
        P::Preside => matches!(role, Role::Chair),
        P::Vote => !matches!(role, Role::Observer | Role::Secretary),
        P::Present => !matches!(role, Role::Observer),
    }
}

/// The permission a WebSocket client message needs once joined, or None if
/// every joined participant may send it. `pc` is the `candidate`'s `pc`
/// field (`publisher` or `subscriber`).
pub fn for_client_message(kind: ClientType, pc: Option<&str>) -> Option<Permission> {
    use ClientType as T;
    match kind {
        // Every joined participant reports its own link.
        T::LinkReport => None,
        T::Publish | T::Mute => Some(Permission::Publish),
        T::Candidate if pc == Some("publisher") => Some(Permission::Publish),
        T::Candidate | T::SubscriberAnswer | T::SetQuality | T::IceRestart => {
            Some(Permission::Receive)
        }
        T::RaiseHand | T::LowerHand => Some(Permission::RequestFloor),
        T::GiveFloor
        | T::TakeFloor
        | T::ClearHand
        | T::MuteParticipant
        | T::MuteAll
        | T::LockMeeting
        | T::RemoveParticipant
        | T::SetCurrentItem => Some(Permission::Moderate),
        T::StartMeeting | T::EndMeeting => Some(Permission::Preside),
        T::DeclareAttendance => Some(Permission::DeclareAttendance),
        T::OpenVote | T::CloseVote => Some(Permission::Moderate),
        T::CastVote => Some(Permission::Vote),
        T::PresentDocument | T::PresentPage | T::StopPresenting => Some(Permission::Present),
        T::AllowPresenting => Some(Permission::Moderate),
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
        for t in ClientType::ALL {
            if t.targets_other() {
                assert_eq!(
                    for_client_message(*t, None),
                    Some(Permission::Moderate),
                    "{}",
                    t.as_str()
                );
            }
        }
    }

    #[test]
    fn only_the_chair_presides_and_chair_and_secretary_moderate() {
        for r in Role::ALL {
            assert_eq!(allows(r, Permission::Preside), r == Role::Chair);
            assert_eq!(
                allows(r, Permission::Moderate),
                matches!(r, Role::Chair | Role::Secretary)
            );
            assert_eq!(
                allows(r, Permission::RequestFloor),
                r != Role::Observer,
                "{}",
                r.as_str()
            );
        }
    }
}
