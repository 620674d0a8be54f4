use super::*;

/// Sums values and remembers event times, to check placement.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sum {
    total: i64,
    times: Vec<i64>,
}

impl Aggregate for Sum {
    type Event = i64;
    type Output = (i64, Vec<i64>);
    fn add(&mut self, event_time: DateTime<Utc>, event: &i64) {
        self.total += event;
        self.times.push(event_time.timestamp());
        self.times.sort_unstable();
    }
    fn finish(&self) -> Option<(i64, Vec<i64>)> {
        Some((self.total, self.times.clone()))
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("valid test time")
}

fn min(m: i64) -> i64 {
    m * 60
}

fn tumbling(size_min: i64, lateness_min: i64) -> Windowed<&'static str, Sum> {
    Windowed::new(
        WindowSpec::tumbling_minutes(size_min).expect("valid spec"),
        TimeDelta::minutes(lateness_min),
        Sum::default(),
    )
    .expect("valid lateness")
}

#[test]
fn spec_rejects_bad_configs() {
    assert_eq!(
        WindowSpec::tumbling_minutes(0),
        Err(WindowError::NonPositiveSize(0))
    );
    assert!(matches!(
        WindowSpec::sliding(TimeDelta::minutes(5), TimeDelta::minutes(10)),
        Err(WindowError::SlideExceedsSize { .. })
    ));
    let spec: WindowSpec = WindowSpec::tumbling_minutes(5).expect("valid");
    assert!(matches!(
        Windowed::<u8, Sum>::new(spec, TimeDelta::minutes(-1), Sum::default()),
        Err(WindowError::NegativeLateness(_))
    ));
}

#[test]
fn out_of_order_within_lateness_is_placed_in_its_window() {
    let mut w = tumbling(5, 2);
    w.push("g", at(min(3)), at(min(3)), 1).expect("on time");
    w.push("g", at(min(6)), at(min(6)), 10).expect("on time");
    // Watermark is 4 min: an event at 4:30 belongs to [0, 5) which is still open.
    w.push("g", at(min(4) + 30), at(min(4) + 30), 100)
        .expect("within lateness");
    assert!(
        w.drain_closed().is_empty(),
        "watermark 4 min has not reached 5"
    );
    w.push("g", at(min(7)), at(min(7)), 1000).expect("on time");
    let closed = w.drain_closed();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].window.start, at(0));
    assert_eq!(closed[0].window.end, at(min(5)));
    assert_eq!(closed[0].output, (101, vec![min(3), min(4) + 30]));
    assert_eq!(closed[0].events, 2);
    assert_eq!(closed[0].max_event_time, at(min(4) + 30));
}

#[test]
fn late_beyond_lateness_is_counted_and_returned() {
    let mut w = tumbling(5, 1);
    w.push("g", at(min(10)), at(min(10)), 1).expect("on time");
    let late = w
        .push("g", at(min(8)), at(min(8)), 7)
        .expect_err("behind watermark 9 min");
    assert_eq!(late.event, 7);
    assert_eq!(late.key, "g");
    assert_eq!(late.watermark, at(min(9)));
    assert_eq!(late.event_time, at(min(8)));
    assert_eq!(w.stats().late, 1);
    assert_eq!(w.stats().accepted, 1);
    // Exactly at the watermark is still on time.
    w.push("g", at(min(9)), at(min(9)), 2)
        .expect("at watermark");
}

#[test]
fn sliding_windows_get_size_over_slide_copies() {
    let spec = WindowSpec::sliding(TimeDelta::minutes(10), TimeDelta::minutes(5)).expect("valid");
    assert_eq!(
        spec.starts_containing(min(7) * 1000),
        vec![min(5) * 1000, 0]
    );
    let spec20 = WindowSpec::sliding(TimeDelta::minutes(20), TimeDelta::minutes(5)).expect("valid");
    assert_eq!(spec20.starts_containing(min(21) * 1000).len(), 4);
    // Boundary: an event at exactly 10 min is in [5, 15) and [10, 20), not [0, 10).
    assert_eq!(
        spec.starts_containing(min(10) * 1000),
        vec![min(10) * 1000, min(5) * 1000]
    );
    let mut w: Windowed<&str, Sum> =
        Windowed::new(spec, TimeDelta::zero(), Sum::default()).expect("valid");
    w.push("k", at(min(7)), at(min(7)), 1).expect("on time");
    assert_eq!(w.open_windows(), 2);
    w.push("k", at(min(30)), at(min(30)), 0).expect("on time");
    let closed = w.drain_closed();
    let starts: Vec<DateTime<Utc>> = closed.iter().map(|c| c.window.start).collect();
    assert_eq!(starts, vec![at(0), at(min(5))]);
    assert!(closed.iter().all(|c| c.output.0 == 1));
}

#[test]
fn negative_times_align_to_the_epoch() {
    let spec = WindowSpec::tumbling_minutes(5).expect("valid");
    assert_eq!(spec.starts_containing(-1), vec![-min(5) * 1000]);
}

#[test]
fn watermark_is_monotonic() {
    let mut w = tumbling(3, 1);
    assert_eq!(w.watermark(), None);
    let mut last: Option<DateTime<Utc>> = None;
    for t in [
        min(10),
        min(5),
        min(12),
        min(11) + 30,
        min(3),
        min(20),
        min(19),
    ] {
        let _ = w.push("k", at(t), at(t), 1);
        let now = w.watermark();
        assert!(now >= last, "watermark went back from {last:?} to {now:?}");
        last = now;
    }
    assert_eq!(last, Some(at(min(19))));
}

#[test]
fn eviction_keeps_state_bounded_over_a_long_stream() {
    let spec = WindowSpec::sliding(TimeDelta::minutes(10), TimeDelta::minutes(5)).expect("valid");
    let mut w: Windowed<u32, Sum> =
        Windowed::new(spec, TimeDelta::minutes(1), Sum::default()).expect("valid");
    let mut emitted: u64 = 0;
    let mut peak: usize = 0;
    let mut late: u64 = 0;
    // 100k events over 1k keys, 3 s apart (~83 hours), with a little jitter backwards.
    for i in 0..100_000_i64 {
        let key: u32 = (i % 1000) as u32;
        let jitter: i64 = if i % 7 == 0 { -20 } else { 0 };
        if w.push(key, at(i * 3 + jitter), at(i * 3 + jitter), 1)
            .is_err()
        {
            late += 1;
        }
        emitted += w.drain_closed().len() as u64;
        peak = peak.max(w.open_windows());
    }
    assert_eq!(late, 0, "20 s jitter is within 1 min lateness");
    // Keys active within size + lateness (11 min = 220 events → 220 keys) × 2 windows, plus
    // one slide of the next window: far below 1k keys × the stream's ~2000 windows.
    assert!(peak <= 1000, "peak open windows {peak}");
    let rest: u64 = w.flush_all().len() as u64;
    assert_eq!(w.open_windows(), 0);
    // Every event is in exactly 2 windows; each (key, window) pair is emitted once.
    assert_eq!(w.stats().windows_emitted, emitted + rest);
    assert!(emitted > 10_000);
}

#[test]
fn a_restored_snapshot_continues_like_the_uninterrupted_operator() {
    let events: Vec<(&'static str, i64)> = (0..200_i64)
        .map(|i| {
            let key: &'static str = if i % 3 == 0 { "a" } else { "b" };
            // Every fifth event 40 s behind (on time), every seventh 200 s (late).
            let jitter: i64 = match (i % 5, i % 7) {
                (_, 0) => 200,
                (0, _) => 40,
                _ => 0,
            };
            (key, i * 17 - jitter)
        })
        .collect();
    let fresh = || -> Windowed<String, Sum> {
        Windowed::new(
            WindowSpec::tumbling_minutes(5).expect("valid spec"),
            TimeDelta::minutes(1),
            Sum::default(),
        )
        .expect("valid lateness")
    };
    let run = |cut: Option<usize>| {
        let mut w = fresh();
        let mut out: Vec<String> = Vec::new();
        for (i, (key, t)) in events.iter().enumerate() {
            if cut == Some(i) {
                let json: String = serde_json::to_string(&w.snapshot()).expect("json");
                w = fresh();
                w.restore(serde_json::from_str(&json).expect("restores"));
            }
            match w.push(key.to_string(), at(*t), at(*t), *t) {
                Ok(()) => {}
                Err(late) => out.push(format!("late {} {}", late.key, t)),
            }
            out.extend(w.drain_closed().iter().map(|c| format!("{c:?}")));
        }
        out.extend(w.flush_all().iter().map(|c| format!("{c:?}")));
        (out, w.stats())
    };
    let clean = run(None);
    assert!(clean.0.iter().any(|l| l.starts_with("late")));
    for cut in [1, 50, 133, 199] {
        assert_eq!(run(Some(cut)), clean, "restored at event {cut}");
    }
}

#[test]
fn window_settings_read_as_size_or_size_and_slide() {
    let spec: WindowSpec = "5m".parse().expect("tumbling");
    assert_eq!(spec, WindowSpec::tumbling_minutes(5).expect("valid"));
    let spec: WindowSpec = "20m/5m".parse().expect("sliding");
    assert_eq!(
        (spec.size(), spec.slide()),
        (TimeDelta::minutes(20), TimeDelta::minutes(5))
    );
    let spec: WindowSpec = " 90s ".parse().expect("seconds");
    assert_eq!(spec.size(), TimeDelta::seconds(90));
    assert_eq!(parse_duration("1h"), Ok(TimeDelta::hours(1)));

    for bad in [
        "",
        "5",
        "m",
        "5 min",
        "-5m",
        "5m/",
        "5m/10m",
        "0m",
        "99999999999h",
    ] {
        let err = bad.parse::<WindowSpec>().expect_err(bad);
        assert!(!err.to_string().is_empty(), "{bad}");
    }
    assert_eq!(
        "5m/10m".parse::<WindowSpec>(),
        Err(WindowError::SlideExceedsSize {
            size_ms: 300_000,
            slide_ms: 600_000
        })
    );
}

#[test]
fn healing_pulls_a_future_watermark_back_and_drops_its_windows() {
    let mut w = tumbling(5, 1);
    w.push("g", at(min(10)), at(min(10)), 1).expect("on time");
    // A bad clock: an event stamped hours ahead moved the watermark.
    w.push("g", at(min(600)), at(min(10)), 99)
        .expect("accepted then");
    assert!(
        w.push("g", at(min(11)), at(min(11)), 2).is_err(),
        "late now"
    );
    let mut restored = tumbling(5, 1);
    restored.restore(w.snapshot());
    assert!(restored.heal(at(min(12))));
    assert_eq!(restored.watermark(), Some(at(min(11))));
    assert_eq!(restored.open_windows(), 1, "the future window is gone");
    restored
        .push("g", at(min(12)), at(min(12)), 3)
        .expect("true events count again");
    assert!(!restored.heal(at(min(20))), "nothing beyond the limit");
}
