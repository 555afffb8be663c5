//! Command line of mdatpd.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ConfigPaths;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration (every layer) and exit: 0 valid, 1 not.
    /// With --as LAYER_FILE FILE: check the tree as it will be once FILE
    /// is installed as LAYER_FILE (e.g. a rendered managed profile,
    /// before it replaces the one in force).
    Validate {
        /// The layer file (mdatp.yaml, conf.d/*.yaml, local.yaml,
        /// managed/*.yaml) that FILE is checked as; it need not exist.
        #[arg(long = "as", value_name = "LAYER_FILE", requires = "candidate")]
        stands_for: Option<PathBuf>,
        /// The file to check in its place.
        #[arg(value_name = "FILE", requires = "stands_for")]
        candidate: Option<PathBuf>,
    },
    /// Print every effective setting, the file that set it, and the keys
    /// a managed profile locks.
    Explain,
    /// Print the systemd drop-in that lets the unit reach the network
    /// outputs the configuration enables (nothing when there is none).
    UnitNetwork,
}

#[derive(Debug, Parser)]
#[command(
    name = "mdatpd",
    version,
    about = "mdatp endpoint-security sensor daemon"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Configuration directory: mdatp.yaml, conf.d/*.yaml, managed/*.yaml.
    #[arg(long, global = true, value_name = "DIR", default_value = "/etc/mdatp")]
    pub config_dir: PathBuf,

    /// State directory: local.yaml (settings changed by mdatp/D-Bus).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/mdatp"
    )]
    pub state_dir: PathBuf,

    /// Run attached to the terminal; events go to stdout as JSON Lines
    /// unless --output is given.
    #[arg(long)]
    pub foreground: bool,

    /// Write events (JSON Lines) to this file instead.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Directory for the default event file (events.jsonl) when not in the
    /// foreground.
    #[arg(long, value_name = "DIR", default_value = "/var/log/mdatp")]
    pub log_dir: PathBuf,

    /// Size of the kernel→user ring buffer in bytes (power of two, ≥ 4096).
    /// Default: sized from the host, 2 MiB per CPU between 4 and 64 MiB
    /// and at most 1/256 of memory (docs/PERFORMANCE.md).
    #[arg(long, value_name = "BYTES")]
    pub ring_buffer_size: Option<u32>,

    /// The kernel wakes the daemon once per this many bytes of unread
    /// records (on every record past four times this much); between
    /// wake-ups the daemon drains on a short timer (batched wake-ups).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub wakeup_bytes: u64,

    /// A base configuration file instead of <config-dir>/mdatp.yaml
    /// (docs/CONFIGURATION.md). All layers are re-read on SIGHUP.
    #[arg(long, global = true, alias = "filter-config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// enabled: eBPF when supported (audit otherwise); disabled: the
    /// audit subsystem. Overrides the configuration file at start.
    #[arg(long, value_name = "enabled|disabled")]
    pub ebpf_supplementary_event_provider: Option<String>,

    /// Where the auditd provider writes its rules file (mdatp.rules).
    #[arg(long, value_name = "DIR", default_value = "/etc/audit/rules.d")]
    pub audit_rules_dir: PathBuf,

    /// Measurement: no wake-up on every record when far behind (the
    /// storm's brake); storms faster than the drain then lose records.
    #[arg(long, hide = true)]
    pub test_no_far_behind_wakeups: bool,

    /// Testing: the kernel release to check against the support table
    /// instead of this kernel's.
    #[arg(long, hide = true, value_name = "RELEASE")]
    pub test_kernel_release: Option<String>,

    /// Testing: the audit `enabled` value to act on instead of the
    /// kernel's (2 = immutable cannot be tested for real without a reboot).
    #[arg(long, hide = true, value_name = "0|1|2")]
    pub test_audit_enabled: Option<u32>,

    /// Testing: the auditctl program to run (a nonexistent path makes the
    /// audit rules fail to load, as on a host without the audit tools).
    #[arg(long, hide = true, value_name = "PATH")]
    pub test_auditctl: Option<PathBuf>,

    /// Testing: an os-release file instead of /etc/os-release.
    #[arg(long, hide = true, value_name = "FILE")]
    pub test_os_release: Option<PathBuf>,

    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, default_value = "info")]
    pub log_level: String,

    /// Testing: make this program's attach target a nonexistent hook so
    /// the kernel refuses it (proves one failure leaves the rest running).
    /// Only the first load: a later switch back to eBPF lifts the refusal.
    #[arg(long, hide = true, value_name = "PROGRAM")]
    pub test_break_program: Vec<String>,

    /// Testing: load this build of the syscall exit programs whatever the
    /// probes say (the compat build runs on new kernels too).
    #[arg(long, hide = true, value_name = "typed|compat")]
    pub test_syscall_variant: Option<VariantArg>,

    /// Testing: load as if the kernel had none of the kfuncs the object
    /// calls (bpf_rdonly_cast, 6.2+), so the fallback that 5.15-6.1
    /// kernels take runs here too.
    #[arg(long, hide = true)]
    pub test_without_kfuncs: bool,

    /// Testing: resolve the kfunc calls with an id the kernel refuses, so
    /// that the load must go again without them (what a kernel that has
    /// the kfunc but does not allow it here would make happen).
    #[arg(long, hide = true, conflicts_with = "test_without_kfuncs")]
    pub test_refused_kfuncs: bool,

    /// Testing: a live switch to eBPF waits this many milliseconds before
    /// it loads, so that a test can see the events keep coming meanwhile.
    #[arg(long, hide = true, value_name = "MS")]
    pub test_switch_load_delay_ms: Option<u64>,
}

/// `--test-syscall-variant` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum VariantArg {
    Typed,
    Compat,
}

impl From<VariantArg> for mdatp_bpf::SyscallVariant {
    fn from(v: VariantArg) -> Self {
        match v {
            VariantArg::Typed => mdatp_bpf::SyscallVariant::Typed,
            VariantArg::Compat => mdatp_bpf::SyscallVariant::Compat,
        }
    }
}

impl Args {
    pub fn config_paths(&self) -> ConfigPaths {
        let paths = ConfigPaths {
            config_dir: self.config_dir.clone(),
            state_dir: self.state_dir.clone(),
            base_override: self.config.clone(),
            candidate: None,
        };
        match &self.command {
            Some(Command::Validate {
                stands_for: Some(stands_for),
                candidate: Some(read_from),
            }) => {
                // The stand-in's place is compared with the layers' as
                // absolute paths (`--as ./managed/x.yaml` from /etc/mdatp).
                let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or(p.clone());
                ConfigPaths {
                    config_dir: abs(&paths.config_dir),
                    state_dir: abs(&paths.state_dir),
                    base_override: paths.base_override.as_ref().map(abs),
                    candidate: Some(crate::config::Candidate {
                        stands_for: abs(stands_for),
                        read_from: read_from.clone(),
                    }),
                }
            }
            _ => paths,
        }
    }

    /// Where events go: None = stdout.
    pub fn event_output(&self) -> Option<PathBuf> {
        match (&self.output, self.foreground) {
            (Some(p), _) => Some(p.clone()),
            (None, true) => None,
            (None, false) => Some(self.log_dir.join("events.jsonl")),
        }
    }
}
