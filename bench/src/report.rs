//! Aggregation (median and spread) and the Markdown/JSON outputs.

use std::fmt::Write;
use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::Cell;
use crate::config::Config;
use crate::monitors::Stats;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

pub fn write(cells: &[Cell], workloads: &[(&str, u64)], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| workload | configuration | wall s (median, min–max) | spread ±% | × baseline | events | events/s | loss | sensor CPU s / M events | audit CPU s / M events | peak RSS MiB | RSS excl. BPF ring pages MiB | BPF maps (kernel) MiB | auditd RSS MiB | bytes written | bytes / event | zstd bytes / event |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut rows = Vec::new();
    for (w, n) in workloads {
        let base: Vec<f64> = cells
            .iter()
            .filter(|c| c.workload == *w && c.config == Config::Baseline)
            .map(|c| c.wall_s)
            .collect();
        let base_med = median(base);
        for cfg in Config::ALL {
            let cs: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.workload == *w && c.config == cfg)
                .collect();
            if cs.is_empty() {
                continue;
            }
            let walls: Vec<f64> = cs.iter().map(|c| c.wall_s).collect();
            let wall = median(walls.clone());
            let (lo, hi) = walls
                .iter()
                .fold((f64::MAX, 0.0f64), |(a, b), x| (a.min(*x), b.max(*x)));
            let ev = median(cs.iter().map(|c| c.stats.events as f64).collect());
            let loss = cs.iter().map(|c| c.stats.loss).max().unwrap_or(0);
            let cpu = median(cs.iter().map(|c| c.stats.sensor_cpu_s).collect());
            let acpu = median(cs.iter().map(|c| c.stats.audit_cpu_s).collect());
            let max_mib =
                |f: fn(&Cell) -> u64| cs.iter().map(|c| f(c)).max().unwrap_or(0) as f64 / 1024.0;
            let rss = max_mib(|c| c.stats.peak_rss_kib);
            let own = max_mib(|c| {
                c.stats
                    .peak_rss_kib
                    .saturating_sub(c.stats.bpf_mmap_rss_kib)
            });
            let running = max_mib(|c| c.stats.end_rss_kib.saturating_sub(c.stats.bpf_mmap_rss_kib));
            let maps = max_mib(|c| c.stats.bpf_map_kib);
            let auditd_rss = max_mib(|c| c.stats.auditd_rss_kib);
            let bytes = median(cs.iter().map(|c| c.stats.bytes_written as f64).collect());
            let zbytes = median(cs.iter().map(|c| c.stats.zstd_bytes as f64).collect());
            let ratio = if base_med > 0.0 { wall / base_med } else { 0.0 };
            // How far the repetitions of this cell stray from their median:
            // a ratio is only read as a measurement when this is within 5%.
            let spread = if wall > 0.0 {
                (hi - wall).max(wall - lo) / wall * 100.0
            } else {
                0.0
            };
            let spread_mark = if spread > 5.0 { " (over 5%)" } else { "" };
            let per_m = |x: f64| if ev > 0.0 { x / ev * 1e6 } else { 0.0 };
            let _ = writeln!(
                md,
                "| {w} (n={n}) | {cfg} | {wall:.3} ({lo:.3}–{hi:.3}) | {spread:.1}{spread_mark} | {ratio:.2} | {ev:.0} | {:.0} | {loss} | {:.2} | {:.2} | {rss:.1} | {own:.1} | {maps:.1} | {auditd_rss:.1} | {bytes:.0} | {:.0} | {:.0} |",
                if wall > 0.0 { ev / wall } else { 0.0 },
                per_m(cpu),
                per_m(acpu),
                if ev > 0.0 { bytes / ev } else { 0.0 },
                if ev > 0.0 { zbytes / ev } else { 0.0 },
            );
            rows.push(json!({
                "workload": w, "n": n, "configuration": cfg.name(),
                "wall_s_median": wall, "wall_s_min": lo, "wall_s_max": hi, "spread_pct": spread,
                "ratio_to_baseline": ratio, "events": ev, "loss_max": loss,
                "sensor_cpu_s": cpu, "audit_cpu_s": acpu, "peak_rss_mib": rss,
                "peak_rss_excl_bpf_mmap_mib": own, "end_rss_excl_bpf_mmap_mib": running, "bpf_map_mib": maps, "auditd_peak_rss_mib": auditd_rss,
                "bytes_written": bytes, "zstd_bytes": zbytes,
                "cells": cs.iter().map(|c| json!({"rep": c.rep, "wall_s": c.wall_s, "events": c.stats.events, "loss": c.stats.loss})).collect::<Vec<_>>(),
            }));
        }
    }
    memory_summary(&mut md, cells, workloads);
    std::fs::write(out.join("results.md"), &md)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json!({ "rows": rows }))?,
    )?;
    print!("{md}");
    eprintln!(
        "wrote {} and {}",
        out.join("results.md").display(),
        out.join("results.json").display()
    );
    Ok(())
}

/// Kernel memory one queued audit record holds: kauditd queues each
/// record as an skb from `nlmsg_new(AUDIT_BUFSIZ = 1024)` — a 2,048-byte
/// data slab (1,040 bytes of message space + 320 of skb_shared_info) and a
/// 256-byte `struct sk_buff` slab. Computed, not measured: the kernel
/// reports only the queue's length.
const AUDIT_QUEUED_RECORD_BYTES: u64 = 2048 + 256;

/// The sensor's memory against auditd's, each part named: the sensor's
/// RSS without the ring's pages plus its BPF maps (the ring included),
/// against auditd's RSS plus its kernel backlog at the configured limit.
fn memory_summary(md: &mut String, cells: &[Cell], workloads: &[(&str, u64)]) {
    // The limit the auditd cells ran with (after the run the kernel's is
    // the restored one, the kernel's default 64 where no auditd loaded
    // its rules).
    let limit = crate::monitors::AUDITD_BACKLOG_LIMIT;
    let backlog_mib = (limit * AUDIT_QUEUED_RECORD_BYTES) as f64 / 1024.0 / 1024.0;
    let _ = writeln!(
        md,
        "\nMemory (MiB, the largest of the workload's repetitions): sensor = RSS without ring pages + BPF maps, running (RSS at the end of the workload) and at its peak (VmHWM, which keeps the start-up's BTF parsing); auditd = RSS (VmHWM) + backlog at the limit its cells ran with ({limit} records × {AUDIT_QUEUED_RECORD_BYTES} B = {backlog_mib:.1} MiB, computed)\n"
    );
    let _ = writeln!(
        md,
        "| workload | sensor RSS excl. ring, running / peak | BPF maps | sensor total, running / peak | auditd RSS | auditd backlog | auditd total | sensor < auditd, running / peak |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    let verdict = |sensor: f64, audit: f64| if sensor < audit { "yes" } else { "no" };
    for (w, _) in workloads {
        let peak = |cfg: Config, f: &dyn Fn(&Cell) -> u64| {
            cells
                .iter()
                .filter(|c| c.workload == *w && c.config == cfg)
                .map(f)
                .max()
                .unwrap_or(0) as f64
                / 1024.0
        };
        let excl_ring = |rss: fn(&Stats) -> u64| {
            peak(Config::Ebpf, &move |c: &Cell| {
                rss(&c.stats).saturating_sub(c.stats.bpf_mmap_rss_kib)
            })
        };
        let running = excl_ring(|s| s.end_rss_kib);
        let own = excl_ring(|s| s.peak_rss_kib);
        let maps = peak(Config::Ebpf, &|c| c.stats.bpf_map_kib);
        let auditd = peak(Config::Auditd, &|c| c.stats.auditd_rss_kib);
        if own == 0.0 || auditd == 0.0 {
            continue;
        }
        let audit = auditd + backlog_mib;
        let _ = writeln!(
            md,
            "| {w} | {running:.1} / {own:.1} | {maps:.1} | {:.1} / {:.1} | {auditd:.1} | {backlog_mib:.1} | {audit:.1} | {} / {} |",
            running + maps,
            own + maps,
            verdict(running + maps, audit),
            verdict(own + maps, audit),
        );
    }
}
