//! The `mdatp` command line definition, shared by the binary and the
//! man-page generator (`man/`), so the pages cannot drift from the flags.

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "mdatp", version, about = "mdatp endpoint-security sensor")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    /// Aligned text for a person.
    Table,
    /// JSON, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Show the sensor's health: provider, hooks, loss, audit status.
    Health {
        /// Print only this field (e.g. supplementary_events_subsystem).
        #[arg(long, value_name = "NAME")]
        field: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Change a setting and apply it at once, check a change, or read one.
    ///
    /// For example `mdatp config ebpf-supplementary-event-provider --value disabled`,
    /// `mdatp config folding.enabled --value false --check`,
    /// `mdatp config get folding.window-ms`.
    /// Dashes stand for underscores; nested keys use dots (folding.window-ms).
    /// Exit status: 0 changed (with --check: would change), 3 unchanged
    /// (nothing written, nothing reloaded), 1 refused (locked, unknown,
    /// invalid) or failed.
    #[command(args_conflicts_with_subcommands = true)]
    Config {
        #[command(subcommand)]
        action: Option<ConfigCmd>,
        /// The setting's name.
        setting: Option<String>,
        /// The new value (YAML: a word, a number, or a [list]).
        #[arg(long)]
        value: Option<String>,
        /// Only say whether the change would be made (changed, unchanged,
        /// locked, invalid); nothing is written or applied.
        #[arg(long)]
        check: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Live events, for a person at a terminal.
    Events {
        #[command(subcommand)]
        action: EventsCmd,
    },
    /// Support data.
    Diagnostic {
        #[command(subcommand)]
        action: DiagnosticCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print a setting's effective value, the file that set it (or
    /// `default`) and the managed profile that locks it, if any.
    Get {
        /// The setting's name.
        setting: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Whether every setting of a configuration file (a managed profile,
    /// a conf.d drop-in) is in force in the running sensor: exit 0 yes,
    /// 1 no, naming each setting still different, its value in force and
    /// the file it comes from. After a reload, automation waits for 0.
    InForce {
        /// The configuration file (absolute path).
        file: std::path::PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Follow new events (Ctrl-C stops).
    Tail {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum DiagnosticCmd {
    /// Write a tar.gz with health, configuration, kernel, audit and BPF
    /// state and the recent daemon log (secrets redacted).
    Create {
        /// Directory for the archive (default /var/log/mdatp/diag).
        #[arg(long, value_name = "DIR")]
        path: Option<String>,
    },
    /// The paths and executables with the most events since the sensor
    /// started, with events per second: what to exclude or fold first.
    HotEventSources {
        /// How many of each (paths, executables).
        #[arg(long, default_value_t = 20)]
        top: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// The sensor's BPF programs and maps: each program's runs and
    /// average time per run over a short window (the kernel's run-time
    /// statistics are enabled for that window only), each object's
    /// kernel memory.
    EbpfStatistics {
        /// The window, 1 to 20 seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
}
