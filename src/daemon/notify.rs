//! systemd's service notification protocol (`sd_notify`), for `Type=notify` units: `READY=1`
//! once the daemon runs, `STOPPING=1` when it starts shutting down, and `WATCHDOG=1`
//! heartbeats at half of `WatchdogSec=` while the runtime answers, so systemd restarts a daemon
//! that hangs.
//!
//! The protocol is one datagram per message to the `AF_UNIX` socket named by `NOTIFY_SOCKET`
//! (a path, or `@name` in the abstract namespace). Without `NOTIFY_SOCKET` (not under
//! systemd, or `Type=exec`) every call is a no-op. A send that fails is logged once and never
//! stops the daemon: notification is advisory.
//!
//! The heartbeat is a [`Watchdog`] task on the runner, stopped with polling: a daemon stuck in
//! its shutdown is not kept alive by it.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::credentials::env::Env;
use crate::task::{Label, Next, Task, TaskError};

/// `NOTIFY_SOCKET`: where systemd listens.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// `WATCHDOG_USEC`: the unit's `WatchdogSec=` in microseconds.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// `WATCHDOG_PID`: the process the watchdog is meant for, when set.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Where notifications go, read once from the environment at start.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
    warned: AtomicBool,
}

#[derive(Debug)]
enum Target {
    Path(std::path::PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(Vec<u8>),
}

impl Notifier {
    /// The notifier `env` describes (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`) for the
    /// process `pid`.
    pub fn from_env(env: &dyn Env, pid: u32) -> Notifier {
        let target = env.non_empty(NOTIFY_SOCKET).and_then(|s| {
            if let Some(name) = s.strip_prefix('@') {
                #[cfg(target_os = "linux")]
                return Some(Target::Abstract(name.as_bytes().to_vec()));
                #[cfg(not(target_os = "linux"))]
                return {
                    let _ = name;
                    None
                };
            }
            s.starts_with('/').then(|| Target::Path(s.into()))
        });
        let for_us = env
            .non_empty(WATCHDOG_PID)
            .is_none_or(|p| p.trim().parse::<u32>() == Ok(pid));
        let watchdog = env
            .non_empty(WATCHDOG_USEC)
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us && target.is_some())
            .map(Duration::from_micros);
        Notifier {
            target,
            watchdog,
            warned: AtomicBool::new(false),
        }
    }

    /// Whether systemd asked for notifications.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1`: half the unit's `WatchdogSec=`, as systemd advises.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one notification (`READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=…`).
    pub fn send(&self, message: &str) {
        let Some(target) = &self.target else {
            return;
        };
        let sent = UnixDatagram::unbound().and_then(|socket| match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path),
            #[cfg(target_os = "linux")]
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message.as_bytes(), &addr)
            }
        });
        if let Err(e) = sent
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(error = %e, "Cannot notify systemd (NOTIFY_SOCKET); carrying on without it.");
        }
    }
}

/// Sends `WATCHDOG=1` at once and then every [`Notifier::watchdog_every`].
pub struct Watchdog {
    notifier: Arc<Notifier>,
    every: Duration,
}

impl Watchdog {
    /// The heartbeat systemd asked `notifier` for, if it asked for one.
    pub fn new(notifier: Arc<Notifier>) -> Option<Watchdog> {
        let every = notifier.watchdog_every()?;
        Some(Watchdog { notifier, every })
    }

    /// How often it beats.
    pub fn every(&self) -> Duration {
        self.every
    }
}

impl Task for Watchdog {
    fn label(&self) -> Label {
        Label::new("watchdog")
    }

    async fn step(&mut self) -> Result<Next, TaskError> {
        self.notifier.send("WATCHDOG=1");
        Ok(Next::After(self.every))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::MapEnv;

    #[test]
    fn reads_the_socket_and_the_watchdog_for_this_process_only() {
        let n = Notifier::from_env(&MapEnv::new(), 7);
        assert!(!n.enabled());
        assert_eq!(n.watchdog_every(), None);
        n.send("READY=1"); // a no-op

        let env = MapEnv::new()
            .set(NOTIFY_SOCKET, "/run/systemd/notify")
            .set(WATCHDOG_USEC, "60000000");
        let n = Notifier::from_env(&env, 7);
        assert!(n.enabled());
        assert_eq!(n.watchdog_every(), Some(Duration::from_secs(30)));

        let other = env.clone().set(WATCHDOG_PID, "8");
        assert_eq!(Notifier::from_env(&other, 7).watchdog_every(), None);
        let ours = env.clone().set(WATCHDOG_PID, "7");
        assert!(Notifier::from_env(&ours, 7).watchdog_every().is_some());

        // A relative path is not a socket systemd would name; no watchdog without a socket.
        let bad = MapEnv::new()
            .set(NOTIFY_SOCKET, "relative")
            .set(WATCHDOG_USEC, "1000");
        let n = Notifier::from_env(&bad, 7);
        assert!(!n.enabled());
        assert_eq!(n.watchdog_every(), None);
    }

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let env = MapEnv::new().set(NOTIFY_SOCKET, path.to_str().unwrap());
        let n = Notifier::from_env(&env, 1);
        n.send("READY=1");
        n.send("STATUS=polling");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=polling");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("sasrelay-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let env = MapEnv::new().set(NOTIFY_SOCKET, format!("@{name}"));
        Notifier::from_env(&env, 1).send("WATCHDOG=1");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
