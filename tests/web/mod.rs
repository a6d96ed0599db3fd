//! The web example as a deployment for the tests: the example built, servers started on one
//! SQLite file with the same keys, the test's own keyward on that file for what an
//! administrator does, and an HTTP client that keeps cookies as a browser would.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use keyward::admin::IssueOptions;
use keyward::totp::{self, OtpauthUri, TotpConfig, TotpSealer};
use keyward::user::{Role, SiteId, User, UserId};
use keyward::{Keyward, OneTimeCode, Password, SignIn, SqliteStore, TotpSecret};
use time::OffsetDateTime;

pub const SITE: &str = "northfield";
/// The password every seeded user has.
pub const PASSWORD: &str = "river-lantern-copper-58";
const ADMIN_PASSWORD: &str = "ochre-violet-anchor-93";
const STEP_KEY: &str = "5c1e0f3a9b7d24e8c6a1f09b3d7e5c2a8f4b6d0e1c3a5f7b9d2e4c6a8b0f1d3e";
const SEALING_KEY: &str = "a7b9c1d3e5f70819b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a3b5c7d9e1f3a5";
const COOKIE_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The example binary, built once per test process with this test's features (so under a
/// full `cargo test` the build finds everything up to date).
pub fn example() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let features: Vec<&str> = [
            ("postgres", cfg!(feature = "postgres")),
            ("conformance", cfg!(feature = "conformance")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        // This test runs from <target>/<profile>/deps; the example is built beside it.
        let exe = std::env::current_exe().unwrap();
        let profile = exe.parent().and_then(Path::parent).unwrap();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--example", "web", "--manifest-path"]);
        cargo.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        cargo.arg("--target-dir").arg(profile.parent().unwrap());
        if profile.ends_with("release") {
            cargo.arg("--release");
        }
        if !features.is_empty() {
            cargo.arg("--features").arg(features.join(","));
        }
        let built = cargo.output().expect("cargo runs");
        assert!(
            built.status.success(),
            "cargo build --example web failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let path = profile
            .join("examples")
            .join(format!("web{}", std::env::consts::EXE_SUFFIX));
        assert!(path.exists(), "no example binary at {}", path.display());
        path
    })
}

/// Where tests put what a person may want to look at (target/, beside the profile dirs).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_owned()
}

/// A running server process; killed (and its log printed, if the test failed) on drop.
pub struct Server {
    child: Child,
    pub addr: String,
    log: PathBuf,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- log of the server at {} ---\n{log}", self.addr);
        }
    }
}

/// A user created with the example's `seed` command.
pub struct Seeded {
    pub id: UserId,
    pub username: String,
}

impl Seeded {
    pub fn credentials(&self) -> [(&str, &str); 2] {
        [("username", &self.username), ("password", PASSWORD)]
    }
}

/// Servers on one SQLite file with the same keys, and the test's own service on that file.
pub struct Deployment {
    pub a: Server,
    pub b: Server,
    pub kw: Keyward,
    pub admin: User,
    dir: tempfile::TempDir,
}

impl Deployment {
    /// Two servers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kw = Self::service(dir.path());
        let admin = User::new(site(), "head", "Ada", "Admin", "staff", kw.now())
            .with_role(Role::Administrator);
        let admin = kw
            .create_user(None, admin, Some(Password::new(ADMIN_PASSWORD)))
            .unwrap();
        let (a, b) = (start(dir.path(), "a"), start(dir.path(), "b"));
        Self {
            a,
            b,
            kw,
            admin,
            dir,
        }
    }

    fn service(dir: &Path) -> Keyward {
        let store = SqliteStore::open(dir.join("keyward.db")).unwrap();
        Keyward::builder(Arc::new(store))
            .step_keys(TotpSealer::from_text("s1", STEP_KEY).unwrap())
            .totp_sealer(TotpSealer::from_text("k1", SEALING_KEY).unwrap())
            .build()
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Creates `username` with the example's `seed` command, as a person trying it would.
    pub fn seed(&self, username: &str) -> Seeded {
        let email = format!("{username}@example.org");
        let mut seed = self.command();
        seed.args(["seed", "--username", username, "--email", &email])
            .env("KEYWARD_DEMO_PASSWORD", PASSWORD);
        let output = seed.output().expect("the example runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(&format!("created {username}")),
            "seed failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let record = self.kw.store().find_user(&site(), username).unwrap();
        Seeded {
            id: record.expect("the seeded user").user.id,
            username: username.to_owned(),
        }
    }

    fn command(&self) -> Command {
        command(self.dir.path())
    }

    /// Enrolls an authenticator for `user` (outside the web, as a fixture) and returns its
    /// secret.
    pub fn enroll(&self, user: &Seeded) -> TotpSecret {
        let pending = self.kw.enroll_totp(&user.id, None).unwrap();
        let secret = pending.enrollment().secret().expose_secret().to_vec();
        let secret = TotpSecret::from_bytes(secret);
        let code = OneTimeCode::new(current_code(&secret));
        let done = self.kw.confirm_enrollment(pending, &code).unwrap();
        assert!(matches!(done, SignIn::AuthenticatorAdded(_)), "{done:?}");
        secret
    }

    /// The administrator issues `user` a single-use temporary password and returns it.
    pub fn issue_temporary(&self, user: &Seeded) -> String {
        let issued = self
            .kw
            .issue_temporary_password(&self.admin.id, &user.id, IssueOptions::generated())
            .unwrap();
        issued.password.unwrap().expose_secret().to_owned()
    }

    /// The administrator resets `user`'s authenticator.
    pub fn reset_totp(&self, user: &Seeded) {
        self.kw.reset_totp(&self.admin.id, &user.id).unwrap();
    }

    /// The 8-digit code in the newest message of the mail drop to `email`.
    pub fn device_code_for(&self, email: &str) -> String {
        let to = format!("To: email {email}\n");
        let mut messages: Vec<(String, String)> = std::fs::read_dir(self.mail_dir())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(entry.path()).unwrap())
            })
            .filter(|(_, text)| text.starts_with(&to))
            .collect();
        messages.sort();
        let (_, text) = messages.pop().expect("a message to the user");
        digits_in(&text, 8)
    }
}

pub fn site() -> SiteId {
    SiteId::new(SITE).unwrap()
}

/// The example with the deployment's file, mail drop and keys.
fn command(dir: &Path) -> Command {
    let mut command = Command::new(example());
    command
        .arg("--db")
        .arg(dir.join("keyward.db"))
        .arg("--mail-dir")
        .arg(dir.join("mail"))
        .args(["--site", SITE])
        .env("KEYWARD_STEP_KEY", STEP_KEY)
        .env("KEYWARD_SEALING_KEY", SEALING_KEY)
        .env("KEYWARD_COOKIE_KEY", COOKIE_KEY)
        .stdin(Stdio::null());
    command
}

/// Starts a server on a free port and waits (a minute at most) for it to say where it listens.
pub fn start(dir: &Path, name: &str) -> Server {
    let log = dir.join(format!("server-{name}.log"));
    let mut child = command(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--plain-http"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the example starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    let Some(addr) = line.trim().strip_prefix("listening on http://") else {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("server {name} did not start: {line:?}\n{log}");
    };
    Server {
        child,
        addr: addr.to_owned(),
        log,
    }
}

// --- TOTP codes -----------------------------------------------------------------------------

fn code_at(secret: &TotpSecret, at: OffsetDateTime) -> String {
    let code = totp::code_at(&TotpConfig::DEFAULT, secret, at).unwrap();
    code.expose_secret().to_owned()
}

/// The code of the current time step.
pub fn current_code(secret: &TotpSecret) -> String {
    code_at(secret, OffsetDateTime::now_utc())
}

/// The code of the next time step: accepted now (one step of skew) and newer than any step
/// accepted so far, so a sign-in right after an enrollment needs no waiting.
pub fn next_code(secret: &TotpSecret) -> String {
    code_at(
        secret,
        OffsetDateTime::now_utc() + time::Duration::seconds(30),
    )
}

/// A well-formed code that no step near now accepts.
pub fn wrong_code(secret: &TotpSecret) -> String {
    let now = OffsetDateTime::now_utc();
    let near: Vec<String> = (-3..=3)
        .map(|steps| code_at(secret, now + time::Duration::seconds(30 * steps)))
        .collect();
    (0..1000u32)
        .map(|n| format!("{:06}", 123_456 + n * 7))
        .find(|candidate| !near.contains(candidate))
        .unwrap()
}

/// The secret of the enrollment page, from its otpauth link (what a phone would read).
pub fn enrollment_secret(page: &str) -> TotpSecret {
    let start = page.find("href=\"otpauth://").expect("an otpauth link") + 6;
    let end = start + page[start..].find('"').unwrap();
    let uri = page[start..end].replace("&amp;", "&");
    let uri = OtpauthUri::parse(&uri).unwrap();
    assert_eq!(uri.config().issuer(), Some("keyward web example"));
    TotpSecret::from_bytes(uri.secret().expose_secret().to_vec())
}

pub fn digits_in(text: &str, digits: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(digits)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .expect("a code in the message")
}

// --- An HTTP client that keeps cookies ------------------------------------------------------

/// One browser: a cookie jar shared by every server (cookies are per host, not per port, so a
/// browser sends the same ones to both), redirects not followed so each hop is visible.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    cookies: BTreeMap<String, String>,
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Reply {
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    pub fn served_by(&self, server: &Server) -> bool {
        self.body.contains(&format!("served by {}", server.addr))
    }

    /// Whether this answer removes the cookie `name`.
    pub fn removes(&self, name: &str) -> bool {
        self.set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{name}=")) && c.contains("Max-Age=0"))
    }

    /// The value this answer sets for the cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (n, v) = pair.split_once('=')?;
            (n == name && !v.is_empty()).then(|| v.to_owned())
        })
    }
}

impl Client {
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Self {
            agent: config.into(),
            cookies: BTreeMap::new(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.get(name).cloned()
    }

    pub fn set(&mut self, name: &str, value: String) {
        self.cookies.insert(name.to_owned(), value);
    }

    fn cookie_header(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        pairs.join("; ")
    }

    pub fn get(&mut self, server: &Server, path: &str) -> Reply {
        let mut request = self.agent.get(server.url(path));
        if !self.cookies.is_empty() {
            request = request.header("Cookie", self.cookie_header());
        }
        self.keep(request.call().expect("the server answers"))
    }

    pub fn post(&mut self, server: &Server, path: &str, form: &[(&str, &str)]) -> Reply {
        self.post_with(server, path, form, None)
    }

    /// A form post as a browser sends it from a page of `origin`.
    pub fn post_from(
        &mut self,
        server: &Server,
        path: &str,
        form: &[(&str, &str)],
        origin: &str,
    ) -> Reply {
        self.post_with(server, path, form, Some(origin))
    }

    fn post_with(
        &mut self,
        server: &Server,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Reply {
        let mut request = self.agent.post(server.url(path));
        if !self.cookies.is_empty() {
            request = request.header("Cookie", self.cookie_header());
        }
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let response = request
            .send_form(form.iter().copied())
            .expect("the server answers");
        self.keep(response)
    }

    /// Reads the answer and keeps (or drops) the cookies it sets.
    fn keep(&mut self, mut response: ureq::http::Response<ureq::Body>) -> Reply {
        let set_cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for set in &set_cookies {
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        Reply {
            status: response.status().as_u16(),
            location,
            set_cookies,
            body: response.body_mut().read_to_string().unwrap(),
        }
    }
}
