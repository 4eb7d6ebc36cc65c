use super::*;
use crate::ids::Generation;
use crate::net::membership::{Member, MemberState};
use crate::net::{ActorRef, ServiceId};
use crate::protocol::ExecutorLoad;

fn node(id: &str) -> NodeRef {
    NodeRef {
        id: NodeId::new(id),
        generation: Generation(1),
    }
}

fn member(id: &str, roles: &[Role], state: MemberState, draining: bool) -> Member {
    Member {
        node: node(id),
        addr: "127.0.0.1:1".parse().expect("addr"),
        roles: roles.iter().copied().collect(),
        state,
        kvs_shards: 0,
        draining,
    }
}

fn view(members: Vec<Member>) -> View {
    members.into_iter().collect()
}

fn status(id: &str, demand: f64, state: protocol::NodeState) -> ExecutorStatus {
    ExecutorStatus {
        executor: ActorRef::new(node(id), ServiceId::Executor, 0),
        utilisation: 0.0,
        queued: 1,
        workers: 2,
        python: "3.11".into(),
        cloudpickle: "3".into(),
        load: ExecutorLoad {
            state,
            demand,
            in_flight: 3,
            held: 4,
            cache_bytes: 5,
            ..ExecutorLoad::default()
        },
    }
}

#[test]
fn the_lowest_live_serving_monitor_acts() {
    let m = [Role::Monitor];
    let v = view(vec![
        member("a", &m, MemberState::Dead, false),
        member("b", &m, MemberState::Alive, true),
        member("c", &m, MemberState::Suspect, false),
        member("d", &m, MemberState::Alive, false),
        member("0", &[Role::Executor], MemberState::Alive, false),
    ]);
    let acts: Vec<&str> = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|id| acting(&v, &node(id)))
        .collect();
    assert_eq!(acts, vec!["c"], "dead and draining monitors stand aside");
    assert!(!acting(&view(vec![]), &node("a")));
}

#[test]
fn states_follow_the_view_the_reports_and_the_drain_requests() {
    let e = [Role::Executor];
    let alive = MemberState::Alive;
    let v = view(vec![
        member("new", &e, alive, false),
        member("busy", &e, alive, false),
        member("self-draining", &e, alive, false),
        member("view-draining", &e, alive, true),
        member("asked", &e, alive, false),
        member("new-theirs", &e, alive, false),
        member("stale", &e, alive, false),
        member("gone", &e, MemberState::Left, false),
        member("kvs", &[Role::Kvs], alive, false),
    ]);
    let t0 = Instant::now();
    let now = t0 + REPORT_FRESH;
    let mut r = Reports::default();
    r.record(status("stale", 9.0, protocol::NodeState::Active), t0);
    for id in ["busy", "view-draining", "asked", "gone"] {
        r.record(status(id, 1.5, protocol::NodeState::Active), now);
    }
    // Launched by another monitor's provider (a fail-over's predecessor): removable too.
    let mut theirs = status("new-theirs", 0.0, protocol::NodeState::Active);
    theirs.load.launched = true;
    r.record(theirs, now);
    r.record(
        status("self-draining", 1.0, protocol::NodeState::Draining),
        now,
    );
    let provided: BTreeSet<NodeId> = [NodeId::new("busy")].into_iter().collect();
    let asked: BTreeSet<NodeId> = [NodeId::new("asked")].into_iter().collect();
    let obs = observe(&v, &r, &provided, &asked, 2, 0, now);
    assert_eq!(obs.launches_pending, 2);
    let state = |id: &str| {
        obs.executors
            .iter()
            .find(|e| e.node.as_str() == id)
            .map(|e| e.state)
    };
    assert_eq!(state("new"), Some(NodeState::Starting));
    assert_eq!(
        state("stale"),
        Some(NodeState::Starting),
        "a stale report is no load"
    );
    assert_eq!(state("busy"), Some(NodeState::Active));
    for id in ["self-draining", "view-draining", "asked"] {
        assert_eq!(state(id), Some(NodeState::Draining), "{id}");
    }
    assert_eq!((state("gone"), state("kvs")), (None, None));
    let busy = obs
        .executors
        .iter()
        .find(|e| e.node.as_str() == "busy")
        .expect("busy");
    assert_eq!(
        (busy.workers, busy.demand, busy.in_flight, busy.queued),
        (2, 1.5, 3, 1)
    );
    assert_eq!(
        (busy.waiting_schedules, busy.cache_bytes, busy.removable),
        (4, 5, true)
    );
    let removable: Vec<&str> = obs
        .executors
        .iter()
        .filter(|e| e.removable)
        .map(|e| e.node.as_str())
        .collect();
    assert_eq!(removable, vec!["busy", "new-theirs"]);
}

#[test]
fn a_report_of_an_older_incarnation_is_not_taken() {
    let v = view(vec![member(
        "n",
        &[Role::Executor],
        MemberState::Alive,
        false,
    )]);
    let now = Instant::now();
    let mut r = Reports::default();
    let mut old = status("n", 1.0, protocol::NodeState::Active);
    old.executor.node.generation = Generation(0);
    r.record(old, now);
    let obs = observe(&v, &r, &BTreeSet::new(), &BTreeSet::new(), 0, 0, now);
    assert_eq!(obs.executors[0].state, NodeState::Starting);
}
