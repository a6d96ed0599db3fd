//! The printable list in a real browser: headless Chromium prints the HTML report to PDF, and
//! `pdftotext` reads it back. Needs the Debian packages `chromium` and `poppler-utils`; without
//! them the test prints a skip notice, except under `CI=true`, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::hash::Hasher;
use keyward::user::{Role, SiteId, User};
use keyward::{InMemoryStore, Keyward, ManualClock, Password};
use time::macros::{date, datetime};

const ADMIN_PASSWORD: &str = "ochre-violet-anchor-93";

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

fn tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let chromium = find(&["chromium", "chromium-browser", "/usr/lib/chromium/chromium"]);
    let found = (chromium, find(&["pdftotext"]), find(&["pdfinfo"]));
    match found {
        (Some(c), Some(t), Some(i)) => Some((c, t, i)),
        missing => {
            let message = format!(
                "report_print: chromium, pdftotext and pdfinfo are needed \
                 (apt-get install chromium poppler-utils); found {missing:?}"
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("skipping: {message}");
            None
        }
    }
}

/// Prints `html` to `pdf` with headless Chromium, offline, within a minute.
fn print_to_pdf(chromium: &Path, html: &Path, pdf: &Path, scratch: &Path) {
    let profile = scratch.join("profile");
    let mut child = Command::new(chromium)
        .env("HOME", scratch)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
            // Resolve no host at all: the page is self-contained.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("waiting for chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish printing within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Chromium exits 0 even when printing fails: the file is the proof.
    let size = std::fs::metadata(pdf).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "chromium wrote no PDF");
}

#[test]
fn the_printed_list_has_every_password_no_birth_date_and_a_page_per_group() {
    let Some((chromium, pdftotext, pdfinfo)) = tools() else {
        return;
    };
    let t0 = datetime!(2026-09-01 08:00 UTC);
    let site = SiteId::new("northfield").unwrap();
    let kw = Keyward::builder(Arc::new(InMemoryStore::new()))
        .hasher(Hasher::for_tests())
        .clock(Arc::new(ManualClock::new(t0)))
        .build();
    let admin =
        User::new(site.clone(), "head", "Ada", "Admin", "staff", t0).with_role(Role::Administrator);
    let admin = kw
        .create_user(None, admin, Some(Password::new(ADMIN_PASSWORD)))
        .unwrap();
    let groups = ["Year 7", "Year 8", "Year 9"];
    let mut births = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        for i in 0..4 {
            let dob = date!(1993 - 01 - 01)
                .replace_month(time::Month::try_from(3 + u8::try_from(i).unwrap()).unwrap())
                .unwrap()
                .replace_day(u8::try_from(10 + g * 4 + i).unwrap())
                .unwrap();
            births.push(dob);
            let user = User::new(
                site.clone(),
                format!("pupil{g}{i}"),
                format!("Forename{i}"),
                format!("Surname{g}{i}"),
                "student",
                t0,
            )
            .with_groups([*group])
            .with_date_of_birth(dob);
            kw.create_user(None, user, None).unwrap();
        }
    }
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    let list = kw
        .bulk_regenerate(&admin.id, &Password::new(ADMIN_PASSWORD), &site, &groups)
        .unwrap();
    assert_eq!(list.rows.len(), 12);
    let scratch = tempfile::tempdir().unwrap();
    let html = scratch.path().join("list.html");
    let pdf = scratch.path().join("list.pdf");
    std::fs::write(&html, list.to_html().as_bytes()).unwrap();
    print_to_pdf(&chromium, &html, &pdf, scratch.path());
    let text = Command::new(&pdftotext)
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    assert!(text.status.success(), "pdftotext failed");
    let text = String::from_utf8(text.stdout).expect("pdftotext writes UTF-8");
    for row in &list.rows {
        assert!(
            text.contains(&row.username),
            "{} is not in the PDF",
            row.username
        );
        let password = row.password.expose_secret();
        assert!(
            text.contains(password),
            "{}'s password is not in the PDF",
            row.username
        );
    }
    // Words of a sentence may be split across lines of the layout.
    let flowing = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flowing.contains("northfield") && flowing.contains("Year 8"));
    assert!(
        flowing.contains("Destroy this list after distribution"),
        "{flowing}"
    );
    assert!(!text.contains("1993"), "a year of birth is printed");
    for dob in &births {
        for form in [
            dob.to_string(),
            format!("{:02}/{:02}", dob.day(), u8::from(dob.month())),
        ] {
            assert!(!text.contains(&form), "a birth date ({form}) is printed");
        }
    }
    let info = Command::new(&pdfinfo)
        .arg(&pdf)
        .output()
        .expect("pdfinfo runs");
    let info = String::from_utf8_lossy(&info.stdout);
    let pages = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .map(|n| n.trim().parse::<u32>().expect("a page count"));
    assert_eq!(pages, Some(3), "one page per group:\n{info}");
    // Keep a copy for a person to look at, when asked to.
    if let Some(dir) = std::env::var_os("KEYWARD_REPORT_OUT") {
        std::fs::copy(&pdf, Path::new(&dir).join("printed-list.pdf")).unwrap();
        std::fs::copy(&html, Path::new(&dir).join("printed-list.html")).unwrap();
    }
}
