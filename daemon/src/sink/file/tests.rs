use super::*;

fn config(max: u64, keep: u32) -> FileOutput {
    FileOutput {
        enabled: true,
        max_size: bytesize::ByteSize::b(max),
        keep,
        fsync: FsyncPolicy::Interval,
        compress: Compression::None,
        page_cache: PageCache::Keep,
    }
}

fn record(i: usize) -> Vec<u8> {
    format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(40)).into_bytes()
}

/// Every line of every file, in write order (oldest rotated file first).
fn lines(path: &Path, keep: u32) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = (1..=keep)
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .collect();
    files.push(path.to_path_buf());
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        for l in text.lines() {
            out.push(
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {l:?}: {e}", f.display())),
            );
        }
    }
    out
}

fn numbers(v: &[serde_json::Value]) -> Vec<u64> {
    v.iter().map(|l| l["n"].as_u64().unwrap()).collect()
}

#[test]
fn rotates_by_size_keeps_lines_whole_and_loses_nothing_it_keeps() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.jsonl");
    let mut s = FileSink::open(&path, &config(500, 50), "h").unwrap();
    let mut delivered = 0;
    for i in 0..100 {
        s.push(&record(i), Some(EventKind::FileOpen));
        if i % 3 == 2 {
            delivered += s.flush().delivered.values().sum::<u64>();
        }
    }
    delivered += s.flush().delivered.values().sum::<u64>();
    assert_eq!(delivered, 100);
    assert_eq!(numbers(&lines(&path, 50)), (0..100).collect::<Vec<_>>());
    assert!(s.status().counters["rotations"] > 5);
    for n in 1..=s.status().counters["rotations"] as u32 {
        let len = std::fs::metadata(format!("{}.{n}", path.display()))
            .unwrap()
            .len();
        assert!(len <= 500, "rotated file {n} is {len} bytes");
    }
}

#[test]
fn keeps_only_keep_rotated_files() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.jsonl");
    let mut s = FileSink::open(&path, &config(200, 2), "h").unwrap();
    for i in 0..40 {
        s.push(&record(i), None);
        s.flush();
    }
    assert!(path.exists());
    assert!(d.path().join("events.jsonl.1").exists());
    assert!(d.path().join("events.jsonl.2").exists());
    assert!(!d.path().join("events.jsonl.3").exists());
    // The newest events are the ones kept, in order.
    let kept = numbers(&lines(&path, 2));
    assert_eq!(kept.last(), Some(&39));
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "{kept:?}");
}

#[test]
fn a_file_renamed_under_the_sensor_is_followed_by_a_new_one() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.jsonl");
    let mut s = FileSink::open(&path, &config(0, 5), "h").unwrap();
    for i in 0..10 {
        s.push(&record(i), None);
    }
    s.flush();
    // logrotate without copytruncate: rename, then (maybe) create.
    std::fs::rename(&path, d.path().join("events.jsonl-old")).unwrap();
    for i in 10..20 {
        s.push(&record(i), None);
    }
    assert_eq!(s.flush().delivered.values().sum::<u64>(), 10);
    let old = numbers(&lines(&d.path().join("events.jsonl-old"), 0));
    let new = numbers(&lines(&path, 0));
    assert_eq!(old, (0..10).collect::<Vec<_>>());
    assert_eq!(new, (10..20).collect::<Vec<_>>());
    assert_eq!(s.status().counters["reopened"], 1);
}

#[test]
fn a_file_removed_under_the_sensor_is_recreated_at_the_next_tick() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.jsonl");
    let mut s = FileSink::open(&path, &config(0, 5), "h").unwrap();
    s.push(&record(0), None);
    s.flush();
    std::fs::remove_file(&path).unwrap();
    s.tick();
    assert!(path.exists(), "a new file once the old one is gone");
    s.push(&record(1), None);
    s.flush();
    assert_eq!(numbers(&lines(&path, 0)), vec![1]);
}

#[test]
fn a_torn_last_line_is_cut_at_start() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.jsonl");
    std::fs::write(&path, b"{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"pa").unwrap();
    let mut s = FileSink::open(&path, &config(0, 5), "h").unwrap();
    assert_eq!(s.status().counters["torn_records_cut"], 1);
    s.push(b"{\"n\":4}", None);
    let f = s.flush();
    assert_eq!(f.lost[&None], 1, "the torn record counts as lost");
    let all = lines(&path, 0);
    // ...and is reported in band, ahead of the next events.
    assert_eq!(all[2]["unmapped"]["detected_by"], "output_failed");
    assert_eq!(all[2]["unmapped"]["lost_by_type"]["other"], 1);
    let rest: Vec<_> = all.into_iter().filter(|l| l.get("n").is_some()).collect();
    assert_eq!(numbers(&rest), vec![1, 2, 4]);
    // A whole file is left alone.
    drop(s);
    let mut s = FileSink::open(&path, &config(0, 5), "h").unwrap();
    assert_eq!(s.status().counters["torn_records_cut"], 0);
    assert!(s.flush().lost.is_empty());
}

#[test]
fn a_failed_write_counts_every_event_of_the_batch_per_kind() {
    // /dev/full: every write fails with ENOSPC.
    let mut s = FileSink::open(Path::new("/dev/full"), &config(0, 5), "h").unwrap();
    s.push(b"{}", Some(EventKind::FileOpen));
    s.push(b"{}", Some(EventKind::FileOpen));
    s.push(b"{}", Some(EventKind::ProcessExec));
    let f = s.flush();
    assert!(f.delivered.is_empty());
    assert_eq!(f.lost[&Some(EventKind::FileOpen)], 2);
    assert_eq!(f.lost[&Some(EventKind::ProcessExec)], 1);
    assert!(
        f.error.as_deref().unwrap_or("").contains("space"),
        "{:?}",
        f.error
    );
    assert!(s.status().error.is_some());
}

#[test]
fn rotated_files_are_compressed_with_zstd_and_shift_as_zst() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.jsonl");
    let mut cfg = config(2000, 3);
    cfg.compress = Compression::Zstd;
    // A compression cut short by a crash leaves a .zst.tmp: removed at open.
    std::fs::write(d.path().join("events.jsonl.2.zst.tmp"), b"half").unwrap();
    let mut s = FileSink::open(&path, &cfg, "h").unwrap();
    assert!(!d.path().join("events.jsonl.2.zst.tmp").exists());
    for i in 0..200 {
        s.push(&record(i), Some(EventKind::FileOpen));
        s.flush();
    }
    s.close();
    // Every kept rotated file is compressed; none is left uncompressed.
    let mut all = Vec::new();
    for n in (1..=3).rev() {
        let plain = d.path().join(format!("events.jsonl.{n}"));
        assert!(!plain.exists(), "{} left uncompressed", plain.display());
        let z = std::fs::read(d.path().join(format!("events.jsonl.{n}.zst"))).unwrap();
        let text = String::from_utf8(zstd::decode_all(&z[..]).unwrap()).unwrap();
        assert!(text.ends_with('\n'));
        all.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    assert!(!d.path().join("events.jsonl.4.zst").exists());
    all.extend(lines(&path, 0));
    let kept = numbers(&all);
    assert_eq!(kept.last(), Some(&199));
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "{kept:?}");
    let c = &s.status().counters;
    assert!(c["compressed_files"] >= 3, "{c:?}");
    assert_eq!(c["compression_failures"], 0);
    assert!(c["compressed_bytes_out"] < c["compressed_bytes_in"]);
    assert!(c["compressed_bytes_per_event"] > 0);
}

/// The fraction of `path`'s pages in the page cache (mincore(2)).
fn resident_fraction(path: &Path) -> f64 {
    use std::os::fd::AsRawFd;
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096;
    let pages = len.div_ceil(page);
    // SAFETY: a read-only shared mapping of the whole file, unmapped
    // below; mincore writes one byte per page into `vec`, sized for it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let mut vec = vec![0u8; pages];
        assert_eq!(libc::mincore(p, len, vec.as_mut_ptr()), 0);
        libc::munmap(p, len);
        vec.iter().filter(|b| *b & 1 == 1).count() as f64 / pages as f64
    }
}

// f_type is i64 on x86_64 and narrower elsewhere.
#[allow(clippy::unnecessary_cast)]
fn on_tmpfs(path: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == TMPFS_MAGIC)
}

#[test]
fn page_cache_drop_frees_the_written_pages_behind_the_writes_and_keep_keeps_them() {
    // 64 MiB in the writer thread's 64 KiB batches: eight drop windows.
    const MIB: usize = 64;
    for mode in [PageCache::Drop, PageCache::Keep] {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("events.jsonl");
        let mut s = FileSink::open(
            &path,
            &FileOutput {
                page_cache: mode,
                ..config(0, 0)
            },
            "h",
        )
        .unwrap();
        let line = record(0);
        for _ in 0..MIB * 16 {
            for _ in 0..64 * 1024 / (line.len() + 1) {
                s.push(&line, Some(EventKind::FileOpen));
            }
            s.flush();
        }
        s.close();
        let resident = resident_fraction(&path);
        if on_tmpfs(&path) {
            // tmpfs is the page cache: nothing is dropped, nothing lost.
            eprintln!("TMPDIR is on tmpfs: page_cache: drop cannot be seen here");
            assert!(std::fs::metadata(&path).unwrap().len() > (MIB as u64 - 4) << 20);
            continue;
        }
        // Drop keeps about the last two windows (16 of the 64 MiB), and
        // a window whose writeback was still running at its drop.
        match mode {
            PageCache::Drop => assert!(resident < 0.5, "{resident} of the file cached"),
            PageCache::Keep => assert!(resident > 0.9, "{resident} of the file cached"),
        }
    }
}
