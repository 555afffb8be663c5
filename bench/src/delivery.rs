//! The network outputs' throughput: the real outputs (their threads;
//! NATS JetStream publishes with message ids and every acknowledgement
//! awaited; syslog octet-counted over TCP) against private Debian
//! receivers on this machine (nats-server with a file-backed stream,
//! rsyslogd writing a file). The producer waits while the output's memory
//! backlog is over 8 MiB, as a sensor whose output keeps up would never
//! fill it; every event must be delivered, none lost. CPU is this
//! process's (the sensor's side), not the receiver's.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mdatpd::sink::{NatsOutput, Sink};

/// A delivery stage's result.
pub struct Stage {
    pub per_sec: f64,
    pub cpu_ns: f64,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(port: u16) -> Result<()> {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("nothing listens on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Pushes `n` copies of `event` in batches of 256, holding back while
/// the output's memory backlog is over 8 MiB, until every event is
/// delivered or lost; (events/s, ns of this process's CPU per event).
fn drive(sink: &mut impl Sink, event: &[u8], n: u64) -> Result<Stage> {
    let me = std::process::id();
    let cpu0 = crate::proc::cpu_seconds(me).unwrap_or(0.0);
    let t = Instant::now();
    let mut tally = (0u64, 0u64);
    let account = |t: &mut (u64, u64), f: mdatpd::sink::Flushed| {
        t.0 += f.delivered.values().sum::<u64>();
        t.1 += f.lost.values().sum::<u64>();
    };
    for i in 0..n {
        sink.push(event, None);
        if i % 256 == 255 {
            account(&mut tally, sink.flush());
            while sink
                .status()
                .counters
                .get("backlog_bytes")
                .copied()
                .unwrap_or(0)
                > 8 << 20
            {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    account(&mut tally, sink.flush());
    while tally.0 + tally.1 < n {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("{} of {n} delivered after 300 s", tally.0);
        }
        std::thread::sleep(Duration::from_millis(5));
        account(&mut tally, sink.flush());
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = crate::proc::cpu_seconds(me).unwrap_or(0.0) - cpu0;
    account(&mut tally, sink.close());
    if tally.1 > 0 {
        bail!("the output lost {} of {n} events", tally.1);
    }
    Ok(Stage {
        per_sec: n as f64 / wall,
        cpu_ns: cpu * 1e9 / n as f64,
    })
}

/// The syslog output over TCP (octet counting) into a private Debian
/// rsyslogd writing every record to a file.
pub fn syslog(event: &[u8], n: u64) -> Result<Stage> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"64k\")\n\
             module(load=\"imtcp\")\n\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
             *.* action(type=\"omfile\" file=\"{d}/out.log\")\n",
            d = dir.path().display()
        ),
    )?;
    let _server = Server(
        Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start rsyslogd (apt install rsyslog)")?,
    );
    wait_port(port)?;
    let cfg = mdatpd::sink::SyslogOutput {
        enabled: true,
        transport: mdatpd::sink::SyslogTransport::Tcp,
        address: format!("127.0.0.1:{port}"),
        ..Default::default()
    };
    let mut sink = mdatpd::sink::spawn_syslog(&cfg, "bench")?;
    drive(&mut sink, event, n)
}

pub fn nats(event: &[u8], n: u64, batch_events: u32) -> Result<Stage> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let server = Server(
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path().join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start nats-server (apt install nats-server)")?,
    );
    wait_port(port)?;
    let cfg = NatsOutput {
        enabled: true,
        servers: vec![format!("nats://127.0.0.1:{port}")],
        stream: "MDATP_BENCH".into(),
        batch_events,
        ..NatsOutput::default()
    };
    let mut sink = mdatpd::sink::spawn_nats(&cfg, "bench", dir.path())?;
    // Connected and the stream made before the clock starts.
    let t = Instant::now();
    while sink.status().counters.get("connected") != Some(&1) {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("the NATS output did not connect: {:?}", sink.status().error);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stage = drive(&mut sink, event, n);
    drop(server);
    stage
}
