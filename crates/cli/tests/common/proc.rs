//! A child process driven through its standard input and output, for the
//! tests that talk with programs other than udpchat's own (nc, bash, the
//! classic Python clients, zeroconf) and with udpchat in namespaces.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{WAIT, line_channel};

/// A child process whose standard output is read line by line; killed
/// when dropped.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take();
        let lines = line_channel(child.stdout.take().expect("piped"));
        Self { name: name.into(), child, stdin, lines }
    }

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
    }

    /// Waits for an output line containing `text`; panics naming what was
    /// seen instead.
    pub fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("{} never printed {text:?}; it printed {seen:#?}", self.name),
            }
        }
    }

    /// Closes its standard input (end of file for the program).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (at most [`WAIT`]) for it to exit, and returns its output
    /// lines not read yet and whether it succeeded.
    pub fn finish(mut self) -> (Vec<String>, bool) {
        self.stdin = None;
        let deadline = Instant::now() + WAIT;
        let ok = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.success();
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        (lines, ok)
    }
}
