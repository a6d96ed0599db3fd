//! The web example in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! signs in after an authenticator reset — password, emailed device code, the enrollment page
//! with its QR code, the new authenticator's first code — and signs out. The enrollment page is
//! kept as a screenshot, `target/web-enrollment.png`, for a person to look at, and its QR code
//! is read back from the screenshot.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (and `zbar-tools` for the QR
//! read-back); without them the test prints a skip notice, except under `CI=true`, where it
//! fails.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use web::*;

/// The first of `names` found on the PATH or as an absolute path.
fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|name| {
        let direct = Path::new(name);
        if direct.is_absolute() {
            return direct.exists().then(|| direct.to_owned());
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.exists())
        })
    })
}

fn tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = find(&["chromium", "chromium-browser", "/usr/lib/chromium/chromium"]);
    match (chromium, find(&["chromedriver"])) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        missing => {
            let message = format!(
                "web_browser: chromium and chromedriver are needed \
                 (apt-get install chromium chromium-driver); found {missing:?}"
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("skipping: {message}");
            None
        }
    }
}

/// `zbarimg` (Debian `zbar-tools`), which reads the QR code back from the screenshot: required
/// under `CI=true`, elsewhere that check is skipped with a notice.
fn qr_reader() -> Option<PathBuf> {
    let found = find(&["zbarimg"]);
    if found.is_none() {
        let message = "web_browser: zbarimg is needed to read the QR code back \
                       (apt-get install zbar-tools)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("skipping the QR read-back: {message}");
    }
    found
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(path: &Path) -> Self {
        let mut child = Command::new(path)
            .args(["--port=0", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(port.trim_end_matches('.').to_owned());
                    break;
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(60));
        let Ok(port) = port else {
            let _ = child.kill();
            panic!("chromedriver did not start within a minute");
        };
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let options = json!({
        "binary": chromium,
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=900,1250",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), options);
    // Plain HTTP to a driver on this machine: no TLS stack.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Waits (half a minute at most) for the page titled `title`; a click's navigation may still
/// be under way when the click returns.
async fn expect_page(client: &Client, title: &str) {
    let xpath = format!("//h1[normalize-space()='{title}']");
    let found = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::XPath(&xpath))
        .await;
    if found.is_err() {
        let source = client.source().await.unwrap_or_default();
        panic!("expected the page {title:?}, found:\n{source}");
    }
}

/// Fills the named fields of the page's first form for `action` and submits it.
async fn submit(client: &Client, action: &str, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        let css = format!("form[action='{action}'] input[name='{name}']");
        let input = client.find(Locator::Css(&css)).await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    let button = format!("form[action='{action}'] button");
    client
        .find(Locator::Css(&button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_through_device_code_and_enrollment() {
    let Some((chromium, chromedriver)) = tools() else {
        return;
    };
    let d = Deployment::start();
    let kim = d.seed("kim");
    d.enroll(&kim);
    d.reset_totp(&kim);
    let driver = Driver::start(&chromedriver);
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, &chromium, profile.path()).await;

    client.goto(&d.a.url("/")).await.unwrap();
    expect_page(&client, "Sign in").await;
    submit(&client, "/sign-in", &kim.credentials()).await;
    expect_page(&client, "Check your email").await;
    let code = d.device_code_for("kim@example.org");
    submit(&client, "/step", &[("code", &code)]).await;
    expect_page(&client, "Set up your authenticator").await;

    // The QR code is drawn: an inline SVG at its styled size, with its modules.
    let qr = client.find(Locator::Css(".qr svg")).await.unwrap();
    let (_, _, width, height) = qr.rectangle().await.unwrap();
    assert!(width >= 200.0 && height >= 200.0, "{width}x{height}");
    let key = client.find(Locator::Css("#key")).await.unwrap();
    let key = key.text().await.unwrap();
    assert!(key.len() >= 32, "the key for manual entry: {key:?}");
    let shot = client.screenshot().await.unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = target_dir().join("web-enrollment.png");
    std::fs::write(&path, &shot).unwrap();
    eprintln!("the enrollment page: {}", path.display());
    // What a phone's camera would read from the screen is the page's otpauth link.
    let link = client.find(Locator::Css("#otpauth")).await.unwrap();
    let link = link.attr("href").await.unwrap().expect("an href");
    if let Some(zbarimg) = qr_reader() {
        let read = Command::new(zbarimg)
            .args(["--quiet", "--raw"])
            .arg(&path)
            .output()
            .expect("zbarimg runs");
        let text = String::from_utf8_lossy(&read.stdout);
        assert!(read.status.success(), "no QR code found in the screenshot");
        assert_eq!(text.trim(), link, "the QR code encodes the otpauth link");
    }

    let page = client.source().await.unwrap();
    let secret = enrollment_secret(&page);
    submit(&client, "/step", &[("code", &current_code(&secret))]).await;
    // The new authenticator's recovery codes, shown once; then on.
    expect_page(&client, "Save your recovery codes").await;
    let codes = client
        .find_all(Locator::Css("ul.recovery li"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    client
        .find(Locator::Css("#continue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    expect_page(&client, "Welcome").await;
    let welcome = client.find(Locator::Css("p.ok")).await.unwrap();
    assert!(welcome.text().await.unwrap().contains("(kim)"));
    // The other server, same browser: the session holds there too.
    client.goto(&d.b.url("/")).await.unwrap();
    expect_page(&client, "Welcome").await;
    submit(&client, "/sign-out", &[]).await;
    expect_page(&client, "Sign in").await;
    client.goto(&d.a.url("/")).await.unwrap();
    expect_page(&client, "Sign in").await;
    client.close().await.unwrap();
}
