//! Unit tests of the scheduler core: placement, version check, schedules.

use super::*;
use crate::actors::scheduler::dag::plan;
use crate::ids::Generation;
use crate::net::ServiceId;
use crate::protocol::DagSpec;
use crate::pyrt::PyValue;
use rand::rngs::StdRng;
use rand::SeedableRng;

const STALE: Duration = Duration::from_secs(3);

fn node(n: &str) -> NodeRef {
    NodeRef {
        id: NodeId::new(n),
        generation: Generation(1),
    }
}

fn status(n: &str, utilisation: f64) -> ExecutorStatus {
    ExecutorStatus {
        executor: ActorRef::new(node(n), ServiceId::Executor, 0),
        utilisation,
        queued: 0,
        workers: 2,
        python: "3.11".into(),
        cloudpickle: "3.0.0".into(),
        load: Default::default(),
    }
}

fn core(execs: &[(&str, f64)], now: Instant) -> SchedulerCore {
    let mut c = SchedulerCore::new(0.9, STALE);
    c.set_live(execs.iter().map(|(n, _)| node(n)).collect());
    for (n, u) in execs {
        c.on_status(status(n, *u), now);
    }
    c
}

#[test]
fn placement_prefers_cached_keys_then_skips_busy_executors() {
    let now = Instant::now();
    let mut c = core(&[("a", 0.0), ("b", 0.0), ("c", 0.0)], now);
    let (k1, k2) = (Key::new("k1"), Key::new("k2"));
    c.on_cache_keys(node("b"), vec![k1.clone()]);
    c.on_cache_keys(node("c"), vec![k1.clone(), k2.clone()]);
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..20 {
        let e = c.place(&[&k1, &k2], now, &mut rng).expect("placed");
        assert_eq!(e.node.id.as_str(), "c");
        let e = c.place(&[&k1], now, &mut rng).expect("placed");
        assert_ne!(e.node.id.as_str(), "a");
    }
    c.on_status(status("c", 1.0), now);
    let e = c.place(&[&k1, &k2], now, &mut rng).expect("placed");
    assert_eq!(e.node.id.as_str(), "b", "c is above the threshold");
    // all above: still placed, by locality
    let c = core(&[("a", 1.0), ("b", 1.0)], now);
    assert!(c.place(&[], now, &mut rng).is_ok());
}

#[test]
fn after_cached_keys_an_executor_holding_the_function_warm_is_preferred() {
    let now = Instant::now();
    let mut c = core(&[("a", 0.0), ("b", 0.0), ("c", 0.0)], now);
    let mut warm = status("b", 0.0);
    warm.load.warm = vec!["f".into(), "g".into()];
    c.on_status(warm, now);
    let k = Key::new("k");
    c.on_cache_keys(node("c"), vec![k.clone()]);
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..20 {
        let on = |f, refs: &[&Key], rng: &mut StdRng| {
            c.place_for(Some(f), refs, now, rng)
                .expect("placed")
                .node
                .id
        };
        assert_eq!(on("f", &[], &mut rng).as_str(), "b", "warm wins a tie");
        assert_eq!(
            on("f", &[&k], &mut rng).as_str(),
            "c",
            "locality comes first"
        );
    }
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        seen.insert(
            c.place_for(Some("h"), &[], now, &mut rng)
                .expect("placed")
                .node
                .id,
        );
    }
    assert_eq!(seen.len(), 3, "a function warm nowhere goes anywhere");
}

#[test]
fn ties_are_broken_at_random_and_stale_executors_are_skipped() {
    let now = Instant::now();
    let c = core(&[("a", 0.0), ("b", 0.5), ("c", 0.2)], now);
    let mut rng = StdRng::seed_from_u64(1);
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        seen.insert(c.place(&[], now, &mut rng).expect("placed").node.id);
    }
    assert_eq!(seen.len(), 3, "every tied executor is chosen sometimes");
    let later = now + STALE + Duration::from_millis(1);
    assert_eq!(c.executor_count(later), 0);
    assert_eq!(
        c.place(&[], later, &mut rng),
        Err(FunctionError::NoExecutors)
    );
}

#[test]
fn view_changes_forget_dead_executors() {
    let now = Instant::now();
    let mut c = core(&[("a", 0.0), ("b", 0.0)], now);
    c.set_live([node("a")].into_iter().collect());
    assert_eq!(c.executor_count(now), 1);
    let mut rng = StdRng::seed_from_u64(3);
    assert_eq!(
        c.place(&[], now, &mut rng).expect("a").node.id.as_str(),
        "a"
    );
}

fn node_gen(n: &str, generation: u64) -> NodeRef {
    NodeRef {
        id: NodeId::new(n),
        generation: Generation(generation),
    }
}

fn status_of(node: NodeRef) -> ExecutorStatus {
    ExecutorStatus {
        executor: ActorRef::new(node, ServiceId::Executor, 0),
        ..status("unused", 0.0)
    }
}

#[test]
fn reports_of_nodes_the_view_does_not_hold_live_are_ignored() {
    let now = Instant::now();
    let mut c = core(&[("a", 0.0), ("b", 0.0)], now);
    let k = Key::new("k");
    // b left; the status and cache report it sent just before arrive after the view said so.
    c.set_live([node("a")].into_iter().collect());
    c.on_status(status("b", 0.0), now);
    c.on_cache_keys(node("b"), vec![k.clone()]);
    assert_eq!(c.executor_count(now), 1, "b is placeable again");
    assert!(c.holders_of(&k).is_empty());
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..50 {
        let e = c.place(&[&k], now, &mut rng).expect("placed");
        assert_eq!(e.node.id.as_str(), "a", "placed on b, which left");
    }
    // b restarts as generation 2: taken once the view has it, not before.
    let b2 = node_gen("b", 2);
    c.on_status(status_of(b2.clone()), now);
    assert_eq!(c.executor_count(now), 1);
    c.set_live([node("a"), b2.clone()].into_iter().collect());
    c.on_status(status_of(b2.clone()), now);
    assert_eq!(c.executor_count(now), 2);
    // A late report of generation 1 does not replace generation 2.
    c.on_status(status("b", 0.0), now);
    let gens: Vec<_> = c
        .executors(now)
        .into_iter()
        .map(|s| s.executor.node)
        .collect();
    assert_eq!(gens, vec![node("a"), b2]);
}

#[test]
fn version_check() {
    let now = Instant::now();
    let mut empty = SchedulerCore::new(0.9, STALE);
    assert_eq!(
        empty.check_environment("f", "3.11", "3.0.0", None, now),
        Err(FunctionError::NoExecutors)
    );
    let mut c = core(&[("a", 0.0)], now);
    assert!(c.check_environment("f", "3.11", "3.0.0", None, now).is_ok());
    let e = c
        .check_environment("f", "3.12", "3.0.0", None, now)
        .unwrap_err();
    assert_eq!(e.code(), "version_mismatch");
    assert!(e.to_string().contains("3.12"), "{e}");
    assert!(c
        .check_environment("f", "3.11", "2.2.1", Some("3.11"), now)
        .is_err());
}

#[test]
fn with_no_executor_a_registration_is_checked_against_what_is_known_and_later() {
    let now = Instant::now();
    let mut c = SchedulerCore::new(0.9, STALE);
    c.set_live([node("a"), node("b")].into_iter().collect());
    // Nothing seen yet: the Python the workers embed decides; cloudpickle waits.
    let e = c.check_environment("f", "3.12", "3.0.0", Some("3.11"), now);
    assert_eq!(e.map_err(|e| e.code().as_str()), Err("version_mismatch"));
    assert!(c
        .check_environment("f", "3.11", "3.0.0", Some("3.11"), now)
        .is_ok());
    assert!(c
        .check_environment("g", "3.11", "2.0.0", Some("3.11"), now)
        .is_ok());
    // The first executor runs cloudpickle 3.0.0: `g` is reported, `f` is not.
    let mut s = status("a", 0.0);
    s.cloudpickle = "3.0.0".into();
    let found = c.on_status(s, now);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].function, "g");
    assert_eq!(found[0].registered.1, "2.0.0");
    // It stopped: registrations are checked against what it reported.
    let later = now + STALE * 2;
    assert!(c
        .check_environment("h", "3.11", "3.0.0", Some("3.11"), later)
        .is_ok());
    let e = c.check_environment("h", "3.11", "2.0.0", Some("3.11"), later);
    assert_eq!(e.map_err(|e| e.code().as_str()), Err("version_mismatch"));
    assert_eq!(
        c.on_status(status("b", 0.0), later),
        vec![],
        "reported once"
    );
}

#[test]
fn schedules_carry_edges_args_and_reply() {
    let now = Instant::now();
    let c = core(&[("a", 0.0)], now);
    let spec = DagSpec {
        name: "d".into(),
        functions: vec!["x".into(), "y".into(), "z".into()],
        connections: vec![("x".into(), "z".into()), ("y".into(), "z".into())],
    };
    let dag = plan(&spec).expect("valid");
    let metas = (0..3)
        .map(|i| FunctionMeta {
            hash: i,
            timeout_ms: None,
            retries: 2,
            retry_errors: false,
            class: false,
        })
        .collect();
    let plan = CallPlan {
        dag,
        functions: metas,
        is_dag: true,
    };
    let v = Arg::Value(PyValue::Packed(bytes::Bytes::from_static(b"1")));
    let req = CallRequest {
        call: CallId(9),
        args: [("y".to_string(), vec![v.clone()])].into_iter().collect(),
        consistency: Consistency::Lww,
        reply: Reply {
            push_to: None,
            store_at: Some(Key::new("r")),
        },
        started_us: 5,
    };
    let mut rng = StdRng::seed_from_u64(3);
    let me = ActorRef::new(node("s"), ServiceId::Scheduler, 0);
    let out = c
        .schedules(&plan, &req, 2, Some(&me), now, &mut rng)
        .expect("scheduled");
    assert!(out
        .iter()
        .all(|(_, s)| s.attempt == 2 && s.scheduler.as_ref() == Some(&me)));
    assert_eq!(out.len(), 3);
    let (_, z) = &out[2];
    assert_eq!(z.upstream, vec!["x".to_string(), "y".to_string()]);
    assert!(z.sink && !out[0].1.sink);
    assert_eq!(out[1].1.args, vec![v]);
    assert_eq!(out[0].1.downstream[0].function, "z");
    assert_eq!((z.hash, z.dag.as_deref()), (2, Some("d")));
    assert!(
        out.iter().all(|(_, s)| s.home.is_none()),
        "no home under LWW"
    );
    let mut rr = req.clone();
    rr.consistency = Consistency::RepeatableRead;
    let out = c
        .schedules(&plan, &rr, 0, None, now, &mut rng)
        .expect("scheduled");
    let homes: Vec<_> = out.iter().map(|(_, s)| s.home.clone()).collect();
    assert_eq!(
        homes,
        vec![Some(node("a")); 3],
        "one home, the first source's node"
    );
    let mut bad = req;
    bad.args.insert("nope".into(), vec![]);
    let e = c
        .schedules(&plan, &bad, 0, None, now, &mut rng)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_request");
}

#[test]
fn draining_executors_get_no_new_work() {
    let now = Instant::now();
    let mut c = core(&[("a", 0.0), ("b", 0.0)], now);
    let k = Key::new("k");
    c.on_cache_keys(node("b"), vec![k.clone()]);
    c.set_draining([NodeId::new("b")].into_iter().collect());
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..20 {
        let e = c.place(&[&k], now, &mut rng).expect("placed");
        assert_eq!(
            e.node.id.as_str(),
            "a",
            "locality does not override draining"
        );
    }
    // Its status reports keep coming while it drains: still not placed on.
    c.on_status(status("b", 0.0), now);
    assert_eq!(c.executor_count(now), 1);
    c.set_draining([NodeId::new("a"), NodeId::new("b")].into_iter().collect());
    assert!(matches!(
        c.place(&[], now, &mut rng),
        Err(FunctionError::NoExecutors)
    ));
}

#[test]
fn a_departed_or_draining_executor_is_not_brought_back_by_a_late_status() {
    let now = Instant::now();
    let mut c = core(&[("a", 0.0), ("b", 0.0)], now);
    let mut rng = StdRng::seed_from_u64(3);
    // `b` left: the view drops it, then its last status (sent before it left) arrives.
    c.set_live([node("a")].into_iter().collect());
    c.on_status(status("b", 0.0), now);
    // `a` says it drains before the view does.
    let mut draining = status("a", 0.0);
    draining.load.state = NodeState::Draining;
    c.on_status(draining, now);
    assert_eq!(c.place(&[], now, &mut rng), Err(FunctionError::NoExecutors));
    assert!(!c.any_executor(now));
    // `b` restarted (a new generation) is placed on again once the view holds it.
    let mut again = status("b", 0.0);
    again.executor.node.generation = Generation(2);
    c.set_live(
        [node("a"), again.executor.node.clone()]
            .into_iter()
            .collect(),
    );
    c.on_status(again, now);
    assert_eq!(
        c.place(&[], now, &mut rng)
            .expect("placed")
            .node
            .id
            .as_str(),
        "b"
    );
}
