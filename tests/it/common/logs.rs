//! The one tracing subscriber of the test binary (it is process-wide, so every module
//! installs this one): lines go to the test's captured output, shown when a test fails,
//! and into a buffer that tests read to check what was logged (forwarded `print` output).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Install the subscriber (once; later calls do nothing).
pub fn init() {
    buffer();
}

/// Everything logged in this test binary so far.
pub fn text() -> String {
    String::from_utf8_lossy(&buffer().lock().expect("log lock")).into_owned()
}

fn buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(b);
        // `eprint!`, not `stderr()`: the test harness captures it per test.
        eprint!("{}", String::from_utf8_lossy(b));
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
