//! Acting through a signed-in session: an administrator's or moderator's operations taken
//! with their session (id and [`SecurityStamp`]), refused once the session is stale.
//!
//! The admin methods on [`Keyward`] take the actor's id and trust it: right for the operator's
//! own tools and background jobs, which have no session. A web application hands the session
//! instead: [`Keyward::acting`] checks the stamp, and every operation on the [`Acting`] handle
//! checks it again (one store read) before it runs, so an administrator who was demoted,
//! disabled, locked or had their password reset cannot act with a session from before, even
//! through a handle taken before.

use std::fmt;
use std::io::Write;

use time::OffsetDateTime;

use super::{
    Archived, Channel, GroupChoice, GroupResets, IssueOptions, IssuedTemporaryPassword,
    PrintableList, ProfileChange, Regenerated, RegenerationOptions, RegenerationPreview,
    UnclaimedUser, UserSummary,
};
use crate::audit::{AuditEvent, AuditQuery};
use crate::error::Error;
use crate::hash::ImportRecord;
use crate::notify::DeliveryReceipt;
use crate::secret::{Password, Pin, TemporaryPassword};
use crate::service::Keyward;
use crate::stamp::{SecurityStamp, SessionCheck};
use crate::store::{GroupQuery, Page, UserQuery};
use crate::user::{Role, SiteId, User, UserId};

/// An administrator or moderator acting through their signed-in session (see
/// [`Keyward::acting`]). Every operation re-checks the session's stamp first and answers
/// [`Error::StaleSession`] once it no longer holds; then it runs as the `Keyward` method of the
/// same name with this actor.
pub struct Acting<'a> {
    kw: &'a Keyward,
    actor: UserId,
    stamp: SecurityStamp,
}

impl fmt::Debug for Acting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acting")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl Keyward {
    /// The operations of the signed-in `actor` whose session holds `stamp` (from
    /// [`Authenticated::stamp`](crate::signin::Authenticated::stamp)).
    ///
    /// # Errors
    /// [`Error::StaleSession`] when the stamp no longer matches the account (password, PIN,
    /// TOTP, role, sites, status or lock changed, or the user is gone); store failures.
    pub fn acting(&self, actor: &UserId, stamp: &SecurityStamp) -> Result<Acting<'_>, Error> {
        let acting = Acting {
            kw: self,
            actor: actor.clone(),
            stamp: stamp.clone(),
        };
        acting.check()?;
        Ok(acting)
    }
}

impl Acting<'_> {
    /// The actor.
    #[must_use]
    pub fn actor(&self) -> &UserId {
        &self.actor
    }

    fn check(&self) -> Result<(), Error> {
        match self.kw.check_session(&self.actor, &self.stamp)? {
            SessionCheck::Current(_) => Ok(()),
            _ => {
                tracing::warn!(actor = self.actor.as_str(), "a stale session tried to act");
                Err(Error::StaleSession {
                    user: self.actor.clone(),
                })
            }
        }
    }
}

/// One method per admin operation: check the session, then run the `Keyward` method of the
/// same name with the actor first. Every path written in full.
macro_rules! acting {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl Acting<'_> {
            $(
                #[doc = concat!(
                    "[`Keyward::", stringify!($name), "`] as this actor, once the session ",
                    "is checked."
                )]
                ///
                /// # Errors
                #[doc = concat!(
                    "[`Error::StaleSession`]; as [`Keyward::", stringify!($name), "`]."
                )]
                pub fn $name(&self, $($arg: $ty),*) -> Result<$out, Error> {
                    self.check()?;
                    self.kw.$name(&self.actor, $($arg),*)
                }
            )*
        }
    };
}

acting! {
    search_users(query: &UserQuery) -> Page<UserSummary>;
    lookup_user(site: &SiteId, username: &str) -> UserSummary;
    user_summary(user: &UserId) -> UserSummary;
    audit_trail(query: &AuditQuery) -> Page<AuditEvent>;
    issue_temporary_password(target: &UserId, options: IssueOptions) -> IssuedTemporaryPassword;
    remove_temporary_password(target: &UserId) -> ();
    unlock(target: &UserId) -> ();
    lock_user(target: &UserId, reason: &str) -> ();
    reset_totp(target: &UserId) -> ();
    send_password_reset(target: &UserId) -> DeliveryReceipt;
    set_imported_password(user: &UserId, record: &ImportRecord) -> ();
    preview_regeneration(site: &SiteId, groups: &[String]) -> RegenerationPreview;
    regenerate(
        confirmation: &Password,
        preview: RegenerationPreview,
        options: RegenerationOptions<'_>
    ) -> Regenerated;
    bulk_regenerate(confirmation: &Password, site: &SiteId, groups: &[String]) -> PrintableList;
    cohort_groups(query: &GroupQuery) -> Page<GroupChoice>;
    unclaimed_users(query: &UserQuery) -> Page<UnclaimedUser>;
    send_group_password_resets(site: &SiteId, groups: &[String]) -> GroupResets;
    reveal_temporary_password(target: &UserId) -> TemporaryPassword;
    archive_audit(site: &SiteId, before: OffsetDateTime, out: &mut dyn Write) -> Archived;
    update_user(target: &UserId, change: &ProfileChange) -> User;
    set_contact(target: &UserId, channel: Channel, value: Option<&str>) -> User;
    disable_user(target: &UserId, reason: &str) -> ();
    enable_user(target: &UserId) -> ();
    set_role(target: &UserId, role: Role, managed_sites: &[SiteId]) -> User;
    set_pin(target: &UserId, pin: Option<&Pin>) -> ();
    delete_user(target: &UserId) -> ();
}
