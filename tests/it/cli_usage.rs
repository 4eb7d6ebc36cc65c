//! What a newcomer sees from the `cloudburst` binary when a command line or config file is
//! wrong: one line naming the problem with a hint, and exit code 2.

use std::process::{Command, Output};

fn cloudburst(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudburst"))
        .args(args)
        .env_remove("CLOUDBURST_CLUSTER_SECRET")
        .env_remove("CLOUDBURST_TOKEN")
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .expect("run cloudburst")
}

/// Exit code 2 and exactly one line on stderr, returned.
fn usage_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    assert!(out.stdout.is_empty());
    stderr.trim_end().to_string()
}

#[test]
fn a_bad_flag_is_one_line_with_a_hint() {
    let line = usage_error(&cloudburst(&["local", "--bogus"], &[]));
    assert_eq!(
        line,
        "error: unexpected argument '--bogus' found (see 'cloudburst local --help')"
    );
    let line = usage_error(&cloudburst(&["node", "--roles", "kvs,cook"], &[]));
    assert!(line.contains("unknown role `cook`"), "{line}");
}

#[test]
fn help_still_prints_in_full() {
    let out = cloudburst(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: cloudburst <COMMAND>"), "{text}");
}

#[test]
fn a_dumped_config_with_a_redacted_secret_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dumped.toml");
    let env = [("CLOUDBURST_CLUSTER_SECRET", "s3cret")];
    let out = cloudburst(&["node", "--dump-config"], &env);
    assert!(out.status.success());
    let dumped = String::from_utf8_lossy(&out.stdout);
    assert!(dumped.contains("cluster_secret = \"<redacted>\"") && !dumped.contains("s3cret"));
    std::fs::write(&file, dumped.as_bytes()).expect("write");
    let path = file.to_str().expect("utf-8 path");
    let line = usage_error(&cloudburst(
        &["node", "--config", path, "--dump-config"],
        &[],
    ));
    assert!(
        line.contains("node.cluster_secret") && line.contains("--dump-config"),
        "{line}"
    );
    // The real secret given beside the file wins over the placeholder.
    let out = cloudburst(&["node", "--config", path, "--dump-config"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn local_plays_every_role_the_monitor_included() {
    let out = cloudburst(&["local", "--dump-config", "--max-executors", "3"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"gateway\"") && text.contains("\"monitor\""),
        "{text}"
    );
    for key in [
        "max_executors = 3",
        "target_utilisation",
        "downscale_delay_ms",
    ] {
        assert!(text.contains(key), "{key} in the dump: {text}");
    }
}

#[test]
fn secrets_on_the_command_line_are_refused() {
    for (flag, env) in [
        ("--token", "CLOUDBURST_TOKEN"),
        ("--cluster-secret", "CLOUDBURST_CLUSTER_SECRET"),
    ] {
        let line = usage_error(&cloudburst(&["node", flag, "s3cret", "--dump-config"], &[]));
        assert!(line.contains(env), "{line}");
        assert!(!line.contains("s3cret"), "the secret is not echoed: {line}");
    }
}

#[test]
fn secrets_come_from_files_or_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n").expect("write");
    let path = file.to_str().expect("utf-8 path");
    let env = [("CLOUDBURST_CLUSTER_SECRET", "s3cret")];
    let out = cloudburst(&["node", "--token-file", path, "--dump-config"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("token = \"<redacted>\""), "{text}");
}

#[test]
fn a_gateway_other_machines_can_reach_needs_a_token() {
    let env = [("CLOUDBURST_CLUSTER_SECRET", "s3cret")];
    let public = [
        "node",
        "--allow-non-loopback",
        "--client-listen",
        "0.0.0.0:0",
        "--dump-config",
    ];
    let line = usage_error(&cloudburst(&public, &env));
    assert!(line.contains("needs a client token"), "{line}");
    let mut no_auth = public.to_vec();
    no_auth.push("--no-auth");
    let line = usage_error(&cloudburst(&no_auth, &env));
    assert!(line.contains("loopback listeners only"), "{line}");
    let with_token = [env[0], ("CLOUDBURST_TOKEN", "t0ken")];
    assert!(cloudburst(&public, &with_token).status.success());
}
