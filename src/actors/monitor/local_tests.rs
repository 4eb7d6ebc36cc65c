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
