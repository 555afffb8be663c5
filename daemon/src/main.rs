use clap::Parser;

use mdatpd::args::{Args, Command};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::Validate { .. }) => {
            let paths = args.config_paths();
            return match mdatpd::config::load(&paths) {
                Ok(_) => {
                    match &paths.candidate {
                        Some(c) => println!(
                            "configuration is valid with {} as {}",
                            c.read_from.display(),
                            c.stands_for.display()
                        ),
                        None => println!("configuration is valid"),
                    }
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint!("{e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Some(Command::Explain) => {
            return match mdatpd::config::load(&args.config_paths()) {
                Ok(c) => {
                    print!("{}", c.explain());
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint!("{e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Some(Command::UnitNetwork) => {
            return match mdatpd::config::load(&args.config_paths()) {
                Ok(c) => {
                    if let Some(text) = mdatpd::unit_network::dropin(&c.settings.output) {
                        print!("{text}");
                    }
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint!("{e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    mdatpd::systemd::init_logging(&args.log_level);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(mdatpd::run::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
