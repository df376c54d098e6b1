//! Small facts about this machine and process that the lock records: user, host, pid liveness, time.
//!
//! Everything here is best effort and never fails: a fact that cannot be read becomes a placeholder
//! (`unknown`), because a lock must still be takeable on a machine without `/proc` or `$USER`.

use std::path::Path;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time as an RFC 3339 UTC timestamp (`2026-11-25T07:30:00.123456789Z`).
pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("unknown-time"))
}

/// This machine's host name, from the kernel, `/etc/hostname` or `$HOSTNAME`.
pub(crate) fn hostname() -> String {
    let from_file = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| String::from("unknown-host"))
}

/// The user running this process: `$USER`, `$LOGNAME`, else the name of our uid in `/etc/passwd`.
pub(crate) fn username() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return v.trim().to_owned();
        }
    }
    let Some(uid) = own_uid() else {
        return String::from("unknown");
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let line_uid = fields.nth(1)?;
                (line_uid == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid{uid}"))
}

/// Our real uid as text, from `/proc/self/status` (`Uid:\t0\t0\t0\t0`).
fn own_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1).map(str::to_owned)
}

/// Whether a process id is running on this host, as far as we can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    Dead,
    /// No `/proc` to look in (not Linux, or not mounted).
    Unknown,
}

/// Checks `/proc/<pid>`; a pid of 0 is never a real holder.
pub(crate) fn liveness(pid: u32) -> Liveness {
    if !Path::new("/proc/self").exists() {
        return Liveness::Unknown;
    }
    if pid != 0 && Path::new(&format!("/proc/{pid}")).exists() {
        Liveness::Alive
    } else {
        Liveness::Dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_reaped_child_is_dead() {
        assert_eq!(liveness(std::process::id()), Liveness::Alive);
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn `true`");
        let pid = child.id();
        child.wait().expect("wait for `true`");
        assert_eq!(liveness(pid), Liveness::Dead);
        assert_eq!(liveness(0), Liveness::Dead);
    }

    #[test]
    fn facts_are_never_empty() {
        assert!(!hostname().is_empty());
        assert!(!username().is_empty());
        let now = now_rfc3339();
        assert!(OffsetDateTime::parse(&now, &Rfc3339).is_ok(), "{now}");
    }
}
