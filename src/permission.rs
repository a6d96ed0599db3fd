//! Who may do what: [`Permission`]s per [`Role`], scoped to sites, and the pure decision
//! [`Permissions::authorize`]. The flows in [`crate::admin`] ask it before every admin action
//! and audit its refusals.

use std::collections::{BTreeSet, HashMap};

use crate::text_enum::text_enum;
use crate::user::{Role, SiteId, User, UserStatus};

text_enum!(
    /// Something an administrator or moderator may be allowed to do.
    #[derive(PartialOrd, Ord)]
    Permission {
        /// Search and view users, groups and the audit trail.
        ViewUsers => "view_users",
        /// Give a user a temporary password who has none.
        CreateTemporaryPassword => "create_temporary_password",
        /// Replace a user's temporary password.
        ChangeTemporaryPassword => "change_temporary_password",
        /// Remove a user's temporary password.
        RemoveTemporaryPassword => "remove_temporary_password",
        /// Send a temporary password to the user's verified phone or email.
        SendTemporaryPassword => "send_temporary_password",
        /// Unlock a locked account, or lock one by hand.
        Unlock => "unlock",
        /// Reset a user's authenticator (TOTP).
        ResetTotp => "reset_totp",
        /// Send a password-reset link.
        SendPasswordReset => "send_password_reset",
        /// Regenerate the temporary passwords of whole groups.
        BulkRegenerate => "bulk_regenerate",
        /// Create, change, disable, enable and delete users; change their contact details,
        /// role, managed sites and PIN.
        ManageUsers => "manage_users",
        /// Reveal an escrowed temporary password ("show password").
        RevealTemporaryPassword => "reveal_temporary_password",
        /// Export and prune the audit trail (retention).
        PruneAudit => "prune_audit",
    }
);

/// Permissions per role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    by_role: HashMap<Role, BTreeSet<Permission>>,
}

impl Default for Permissions {
    /// Administrators: everything. Moderators: everything but bulk regeneration, creating
    /// users, revealing escrowed temporary passwords and pruning the audit trail. Users: nothing.
    fn default() -> Self {
        let all: BTreeSet<Permission> = Permission::ALL.into_iter().collect();
        let mut moderator = all.clone();
        moderator.remove(&Permission::BulkRegenerate);
        moderator.remove(&Permission::ManageUsers);
        moderator.remove(&Permission::RevealTemporaryPassword);
        moderator.remove(&Permission::PruneAudit);
        Self::none()
            .with_role(Role::Administrator, all)
            .with_role(Role::Moderator, moderator)
    }
}

impl Permissions {
    /// No role may do anything.
    #[must_use]
    pub fn none() -> Self {
        Self {
            by_role: HashMap::new(),
        }
    }

    /// Sets the permissions of one role.
    #[must_use]
    pub fn with_role(
        mut self,
        role: Role,
        permissions: impl IntoIterator<Item = Permission>,
    ) -> Self {
        self.by_role.insert(role, permissions.into_iter().collect());
        self
    }

    /// Whether `role` holds `permission`.
    #[must_use]
    pub fn allows(&self, role: Role, permission: Permission) -> bool {
        self.by_role
            .get(&role)
            .is_some_and(|set| set.contains(&permission))
    }

    /// Decides whether `actor` may do `permission` in `site`, to `target` if any.
    ///
    /// # Errors
    /// [`PermissionDenied`] with the precise reason.
    pub fn authorize(
        &self,
        actor: &User,
        permission: Permission,
        site: &SiteId,
        target: Option<&User>,
    ) -> Result<(), PermissionDenied> {
        let deny = |reason| Err(PermissionDenied { permission, reason });
        if actor.status != UserStatus::Active {
            return deny(DenyReason::ActorDisabled);
        }
        if !self.allows(actor.role, permission) {
            return deny(DenyReason::MissingPermission { role: actor.role });
        }
        if !actor.manages_site(site) {
            return deny(DenyReason::OtherSite);
        }
        if let Some(target) = target {
            if &target.site != site {
                return deny(DenyReason::OtherSite);
            }
            if actor.role == Role::Moderator && target.role == Role::Administrator {
                return deny(DenyReason::TargetOutranksActor);
            }
            // A peer with power over more sites is out of reach: acting on their account
            // would hand the actor that power.
            let reaches_further = target
                .managed_sites
                .iter()
                .any(|other| !actor.manages_site(other));
            if target.role != Role::User && reaches_further {
                return deny(DenyReason::TargetOutranksActor);
            }
        }
        Ok(())
    }
}

/// Why an admin action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// The actor's account is disabled.
    ActorDisabled,
    /// The actor's role lacks the permission.
    MissingPermission {
        /// The actor's role.
        role: Role,
    },
    /// The site (or the target's site) is not one the actor manages.
    OtherSite,
    /// A moderator cannot act on an administrator, nor anyone on an administrator or
    /// moderator who manages a site the actor does not.
    TargetOutranksActor,
    /// The actor's own password, asked for as confirmation, was wrong (or the actor is
    /// locked).
    ConfirmationFailed,
    /// Nobody disables, deletes or changes the role of their own account (the last
    /// administrator of a site would lock everybody out).
    OwnAccount,
}

impl DenyReason {
    /// The stable text recorded in the audit trail.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActorDisabled => "actor_disabled",
            Self::MissingPermission { .. } => "missing_permission",
            Self::OtherSite => "other_site",
            Self::TargetOutranksActor => "target_outranks_actor",
            Self::ConfirmationFailed => "confirmation_failed",
            Self::OwnAccount => "own_account",
        }
    }
}

/// An admin action was refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} refused: {}", permission.as_str(), reason.as_str())]
#[non_exhaustive]
pub struct PermissionDenied {
    /// What was attempted.
    pub permission: Permission,
    /// Why it was refused.
    pub reason: DenyReason,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn person(site: &str, role: Role) -> User {
        User::new(
            SiteId::new(site).unwrap(),
            "x",
            "X",
            "Y",
            "staff",
            datetime!(2026-01-01 0:00 UTC),
        )
        .with_role(role)
    }

    /// The full allow/deny matrix of the default permissions: role x action x same/other site
    /// x target role. Each line lists, for one actor role and one permission, the verdict on a
    /// target in the same site with role user, moderator, administrator, then the same three
    /// in another site ('Y' allowed, '.' denied).
    #[test]
    fn default_permission_matrix() {
        #[rustfmt::skip]
        let table: &[(Role, Permission, &str)] = &[
            (Role::Administrator, Permission::ViewUsers,               "YYY ..."),
            (Role::Administrator, Permission::CreateTemporaryPassword, "YYY ..."),
            (Role::Administrator, Permission::ChangeTemporaryPassword, "YYY ..."),
            (Role::Administrator, Permission::RemoveTemporaryPassword, "YYY ..."),
            (Role::Administrator, Permission::SendTemporaryPassword,   "YYY ..."),
            (Role::Administrator, Permission::Unlock,                  "YYY ..."),
            (Role::Administrator, Permission::ResetTotp,               "YYY ..."),
            (Role::Administrator, Permission::SendPasswordReset,       "YYY ..."),
            (Role::Administrator, Permission::BulkRegenerate,          "YYY ..."),
            (Role::Administrator, Permission::ManageUsers,             "YYY ..."),
            (Role::Administrator, Permission::RevealTemporaryPassword, "YYY ..."),
            (Role::Administrator, Permission::PruneAudit,              "YYY ..."),
            (Role::Moderator,     Permission::ViewUsers,               "YY. ..."),
            (Role::Moderator,     Permission::CreateTemporaryPassword, "YY. ..."),
            (Role::Moderator,     Permission::ChangeTemporaryPassword, "YY. ..."),
            (Role::Moderator,     Permission::RemoveTemporaryPassword, "YY. ..."),
            (Role::Moderator,     Permission::SendTemporaryPassword,   "YY. ..."),
            (Role::Moderator,     Permission::Unlock,                  "YY. ..."),
            (Role::Moderator,     Permission::ResetTotp,               "YY. ..."),
            (Role::Moderator,     Permission::SendPasswordReset,       "YY. ..."),
            (Role::Moderator,     Permission::BulkRegenerate,          "... ..."),
            (Role::Moderator,     Permission::ManageUsers,             "... ..."),
            (Role::Moderator,     Permission::RevealTemporaryPassword, "... ..."),
            (Role::Moderator,     Permission::PruneAudit,              "... ..."),
            (Role::User,          Permission::ViewUsers,               "... ..."),
            (Role::User,          Permission::CreateTemporaryPassword, "... ..."),
            (Role::User,          Permission::ChangeTemporaryPassword, "... ..."),
            (Role::User,          Permission::RemoveTemporaryPassword, "... ..."),
            (Role::User,          Permission::SendTemporaryPassword,   "... ..."),
            (Role::User,          Permission::Unlock,                  "... ..."),
            (Role::User,          Permission::ResetTotp,               "... ..."),
            (Role::User,          Permission::SendPasswordReset,       "... ..."),
            (Role::User,          Permission::BulkRegenerate,          "... ..."),
            (Role::User,          Permission::ManageUsers,             "... ..."),
            (Role::User,          Permission::RevealTemporaryPassword, "... ..."),
            (Role::User,          Permission::PruneAudit,              "... ..."),
        ];
        assert_eq!(table.len(), 3 * Permission::ALL.len());
        let permissions = Permissions::default();
        let home = SiteId::new("home").unwrap();
        for (role, permission, expected) in table {
            let actor = person("home", *role);
            let mut verdicts = String::new();
            for site in ["home", "other"] {
                if site == "other" {
                    verdicts.push(' ');
                }
                for target_role in [Role::User, Role::Moderator, Role::Administrator] {
                    let target = person(site, target_role);
                    let target_site = SiteId::new(site).unwrap();
                    let ok = permissions
                        .authorize(&actor, *permission, &target_site, Some(&target))
                        .is_ok();
                    verdicts.push(if ok { 'Y' } else { '.' });
                }
            }
            assert_eq!(&verdicts, expected, "{role:?} {permission:?}");
            // Without a target, only role and site count.
            let untargeted = permissions
                .authorize(&actor, *permission, &home, None)
                .is_ok();
            assert_eq!(
                untargeted,
                expected.starts_with('Y'),
                "{role:?} {permission:?} untargeted"
            );
        }
    }

    #[test]
    fn denials_name_their_reason() {
        let permissions = Permissions::default();
        let site = SiteId::new("home").unwrap();
        let moderator = person("home", Role::Moderator);
        let admin = person("home", Role::Administrator);
        let err = permissions
            .authorize(&moderator, Permission::Unlock, &site, Some(&admin))
            .unwrap_err();
        assert_eq!(err.reason, DenyReason::TargetOutranksActor);
        let err = permissions
            .authorize(&moderator, Permission::BulkRegenerate, &site, None)
            .unwrap_err();
        assert_eq!(
            err.reason,
            DenyReason::MissingPermission {
                role: Role::Moderator
            }
        );
        let mut disabled = admin.clone();
        disabled.status = UserStatus::Disabled;
        let err = permissions
            .authorize(&disabled, Permission::Unlock, &site, None)
            .unwrap_err();
        assert_eq!(err.reason, DenyReason::ActorDisabled);
        // A site administered besides the home site counts as managed.
        let other = SiteId::new("other").unwrap();
        let multi = admin.with_managed_sites(vec![other.clone()]);
        assert!(
            permissions
                .authorize(
                    &multi,
                    Permission::Unlock,
                    &other,
                    Some(&person("other", Role::User))
                )
                .is_ok()
        );
    }

    #[test]
    fn peers_managing_more_sites_are_out_of_reach() {
        let permissions = Permissions::default();
        let (a, b) = (SiteId::new("home").unwrap(), SiteId::new("other").unwrap());
        let admin = person("home", Role::Administrator);
        let wider_admin = person("home", Role::Administrator).with_managed_sites(vec![b.clone()]);
        let wider_moderator = person("home", Role::Moderator).with_managed_sites(vec![b.clone()]);
        for target in [&wider_admin, &wider_moderator] {
            let err = permissions.authorize(&admin, Permission::ResetTotp, &a, Some(target));
            assert_eq!(err.unwrap_err().reason, DenyReason::TargetOutranksActor);
        }
        // An administrator of both sites may act on them.
        let both = admin.clone().with_managed_sites(vec![b]);
        assert!(
            permissions
                .authorize(&both, Permission::ResetTotp, &a, Some(&wider_admin))
                .is_ok()
        );
        // Ordinary users' site lists do not matter.
        let user = person("home", Role::User).with_managed_sites(vec![SiteId::new("x").unwrap()]);
        assert!(
            permissions
                .authorize(&admin, Permission::Unlock, &a, Some(&user))
                .is_ok()
        );
    }

    #[test]
    fn custom_permissions_replace_the_defaults() {
        let permissions =
            Permissions::default().with_role(Role::Moderator, [Permission::ViewUsers]);
        let site = SiteId::new("home").unwrap();
        let moderator = person("home", Role::Moderator);
        assert!(
            permissions
                .authorize(&moderator, Permission::ViewUsers, &site, None)
                .is_ok()
        );
        assert!(
            permissions
                .authorize(&moderator, Permission::Unlock, &site, None)
                .is_err()
        );
    }
}
