//! Where user-space time goes per event: the pipeline's stages timed on
//! synthetic open records (no kernel, no disk). The records name many
//! distinct files, as a read-heavy task's opens do, so per-path state
//! (hot-source counts, the opened-file memory) grows as it does for real.

use std::time::Instant;

use anyhow::Result;
use mdatp_bpf::abi::{mdatp_event_type, mdatp_file_open_event};
use mdatpd::clock::HostClock;
use mdatpd::ebpf::EbpfSource;
use mdatpd::enrich::Enricher;
use mdatpd::pipeline::Pipeline;
use mdatpd::process_cache::ProcessCache;
use mdatpd::sink::JsonLines;

/// One open record as the kernel writes it.
fn open_record(seq: u64, path: &str) -> Vec<u8> {
    let mut ev = mdatp_file_open_event::default();
    ev.hdr.type_ = mdatp_event_type::MDATP_EV_FILE_OPEN as u32;
    ev.hdr.seq = seq;
    ev.hdr.cpu = 0;
    ev.task.pid = std::process::id();
    ev.task.tid = std::process::id();
    ev.task.ppid = 1;
    for (i, b) in b"bench".iter().enumerate() {
        ev.task.comm[i] = *b as std::os::raw::c_char;
    }
    ev.access = 1;
    ev.fd = 3;
    ev.path_len = path.len() as u16;
    for (i, b) in path.bytes().enumerate() {
        ev.path[i] = b as std::os::raw::c_char;
    }
    let size = std::mem::offset_of!(mdatp_file_open_event, path) + path.len();
    ev.hdr.size = size as u32;
    // SAFETY: a plain C struct of integers and byte arrays; we copy its
    // first `size` bytes, all inside the struct.
    let bytes = unsafe {
        std::slice::from_raw_parts((&ev as *const mdatp_file_open_event).cast::<u8>(), size)
    };
    bytes.to_vec()
}

/// Every record the way the daemon takes it: the eBPF source's
/// conversion, then the pipeline. Not inlined, so that callgrind shows
/// its inclusive cost as one function.
#[inline(never)]
fn whole_pipeline(source: &mut EbpfSource, p: &mut Pipeline, records: &[Vec<u8>]) {
    for r in records {
        source.converter().record(r, &mut |ev| p.submit(ev));
    }
    p.flush();
}

pub fn run(n: u64, pipeline_only: bool) -> Result<()> {
    let clock = HostClock::from_system()?;
    let records: Vec<Vec<u8>> = (1..=n)
        .map(|i| {
            open_record(
                i,
                &format!(
                    "/usr/include/x86_64-linux-gnu/bits/types/file{}.h",
                    i % 20_000
                ),
            )
        })
        .collect();

    let t = Instant::now();
    for r in &records {
        std::hint::black_box(mdatpd::ebpf::decode::decode(r).ok());
    }
    let decode_ns = t.elapsed().as_nanos() as f64 / n as f64;

    let pipeline = |clock: &HostClock| {
        Pipeline::new(
            Enricher::new(clock.clone(), ProcessCache::new()),
            Box::new(JsonLines::new(std::io::sink())),
        )
    };
    // The whole path a ring-buffer record takes in the daemon.
    let mut source = EbpfSource::new(clock.clone());
    let mut p = pipeline(&clock);
    let t = Instant::now();
    whole_pipeline(&mut source, &mut p, &records);
    let full_ns = t.elapsed().as_nanos() as f64 / n as f64;

    // One enriched event, serialized again and again.
    let mut events = Vec::new();
    source
        .converter()
        .record(&records[0], &mut |ev| events.push(ev));
    let Some(mut ev) = events.pop() else {
        anyhow::bail!("the synthetic open record made no event");
    };
    Enricher::new(clock.clone(), ProcessCache::new()).enrich(&mut ev);
    let t = Instant::now();
    let mut buf = Vec::with_capacity(4096);
    let mut fragments = mdatpd::ocsf::Fragments::new("host");
    for _ in 0..n {
        buf.clear();
        mdatpd::ocsf::write_with(&ev, &mut fragments, mdatpd::sink::Detail::Full, &mut buf);
        std::hint::black_box(&buf);
    }
    let ocsf_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let mut sink = JsonLines::new(std::io::sink());
    let t = Instant::now();
    for _ in 0..n {
        mdatpd::sink::Sink::push(&mut sink, std::hint::black_box(&buf), None);
    }
    mdatpd::sink::Sink::flush(&mut sink);
    let write_ns = t.elapsed().as_nanos() as f64 / n as f64;

    println!("| stage | ns per open event |\n|---|---|");
    println!("| decode (ring bytes → typed record) | {decode_ns:.0} |");
    println!("| write the OCSF JSON bytes (ocsf::write_with) | {ocsf_ns:.0} |");
    println!("| copy into the sink's buffer, with the newline | {write_ns:.0} |");
    println!("| whole pipeline (decode, enrich, serialize, sink; to io::sink) | {full_ns:.0} |");
    println!(
        "\n{:.0} events/s per core for the user-space pipeline alone",
        1e9 / full_ns
    );
    if pipeline_only {
        return Ok(());
    }
    let file = file_sink(&buf, n)?;
    let nats_n = n.min(500_000);
    let nats = crate::delivery::nats(&buf, nats_n, 64)?;
    let nats_single = crate::delivery::nats(&buf, nats_n / 5, 1)?;
    let syslog = crate::delivery::syslog(&buf, nats_n)?;

    println!(
        "\nThe event file (FileSink: 100 MiB rotation, 2 kept, fsync once a second, \
         batches of {FILE_BATCH}; a temporary directory under {}): {:.0} events/s, \
         {:.0} ns and {:.0} ns of CPU per event, {} bytes per event, {} rotations",
        file.dir, file.per_sec, file.wall_ns, file.cpu_ns, file.bytes_per_event, file.rotations
    );
    println!(
        "\nThe NATS JetStream output (a private nats-server, file-backed stream, \
         every message acknowledged; the server's own CPU not counted):\n\
         - batch_events 64 (the default), {nats_n} events: {:.0} events/s, {:.0} ns of the sensor's CPU per event\n\
         - batch_events 1 (one event per message), {} events: {:.0} events/s, {:.0} ns of the sensor's CPU per event",
        nats.per_sec,
        nats.cpu_ns,
        nats_n / 5,
        nats_single.per_sec,
        nats_single.cpu_ns
    );
    println!(
        "\nThe syslog output over TCP (octet counting) into a private rsyslogd writing a file, \
         {nats_n} events: {:.0} events/s, {:.0} ns of the sensor's CPU per event",
        syslog.per_sec, syslog.cpu_ns
    );
    Ok(())
}

/// Events per write in the file-sink stage (a drain's batch is usually
/// larger; smaller batches make the per-write cost show).
const FILE_BATCH: u64 = 256;

struct FileStage {
    dir: String,
    per_sec: f64,
    wall_ns: f64,
    cpu_ns: f64,
    bytes_per_event: usize,
    rotations: u64,
}

/// The serialized event written `n` times to a real rotating event file.
fn file_sink(event: &[u8], n: u64) -> anyhow::Result<FileStage> {
    use mdatpd::sink::{FileOutput, FileSink, Sink};
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let config = FileOutput {
        keep: 2,
        ..FileOutput::default()
    };
    let mut sink = FileSink::open(&dir.path().join("events.jsonl"), &config, "bench")?;
    let me = std::process::id();
    let cpu0 = crate::proc::cpu_seconds(me).unwrap_or(0.0);
    let t = Instant::now();
    let mut last_tick = Instant::now();
    for i in 0..n {
        sink.push(event, None);
        if i % FILE_BATCH == FILE_BATCH - 1 {
            let f = sink.flush();
            anyhow::ensure!(
                f.lost.is_empty(),
                "the event file lost events: {:?}",
                f.error
            );
        }
        if last_tick.elapsed().as_secs() >= 1 {
            sink.tick();
            last_tick = Instant::now();
        }
    }
    sink.flush();
    sink.close();
    let wall = t.elapsed().as_secs_f64();
    let cpu = crate::proc::cpu_seconds(me).unwrap_or(0.0) - cpu0;
    Ok(FileStage {
        dir: std::env::temp_dir().display().to_string(),
        per_sec: n as f64 / wall,
        wall_ns: wall * 1e9 / n as f64,
        cpu_ns: cpu * 1e9 / n as f64,
        bytes_per_event: event.len() + 1,
        rotations: sink
            .status()
            .counters
            .get("rotations")
            .copied()
            .unwrap_or(0),
    })
}
