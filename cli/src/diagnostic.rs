//! `mdatp diagnostic hot-event-sources` and `ebpf-statistics`: the
//! daemon's answers as a table for a person or JSON for a script.

use mdatp_cli::args::Output;
use mdatp_dbus::Sensor1Proxy;
use serde_json::json;

use crate::explain;

pub async fn hot_event_sources(
    proxy: &Sensor1Proxy<'_>,
    top: u32,
    output: Output,
) -> Result<(), String> {
    let (secs, rows) = proxy.hot_event_sources(top).await.map_err(explain)?;
    let secs = secs.max(0.001);
    match output {
        Output::Json => {
            let rows: Vec<_> = rows
                .iter()
                .map(|(kind, name, n)| {
                    json!({"kind": kind, "name": name, "events": n,
                           "events_per_second": *n as f64 / secs})
                })
                .collect();
            println!("{}", json!({"seconds": secs, "sources": rows}));
        }
        Output::Table => {
            for kind in ["path", "executable"] {
                println!("{kind}s by events over {secs:.0} s:");
                println!("  {:>12} {:>12}  {kind}", "events", "events/s");
                for (_, name, n) in rows.iter().filter(|r| r.0 == kind) {
                    println!("  {n:>12} {:>12.1}  {name}", *n as f64 / secs);
                }
            }
        }
    }
    Ok(())
}

pub async fn ebpf_statistics(
    proxy: &Sensor1Proxy<'_>,
    seconds: u32,
    output: Output,
) -> Result<(), String> {
    let (note, rows) = proxy.ebpf_statistics(seconds).await.map_err(explain)?;
    let avg = |runs: u64, ns: u64| ns.checked_div(runs).unwrap_or(0);
    match output {
        Output::Json => {
            let rows: Vec<_> = rows
                .iter()
                .map(|(kind, name, id, mem, runs, ns, detail)| {
                    json!({"kind": kind, "name": name, "id": id, "memlock_bytes": mem,
                           "runs": runs, "run_time_ns": ns, "avg_ns_per_run": avg(*runs, *ns),
                           "detail": detail})
                })
                .collect();
            println!(
                "{}",
                json!({"seconds": seconds, "note": note, "objects": rows})
            );
        }
        Output::Table => {
            if !note.is_empty() {
                println!("note: {note}");
            }
            println!("programs (runs over {seconds} s):");
            println!(
                "  {:<24} {:>12} {:>10} {:>12}  detail",
                "name", "runs", "avg ns", "memlock"
            );
            for (_, name, _, mem, runs, ns, detail) in rows.iter().filter(|r| r.0 == "program") {
                println!(
                    "  {name:<24} {runs:>12} {:>10} {mem:>12}  {detail}",
                    avg(*runs, *ns)
                );
            }
            let total: u64 = rows.iter().filter(|r| r.0 == "map").map(|r| r.3).sum();
            println!("maps (kernel memory {total} bytes):");
            println!("  {:<24} {:>12}  detail", "name", "memlock");
            for (_, name, _, mem, _, _, detail) in rows.iter().filter(|r| r.0 == "map") {
                println!("  {name:<24} {mem:>12}  {detail}");
            }
        }
    }
    Ok(())
}
