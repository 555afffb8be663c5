//! The NATS output's throughput: the real output (its thread, JetStream
//! publishes with message ids, acknowledgements awaited) against a private
//! Debian nats-server with a file-backed stream on this machine. The
//! producer waits while the output's memory backlog is over 8 MiB, as a
//! sensor whose output keeps up would never fill it; every event must be
//! acknowledged, none lost. CPU is this process's (the sensor's side),
//! not the server's.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mdatpd::sink::{NatsOutput, Sink};

pub struct NatsStage {
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

pub fn nats(event: &[u8], n: u64, batch_events: u32) -> Result<NatsStage> {
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
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("nats-server did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
            bail!("{} of {n} acknowledged after 300 s", tally.0);
        }
        std::thread::sleep(Duration::from_millis(5));
        account(&mut tally, sink.flush());
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = crate::proc::cpu_seconds(me).unwrap_or(0.0) - cpu0;
    account(&mut tally, sink.close());
    drop(server);
    if tally.1 > 0 {
        bail!("the NATS output lost {} of {n} events", tally.1);
    }
    Ok(NatsStage {
        per_sec: n as f64 / wall,
        cpu_ns: cpu * 1e9 / n as f64,
    })
}
