//! The examples' stand-in for an application's mail transport: a pickup directory with one
//! owner-only file per message (`examples/admin.rs` and `examples/web.rs` both use it).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use keyward::notify::{DeliveryReceipt, Message, Notifier, NotifyError};
use time::OffsetDateTime;

/// Delivery into a pickup directory: one owner-only file per message, named by time and a
/// counter, with the recipient on the first line. Stands in for the application's transport.
#[derive(Debug)]
pub(crate) struct MailDrop {
    dir: PathBuf,
    sent: AtomicU64,
}

impl MailDrop {
    /// A pickup directory at `dir`, created owner-only if missing.
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            sent: AtomicU64::new(0),
        })
    }
}

impl Notifier for MailDrop {
    fn send(&self, message: Message) -> Result<DeliveryReceipt, NotifyError> {
        let n = self.sent.fetch_add(1, Ordering::SeqCst);
        let stamp = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let name = format!("{stamp}-{}-{n}.txt", std::process::id());
        let rendered = message.render_english();
        // Reserved up front and zeroized: the body holds the secret.
        let mut text = zeroize::Zeroizing::new(String::with_capacity(
            rendered.subject.len() + rendered.body.len() + message.to.to_string().len() + 32,
        ));
        let header = format!("To: {}\nSubject: {}\n\n", message.to, rendered.subject);
        text.push_str(&header);
        text.push_str(&rendered.body);
        text.push('\n');
        let written = private_file(&self.dir.join(&name)).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        match written {
            Ok(()) => Ok(DeliveryReceipt::new(message.to, Some(name))),
            Err(e) => Err(NotifyError::new(message.to, format!("mail drop: {e}"))),
        }
    }
}

/// Creates a new file readable and writable by its owner only. An existing file (or a
/// symbolic link planted at the path) is refused, never followed or reused: a report or a
/// message must not land where someone else prepared it.
pub(crate) fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW: a symlink at the path is an error, not a redirection.
        const O_NOFOLLOW: i32 = 0o400_000;
        options.mode(0o600).custom_flags(O_NOFOLLOW);
    }
    options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            io::Error::new(
                e.kind(),
                format!("{} exists: choose a new path", path.display()),
            )
        } else {
            e
        }
    })
}

/// The notifier when no transport is configured: every message is refused, clearly.
#[derive(Debug)]
pub(crate) struct NoTransport;

impl Notifier for NoTransport {
    fn send(&self, message: Message) -> Result<DeliveryReceipt, NotifyError> {
        let reason = "no message transport: pass --mail-dir DIR (or KEYWARD_MAIL_DIR)";
        Err(NotifyError::new(message.to, reason))
    }
}
