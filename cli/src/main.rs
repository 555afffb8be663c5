//! `mdatp`: the sensor's command line. It talks to mdatpd only through
//! D-Bus (system bus, or DBUS_SYSTEM_BUS_ADDRESS). Exit codes: 0 ok
//! (for `config`: changed), 1 the operation failed or was refused (stderr
//! says why and what to do), 2 usage, 3 `config`: unchanged.

mod config;
mod diagnostic;
mod show;
mod tail;

use std::process::ExitCode;

use clap::Parser;
use mdatp_cli::args::{Cli, Cmd, ConfigCmd, DiagnosticCmd, EventsCmd, Output};
use mdatp_dbus::Sensor1Proxy;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `config` takes a subcommand (get) or SETTING --value V: clap cannot
    // say "one of the two", so the usage error (exit 2) is raised here.
    if let Cmd::Config {
        action: None,
        setting,
        value,
        ..
    } = &cli.command
        && (setting.is_none() || value.is_none())
    {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "mdatp config SETTING --value V [--check] | mdatp config get SETTING | mdatp config in-force FILE",
            )
            .exit();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mdatp: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(config::Outcome::Done) => ExitCode::SUCCESS,
        Ok(config::Outcome::Unchanged) => ExitCode::from(UNCHANGED),
        Ok(config::Outcome::NotInForce) => ExitCode::FAILURE,
        Err(msg) => {
            eprintln!("mdatp: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `mdatp config`'s exit status when the value was already the one asked.
const UNCHANGED: u8 = 3;

/// A zbus error as a sentence a person can act on.
fn explain(e: zbus::Error) -> String {
    if let zbus::Error::MethodError(name, detail, _) = &e {
        let detail = detail.clone().unwrap_or_default();
        return match name.as_str() {
            "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
                "mdatpd is not running (org.mdatp.Sensor1 is not on the system bus); start it with: systemctl start mdatp".into()
            }
            "org.freedesktop.DBus.Error.NoReply" => {
                "mdatpd did not answer (it may have stopped); check: systemctl status mdatp".into()
            }
            "org.freedesktop.DBus.Error.AccessDenied" => {
                format!("access denied: changing the sensor or reading its configuration needs root ({detail})")
            }
            _ => format!("{detail} [{name}]"),
        };
    }
    format!("D-Bus: {e}")
}

async fn health(proxy: &Sensor1Proxy<'_>) -> Result<mdatp_dbus::Health, String> {
    let dict = proxy.health().await.map_err(explain)?;
    mdatp_dbus::Health::from_dict(&dict)
        .map_err(|e| format!("mdatpd answered Health() with an unexpected shape: {e}"))
}

async fn run(cli: Cli) -> Result<config::Outcome, String> {
    let conn = zbus::Connection::system()
        .await
        .map_err(|e| format!("cannot reach the system D-Bus ({e}); is dbus running?"))?;
    let proxy = Sensor1Proxy::new(&conn).await.map_err(explain)?;
    match cli.command {
        Cmd::Health { field, output } => {
            let json = health(&proxy).await?.to_json();
            match (field, output) {
                (Some(f), output) => {
                    let v = json.get(&f).ok_or_else(|| {
                        format!(
                            "no health field {f:?}; fields: {}",
                            mdatp_dbus::Health::FIELDS.join(", ")
                        )
                    })?;
                    match output {
                        Output::Table => println!("{}", show::plain(v)),
                        Output::Json => println!("{v}"),
                    }
                }
                (None, Output::Json) => println!("{}", serde_json::Value::Object(json)),
                (None, Output::Table) => print!("{}", show::table(&json)),
            }
        }
        Cmd::Config {
            action: Some(ConfigCmd::Get { setting, output }),
            ..
        } => return config::get(&proxy, &setting, output).await,
        Cmd::Config {
            action: Some(ConfigCmd::InForce { file, output }),
            ..
        } => return config::in_force(&proxy, &file, output).await,
        Cmd::Config {
            action: None,
            setting: Some(setting),
            value: Some(value),
            check,
            output,
        } => return config::set(&proxy, &setting, &value, check, output).await,
        Cmd::Config { .. } => {
            return Err(
                "usage: mdatp config SETTING --value V [--check] | mdatp config get SETTING | mdatp config in-force FILE".into(),
            );
        }
        Cmd::Events {
            action: EventsCmd::Tail { count, output },
        } => {
            let path = health(&proxy).await?.event_output;
            if path == "stdout" {
                return Err("mdatpd writes events to its own stdout (foreground mode); run it with --output FILE or as the service to tail them here".into());
            }
            let as_json = matches!(output, Output::Json);
            tokio::task::spawn_blocking(move || tail::follow(&path, count, as_json))
                .await
                .map_err(|e| e.to_string())??;
        }
        Cmd::Diagnostic {
            action: DiagnosticCmd::Create { path },
        } => {
            let dir = match path {
                Some(p) => std::fs::canonicalize(&p)
                    .map_err(|e| format!("--path {p}: {e}"))?
                    .display()
                    .to_string(),
                None => String::new(),
            };
            let written = proxy.create_diagnostic(&dir).await.map_err(explain)?;
            println!("{written}");
        }
        Cmd::Diagnostic {
            action: DiagnosticCmd::HotEventSources { top, output },
        } => diagnostic::hot_event_sources(&proxy, top, output).await?,
        Cmd::Diagnostic {
            action: DiagnosticCmd::EbpfStatistics { seconds, output },
        } => diagnostic::ebpf_statistics(&proxy, seconds, output).await?,
    }
    Ok(config::Outcome::Done)
}
