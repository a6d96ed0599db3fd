//! `web`: keyward behind an [axum] web application, the reference to copy from. Sign-in form,
//! TOTP step, emailed device code after an authenticator reset, enrollment with the QR code,
//! forced password change after a single-use temporary password, sign-out, and setting up an
//! authenticator while signed in.
//!
//! ```text
//! export KEYWARD_STEP_KEY=$(openssl rand -hex 32) KEYWARD_SEALING_KEY=$(openssl rand -hex 32) \
//!        KEYWARD_COOKIE_KEY=$(openssl rand -hex 32)
//! cargo run --example web -- --db web.db seed --username sam --email sam@example.org
//! cargo run --example web -- --db web.db --mail-dir mail serve --plain-http
//! ```
//!
//! The server keeps no state of its own, so any number of them can serve one database:
//!
//! - A pending step (TOTP code, device code, enrollment, new password) travels in the `kw_step`
//!   cookie, sealed by [`Keyward::seal_step`] under the step keys every server shares; any
//!   server opens it with [`Keyward::open_step`] and finishes it, once.
//! - A signed-in session is the `kw_session` cookie: the user id, when they signed in, and the
//!   account's security stamp. Every request checks the stamp with [`Keyward::check_session`]
//!   (one store read), so a password change, an authenticator reset, a lock or a role change
//!   signs the user out everywhere at their next request. Sign-out clears the cookie in this
//!   browser; it cannot end a copy of the cookie taken elsewhere (that needs a session store).
//! - Both cookies are encrypted and authenticated with the cookie key (axum-extra's
//!   [`PrivateCookieJar`]), `HttpOnly`, `SameSite=Strict` and, unless `--plain-http`, `Secure`.
//!
//! Keys come from the environment only (arguments are visible to every user of the machine):
//! `KEYWARD_STEP_KEY` (id `KEYWARD_STEP_KEY_ID`, default `s1`), `KEYWARD_SEALING_KEY` (the TOTP
//! sealing key the admin tool uses too, id `KEYWARD_SEALING_KEY_ID`, default `k1`) and
//! `KEYWARD_COOKIE_KEY`, each 32 bytes as 64 hex digits (or base64). Device codes are written
//! to `--mail-dir`, one owner-only file per message, standing in for the application's mail
//! transport. Put the server behind TLS; `--plain-http` is for trying it on this machine.

#[path = "support/mail_drop.rs"]
mod mail_drop;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, Key, PrivateCookieJar, SameSite};
use clap::{Parser, Subcommand};
use keyward::notify::Notifier;
use keyward::signin::{PasswordChange, PendingStep, Reauthentication};
use keyward::totp::recovery_codes::RecoveryCodes;
use keyward::totp::{TotpConfig, TotpSealer};
use keyward::user::{SiteId, User, UserId};
use keyward::{
    Keyward, OneTimeCode, Password, Pin, RecoveryCode, SecurityStamp, SessionCheck, SignIn,
    SqliteStore,
};
use mail_drop::{MailDrop, NoTransport};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

/// The session cookie: user id, sign-in time, security stamp.
const SESSION: &str = "kw_session";
/// The sealed pending step of a sign-in in progress.
const STEP: &str = "kw_step";
/// Marks a step cookie holding an authenticator set-up begun while signed in (inside the
/// encrypted cookie, so it cannot be added or removed by the client).
const SETUP: &str = "setup:";
/// A session ends this long after sign-in, whatever happens to the account meanwhile.
const SESSION_LIFETIME: Duration = Duration::hours(12);

/// keyward's web example: sign-in with every step, on a SQLite file.
#[derive(Parser, Debug)]
#[command(name = "web")]
struct Cli {
    /// SQLite database file (created and migrated on first use).
    #[arg(long, global = true, default_value = "keyward.db", env = "KEYWARD_DB")]
    db: PathBuf,
    /// The site users sign in to.
    #[arg(long, global = true, default_value = "demo", env = "KEYWARD_SITE")]
    site: String,
    /// Directory where messages to users are dropped (one owner-only file each).
    #[arg(long, global = true, env = "KEYWARD_MAIL_DIR")]
    mail_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the sign-in pages.
    Serve {
        /// Address to listen on; port 0 picks a free one (the address is printed).
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Cookies without the `Secure` attribute, for trying the example over plain HTTP.
        #[arg(long)]
        plain_http: bool,
        /// The name authenticator apps show for the account.
        #[arg(long, default_value = "keyward web example")]
        issuer: String,
    },
    /// Create a demo user with a verified email (password from `KEYWARD_DEMO_PASSWORD` or a
    /// prompt).
    Seed {
        /// Username.
        #[arg(long)]
        username: String,
        /// Email address (device codes go there).
        #[arg(long)]
        email: String,
        /// Given name.
        #[arg(long, default_value = "Demo")]
        forename: String,
        /// Family name.
        #[arg(long, default_value = "User")]
        surname: String,
        /// User type (selects the password policy).
        #[arg(long, default_value = "staff")]
        user_type: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("web: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let site = SiteId::new(&cli.site).map_err(|e| format!("--site: {e}"))?;
    match cli.command {
        Command::Seed {
            ref username,
            ref email,
            ref forename,
            ref surname,
            ref user_type,
        } => {
            let kw = keyward(&cli, None, None, TotpConfig::DEFAULT)?;
            let password = match std::env::var("KEYWARD_DEMO_PASSWORD") {
                Ok(password) => password,
                Err(_) => rpassword::prompt_password(format!("password for {username}: "))
                    .map_err(|e| format!("reading the password: {e}"))?,
            };
            let user = User::new(site, username, forename, surname, user_type, kw.now())
                .with_email(email, true);
            let user = kw
                .create_user(None, user, Some(Password::new(password)))
                .map_err(|e| format!("creating {username}: {e}"))?;
            println!("created {} ({})", user.username, user.id);
            Ok(())
        }
        Command::Serve {
            listen,
            plain_http,
            ref issuer,
        } => {
            let steps = key_from_env("KEYWARD_STEP_KEY", "KEYWARD_STEP_KEY_ID", "s1")?;
            let sealing = key_from_env("KEYWARD_SEALING_KEY", "KEYWARD_SEALING_KEY_ID", "k1")?;
            let cookies = cookie_key()?;
            let totp = TotpConfig::DEFAULT
                .with_issuer(issuer)
                .map_err(|e| format!("--issuer: {e}"))?;
            if cli.mail_dir.is_none() {
                eprintln!("web: no --mail-dir: device codes cannot be sent");
            }
            let kw = keyward(&cli, Some(steps), Some(sealing), totp)?;
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime.block_on(serve(kw, site, cookies, listen, !plain_http))
        }
    }
}

/// The service on the SQLite file, delivering into the mail drop.
fn keyward(
    cli: &Cli,
    steps: Option<TotpSealer>,
    sealing: Option<TotpSealer>,
    totp: TotpConfig,
) -> Result<Keyward, String> {
    let store = SqliteStore::open(&cli.db).map_err(|e| format!("{}: {e}", cli.db.display()))?;
    let notifier: Arc<dyn Notifier> = match &cli.mail_dir {
        Some(dir) => Arc::new(MailDrop::new(dir).map_err(|e| format!("{}: {e}", dir.display()))?),
        None => Arc::new(NoTransport),
    };
    let mut builder = Keyward::builder(Arc::new(store))
        .notifier(notifier)
        .totp(totp);
    if let Some(steps) = steps {
        // Shared by every server, so that a step sealed on one opens on the others.
        builder = builder.step_keys(steps);
    }
    if let Some(sealing) = sealing {
        builder = builder.totp_sealer(sealing);
    }
    Ok(builder.build())
}

/// A 32-byte key ring from the environment (64 hex digits or base64).
fn key_from_env(var: &str, id_var: &str, default_id: &str) -> Result<TotpSealer, String> {
    let text = std::env::var(var).map_err(|_| format!("{var} is not set (32 bytes, hex)"))?;
    let id = std::env::var(id_var).unwrap_or_else(|_| default_id.to_owned());
    TotpSealer::from_text(&id, &text).map_err(|e| format!("{var}: {e}"))
}

/// The cookie key: 32 bytes from `KEYWARD_COOKIE_KEY`, expanded to the jar's signing and
/// encryption keys.
fn cookie_key() -> Result<Key, String> {
    let var = "KEYWARD_COOKIE_KEY";
    let text = std::env::var(var).map_err(|_| format!("{var} is not set (32 bytes, hex)"))?;
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .map_err(|_| format!("{var} must be 64 hex digits"))?;
    if bytes.len() != 32 {
        return Err(format!("{var} must be 64 hex digits"));
    }
    Ok(Key::derive_from(&bytes))
}

// --- The application ------------------------------------------------------------------------

/// What every handler shares.
#[derive(Clone)]
struct App {
    kw: Arc<Keyward>,
    site: SiteId,
    cookies: Key,
    secure: bool,
    /// Shown in the page footer: which server answered.
    served_by: Arc<str>,
}

impl FromRef<App> for Key {
    fn from_ref(app: &App) -> Self {
        app.cookies.clone()
    }
}

async fn serve(
    kw: Keyward,
    site: SiteId,
    cookies: Key,
    listen: SocketAddr,
    secure: bool,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = App {
        kw: Arc::new(kw),
        site,
        cookies,
        secure,
        served_by: addr.to_string().into(),
    };
    let router = Router::new()
        .route("/", get(home))
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .route("/step", get(step_form).post(step_answer))
        .route("/step/cancel", post(step_cancel))
        .route("/authenticator", post(authenticator))
        .route("/sign-out", post(sign_out))
        // Layers run bottom-up: `guard` first, then the session check.
        .layer(middleware::from_fn_with_state(app.clone(), check_session))
        .layer(middleware::from_fn(guard))
        .with_state(app);
    println!("listening on http://{addr}");
    // Tests (and process supervisors) read the line above as soon as it is written.
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    axum::serve(listener, router)
        .await
        .map_err(|e| format!("serving: {e}"))
}

/// Every keyward call goes through here. keyward is blocking (password hashing, store I/O),
/// so it runs on tokio's blocking pool, never on the threads that serve requests.
async fn call<T: Send + 'static>(
    app: &App,
    work: impl FnOnce(&Keyward) -> T + Send + 'static,
) -> Result<T, Fail> {
    let kw = app.kw.clone();
    tokio::task::spawn_blocking(move || work(&kw))
        .await
        .map_err(|e| Fail(format!("blocking task: {e}")))
}

/// A system failure (store, hashing, delivery): logged in full, shown as a plain 500.
#[derive(Debug)]
struct Fail(String);

impl From<keyward::Error> for Fail {
    fn from(e: keyward::Error) -> Self {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Self(text)
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        eprintln!("web: error: {}", self.0);
        let body = page(
            "Something went wrong",
            html! { p { "Something went wrong on our side. Please try again later." } },
            "",
        );
        (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
    }
}

// --- Middleware: cross-site requests, headers, the session ------------------------------------

/// Refuses cross-site form posts and sets the headers every page needs.
///
/// CSRF: both cookies are `SameSite=Strict`, so a form posted from another site arrives
/// without them and can neither act in a session nor finish a step. That leaves login CSRF
/// (another site signing the browser in to *its* account), which the origin check below
/// stops: browsers send `Sec-Fetch-Site` or `Origin` with every form post. Requests with
/// neither (curl, test clients) are not from a browser and carry no ambient cookies. An
/// application with forms on other origins of its own would add per-form tokens instead.
async fn guard(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let headers = request.headers();
        if !same_origin(headers) {
            return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // The pages hold codes and secrets: never cache them, never frame them.
    let fixed = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Whether a state-changing request comes from this site's own pages.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site == "same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let authority = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
    });
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    authority.is_some() && authority == host
}

/// Who is asking: the signed-in user, whose session was checked on this very request.
#[derive(Clone)]
struct Visitor(Option<Arc<User>>);

/// Checks the session cookie on every request: its age, then its stamp against the account
/// as it is now. A stale session is signed out (the cookie removed) and the request goes on
/// as anonymous.
async fn check_session(
    State(app): State<App>,
    jar: PrivateCookieJar,
    mut request: Request,
    next: Next,
) -> Result<Response, Fail> {
    let present = CookieJar::from_headers(request.headers())
        .get(SESSION)
        .is_some();
    let session = jar
        .get(SESSION)
        .and_then(|c| SessionCookie::parse(c.value()));
    let user = match session {
        Some(session) if OffsetDateTime::now_utc() - session.signed_in_at < SESSION_LIFETIME => {
            let check = call(&app, move |kw| {
                kw.check_session(&session.user, &session.stamp)
            });
            match check.await?? {
                SessionCheck::Current(user) => Some(Arc::<User>::from(user)),
                _ => None,
            }
        }
        _ => None,
    };
    let sign_out = present && user.is_none();
    request.extensions_mut().insert(Visitor(user));
    let response = next.run(request).await;
    // A handler that signed someone in has set a new session cookie: keep it.
    let replaced = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(format!("{SESSION}=").as_bytes()));
    if sign_out && !replaced {
        return Ok((jar.remove(removal(SESSION)), response).into_response());
    }
    Ok(response)
}

/// The session cookie's content (inside the encrypted cookie).
struct SessionCookie {
    user: UserId,
    signed_in_at: OffsetDateTime,
    stamp: SecurityStamp,
}

impl SessionCookie {
    fn to_value(&self) -> String {
        let at = self.signed_in_at.unix_timestamp();
        format!("{} {at} {}", self.user, self.stamp.as_str())
    }

    fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(' ');
        let user = UserId::parse(parts.next()?).ok()?;
        let at = parts.next()?.parse().ok()?;
        let signed_in_at = OffsetDateTime::from_unix_timestamp(at).ok()?;
        let stamp = SecurityStamp::new(parts.next()?);
        parts.next().is_none().then_some(Self {
            user,
            signed_in_at,
            stamp,
        })
    }
}

fn cookie(app: &App, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(app.secure)
        .build()
}

/// What removes a cookie set by [`cookie`] (same name and path).
fn removal(name: &'static str) -> Cookie<'static> {
    Cookie::build(name).path("/").build()
}

// --- Handlers -------------------------------------------------------------------------------

async fn home(
    State(app): State<App>,
    Extension(visitor): Extension<Visitor>,
    jar: PrivateCookieJar,
) -> Response {
    let Some(user) = visitor.0 else {
        let to = if jar.get(STEP).is_some() {
            "/step"
        } else {
            "/sign-in"
        };
        return Redirect::to(to).into_response();
    };
    let body = html! {
        p.ok { "Signed in as " strong { (user.forename) " " (user.surname) } " (" (user.username) ")." }
        form method="post" action="/authenticator" {
            button type="submit" { "Set up an authenticator app" }
        }
        form method="post" action="/sign-out" {
            button.secondary type="submit" { "Sign out" }
        }
    };
    page("Welcome", body, &app.served_by).into_response()
}

async fn sign_in_form(State(app): State<App>, Extension(visitor): Extension<Visitor>) -> Response {
    if visitor.0.is_some() {
        return Redirect::to("/").into_response();
    }
    sign_in_page(&app, None).into_response()
}

#[derive(Deserialize)]
struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    pin: String,
}

async fn sign_in(
    State(app): State<App>,
    jar: PrivateCookieJar,
    Form(form): Form<SignInForm>,
) -> Result<Response, Fail> {
    let site = app.site.clone();
    let outcome = call(&app, move |kw| {
        let pin = (!form.pin.is_empty()).then(|| Pin::new(form.pin));
        kw.sign_in(
            &site,
            &form.username,
            &Password::new(form.password),
            pin.as_ref(),
        )
    });
    land(&app, jar, outcome.await??).await
}

/// Where a sign-in step leads: signed in, the next step (sealed into the step cookie), or
/// back to the sign-in form with the one message a denial may show.
async fn land(app: &App, jar: PrivateCookieJar, outcome: SignIn) -> Result<Response, Fail> {
    let step: PendingStep = match outcome {
        SignIn::Authenticated(mut done) => {
            let session = SessionCookie {
                user: done.user().id.clone(),
                signed_in_at: OffsetDateTime::now_utc(),
                stamp: done.stamp().clone(),
            };
            let jar = jar
                .remove(removal(STEP))
                .add(cookie(app, SESSION, session.to_value()));
            // A sign-in that enrolled a new authenticator brings its recovery codes.
            return Ok(match done.take_recovery_codes() {
                Some(codes) => (jar, recovery_codes_page(app, &codes)).into_response(),
                None => (jar, Redirect::to("/")).into_response(),
            });
        }
        SignIn::AuthenticatorAdded(mut added) => {
            // A set-up while signed in: the account's stamp changed with the new secret.
            let session = SessionCookie {
                user: added.user().clone(),
                signed_in_at: OffsetDateTime::now_utc(),
                stamp: added.stamp().clone(),
            };
            let jar = jar
                .remove(removal(STEP))
                .add(cookie(app, SESSION, session.to_value()));
            return Ok(match added.take_recovery_codes() {
                Some(codes) => (jar, recovery_codes_page(app, &codes)).into_response(),
                None => (jar, Redirect::to("/")).into_response(),
            });
        }
        SignIn::Denied(denial) => {
            // The precise reason is for the log and the audit trail, never for the page.
            eprintln!("web: sign-in denied: {}", denial.reason());
            let page = sign_in_page(app, Some(denial.user_message()));
            return Ok((jar.remove(removal(STEP)), page).into_response());
        }
        SignIn::PasswordChangeRequired(pending) => pending.into(),
        SignIn::TotpRequired(pending) => pending.into(),
        SignIn::DeviceAuthorizationRequired(pending) => pending.into(),
        SignIn::TotpEnrollmentRequired(pending) => pending.into(),
        other => return Err(Fail(format!("unexpected sign-in outcome {other:?}"))),
    };
    let sealed = call(app, move |kw| kw.seal_step(step)).await??;
    let jar = jar.add(cookie(app, STEP, sealed.into_string()));
    Ok((jar, Redirect::to("/step")).into_response())
}

/// The pending step in the cookie, opened; `Err` is the response when there is none, it
/// cannot be opened (tampered, expired, sealed under a retired key), or it is an
/// authenticator set-up that is not the signed-in visitor's own.
async fn open_step(
    app: &App,
    jar: &PrivateCookieJar,
    visitor: &Visitor,
) -> Result<Result<PendingStep, Response>, Fail> {
    let Some(value) = jar.get(STEP).map(|c| c.value().to_owned()) else {
        return Ok(Err(Redirect::to("/sign-in").into_response()));
    };
    let (setup, sealed) = match value.strip_prefix(SETUP) {
        Some(sealed) => (true, sealed.to_owned()),
        None => (false, value),
    };
    let step = match call(app, move |kw| kw.open_step(&sealed)).await? {
        Ok(step) => step,
        Err(denial) => {
            eprintln!("web: step refused: {}", denial.reason());
            let page = sign_in_page(app, Some(denial.user_message()));
            return Ok(Err(
                (jar.clone().remove(removal(STEP)), page).into_response()
            ));
        }
    };
    // Finishing a set-up signs its user in with a new stamp: only within their own session.
    if setup && visitor.0.as_ref().map(|u| &u.id) != Some(step.user()) {
        let to = Redirect::to("/sign-in");
        return Ok(Err((jar.clone().remove(removal(STEP)), to).into_response()));
    }
    Ok(Ok(step))
}

async fn step_form(
    State(app): State<App>,
    Extension(visitor): Extension<Visitor>,
    jar: PrivateCookieJar,
) -> Result<Response, Fail> {
    let step = match open_step(&app, &jar, &visitor).await? {
        Ok(step) => step,
        Err(response) => return Ok(response),
    };
    Ok(step_page(&app, &step, None).into_response())
}

#[derive(Deserialize)]
struct StepForm {
    #[serde(default)]
    code: String,
    /// In place of a TOTP code, when the authenticator is lost.
    #[serde(default)]
    recovery_code: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

async fn step_answer(
    State(app): State<App>,
    Extension(visitor): Extension<Visitor>,
    jar: PrivateCookieJar,
    Form(form): Form<StepForm>,
) -> Result<Response, Fail> {
    let step = match open_step(&app, &jar, &visitor).await? {
        Ok(step) => step,
        Err(response) => return Ok(response),
    };
    let code = OneTimeCode::new(form.code);
    let outcome = match step {
        PendingStep::Totp(pending) if !form.recovery_code.is_empty() => {
            let code = RecoveryCode::new(form.recovery_code);
            call(&app, move |kw| kw.verify_recovery_code(pending, &code)).await
        }
        PendingStep::Totp(pending) => call(&app, move |kw| kw.verify_totp(pending, &code)).await,
        PendingStep::DeviceAuthorization(pending) => {
            call(&app, move |kw| kw.authorize_device(pending, &code)).await
        }
        PendingStep::Enrollment(pending) => {
            call(&app, move |kw| kw.confirm_enrollment(pending, &code)).await
        }
        PendingStep::PasswordChange(pending) => {
            if form.new_password != form.confirm_password {
                let step = PendingStep::PasswordChange(pending);
                let message = "The two passwords differ.";
                return Ok(step_page(&app, &step, Some(message)).into_response());
            }
            let new = Password::new(form.new_password);
            let changed = call(&app, move |kw| kw.complete_password_change(pending, new));
            match changed.await?? {
                PasswordChange::Changed(outcome) => return land(&app, jar, outcome).await,
                PasswordChange::Rejected(pending, violation) => {
                    // Handed back to try again: shown, and sealed into the cookie anew.
                    let message = format!("Please choose another password: {violation}.");
                    let step = PendingStep::PasswordChange(pending);
                    let page = step_page(&app, &step, Some(&message));
                    let sealed = call(&app, move |kw| kw.seal_step(step)).await??;
                    let jar = jar.add(cookie(&app, STEP, sealed.into_string()));
                    return Ok((jar, page).into_response());
                }
                PasswordChange::Denied(denial) => {
                    return land(&app, jar, SignIn::Denied(denial)).await;
                }
                other => return Err(Fail(format!("unexpected password change {other:?}"))),
            }
        }
        other => return Err(Fail(format!("unexpected step {other:?}"))),
    };
    land(&app, jar, outcome??).await
}

async fn step_cancel(jar: PrivateCookieJar) -> Response {
    (jar.remove(removal(STEP)), Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
struct StepUpForm {
    #[serde(default)]
    password: String,
}

/// Self-service: a signed-in user adds (or replaces) their authenticator. The enrollment is a
/// pending step like any other; confirming it changes the stamp, and the new session cookie
/// carries the new one. Replacing one they already have asks for their password first (a
/// step-up, counted on the lockout): a stolen session alone cannot swap in another
/// authenticator.
async fn authenticator(
    State(app): State<App>,
    Extension(visitor): Extension<Visitor>,
    jar: PrivateCookieJar,
    Form(form): Form<StepUpForm>,
) -> Result<Response, Fail> {
    let Some(user) = visitor.0 else {
        return Ok(Redirect::to("/sign-in").into_response());
    };
    let id = user.id.clone();
    let sealed = call(&app, move |kw| {
        let step_up = if form.password.is_empty() {
            None
        } else {
            match kw.reauthenticate(&id, &Password::new(form.password))? {
                Reauthentication::Confirmed(proof) => Some(proof),
                Reauthentication::Denied(denial) => return Ok(Err(Some(denial))),
                // A kind of refusal this example does not know: ask again.
                _ => return Ok(Err(None)),
            }
        };
        match kw.enroll_totp(&id, step_up) {
            Ok(pending) => kw.seal_step(pending).map(Ok),
            Err(keyward::Error::StepUpRequired { .. }) => Ok(Err(None)),
            Err(e) => Err(e),
        }
    });
    let sealed = match sealed.await?? {
        Ok(sealed) => sealed,
        Err(denial) => {
            let message = denial.map(|d| d.user_message());
            return Ok(step_up_page(&app, message).into_response());
        }
    };
    let value = format!("{SETUP}{}", sealed.as_str());
    let jar = jar.add(cookie(&app, STEP, value));
    Ok((jar, Redirect::to("/step")).into_response())
}

/// Asks for the password before an authenticator is replaced.
fn step_up_page(app: &App, message: Option<&str>) -> Html<String> {
    let body = html! {
        (error(message))
        p { "You already have an authenticator. Enter your password to replace it." }
        form method="post" action="/authenticator" {
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Continue" }
        }
    };
    page("Confirm it is you", body, &app.served_by)
}

async fn sign_out(jar: PrivateCookieJar) -> Response {
    let jar = jar.remove(removal(SESSION)).remove(removal(STEP));
    (jar, Redirect::to("/sign-in")).into_response()
}

// --- Pages ----------------------------------------------------------------------------------

const STYLE: &str = "
body { font: 16px/1.5 system-ui, sans-serif; background: #f4f5f7; color: #1d2430; margin: 0; }
main { max-width: 26rem; margin: 3rem auto; background: #fff; padding: 2rem 2.25rem;
       border-radius: 10px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.4rem; margin: 0 0 1rem; }
label { display: block; margin: .75rem 0 .25rem; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: .5rem .6rem; font-size: 1rem;
        border: 1px solid #b8bfcc; border-radius: 6px; }
button { margin-top: 1.25rem; width: 100%; padding: .6rem; font-size: 1rem; border: 0;
         border-radius: 6px; background: #2f5bd3; color: #fff; cursor: pointer; }
button.secondary, button.link { background: #e6e9ef; color: #1d2430; }
.error { background: #fdecea; color: #8a1c12; padding: .6rem .8rem; border-radius: 6px; }
.ok { background: #e7f6ec; color: #135f2c; padding: .6rem .8rem; border-radius: 6px; }
.qr { text-align: center; margin: 1rem 0; }
.qr svg { width: 220px; height: 220px; }
.key { font-family: ui-monospace, monospace; font-size: 1.05rem; letter-spacing: .05em;
       background: #f4f5f7; padding: .4rem .6rem; border-radius: 6px; }
footer { text-align: center; color: #6b7385; font-size: .8rem; margin-top: -2rem; }
";

fn page(title: &str, body: Markup, served_by: &str) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main { h1 { (title) } (body) }
                @if !served_by.is_empty() { footer { "served by " (served_by) } }
            }
        }
    };
    Html(markup.into_string())
}

fn error(message: Option<&str>) -> Markup {
    html! { @if let Some(message) = message { p.error role="alert" { (message) } } }
}

fn sign_in_page(app: &App, message: Option<&str>) -> Html<String> {
    let body = html! {
        (error(message))
        form method="post" action="/sign-in" {
            label for="username" { "Username" }
            input #username name="username" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password" required;
            label for="pin" { "PIN (if you have one)" }
            input #pin name="pin" type="password" inputmode="numeric" autocomplete="off";
            button type="submit" { "Sign in" }
        }
    };
    page("Sign in", body, &app.served_by)
}

/// The form of a pending step; `message` says why the last answer was not taken.
fn step_page(app: &App, step: &PendingStep, message: Option<&str>) -> Html<String> {
    let retry = match step {
        PendingStep::Totp(p) => p.is_retry(),
        PendingStep::DeviceAuthorization(p) => p.is_retry(),
        PendingStep::Enrollment(p) => p.is_retry(),
        _ => false,
    };
    let message = message.or(retry.then_some("The code is incorrect. Please try again."));
    let code_field = html! {
        label for="code" { "Code" }
        input #code name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus;
    };
    let (title, body) = match step {
        PendingStep::Totp(_) => (
            "Enter your code",
            html! {
                p { "Open your authenticator app and enter the 6-digit code it shows." }
                (code_field)
            },
        ),
        PendingStep::DeviceAuthorization(p) => (
            "Check your email",
            html! {
                p { "Your authenticator was reset. We sent a sign-in code to "
                    strong { (p.sent_to()) } "." }
                (code_field)
            },
        ),
        PendingStep::Enrollment(p) => {
            let enrollment = p.enrollment();
            let key = data_encoding::BASE32_NOPAD.encode(enrollment.secret().expose_secret());
            let grouped: Vec<&str> = key
                .as_bytes()
                .chunks(4)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            (
                "Set up your authenticator",
                html! {
                    p { "Scan this code with your authenticator app, then enter the 6-digit code it shows." }
                    // The QR code is SVG markup that keyward builds with the qrcode crate from
                    // the otpauth URI alone (rectangles, no text, no script), so it is
                    // included as it is; everything else on the page is escaped by maud.
                    div.qr { (PreEscaped(svg_element(enrollment.expose_qr_svg()))) }
                    p { "Or enter this key by hand (" (enrollment.account()) "):" }
                    p.key #key { (grouped.join(" ")) }
                    p { a #otpauth href=(enrollment.expose_uri()) { "Open in an authenticator app on this device" } }
                    (code_field)
                },
            )
        }
        PendingStep::PasswordChange(_) => (
            "Choose a new password",
            html! {
                p { "You signed in with a temporary password. Choose your own to continue." }
                label for="new_password" { "New password" }
                input #new_password name="new_password" type="password" autocomplete="new-password" required autofocus;
                label for="confirm_password" { "New password again" }
                input #confirm_password name="confirm_password" type="password" autocomplete="new-password" required;
            },
        ),
        _ => ("Sign in", html! { p { "Please sign in again." } }),
    };
    let body = html! {
        (error(message))
        form method="post" action="/step" {
            (body)
            button type="submit" { "Continue" }
        }
        @if let PendingStep::Totp(_) = step {
            // The same step, answered with a recovery code instead.
            form method="post" action="/step" {
                label for="recovery_code" { "Lost your authenticator? Use a recovery code" }
                input #recovery_code name="recovery_code" autocomplete="off" required;
                button type="submit" { "Use a recovery code" }
            }
        }
        form method="post" action="/step/cancel" {
            button.link type="submit" { "Start again" }
        }
    };
    page(title, body, &app.served_by)
}

/// A new authenticator's recovery codes, shown this once (the response is `no-store`, like
/// every page here); keyward keeps only their digests.
fn recovery_codes_page(app: &App, codes: &RecoveryCodes) -> Html<String> {
    let body = html! {
        p { "Your authenticator is set up. If you ever lose it, each of these codes signs you "
            "in once instead of a code from the app. Print them or keep them somewhere safe: "
            "they are shown only now." }
        ul.recovery {
            @for code in codes.expose_secrets() { li { code { (code) } } }
        }
        p { a #continue href="/" { "Continue" } }
    };
    page("Save your recovery codes", body, &app.served_by)
}

/// The `<svg>` element of a standalone SVG document (without its XML declaration, which has no
/// place inside HTML).
fn svg_element(document: &str) -> &str {
    document.find("<svg").map_or(document, |at| &document[at..])
}

// --- Message delivery -----------------------------------------------------------------------
