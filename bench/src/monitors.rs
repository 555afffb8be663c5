//! The monitoring configurations compared in one run. Each starts before
//! a workload and stops after it, so every cell counts only its workload.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::Config;

use crate::proc::{
    bpf_map_kib, bpf_mmap_rss_kib, cpu_seconds, file_size, kauditd_pid, peak_rss_kib, zstd_size,
};

/// What a configuration cost and delivered during one cell.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub events: u64,
    pub loss: u64,
    /// The sensor's own process (mdatpd, auditd or bpftrace).
    pub sensor_cpu_s: f64,
    /// auditd + kauditd when they are part of the configuration.
    pub audit_cpu_s: f64,
    pub peak_rss_kib: u64,
    /// The sensor's RSS at the end of the cell, before it is stopped: what
    /// it holds running, after the workload, without the load's start-up
    /// peak (VmHWM keeps that: the kernel BTF parsed for CO-RE, ~18 MiB
    /// for a moment on this kernel, then freed and trimmed).
    pub end_rss_kib: u64,
    /// Of the sensor's RSS, the BPF ring buffer pages it maps.
    pub bpf_mmap_rss_kib: u64,
    /// Kernel memory of the sensor's BPF maps (bpftool bytes_memlock).
    pub bpf_map_kib: u64,
    /// auditd's own peak RSS, when auditd is part of the configuration.
    pub auditd_rss_kib: u64,
    pub bytes_written: u64,
    /// The same files compressed with zstd level 3 (what the sensor's
    /// `output.file.compress: zstd` stores for a rotated file).
    pub zstd_bytes: u64,
}

pub struct Paths {
    pub mdatpd: PathBuf,
}

/// Syscalls the audit rules watch: the same set as mdatpd's own rules.
const AUDIT_RULES: &[&str] = &[
    "execve,execveat,exit_group",
    "open,openat,openat2,creat",
    "unlink,unlinkat,rmdir,rename,renameat,renameat2,mkdir,mkdirat,chmod,fchmod,fchmodat,chown,fchown,lchown,fchownat,link,linkat,symlink,symlinkat",
    "connect,accept,accept4,bind,listen",
];

pub fn auditctl(args: &[&str]) -> Result<String> {
    let o = Command::new("auditctl")
        .args(args)
        .output()
        .context("auditctl")?;
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Adds (`-a`) or deletes (`-d`) the benchmark's rule for `syscalls`.
fn bench_rule(op: &str, syscalls: &str) -> Result<String> {
    auditctl(&[
        op,
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        syscalls,
        "-k",
        "mdatp-bench",
    ])
}

fn audit_value(key: &str) -> Option<u64> {
    auditctl(&["-s"])
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Refuses to measure beside another audit daemon or leftover bench
/// rules (an interrupted run leaves both): that daemon would take the
/// records of the auditd configurations, which would then count none,
/// and its rules would tax every other configuration.
pub fn check_audit_idle() -> Result<()> {
    if let Some(pid) = audit_value("pid").filter(|p| *p != 0) {
        anyhow::bail!(
            "an audit daemon (pid {pid}) already holds the audit netlink socket: stop it first (an interrupted benchmark leaves its auditd running)"
        );
    }
    let rules = auditctl(&["-l"]).unwrap_or_default();
    if rules.contains("key=mdatp-bench") {
        anyhow::bail!(
            "rules keyed mdatp-bench are loaded (an interrupted benchmark's): remove them with auditctl -D -k mdatp-bench"
        );
    }
    Ok(())
}

/// The kernel's audit backlog limit while auditd runs: Debian's auditd
/// loads `-b 8192` from its shipped rules (augenrules at the service's
/// start), which the benchmark's own auditd start does not run.
pub const AUDITD_BACKLOG_LIMIT: u64 = 8192;

/// Audit state the audit configurations change, restored by `restore`.
pub struct AuditSaved {
    enabled: u64,
    backlog_limit: u64,
}

impl AuditSaved {
    pub fn save() -> Self {
        Self {
            enabled: audit_value("enabled").unwrap_or(0),
            backlog_limit: audit_value("backlog_limit").unwrap_or(64),
        }
    }

    pub fn restore(&self) {
        let _ = auditctl(&["-b", &self.backlog_limit.to_string()]);
        let _ = auditctl(&["-e", &self.enabled.to_string()]);
    }
}

fn auditd_conf(dir: &Path) -> Result<PathBuf> {
    let conf = dir.join("auditd-conf");
    std::fs::create_dir_all(&conf)?;
    std::fs::write(
        conf.join("auditd.conf"),
        format!(
            "local_events = yes\nwrite_logs = yes\nlog_file = {}\nlog_group = root\nlog_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 0\nnum_logs = 0\nmax_log_file_action = IGNORE\nspace_left = 2\nspace_left_action = IGNORE\nadmin_space_left = 1\nadmin_space_left_action = IGNORE\ndisk_full_action = IGNORE\ndisk_error_action = IGNORE\nname_format = NONE\n",
            dir.join("audit.log").display()
        ),
    )?;
    Ok(conf)
}

pub struct Monitor {
    kind: Config,
    dir: tempfile::TempDir,
    sensor: Option<Child>,
    auditd: Option<Child>,
    kauditd_cpu0: f64,
    /// The kernel's audit `lost` counter at start: it counts since boot,
    /// and a cell's loss is what it grew by.
    audit_lost0: u64,
    /// CPU seconds the sensor had used when it was ready: startup (BPF
    /// loading, BTF parsing) is not part of a workload's cost.
    sensor_cpu0: f64,
    auditd_cpu0: f64,
    stderr_path: PathBuf,
}

fn wait_for(path: &Path, needle: &str, timeout: Duration) -> Result<()> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{} never showed {needle:?}", path.display())
}

impl Monitor {
    pub fn start(kind: Config, paths: &Paths) -> Result<Monitor> {
        Self::start_with(kind, paths, &[])
    }

    /// As `start`, with extra mdatpd arguments.
    pub fn start_with(kind: Config, paths: &Paths, extra: &[&str]) -> Result<Monitor> {
        let dir = tempfile::tempdir()?;
        let stderr_path = dir.path().join("sensor.stderr");
        let mut m = Monitor {
            kind,
            sensor: None,
            auditd: None,
            kauditd_cpu0: kauditd_pid().and_then(cpu_seconds).unwrap_or(0.0),
            audit_lost0: audit_value("lost").unwrap_or(0),
            sensor_cpu0: 0.0,
            auditd_cpu0: 0.0,
            stderr_path: stderr_path.clone(),
            dir,
        };
        let d = m.dir.path().to_path_buf();
        if kind.runs_auditd() {
            auditctl(&["-b", &AUDITD_BACKLOG_LIMIT.to_string()])?;
            let conf = auditd_conf(&d)?;
            m.auditd = Some(
                Command::new("auditd")
                    .args(["-n", "-c"])
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("auditd")?,
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        match kind {
            Config::Baseline => {}
            Config::Ebpf
            | Config::EbpfNoFold
            | Config::EbpfNoFoldCached
            | Config::EbpfAllOff
            | Config::EbpfCompat
            | Config::EbpfCompact
            | Config::MdatpdAuditd => {
                let etc = d.join("etc");
                std::fs::create_dir_all(&etc)?;
                let mut yaml = kind.mdatpd_yaml();
                // The soak's settings (an unrotated event file, so that
                // every event can be counted).
                if let Ok(extra) = std::env::var("MDATP_BENCH_EXTRA_YAML") {
                    yaml.push_str(&extra);
                }
                std::fs::write(etc.join("mdatp.yaml"), yaml)?;
                let child = Command::new(&paths.mdatpd)
                    .args(["--foreground", "--output"])
                    .arg(d.join("events.jsonl"))
                    .arg("--config-dir")
                    .arg(&etc)
                    .arg("--state-dir")
                    .arg(d.join("state"))
                    .arg("--audit-rules-dir")
                    .arg(d.join("rules.d"))
                    .args(extra)
                    .args(kind.mdatpd_args())
                    // No bus unless a load test gives one (soak's D-Bus flood).
                    .env(
                        "DBUS_SYSTEM_BUS_ADDRESS",
                        std::env::var("MDATP_BENCH_BUS")
                            .unwrap_or_else(|_| "unix:path=/nonexistent".into()),
                    )
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&stderr_path)?)
                    .spawn()
                    .context("mdatpd")?;
                m.sensor = Some(child);
                wait_for(&stderr_path, "sensor running", Duration::from_secs(30))?;
            }
            Config::Auditd => {
                auditctl(&["-e", "1"])?;
                for s in AUDIT_RULES {
                    bench_rule("-a", s)?;
                }
            }
            Config::Bpftrace => {
                let script = r#"
tracepoint:syscalls:sys_exit_openat /args->ret >= 0/ { printf("open %d %s %d\n", pid, comm, args->ret); }
tracepoint:syscalls:sys_exit_open /args->ret >= 0/ { printf("open %d %s %d\n", pid, comm, args->ret); }
tracepoint:sched:sched_process_exec { printf("exec %d %s\n", pid, str(args->filename)); }
tracepoint:sched:sched_process_exit { printf("exit %d %s\n", pid, comm); }
tracepoint:syscalls:sys_exit_connect { printf("connect %d %s %d\n", pid, comm, args->ret); }
tracepoint:syscalls:sys_exit_unlinkat { printf("unlink %d %s %d\n", pid, comm, args->ret); }
"#;
                let out = d.join("bpftrace.out");
                let child = Command::new("bpftrace")
                    .arg("-o")
                    .arg(&out)
                    .arg("-e")
                    .arg(script)
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&stderr_path)?)
                    .spawn()
                    .context("bpftrace")?;
                m.sensor = Some(child);
                wait_for(&out, "Attaching", Duration::from_secs(60))?;
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        m.mark_start();
        Ok(m)
    }

    /// The CPU counters' zero: what the monitors spend from here on is
    /// the workload's (start-up excluded).
    pub fn mark_start(&mut self) {
        if let Some(c) = &self.sensor {
            self.sensor_cpu0 = cpu_seconds(c.id()).unwrap_or(0.0);
        }
        if let Some(a) = &self.auditd {
            self.auditd_cpu0 = cpu_seconds(a.id()).unwrap_or(0.0);
        }
        self.kauditd_cpu0 = kauditd_pid().and_then(cpu_seconds).unwrap_or(0.0);
    }

    /// The sensor's pid, when the configuration runs one.
    pub fn sensor_pid(&self) -> Option<u32> {
        self.sensor.as_ref().map(Child::id)
    }

    /// mdatpd's event file.
    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    pub fn stop(mut self) -> Result<Stats> {
        let d = self.dir.path().to_path_buf();
        let mut stats = Stats::default();
        if let Some(child) = self.sensor.take() {
            let pid = child.id();
            stats.sensor_cpu_s = cpu_seconds(pid).unwrap_or(0.0) - self.sensor_cpu0;
            stats.peak_rss_kib = peak_rss_kib(pid).unwrap_or(0);
            stats.end_rss_kib = crate::proc::status_kib(pid, "VmRSS").unwrap_or(0);
            // Ring pages once touched stay resident, so at the end this is
            // their peak too.
            stats.bpf_mmap_rss_kib = bpf_mmap_rss_kib(pid);
            stats.bpf_map_kib = bpf_map_kib(pid).unwrap_or(0);
            let sig = if self.kind == Config::Bpftrace {
                nix::sys::signal::Signal::SIGINT
            } else {
                nix::sys::signal::Signal::SIGTERM
            };
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
            let mut child = child;
            let _ = child.wait();
        }
        if self.kind == Config::Auditd {
            for s in AUDIT_RULES {
                let _ = bench_rule("-d", s);
            }
        }
        if let Some(mut a) = self.auditd.take() {
            stats.audit_cpu_s += cpu_seconds(a.id()).unwrap_or(0.0) - self.auditd_cpu0;
            stats.auditd_rss_kib = peak_rss_kib(a.id()).unwrap_or(0);
            // Let auditd write what is queued.
            std::thread::sleep(Duration::from_millis(500));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(a.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = a.wait();
            stats.audit_cpu_s +=
                kauditd_pid().and_then(cpu_seconds).unwrap_or(0.0) - self.kauditd_cpu0;
        }
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        match self.kind {
            k if k.runs_mdatpd() => {
                let events = d.join("events.jsonl");
                stats.bytes_written = file_size(&events) + file_size(&d.join("audit.log"));
                stats.zstd_bytes = zstd_size(&events) + zstd_size(&d.join("audit.log"));
                let f = std::fs::File::open(&events).context("events")?;
                for line in BufReader::new(f).lines().map_while(Result::ok) {
                    if line.contains("\"class_uid\":0,") {
                        continue;
                    }
                    // A folded record stands for `count` opens.
                    let count = line
                        .find("\"count\":")
                        .and_then(|i| line[i + 8..].split([',', '}']).next()?.parse::<u64>().ok())
                        .unwrap_or(1);
                    stats.events += count;
                }
                stats.loss = loss_from(&stderr);
            }
            Config::Auditd => {
                let log = d.join("audit.log");
                stats.bytes_written = file_size(&log);
                stats.zstd_bytes = zstd_size(&log);
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                stats.events = text
                    .lines()
                    .filter(|l| l.starts_with("type=SYSCALL"))
                    .count() as u64;
                stats.loss = audit_value("lost")
                    .unwrap_or(0)
                    .saturating_sub(self.audit_lost0);
            }
            Config::Bpftrace => {
                let out = d.join("bpftrace.out");
                stats.bytes_written = file_size(&out);
                stats.zstd_bytes = zstd_size(&out);
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                stats.events = text
                    .lines()
                    .filter(|l| {
                        l.starts_with("open ")
                            || l.starts_with("exec ")
                            || l.starts_with("exit ")
                            || l.starts_with("connect ")
                            || l.starts_with("unlink ")
                    })
                    .count() as u64;
                stats.loss = text
                    .lines()
                    .chain(stderr.lines())
                    .filter_map(|l| l.strip_prefix("Lost "))
                    .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
        Ok(stats)
    }
}

/// Every counted loss in mdatpd's final "loss totals" line.
fn loss_from(stderr: &str) -> u64 {
    let Some(line) = stderr.lines().rev().find(|l| l.contains("loss totals:")) else {
        return 0;
    };
    let num_after = |key: &str| {
        line.find(key)
            .and_then(|i| {
                line[i + key.len()..]
                    .split([' ', ';'])
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    // A record the ring dropped is counted by the kernel and, when the
    // next record arrives, seen again as a sequence gap: the same loss
    // twice, so the larger of the two (the sum doubled it).
    num_after("drops: total=").max(num_after("sequence gaps="))
        + num_after("lost at the sink=")
        + num_after("kernel lost=")
        + num_after("events never received=")
}
