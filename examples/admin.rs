//! `admin`: keyward's operator tool, and the reference for wiring keyward into an application.
//!
//! ```text
//! cargo run --example admin -- --help
//! cargo run --example admin -- --site northfield init --admin head --forename Ada --surname Head
//! cargo run --example admin -- --site northfield --as head import pupils.csv
//! ```
//!
//! Every command but `init`, `recover` and `sign-in` acts as the user named by `--as`, who is
//! signed in first (password from `KEYWARD_ADMIN_PASSWORD` or a no-echo prompt, PIN from
//! `KEYWARD_ADMIN_PIN`, TOTP code from `KEYWARD_TOTP` or a prompt), and goes through keyward's
//! permissions and audit trail like any application would. Secrets are never taken from the
//! command line (where `ps` and shell history would see them).
//!
//! Messages to users (temporary passwords, reset links, device codes) are written as files to
//! `--mail-dir` (a pickup directory, one file per message, owner-only), standing in for the
//! application's mail or SMS transport; without it, commands that send refuse clearly.

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "support/mail_drop.rs"]
mod mail_drop;

use std::fs;
use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyward::admin::{CancelToken, Channel, IssueOptions, RegenerationOptions, UserSummary};
use keyward::audit::{AuditEvent, AuditQuery};
use keyward::hash::Hasher;
use keyward::import::{self, ImportOptions, ImportProgress, ImportedUser, RecordError};
use keyward::signin::PasswordChange;
use keyward::store::{GroupQuery, MAX_PAGE, UserQuery};
use keyward::totp::TotpSealer;
use keyward::user::{Role, SiteId, TemporaryMode, User, UserId};
use keyward::{Error, Keyward, OneTimeCode, Password, Pin, SignIn, SqliteStore, UserStore};
use mail_drop::{MailDrop, NoTransport, private_file};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time};

const EXIT_CODES: &str = "\
Exit codes: 0 done (sign-in: authenticated); 1 error; 2 import: some records were refused;
10 sign-in: a further step is required; 20 denied (sign-in refused, acting user not signed
in, or permission denied); 64 usage error.

Environment: KEYWARD_ADMIN_PASSWORD, KEYWARD_ADMIN_PIN, KEYWARD_TOTP (the acting user);
KEYWARD_NEW_PASSWORD (when the acting user must change a temporary password);
KEYWARD_PASSWORD, KEYWARD_PIN (sign-in); KEYWARD_SEALING_KEY (64 hex digits: the
application's TOTP sealing key, id KEYWARD_SEALING_KEY_ID, default k1);
KEYWARD_ESCROW_KEY (64 hex digits: enables escrow of temporary passwords for `unclaimed
--reveal`).";

/// keyward's admin tool: users, temporary passwords, imports, lockout and audit.
#[derive(Parser, Debug)]
#[command(name = "admin", version, after_help = EXIT_CODES)]
// `--help` must not print the environment's values: a PostgreSQL URL holds its password.
struct Cli {
    /// SQLite database file (created and migrated on first use).
    #[arg(
        long,
        global = true,
        default_value = "keyward.db",
        env = "KEYWARD_DB",
        hide_env_values = true
    )]
    db: PathBuf,
    /// PostgreSQL URL, instead of the SQLite file (pass it in the environment when it holds a
    /// password: arguments are visible to every user of the machine).
    #[arg(
        long,
        global = true,
        env = "KEYWARD_POSTGRES_URL",
        hide_env_values = true
    )]
    postgres: Option<String>,
    /// The site to work in.
    #[arg(long, global = true, env = "KEYWARD_SITE", hide_env_values = true)]
    site: Option<String>,
    /// The acting administrator or moderator.
    #[arg(
        long = "as",
        global = true,
        env = "KEYWARD_AS",
        value_name = "USERNAME",
        hide_env_values = true
    )]
    actor: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Directory where messages to users are dropped (one owner-only file each).
    #[arg(long, global = true, env = "KEYWARD_MAIL_DIR", hide_env_values = true)]
    mail_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the site's first administrator (refused when it has one).
    Init {
        /// Username of the administrator.
        #[arg(long)]
        admin: String,
        /// Given name.
        #[arg(long)]
        forename: String,
        /// Family name.
        #[arg(long)]
        surname: String,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
    },
    /// Import users from NDJSON (.ndjson, .jsonl, or - for stdin) or CSV (.csv).
    Import {
        /// The file.
        file: PathBuf,
        /// The file's format, when its name does not say.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Users per transaction.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Protect fast legacy hashes (md5, sha1/sha256/sha512 digests, DES, md5-crypt,
        /// phpass, LDAP digests) at rest at once: argon2id over the legacy digest.
        #[arg(long)]
        wrap_fast: bool,
    },
    /// Protect the fast legacy hashes of users already imported (resumable; Ctrl-C stops it
    /// between batches and a rerun goes on).
    WrapFast,
    /// Search users.
    Search(SearchArgs),
    /// Temporary passwords.
    #[command(subcommand)]
    Temp(TempCommand),
    /// Send a password-reset link to a user, or to the unclaimed users of groups.
    ResetLink {
        /// The user.
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        username: Option<String>,
        /// Groups whose unclaimed users get a link.
        #[arg(long)]
        group: Vec<String>,
    },
    /// Unlock an account (password and TOTP).
    Unlock {
        /// The user.
        username: String,
    },
    /// Reset a user's authenticator: the next sign-in asks for an emailed device code.
    ResetTotp {
        /// The user.
        username: String,
    },
    /// Lock an account by hand until an administrator unlocks it.
    Lock {
        /// The user.
        username: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// The group picker: members and the unclaimed users a regeneration would touch.
    Groups {
        /// Groups whose name starts with this.
        #[arg(long)]
        text: Option<String>,
    },
    /// Regenerate temporary passwords for the unclaimed users of groups.
    BulkRegenerate {
        /// A group (repeat for several).
        #[arg(long, required = true)]
        group: Vec<String>,
        /// Write the list as CSV here (owner-only).
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Write the printable A4 list as HTML here (owner-only).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Do not ask before regenerating.
        #[arg(long)]
        yes: bool,
    },
    /// Users who have not claimed their account yet.
    Unclaimed {
        /// Show this user's escrowed temporary password (audited).
        #[arg(long, value_name = "USERNAME")]
        reveal: Option<String>,
        /// Users whose name or username starts with this.
        #[arg(long)]
        text: Option<String>,
    },
    /// The audit trail of the site, or of one user.
    Audit {
        /// Only this user's events (as actor or target).
        #[arg(long)]
        user: Option<String>,
        /// Only events since this date (YYYY-MM-DD, UTC) or instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many events (newest kept).
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// Audit retention: export the site's events before a date to a new file, then delete them.
    AuditArchive {
        /// Events before this date (YYYY-MM-DD, UTC) or instant (RFC 3339).
        #[arg(long)]
        before: String,
        /// The export (one JSON object per line; a new, owner-only file).
        #[arg(long)]
        out: PathBuf,
    },
    /// Break-glass: unlock an administrator and print a single-use temporary password.
    /// Needs only direct access to the database; audited as a recovery.
    Recover {
        /// The administrator.
        #[arg(long)]
        admin: String,
        /// Also reset their authenticator (a lost device): the next sign-in asks for an
        /// emailed device code, then a new enrollment.
        #[arg(long)]
        reset_totp: bool,
    },
    /// Sign a user in (password from KEYWARD_PASSWORD or a prompt) and print the outcome.
    SignIn {
        /// The user.
        username: String,
    },
}

#[derive(Args, Debug)]
struct SearchArgs {
    /// Name, username or email starting with this.
    #[arg(long)]
    text: Option<String>,
    /// Members of this group.
    #[arg(long)]
    group: Option<String>,
    /// Only locked accounts.
    #[arg(long)]
    locked: bool,
    /// Only unclaimed accounts.
    #[arg(long)]
    unclaimed: bool,
    /// Only users holding a temporary password.
    #[arg(long)]
    temporary: bool,
    /// Page number, from 1.
    #[arg(long, default_value_t = 1)]
    page: u64,
    /// Users per page.
    #[arg(long, default_value_t = 50)]
    per_page: u32,
}

#[derive(Subcommand, Debug)]
enum TempCommand {
    /// Give a user a generated temporary password (shown once, or sent).
    Set {
        /// The user.
        username: String,
        /// Admin-managed (reusable, only an administrator changes it) instead of single-use.
        #[arg(long)]
        managed: bool,
        /// Last day it works (YYYY-MM-DD, UTC), instead of the policy's lifetime.
        #[arg(long)]
        expires: Option<String>,
        /// Send it to the user's verified email or phone instead of printing it.
        #[arg(long, value_enum)]
        send: Option<Send>,
    },
    /// Remove a user's temporary password.
    Remove {
        /// The user.
        username: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Send {
    Sms,
    Email,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
}

/// How a command ended, as an exit code.
#[derive(Debug)]
enum Exit {
    /// 1: the system failed or the input was unusable.
    Error(String),
    /// 64: the command line is incomplete.
    Usage(String),
    /// 20: refused.
    Denied(String),
    /// Any other code, already reported.
    Code(u8),
}

impl From<Error> for Exit {
    fn from(e: Error) -> Self {
        match e {
            Error::PermissionDenied(denied) => Exit::Denied(format!("permission denied: {denied}")),
            other => Exit::Error(other.to_string()),
        }
    }
}

impl From<io::Error> for Exit {
    fn from(e: io::Error) -> Self {
        Exit::Error(e.to_string())
    }
}

type Done = Result<(), Exit>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage { 64 } else { 0 });
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit::Code(code)) => ExitCode::from(code),
        Err(Exit::Error(message)) => {
            report_failure(&cli, "error", &message);
            ExitCode::from(1)
        }
        Err(Exit::Denied(message)) => {
            report_failure(&cli, "denied", &message);
            ExitCode::from(20)
        }
        Err(Exit::Usage(message)) => {
            report_failure(&cli, "usage", &message);
            ExitCode::from(64)
        }
    }
}

fn report_failure(cli: &Cli, kind: &str, message: &str) {
    if cli.json {
        println!("{}", json!({ kind: message }));
    } else {
        eprintln!("{kind}: {message}");
    }
}

/// The running tool: the service, where it works and who acts.
struct Tool<'a> {
    cli: &'a Cli,
    kw: Keyward,
    site: SiteId,
}

fn run(cli: &Cli) -> Done {
    let site = match &cli.site {
        Some(site) => SiteId::new(site).map_err(|e| Exit::Error(format!("--site: {e}")))?,
        None => {
            return Err(Exit::Usage(
                "--site SITE is required (or KEYWARD_SITE)".into(),
            ));
        }
    };
    let tool = Tool {
        cli,
        kw: service(cli)?,
        site,
    };
    match &cli.command {
        Command::Init {
            admin,
            forename,
            surname,
            email,
        } => tool.init(admin, forename, surname, email.as_deref()),
        Command::Recover { admin, reset_totp } => tool.recover(admin, *reset_totp),
        Command::SignIn { username } => tool.sign_in(username),
        command => {
            let (actor, password) = tool.authenticate()?;
            tool.act(command, &actor, &password)
        }
    }
}

/// The store the flags name: the SQLite file (the embedded default) or PostgreSQL.
fn open_store(cli: &Cli) -> Result<Arc<dyn UserStore>, Exit> {
    match &cli.postgres {
        #[cfg(feature = "postgres")]
        Some(url) => keyward::PostgresStore::connect(url)
            .map(|s| Arc::new(s) as Arc<dyn UserStore>)
            .map_err(|e| Exit::Error(format!("PostgreSQL: {e}"))),
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err(Exit::Error(
            "this build has no PostgreSQL store: run with `--features postgres`".into(),
        )),
        None => SqliteStore::open(&cli.db)
            .map(|s| Arc::new(s) as Arc<dyn UserStore>)
            .map_err(|e| Exit::Error(format!("{}: {e}", cli.db.display()))),
    }
}

/// A 32-byte key from 64 hex digits in an environment variable.
fn key_from_env(var: &str, id_var: &str) -> Result<Option<TotpSealer>, Exit> {
    let Ok(text) = std::env::var(var) else {
        return Ok(None);
    };
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .map_err(|_| Exit::Error(format!("{var} must be 64 hex digits")))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Exit::Error(format!("{var} must be 64 hex digits (32 bytes)")))?;
    let id = std::env::var(id_var).unwrap_or_else(|_| "k1".to_owned());
    TotpSealer::new(&id, &key)
        .map(Some)
        .map_err(|e| Exit::Error(format!("{var}: {e}")))
}

fn service(cli: &Cli) -> Result<Keyward, Exit> {
    service_with(cli, Hasher::default())
}

fn service_with(cli: &Cli, hasher: Hasher) -> Result<Keyward, Exit> {
    let mut builder = Keyward::builder(open_store(cli)?).hasher(hasher);
    builder = match &cli.mail_dir {
        Some(dir) => builder.notifier(Arc::new(MailDrop::new(dir)?)),
        None => builder.notifier(Arc::new(NoTransport)),
    };
    if let Some(sealer) = key_from_env("KEYWARD_SEALING_KEY", "KEYWARD_SEALING_KEY_ID")? {
        builder = builder.totp_sealer(sealer);
    }
    if let Some(escrow) = key_from_env("KEYWARD_ESCROW_KEY", "KEYWARD_ESCROW_KEY_ID")? {
        builder = builder.temporary_password_escrow(escrow);
    }
    Ok(builder.build())
}

/// Removes report files created for a run that committed nothing.
fn discard(paths: &[Option<&Path>]) {
    for path in paths.iter().flatten() {
        let _ = fs::remove_file(path);
    }
}

/// A secret from an environment variable, or asked for without echo on a terminal.
fn secret(var: &str, prompt: &str) -> Result<String, Exit> {
    if let Ok(value) = std::env::var(var) {
        return Ok(value);
    }
    if !io::stdin().is_terminal() {
        return Err(Exit::Error(format!(
            "{var} is not set and there is no terminal to ask on"
        )));
    }
    rpassword::prompt_password(prompt).map_err(Exit::from)
}

/// A yes/no question on the terminal; `false` unless answered yes.
fn confirm(question: &str) -> Result<bool, Exit> {
    if !io::stdin().is_terminal() {
        return Err(Exit::Error("no terminal to confirm on: pass --yes".into()));
    }
    eprint!("{question} [y/N] ");
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// A progress bar on a terminal, hidden otherwise.
fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} ({{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

fn day(text: &str, flag: &str) -> Result<Date, Exit> {
    let format = format_description!("[year]-[month]-[day]");
    Date::parse(text, &format).map_err(|_| Exit::Error(format!("{flag}: expected YYYY-MM-DD")))
}

fn instant(text: &str, flag: &str) -> Result<OffsetDateTime, Exit> {
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| day(text, flag).map(|d| d.with_time(Time::MIDNIGHT).assume_utc()))
}

fn when(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

impl Tool<'_> {
    fn print(&self, text: impl FnOnce() -> String, object: impl FnOnce() -> Value) {
        if self.cli.json {
            println!("{}", object());
        } else {
            println!("{}", text());
        }
    }

    /// The id of `username`, looked up as the acting user may (a user out of their sight
    /// answers as unknown).
    fn user_id(&self, actor: &UserId, username: &str) -> Result<UserId, Exit> {
        match self.kw.lookup_user(actor, &self.site, username) {
            Ok(summary) => Ok(summary.user.id),
            Err(Error::UsernameNotFound { .. }) => Err(Exit::Error(format!(
                "no user {username:?} in site {}",
                self.site
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The username of `id` where the acting user may see it, else the id.
    fn username_of(&self, actor: &UserId, id: &UserId) -> String {
        match self.kw.user_summary(actor, id) {
            Ok(summary) => summary.user.username,
            Err(_) => id.to_string(),
        }
    }

    /// Signs the acting user in; returns their id and password (bulk regeneration confirms
    /// with it again).
    fn authenticate(&self) -> Result<(UserId, Password), Exit> {
        let Some(actor) = &self.cli.actor else {
            return Err(Exit::Usage(
                "--as USERNAME is required (or KEYWARD_AS)".into(),
            ));
        };
        let prompt = format!("Password for {actor}: ");
        let mut password = Password::new(secret("KEYWARD_ADMIN_PASSWORD", &prompt)?);
        let pin = std::env::var("KEYWARD_ADMIN_PIN").ok().map(Pin::new);
        let mut step = self
            .kw
            .sign_in(&self.site, actor, &password, pin.as_ref())?;
        loop {
            step = match step {
                SignIn::Authenticated(done) => return Ok((done.user().id.clone(), password)),
                SignIn::TotpRequired(pending) => {
                    // A code from the environment is tried once (asking again would spend
                    // the whole TOTP lockout on one wrong value); a typed one may be retyped.
                    if pending.is_retry() && std::env::var("KEYWARD_TOTP").is_ok() {
                        return Err(Exit::Denied(format!(
                            "{actor} not signed in: the code was not accepted"
                        )));
                    }
                    let code = secret("KEYWARD_TOTP", "Authenticator code: ")?;
                    self.kw.verify_totp(pending, &OneTimeCode::new(code))?
                }
                SignIn::PasswordChangeRequired(pending) => {
                    eprintln!("{actor} must choose a new password.");
                    let new = secret("KEYWARD_NEW_PASSWORD", "New password: ")?;
                    if std::env::var("KEYWARD_NEW_PASSWORD").is_err() {
                        let again = secret("KEYWARD_NEW_PASSWORD", "New password again: ")?;
                        if again != new {
                            return Err(Exit::Error("the passwords differ".into()));
                        }
                    }
                    password = Password::new(new.clone());
                    match self
                        .kw
                        .complete_password_change(pending, Password::new(new))?
                    {
                        PasswordChange::Changed(next) => next,
                        PasswordChange::Rejected(_, violation) => {
                            return Err(Exit::Error(format!("new password refused: {violation}")));
                        }
                        PasswordChange::Denied(denial) => SignIn::Denied(denial),
                        _ => return Err(Exit::Error("the password change did not finish".into())),
                    }
                }
                SignIn::Denied(denial) => {
                    let message =
                        format!("{} ({})", denial.user_message(), denial.reason().as_str());
                    return Err(Exit::Denied(format!("{actor} not signed in: {message}")));
                }
                other => {
                    let message = format!(
                        "{actor} must finish a sign-in step in the app first: {}",
                        step_name(&other)
                    );
                    return Err(Exit::Denied(message));
                }
            };
        }
    }

    fn act(&self, command: &Command, actor: &UserId, password: &Password) -> Done {
        match command {
            Command::Import {
                file,
                format,
                batch,
                wrap_fast,
            } => self.import(actor, file, *format, *batch, *wrap_fast),
            Command::WrapFast => self.wrap_fast(actor),
            Command::AuditArchive { before, out } => {
                let before = instant(before, "--before")?;
                let mut file = private_file(out)?;
                let done = self.kw.archive_audit(actor, &self.site, before, &mut file);
                let done = match done {
                    Ok(done) => done,
                    Err(e) => {
                        discard(&[Some(out.as_path())]);
                        return Err(e.into());
                    }
                };
                file.sync_all()?;
                self.print(
                    || format!("exported and pruned {} events", done.pruned),
                    || json!({ "exported": done.exported, "pruned": done.pruned }),
                );
                Ok(())
            }
            Command::Search(args) => self.search(actor, args),
            Command::Temp(TempCommand::Set {
                username,
                managed,
                expires,
                send,
            }) => self.temp_set(actor, username, *managed, expires.as_deref(), *send),
            Command::Temp(TempCommand::Remove { username }) => {
                let target = self.user_id(actor, username)?;
                self.kw.remove_temporary_password(actor, &target)?;
                self.done("temporary password removed", username)
            }
            Command::ResetLink { username, group } => {
                self.reset_link(actor, username.as_deref(), group)
            }
            Command::Unlock { username } => {
                self.kw.unlock(actor, &self.user_id(actor, username)?)?;
                self.done("unlocked", username)
            }
            Command::ResetTotp { username } => {
                self.kw.reset_totp(actor, &self.user_id(actor, username)?)?;
                self.done("authenticator reset", username)
            }
            Command::Lock { username, reason } => {
                self.kw
                    .lock_user(actor, &self.user_id(actor, username)?, reason)?;
                self.done("locked", username)
            }
            Command::Groups { text } => self.groups(actor, text.as_deref()),
            Command::BulkRegenerate {
                group,
                csv,
                html,
                yes,
            } => self.bulk_regenerate(
                actor,
                password,
                group,
                csv.as_deref(),
                html.as_deref(),
                *yes,
            ),
            Command::Unclaimed { reveal, text } => {
                self.unclaimed(actor, reveal.as_deref(), text.as_deref())
            }
            Command::Audit { user, since, limit } => {
                self.audit(actor, user.as_deref(), since.as_deref(), *limit)
            }
            Command::Init { .. } | Command::Recover { .. } | Command::SignIn { .. } => {
                Err(Exit::Error("not an acting command".into()))
            }
        }
    }

    fn done(&self, what: &str, username: &str) -> Done {
        self.print(
            || format!("{username}: {what}"),
            || json!({ "username": username, "done": what }),
        );
        Ok(())
    }

    fn init(&self, username: &str, forename: &str, surname: &str, email: Option<&str>) -> Done {
        // Bootstrapping has no actor yet: the one direct store read of the tool, to refuse a
        // second "first" administrator.
        let query = UserQuery::new(self.site.clone(), self.kw.now())
            .role(Role::Administrator)
            .page(0, 1);
        let existing = self
            .kw
            .store()
            .search_users(&query)
            .map_err(|e| Exit::Error(e.to_string()))?;
        if existing.total > 0 {
            return Err(Exit::Error(format!(
                "site {} already has an administrator",
                self.site
            )));
        }
        let prompt = format!("Password for {username}: ");
        let password = secret("KEYWARD_ADMIN_PASSWORD", &prompt)?;
        if std::env::var("KEYWARD_ADMIN_PASSWORD").is_err()
            && secret("KEYWARD_ADMIN_PASSWORD", "Again: ")? != password
        {
            return Err(Exit::Error("the passwords differ".into()));
        }
        let mut user = User::new(
            self.site.clone(),
            username,
            forename,
            surname,
            "staff",
            self.kw.now(),
        )
        .with_role(Role::Administrator);
        if let Some(email) = email {
            user = user.with_email(email, false);
        }
        let user = self
            .kw
            .create_user(None, user, Some(Password::new(password)))?;
        self.print(
            || format!("{}: first administrator of site {}", user.username, self.site),
            || json!({ "username": user.username, "site": self.site.as_str(), "role": "administrator" }),
        );
        Ok(())
    }

    fn wrap_fast(&self, actor: &UserId) -> Done {
        let cancel = CancelToken::new();
        let on_interrupt = cancel.clone();
        ctrlc::set_handler(move || on_interrupt.cancel())
            .map_err(|e| Exit::Error(format!("cannot catch Ctrl-C: {e}")))?;
        let bar = progress_bar(0, "users");
        let mut on_progress = |p: keyward::migrate::WrapProgress| {
            bar.set_length(p.total);
            bar.set_position(p.examined);
        };
        let options = keyward::migrate::WrapOptions::new()
            .on_progress(&mut on_progress)
            .cancel_with(cancel);
        let done = self.kw.wrap_fast_hashes(Some(actor), &self.site, options);
        bar.finish_and_clear();
        let done = done?;
        self.print(
            || {
                format!(
                    "examined {}, wrapped {}, changed meanwhile {}, temporary passwords left as they are {}",
                    done.examined, done.wrapped, done.changed_meanwhile, done.temporary
                )
            },
            || json!({ "examined": done.examined, "wrapped": done.wrapped, "changed_meanwhile": done.changed_meanwhile, "temporary_left": done.temporary, "total": done.total }),
        );
        Ok(())
    }

    fn import(
        &self,
        actor: &UserId,
        file: &Path,
        format: Option<Format>,
        batch: usize,
        wrap_fast: bool,
    ) -> Done {
        // Wrapping costs one argon2id per fast hash: a service whose hasher wraps.
        let wrapping;
        let kw = if wrap_fast {
            wrapping = service_with(self.cli, Hasher::default().wrapping_fast_imports())?;
            &wrapping
        } else {
            &self.kw
        };
        let stdin = file == Path::new("-");
        let format = match format {
            Some(format) => format,
            None if stdin => Format::Ndjson,
            None => match file.extension().and_then(|e| e.to_str()) {
                Some("csv") => Format::Csv,
                Some("ndjson" | "jsonl" | "json") => Format::Ndjson,
                _ => return Err(Exit::Usage("name the format: --format ndjson|csv".into())),
            },
        };
        let (source, size): (Box<dyn Read>, Option<u64>) = if stdin {
            (Box::new(io::stdin().lock()), None)
        } else {
            let f = fs::File::open(file)
                .map_err(|e| Exit::Error(format!("{}: {e}", file.display())))?;
            let size = f.metadata().ok().map(|m| m.len());
            (Box::new(f), size)
        };
        // Progress by bytes read: the file streams through, never whole in memory.
        let bar = progress_bar(size.unwrap_or(0), "bytes");
        let reader = BufReader::with_capacity(1 << 16, bar.wrap_read(source));
        let records: Box<dyn Iterator<Item = Result<ImportedUser, RecordError>>> = match format {
            Format::Ndjson => Box::new(import::ndjson_records(reader)),
            Format::Csv => Box::new(import::csv_records(reader)),
        };
        let json = self.cli.json;
        let mut on_refused = |e: &RecordError| {
            let shown = if json {
                json!({ "line": e.line, "field": e.field, "refused": e.reason }).to_string()
            } else {
                e.to_string()
            };
            bar.suspend(|| {
                if json {
                    println!("{shown}")
                } else {
                    eprintln!("refused: {shown}")
                }
            });
        };
        let mut on_progress = |_: &ImportProgress| {};
        let options = ImportOptions::new()
            .batch_size(batch)
            .on_refused(&mut on_refused)
            .on_progress(&mut on_progress);
        let done = kw.import_users(Some(actor), &self.site, records, options)?;
        bar.finish_and_clear();
        self.print(
            || {
                format!(
                    "read {}, imported {}, already there {}, refused {}",
                    done.read, done.created, done.existing, done.refused
                )
            },
            || json!({ "read": done.read, "imported": done.created, "existing": done.existing, "refused": done.refused }),
        );
        if done.refused > 0 {
            Err(Exit::Code(2))
        } else {
            Ok(())
        }
    }

    fn user_row(&self, s: &UserSummary) {
        let u = &s.user;
        let temporary = s
            .temporary
            .as_ref()
            .map(|t| (t.mode.as_str(), when(t.expires_at)));
        let lock = &s.password_lock;
        let locked = lock
            .locked_at
            .map(|at| (when(at), lock.lock_reason.map(|r| r.as_str())));
        self.print(
            || {
                let mut line = format!("{:<20} {} {}", u.username, u.forename, u.surname);
                if !u.groups.is_empty() {
                    line.push_str(&format!("  [{}]", u.groups.join(", ")));
                }
                if let Some((mode, expires)) = &temporary {
                    line.push_str(&format!("  temporary ({mode}, expires {expires})"));
                }
                if let Some((at, reason)) = &locked {
                    line.push_str(&format!("  LOCKED since {at} ({})", reason.unwrap_or("?")));
                }
                line
            },
            || {
                json!({
                    "username": u.username, "forename": u.forename, "surname": u.surname,
                    "groups": u.groups, "role": u.role.as_str(), "status": u.status.as_str(),
                    "temporary": temporary.as_ref().map(|(mode, expires)| json!({"mode": mode, "expires_at": expires})),
                    "locked": locked.as_ref().map(|(at, reason)| json!({"at": at, "reason": reason})),
                    "failed_attempts": lock.failed_attempts,
                    "totp": s.totp_enabled, "totp_reset_pending": s.totp_reset_pending,
                })
            },
        );
    }

    fn search(&self, actor: &UserId, a: &SearchArgs) -> Done {
        let mut query = UserQuery::new(self.site.clone(), self.kw.now());
        if let Some(text) = &a.text {
            query = query.text(text.clone());
        }
        if let Some(group) = &a.group {
            query = query.group(group.clone());
        }
        if a.locked {
            query = query.locked_only();
        }
        if a.unclaimed {
            query = query.unclaimed_only();
        }
        if a.temporary {
            query = query.temporary_password_only();
        }
        let offset = a
            .page
            .saturating_sub(1)
            .saturating_mul(u64::from(a.per_page));
        let page = self
            .kw
            .search_users(actor, &query.page(offset, a.per_page))?;
        for summary in &page.items {
            self.user_row(summary);
        }
        if !self.cli.json {
            eprintln!("{} of {} (page {})", page.items.len(), page.total, a.page);
        }
        Ok(())
    }

    fn temp_set(
        &self,
        actor: &UserId,
        username: &str,
        managed: bool,
        expires: Option<&str>,
        send: Option<Send>,
    ) -> Done {
        let target = self.user_id(actor, username)?;
        let mut options = IssueOptions::generated();
        if managed {
            options = options.mode(TemporaryMode::AdminManaged);
        }
        if let Some(last_day) = expires {
            // Works through the whole of its last day (UTC).
            let end = day(last_day, "--expires")?.next_day().unwrap_or(Date::MAX);
            options = options.expires_at(end.with_time(Time::MIDNIGHT).assume_utc());
        }
        options = match send {
            Some(Send::Email) => options.deliver(Channel::Email),
            Some(Send::Sms) => options.deliver(Channel::Sms),
            None => options,
        };
        let issued = self.kw.issue_temporary_password(actor, &target, options)?;
        let expires = when(issued.expires_at);
        let sent = issued.receipt.as_ref().map(|r| r.to.to_string());
        let shown = issued
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned());
        self.print(
            || match (&shown, &sent) {
                (Some(password), _) => format!("{username}: temporary password {password} ({}, expires {expires}) — shown once", issued.mode),
                (None, Some(to)) => format!("{username}: temporary password sent to {to} ({}, expires {expires})", issued.mode),
                (None, None) => format!("{username}: temporary password set"),
            },
            || json!({ "username": username, "password": shown, "sent_to": sent, "mode": issued.mode.as_str(), "expires_at": expires }),
        );
        Ok(())
    }

    fn reset_link(&self, actor: &UserId, username: Option<&str>, groups: &[String]) -> Done {
        if let Some(username) = username {
            let receipt = self
                .kw
                .send_password_reset(actor, &self.user_id(actor, username)?)?;
            let to = receipt.to.to_string();
            self.print(
                || format!("{username}: reset link sent to {to}"),
                || json!({ "username": username, "sent_to": to }),
            );
            return Ok(());
        }
        let resets = self
            .kw
            .send_group_password_resets(actor, &self.site, groups)?;
        for (id, receipt) in &resets.sent {
            let (username, to) = (self.username_of(actor, id), receipt.to.to_string());
            self.print(
                || format!("{username}: reset link sent to {to}"),
                || json!({ "username": username, "sent_to": to }),
            );
        }
        for summary in &resets.without_email {
            let username = &summary.user.username;
            self.print(
                || format!("{username}: no verified email — give a temporary password instead"),
                || json!({ "username": username, "sent_to": null, "reason": "no_verified_email" }),
            );
        }
        if !self.cli.json {
            eprintln!(
                "{} sent, {} without a verified email",
                resets.sent.len(),
                resets.without_email.len()
            );
        }
        Ok(())
    }

    fn groups(&self, actor: &UserId, text: Option<&str>) -> Done {
        let mut query = GroupQuery::new(self.site.clone());
        if let Some(text) = text {
            query = query.text(text);
        }
        let page = self.kw.cohort_groups(actor, &query.page(0, MAX_PAGE))?;
        for g in &page.items {
            self.print(
                || {
                    format!(
                        "{:<24} {:>6} members {:>6} unclaimed",
                        g.name, g.members, g.unclaimed
                    )
                },
                || json!({ "group": g.name, "members": g.members, "unclaimed": g.unclaimed }),
            );
        }
        Ok(())
    }

    fn bulk_regenerate(
        &self,
        actor: &UserId,
        password: &Password,
        groups: &[String],
        csv: Option<&Path>,
        html: Option<&Path>,
        yes: bool,
    ) -> Done {
        if csv.is_none() && html.is_none() {
            return Err(Exit::Error(
                "give --csv FILE and/or --html FILE: the passwords are shown only once".into(),
            ));
        }
        let preview = self.kw.preview_regeneration(actor, &self.site, groups)?;
        for g in preview.per_group() {
            self.print(
                || format!("{:<24} {:>6} to regenerate", g.name, g.picked),
                || json!({ "group": g.name, "to_regenerate": g.picked }),
            );
        }
        for (reason, count) in preview.skipped() {
            self.print(
                || format!("{:<24} {count:>6} skipped", reason.as_str()),
                || json!({ "skipped": reason.as_str(), "count": count }),
            );
        }
        let total = preview.total();
        if total == 0 {
            self.print(
                || "nobody to regenerate".into(),
                || json!({ "regenerated": 0 }),
            );
            return Ok(());
        }
        let question =
            format!("Regenerate {total} temporary passwords? The previous list stops working.");
        if !yes && !confirm(&question)? {
            return Err(Exit::Error("not confirmed: nothing changed".into()));
        }
        // The files first: once the batch commits, they are the only copy of the passwords.
        let open = |path: Option<&Path>| path.map(private_file).transpose();
        let mut csv_file = open(csv)?;
        let mut html_file = match open(html) {
            Ok(file) => file,
            Err(e) => {
                discard(&[csv]);
                return Err(e.into());
            }
        };
        // Ctrl-C before the commit cancels: nothing changes.
        let cancel = CancelToken::new();
        let on_interrupt = cancel.clone();
        ctrlc::set_handler(move || on_interrupt.cancel())
            .map_err(|e| Exit::Error(format!("cannot catch Ctrl-C: {e}")))?;
        let bar = progress_bar(total, "passwords");
        let mut on_progress = |p: keyward::admin::Progress| bar.set_position(p.done);
        let options = RegenerationOptions::new()
            .on_progress(&mut on_progress)
            .cancel_with(cancel);
        let done = self.kw.regenerate(actor, password, preview, options);
        bar.finish_and_clear();
        let done = match done {
            Ok(done) => done,
            Err(error) => {
                // Nothing was committed: the empty files go.
                discard(&[csv, html]);
                return Err(match error {
                    Error::Cancelled => {
                        Exit::Error("cancelled before the commit: nothing changed".into())
                    }
                    other => other.into(),
                });
            }
        };
        if let Some(file) = csv_file.as_mut() {
            file.write_all(done.list.to_csv()?.as_bytes())?;
            file.sync_all()?;
        }
        if let Some(file) = html_file.as_mut() {
            file.write_all(done.list.to_html().as_bytes())?;
            file.sync_all()?;
        }
        let count = done.list.rows.len();
        let changed = done.changed_meanwhile.len();
        self.print(
            || format!("regenerated {count} temporary passwords ({changed} changed meanwhile and kept theirs)"),
            || json!({ "regenerated": count, "changed_meanwhile": changed, "batch": done.list.batch.as_str() }),
        );
        Ok(())
    }

    fn unclaimed(&self, actor: &UserId, reveal: Option<&str>, text: Option<&str>) -> Done {
        if let Some(username) = reveal {
            let password = self
                .kw
                .reveal_temporary_password(actor, &self.user_id(actor, username)?)?;
            let shown = password.expose_secret();
            self.print(
                || format!("{username}: {shown}"),
                || json!({ "username": username, "password": shown }),
            );
            return Ok(());
        }
        let mut query = UserQuery::new(self.site.clone(), self.kw.now());
        if let Some(text) = text {
            query = query.text(text);
        }
        let page = self.kw.unclaimed_users(actor, &query.page(0, MAX_PAGE))?;
        for u in &page.items {
            self.user_row(&u.summary);
        }
        if !self.cli.json {
            eprintln!("{} unclaimed", page.total);
        }
        Ok(())
    }

    fn audit(&self, actor: &UserId, user: Option<&str>, since: Option<&str>, limit: u32) -> Done {
        let mut query = match user {
            Some(username) => AuditQuery::for_user(self.user_id(actor, username)?),
            None => AuditQuery::default(),
        }
        .site(self.site.clone());
        if let Some(since) = since {
            query = query.between(
                instant(since, "--since")?,
                OffsetDateTime::now_utc() + time::Duration::days(1),
            );
        }
        let limit = limit.clamp(1, MAX_PAGE);
        // Newest `limit` events, printed oldest first.
        let total = self.kw.audit_trail(actor, &query.clone().page(0, 1))?.total;
        let page = self.kw.audit_trail(
            actor,
            &query.page(total.saturating_sub(u64::from(limit)), limit),
        )?;
        for event in &page.items {
            self.event_row(actor, event);
        }
        Ok(())
    }

    fn event_row(&self, actor_id: &UserId, e: &AuditEvent) {
        let actor = e.actor.as_ref().map(|a| self.username_of(actor_id, a));
        let target = e.target.as_ref().map(|t| self.username_of(actor_id, t));
        self.print(
            || {
                let mut line = format!(
                    "{} {:<28} {:<9} by {:<16} on {}",
                    when(e.at),
                    e.action.as_str(),
                    e.outcome.as_str(),
                    actor.as_deref().unwrap_or("-"),
                    target.as_deref().unwrap_or("-")
                );
                if let Some(reason) = &e.reason {
                    line.push_str(&format!("  reason: {reason}"));
                }
                if let Some(details) = &e.details {
                    line.push_str(&format!("  ({details})"));
                }
                line
            },
            || {
                json!({
                    "at": when(e.at), "action": e.action.as_str(), "outcome": e.outcome.as_str(),
                    "actor": actor, "username": target, "reason": e.reason, "details": e.details,
                })
            },
        );
    }

    fn recover(&self, admin: &str, reset_totp: bool) -> Done {
        let password = self
            .kw
            .recover_administrator(&self.site, admin, reset_totp)?;
        let shown = password.expose_secret();
        self.print(
            || format!("{admin}: unlocked; single-use temporary password {shown} — shown once, change it at the next sign-in"),
            || json!({ "username": admin, "password": shown, "recovered": true }),
        );
        Ok(())
    }

    fn sign_in(&self, username: &str) -> Done {
        let password = Password::new(secret(
            "KEYWARD_PASSWORD",
            &format!("Password for {username}: "),
        )?);
        let pin = std::env::var("KEYWARD_PIN").ok().map(Pin::new);
        let mut step = self
            .kw
            .sign_in(&self.site, username, &password, pin.as_ref())?;
        if let SignIn::TotpRequired(pending) = step {
            match std::env::var("KEYWARD_TOTP") {
                Ok(code) => step = self.kw.verify_totp(pending, &OneTimeCode::new(code))?,
                Err(_) => step = SignIn::TotpRequired(pending),
            }
        }
        match step {
            SignIn::Authenticated(done) => {
                let upgraded = done.hash_upgraded();
                self.print(
                    || format!("{username}: authenticated{}", if upgraded { " (hash upgraded to argon2id)" } else { "" }),
                    || json!({ "username": username, "outcome": "authenticated", "hash_upgraded": upgraded }),
                );
                Ok(())
            }
            SignIn::Denied(denial) => {
                let (message, reason) = (denial.user_message(), denial.reason());
                let hint = reason.admin_hint();
                self.print(
                    || format!("{username}: denied\n  user sees: {message}\n  reason:    {}{}", reason.as_str(), hint.map(|h| format!("\n  admin:     {h}")).unwrap_or_default()),
                    || json!({ "username": username, "outcome": "denied", "user_message": message, "reason": reason.as_str(), "admin_hint": hint }),
                );
                Err(Exit::Code(20))
            }
            other => {
                let name = step_name(&other);
                self.print(
                    || format!("{username}: further step required: {name}"),
                    || json!({ "username": username, "outcome": "step_required", "step": name }),
                );
                Err(Exit::Code(10))
            }
        }
    }
}

/// The name of a further sign-in step, for messages.
fn step_name(step: &SignIn) -> &'static str {
    match step {
        SignIn::Authenticated(_) => "none",
        SignIn::PasswordChangeRequired(_) => "password_change",
        SignIn::TotpRequired(_) => "totp_code",
        SignIn::DeviceAuthorizationRequired(_) => "device_code",
        SignIn::TotpEnrollmentRequired(_) => "totp_enrollment",
        SignIn::Denied(_) => "denied",
        _ => "unknown",
    }
}
