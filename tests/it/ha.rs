//! Leader election on a Lease (`sasrelay::ha::lease`) and the epoch-fenced checkpoint
//! (`sasrelay::ha::checkpoint`) against a strict API-server fake for Leases and ConfigMaps:
//! `GET`, `POST` (409 when it exists), `PUT` only at the current `resourceVersion` (409
//! otherwise), versions increasing; per-candidate routes so one candidate's traffic can be
//! cut; a freeze, latency and 500 blips. Timings
//! are scaled down (lease 2 s, renew deadline 1.4 s, retry 0.25 s).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sasrelay::ha::LeaseBackend;
use sasrelay::ha::checkpoint::{
    CheckpointApi, CheckpointError, CheckpointStore, MAX_CHECKPOINT_BYTES,
};
use sasrelay::ha::kube::{ApiError, KubeApi};
use sasrelay::ha::lease::{Elector, KubeLease, LeaseApi, LeaseRecord, Role, Timings};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) const TIMINGS: Timings = Timings {
    lease: Duration::from_millis(2000),
    renew_deadline: Duration::from_millis(1400),
    retry: Duration::from_millis(250),
};

/// Scheduling slack allowed on a loaded 2-core machine (the whole suite runs at once).
pub(crate) const SLACK: Duration = Duration::from_millis(500);

/// Failure guard for every wait (a hang becomes a failure, never a pass).
pub(crate) const T: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Fake {
    /// Objects by (plural, name), each with its version.
    objects: HashMap<(String, String), (u64, Value)>,
    version: u64,
    /// Candidates whose requests are refused at the door (a cut network).
    cut: HashSet<String>,
    /// Requests still to answer 500 (an API server blip), whoever asks.
    fail: usize,
    /// Every checkpoint write that landed: who wrote it, under which epoch.
    checkpoint_writes: Vec<(String, u64)>,
    /// ConfigMaps answer 403 (a Role missing the checkpoint's rights).
    forbid_configmaps: bool,
    /// How long every request waits before it is answered (a slow API server or network).
    latency: Duration,
}

/// The 403 a Role without rights on ConfigMaps gets.
fn forbidden(f: &Fake, plural: &str) -> Option<Response> {
    (plural == "configmaps" && f.forbid_configmaps).then(|| {
        status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "configmaps is forbidden: User \"system:serviceaccount:sasrelay:sasrelay\" cannot get resource \"configmaps\"",
        )
    })
}

struct FakeState {
    fake: Mutex<Fake>,
    /// While true, every request waits (an API server frozen, or its etcd).
    frozen: watch::Sender<bool>,
}

type Shared = Arc<FakeState>;

/// What the door does with `who`'s request before it reaches an object: waits while the
/// server is frozen, then for its latency, refuses a cut candidate, answers a blip's 500.
async fn door(s: &FakeState, who: &str) -> Option<Response> {
    let mut frozen = s.frozen.subscribe();
    let _ = frozen.wait_for(|f| !*f).await;
    let latency = s.fake.lock().unwrap().latency;
    tokio::time::sleep(latency).await;
    let mut f = s.fake.lock().unwrap();
    if f.cut.contains(who) {
        return Some(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "cut",
        ));
    }
    if f.fail > 0 {
        f.fail -= 1;
        return Some(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "etcdserver: request timed out",
        ));
    }
    None
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": reason, "message": message, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

impl Fake {
    /// Stores `body` as `plural/name` at the next version; returns it as served.
    fn store(&mut self, plural: &str, name: &str, body: Value) -> Value {
        self.version += 1;
        let key = (plural.to_string(), name.to_string());
        self.objects.insert(key, (self.version, body));
        self.object(plural, name).unwrap()
    }

    /// `plural/name` as served, its version in `metadata.resourceVersion`.
    fn object(&self, plural: &str, name: &str) -> Option<Value> {
        let key = (plural.to_string(), name.to_string());
        self.objects.get(&key).map(|(v, obj)| {
            let mut obj = obj.clone();
            obj["metadata"]["resourceVersion"] = json!(v.to_string());
            obj
        })
    }
}

async fn read(
    State(s): State<Shared>,
    Path((who, _ns, plural, name)): Path<(String, String, String, String)>,
) -> Response {
    if let Some(refused) = door(&s, &who).await {
        return refused;
    }
    let f = s.fake.lock().unwrap();
    if let Some(refused) = forbidden(&f, &plural) {
        return refused;
    }
    match f.object(&plural, &name) {
        Some(obj) => axum::Json(obj).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{plural} \"{name}\" not found"),
        ),
    }
}

async fn create(
    State(s): State<Shared>,
    Path((who, _ns, plural)): Path<(String, String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Some(refused) = door(&s, &who).await {
        return refused;
    }
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut f = s.fake.lock().unwrap();
    if let Some(refused) = forbidden(&f, &plural) {
        return refused;
    }
    if f.object(&plural, &name).is_some() {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{plural} \"{name}\" already exists"),
        );
    }
    note_write(&mut f, &who, &plural, &body);
    let created = f.store(&plural, &name, body);
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

async fn update(
    State(s): State<Shared>,
    Path((who, _ns, plural, name)): Path<(String, String, String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Some(refused) = door(&s, &who).await {
        return refused;
    }
    let mut f = s.fake.lock().unwrap();
    if let Some(refused) = forbidden(&f, &plural) {
        return refused;
    }
    let Some(current) = f.object(&plural, &name) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{plural} \"{name}\" not found"),
        );
    };
    let Some(asked) = body["metadata"]["resourceVersion"].as_str() else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.resourceVersion: Invalid value: must be specified for an update",
        );
    };
    if asked != current["metadata"]["resourceVersion"] {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    note_write(&mut f, &who, &plural, &body);
    axum::Json(f.store(&plural, &name, body)).into_response()
}

fn note_write(f: &mut Fake, who: &str, plural: &str, body: &Value) {
    if plural == "configmaps" {
        let epoch = body["data"]["epoch"]
            .as_str()
            .and_then(|e| e.parse().ok())
            .unwrap_or(u64::MAX);
        f.checkpoint_writes.push((who.to_string(), epoch));
    }
}

/// The fake API server: Leases and ConfigMaps, one route prefix per candidate.
pub(crate) struct LeaseServer {
    base: String,
    state: Shared,
}

impl LeaseServer {
    pub(crate) async fn start() -> LeaseServer {
        let state = Arc::new(FakeState {
            fake: Mutex::default(),
            frozen: watch::channel(false).0,
        });
        let mut app = Router::new();
        for group in ["apis/coordination.k8s.io/v1", "api/v1"] {
            app = app
                .route(
                    &format!("/{{who}}/{group}/namespaces/{{ns}}/{{plural}}"),
                    post(create),
                )
                .route(
                    &format!("/{{who}}/{group}/namespaces/{{ns}}/{{plural}}/{{name}}"),
                    get(read).put(update),
                );
        }
        let app = app.with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        LeaseServer { base, state }
    }

    /// The API server as candidate `who` reaches it (its own route, so its traffic can be
    /// cut).
    fn kube(&self, who: &str) -> KubeApi {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        KubeApi::new(http, &format!("{}/{who}", self.base), "sasrelay", None)
    }

    /// The Lease as candidate `who` reaches it.
    fn api(&self, who: &str) -> LeaseApi {
        LeaseApi::new(self.kube(who), "sasrelay-main")
    }

    pub(crate) fn cut(&self, who: &str) {
        self.state.fake.lock().unwrap().cut.insert(who.to_string());
    }

    /// ConfigMaps answer 403 while `on` (a Role missing the checkpoint's rights).
    pub(crate) fn forbid_configmaps(&self, on: bool) {
        self.state.fake.lock().unwrap().forbid_configmaps = on;
    }

    /// Candidate `who`'s traffic reaches the server again.
    pub(crate) fn uncut(&self, who: &str) {
        self.state.fake.lock().unwrap().cut.remove(who);
    }

    /// The URL candidate `who` reaches the server at (`[ha] api_url`).
    pub(crate) fn url_for(&self, who: &str) -> String {
        format!("{}/{who}", self.base)
    }

    /// The lease's holder now, if any.
    pub(crate) fn holder(&self) -> Option<String> {
        self.record()
            .and_then(|r| r.holder_identity)
            .filter(|h| !h.is_empty())
    }

    /// The lease's transitions (the epoch) now.
    pub(crate) fn epoch(&self) -> u64 {
        self.record().and_then(|r| r.lease_transitions).unwrap_or(0)
    }

    /// The checkpoint writes that landed so far: (who, epoch).
    pub(crate) fn checkpoint_writes(&self) -> Vec<(String, u64)> {
        self.state.fake.lock().unwrap().checkpoint_writes.clone()
    }

    /// The next `n` requests answer 500.
    fn fail_next(&self, n: usize) {
        self.state.fake.lock().unwrap().fail = n;
    }

    /// Every request from now on waits `latency` before it is answered.
    fn slow_down(&self, latency: Duration) {
        self.state.fake.lock().unwrap().latency = latency;
    }

    /// Every request waits from now until [`LeaseServer::thaw`].
    fn freeze(&self) {
        self.state.frozen.send_replace(true);
    }

    fn thaw(&self) {
        self.state.frozen.send_replace(false);
    }

    fn record(&self) -> Option<LeaseRecord> {
        let lease = self
            .state
            .fake
            .lock()
            .unwrap()
            .object("leases", "sasrelay-main");
        lease.map(|o| serde_json::from_value(o["spec"].clone()).unwrap())
    }

    /// Writes `spec` as another holder would (no version check: the fake's own hand).
    fn write_as_other(&self, spec: Value) {
        let body = json!({"metadata": {"name": "sasrelay-main"}, "spec": spec});
        self.state
            .fake
            .lock()
            .unwrap()
            .store("leases", "sasrelay-main", body);
    }
}

/// A running candidate: its published role, and the token that stops it.
pub(crate) struct Candidate {
    pub(crate) role: watch::Receiver<Role>,
    pub(crate) stop: CancellationToken,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// Runs `elector` (on any backend) as a candidate.
pub(crate) fn spawn_candidate<B: LeaseBackend>(elector: Elector<B>) -> Candidate {
    let (tx, role) = watch::channel(Role::Standby { holder: None });
    let stop = CancellationToken::new();
    let task = tokio::spawn(elector.run(tx, stop.clone()));
    Candidate { role, stop, task }
}

fn elector(server: &LeaseServer, who: &str) -> Elector<KubeLease> {
    Elector::new(KubeLease::new(server.api(who), who, TIMINGS.lease), TIMINGS)
}

fn run(server: &LeaseServer, who: &str) -> Candidate {
    spawn_candidate(elector(server, who))
}

/// Waits until `c` publishes a role satisfying `pred`; returns when it saw it.
pub(crate) async fn until(
    c: &mut Candidate,
    what: &str,
    pred: impl Fn(&Role) -> bool,
) -> (Instant, Role) {
    let r = tokio::time::timeout(T, c.role.wait_for(|r| pred(r)))
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {T:?}"))
        .expect("candidate running")
        .clone();
    (Instant::now(), r)
}

/// `a` leading and `b` standing by, having seen `a` hold the lease.
async fn leader_and_standby(server: &LeaseServer) -> (Candidate, Candidate) {
    let mut a = run(server, "a");
    until(&mut a, "a leads", is_leader).await;
    let mut b = run(server, "b");
    until(
        &mut b,
        "b sees a",
        |r| matches!(r, Role::Standby { holder: Some(h) } if h == "a"),
    )
    .await;
    (a, b)
}

/// Stops every candidate (a leader releases) and waits for each.
pub(crate) async fn stop_all(candidates: impl IntoIterator<Item = Candidate>) {
    for c in candidates {
        c.stop.cancel();
        c.task.await.unwrap();
    }
}

pub(crate) fn is_leader(r: &Role) -> bool {
    matches!(r, Role::Leader { .. })
}

pub(crate) fn epoch(r: &Role) -> u64 {
    match r {
        Role::Leader { epoch, .. } => *epoch,
        Role::Standby { .. } => panic!("not a leader: {r:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_candidate_leads_and_the_other_takes_over_only_after_the_leader_stopped() {
    let server = LeaseServer::start().await;
    let mut a = run(&server, "a");
    let (_, first) = until(&mut a, "a leads the absent lease", is_leader).await;
    assert_eq!(epoch(&first), 0, "created with no transition");
    let mut b = run(&server, "b");
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

    // Cut a off the API server (it still runs): it must stop leading at its deadline, and b
    // take over only after that, with the next epoch.
    let cut_at = Instant::now();
    server.cut("a");
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
        "a led on {:?} after its lease traffic was cut",
        a_stopped - cut_at
    );
    let takeover = b_leads - cut_at;
    assert!(
        takeover <= TIMINGS.lease + TIMINGS.retry.mul_f64(2.4) + Duration::from_secs(1),
        "takeover took {takeover:?}"
    );
    assert_eq!(epoch(&role), 1, "a change of holder bumps the epoch");
    assert_eq!(
        server.record().unwrap().holder_identity.as_deref(),
        Some("b")
    );
    stop_all([a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_stops_releases_and_the_standby_takes_over_at_its_next_try() {
    let server = LeaseServer::start().await;
    let (a, mut b) = leader_and_standby(&server).await;
    let stopped = Instant::now();
    a.stop.cancel();
    a.task.await.unwrap();
    assert_eq!(server.record().unwrap().holder_identity, None, "released");
    let (at, role) = until(&mut b, "b takes the released lease", is_leader).await;
    assert!(
        at - stopped < TIMINGS.lease,
        "a released lease waited {:?}, as if it had expired",
        at - stopped
    );
    assert_eq!(epoch(&role), 1);
    stop_all([b]).await;
}

/// Eight candidates try at once, on an absent lease and then on an expired one: exactly one
/// wins each time (create refuses the others with 409, update by `resourceVersion`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_racing_for_a_free_lease_never_both_win() {
    let server = LeaseServer::start().await;
    let mut electors: Vec<Elector<KubeLease>> =
        (0..8).map(|i| elector(&server, &format!("c{i}"))).collect();
    for round in 0..2 {
        if round == 1 {
            // Released by someone no longer around: free for all.
            server.write_as_other(json!({"holderIdentity": "", "leaseTransitions": 5}));
        }
        let mut tries = tokio::task::JoinSet::new();
        for (i, mut e) in std::mem::take(&mut electors).into_iter().enumerate() {
            tries.spawn(async move {
                let won = e.try_acquire_or_renew().await.unwrap_or(false);
                (i, e, won)
            });
        }
        let mut done: Vec<(usize, Elector<KubeLease>, bool)> = tries.join_all().await;
        done.sort_by_key(|(i, _, _)| *i);
        let won: Vec<bool> = done.iter().map(|(_, _, w)| *w).collect();
        electors = done.into_iter().map(|(_, e, _)| e).collect();
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
        let holder = server.record().unwrap().holder_identity.unwrap();
        let winner = won.iter().position(|w| *w).unwrap();
        assert_eq!(holder, format!("c{winner}"));
        if round == 1 {
            assert_eq!(server.record().unwrap().lease_transitions, Some(6));
        }
    }
}

/// Expiry is judged by when this candidate saw the record change, on its own clock: a holder
/// whose clock is an hour behind (its `renewTime` long past) but who renews is never
/// overtaken; one whose clock is an hour ahead but who stopped is, a lease duration later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_the_local_clock_not_the_holders_renew_time() {
    let server = LeaseServer::start().await;
    let renew = |offset: time::Duration| {
        let at = sasrelay::ha::lease::micro_time(time::OffsetDateTime::now_utc() + offset);
        json!({"holderIdentity": "other", "leaseDurationSeconds": 1, "renewTime": at, "leaseTransitions": 2})
    };
    server.write_as_other(renew(-time::Duration::hours(1)));
    let mut me = elector(&server, "me");
    let started = Instant::now();
    let mut ticks = tokio::time::interval(TIMINGS.retry);
    while started.elapsed() < 3 * TIMINGS.lease {
        ticks.tick().await;
        server.write_as_other(renew(-time::Duration::hours(1)));
        assert!(
            !me.try_acquire_or_renew().await.unwrap(),
            "took a lease its holder renews, because its renewTime is an hour old"
        );
    }

    server.write_as_other(renew(time::Duration::hours(1)));
    let stopped = Instant::now();
    loop {
        ticks.tick().await;
        assert!(
            stopped.elapsed() < T,
            "never took a lease whose holder stopped"
        );
        if me.try_acquire_or_renew().await.unwrap() {
            break;
        }
    }
    let waited = stopped.elapsed();
    assert!(
        waited >= TIMINGS.lease && waited < TIMINGS.lease + 2 * TIMINGS.retry + SLACK,
        "took it after {waited:?}"
    );
    assert_eq!(epoch(&me.role()), 3);
}

/// An API server that stops answering (frozen, every call hangs): the leader stops leading at
/// its renew deadline although its renew never returns, the standby takes nothing while it
/// cannot read; once the server answers again there is one leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renew_hangs_stops_at_its_deadline() {
    let server = LeaseServer::start().await;
    let (mut a, mut b) = leader_and_standby(&server).await;
    let deadline = match *a.role.borrow() {
        Role::Leader { deadline, .. } => deadline,
        ref r => panic!("{r:?}"),
    };
    server.freeze();
    let (stopped, _) = until(&mut a, "a stops leading", |r| !is_leader(r)).await;
    // Published at the deadline the last renew set (within a scheduling slack), not after
    // a call that never returns.
    assert!(
        stopped >= deadline && stopped - deadline < SLACK,
        "a stopped {:?} after its deadline",
        stopped.saturating_duration_since(deadline)
    );
    assert!(
        !is_leader(&b.role.borrow()),
        "b led while the API server was frozen"
    );
    server.thaw();
    let (_, role) = until(&mut b, "someone leads after the thaw", |r| {
        matches!(r, Role::Standby { holder: Some(_) }) || is_leader(r)
    })
    .await;
    let holder = server.record().unwrap().holder_identity;
    match role {
        Role::Leader { .. } => assert_eq!(holder.as_deref(), Some("b")),
        Role::Standby { .. } => {
            until(&mut a, "a leads again", is_leader).await;
            assert_eq!(holder.as_deref(), Some("a"));
        }
    }
    stop_all([a, b]).await;
}

/// A blip of 500s shorter than the renew deadline: the leader keeps leading (no flap), and
/// the standby does not take over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_api_server_blip_does_not_change_the_leader() {
    let server = LeaseServer::start().await;
    let mut a = run(&server, "a");
    until(&mut a, "a leads", is_leader).await;
    let b = run(&server, "b");
    // Three failed tries in a row (a's and b's together): well within a's 1.4 s deadline.
    server.fail_next(3);
    let flapped = tokio::time::timeout(3 * TIMINGS.lease, a.role.wait_for(|r| !is_leader(r)))
        .await
        .map(|r| r.map(|role| role.clone()));
    assert!(
        flapped.is_err(),
        "a stopped leading over a blip: {flapped:?}"
    );
    assert!(!is_leader(&b.role.borrow()));
    assert_eq!(epoch(&a.role.borrow()), 0);
    stop_all([a, b]).await;
}

/// A slow API server: with each call slower but a renew (a read and a write) still within the
/// renew deadline, the leader keeps leading; once a renew takes longer than the deadline, the
/// leader stops at its deadline and nobody leads (no try can finish in time) until the server
/// is fast again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_api_server_keeps_the_leader_until_a_renew_outlasts_its_deadline() {
    let server = LeaseServer::start().await;
    let (mut a, mut b) = leader_and_standby(&server).await;
    // 150 ms a call: a renew (a read and a write) takes 300 ms, and the next one, a retry
    // period later, ends about 0.9 s after the last one began: within the 1.4 s deadline.
    server.slow_down(Duration::from_millis(150));
    let flapped = tokio::time::timeout(3 * TIMINGS.lease, a.role.wait_for(|r| !is_leader(r)))
        .await
        .map(|r| r.map(|role| role.clone()));
    assert!(
        flapped.is_err(),
        "a stopped leading on a slow server: {flapped:?}"
    );
    assert!(!is_leader(&b.role.borrow()));
    // 800 ms a call: a renew (1.6 s) outlasts the deadline, and so does the standby's try to
    // take the lease (a read and a write): a stops leading at its deadline, and nobody leads
    // while the server is this slow.
    let slowed = Instant::now();
    server.slow_down(Duration::from_millis(800));
    let (stopped, _) = until(&mut a, "a stops leading", |r| !is_leader(r)).await;
    assert!(
        stopped - slowed <= TIMINGS.renew_deadline + Duration::from_millis(800) + SLACK,
        "a led {:?} after the server slowed down",
        stopped - slowed
    );
    assert!(
        !is_leader(&b.role.borrow()),
        "b leads on a server too slow to take the lease"
    );
    // Back to speed: one of them leads again, and the lease names it.
    server.slow_down(Duration::ZERO);
    let leader = tokio::time::timeout(T, async {
        tokio::select! {
            _ = a.role.wait_for(is_leader) => "a",
            _ = b.role.wait_for(is_leader) => "b",
        }
    })
    .await
    .expect("a leader once the server is fast again");
    assert_eq!(server.holder().as_deref(), Some(leader));
    stop_all([a, b]).await;
}

// ---------------------------------------------------------------------------------------------
// The checkpoint (a ConfigMap written under the writer's epoch)
// ---------------------------------------------------------------------------------------------

fn checkpoint(server: &LeaseServer, who: &str) -> CheckpointApi {
    CheckpointApi::new(server.kube(who), "sasrelay-main-checkpoint")
}

#[tokio::test]
async fn a_checkpoint_is_stored_and_loaded_under_its_epoch() {
    let server = LeaseServer::start().await;
    let a = checkpoint(&server, "a");
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
    let stored = checkpoint(&server, "b").load().await.unwrap().unwrap();
    assert_eq!(stored.epoch, 3);
    assert_eq!(stored.text, r#"{"sinks":{"hook":{"through_ms":2}}}"#);
    // A ConfigMap as Kubernetes keeps it: string data only.
    let cm = server
        .state
        .fake
        .lock()
        .unwrap()
        .object("configmaps", "sasrelay-main-checkpoint")
        .unwrap();
    assert_eq!(cm["data"]["epoch"], "3");
    assert_eq!(cm["kind"], "ConfigMap");

    let big = "x".repeat(MAX_CHECKPOINT_BYTES + 1);
    assert!(matches!(
        a.store(3, &big).await,
        Err(CheckpointError::TooLarge(_))
    ));
}

/// The old leader (epoch 3) keeps writing while the new one (epoch 4) starts to: once the
/// new one's first write is in, every write of the old one is refused as fenced, and what is
/// stored is always the new one's.
/// A writer past its term's deadline sends nothing, even where no successor has fenced the
/// checkpoint yet (a leader paused past its lease that wakes before its successor's first
/// write); before the deadline it writes.
#[tokio::test]
async fn a_write_past_the_terms_deadline_is_not_sent() {
    let server = LeaseServer::start().await;
    let old = checkpoint(&server, "old");
    old.store(3, "before").await.unwrap();
    let writes = server.checkpoint_writes().len();
    let late = old
        .store_before(3, "after the deadline", Some(Instant::now()))
        .await;
    assert!(matches!(late, Err(CheckpointError::Late)), "{late:?}");
    assert_eq!(
        server.checkpoint_writes().len(),
        writes,
        "a late write was sent"
    );
    assert_eq!(old.load().await.unwrap().unwrap().text, "before");
    old.store_before(3, "in time", Some(Instant::now() + T))
        .await
        .unwrap();
    assert_eq!(old.load().await.unwrap().unwrap().text, "in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_leader_never_overwrites_its_successors_checkpoint() {
    let server = LeaseServer::start().await;
    let old = checkpoint(&server, "old");
    let new = checkpoint(&server, "new");
    old.store(3, "old 0").await.unwrap();
    let writer = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for i in 1..=40 {
            outcomes.push(old.store(3, &format!("old {i}")).await);
        }
        outcomes
    });
    for i in 0..40 {
        // The old one writes in a tight loop here (every few seconds in the daemon), so the
        // new one may lose a few races before its first write; a conflict is retried.
        let mut conflicts = 0;
        loop {
            match new.store(4, &format!("new {i}")).await {
                Ok(()) => break,
                Err(CheckpointError::Api(ApiError::Conflict(_))) if conflicts < 20 => {
                    conflicts += 1
                }
                Err(e) => panic!("new {i}: {e}"),
            }
        }
    }
    let outcomes = writer.await.unwrap();
    let stored = new.load().await.unwrap().unwrap();
    assert_eq!((stored.epoch, stored.text.as_str()), (4, "new 39"));
    // Once fenced, fenced for good.
    let first_fenced = outcomes
        .iter()
        .position(|o| matches!(o, Err(CheckpointError::Fenced { stored: 4, mine: 3 })));
    if let Some(i) = first_fenced {
        assert!(
            outcomes[i..]
                .iter()
                .all(|o| matches!(o, Err(CheckpointError::Fenced { .. }))),
            "{outcomes:?}"
        );
    }
    let after = checkpoint(&server, "old").store(3, "late").await;
    assert!(
        matches!(after, Err(CheckpointError::Fenced { stored: 4, mine: 3 })),
        "{after:?}"
    );
    assert_eq!(new.load().await.unwrap().unwrap().text, "new 39");
}

/// An API server (or a proxy before it) answering with far more than any Lease or ConfigMap
/// is refused, not buffered whole.
#[tokio::test]
async fn an_oversized_api_answer_is_refused_not_buffered() {
    let huge = format!(
        "{{\"kind\":\"Lease\",\"pad\":\"{}\"}}",
        "x".repeat(10 << 20)
    );
    let app = Router::new().route(
        "/apis/x",
        get(move || {
            let huge = huge.clone();
            async move { ([("content-type", "application/json")], huge) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let kube = KubeApi::new(reqwest::Client::new(), &base, "sasrelay", None);
    let e = tokio::time::timeout(T, kube.get(&format!("{base}/apis/x"), "lease read"))
        .await
        .expect("answered")
        .unwrap_err();
    assert!(
        matches!(&e, ApiError::Transport { reason, .. } if reason.contains("larger than 4 MiB")),
        "{e}"
    );
}
