//! Checking a Python environment chosen for the executors (`executor.python`, `--python`)
//! before any worker starts: a wrong one would otherwise fail in every worker with a less
//! helpful message, or start and crash on the first function pickled for another version.

use super::PyRuntimeError;
use std::path::Path;
use std::time::Duration;

/// The `major.minor` of the libpython the workers embed.
pub const EMBEDDED_PYTHON: &str = env!("CLOUDBURST_BUILD_PYTHON_VERSION");

/// How long the chosen program may take to report its version (a cold start of Python and
/// the import of cloudpickle on a loaded machine).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Printed by the chosen program: its `major.minor`, then cloudpickle's version or nothing,
/// then msgpack's version or nothing (workers encode values with it).
const PROBE_SCRIPT: &str = "import sys\nprint('%d.%d' % sys.version_info[:2])\nfor m in ('cloudpickle', 'msgpack'):\n    try:\n        print(__import__(m).version if m == 'msgpack' else __import__(m).__version__)\n    except ImportError:\n        print('')\n";

/// What the chosen program reported.
#[derive(Debug, PartialEq, Eq)]
pub struct Probed {
    /// `major.minor`.
    pub python: String,
    /// cloudpickle's version; `None` when it is not installed.
    pub cloudpickle: Option<String>,
    /// Whether msgpack is installed.
    pub msgpack: bool,
}

/// Run `program` once and check it can host the workers: it runs, its Python is
/// [`EMBEDDED_PYTHON`], and it has cloudpickle.
pub async fn check(program: &Path) -> Result<Probed, PyRuntimeError> {
    let bad = |why: String| PyRuntimeError::Environment {
        python: program.display().to_string(),
        why,
    };
    let run = tokio::process::Command::new(program)
        .args(["-I", "-c", PROBE_SCRIPT])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Err(_) => return Err(bad(format!("it did not answer in {PROBE_TIMEOUT:?}"))),
        Ok(Err(e)) => return Err(bad(format!("it cannot be run: {e}"))),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(bad(format!("it failed ({}): {}", out.status, err.trim())));
    }
    let probed = parse(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| bad("it printed no Python version".into()))?;
    verdict(&probed).map_err(bad)?;
    Ok(probed)
}

fn parse(stdout: &str) -> Option<Probed> {
    let mut lines = stdout.lines().map(str::trim);
    let python = lines.next().filter(|v| !v.is_empty())?.to_string();
    let cloudpickle = lines.next().filter(|v| !v.is_empty()).map(str::to_string);
    let msgpack = lines.next().is_some_and(|v| !v.is_empty());
    Some(Probed {
        python,
        cloudpickle,
        msgpack,
    })
}

/// Why `probed` cannot host the workers, if it cannot.
fn verdict(probed: &Probed) -> Result<(), String> {
    if probed.python != EMBEDDED_PYTHON {
        return Err(format!(
            "it runs Python {}, but cloudburst embeds Python {EMBEDDED_PYTHON}: make the \
             environment with python{EMBEDDED_PYTHON} -m venv",
            probed.python
        ));
    }
    if probed.cloudpickle.is_none() {
        return Err(
            "it has no cloudpickle: install the version your clients use \
             (PATH -m pip install cloudpickle==VERSION)"
                .into(),
        );
    }
    if !probed.msgpack {
        return Err("it has no msgpack: install it (PATH -m pip install msgpack)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_and_verdicts() {
        let good = parse(&format!("{EMBEDDED_PYTHON}\n3.1.1\n(1, 1, 0)\n")).expect("parses");
        assert_eq!(good.cloudpickle.as_deref(), Some("3.1.1"));
        assert_eq!(verdict(&good), Ok(()));
        let other = parse("2.7\n3.1.1\n").expect("parses");
        assert!(verdict(&other).expect_err("refused").contains("Python 2.7"));
        let bare = parse(&format!("{EMBEDDED_PYTHON}\n\n")).expect("parses");
        assert!(verdict(&bare)
            .expect_err("refused")
            .contains("no cloudpickle"));
        let no_msgpack = parse(&format!("{EMBEDDED_PYTHON}\n3.1.1\n\n")).expect("parses");
        assert!(verdict(&no_msgpack)
            .expect_err("refused")
            .contains("no msgpack"));
        assert_eq!(parse(""), None);
    }

    #[tokio::test]
    async fn a_missing_program_is_refused_by_name() {
        let e = check(Path::new("/nonexistent/bin/python3"))
            .await
            .expect_err("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/bin/python3") && msg.contains("cannot be run"),
            "{msg}"
        );
    }
}
