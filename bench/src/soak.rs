//! `mdatp-bench soak`: the load tests of docs/RELIABILITY.md, bounded in
//! time, numbers printed. Each runs the release daemon (eBPF, defaults,
//! event file) and reports its peak RSS (VmHWM, ring pages included),
//! events and loss (the daemon's own count, from its last "loss totals"
//! line; loss is never silent):
//!
//! * `fork-storm`: short-lived execs on both cores for `--seconds`;
//! * `argv`: 10,000 live processes, each with 4,096 arguments (8 KiB;
//!   eBPF reads the first 4 KiB, audit's EXECVE records carry them all);
//! * `pid-churn`: forks through three wraps of the pid space, RSS at each;
//! * `dbus-flood`: Health calls from an unprivileged user as fast as they
//!   are answered, beside a paced exec workload (ring drops must be 0);
//! * `install-storm`: a package-install-like storm (a tree unpacked,
//!   files renamed into place, scripts run) with both cores busy, the
//!   daemon at nice 0 and at nice -5, loss compared;
//! * `package-install`: a real one (mmdebstrap installing a minimal
//!   Debian 12 into a scratch directory) with both cores busy.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::monitors::{Monitor, Paths, Stats};

/// The raised priority tried against the install storm; the unit keeps
/// the default (nice 0, CPU weight 100): it bought nothing (RELIABILITY.md).
pub const RAISED_NICE: i32 = -5;

fn rss_kib(pid: u32) -> u64 {
    crate::proc::status_kib(pid, "VmRSS").unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs `/bin/true` on `workers` threads until `until` says stop;
/// returns how many ran.
fn exec_storm(workers: usize, until: impl Fn(u64) -> bool + Sync) -> u64 {
    let done = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !until(done.load(std::sync::atomic::Ordering::Relaxed)) {
                    if Command::new("/bin/true").status().is_ok() {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    done.into_inner()
}

fn line(out: &mut String, name: &str, stats: &Stats, extra: &str) {
    let _ = writeln!(
        out,
        "| {name} | {:.1} | {} | {} | {extra} |",
        mib(stats.peak_rss_kib),
        stats.events,
        stats.loss
    );
}

fn fork_storm(paths: &Paths, seconds: u64, out: &mut String) -> Result<()> {
    let m = Monitor::start(Config::Ebpf, paths)?;
    let t = Instant::now();
    let n = exec_storm(2, |_| t.elapsed() >= Duration::from_secs(seconds));
    std::thread::sleep(Duration::from_secs(2));
    let stats = m.stop()?;
    line(
        out,
        &format!("fork storm, {seconds} s"),
        &stats,
        &format!("{n} execs ({:.0}/s)", n as f64 / seconds as f64),
    );
    Ok(())
}

fn argv(paths: &Paths, out: &mut String) -> Result<()> {
    let m = Monitor::start(Config::Ebpf, paths)?;
    let pid = m.sensor_pid().context("sensor")?;
    let args: Vec<String> = (0..4095).map(|_| "x".to_string()).collect();
    let mut children: Vec<Child> = Vec::with_capacity(10_000);
    let started = (|| -> Result<()> {
        for _ in 0..10_000 {
            children.push(
                Command::new("/bin/sleep")
                    .arg("600")
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
        }
        Ok(())
    })();
    std::thread::sleep(Duration::from_secs(3));
    let live = rss_kib(pid);
    for c in &mut children {
        let _ = c.kill();
    }
    for c in &mut children {
        let _ = c.wait();
    }
    started.context("start 10,000 processes")?;
    let stats = m.stop()?;
    line(
        out,
        "10,000 live processes, 4,096 arguments each",
        &stats,
        &format!("RSS with all alive {:.1} MiB", mib(live)),
    );
    Ok(())
}

fn pid_churn(paths: &Paths, out: &mut String) -> Result<()> {
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")?
        .trim()
        .parse()?;
    if pid_max > 200_000 {
        let _ = writeln!(
            out,
            "| pid churn | - | - | - | skipped: pid_max {pid_max} (three wraps would take too long) |"
        );
        return Ok(());
    }
    let m = Monitor::start(Config::Ebpf, paths)?;
    let pid = m.sensor_pid().context("sensor")?;
    let mut at_wraps = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        exec_storm(2, |n| n >= pid_max);
        at_wraps.push(format!(
            "{:.1} ({:.0} s)",
            mib(rss_kib(pid)),
            start.elapsed().as_secs_f64()
        ));
    }
    let stats = m.stop()?;
    line(
        out,
        &format!("pid churn, 3 wraps of {pid_max}"),
        &stats,
        &format!("RSS MiB after each wrap: {}", at_wraps.join(", ")),
    );
    Ok(())
}

/// Health calls as fast as answered, `tasks` at a time, for `seconds`;
/// prints the number of calls (run as the unprivileged user).
pub fn dbus_client(address: &str, seconds: u64, tasks: usize) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let calls = rt.block_on(async {
        let conn = zbus::connection::Builder::address(address)?.build().await?;
        let proxy = mdatp_dbus::Sensor1Proxy::new(&conn).await?;
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let p = proxy.clone();
            handles.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < end {
                    if p.health().await.is_ok() {
                        n += 1;
                    }
                }
                n
            }));
        }
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap_or(0);
        }
        anyhow::Ok(total)
    })?;
    println!("{calls}");
    Ok(())
}

fn dbus_flood(paths: &Paths, out: &mut String) -> Result<()> {
    let bus =
        mdatp_integration_tests::PrivateBus::start(mdatp_integration_tests::BusPolicy::Shipped);
    if let Some(sock) = bus.address.strip_prefix("unix:path=")
        && let Some(dir) = Path::new(sock).parent()
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    // SAFETY: set before any thread of this process reads the environment
    // concurrently (the monitor's child inherits it).
    unsafe { std::env::set_var("MDATP_BENCH_BUS", &bus.address) };
    let m = Monitor::start(Config::Ebpf, paths)?;
    let seconds = 10;
    let client = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe()?)
        .args([
            "dbus-client",
            "--address",
            &bus.address,
            "--seconds",
            &seconds.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("setpriv")?;
    // A paced exec workload meanwhile: 200/s.
    let t = Instant::now();
    let mut execs = 0u64;
    while t.elapsed() < Duration::from_secs(seconds) {
        let _ = Command::new("/bin/true").status();
        execs += 1;
        let due = Duration::from_millis(execs * 5);
        if let Some(w) = due.checked_sub(t.elapsed()) {
            std::thread::sleep(w);
        }
    }
    let o = client.wait_with_output()?;
    let calls: u64 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    std::thread::sleep(Duration::from_secs(1));
    let stats = m.stop()?;
    unsafe { std::env::remove_var("MDATP_BENCH_BUS") };
    line(
        out,
        "D-Bus Health flood from uid 65534, 10 s",
        &stats,
        &format!(
            "{calls} calls ({:.0}/s) beside {execs} execs",
            calls as f64 / seconds as f64
        ),
    );
    if calls == 0 {
        bail!("the unprivileged client made no call");
    }
    Ok(())
}

/// Two busy loops, one per core of this machine.
fn busy_cores() -> std::io::Result<Vec<Child>> {
    (0..2)
        .map(|_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
        })
        .collect()
}

fn stop_all(children: Vec<Child>) {
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A package-install-like storm: a tree of 20,000 small files written
/// under temporary names and renamed into place, a maintainer script run
/// per 100 files, while two busy loops hold both cores.
fn install_storm(paths: &Paths, nice: i32, out: &mut String) -> Result<()> {
    let m = Monitor::start(Config::Ebpf, paths)?;
    let pid = m.sensor_pid().context("sensor")?;
    // SAFETY: setpriority on another process, no memory involved.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, pid, nice) };
    let busy = busy_cores()?;
    let root = tempfile::tempdir()?;
    let t = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let dir = root.path().join(format!("w{w}"));
            std::thread::spawn(move || -> std::io::Result<u64> {
                let mut n = 0;
                for d in 0..100 {
                    let sub = dir.join(format!("usr/share/pkg{d}"));
                    std::fs::create_dir_all(&sub)?;
                    for f in 0..100 {
                        let tmp = sub.join(format!("f{f}.dpkg-new"));
                        std::fs::write(&tmp, b"content\n")?;
                        std::fs::rename(&tmp, sub.join(format!("f{f}")))?;
                        n += 1;
                    }
                    Command::new("/bin/sh")
                        .args(["-c", "true postinst configure"])
                        .status()?;
                }
                Ok(n)
            })
        })
        .collect();
    let mut files = 0;
    for w in workers {
        files += w.join().map_err(|_| anyhow::anyhow!("worker"))??;
    }
    let secs = t.elapsed().as_secs_f64();
    stop_all(busy);
    std::thread::sleep(Duration::from_secs(2));
    let stats = m.stop()?;
    line(
        out,
        &format!("install storm, both cores busy, daemon nice {nice}"),
        &stats,
        &format!("{files} files in {secs:.1} s"),
    );
    Ok(())
}

/// The real thing: mmdebstrap installing a minimal Debian 12 (about 90
/// packages fetched, unpacked by dpkg and configured by their maintainer
/// scripts) into a scratch directory, with both cores busy and the
/// daemon at defaults — the pressure under which the host suite once
/// lost ~9,400 events in its storm test.
fn package_install(paths: &Paths, out: &mut String) -> Result<()> {
    if Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("package-install needs mmdebstrap (apt-get install mmdebstrap) and a Debian mirror");
    }
    let m = Monitor::start(Config::Ebpf, paths)?;
    let busy = busy_cores()?;
    let root = tempfile::tempdir()?;
    let target = root.path().join("root");
    let t = Instant::now();
    let status = Command::new("mmdebstrap")
        .args(["--variant=minbase", "--quiet", "bookworm"])
        .arg(&target)
        .stdout(Stdio::null())
        .status()
        .context("mmdebstrap");
    let secs = t.elapsed().as_secs_f64();
    stop_all(busy);
    let packages = std::fs::read_dir(target.join("var/lib/dpkg/info"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".list"))
                .count()
        })
        .unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let stats = m.stop()?;
    if !status?.success() {
        bail!("mmdebstrap failed (is a Debian mirror reachable?)");
    }
    line(
        out,
        "package install (mmdebstrap minbase bookworm), both cores busy, daemon at defaults",
        &stats,
        &format!("{packages} packages installed in {secs:.1} s"),
    );
    Ok(())
}

pub fn run(paths: &Paths, seconds: u64, only: &[String]) -> Result<()> {
    // The event file is unrotated in every mdatpd configuration
    // (monitors.rs), so a minute-long storm is counted whole.
    let want = |n: &str| only.is_empty() || only.iter().any(|o| o == n);
    let mut out = String::from(
        "| load | peak RSS MiB | events | lost | what ran |\n| --- | --- | --- | --- | --- |\n",
    );
    if want("fork-storm") {
        fork_storm(paths, seconds, &mut out)?;
    }
    if want("argv") {
        argv(paths, &mut out)?;
    }
    if want("pid-churn") {
        pid_churn(paths, &mut out)?;
    }
    if want("dbus-flood") {
        dbus_flood(paths, &mut out)?;
    }
    if want("install-storm") {
        install_storm(paths, 0, &mut out)?;
        install_storm(paths, RAISED_NICE, &mut out)?;
    }
    if want("package-install") {
        package_install(paths, &mut out)?;
    }
    print!("{out}");
    Ok(())
}
