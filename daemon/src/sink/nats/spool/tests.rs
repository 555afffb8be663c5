use super::*;

fn ev(i: usize) -> Vec<u8> {
    format!(
        "{{\"class_uid\":1007,\"n\":{i},\"pad\":\"{}\"}}",
        "x".repeat(200)
    )
    .into_bytes()
}

/// Messages `h.1.<i>` for i in range, each of two events (2i, 2i+1).
fn append(s: &mut Spool, range: std::ops::Range<usize>) -> usize {
    let msgs: Vec<Message> = range
        .map(|i| Message {
            id: format!("h.1.{i}"),
            class: "process_activity",
            events: (2 * i..2 * i + 2)
                .map(|n| Record {
                    bytes: ev(n),
                    kind: Some(EventKind::ProcessExec),
                })
                .collect(),
        })
        .collect();
    s.append(&msgs).unwrap()
}

/// Message ids in order; checks each message's events came back whole.
fn drain(s: &mut Spool) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let msgs = s.read(300).unwrap();
        let Some(&(_, end)) = msgs.last() else { break };
        for (m, _) in msgs {
            let i: usize = m.id.rsplit('.').next().unwrap().parse().unwrap();
            assert_eq!(m.events.len(), 2, "{}", m.id);
            assert_eq!(m.events[1].bytes, ev(2 * i + 1));
            assert_eq!(m.class, "process_activity");
            out.push(m.id);
        }
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
    // ~500 bytes each: 40,000 span several 4 MiB segments.
    for c in 0..40 {
        assert_eq!(append(&mut s, c * 1000..(c + 1) * 1000), 1000);
    }
    assert!(s.segments.len() >= 3);
    // Half acknowledged, then a restart.
    let first = s.read(20_000).unwrap();
    s.commit(first.last().unwrap().1).unwrap();
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
    assert!(n > 1500 && n < 2500, "{n} messages in 1 MiB");
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
