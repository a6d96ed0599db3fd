//! Password reset under attack: it never replaces an admin-managed temporary password, and it
//! answers an unauthenticated request the same way whether delivery worked, failed, or the
//! username is unknown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use keyward::audit::{AuditAction, AuditQuery};
use keyward::notify::{DeliveryReceipt, Message, Notifier, NotifyError};
use keyward::recovery::PasswordReset;
use keyward::{Error, InMemoryStore, OneTimeCode, Password};
use support::*;

const NEW_PASSWORD: &str = "harbour-thistle-orbit-72";

fn reasons(f: &Fx, action: AuditAction) -> Vec<Option<String>> {
    let query = AuditQuery::default()
        .site(f.site.clone())
        .action(action)
        .page(0, 1000);
    let page = f.kw.audit_trail(&f.admin.id, &query).unwrap();
    page.items.into_iter().map(|e| e.reason).collect()
}

#[test]
fn a_reset_never_replaces_an_admin_managed_temporary_password() {
    let f = fx();
    let sam = f.user("sam");
    // A token requested while sam still had their own password ...
    f.kw.request_password_reset(&f.site, "sam").unwrap();
    let token = f.reset_token_to("sam@example.org");
    // ... then the directory goes down and the admin gives sam an admin-managed password.
    let managed = f.admin_managed_for(&sam.id);
    let before = f.record(&sam.id).password;
    let outcome =
        f.kw.reset_password(&OneTimeCode::new(token), Password::new(NEW_PASSWORD))
            .unwrap();
    assert!(
        matches!(outcome, PasswordReset::InvalidToken),
        "{outcome:?}"
    );
    assert_eq!(
        f.record(&sam.id).password,
        before,
        "the managed password was replaced"
    );
    assert!(
        reasons(&f, AuditAction::PasswordReset).contains(&Some("admin_managed_password".into()))
    );
    // No new link is sent while it holds, self-service or by an administrator.
    f.kw.request_password_reset(&f.site, "sam").unwrap();
    let mail = f
        .outbox
        .take_last_to(&keyward::notify::Recipient::Email("sam@example.org".into()));
    assert!(mail.is_none(), "a reset link was sent");
    assert!(
        reasons(&f, AuditAction::PasswordResetSent)
            .contains(&Some("admin_managed_password".into()))
    );
    assert!(matches!(
        f.kw.send_password_reset(&f.admin.id, &sam.id),
        Err(Error::AdminManagedPassword { .. })
    ));
    // The managed password still signs sam in.
    assert!(matches!(
        f.sign_in("sam", &managed.to_password()),
        keyward::SignIn::Authenticated(_)
    ));
}

/// Refuses every message, counting them.
#[derive(Debug, Default)]
struct Broken(Mutex<u32>);

impl Notifier for Broken {
    fn send(&self, message: Message) -> Result<DeliveryReceipt, NotifyError> {
        *self.0.lock().unwrap() += 1;
        Err(NotifyError::new(message.to.clone(), "mail server down"))
    }
}

#[test]
fn an_undelivered_reset_answers_like_an_unknown_username() {
    let broken = Arc::new(Broken::default());
    let hooked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = hooked.clone();
    let f = fx_with(Arc::new(InMemoryStore::new()), |b| {
        b.notifier(broken.clone())
            .on_error(Arc::new(move |e: &Error| {
                seen.lock().unwrap().push(e.to_string())
            }))
    });
    let sam = f.user("sam");
    let known = f.kw.request_password_reset(&f.site, "sam");
    let unknown = f.kw.request_password_reset(&f.site, "nobody-here");
    assert!(known.is_ok() && unknown.is_ok(), "{known:?} / {unknown:?}");
    assert_eq!(*broken.0.lock().unwrap(), 1, "one delivery was tried");
    let hook = hooked.lock().unwrap().clone();
    assert_eq!(hook.len(), 1);
    assert!(hook[0].contains("mail server down"), "{hook:?}");
    assert_eq!(
        f.record(&sam.id).reset_token,
        None,
        "an undelivered token stayed live"
    );
    let reasons = reasons(&f, AuditAction::PasswordResetSent);
    assert!(
        reasons.contains(&Some("delivery_failed".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&Some("unknown_user".into())),
        "{reasons:?}"
    );
    // An administrator still hears about the failure.
    assert!(matches!(
        f.kw.send_password_reset(&f.admin.id, &sam.id),
        Err(Error::Notify(_))
    ));
}
