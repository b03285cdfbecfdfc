//! Leader election and the epoch-fenced checkpoint on PostgreSQL (`sasrelay::ha::postgres`),
//! against a real server: this binary starts its own once (`initdb` into a directory of its
//! own under the temp dir, `postgres` on a free 127.0.0.1 port), as the `postgres` OS user when
//! run as root; the server dies with this process (a parent-death signal), and a directory a
//! killed run left behind is removed by the next. Every test has its own lease name, so they
//! run side by side on the shared tables. A candidate's traffic can be cut by a proxy of its
//! own in front of the server. Timings are those of `ha.rs` (lease 2 s, renew deadline 1.4 s,
//! retry 0.25 s).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sasrelay::ha::LeaseBackend;
use sasrelay::ha::checkpoint::{CheckpointError, CheckpointStore, MAX_CHECKPOINT_BYTES};
use sasrelay::ha::lease::{Elector, Role};

use crate::ha::{Candidate, SLACK, TIMINGS, epoch, is_leader, spawn_candidate, stop_all, until};
use sasrelay::ha::postgres::{PgCoordinator, PgError, PgLease};
use tokio::sync::watch;
use tokio::time::Instant;

/// Each call's bound: under the renew deadline, over a retry (a hung renew is cut by the
/// elector at the deadline, not by this).
const CALL_TIMEOUT: Duration = Duration::from_millis(1200);

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// The server this binary started.
struct Server {
    port: u16,
    /// The CA that signed the server's certificate (for 127.0.0.1 only), and one that did not.
    ca: PathBuf,
    other_ca: PathBuf,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The server, started on first use; a test fails (never passes) without one.
fn the_server() -> &'static Server {
    match SERVER.get_or_init(start_server) {
        Ok(s) => s,
        Err(e) => panic!("no PostgreSQL server for the tests: {e}"),
    }
}

/// The port of the server.
fn server() -> u16 {
    the_server().port
}

/// The newest `/usr/lib/postgresql/N/bin` holding `initdb` and `postgres`.
fn binaries() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no /usr/lib/postgresql/*/bin/initdb: install the Debian package postgresql \
         (apt-get install postgresql; .ci/run does)"
            .to_string()
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// `program` as the user the server runs as (`postgres` when we are root: the server refuses
/// to run as root), killed when the thread that spawns it dies.
fn as_server_user(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if is_root() {
        cmd.args([
            "--reuid",
            "postgres",
            "--regid",
            "postgres",
            "--init-groups",
        ]);
    }
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

/// Removes the directories of earlier runs whose process is gone, killing a server one of them
/// left running (its pid from its own `postmaster.pid`, checked against its data directory).
fn sweep_earlier_runs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sasrelay-pg-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let data = entry.path().join("data");
        if let Some(server) = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        {
            let cmdline = std::fs::read(format!("/proc/{server}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &server.to_string()])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

fn start_server() -> Result<Server, String> {
    let bin = binaries()?;
    let tmp = std::env::temp_dir();
    sweep_earlier_runs(&tmp);
    let dir = tmp.join(format!("sasrelay-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cannot give {} to the postgres user (is there one?)",
                dir.display()
            ));
        }
    }
    certificates(&dir)?;
    let data = dir.join("data");
    let out = as_server_user(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut last = String::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        match run_server(&bin, &dir, &data, port) {
            Ok(()) => {
                return Ok(Server {
                    port,
                    ca: dir.join("ca.pem"),
                    other_ca: dir.join("other-ca.pem"),
                });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A CA, a server certificate it signs for 127.0.0.1 (an IP address SAN, no name), and
/// another CA, made with the `openssl` command (which the `postgresql` package brings).
fn certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl (install the Debian package openssl): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for (name, cn) in [("ca", "sasrelay test CA"), ("other-ca", "another CA")] {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subj];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem]);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(&args)?;
    }
    let mut args = vec!["req", "-subj", "/CN=sasrelay test server"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&args)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("server.ext: {e}"))?;
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])?;
    // The server reads its key only when its own user holds it, unreadable to others.
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.join("server.key"))
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("cannot give server.key to the postgres user".into());
        }
    }
    let status = Command::new("chmod")
        .arg("600")
        .arg(dir.join("server.key"))
        .status()
        .map_err(|e| format!("chmod: {e}"))?;
    if !status.success() {
        return Err("cannot make server.key private".into());
    }
    Ok(())
}

/// Starts `postgres` on `port` from a thread that lives as long as the server (the parent
/// whose death kills it), draining its log; returns once it accepts connections.
fn run_server(bin: &Path, dir: &Path, data: &Path, port: u16) -> Result<(), String> {
    let mut cmd = as_server_user(&bin.join("postgres"));
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "logging_collector=off",
            "-c",
            "ssl=on",
            "-c",
        ])
        .arg(format!(
            "ssl_cert_file={}",
            dir.join("server.pem").display()
        ))
        .arg("-c")
        .arg(format!("ssl_key_file={}", dir.join("server.key").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name(format!("postgres-{port}"))
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("postgres: {e}")));
                    return;
                }
            };
            let stderr = child.stderr.take().expect("piped");
            let mut log = Vec::new();
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ready to accept connections") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Ok(()));
                    }
                } else if ready.is_some() {
                    log.push(line);
                }
            }
            let status = child.wait();
            if let Some(tx) = ready {
                let _ = tx.send(Err(format!(
                    "postgres on port {port} ended ({status:?}) before it was ready: {}",
                    log.join(" | ")
                )));
            }
        })
        .map_err(|e| format!("a thread: {e}"))?;
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| format!("postgres on port {port} not ready within 60 s"))?
}

/// The database as the superuser, plain.
fn url() -> String {
    format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        server()
    )
}

/// A session of the test's own hand (the superuser), driven on the test's runtime.
async fn admin(db: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=postgres dbname={db}", server()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("admin session");
    tokio::spawn(connection);
    client
}

/// A TCP proxy in front of the server, for one candidate: [`Proxy::cut`] closes its
/// connections and refuses new ones (a network cut between that candidate and the database).
pub(crate) struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
}

impl Proxy {
    pub(crate) async fn start() -> Proxy {
        let upstream = server();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = watch::channel(false).0;
        let is_cut = cut.subscribe();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *is_cut.borrow() {
                    continue;
                }
                let mut is_cut = is_cut.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = is_cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    pub(crate) fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    pub(crate) fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// New connections pass again.
    pub(crate) fn uncut(&self) {
        self.cut.send_replace(false);
    }
}

// ---------------------------------------------------------------------------------------------
// Candidates
// ---------------------------------------------------------------------------------------------

fn pg(url: &str, name: &str, who: &str) -> PgCoordinator {
    PgCoordinator::new(url, name, who, TIMINGS.lease, CALL_TIMEOUT).unwrap()
}

fn lease(url: &str, name: &str, who: &str) -> PgLease {
    pg(url, name, who).lease
}

fn run(url: &str, name: &str, who: &str) -> Candidate {
    spawn_candidate(Elector::new(lease(url, name, who), TIMINGS))
}

/// `a` (reaching the server at `a_url`) leading and `b` standing by, having seen `a` hold.
async fn leader_and_standby(a_url: &str, name: &str) -> (Candidate, Candidate) {
    let mut a = run(a_url, name, "a");
    until(&mut a, "a leads", is_leader).await;
    let mut b = run(&url(), name, "b");
    until(
        &mut b,
        "b sees a",
        |r| matches!(r, Role::Standby { holder: Some(h) } if h == "a"),
    )
    .await;
    (a, b)
}

fn deadline(r: &Role) -> Instant {
    match r {
        Role::Leader { deadline, .. } => *deadline,
        Role::Standby { .. } => panic!("not a leader: {r:?}"),
    }
}

/// The lease row `name` as stored: holder and epoch.
/// The lease row `name`: holder and epoch.
/// From now on every checkpoint write that lands is noted (a trigger on sasrelay's table, made
/// here as sasrelay makes it, under its schema lock): [`checkpoint_writes`] lists them.
pub(crate) async fn note_checkpoint_writes() {
    let mut client = admin("postgres").await;
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&0x7361_7372_656c_6179_i64],
    )
    .await
    .unwrap();
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sasrelay_checkpoint (name text PRIMARY KEY, epoch bigint NOT NULL, \
             checkpoint text NOT NULL, written timestamptz NOT NULL);
         CREATE TABLE IF NOT EXISTS test_checkpoint_writes (n bigserial PRIMARY KEY, name text NOT NULL, \
             epoch bigint NOT NULL);
         CREATE OR REPLACE FUNCTION test_note_checkpoint_write() RETURNS trigger AS $$
             BEGIN INSERT INTO test_checkpoint_writes (name, epoch) VALUES (NEW.name, NEW.epoch); RETURN NEW; END
         $$ LANGUAGE plpgsql;
         DROP TRIGGER IF EXISTS test_note_checkpoint_write ON sasrelay_checkpoint;
         CREATE TRIGGER test_note_checkpoint_write AFTER INSERT OR UPDATE ON sasrelay_checkpoint
             FOR EACH ROW EXECUTE FUNCTION test_note_checkpoint_write();",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The epochs of the checkpoint writes of row `name` that landed since
/// [`note_checkpoint_writes`], in order.
pub(crate) async fn checkpoint_writes(name: &str) -> Vec<u64> {
    admin("postgres")
        .await
        .query(
            "SELECT epoch FROM test_checkpoint_writes WHERE name = $1 ORDER BY n",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect()
}

pub(crate) async fn row(name: &str) -> Option<(String, i64)> {
    admin("postgres")
        .await
        .query_opt(
            "SELECT holder, epoch FROM sasrelay_lease WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

// ---------------------------------------------------------------------------------------------
// The lease
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_candidate_leads_and_the_other_takes_over_only_after_the_leader_stopped() {
    let name = "takeover";
    let proxy = Proxy::start().await;
    let mut a = run(&proxy.url(), name, "a");
    let (_, first) = until(&mut a, "a leads the absent row", is_leader).await;
    assert_eq!(epoch(&first), 0, "inserted with no change of holder");
    let mut b = run(&url(), name, "b");
    // b sees a renewing: for three lease durations it never leads.
    let never = tokio::time::timeout(3 * TIMINGS.lease, b.role.wait_for(is_leader))
        .await
        .map(|r| r.map(|role| role.clone()));
    assert!(
        never.is_err(),
        "b took a lease a renews: {:?}",
        b.role.borrow()
    );
    assert!(
        is_leader(&a.role.borrow()),
        "a stopped leading while renewing"
    );

    // Cut a off the database (it still runs): it must stop leading at its deadline, and b take
    // over only once the row expired by the server's clock, with the next epoch.
    let last_renew = deadline(&a.role.borrow()) - TIMINGS.renew_deadline;
    let cut_at = Instant::now();
    proxy.cut();
    let (a_stopped, _) = until(&mut a, "a stops leading", |r| !is_leader(r)).await;
    let (b_leads, role) = until(&mut b, "b takes over", is_leader).await;
    assert!(
        a_stopped < b_leads,
        "b led from {:?} while a still led until {:?}",
        b_leads - cut_at,
        a_stopped - cut_at
    );
    assert!(
        a_stopped - cut_at <= TIMINGS.renew_deadline + TIMINGS.retry.mul_f64(1.2) + SLACK,
        "a led on {:?} after its traffic was cut",
        a_stopped - cut_at
    );
    // The row a renewed last (at the latest when the renew a saw answered began) expires a
    // lease later; b cannot have it before.
    assert!(
        b_leads - last_renew >= TIMINGS.lease,
        "b took the row {:?} after a's last renew began",
        b_leads - last_renew
    );
    let takeover = b_leads - cut_at;
    assert!(
        takeover < TIMINGS.lease + TIMINGS.retry.mul_f64(2.4) + SLACK,
        "takeover took {takeover:?}"
    );
    assert_eq!(epoch(&role), 1, "a change of holder bumps the epoch");
    assert_eq!(row(name).await, Some(("b".to_string(), 1)));
    stop_all([a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_stops_releases_and_the_standby_takes_over_at_its_next_try() {
    let name = "release";
    let (a, mut b) = leader_and_standby(&url(), name).await;
    let stopped = Instant::now();
    a.stop.cancel();
    a.task.await.unwrap();
    assert_eq!(
        row(name).await,
        Some((String::new(), 0)),
        "released, epoch kept"
    );
    let (at, role) = until(&mut b, "b takes the released row", is_leader).await;
    assert!(
        at - stopped < TIMINGS.retry.mul_f64(1.2) + SLACK,
        "a released row waited {:?}, as if it had expired",
        at - stopped
    );
    assert_eq!(epoch(&role), 1);
    stop_all([b]).await;
}

/// Eight candidates, each on its own connection, try at once: on an absent row, a released
/// one and an expired one. Exactly one wins each time, and the row names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_racing_for_a_free_row_never_both_win() {
    let name = "race";
    let url = url();
    let mut electors: Vec<Elector<PgLease>> = Vec::new();
    for i in 0..8 {
        let lease = lease(&url, name, &format!("c{i}"));
        lease.ready().await.unwrap();
        electors.push(Elector::new(lease, TIMINGS));
    }
    let db = admin("postgres").await;
    for (round, epoch_after) in [(0, 0), (1, 6), (2, 10)] {
        match round {
            1 => {
                let n = db
                    .execute(
                        "UPDATE sasrelay_lease SET holder = '', epoch = 5 WHERE name = $1",
                        &[&name],
                    )
                    .await
                    .unwrap();
                assert_eq!(n, 1);
            }
            2 => {
                let n = db
                    .execute(
                        "UPDATE sasrelay_lease SET holder = 'gone', epoch = 9, \
                         expires = clock_timestamp() - interval '1 second' WHERE name = $1",
                        &[&name],
                    )
                    .await
                    .unwrap();
                assert_eq!(n, 1);
            }
            _ => {}
        }
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(electors.len()));
        let mut tries = tokio::task::JoinSet::new();
        for (i, mut e) in std::mem::take(&mut electors).into_iter().enumerate() {
            let start = start.clone();
            tries.spawn(async move {
                start.wait().await;
                let won = e.try_acquire_or_renew().await;
                (i, e, won)
            });
        }
        let mut done: Vec<_> = tries.join_all().await;
        done.sort_by_key(|(i, _, _)| *i);
        let won: Vec<bool> = done
            .iter()
            .map(|(i, _, w)| match w {
                Ok(w) => *w,
                Err(e) => panic!("round {round}: c{i}: {e}"),
            })
            .collect();
        electors = done.into_iter().map(|(_, e, _)| e).collect();
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
        let winner = won.iter().position(|w| *w).unwrap();
        assert_eq!(row(name).await, Some((format!("c{winner}"), epoch_after)));
        assert_eq!(epoch(&electors[winner].role()), epoch_after as u64);
    }
}

/// The leader's renew hangs (another session holds the lease row locked, as a stuck server
/// would): it stops leading at its renew deadline although the call has not returned, the
/// standby takes nothing meanwhile, and once the lock is gone there is one leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renew_hangs_stops_at_its_deadline() {
    let name = "hang";
    let (mut a, mut b) = leader_and_standby(&url(), name).await;
    // A lock on this row alone: the other tests go on with theirs. Dropped with the session if
    // this test fails.
    let locker = admin("postgres").await;
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .query_one(
            "SELECT holder FROM sasrelay_lease WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await
        .unwrap();
    let deadline = deadline(&a.role.borrow());
    let (stopped, _) = until(&mut a, "a stops leading", |r| !is_leader(r)).await;
    // Published at the deadline the last renew set (within a scheduling slack), not after a
    // call that never returns.
    assert!(
        stopped >= deadline && stopped - deadline < SLACK,
        "a stopped {:?} after its deadline",
        stopped.saturating_duration_since(deadline)
    );
    assert!(
        !is_leader(&b.role.borrow()),
        "b led while the row was locked"
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    let (_, role) = until(&mut b, "someone leads after the lock", |r| {
        matches!(r, Role::Standby { holder: Some(_) }) || is_leader(r)
    })
    .await;
    let holder = row(name).await.unwrap().0;
    match role {
        Role::Leader { .. } => assert_eq!(holder, "b"),
        Role::Standby { .. } => {
            until(&mut a, "a leads again", is_leader).await;
            assert_eq!(holder, "a");
        }
    }
    stop_all([a, b]).await;
}

/// The server ends the lease's session (`pg_terminate_backend`): the next try opens a new one
/// and succeeds, and so does the checkpoint's next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_server_ended_is_opened_again_at_the_next_call() {
    let name = "terminated";
    let coordinator = PgCoordinator::connect(&url(), name, "t", TIMINGS.lease, CALL_TIMEOUT)
        .await
        .unwrap();
    let (mut lease, checkpoint) = (coordinator.lease, coordinator.checkpoint);
    assert!(matches!(
        lease.try_acquire_or_renew().await.unwrap(),
        sasrelay::ha::Attempt::Holding { epoch: 0 }
    ));
    checkpoint.store(0, "before").await.unwrap();
    let db = admin("postgres").await;
    let sessions = "SELECT pid FROM pg_stat_activity WHERE application_name = 'sasrelay t'";
    let before: Vec<i32> = db
        .query(sessions, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        before.len(),
        2,
        "one session for the lease, one for the checkpoint"
    );
    for pid in &before {
        let ended: bool = db
            .query_one("SELECT pg_terminate_backend($1, 5000)", &[pid])
            .await
            .unwrap()
            .get(0);
        assert!(ended, "session {pid} still there");
    }
    assert!(matches!(
        lease.try_acquire_or_renew().await.unwrap(),
        sasrelay::ha::Attempt::Holding { epoch: 0 }
    ));
    assert_eq!(checkpoint.load().await.unwrap().unwrap().text, "before");
    checkpoint.store(0, "after").await.unwrap();
    let after: Vec<i32> = db
        .query(sessions, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} → {after:?}"
    );
    lease.release().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The checkpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_checkpoint_is_stored_and_loaded_under_its_epoch() {
    let a = pg(&url(), "stored", "a").checkpoint;
    assert_eq!(
        a.load().await.unwrap(),
        None,
        "nothing before the first store"
    );
    a.store(3, r#"{"sinks":{"hook":{"through_ms":1}}}"#)
        .await
        .unwrap();
    a.store(3, r#"{"sinks":{"hook":{"through_ms":2}}}"#)
        .await
        .unwrap();
    let stored = pg(&url(), "stored", "b")
        .checkpoint
        .load()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.epoch, 3);
    assert_eq!(stored.text, r#"{"sinks":{"hook":{"through_ms":2}}}"#);
    let big = "x".repeat(MAX_CHECKPOINT_BYTES + 1);
    assert!(matches!(
        a.store(3, &big).await,
        Err(CheckpointError::TooLarge(_))
    ));
    let at_most = "x".repeat(MAX_CHECKPOINT_BYTES);
    a.store(4, &at_most).await.unwrap();
    assert_eq!(
        a.load().await.unwrap().unwrap().text.len(),
        MAX_CHECKPOINT_BYTES
    );
}

/// The old leader (epoch 3) keeps writing while the new one (epoch 4) starts to, each on its
/// own connection: every write of the new one goes in at once; once it has, every write of
/// the old one is refused as fenced, and what is stored is always the new one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_leader_never_overwrites_its_successors_checkpoint() {
    let name = "fenced";
    let old = pg(&url(), name, "old").checkpoint;
    let new = pg(&url(), name, "new").checkpoint;
    old.store(3, "old 0").await.unwrap();
    new.load().await.unwrap();
    let writer = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for i in 1..=40 {
            outcomes.push(old.store(3, &format!("old {i}")).await);
        }
        outcomes
    });
    for i in 0..40 {
        new.store(4, &format!("new {i}"))
            .await
            .unwrap_or_else(|e| panic!("new {i}: {e}"));
        let stored = new.load().await.unwrap().unwrap();
        assert_eq!(stored.epoch, 4, "{stored:?}");
        assert!(stored.text.starts_with("new "), "{stored:?}");
    }
    let outcomes = writer.await.unwrap();
    for o in &outcomes {
        assert!(
            matches!(
                o,
                Ok(()) | Err(CheckpointError::Fenced { stored: 4, mine: 3 })
            ),
            "{o:?}"
        );
    }
    let stored = new.load().await.unwrap().unwrap();
    assert_eq!((stored.epoch, stored.text.as_str()), (4, "new 39"));
    // Once fenced, fenced for good.
    if let Some(i) = outcomes.iter().position(|o| o.is_err()) {
        assert!(outcomes[i..].iter().all(|o| o.is_err()), "{outcomes:?}");
    }
    let after = pg(&url(), name, "old").checkpoint.store(3, "late").await;
    assert!(
        matches!(after, Err(CheckpointError::Fenced { stored: 4, mine: 3 })),
        "{after:?}"
    );
    assert_eq!(new.load().await.unwrap().unwrap().text, "new 39");
}

// ---------------------------------------------------------------------------------------------
// Setup and errors
// ---------------------------------------------------------------------------------------------

/// A user who may not create tables gets an error naming the table and the privilege; once
/// an owner created them and granted it the rows, it needs nothing more.
#[tokio::test]
async fn a_refused_table_creation_names_the_table_and_the_privilege() {
    let su = admin("postgres").await;
    su.batch_execute("DROP DATABASE IF EXISTS restricted")
        .await
        .unwrap();
    su.batch_execute("CREATE DATABASE restricted")
        .await
        .unwrap();
    su.batch_execute(
        "DO $$ BEGIN CREATE ROLE lowly LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    .await
    .unwrap();
    let url = format!(
        "postgres://lowly:never-shown@127.0.0.1:{}/restricted?sslmode=disable",
        server()
    );
    let refused = match PgCoordinator::connect(&url, "r", "a", TIMINGS.lease, CALL_TIMEOUT).await {
        Err(e @ PgError::Schema { .. }) => e.to_string(),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("lowly created tables in a schema it may not create in"),
    };
    for part in [
        "sasrelay_lease",
        "127.0.0.1",
        "/restricted",
        "lowly",
        "CREATE privilege on schema public",
    ] {
        assert!(refused.contains(part), "{part:?} not in: {refused}");
    }
    assert!(!refused.contains("never-shown"), "{refused}");

    // An owner creates them (the statements of the module doc) and grants the rows.
    admin("restricted")
        .await
        .batch_execute(
            "CREATE TABLE sasrelay_lease (name text PRIMARY KEY, holder text NOT NULL DEFAULT '', \
             epoch bigint NOT NULL DEFAULT 0, expires timestamptz NOT NULL, \
             renewed timestamptz NOT NULL); \
         CREATE TABLE sasrelay_checkpoint (name text PRIMARY KEY, epoch bigint NOT NULL, \
             checkpoint text NOT NULL, written timestamptz NOT NULL); \
         GRANT SELECT, INSERT, UPDATE ON sasrelay_lease, sasrelay_checkpoint TO lowly",
        )
        .await
        .unwrap();
    let coordinator = PgCoordinator::connect(&url, "r", "a", TIMINGS.lease, CALL_TIMEOUT)
        .await
        .unwrap();
    let mut lease = coordinator.lease;
    assert!(matches!(
        lease.try_acquire_or_renew().await.unwrap(),
        sasrelay::ha::Attempt::Holding { epoch: 0 }
    ));
    coordinator.checkpoint.store(0, "granted").await.unwrap();
}

/// Nothing listens: the error names the place and the call, and arrives within the call
/// timeout.
#[tokio::test]
async fn an_unreachable_server_fails_fast_naming_where() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://relay:hunter2@127.0.0.1:{port}/ha?sslmode=disable");
    let mut lease = lease(&url, "nowhere", "a");
    let started = Instant::now();
    let e = lease.try_acquire_or_renew().await.unwrap_err().to_string();
    assert!(started.elapsed() <= CALL_TIMEOUT + SLACK);
    assert!(e.contains(&format!("127.0.0.1:{port}/ha")), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// Whether the session of candidate `who` is encrypted, as the server sees it.
async fn encrypted(who: &str) -> bool {
    admin("postgres")
        .await
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&format!("sasrelay {who}")],
        )
        .await
        .unwrap()
        .get::<_, Option<bool>>(0)
        .unwrap_or_else(|| panic!("no session of {who}"))
}

/// `sslmode` as libpq reads it, over rustls: `disable` plain; `require` encrypted without a
/// check; `verify-full` checks the chain against `sslrootcert` and the address, `verify-ca`
/// the chain alone; a certificate from another CA, or a name the certificate does not hold,
/// is refused naming the place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured_over_rustls() {
    let server = the_server();
    let url = |host: &str, query: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?{query}",
            server.port
        )
    };
    let connect = |url: String, who: &'static str| async move {
        PgCoordinator::connect(&url, "tls", who, TIMINGS.lease, CALL_TIMEOUT).await
    };
    let ca = format!("sslrootcert={}", server.ca.display());
    let other = format!("sslrootcert={}", server.other_ca.display());

    let plain = connect(url("127.0.0.1", "sslmode=disable"), "tls-plain")
        .await
        .unwrap();
    assert!(!encrypted("tls-plain").await);
    let unchecked = connect(url("127.0.0.1", "sslmode=require"), "tls-require")
        .await
        .unwrap();
    assert!(encrypted("tls-require").await);
    let checked = connect(
        url("127.0.0.1", &format!("sslmode=verify-full&{ca}")),
        "tls-full",
    )
    .await
    .unwrap();
    assert!(encrypted("tls-full").await);
    let mut lease = checked.lease;
    assert!(matches!(
        lease.try_acquire_or_renew().await.unwrap(),
        sasrelay::ha::Attempt::Holding { .. }
    ));
    lease.release().await.unwrap();
    // The certificate names 127.0.0.1, not localhost: verify-ca does not mind.
    let chain_only = connect(
        url("localhost", &format!("sslmode=verify-ca&{ca}")),
        "tls-ca",
    )
    .await
    .unwrap();
    assert!(encrypted("tls-ca").await);

    for (host, query, what) in [
        (
            "localhost",
            format!("sslmode=verify-full&{ca}"),
            "a name the certificate lacks",
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-full&{other}"),
            "another CA",
        ),
        (
            "127.0.0.1",
            format!("sslmode=require&{other}"),
            "another CA under require",
        ),
        (
            "127.0.0.1",
            "sslmode=verify-full".to_string(),
            "the system's roots",
        ),
    ] {
        let e = match connect(url(host, &query), "tls-refused").await {
            Err(e @ PgError::Connect { .. }) => e.to_string(),
            Err(e) => panic!("{what}: another error: {e}"),
            Ok(_) => panic!("{what}: connected"),
        };
        assert!(
            e.contains(&format!("{host}:{}/postgres", server.port)),
            "{what}: {e}"
        );
        assert!(e.to_lowercase().contains("certificate"), "{what}: {e}");
    }
    drop((plain, unchecked, chain_only));
}
