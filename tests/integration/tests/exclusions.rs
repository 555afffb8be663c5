//! Exclusions as an attacker reads them: every way of acting on a watched
//! file from inside an excluded directory must still be reported, by both
//! providers; what is really excluded stays excluded; a reload changes
//! the exclusions and folding live.

// Tests may panic: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mdatp_integration_tests::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

struct Tree {
    _dir: tempfile::TempDir,
    /// Excluded.
    x: PathBuf,
    /// Watched.
    y: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::Builder::new()
        .prefix("mdatp-excl-")
        .tempdir_in("/tmp")
        .unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let (x, y) = (root.join("X"), root.join("Y"));
    fs::create_dir_all(&x).unwrap();
    fs::create_dir_all(&y).unwrap();
    Tree { _dir: dir, x, y }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `script` under sh with its cwd in the excluded directory.
fn sh_in(cwd: &Path, script: &str) {
    let st = Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

fn file_event<'a>(events: &'a [Value], activity: &str, path_end: &str) -> Option<&'a Value> {
    events.iter().find(|v| {
        is_file_event(v)
            && at(v, "/activity_name") == activity
            && at(v, "/file/path")
                .as_str()
                .is_some_and(|p| p.ends_with(path_end))
    })
}

/// The bypass matrix: (what, activity, path suffix the event must name).
fn attack(t: &Tree) -> Vec<(&'static str, &'static str, String)> {
    let (x, y) = (&t.x, &t.y);
    for f in ["a", "b", "c", "d", "e", "h", "i-src", "k"] {
        fs::write(y.join(f), b"x").unwrap();
    }
    fs::write(x.join("moved-out"), b"x").unwrap();
    fs::create_dir_all(y.join("sub")).unwrap();
    fs::write(y.join("m"), b"x").unwrap();
    for f in ["n", "o", "p-read"] {
        fs::write(y.join("sub").join(f), b"x").unwrap();
    }
    symlink(y.join("sub"), x.join("l")).unwrap();
    let ys = s(y);
    let xs = s(x);
    sh_in(
        x,
        &format!(
            "rm {ys}/a; chmod 4755 {ys}/b; mv {ys}/c {ys}/c2; rm ../Y/d; \
             ln {ys}/e {ys}/e2; ln -s /etc/passwd {ys}/f; mkdir {ys}/g; \
             chown 1:1 {ys}/h; mv {ys}/i-src {xs}/i-dst; mv moved-out {ys}/moved-in; \
             rm l/../m; rm {xs}/l/n; chmod 600 {xs}/l/o; cat {xs}/l/p-read"
        ),
    );
    // A name relative to a directory fd of the watched directory.
    sh_in(
        x,
        &format!(
            "python3 -c 'import os; d=os.open(\"{ys}\", os.O_RDONLY); os.unlink(\"k\", dir_fd=d)'"
        ),
    );
    vec![
        (
            "absolute name from an excluded cwd: unlink",
            "Delete",
            format!("{ys}/a"),
        ),
        ("absolute name: chmod", "Set Security", format!("{ys}/b")),
        ("absolute name: rename", "Rename", format!("{ys}/c")),
        ("`..` escape", "Delete", format!("{ys}/d")),
        ("absolute name: link", "Create", format!("{ys}/e2")),
        ("absolute name: symlink", "Create", format!("{ys}/f")),
        ("absolute name: mkdir", "Create", format!("{ys}/g")),
        ("absolute name: chown", "Set Security", format!("{ys}/h")),
        (
            "rename out of the watched dir into the excluded one",
            "Rename",
            format!("{ys}/i-src"),
        ),
        (
            "rename from the excluded dir into the watched one",
            "Rename",
            "X/moved-out".into(),
        ),
        // The kernel deleted Y/m; the name as passed joins to X/m, which
        // the sensor must not take for excluded.
        ("symlink then `..`", "Delete", "/m".into()),
        // X/l leads out of the excluded tree: the name as passed reads as
        // inside it, the kernel acted on Y/sub/*.
        (
            "through a symlink in the excluded dir: unlink",
            "Delete",
            "/l/n".into(),
        ),
        (
            "through a symlink in the excluded dir: chmod",
            "Set Security",
            "/l/o".into(),
        ),
        (
            "through a symlink in the excluded dir: open",
            "Open",
            "/p-read".into(),
        ),
        // Audit names it relative to the cwd (its records carry only the
        // directory's inode): reported, with an inferred path.
        ("directory-fd-relative name", "Delete", "/k".into()),
    ]
}

/// 68 components: the kernel's walk keeps the last 64, which begin with
/// the excluded directory's own path.
fn deep_file(t: &Tree) -> PathBuf {
    let mut p = t.y.join("a");
    for c in t.x.components().skip(1) {
        p.push(c);
    }
    for i in 0..60 {
        p.push(format!("d{i}"));
    }
    fs::create_dir_all(&p).unwrap();
    let f = p.join("deepfile");
    fs::write(&f, b"x").unwrap();
    f
}

fn run(mode: &str) {
    let t = tree();
    let rules = tempfile::tempdir().unwrap();
    let cfg = rules.path().join("mdatp.yaml");
    fs::write(
        &cfg,
        format!(
            "ebpf_supplementary_event_provider: {mode}\nfolding: {{enabled: false}}\nexclude: {{paths: [{}]}}\n",
            s(&t.x)
        ),
    )
    .unwrap();
    let d = Daemon::start(&["--config", s(&cfg), "--audit-rules-dir", s(rules.path())]);
    let cases = attack(&t);
    let deep = deep_file(&t);
    // What is really excluded stays excluded.
    sh_in(
        &t.y,
        &format!("rm {}/i-dst; touch {}/inside", s(&t.x), s(&t.x)),
    );
    let marker = t.y.join("last");
    fs::write(&marker, b"x").unwrap();
    d.wait_event(WAIT, |v| {
        is_file_event(v) && at(v, "/file/path") == s(&marker)
    })
    .unwrap_or_else(|| panic!("{mode}: no event for the marker; stderr:\n{}", d.stderr()));
    std::thread::sleep(Duration::from_millis(500));
    let events = d.events();
    let missing: Vec<&str> = cases
        .iter()
        .filter(|(_, activity, path)| file_event(&events, activity, path).is_none())
        .map(|(what, _, _)| *what)
        .collect();
    assert!(missing.is_empty(), "{mode}: hidden: {missing:?}");
    assert!(
        events.iter().any(|v| is_file_event(v)
            && at(v, "/file/path")
                .as_str()
                .is_some_and(|p| p.ends_with("/deepfile"))),
        "{mode}: the 68-component path was taken for excluded ({})",
        s(&deep)
    );
    for hidden in ["/X/i-dst", "/X/inside"] {
        assert!(
            file_event(&events, "Delete", hidden).is_none()
                && file_event(&events, "Create", hidden).is_none(),
            "{mode}: {hidden} is excluded and was reported"
        );
    }
    d.stop();
}

#[test]
fn no_way_around_a_path_exclusion_under_ebpf() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    run("enabled");
}

#[test]
fn no_way_around_a_path_exclusion_under_audit() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    run("disabled");
}

/// A reload that adds an exclusion and turns folding off is in force at
/// once, in the kernel too.
#[test]
fn a_reload_changes_exclusions_and_folding_live() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let t = tree();
    let rules = tempfile::tempdir().unwrap();
    let cfg = rules.path().join("mdatp.yaml");
    fs::write(&cfg, "folding: {enabled: true}\n").unwrap();
    let d = Daemon::start(&["--config", s(&cfg), "--audit-rules-dir", s(rules.path())]);
    let opened = |dir: &Path, tag: &str, times: usize| {
        let f = dir.join(tag);
        fs::write(&f, b"x").unwrap();
        for _ in 0..times {
            drop(fs::File::open(&f).unwrap());
        }
        f
    };
    let count = |f: &Path| {
        d.events()
            .iter()
            .filter(|v| {
                is_file_event(v) && at(v, "/activity_name") == "Open" && at(v, "/file/path") == s(f)
            })
            .count()
    };
    let before_x = opened(&t.x, "before", 1);
    let before_y = opened(&t.y, "folded", 5);
    d.wait_event(WAIT, |v| at(v, "/file/path") == s(&before_x))
        .expect("an open in X before the reload");
    std::thread::sleep(Duration::from_millis(500));
    assert!(count(&before_y) < 5, "folding on: repeats are folded");
    fs::write(
        &cfg,
        format!(
            "folding: {{enabled: false}}\nexclude: {{paths: [{}]}}\n",
            s(&t.x)
        ),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_stderr("kernel filters updated", WAIT);
    std::thread::sleep(Duration::from_secs(1));
    let after_x = opened(&t.x, "after", 1);
    let after_y = opened(&t.y, "unfolded", 5);
    d.wait_event(WAIT, |v| at(v, "/file/path") == s(&after_y))
        .expect("opens in Y after the reload");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&after_x), 0, "the new exclusion is in force");
    assert_eq!(count(&after_y), 5, "folding off: every open");
    d.stop();
}

/// An excluded executable is the file, not the path: another file put at
/// its path by a bind mount in a private mount namespace is reported (its
/// events show the excluded path), while the real one stays excluded.
fn exe_identity(mode: &str) {
    let t = tree();
    let sh = fs::canonicalize("/bin/sh").unwrap();
    let (tool, impostor) = (t.y.join("tool"), t.y.join("impostor"));
    // Two copies of a shell: the same program, two files (two inodes).
    fs::copy(&sh, &tool).unwrap();
    fs::copy(&sh, &impostor).unwrap();
    let rules = tempfile::tempdir().unwrap();
    let cfg = rules.path().join("mdatp.yaml");
    fs::write(
        &cfg,
        format!(
            "ebpf_supplementary_event_provider: {mode}\nfolding: {{enabled: false}}\nexclude: {{processes: [{}]}}\n",
            s(&tool)
        ),
    )
    .unwrap();
    let d = Daemon::start(&["--config", s(&cfg), "--audit-rules-dir", s(rules.path())]);
    // The shell itself creates the file (a redirection) and lives on a
    // moment, so user space can still look at it (audit).
    let (real, fake) = (t.y.join("by-tool"), t.y.join("by-impostor"));
    let st = Command::new(&tool)
        .args(["-c", &format!("echo > {}; sleep 1", s(&real))])
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!(
                "mount --bind {} {} && {} -c 'echo > {}; sleep 1'",
                s(&impostor),
                s(&tool),
                s(&tool),
                s(&fake)
            ),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "unshare/mount");
    let v = d
        .wait_event(WAIT, |v| {
            is_file_event(v)
                && at(v, "/activity_name") == "Create"
                && at(v, "/file/path") == s(&fake)
        })
        .unwrap_or_else(|| {
            panic!(
                "{mode}: the impostor at the excluded path was taken for it; stderr:\n{}",
                d.stderr()
            )
        });
    assert_eq!(at(&v, "/actor/process/file/path"), s(&tool), "{mode}: {v}");
    let marker = t.y.join("last");
    fs::write(&marker, b"x").unwrap();
    d.wait_event(WAIT, |v| at(v, "/file/path") == s(&marker))
        .expect("the marker");
    assert!(
        !d.events()
            .iter()
            .any(|v| is_file_event(v) && at(v, "/file/path") == s(&real)),
        "{mode}: the excluded executable's own file was reported"
    );
    d.stop();
}

#[test]
fn an_excluded_executable_is_its_file_not_its_path_under_ebpf() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    exe_identity("enabled");
}

#[test]
fn an_excluded_executable_is_its_file_not_its_path_under_audit() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    exe_identity("disabled");
}

/// A process already running when the sensor starts, or when a reload
/// changes the excluded executables, is marked in the kernel's `procs`
/// table from user space: its file events stop at start, come back when a
/// reload drops the exclusion, stop again when one adds it back, and stay
/// stopped across a switch to audit and back (a new object, fresh maps,
/// marked before its programs attach).
#[test]
fn a_running_excluded_process_is_marked_at_start_and_by_each_reload() {
    skip_unless_root!();
    let _g = serial();
    let _audit = AuditState::capture();
    let t = tree();
    let tool = t.y.join("ticker");
    fs::copy(fs::canonicalize("/bin/sh").unwrap(), &tool).unwrap();
    let ticks = t.y.join("ticks");
    fs::create_dir(&ticks).unwrap();
    // Creates ticks/N every 50 ms for up to 60 s.
    let mut ticker = Command::new(&tool)
        .args([
            "-c",
            "i=0; while [ $i -lt 1200 ]; do : > \"$0/$i\"; i=$((i+1)); sleep 0.05; done",
            s(&ticks),
        ])
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = u64::from(ticker.id());
    let _kill = Kill(&mut ticker);
    let rules = tempfile::tempdir().unwrap();
    let cfg = rules.path().join("mdatp.yaml");
    let excluding = format!("exclude: {{processes: [{}]}}\n", s(&tool));
    fs::write(&cfg, &excluding).unwrap();
    let d = Daemon::start(&["--config", s(&cfg), "--audit-rules-dir", s(rules.path())]);
    d.wait_stderr("1 running processes have an excluded executable", WAIT);
    let ticks_seen = || {
        d.events()
            .iter()
            .filter(|v| {
                is_file_event(v)
                    && at(v, "/actor/process/pid") == pid
                    && at(v, "/file/path")
                        .as_str()
                        .is_some_and(|p| p.starts_with(s(&ticks)))
            })
            .count()
    };
    // A reload, done when `needle` has been logged `n` times.
    let reload = |yaml: &str, needle: &str, n: usize| {
        fs::write(&cfg, yaml).unwrap();
        d.signal(Signal::SIGHUP);
        // A switch to eBPF loads and verifies the programs again: as long
        // as a start (30 s in the harness) on a busy 2-core host.
        let done = wait_until(Duration::from_secs(30), || {
            d.stderr().matches(needle).count() >= n
        });
        assert!(done, "reload not applied ({needle}):\n{}", d.stderr());
    };
    const UPDATED: &str = "kernel filters updated";
    // Excluded since start: a second of ticks, none reported.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(ticks_seen(), 0, "an excluded running process was reported");
    // The exclusion dropped: its mark is cleared, its ticks are seen.
    reload("folding: {enabled: true}\n", UPDATED, 1);
    assert!(
        wait_until(WAIT, || ticks_seen() >= 5),
        "the unexcluded process's events did not come back"
    );
    // No new tick for a second, once what was on its way is in.
    let stays_quiet = |when: &str| {
        std::thread::sleep(Duration::from_millis(300));
        let before = ticks_seen();
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            ticks_seen(),
            before,
            "an excluded running process is reported {when}"
        );
    };
    // Excluded again by a reload: the mark is written again.
    reload(&excluding, UPDATED, 2);
    stays_quiet("after a reload excluded it");
    // To audit and back: the new object's maps are marked before its
    // programs run.
    reload(
        &format!("{excluding}ebpf_supplementary_event_provider: disabled\n"),
        "provider switched: ebpf -> auditd",
        1,
    );
    reload(&excluding, "provider switched: auditd -> ebpf", 1);
    stays_quiet("after a switch back to eBPF");
    d.stop();
}
