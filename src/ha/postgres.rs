//! The coordinator for replicas on VMs (issue 18, Build 5): the lease and the checkpoint as
//! rows of a PostgreSQL database, on the same traits as the Kubernetes Lease and ConfigMap.
//!
//! [`PgCoordinator::connect`] reads a `postgres://` URL and gives a [`PgLease`] (for
//! [`super::lease::Elector`]) and a [`PgCheckpoint`], each on a connection of its own (a renew
//! never queues behind a checkpoint write). Every call is bounded twice: on this side by
//! `call_timeout` (shorter than the renew deadline), connecting included; on the server by
//! `statement_timeout`, set to the same, so a statement we gave up on does not run on. A call
//! that did not finish (timed out, or its caller stopped waiting) leaves its connection
//! behind, and so does a connection the server closed: the next call opens a new one, and a
//! call that finds its idle connection dead tries once more on a fresh one (every statement
//! here may run twice: a renew or a store repeated is the same renew or store). A statement
//! given up on here may still run on the server until its `statement_timeout`; a renew that
//! lands late keeps the row held longer, never gives it to two.
//!
//! The tables, created on first use when missing (`CREATE` on the schema is needed only then;
//! afterwards `SELECT`, `INSERT` and `UPDATE` on both tables are enough):
//!
//! ```sql
//! CREATE TABLE sasrelay_lease (name text PRIMARY KEY, holder text NOT NULL DEFAULT '',
//!     epoch bigint NOT NULL DEFAULT 0, expires timestamptz NOT NULL, renewed timestamptz NOT NULL);
//! CREATE TABLE sasrelay_checkpoint (name text PRIMARY KEY, epoch bigint NOT NULL,
//!     checkpoint text NOT NULL, written timestamptz NOT NULL);
//! ```
//!
//! A try for the lease is one atomic upsert: it inserts the row held by us (epoch 0), or takes
//! the row if it is ours, released (empty holder) or expired, bumping the epoch on a change of
//! holder. Expiry is the server's clock alone (`clock_timestamp()` when the row is written and
//! when it is compared), never ours, so clock offset between replicas does not matter. It is
//! safe against the elector's deadline: a leader's deadline counts from before it sent the
//! renew, the row's expiry from when the server ran it, so the leader stops
//! `lease - renew_deadline` before any other candidate can take the row (given clocks that run
//! at the same rate). The row is never held by two: the upsert takes the row lock and checks
//! the holder and expiry on the row's latest version. A checkpoint store is likewise one
//! upsert that does nothing when the row holds a later epoch ([`CheckpointError::Fenced`]).
//!
//! TLS is rustls's (no OpenSSL), following the URL's `sslmode` as libpq does: `disable`
//! plain; `prefer` (the default) and `require` encrypt without checking the certificate
//! (`prefer` falls back to plain when the server has no TLS); `verify-ca` checks the chain,
//! `verify-full` the chain and the host name. The roots are the PEM file `sslrootcert` names
//! (with it, `require` checks the chain as libpq does), or the system's trust store when it is
//! absent or `system` (libpq's default file, `~/.postgresql/root.crt`, is not read). There is
//! no channel binding (`SCRAM-SHA-256-PLUS`) and no client certificate. Only the URL form is
//! read, not libpq's `key=value` form; a password in it is percent-encoded.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Mutex;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, NoTls};

use super::checkpoint::{CheckpointError, CheckpointStore, MAX_CHECKPOINT_BYTES, Stored};
use super::{Attempt, LeaseBackend};

/// The table of leases, one row per lease name.
pub const LEASE_TABLE: &str = "sasrelay_lease";

/// The table of checkpoints, one row per name.
pub const CHECKPOINT_TABLE: &str = "sasrelay_checkpoint";

const CREATE_LEASE: &str = "CREATE TABLE IF NOT EXISTS sasrelay_lease (\
    name text PRIMARY KEY, holder text NOT NULL DEFAULT '', \
    epoch bigint NOT NULL DEFAULT 0, expires timestamptz NOT NULL, \
    renewed timestamptz NOT NULL)";

const CREATE_CHECKPOINT: &str = "CREATE TABLE IF NOT EXISTS sasrelay_checkpoint (\
    name text PRIMARY KEY, epoch bigint NOT NULL, checkpoint text NOT NULL, \
    written timestamptz NOT NULL)";

/// The statement that creates `table` (one of the two).
fn create_statement(table: &str) -> &'static str {
    if table == CHECKPOINT_TABLE {
        CREATE_CHECKPOINT
    } else {
        CREATE_LEASE
    }
}

/// Serialises table creation among replicas starting together (two concurrent `CREATE TABLE
/// IF NOT EXISTS` can both try to create the row type and one fail): an advisory lock key,
/// "sasrelay" in ASCII.
const SCHEMA_LOCK: i64 = 0x7361_7372_656c_6179;

/// Takes the lease: inserts it held by `$2` (epoch 0), or takes the row if `$2` holds it, it is
/// released, or it expired by the server's clock; the epoch moves on a change of holder. No
/// row back: another holds it.
const ACQUIRE: &str = "INSERT INTO sasrelay_lease AS l (name, holder, epoch, expires, renewed) \
    VALUES ($1, $2, 0, clock_timestamp() + $3::bigint * interval '1 millisecond', clock_timestamp()) \
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
        epoch = l.epoch + CASE WHEN l.holder = EXCLUDED.holder THEN 0 ELSE 1 END, \
        expires = EXCLUDED.expires, renewed = EXCLUDED.renewed \
    WHERE l.holder = EXCLUDED.holder OR l.holder = '' OR l.expires < clock_timestamp() \
    RETURNING l.epoch";

/// Who holds the lease, after [`ACQUIRE`] found it taken.
const HOLDER: &str = "SELECT holder FROM sasrelay_lease WHERE name = $1";

/// Gives the lease up if `$2` holds it; the epoch stays.
const RELEASE: &str = "UPDATE sasrelay_lease SET holder = '', expires = clock_timestamp(), \
    renewed = clock_timestamp() WHERE name = $1 AND holder = $2";

/// Stores a checkpoint unless the row holds a later epoch than `$2`. No row back: fenced.
const STORE: &str = "INSERT INTO sasrelay_checkpoint AS c (name, epoch, checkpoint, written) \
    VALUES ($1, $2, $3, clock_timestamp()) \
    ON CONFLICT (name) DO UPDATE SET epoch = EXCLUDED.epoch, \
        checkpoint = EXCLUDED.checkpoint, written = EXCLUDED.written \
    WHERE c.epoch <= EXCLUDED.epoch \
    RETURNING c.epoch";

const LOAD: &str = "SELECT epoch, checkpoint FROM sasrelay_checkpoint WHERE name = $1";

/// Why a PostgreSQL call failed. `at` is `host:port/database`; no message holds the password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL could not be read.
    #[error("the PostgreSQL URL is not valid: {0}")]
    Url(String),
    /// A parameter other than the URL makes no sense.
    #[error("the PostgreSQL coordinator: {0}")]
    Settings(String),
    /// The TLS settings could not be set up (an unreadable `sslrootcert`, no system roots).
    #[error("TLS for PostgreSQL at {at}: {reason}")]
    Tls {
        /// Where.
        at: String,
        /// Why.
        reason: String,
    },
    /// No session: refused, unreachable, bad password, TLS handshake failed.
    #[error("cannot connect to PostgreSQL at {at}: {reason}")]
    Connect {
        /// Where.
        at: String,
        /// Why.
        reason: String,
    },
    /// A table is missing and could not be created.
    #[error(
        "cannot create table {table} at {at}: {reason}; user {user} needs the CREATE privilege on schema {schema} (GRANT CREATE ON SCHEMA {schema} TO {user}), or an owner can create it: {sql}",
        sql = create_statement(table)
    )]
    Schema {
        /// The table.
        table: &'static str,
        /// Where.
        at: String,
        /// The connected user.
        user: String,
        /// The schema it would be created in.
        schema: String,
        /// The server's answer.
        reason: String,
    },
    /// A statement failed (refused by the server, or the connection broke).
    #[error("the {what} on {table} at {at} failed: {reason}")]
    Query {
        /// What was asked ("lease try", "checkpoint store", …).
        what: &'static str,
        /// The table.
        table: &'static str,
        /// Where.
        at: String,
        /// Why.
        reason: String,
    },
    /// No answer within the call timeout.
    #[error("no answer from PostgreSQL at {at} to the {what} within {timeout:?}")]
    Timeout {
        /// What was asked.
        what: &'static str,
        /// Where.
        at: String,
        /// The call timeout.
        timeout: Duration,
    },
}

/// The lease and the checkpoint of one replica, on one database.
pub struct PgCoordinator {
    /// The lease, for [`super::lease::Elector::new`].
    pub lease: PgLease,
    /// The checkpoint store.
    pub checkpoint: PgCheckpoint,
}

impl PgCoordinator {
    /// Candidate `identity` (unique among replicas) for the lease `name`, whose checkpoint is
    /// kept under the same `name`, in the database at `url`; a lease lasts `lease` without a
    /// renew; every call gives up after `call_timeout` (shorter than the renew deadline). Reads
    /// the URL only: the first call connects and creates the tables.
    pub fn new(
        url: &str,
        name: &str,
        identity: &str,
        lease: Duration,
        call_timeout: Duration,
    ) -> Result<PgCoordinator, PgError> {
        if name.is_empty() || identity.is_empty() {
            return Err(PgError::Settings(
                "the lease name and the identity must not be empty".into(),
            ));
        }
        if call_timeout.is_zero() {
            return Err(PgError::Settings(
                "the call timeout must be over zero".into(),
            ));
        }
        let mut target = Target::parse(url)?;
        if target.config.get_application_name().is_none() {
            target
                .config
                .application_name(format!("sasrelay {identity}"));
        }
        let target = Arc::new(target);
        Ok(PgCoordinator {
            lease: PgLease {
                conn: Conn::new(target.clone(), call_timeout),
                name: name.to_string(),
                identity: identity.to_string(),
                lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX).max(1),
            },
            checkpoint: PgCheckpoint {
                conn: Arc::new(Conn::new(target, call_timeout)),
                name: name.to_string(),
            },
        })
    }

    /// [`PgCoordinator::new`], then both connections opened and the tables created, so a bad
    /// address, password or privilege shows at start.
    pub async fn connect(
        url: &str,
        name: &str,
        identity: &str,
        lease: Duration,
        call_timeout: Duration,
    ) -> Result<PgCoordinator, PgError> {
        let coordinator = PgCoordinator::new(url, name, identity, lease, call_timeout)?;
        coordinator.lease.conn.call(&Ping).await?;
        coordinator.checkpoint.conn.call(&Ping).await?;
        Ok(coordinator)
    }
}

/// The lease row `name` as a [`LeaseBackend`] (the module doc has the statement).
pub struct PgLease {
    conn: Conn,
    name: String,
    identity: String,
    /// How long the row stays held without a renew.
    lease_ms: i64,
}

impl PgLease {
    /// Opens the connection and creates the tables now if not done yet.
    pub async fn ready(&self) -> Result<(), PgError> {
        self.conn.call(&Ping).await
    }
}

impl LeaseBackend for PgLease {
    type Error = PgError;

    fn describe(&self) -> String {
        format!(
            "PostgreSQL {LEASE_TABLE} row {} at {}",
            self.name, self.conn.target.at
        )
    }

    fn identity(&self) -> &str {
        &self.identity
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, PgError> {
        self.conn
            .call(&Acquire {
                name: &self.name,
                identity: &self.identity,
                lease_ms: self.lease_ms,
            })
            .await
    }

    async fn release(&mut self) -> Result<(), PgError> {
        self.conn
            .call(&Release {
                name: &self.name,
                identity: &self.identity,
            })
            .await
    }
}

/// The checkpoint row `name` as a [`CheckpointStore`]; clones share one connection, and their
/// calls take turns on it.
#[derive(Clone)]
pub struct PgCheckpoint {
    conn: Arc<Conn>,
    name: String,
}

impl CheckpointStore for PgCheckpoint {
    type Error = PgError;

    fn describe(&self) -> String {
        format!(
            "PostgreSQL {CHECKPOINT_TABLE} row {} at {}",
            self.name, self.conn.target.at
        )
    }

    async fn load(&self) -> Result<Option<Stored>, PgError> {
        self.conn.call(&Load { name: &self.name }).await
    }

    async fn store(&self, epoch: u64, text: &str) -> Result<(), CheckpointError<PgError>> {
        self.store_before(epoch, text, None).await
    }
}

impl PgCheckpoint {
    /// [`CheckpointStore::store`], sending no write at or after `deadline` (the writer's term
    /// deadline).
    pub async fn store_before(
        &self,
        epoch: u64,
        text: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), CheckpointError<PgError>> {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::TooLarge(text.len()));
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Err(CheckpointError::Late);
        }
        let at = &self.conn.target.at;
        let mine = i64::try_from(epoch).map_err(|_| PgError::Query {
            what: "checkpoint store",
            table: CHECKPOINT_TABLE,
            at: at.clone(),
            reason: format!("epoch {epoch} is past a bigint"),
        })?;
        let stored = self
            .conn
            .call(&Store {
                name: &self.name,
                epoch: mine,
                text,
            })
            .await?;
        match stored {
            None => Ok(()),
            Some(stored) => Err(CheckpointError::Fenced {
                stored,
                mine: epoch,
            }),
        }
    }
}

/// One operation: its statements on a session. Each may run twice (see the module doc).
trait Statement: Sync {
    type Out: Send;
    /// What is asked, for errors.
    const WHAT: &'static str;
    /// The table it works on, for errors.
    const TABLE: &'static str;
    fn run<'a>(
        &'a self,
        client: &'a Client,
    ) -> impl Future<Output = Result<Self::Out, tokio_postgres::Error>> + Send + 'a;
}

/// Nothing but the connection and the tables.
struct Ping;

impl Statement for Ping {
    type Out = ();
    const WHAT: &'static str = "connection check";
    const TABLE: &'static str = LEASE_TABLE;
    async fn run(&self, _: &Client) -> Result<(), tokio_postgres::Error> {
        Ok(())
    }
}

struct Acquire<'s> {
    name: &'s str,
    identity: &'s str,
    lease_ms: i64,
}

impl Statement for Acquire<'_> {
    type Out = Attempt;
    const WHAT: &'static str = "lease try";
    const TABLE: &'static str = LEASE_TABLE;
    async fn run(&self, client: &Client) -> Result<Attempt, tokio_postgres::Error> {
        let won = client
            .query_opt(ACQUIRE, &[&self.name, &self.identity, &self.lease_ms])
            .await?;
        if let Some(row) = won {
            return Ok(Attempt::Holding {
                epoch: epoch(row.get(0)),
            });
        }
        let holder = client
            .query_opt(HOLDER, &[&self.name])
            .await?
            .map(|row| row.get::<_, String>(0))
            .filter(|h| !h.is_empty());
        Ok(Attempt::HeldBy { holder })
    }
}

struct Release<'s> {
    name: &'s str,
    identity: &'s str,
}

impl Statement for Release<'_> {
    type Out = ();
    const WHAT: &'static str = "lease release";
    const TABLE: &'static str = LEASE_TABLE;
    async fn run(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        client
            .execute(RELEASE, &[&self.name, &self.identity])
            .await
            .map(|_| ())
    }
}

struct Load<'s> {
    name: &'s str,
}

impl Statement for Load<'_> {
    type Out = Option<Stored>;
    const WHAT: &'static str = "checkpoint load";
    const TABLE: &'static str = CHECKPOINT_TABLE;
    async fn run(&self, client: &Client) -> Result<Option<Stored>, tokio_postgres::Error> {
        Ok(client
            .query_opt(LOAD, &[&self.name])
            .await?
            .map(|row| Stored {
                epoch: epoch(row.get(0)),
                text: row.get(1),
            }))
    }
}

struct Store<'s> {
    name: &'s str,
    epoch: i64,
    text: &'s str,
}

impl Statement for Store<'_> {
    /// The later epoch stored when fenced.
    type Out = Option<u64>;
    const WHAT: &'static str = "checkpoint store";
    const TABLE: &'static str = CHECKPOINT_TABLE;
    async fn run(&self, client: &Client) -> Result<Option<u64>, tokio_postgres::Error> {
        let written = client
            .query_opt(STORE, &[&self.name, &self.epoch, &self.text])
            .await?;
        if written.is_some() {
            return Ok(None);
        }
        // Fenced: the epoch that fenced us, read after the write (the upsert saw the row's
        // latest version, a read in the same statement would see an older one).
        let stored = client
            .query_opt(
                "SELECT epoch FROM sasrelay_checkpoint WHERE name = $1",
                &[&self.name],
            )
            .await?
            .map_or(u64::MAX, |row| epoch(row.get(0)));
        Ok(Some(stored))
    }
}

fn epoch(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// One connection to the database, opened on demand; calls take turns on it.
struct Conn {
    target: Arc<Target>,
    timeout: Duration,
    /// The open session; `None` before the first call and after one broke or was left.
    session: Mutex<Option<Session>>,
}

/// An open session and the task driving its socket (stopped when the session is dropped).
struct Session {
    client: Client,
    task: tokio::task::JoinHandle<()>,
    /// False while a call runs on it: a call that never finished leaves it false.
    clean: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Conn {
    fn new(target: Arc<Target>, timeout: Duration) -> Conn {
        Conn {
            target,
            timeout,
            session: Mutex::new(None),
        }
    }

    /// Runs `s` within the call timeout, on the open session or a new one.
    async fn call<S: Statement>(&self, s: &S) -> Result<S::Out, PgError> {
        match tokio::time::timeout(self.timeout, self.call_untimed(s)).await {
            Ok(r) => r,
            Err(_) => Err(PgError::Timeout {
                what: S::WHAT,
                at: self.target.at.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn call_untimed<S: Statement>(&self, s: &S) -> Result<S::Out, PgError> {
        let mut slot = self.session.lock().await;
        // A call that did not finish left its session in an unknown state (a statement may
        // still run, an answer may still come): start afresh.
        if slot
            .as_ref()
            .is_some_and(|s| !s.clean || s.client.is_closed())
        {
            *slot = None;
        }
        // A session opened by an earlier call may have died while idle (the server restarted,
        // an administrator ended it): one more try on a new one then.
        let mut may_retry = slot.is_some();
        loop {
            let session = match &mut *slot {
                Some(session) => session,
                None => slot.insert(self.open().await?),
            };
            session.clean = false;
            match s.run(&session.client).await {
                Ok(out) => {
                    session.clean = true;
                    return Ok(out);
                }
                Err(e) if session_over(&e) || session.client.is_closed() => {
                    *slot = None;
                    if !std::mem::take(&mut may_retry) {
                        return Err(self.query_error(S::WHAT, S::TABLE, &e));
                    }
                    tracing::debug!(at = %self.target.at, error = %crate::text::error_chain(&e), "PostgreSQL session ended; reconnecting.");
                }
                Err(e) => {
                    // The server refused the statement; the session itself is fine.
                    session.clean = true;
                    return Err(self.query_error(S::WHAT, S::TABLE, &e));
                }
            }
        }
    }

    /// A new session: connected, `statement_timeout` set, the tables there.
    async fn open(&self) -> Result<Session, PgError> {
        let target = &self.target;
        let connect = |e: tokio_postgres::Error| PgError::Connect {
            at: target.at.clone(),
            reason: reason(&e),
        };
        let (client, task) = match &target.tls {
            None => {
                let (client, connection) = target.config.connect(NoTls).await.map_err(connect)?;
                (client, tokio::spawn(drive(connection)))
            }
            Some(tls) => {
                let (client, connection) =
                    target.config.connect(tls.clone()).await.map_err(connect)?;
                (client, tokio::spawn(drive(connection)))
            }
        };
        let session = Session {
            client,
            task,
            clean: true,
        };
        let ms = self.timeout.as_millis().max(1);
        session
            .client
            .batch_execute(&format!("SET statement_timeout = {ms}"))
            .await
            .map_err(connect)?;
        self.ensure_tables(&session.client).await?;
        Ok(session)
    }

    /// Creates the tables that are missing. `CREATE TABLE IF NOT EXISTS` alone would need the
    /// `CREATE` privilege even when the table exists, so existing tables are looked up first.
    async fn ensure_tables(&self, client: &Client) -> Result<(), PgError> {
        let at = &self.target.at;
        let row = client
            .query_one(
                "SELECT to_regclass('sasrelay_lease') IS NOT NULL, \
                 to_regclass('sasrelay_checkpoint') IS NOT NULL, \
                 current_user::text, coalesce(current_schema(), '(none)')",
                &[],
            )
            .await
            .map_err(|e| self.query_error("table lookup", LEASE_TABLE, &e))?;
        let (lease, checkpoint): (bool, bool) = (row.get(0), row.get(1));
        if lease && checkpoint {
            return Ok(());
        }
        let (user, schema): (String, String) = (row.get(2), row.get(3));
        let refused = |table, e: &tokio_postgres::Error| PgError::Schema {
            table,
            at: at.clone(),
            user: user.clone(),
            schema: schema.clone(),
            reason: reason(e),
        };
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| refused(LEASE_TABLE, &e))?;
        let created = async {
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(|e| refused(LEASE_TABLE, &e))?;
            for table in [LEASE_TABLE, CHECKPOINT_TABLE] {
                client
                    .batch_execute(create_statement(table))
                    .await
                    .map_err(|e| refused(table, &e))?;
            }
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| refused(LEASE_TABLE, &e))
        }
        .await;
        if created.is_err() {
            // Best effort: a session whose rollback fails is dropped with the error anyway.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        created
    }

    fn query_error(
        &self,
        what: &'static str,
        table: &'static str,
        e: &tokio_postgres::Error,
    ) -> PgError {
        PgError::Query {
            what,
            table,
            at: self.target.at.clone(),
            reason: reason(e),
        }
    }
}

/// Drives a session's socket until it closes.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %crate::text::error_chain(&e), "PostgreSQL connection ended.");
    }
}

/// True when the session cannot be used after `e`: the connection broke, or the server ended
/// the session (a `FATAL`: terminated by an administrator, shutting down).
fn session_over(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => matches!(db.severity(), "FATAL" | "PANIC"),
        None => true,
    }
}

/// The server's message with its SQLSTATE, or the error chain.
fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                let _ = write!(text, ": {detail}");
            }
            crate::text::strip_control(&text)
        }
        None => crate::text::error_chain(e),
    }
}

/// Where to connect and how: the URL read.
struct Target {
    config: tokio_postgres::Config,
    /// `None` for `sslmode=disable`.
    tls: Option<RustlsConnect>,
    /// `host:port/database`, for messages.
    at: String,
}

/// What the URL's `sslmode` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Target {
    fn parse(url: &str) -> Result<Target, PgError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(PgError::Url(
                "expected a postgres:// or postgresql:// URL".into(),
            ));
        }
        let (rest, mode, root) = tls_params(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::Url(crate::text::error_chain(&e)))?;
        if config.get_hosts().is_empty() {
            return Err(PgError::Url(
                "the URL names no host (a Unix socket's directory is given as ?host=/path)".into(),
            ));
        }
        let at = place(&config);
        // libpq: `require` with a root file checks the chain, as `verify-ca` does.
        let mode = match (mode, &root) {
            (TlsMode::Require, Some(r)) if r != "system" => TlsMode::VerifyCa,
            (mode, _) => mode,
        };
        config.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        });
        let tls =
            match mode {
                TlsMode::Disable => None,
                mode => Some(RustlsConnect::new(mode, root.as_deref()).map_err(|reason| {
                    PgError::Tls {
                        at: at.clone(),
                        reason,
                    }
                })?),
            };
        Ok(Target { config, tls, at })
    }
}

/// The URL without `sslmode` and `sslrootcert` (tokio-postgres knows neither `verify-ca` nor
/// `verify-full` nor root files), and what they said.
fn tls_params(url: &str) -> Result<(String, TlsMode, Option<String>), PgError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), TlsMode::Prefer, None));
    };
    let (mut mode, mut root, mut kept) = (TlsMode::Prefer, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| PgError::Url(format!("the value of {key} is not UTF-8")))?;
        match key {
            "sslmode" => {
                mode = match &*value {
                    "disable" => TlsMode::Disable,
                    "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    other => {
                        return Err(PgError::Url(format!(
                            "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => root = Some(value.into_owned()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, root))
}

/// `host:port/database` (hosts joined by commas), never the user's password.
fn place(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(h) if h.contains(':') => format!("[{h}]:{port}"),
                Host::Tcp(h) => format!("{h}:{port}"),
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default();
    format!("{}/{db}", hosts.join(","))
}

/// rustls for tokio-postgres, with the verifier `sslmode` asks for.
#[derive(Clone)]
struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
}

impl RustlsConnect {
    fn new(mode: TlsMode, root: Option<&str>) -> Result<RustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => Arc::new(Unchecked {
                provider: provider.clone(),
            }),
            TlsMode::VerifyCa => Arc::new(ChainOnly(roots(root, &provider)?)),
            TlsMode::VerifyFull => roots(root, &provider)?,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(RustlsConnect {
            config: Arc::new(config),
        })
    }
}

/// The verifier for `sslrootcert`: the PEM file it names, or the system's trust store.
fn roots(
    root: Option<&str>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    match root {
        None | Some("system") => Ok(Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| format!("the system's trust store: {e}"))?,
        )),
        Some(path) => {
            let mut store = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
            if store.is_empty() {
                return Err(format!("sslrootcert {path} holds no certificate"));
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(store),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            Ok(verifier)
        }
    }
}

/// `prefer` and `require` as libpq has them: encrypted, the certificate not checked (the
/// handshake's signatures still are).
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the chain checked, the host name not.
#[derive(Debug)]
struct ChainOnly(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsHandshake;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsHandshake, Self::Error> {
        Ok(RustlsHandshake {
            config: self.config.clone(),
            name: ServerName::try_from(host.to_string())?,
        })
    }
}

/// One handshake with the server `name`.
struct RustlsHandshake {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsHandshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            connector
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
        })
    }
}

/// A session's socket under TLS.
struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// None: the `tls-server-end-point` hash depends on the certificate's signature
    /// algorithm, which would need an X.509 parser; SCRAM without `-PLUS` is used.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_loses_its_tls_parameters_and_keeps_the_rest() {
        let (rest, mode, root) = tls_params(
            "postgres://u:p%40ss@db.example:5433/ha?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db.example:5433/ha?application_name=x"
        );
        assert_eq!(mode, TlsMode::VerifyFull);
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (rest, mode, root) = tls_params("postgresql://h/db").unwrap();
        assert_eq!(
            (rest.as_str(), mode, root),
            ("postgresql://h/db", TlsMode::Prefer, None)
        );
        assert!(tls_params("postgres://h/db?sslmode=allow").is_err());
    }

    #[test]
    fn messages_name_the_place_never_the_password() {
        let target =
            Target::parse("postgres://relay:s3cret@db.example:5433/ha?sslmode=disable").unwrap();
        assert_eq!(target.at, "db.example:5433/ha");
        assert!(target.tls.is_none());
        let bad = match Target::parse("postgres://relay:s3cret@db.example:port/ha") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a port that is no number was accepted"),
        };
        assert!(!bad.contains("s3cret"), "{bad}");
        assert!(Target::parse("host=db user=relay").is_err());
    }

    #[test]
    fn require_with_a_root_file_checks_the_chain_as_libpq_does() {
        let e = match Target::parse(
            "postgres://relay@db/ha?sslmode=require&sslrootcert=/nonexistent/ca.pem",
        ) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a missing root file was accepted"),
        };
        assert!(
            e.contains("/nonexistent/ca.pem") && e.contains("db:5432/ha"),
            "{e}"
        );
        // Without one it encrypts unchecked and needs no file.
        assert!(Target::parse("postgres://relay@db/ha?sslmode=require").is_ok());
    }
}
