//! systemd citizenship: the notify protocol (READY, STATUS, WATCHDOG,
//! RELOADING, STOPPING) and journald logging. Without systemd (no
//! NOTIFY_SOCKET, no JOURNAL_STREAM) these do nothing and logs go to
//! stderr.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("sd_notify failed: {e}");
    }
}

/// Providers attached, process cache seeded: the service is up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn watchdog() {
    watchdog_ping();
}

/// Runs `work` — a long, bounded piece of work on the event loop's
/// thread, such as loading the BPF object (the kernel's verifier takes
/// seconds natively, a minute under emulation) — while a helper thread
/// tells systemd the service is alive: WATCHDOG pings, and, before READY,
/// more start-up time (EXTEND_TIMEOUT_USEC). Without it a live switch to
/// eBPF outlasted WatchdogSec and systemd killed the daemon (seen in the
/// VM test).
pub fn keep_alive_during<T>(starting: bool, work: impl FnOnce() -> T) -> T {
    const EVERY: Duration = Duration::from_secs(5);
    let watchdog = sd_notify::watchdog_enabled().is_some();
    if !watchdog && !starting {
        return work();
    }
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(EVERY) {
                if watchdog {
                    watchdog_ping();
                }
                if starting {
                    // Room for the next interval, and some.
                    send(&[NotifyState::ExtendTimeoutUsec(3 * EVERY.as_micros() as u32)]);
                }
            }
        });
        let out = work();
        drop(done);
        out
    })
}

fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}

/// Half the service's watchdog interval, if it has one.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// Forwards to the real logger and keeps recent lines for diagnostics.
struct Tee {
    inner: Box<dyn log::Log>,
}

impl log::Log for Tee {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.inner.enabled(m)
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.inner.enabled(r.metadata()) {
            let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            crate::diagnostic::remember_log_line(format!("{t} {} {}", r.level(), r.args()));
        }
        self.inner.log(r);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Logs to the journal (with structured fields) when stderr is connected
/// to it, to stderr otherwise. Returns which.
pub fn init_logging(level: &str) -> &'static str {
    let filter: log::LevelFilter = level.parse().unwrap_or(log::LevelFilter::Info);
    let journal = systemd_journal_logger::connected_to_journal()
        .then(systemd_journal_logger::JournalLog::new)
        .and_then(Result::ok)
        .map(|j| j.with_syslog_identifier("mdatpd".into()));
    let (inner, which, max): (Box<dyn log::Log>, _, _) = match journal {
        Some(j) => (Box::new(j), "journald", filter),
        None => {
            let l = env_logger::Builder::new()
                .parse_filters(level)
                .parse_env("RUST_LOG")
                .format_target(false)
                .build();
            let max = l.filter();
            (Box::new(l), "stderr", max)
        }
    };
    if log::set_boxed_logger(Box::new(Tee { inner })).is_ok() {
        log::set_max_level(max);
    }
    which
}
