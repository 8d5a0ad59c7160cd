//! CPU time and memory of a process, read from Linux's /proc, so the bench
//! can say what the server (given `--server-pid`) and the bench itself
//! spent. Every read is best effort: a missing or unreadable file means
//! "not measured", never an error that stops the run.

use std::time::Duration;

/// Clock ticks per second in /proc/PID/stat. Linux reports CPU time in
/// USER_HZ units, which are 100 on every architecture it runs on; asking
/// sysconf would need libc for one constant.
const TICKS_PER_SECOND: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident memory now (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_kib: u64,
}

fn dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".into(),
    }
}

/// A sample of `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let dir = dir(pid);
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    Some(Sample { cpu: cpu(&stat)?, rss_kib: kib(&status, "VmRSS:")?, peak_kib: kib(&status, "VmHWM:")? })
}

/// utime + stime from /proc/PID/stat. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last ')'.
fn cpu(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

fn kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Resets the peak-memory mark (VmHWM) to the current resident size, so a
/// run's peak is its own and not that of an earlier run against the same
/// server. Needs permission to write the process's clear_refs (same user
/// or root); returns whether it worked.
pub fn reset_peak(pid: Option<u32>) -> bool {
    std::fs::write(format!("{}/clear_refs", dir(pid)), "5").is_ok()
}

/// This process's soft limit on open files (each session needs a socket).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1000 10";
        assert_eq!(cpu(stat), Some(Duration::from_secs(3)));
        assert_eq!(cpu("garbage"), None);
        let status = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n";
        assert_eq!(kib(status, "VmRSS:"), Some(1024));
        assert_eq!(kib(status, "VmHWM:"), Some(2048));
    }

    #[test]
    fn samples_this_process() {
        if cfg!(target_os = "linux") {
            let s = sample(None).expect("/proc/self");
            assert!(s.rss_kib > 0 && s.peak_kib >= s.rss_kib);
        }
    }
}
