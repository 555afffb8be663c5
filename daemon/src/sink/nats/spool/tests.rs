use super::*;

fn ev(i: usize) -> Vec<u8> {
    format!(
        "{{\"class_uid\":1007,\"n\":{i},\"pad\":\"{}\"}}",
        "x".repeat(200)
    )
    .into_bytes()
}

fn append(s: &mut Spool, range: std::ops::Range<usize>) -> usize {
    let ids: Vec<String> = range.clone().map(|i| format!("h.1.{i}")).collect();
    let evs: Vec<Vec<u8>> = range.map(ev).collect();
    s.append(
        ids.iter()
            .zip(&evs)
            .map(|(id, e)| (id.as_str(), Some(EventKind::ProcessExec), e.as_slice())),
    )
    .unwrap()
}

fn drain(s: &mut Spool) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let recs = s.read(300).unwrap();
        let Some(last) = recs.last() else { break };
        let end = last.end;
        out.extend(recs.into_iter().map(|r| r.id));
        s.commit(end).unwrap();
    }
    out
}

#[test]
fn records_come_back_in_order_across_segments_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, torn) = Spool::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(torn, 0);
    assert!(s.is_empty());
    // ~250 bytes each: 40,000 span three 4 MiB segments.
    for c in 0..40 {
        assert_eq!(append(&mut s, c * 1000..(c + 1) * 1000), 1000);
    }
    assert!(s.segments.len() >= 3);
    // Half acknowledged, then a restart.
    let first = s.read(20_000).unwrap();
    s.commit(first.last().unwrap().end).unwrap();
    drop(s);
    let (mut s, _) = Spool::open(dir.path(), 64 << 20).unwrap();
    let ids = drain(&mut s);
    let want: Vec<String> = (20_000..40_000).map(|i| format!("h.1.{i}")).collect();
    assert!(ids == want, "{} ids, first {:?}", ids.len(), ids.first());
    assert!(s.is_empty());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".spool"))
        .collect();
    assert!(left.is_empty(), "consumed segments are deleted");
}

#[test]
fn the_spool_is_bounded_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(dir.path(), 1 << 20).unwrap();
    let n = append(&mut s, 0..10_000);
    assert!(n > 3000 && n < 5000, "{n} records in 1 MiB");
    assert_eq!(append(&mut s, 0..1), 0, "full");
    assert!(s.pending_bytes() <= 1 << 20);
    let seg = segment_path(dir.path(), s.segments[0].0);
    drop(s);
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(b"h.1.x\tprocess_exec\t{\"cut").unwrap();
    let (mut s, torn) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(torn, 1);
    assert_eq!(drain(&mut s).len(), n);
}
