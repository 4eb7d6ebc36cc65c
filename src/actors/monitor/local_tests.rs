use super::*;
use std::os::unix::fs::PermissionsExt;

fn config(exe: &str, max: usize) -> Config {
    let mut c = Config::default();
    c.node.cluster_secret = "s3cret-of-the-cluster".into();
    c.node.roles = [Role::Executor, Role::Monitor, Role::Gateway]
        .into_iter()
        .collect();
    c.node.data_dir = Some("/nonexistent/parent".into());
    c.executor.worker_exe = Some(exe.into());
    c.autoscale.max_executors = max;
    c
}

fn join() -> SocketAddr {
    "127.0.0.1:7100".parse().expect("addr")
}

#[test]
fn the_child_config_is_a_loopback_executor_that_joins_and_holds_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = LocalProvider::new(&config("/bin/false", 2), join(), dir.path()).expect("provider");
    let text = std::fs::read_to_string(&p.config_file).expect("config file");
    assert!(!text.contains("s3cret"), "the secret stays out of the file");
    let mode = std::fs::metadata(&p.config_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "only this user reads the child config");
    let c = Config::from_toml(&text).expect("the child can read it");
    assert_eq!(c.node.roles, [Role::Executor].into_iter().collect());
    assert!(c.node.listen.ip().is_loopback() && c.node.listen.port() == 0);
    assert_eq!(
        (c.node.join, c.node.data_dir),
        (vec![join().to_string()], None)
    );
}

#[test]
fn launches_beyond_the_limit_are_refused_and_exited_children_are_reaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = LocalProvider::new(&config("/bin/false", 2), join(), dir.path()).expect("provider");
    assert!(matches!(
        p.launch(NodeKind::Executor, 3, &[]),
        Err(ProviderError::AtLimit { asked: 3, limit: 2 })
    ));
    let ids = p.launch(NodeKind::Executor, 2, &[]).expect("launched");
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert!(
        p.launch(NodeKind::Executor, 1, &[]).is_err(),
        "two children run or wait to be reaped: at the limit"
    );
    // /bin/false exits at once: the provider reports it ended until it is terminated.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.list().iter().any(|n| n.running) {
        assert!(Instant::now() < deadline, "children did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(p.list().len(), 2);
    for id in &ids {
        p.terminate(id).expect("terminate");
    }
    assert!(p.list().is_empty(), "terminated children are reaped");
    assert!(p.log_path(&ids[0]).exists(), "each child has its log file");
}

#[test]
fn kvs_children_run_a_kvs_only_config_under_their_own_limit_and_list_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config("/bin/false", 1);
    cfg.kvs_autoscale.max_kvs = 2;
    let mut p = LocalProvider::new(&cfg, join(), dir.path()).expect("provider");
    let text = std::fs::read_to_string(&p.kvs_config_file).expect("kvs config file");
    assert!(!text.contains("s3cret"), "the secret stays out of the file");
    let c = Config::from_toml(&text).expect("the child can read it");
    assert_eq!(c.node.roles, [Role::Kvs].into_iter().collect());
    assert_eq!(c.node.data_dir, None);
    // The executor limit (1) does not bound KVS nodes, and theirs (2) not executors.
    let kvs = p.launch(NodeKind::Kvs, 2, &[]).expect("kvs nodes");
    assert!(matches!(
        p.launch(NodeKind::Kvs, 1, &[]),
        Err(ProviderError::AtLimit { asked: 1, limit: 2 })
    ));
    let exec = p
        .launch(NodeKind::Executor, 1, &[])
        .expect("an executor node");
    let ids = |l: Vec<super::ProvidedNode>| l.into_iter().map(|n| n.node).collect::<Vec<_>>();
    assert_eq!(ids(p.list_of(NodeKind::Kvs)), kvs);
    assert_eq!(ids(p.list_of(NodeKind::Executor)), exec);
    assert_eq!(p.list().len(), 3);
    for id in kvs.iter().chain(&exec) {
        p.terminate(id).expect("terminate");
    }
}

#[test]
fn a_launch_hands_over_a_ready_standby_with_its_warm_functions_and_another_is_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let got = dir.path().join("launch-lines");
    // A stand-in for `cloudburst node --standby`: writes its launch line, then waits.
    let exe = dir.path().join("standby.sh");
    let script = format!(
        "#!/bin/sh\nread line\necho \"$line\" >> {}\nexec sleep 30\n",
        got.display()
    );
    std::fs::write(&exe, script).expect("script");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let mut c = config(&exe.display().to_string(), 2);
    c.autoscale.standby_executors = 1;
    let mut p = LocalProvider::new(&c, join(), dir.path()).expect("provider");
    p.keep_standbys(true);
    assert!(p.list().is_empty(), "a standby is not a launched node");
    assert_eq!(p.standbys.len(), 1);
    let standby = p.standbys[0].0.clone();
    let ids = p
        .launch(NodeKind::Executor, 2, &["f".into()])
        .expect("launched");
    assert_eq!(ids[0], standby, "the ready standby goes first");
    assert_eq!(p.list().len(), 2);
    assert_eq!(p.standbys.len(), 1, "another standby is started");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = std::fs::read_to_string(&got).unwrap_or_default();
        if lines.lines().count() == 2 {
            assert!(lines.lines().all(|l| l == "go [\"f\"]"), "{lines}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "launch lines not read: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    p.keep_standbys(false);
    assert!(p.standbys.is_empty(), "a monitor that stands by keeps none");
}
