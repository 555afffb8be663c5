//! `mdatp-man OUTDIR`: writes the man pages. The synopsis and options of
//! every page come from the clap definitions the binaries parse with, so a
//! new flag shows up in the page without anyone editing roff; the prose
//! sections that clap cannot know (files, exit status, examples) are
//! below. `mdatp.yaml(5)` is written by hand (`man/mdatp.yaml.5`) because
//! it documents a file, not a command line.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Command, CommandFactory};
use clap_mangen::Man;

const MANUAL: &str = "mdatp Manual";

const CLI_EXIT: &str = r#".SH "EXIT STATUS"
.TP
.B 0
The operation succeeded.
.TP
.B 1
The operation failed; the message on standard error says why and what to do
(for example, that mdatpd is not running and how to start it).
.TP
.B 2
The command line was wrong (usage error).
"#;

const CLI_ENV: &str = r#".SH ENVIRONMENT
.TP
.B DBUS_SYSTEM_BUS_ADDRESS
The system bus to use instead of the default one. \fBmdatp\fR talks to the
daemon only through D\-Bus (name \fBorg.mdatp.Sensor1\fR); health is open to
every local user; reading the configuration (it lists what the sensor does not
watch) and changing settings need root.
"#;

const CLI_SEE_ALSO: &str = r#".SH "SEE ALSO"
\fBmdatp\fR(8), \fBmdatp\-health\fR(8), \fBmdatp\-config\fR(8),
\fBmdatp\-diagnostic\fR(8), \fBmdatpd\fR(8), \fBmdatp.yaml\fR(5),
\fBbusctl\fR(1)
"#;

const HEALTH_EXTRA: &str = r#".SH EXAMPLES
.nf
mdatp health
mdatp health \-\-field supplementary_events_subsystem
mdatp health \-\-output json
.fi
.PP
\fBsupplementary_events_subsystem\fR is ebpf or auditd;
\fBevent_sources\fR names, per event kind, where it comes from (ebpf,
auditd, "auditd (PAM records)", or "unavailable: " and the reason);
\fBloss\fR counts what each stage lost, per event kind where it can tell.
The fields, in order:
"#;

const CONFIG_DESCRIPTION: &str = r#".SH DESCRIPTION
Stores the setting in \fI/var/lib/mdatp/local.yaml\fR and applies it at once.
Dashes in the setting's name stand for underscores; nested keys use dots.
A setting fixed by a managed profile (\fI/etc/mdatp/managed/*.yaml\fR)
cannot be changed: the command fails and names the file that manages it.
Switching the event provider happens live: the new provider is attached before
the old one is detached.
"#;

const CONFIG_EXAMPLES: &str = r#".SH EXAMPLES
.nf
mdatp config ebpf\-supplementary\-event\-provider \-\-value disabled
mdatp config ebpf\-supplementary\-event\-provider \-\-value enabled
.fi
"#;

/// Ansible, Puppet and busctl: the VM test runs these examples as the
/// installed page shows them (tests/integration/vm/guest-test.sh).
const AUTOMATION: &str = include_str!("automation.roff");

const DIAG_EXTRA: &str = r#".SH FILES
.TP
.I /var/log/mdatp/diag/mdatp\-diag\-<UTC time>.tar.gz
The archive: health, the effective configuration with the file each value
came from, system and kernel facts, the audit status and the sensor's rules,
the loaded BPF programs and the recent daemon log. Secret\-looking keys are
redacted; configuration files are never copied raw.
"#;

const DAEMON_DESCRIPTION: &str = r#".SH DESCRIPTION
\fBmdatpd\fR captures security events (process exec, fork and exit; file
open, read, write, create, delete, rename and attribute changes; network
connect, accept and listen; logins) and writes them as OCSF JSON Lines.
Its event source is eBPF; when eBPF is disabled, unsupported or fails to
load, it falls back to the Linux audit subsystem by itself and reports why
in \fBmdatp health\fR. Login events come from the audit subsystem's PAM
records without any rule.
.PP
It runs as the systemd service \fBmdatp.service\fR (Type=notify, with a
watchdog). SIGHUP re\-reads every configuration layer; an invalid
configuration is refused and the daemon keeps its last good state.
SIGTERM stops it and removes the audit rules it loaded (key \fBmdatp\fR);
rules of other tools are never touched.
.SH COMMANDS
.TP
.B validate
Check the configuration (every layer) and exit: 0 valid, 1 not, with every
problem named by file and key. Used by the unit's ExecStartPre= and
ExecReload=.
.TP
.B validate \-\-as \fILAYER\-FILE\fR \fIFILE\fR
Check the tree as it will be once \fIFILE\fR is installed as
\fILAYER\-FILE\fR (a managed profile, a conf.d drop\-in, which need not exist
yet); problems are named as \fILAYER\-FILE\fR. Ansible's and Puppet's
\fBvalidate\fR run it on a rendered profile before it replaces the one in
force (see \fBmdatp\-config\fR(8), AUTOMATION).
.TP
.B explain
Print every effective setting, the file that set it, and the keys a managed
profile locks.
"#;

const DAEMON_TAIL: &str = r#".SH FILES
.TP
.I /etc/mdatp/mdatp.yaml
Base configuration (see \fBmdatp.yaml\fR(5)).
.TP
.I /etc/mdatp/conf.d/*.yaml
Drop\-ins, in lexical order.
.TP
.I /var/lib/mdatp/local.yaml
Settings made with \fBmdatp config\fR or D\-Bus \fBSetConfig\fR.
.TP
.I /etc/mdatp/managed/*.yaml
Managed profiles: win over everything and lock the keys they set.
.TP
.I /var/log/mdatp/events.jsonl
Events (JSON Lines, OCSF).
.TP
.I /etc/audit/rules.d/mdatp.rules
The audit rules file, present only while the audit subsystem is the provider.
.SH "EXIT STATUS"
\fBmdatpd validate\fR exits 0 when the configuration is valid and 1 when it is
not, printing every problem with its file and key. The daemon exits non\-zero
when it cannot start.
.SH "SEE ALSO"
\fBmdatp\fR(8), \fBmdatp.yaml\fR(5), \fBsystemctl\fR(1), \fBauditctl\fR(8)
"#;

/// One page: clap's title, name, synopsis and options, with `description`
/// (if given) in place of clap's one-line about, and `tail` sections after
/// the options.
fn page(
    cmd: Command,
    name: &'static str,
    section: &str,
    description: Option<&str>,
    tail: &[&str],
) -> Result<Vec<u8>> {
    // Subcommands that have their own page are listed; the daemon's two
    // are described in its page instead.
    let list_subcommands = description.is_none() && cmd.get_subcommands().next().is_some();
    let cmd = cmd
        .name(name)
        .bin_name(name.replace('-', " "))
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    let man = Man::new(cmd)
        .section(section)
        .manual(MANUAL)
        .source(format!("mdatp {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    match description {
        Some(d) => out.write_all(d.as_bytes())?,
        None => man.render_description_section(&mut out)?,
    }
    man.render_options_section(&mut out)?;
    if list_subcommands {
        man.render_subcommands_section(&mut out)?;
    }
    for section in tail {
        out.write_all(section.as_bytes())?;
    }
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn sub(cli: &Command, name: &str) -> Result<Command> {
    match cli.find_subcommand(name) {
        Some(c) => Ok(c.clone()),
        None => bail!("the mdatp command has no subcommand {name:?}"),
    }
}

fn write(dir: &Path, file: &str, body: &[u8]) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, body).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        bail!("usage: mdatp-man OUTDIR");
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cli = mdatp_cli::args::Cli::command();
    let common = [CLI_EXIT, CLI_ENV, CLI_SEE_ALSO];
    write(
        &dir,
        "mdatp.8",
        &page(cli.clone(), "mdatp", "8", None, &common)?,
    )?;
    // The field list comes from the one definition of the health.
    let health_extra = format!(
        "{HEALTH_EXTRA}{}\n",
        mdatp_dbus::Health::FIELDS
            .iter()
            .map(|f| format!("\\fB{}\\fR", f.replace('_', "\\_")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let pages: [(&str, &str, Option<&str>, &[&str]); 4] = [
        ("health", "mdatp-health", None, &[&health_extra]),
        (
            "config",
            "mdatp-config",
            Some(CONFIG_DESCRIPTION),
            &[CONFIG_EXAMPLES, AUTOMATION],
        ),
        ("diagnostic", "mdatp-diagnostic", None, &[DIAG_EXTRA]),
        ("events", "mdatp-events", None, &[]),
    ];
    for (name, page_name, description, extra) in pages {
        let mut tail: Vec<&str> = extra.to_vec();
        tail.extend_from_slice(&common);
        let body = page(sub(&cli, name)?, page_name, "8", description, &tail)?;
        write(&dir, &format!("{page_name}.8"), &body)?;
    }
    let daemon = mdatpd::args::Args::command();
    let body = page(
        daemon,
        "mdatpd",
        "8",
        Some(DAEMON_DESCRIPTION),
        &[DAEMON_TAIL],
    )?;
    write(&dir, "mdatpd.8", &body)?;
    let yaml = include_bytes!("../mdatp.yaml.5");
    write(&dir, "mdatp.yaml.5", yaml)?;
    Ok(())
}
