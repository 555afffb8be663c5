//! The daemon's entry point: start (configuration, sources, bus), then
//! run until SIGINT/SIGTERM. The running state lives in `service`.

use crate::args::Args;
use crate::service::Daemon;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (daemon, commands) = Daemon::start(args).await?;
    daemon.run(commands).await
}
