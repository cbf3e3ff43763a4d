//! The detection rule as a property: for any probe schedule (bunched, late, overlapping
//! rounds, any latency) and any failure pattern, the tracker declares a region down
//! exactly when the rule's definition, evaluated from scratch over the whole history,
//! says so. Cases come from a seeded generator, so a failure names the seed that
//! reproduces it.

use std::time::Duration;

use super::*;

/// One generated round.
#[derive(Clone, Debug)]
struct Round {
    probe: usize,
    at: u64,
    latency: u64,
    ok: bool,
}

/// A generated case: the rule, how many critical probes region `a` has, the rounds.
#[derive(Debug)]
struct Case {
    th: Thresholds,
    critical: usize,
    rounds: Vec<Round>,
}

fn generate(seed: u64) -> Case {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ms = |rng: &mut fastrand::Rng, max: u64| {
        // Zero often: the edge where a span or a gap is nothing at all.
        if rng.u8(..4) == 0 { 0 } else { rng.u64(..=max) }
    };
    let th = Thresholds {
        failure: rng.u32(1..=4),
        recovery: rng.u32(1..=4),
        failure_span: Duration::from_millis(ms(&mut rng, 3000)),
        recovery_span: Duration::from_millis(ms(&mut rng, 3000)),
    };
    let critical = rng.usize(1..=3);
    // Probe `critical` is advisory: it reports, and must never matter.
    let probes = critical + 1;
    let fail_rate = rng.f64() * 0.8 + 0.1;
    let mut at = 1_000_000;
    let rounds = (0..rng.usize(1..=80))
        .map(|_| {
            at += ms(&mut rng, 900);
            Round {
                probe: rng.usize(..probes),
                at,
                latency: ms(&mut rng, 1200),
                ok: rng.f64() >= fail_rate,
            }
        })
        .collect();
    Case {
        th,
        critical,
        rounds,
    }
}

fn name(probe: usize, critical: usize) -> String {
    if probe < critical {
        format!("c{probe}")
    } else {
        "advisory".to_string()
    }
}

/// The trailing run of rounds of `probe` with outcome `ok` in `history`: its length and
/// the time from its first round's start to its last round's end.
fn trailing(history: &[Round], probe: usize, ok: bool) -> (u32, u64) {
    let mine: Vec<&Round> = history.iter().filter(|r| r.probe == probe).collect();
    let run: Vec<&&Round> = mine.iter().rev().take_while(|r| r.ok == ok).collect();
    match (run.last(), run.first()) {
        (Some(first), Some(last)) => (
            run.len() as u32,
            last.at
                .saturating_sub(first.at.saturating_sub(first.latency)),
        ),
        _ => (0, 0),
    }
}

/// The definition, from scratch: after `history`, some critical probe's trailing failures
/// meet the threshold and the span.
fn fails_now(case: &Case, history: &[Round]) -> bool {
    (0..case.critical).any(|p| {
        let (n, span) = trailing(history, p, false);
        n > 0 && n >= case.th.failure && span >= case.th.failure_span.as_millis() as u64
    })
}

/// Every critical probe that has reported passes with the threshold and the span.
fn passes_now(case: &Case, history: &[Round]) -> bool {
    let reported: Vec<usize> = (0..case.critical)
        .filter(|p| history.iter().any(|r| r.probe == *p))
        .collect();
    !reported.is_empty()
        && reported.iter().all(|p| {
            let (n, span) = trailing(history, *p, true);
            n > 0 && n >= case.th.recovery && span >= case.th.recovery_span.as_millis() as u64
        })
}

/// For every round `k`: down after it iff some round `j ≤ k` met the failure rule and no
/// round in `(j, k]` met the recovery rule; the value is the time of the first such `j`
/// after the last recovery (when the outage began).
fn expected(case: &Case) -> Vec<Option<u64>> {
    let n = case.rounds.len();
    let fails: Vec<bool> = (0..n)
        .map(|i| fails_now(case, &case.rounds[..=i]))
        .collect();
    let passes: Vec<bool> = (0..n)
        .map(|i| passes_now(case, &case.rounds[..=i]))
        .collect();
    (0..n)
        .map(|k| {
            let from = (0..=k).rev().find(|&i| passes[i]).map_or(0, |r| r + 1);
            (from..=k).find(|&j| fails[j]).map(|j| case.rounds[j].at)
        })
        .collect()
}

fn check(seed: u64) {
    let case = generate(seed);
    let a = RegionName::new("a");
    let probes = (0..=case.critical).map(|p| (name(p, case.critical), p < case.critical));
    let mut t = HealthTracker::new(case.th, vec![a.clone(), RegionName::new("b")], probes);
    let expected = expected(&case);
    for (k, r) in case.rounds.iter().enumerate() {
        let probe = name(r.probe, case.critical);
        let (at, lat) = (Ts(r.at), Duration::from_millis(r.latency));
        t.observe(if r.ok {
            Observation::ok(&probe, &a, at, lat)
        } else {
            Observation::failed(&probe, &a, at, lat, "x")
        });
        // While the outage lasts the verdict is `Down` when some critical probe's latest
        // round failed and `Recovering` when none did; `since` is when it began.
        let history = &case.rounds[..=k];
        let failing = (0..case.critical).any(|p| trailing(history, p, false).0 > 0);
        let got = match t.verdict(&a) {
            Verdict::Down { since } if failing => Some(Some(since.as_millis())),
            Verdict::Recovering { .. } if !failing => Some(None),
            Verdict::Down { .. } | Verdict::Recovering { .. } => {
                panic!("seed {seed}, round {k}: Down and Recovering swapped in {case:#?}")
            }
            _ => None,
        };
        let want = expected[k].map(|since| failing.then_some(since));
        assert_eq!(got, want, "seed {seed}, after round {k} of {case:#?}");
    }
}

#[test]
fn down_is_declared_exactly_when_the_rule_holds_for_any_schedule_and_failure_pattern() {
    for seed in 0..3000 {
        check(seed);
    }
}

#[test]
fn the_generator_reaches_both_outcomes_and_the_span_matters() {
    // A property that never sees an outage, or never sees the span decide, proves little.
    let (mut downs, mut held_by_span) = (0, 0);
    for seed in 0..3000 {
        let case = generate(seed);
        let counts_only = Case {
            th: Thresholds::counts(case.th.failure, case.th.recovery),
            critical: case.critical,
            rounds: case.rounds.clone(),
        };
        let (with_span, without) = (expected(&case), expected(&counts_only));
        for (w, c) in with_span.iter().zip(&without) {
            downs += usize::from(w.is_some());
            held_by_span += usize::from(w.is_none() && c.is_some());
        }
    }
    assert!(downs > 1000, "{downs} down states");
    assert!(
        held_by_span > 1000,
        "{held_by_span} states the span held back"
    );
}
