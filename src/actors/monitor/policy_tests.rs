//! Unit tests of the autoscaling policy with a fake clock: one test per rule, a flapping
//! load, and property tests over random clusters and loads.

use super::*;
use proptest::prelude::*;

/// Short windows, as the tests of the whole system use: tick 100 ms, panic 500 ms, stable
/// 2 s, downscale delay 4 s, cooldown 500 ms.
fn cfg() -> AutoscaleConfig {
    AutoscaleConfig {
        min_executors: 1,
        max_executors: 8,
        tick_ms: 100,
        panic_window_ms: 500,
        stable_window_ms: 2_000,
        downscale_delay_ms: 4_000,
        cooldown_ms: 500,
        ..AutoscaleConfig::default()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An idle, removable executor node with 2 workers.
fn node(name: &str, state: NodeState) -> ExecutorNode {
    ExecutorNode {
        node: NodeId::new(name),
        state,
        workers: 2,
        demand: 0.0,
        in_flight: 0,
        queued: 0,
        waiting_schedules: 0,
        cache_bytes: 0,
        removable: true,
    }
}

/// `n` active nodes sharing `demand` evenly (busy when their share is not zero).
fn active(n: usize, demand: f64) -> Observation {
    let executors = (0..n)
        .map(|i| {
            let share = demand / n as f64;
            ExecutorNode {
                demand: share,
                in_flight: share.ceil() as u32,
                ..node(&format!("e{i}"), NodeState::Active)
            }
        })
        .collect();
    Observation {
        executors,
        launches_pending: 0,
        calls_waiting: 0,
    }
}

/// Drive `policy` every `cfg().tick_ms` from `from` for `span`, observing `obs(t)` at
/// offset `t`; returns each decision with its offset from `from`.
fn drive(
    policy: &mut Policy,
    from: Instant,
    span: Duration,
    mut obs: impl FnMut(Duration) -> Observation,
) -> Vec<(Duration, Decision)> {
    let mut out = vec![];
    let mut t = Duration::ZERO;
    while t <= span {
        if let Some(d) = policy.tick(&obs(t), from + t).decision {
            out.push((t, d));
        }
        t += ms(cfg().tick_ms);
    }
    out
}

#[test]
fn panic_scales_up_on_the_next_tick() {
    let t0 = Instant::now();
    let mut p = Policy::new(cfg(), t0);
    // Quiet for a stable window: 1 node of 2 workers, demand 0.5 (fits).
    let quiet = drive(&mut p, t0, ms(2_000), |_| active(1, 0.5));
    assert_eq!(quiet, vec![]);
    // A step to 30 calls waiting: the panic window's mean (4×0.5 + 30)/5 = 6.4 ≥ 2 × 2.
    let tick = p.tick(&active(1, 30.0), t0 + ms(2_100));
    let d = tick.decision.expect("decides on the step's first tick");
    assert_eq!(
        (d.action, d.reason),
        (Action::Launch { count: 1 }, Reason::Panic)
    );
    assert_eq!(d.numbers.capacity, 2);
}

#[test]
fn stable_window_scales_up_without_panic() {
    let t0 = Instant::now();
    let mut p = Policy::new(cfg(), t0);
    assert_eq!(drive(&mut p, t0, ms(2_000), |_| active(1, 1.0)), vec![]);
    // Demand 2.0 on 2 workers (below panic at 4) needs ceil(2 / 1.4) = 2 nodes; the stable
    // mean passes 1.4 once 40 % of the window has it.
    let decisions = drive(&mut p, t0 + ms(2_100), ms(2_000), |_| active(1, 2.0));
    let (at, d) = decisions.first().expect("scales up within a stable window");
    assert_eq!(
        (&d.action, d.reason),
        (&Action::Launch { count: 1 }, Reason::Stable)
    );
    assert!(*at >= ms(700) && *at <= ms(1_000), "at {at:?}");
}

#[test]
fn no_scale_down_before_the_delay_and_one_node_at_a_time() {
    let t0 = Instant::now();
    let mut p = Policy::new(cfg(), t0);
    let decisions = drive(&mut p, t0, ms(4_000), |_| active(3, 0.0));
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let (at, d) = &decisions[0];
    assert_eq!(
        *at,
        ms(4_000),
        "the downscale delay, counted from the first tick"
    );
    assert_eq!(d.reason, Reason::Idle);
    assert!(matches!(d.action, Action::Drain { .. }));
    // While that node drains, nothing else goes, however long it takes.
    let mut draining = active(3, 0.0);
    draining.executors[0].state = NodeState::Draining;
    assert_eq!(
        drive(&mut p, t0 + ms(4_100), ms(8_000), |_| draining.clone()),
        vec![]
    );
}

#[test]
fn one_action_per_cooldown() {
    let t0 = Instant::now();
    let mut p = Policy::new(cfg(), t0);
    // Overwhelming demand; every launched node joins ready on the next tick.
    let mut nodes = 1;
    let mut actions = vec![];
    for i in 0..30u32 {
        let now = t0 + ms(100) * i;
        if let Some(d) = p.tick(&active(nodes, 100.0), now).decision {
            let Action::Launch { count } = d.action else {
                panic!("only launches: {d:?}")
            };
            nodes += count as usize;
            actions.push(now - t0);
        }
    }
    assert_eq!(actions[..3], [ms(0), ms(500), ms(1_000)], "{actions:?}");
    assert!(actions.windows(2).all(|w| w[1] - w[0] >= ms(500)));
    assert_eq!(
        nodes, 8,
        "up to doubling each time, then the maximum: 1, 2, 4, 8"
    );
}

#[test]
fn pending_launches_count_and_draining_nodes_do_not() {
    let t0 = Instant::now();
    // 1 active node with demand for 2 nodes, 1 launch pending: nothing more to launch.
    let mut obs = active(1, 2.8);
    obs.launches_pending = 1;
    let tick = Policy::new(cfg(), t0).tick(&obs, t0);
    assert_eq!((tick.numbers.counted, tick.decision), (2, None));
    // The same demand with a second node draining instead: it is not capacity.
    let mut obs = active(1, 2.8);
    obs.executors.push(node("d", NodeState::Draining));
    let tick = Policy::new(cfg(), t0).tick(&obs, t0);
    assert_eq!((tick.numbers.counted, tick.numbers.capacity), (1, 2));
    let d = tick.decision.expect("launches");
    assert_eq!(d.action, Action::Launch { count: 1 });
    // A starting node counts as asked for, not as capacity.
    let mut obs = active(1, 2.8);
    obs.executors.push(node("s", NodeState::Starting));
    let tick = Policy::new(cfg(), t0).tick(&obs, t0);
    assert_eq!(
        (tick.numbers.counted, tick.numbers.capacity, tick.decision),
        (2, 2, None)
    );
}

#[test]
fn minimum_and_maximum_are_respected() {
    let t0 = Instant::now();
    let c = AutoscaleConfig {
        min_executors: 2,
        max_executors: 3,
        ..cfg()
    };
    let tick = Policy::new(c.clone(), t0).tick(&Observation::default(), t0);
    let d = tick.decision.expect("launches to the minimum");
    assert_eq!(
        (d.action, d.reason),
        (Action::Launch { count: 2 }, Reason::BelowMinimum)
    );
    // Huge demand on 2 nodes with 1 draining: one more fits under the maximum of 3 slots
    // only once the drained node is gone.
    let mut obs = active(2, 1_000.0);
    obs.executors.push(node("d", NodeState::Draining));
    assert_eq!(Policy::new(c.clone(), t0).tick(&obs, t0).decision, None);
    let d = Policy::new(c.clone(), t0)
        .tick(&active(2, 1_000.0), t0)
        .decision;
    assert_eq!(d.expect("launch").action, Action::Launch { count: 1 });
    // No demand at all never drains below the minimum.
    let mut p = Policy::new(c, t0);
    let drains = drive(&mut p, t0, ms(20_000), |_| active(2, 0.0));
    assert_eq!(drains, vec![]);
}

#[test]
fn a_restarted_monitor_waits_a_stable_window_before_scaling_down() {
    let t0 = Instant::now();
    let c = AutoscaleConfig {
        downscale_delay_ms: 500,
        ..cfg()
    };
    let mut p = Policy::new(c, t0);
    let decisions = drive(&mut p, t0, ms(3_000), |_| active(3, 0.0));
    let (at, _) = decisions.first().expect("scales down eventually");
    assert_eq!(*at, ms(2_000), "not before one stable window");
}

#[test]
fn the_victim_is_idle_removable_holds_no_schedules_and_has_the_smallest_cache() {
    let t0 = Instant::now();
    let mut obs = active(5, 0.0);
    let e = &mut obs.executors;
    e[0].removable = false; // the executor inside the monitor's own process
    e[0].cache_bytes = 0;
    e[1].in_flight = 1;
    e[2].waiting_schedules = 1;
    e[3].cache_bytes = 500;
    e[4].cache_bytes = 900;
    let mut p = Policy::new(cfg(), t0);
    let decisions = drive(&mut p, t0, ms(4_000), |_| obs.clone());
    let victims: Vec<_> = decisions.iter().map(|(_, d)| d.action.clone()).collect();
    assert_eq!(
        victims,
        vec![Action::Drain {
            node: NodeId::new("e3")
        }]
    );
    // With every removable node busy, nothing is drained.
    obs.executors[3].queued = 2;
    obs.executors[4].in_flight = 1;
    let mut p = Policy::new(cfg(), t0);
    assert_eq!(drive(&mut p, t0, ms(8_000), |_| obs.clone()), vec![]);
}

/// The actions `c` takes on a cluster whose demand alternates between 0 and 8 every
/// `period` for 20 s, and the node count at the end.
/// With `min_executors = 0`: a launch from zero as soon as a call waits (cooldown or not),
/// one at a time; the last node goes after `idle_to_zero`, the others after the delay.
fn to_zero() -> AutoscaleConfig {
    AutoscaleConfig {
        min_executors: 0,
        idle_to_zero_ms: 1_000,
        ..cfg()
    }
}

#[test]
fn a_waiting_call_launches_one_node_at_once_when_none_runs() {
    let t0 = Instant::now();
    let mut p = Policy::new(to_zero(), t0);
    let none = Observation::default();
    assert_eq!(
        p.tick(&none, t0).decision,
        None,
        "nothing waits: nothing to do"
    );
    let waiting = Observation {
        calls_waiting: 3,
        ..Observation::default()
    };
    // Within the cooldown of a drain, as after a scale to zero.
    p.last_action = Some(t0);
    let d = p.tick(&waiting, t0 + ms(100)).decision.expect("a launch");
    assert_eq!(
        (d.action, d.reason, d.numbers.waiting),
        (Action::Launch { count: 1 }, Reason::FromZero, 3)
    );
    let coming = Observation {
        launches_pending: 1,
        ..waiting.clone()
    };
    assert_eq!(
        drive(&mut p, t0 + ms(200), ms(2_000), |_| coming.clone()),
        vec![],
        "the launch under way counts: no second one"
    );
}

#[test]
fn an_idle_cluster_goes_to_zero_after_the_grace_period_and_not_while_calls_wait() {
    let t0 = Instant::now();
    let mut p = Policy::new(to_zero(), t0);
    // Two idle nodes: the first goes after the downscale delay, the last after the
    // scale-to-zero grace period (counted from the first drain).
    let (mut nodes, mut drains, mut t) = (2, vec![], Duration::ZERO);
    while t <= ms(8_000) {
        if let Some(d) = p.tick(&active(nodes, 0.0), t0 + t).decision {
            assert_eq!(d.reason, Reason::Idle);
            drains.push(t);
            nodes -= 1;
        }
        t += ms(100);
    }
    // The grace period starts at the first tick after the drain (an action resets it).
    assert_eq!(drains, vec![ms(4_000), ms(5_100)]);
    // A call waiting somewhere keeps the last node, however idle it looks.
    let t1 = t0 + ms(10_000);
    let mut p = Policy::new(to_zero(), t1);
    let mut obs = active(1, 0.0);
    obs.calls_waiting = 1;
    assert_eq!(drive(&mut p, t1, ms(6_000), |_| obs.clone()), vec![]);
}

fn under_alternating_load(c: &AutoscaleConfig, period: Duration) -> (Vec<Action>, usize) {
    let t0 = Instant::now();
    let mut p = Policy::new(c.clone(), t0);
    let mut nodes = 1usize;
    let mut actions = vec![];
    let mut t = Duration::ZERO;
    while t <= ms(20_000) {
        let high = (t.as_millis() / period.as_millis()) % 2 == 1;
        if let Some(d) = p
            .tick(&active(nodes, if high { 8.0 } else { 0.0 }), t0 + t)
            .decision
        {
            match d.action {
                Action::Launch { count } => nodes += count as usize,
                Action::Drain { .. } => nodes -= 1,
            }
            actions.push(d.action);
        }
        t += ms(100);
    }
    (actions, nodes)
}

#[test]
fn a_flapping_load_does_not_flap_the_node_count() {
    let both_ways = |actions: &[Action]| {
        actions.iter().any(|a| matches!(a, Action::Launch { .. }))
            && actions.iter().any(|a| matches!(a, Action::Drain { .. }))
    };
    // The check sees flapping: with no averaging, no delay and no cooldown, the count
    // follows every swing of the load.
    let jumpy = AutoscaleConfig {
        tick_ms: 50,
        panic_window_ms: 50,
        stable_window_ms: 50,
        downscale_delay_ms: 0,
        cooldown_ms: 0,
        ..cfg()
    };
    let (actions, _) = under_alternating_load(&jumpy, ms(100));
    assert!(both_ways(&actions) && actions.len() > 20, "{actions:?}");
    // With the windows, the count rises to what the mean load (4: 3 nodes of 2 workers at
    // 0.7) needs and stays, whether the load swings every tick or every second.
    for period in [ms(100), ms(1_000)] {
        let (actions, nodes) = under_alternating_load(&cfg(), period);
        assert!(!both_ways(&actions), "period {period:?}: {actions:?}");
        assert!((3..=6).contains(&nodes), "period {period:?}: {nodes} nodes");
    }
}

/// A random executor node.
fn any_node() -> impl Strategy<Value = ExecutorNode> {
    (
        0u8..3,
        1u32..4,
        prop_oneof![3 => Just(0.0), 1 => 0.0f64..10.0],
        (0u32..2, 0u32..2, 0u32..2),
        0u64..1_000,
        any::<bool>(),
    )
        .prop_map(
            |(s, workers, demand, (in_flight, queued, waiting), cache, removable)| ExecutorNode {
                node: NodeId::new(format!("n{cache}-{s}-{workers}")),
                state: [NodeState::Starting, NodeState::Active, NodeState::Draining][s as usize],
                workers,
                demand,
                in_flight,
                queued,
                waiting_schedules: waiting,
                cache_bytes: cache,
                removable,
            },
        )
}

/// A phase of random length: one random observation, seen every `dt` ms (1 to 3 ticks)
/// `repeat` times, so that loads last long enough for scale-downs to be possible.
fn any_phase() -> impl Strategy<Value = (Observation, u64, u32)> {
    (
        prop::collection::vec(any_node(), 0..7),
        0u32..3,
        1u64..300,
        1u32..60,
        0u32..2,
    )
        .prop_map(|(executors, launches_pending, dt, repeat, calls_waiting)| {
            let obs = Observation {
                executors,
                launches_pending,
                calls_waiting,
            };
            (obs, dt, repeat)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever it is shown (a launch from zero ignores the cooldown): a drain only takes an active, idle, removable node holding no
    /// schedules, with nothing starting, draining or pending; no launch goes beyond the
    /// maximum; actions are a cooldown apart; a drain comes a downscale delay after the
    /// previous action and a stable window after the start.
    #[test]
    fn decisions_keep_every_rule(phases in prop::collection::vec(any_phase(), 1..20)) {
        let t0 = Instant::now();
        let c = AutoscaleConfig { max_executors: 6, ..cfg() };
        let mut p = Policy::new(c.clone(), t0);
        let mut now = t0;
        let mut last: Option<Instant> = None;
        let steps = phases.iter().flat_map(|(obs, dt, n)| (0..*n).map(move |_| (obs, *dt)));
        for (obs, dt) in steps {
            now += ms(dt);
            let Some(d) = p.tick(obs, now).decision else { continue };
            if let Some(l) = last.filter(|_| d.reason != Reason::FromZero) {
                prop_assert!(now - l >= c.cooldown());
            }
            let n = &d.numbers;
            match &d.action {
                Action::Launch { count } => {
                    prop_assert!(*count > 0);
                    prop_assert!(n.counted + n.draining + count <= 6, "{d:?}");
                }
                Action::Drain { node } => {
                    let v = obs.executors.iter().find(|e| &e.node == node).expect("victim seen");
                    prop_assert!(v.state == NodeState::Active && v.removable && !v.busy());
                    prop_assert_eq!((n.starting, n.draining, n.pending), (0, 0, 0));
                    prop_assert!(n.counted > c.min_executors as u32);
                    prop_assert!(now - t0 >= c.stable_window());
                    prop_assert!(last.is_none_or(|l| now - l >= c.downscale_delay()));
                }
            }
            last = Some(now);
        }
    }

    /// A simulated cluster under a constant load never flaps: its actions all go one way
    /// (launches, or drains), whatever the load and the starting size.
    #[test]
    fn a_constant_load_moves_the_count_one_way(demand in 0.0f64..20.0, start in 1usize..7) {
        let t0 = Instant::now();
        let mut p = Policy::new(cfg(), t0);
        let mut nodes = start;
        let (mut launched, mut drained) = (false, false);
        for i in 0..400u32 {
            if let Some(d) = p.tick(&active(nodes, demand), t0 + ms(100) * i).decision {
                match d.action {
                    Action::Launch { count } => { nodes += count as usize; launched = true }
                    Action::Drain { .. } => { nodes -= 1; drained = true }
                }
            }
        }
        prop_assert!(!(launched && drained), "demand {demand}, start {start}");
    }
}
