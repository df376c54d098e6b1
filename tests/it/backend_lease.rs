//! The remote backend's lock (`backend::lease_lock`) against both real blob services, the local cloud
//! and Azurite, with the same expectations: one of two acquirers proceeds and the other waits or
//! fails naming the holder; a holder killed with SIGKILL on this machine is taken over at once; one
//! killed on another machine, or that vanishes without releasing, loses its 15 s lease and the next
//! run takes over with a notice; the heartbeat keeps a lock far past its lease; a holder whose
//! renewals fail (cut off from the service, or its lease broken) fails `check()` before anyone else
//! can hold the lock; `force_unlock` breaks a held lease and names its holder.
//!
//! `lease_holder_child` is a no-op in a normal run: the SIGKILL tests start this binary again running
//! only that test (see [`SelfChild`]) with `HOLDER_ENV` naming a file that says which service to
//! lock (and, for a holder of another machine, which host and pid space to record); the child takes
//! the lock, prints `LOCKED <pid>` and keeps it (renewing) until it is killed.
//!
//! Every test uses 15 s leases (the shortest the service grants) renewed every 3 s, and runs the
//! two services side by side, so the file takes about as long as its longest test (~40 s).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stackform::backend::lease_lock::{
    LeaseLock, LeaseLockError, LeaseTakeoverReason, LeaseTiming, LostReason,
};
use stackform::provider::blob::BlobClient;
use stackform::provider::blob_conditional::{BlobRefusal, LeaseDuration, WriteCondition};
use stackform::provider::pipeline::{Pipeline, ReqwestTransport, SystemClock, build_http_client};
use stackform::provider::retry::RetryPolicy;
use stackform::provider::shared_key::SharedKeyCredential;
use stackform::state::{LockInfo, LockRequest, UnlockOutcome};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use url::Url;
use uuid::Uuid;

use crate::support::azurite::{Azurite, DEV_ACCOUNT, DEV_KEY};
use crate::support::child::{SelfChild, test_name};
use crate::support::cloud::Cloud;
use crate::support::wait_until;

const CONTAINER: &str = "state";
const LOCK: &str = "demo.lock";

fn timing() -> LeaseTiming {
    LeaseTiming {
        lease: Duration::from_secs(15),
        renew_every: Duration::from_secs(3),
        margin: Duration::from_secs(2),
        poll_max: Duration::from_secs(1),
    }
}

/// One blob service: where it listens and how to sign for its account.
struct Server {
    name: &'static str,
    endpoint: Url,
    account: String,
    key: String,
    ca: Option<Vec<u8>>,
}

impl Server {
    /// A client of its own (its own connection pool), as a separate process would have.
    fn client(&self) -> BlobClient {
        self.client_at(self.endpoint.clone())
    }

    fn client_at(&self, endpoint: Url) -> BlobClient {
        let pipeline = Pipeline::new(
            Arc::new(ReqwestTransport::new(
                build_http_client(self.ca.as_deref()).unwrap(),
            )),
            Arc::new(SystemClock::default()),
            RetryPolicy::fast(),
            None,
        );
        BlobClient::with_shared_key(
            pipeline,
            endpoint,
            SharedKeyCredential::new(&self.account, &self.key).unwrap(),
            "2025-11-05",
        )
    }

    fn addr(&self) -> SocketAddr {
        let host = self.endpoint.host_str().unwrap();
        format!("{host}:{}", self.endpoint.port().unwrap())
            .parse()
            .unwrap()
    }

    /// A client that reaches the service through `proxy`.
    fn client_via(&self, proxy: &Proxy) -> BlobClient {
        let mut endpoint = self.endpoint.clone();
        endpoint.set_port(Some(proxy.port)).unwrap();
        self.client_at(endpoint)
    }
}

/// The local cloud (an account `leaseacct`) and Azurite, each with a container `state`; the servers
/// stop when the guards drop.
async fn servers() -> (Cloud, Azurite, [Server; 2]) {
    let c = Cloud::start_in_process().await;
    c.create_storage("leaseacct").await;
    let local = Server {
        name: "local cloud",
        endpoint: Url::parse(&c.blob_url("leaseacct", "")).unwrap(),
        account: "leaseacct".into(),
        key: c.account_key("leaseacct").await,
        ca: Some(std::fs::read(&c.info.ca_cert).unwrap()),
    };
    let azurite = Azurite::start().await;
    let az = Server {
        name: "azurite",
        endpoint: azurite.endpoint(),
        account: DEV_ACCOUNT.into(),
        key: DEV_KEY.into(),
        ca: None,
    };
    for s in [&local, &az] {
        s.client().create_container(CONTAINER).await.unwrap();
    }
    (c, azurite, [local, az])
}

async fn acquire(
    client: &BlobClient,
    request: &LockRequest,
) -> Result<stackform::backend::lease_lock::LeaseAcquired, LeaseLockError> {
    LeaseLock::acquire_with(client.clone(), CONTAINER, LOCK, request, timing(), |_| {}).await
}

/// Two runs start at once: exactly one takes the lock; the other, without a timeout, fails at once
/// naming the holder (who, host, command, since); with a timeout it waits, is told whom it waits
/// for, and gets the lock when the first releases it (no takeover notice: the release was clean).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_acquirers_proceeds_and_the_other_waits_or_fails_naming_the_holder() {
    let (_c, _a, servers) = servers().await;
    let run = async |s: &Server| {
        let (a, b) = (s.client(), s.client());
        let (apply, destroy) = (LockRequest::new("apply"), LockRequest::new("destroy"));
        let (ra, rb) = tokio::join!(acquire(&a, &apply), acquire(&b, &destroy));
        let (won, lost) = match (ra, rb) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            (ra, rb) => panic!("{}: not exactly one winner: {ra:?} / {rb:?}", s.name),
        };
        assert!(won.notice.is_none(), "{}: {:?}", s.name, won.notice);
        let holder = won.lock.info().clone();
        let LeaseLockError::Held {
            holder: Some(named),
            infinite: false,
            ..
        } = &lost
        else {
            panic!("{}: {lost:?}", s.name);
        };
        assert_eq!(named.as_ref(), &holder, "{}", s.name);
        let text = lost.to_string();
        for part in [
            holder.holder.as_str(),
            &format!("host {}", holder.host),
            &format!("`{}`", holder.command),
            &format!("since {}", holder.since),
            LOCK,
        ] {
            assert!(text.contains(part), "{}: {part} not in {text}", s.name);
        }
        assert_eq!(
            LeaseLock::holder(&b, CONTAINER, LOCK)
                .await
                .unwrap()
                .as_ref(),
            Some(&holder),
            "{}",
            s.name
        );

        // The other run waits this time; once it says whom it waits for, the first releases.
        let (told, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let request = LockRequest::new("destroy").with_timeout(Duration::from_secs(30));
        let waiter = LeaseLock::acquire_with(b.clone(), CONTAINER, LOCK, &request, timing(), {
            move |seen: Option<&LockInfo>| {
                let _ = told.send(seen.cloned());
            }
        });
        let release = async {
            let seen = heard.recv().await.unwrap();
            assert_eq!(seen.as_ref(), Some(&holder), "{}", s.name);
            won.lock.check().unwrap();
            won.lock.release().await.unwrap();
        };
        let (next, ()) = tokio::join!(waiter, release);
        let next = next.unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert!(next.notice.is_none(), "{}: {:?}", s.name, next.notice);
        assert_eq!(next.lock.info().command, "destroy");
        next.lock.release().await.unwrap();
        assert_eq!(LeaseLock::holder(&a, CONTAINER, LOCK).await.unwrap(), None);
    };
    let [local, az] = &servers;
    tokio::join!(run(local), run(az));
}

/// A run that vanishes without releasing (its runtime dropped with the lock and its heartbeat, as a
/// SIGKILL would leave it) keeps the lock only until its 15 s lease runs out: the next run, waiting
/// with a timeout, takes it over with no command typed by hand and a notice naming the old holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_holder_is_taken_over_when_its_lease_runs_out() {
    let (_c, _a, servers) = servers().await;
    let run = async |s: &Server| {
        let doomed = s.client();
        let killed = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let acquired = rt
                .block_on(acquire(&doomed, &LockRequest::new("apply")))
                .unwrap();
            let info = acquired.lock.info().clone();
            // No release, no Drop: the process is gone.
            std::mem::forget(acquired);
            drop(rt);
            info
        })
        .await
        .unwrap();

        let mut waited_for = None;
        let request = LockRequest::new("apply").with_timeout(Duration::from_secs(45));
        let next = LeaseLock::acquire_with(
            s.client(),
            CONTAINER,
            LOCK,
            &request,
            timing(),
            |seen: Option<&LockInfo>| waited_for = seen.cloned(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(waited_for.as_ref(), Some(&killed), "{}", s.name);
        let notice = next.notice.clone().expect("a takeover notice");
        assert_eq!(
            (notice.reason, &notice.previous),
            (LeaseTakeoverReason::Expired, &killed),
            "{}",
            s.name
        );
        let text = notice.to_string();
        assert!(
            text.contains(&killed.holder) && text.contains("ran out"),
            "{}: {text}",
            s.name
        );
        next.lock.check().unwrap();
        next.lock.release().await.unwrap();
    };
    let [local, az] = &servers;
    tokio::join!(run(local), run(az));
}

const HOLDER_ENV: &str = "STACKFORM_TEST_LEASE_HOLDER";

/// The child's work: with no `"as"` in its spec it takes `LeaseLock` on `LOCK` as this process; with
/// `"as": {"blob", "host", "pidspace"}` it holds that blob as a run of another machine would, at the
/// blob level: a 15 s lease, a holder record with that host name and pid space (its own pid), and a
/// renewal every 3 s, exactly what `LeaseLock` writes and does there.
#[test]
fn lease_holder_child() {
    let Ok(path) = std::env::var(HOLDER_ENV) else {
        return;
    };
    let to: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let text = |k: &str| to[k].as_str().unwrap().to_owned();
    let server = Server {
        name: "child",
        endpoint: Url::parse(&text("endpoint")).unwrap(),
        account: text("account"),
        key: text("key"),
        ca: to["ca"].as_str().map(|p| std::fs::read(p).unwrap()),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let Some(other) = to.get("as") else {
            let held = acquire(&server.client(), &LockRequest::new("apply"))
                .await
                .expect("the child takes the lock");
            println!("LOCKED {}", std::process::id());
            // Held, renewed by the heartbeat, until the parent kills this process.
            std::future::pending::<()>().await;
            drop(held);
            return;
        };
        let part = |k: &str| other[k].as_str().unwrap().to_owned();
        let (blob, client) = (part("blob"), server.client());
        create_blob(&client, &blob).await;
        let id = Uuid::new_v4().to_string();
        client
            .acquire_lease(CONTAINER, &blob, LeaseDuration::Seconds(15), Some(&id))
            .await
            .expect("the child takes the lease");
        let pid = std::process::id();
        let record = holder_record(&part("host"), pid, &part("pidspace"));
        client
            .set_metadata(
                CONTAINER,
                &blob,
                &record,
                &WriteCondition::Always,
                Some(&id),
            )
            .await
            .expect("the child records itself");
        println!("LOCKED {pid}");
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            client
                .renew_lease(CONTAINER, &blob, &id)
                .await
                .expect("the child renews");
        }
    });
}

/// Starts the holder child for `s` (holding as `as_other`, see [`lease_holder_child`]), waits until
/// it holds the lock and returns it with its pid.
async fn start_holder(
    s: &Server,
    dir: &std::path::Path,
    as_other: Option<serde_json::Value>,
) -> (SelfChild, u32) {
    let ca = s.ca.as_ref().map(|pem| {
        let p = dir.join(format!("{}.pem", s.account));
        std::fs::write(&p, pem).unwrap();
        p
    });
    let mut to = serde_json::json!({
        "endpoint": s.endpoint.as_str(),
        "account": s.account,
        "key": s.key,
        "ca": ca,
    });
    let mut name = s.account.clone();
    if let Some(other) = as_other {
        name = format!("{name}-{}", other["blob"].as_str().unwrap());
        to["as"] = other;
    }
    let spec = dir.join(format!("{name}.json"));
    std::fs::write(&spec, to.to_string()).unwrap();
    tokio::task::spawn_blocking(move || {
        let mut child = SelfChild::start(
            &test_name(module_path!(), "lease_holder_child"),
            (HOLDER_ENV, &spec),
        );
        let line = child.wait_for("LOCKED ");
        let pid: u32 = line
            .split_once("LOCKED ")
            .and_then(|(_, pid)| pid.trim().parse().ok())
            .expect("pid after LOCKED");
        (child, pid)
    })
    .await
    .unwrap()
}

/// This process's pid space as the lock records it (the kernel's boot id and pid namespace).
fn own_pid_space() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    format!("{}/{}", boot.trim(), ns.to_string_lossy())
}

/// This machine's host name, as the lock records it.
fn own_host() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    host.trim().to_owned()
}

/// The holder record `LeaseLock` writes into the lock blob's metadata, for a run of `apply` as pid
/// `pid` on `host` in `pidspace` (plain values: nothing here needs percent-encoding).
fn holder_record(host: &str, pid: u32, pidspace: &str) -> BTreeMap<String, String> {
    let (id, pid, holder) = (
        Uuid::new_v4().to_string(),
        pid.to_string(),
        format!("ci@{host}"),
    );
    [
        ("id", id.as_str()),
        ("holder", holder.as_str()),
        ("user", "ci"),
        ("host", host),
        ("pid", pid.as_str()),
        ("command", "apply"),
        ("since", "2026-12-05T15:00:00Z"),
        ("pidspace", pidspace),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Creates the empty lock blob `blob` unless it exists.
async fn create_blob(client: &BlobClient, blob: &str) {
    let created = client
        .put_blob_if(
            CONTAINER,
            blob,
            bytes::Bytes::new(),
            &BTreeMap::new(),
            &WriteCondition::IfNotExists,
            None,
        )
        .await;
    assert!(
        matches!(created, Ok(_) | Err(BlobRefusal::Changed { .. })),
        "{created:?}"
    );
}

/// A run killed with SIGKILL while it holds the lock (a real process, its heartbeat renewing until
/// the kill) on this machine: the next run is refused naming that process while it lives, and once it
/// is dead takes the lock over at once (no timeout, no wait for the lease) with a notice saying pid N
/// on this host is not running. (Before, the lease was waited out although the local backend's lock
/// takes a dead same-host holder's lock at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_with_sigkill_on_this_host_is_taken_over_at_once() {
    let (_c, _a, servers) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let run = async |s: &Server| {
        let (mut child, pid) = start_holder(s, dir.path(), None).await;
        let refused = acquire(&s.client(), &LockRequest::new("apply")).await;
        let Err(LeaseLockError::Held {
            holder: Some(holder),
            ..
        }) = &refused
        else {
            panic!("{}: {refused:?}", s.name);
        };
        assert_eq!(holder.pid, pid, "{}", s.name);
        child.kill();

        let started = Instant::now();
        let next = acquire(&s.client(), &LockRequest::new("apply"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}: {:?}",
            s.name,
            started.elapsed()
        );
        let notice = next.notice.clone().expect("a takeover notice");
        assert_eq!(
            (notice.reason, notice.previous.pid),
            (LeaseTakeoverReason::HolderDead, pid),
            "{}",
            s.name
        );
        let text = notice.to_string();
        assert!(
            text.starts_with("took over the lock")
                && text.contains(&format!("pid {pid} on this host is not running")),
            "{text}"
        );
        next.lock.check().unwrap();
        next.lock.release().await.unwrap();
    };
    let [local, az] = &servers;
    tokio::join!(run(local), run(az));
}

/// A holder killed with SIGKILL whose record names another machine (another host name; or this host
/// name but another pid space: a second machine or a container called the same) is refused to others
/// while its lease lasts, then, waiting with a timeout, taken over when its lease runs out, with a
/// notice naming the killed process: its pid says nothing about this machine, so it is never judged
/// dead from here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_with_sigkill_on_another_machine_is_taken_over_when_its_lease_runs_out() {
    let (_c, _a, servers) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let run = async |s: &Server, blob: &str, host: &str, pidspace: String| {
        let other = serde_json::json!({"blob": blob, "host": host, "pidspace": pidspace});
        let (mut child, pid) = start_holder(s, dir.path(), Some(other)).await;
        let lock = async |c: &BlobClient, request: &LockRequest| {
            LeaseLock::acquire_with(c.clone(), CONTAINER, blob, request, timing(), |_| {}).await
        };
        let refused = lock(&s.client(), &LockRequest::new("apply")).await;
        let Err(LeaseLockError::Held {
            holder: Some(holder),
            ..
        }) = &refused
        else {
            panic!("{} ({blob}): {refused:?}", s.name);
        };
        assert_eq!(
            (holder.pid, holder.host.as_str()),
            (pid, host),
            "{}",
            s.name
        );
        child.kill();
        let refused = lock(&s.client(), &LockRequest::new("apply")).await;
        assert!(
            matches!(&refused, Err(LeaseLockError::Held { holder: Some(h), .. }) if h.pid == pid),
            "{} ({blob}): killed, but not of this machine: {refused:?}",
            s.name
        );

        let request = LockRequest::new("apply").with_timeout(Duration::from_secs(45));
        let next = lock(&s.client(), &request)
            .await
            .unwrap_or_else(|e| panic!("{} ({blob}): {e}", s.name));
        let notice = next.notice.clone().expect("a takeover notice");
        assert_eq!(
            (
                notice.reason,
                notice.previous.pid,
                notice.previous.host.as_str()
            ),
            (LeaseTakeoverReason::Expired, pid, host),
            "{} ({blob})",
            s.name
        );
        assert!(
            notice.to_string().contains(&format!("pid {pid}")),
            "{notice}"
        );
        next.lock.release().await.unwrap();
    };
    let [local, az] = &servers;
    let (here, space) = (own_host(), own_pid_space());
    let elsewhere = format!("not-{here}");
    let other_space = "0b0e0000-0000-4000-8000-000000000000/pid:[4026531836]".to_owned();
    tokio::join!(
        run(local, "elsewhere.lock", &elsewhere, space.clone()),
        run(az, "elsewhere.lock", &elsewhere, space.clone()),
        run(local, "same-name.lock", &here, other_space.clone()),
        run(az, "same-name.lock", &here, other_space.clone()),
    );
}

/// Breaking a dead holder's lease is safe against a run that has just taken the lease over that
/// holder's record: the break is sent with `If-Match` on the blob as read, so once that run has
/// written its own record the break is refused and its lease stands; before it has, its lease is
/// broken and its own record write then fails (it starts over instead of holding a lock twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_is_broken_only_while_its_record_is_on_the_blob() {
    let (_c, _a, servers) = servers().await;
    let mut reaped = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = reaped.id();
    reaped.wait().unwrap();
    let record = |pid: u32| holder_record(&own_host(), pid, &own_pid_space());
    let run = async |s: &Server| {
        let fresh = s.client();
        create_blob(&fresh, LOCK).await;
        let put = |meta, lease: Option<String>| {
            let fresh = fresh.clone();
            async move {
                fresh
                    .set_metadata(
                        CONTAINER,
                        LOCK,
                        &meta,
                        &WriteCondition::Always,
                        lease.as_deref(),
                    )
                    .await
            }
        };
        // A dead holder's record, its lease gone; a fresh run takes the lease over it.
        put(record(dead_pid), None).await.unwrap();
        let id = Uuid::new_v4().to_string();
        fresh
            .acquire_lease(CONTAINER, LOCK, LeaseDuration::Seconds(15), Some(&id))
            .await
            .unwrap();
        let seen = fresh.lease_holder(CONTAINER, LOCK).await.unwrap().unwrap();
        // The fresh run writes its own (live) record: a break on the blob as read is refused.
        put(record(std::process::id()), Some(id.clone()))
            .await
            .unwrap();
        let refused = s
            .client()
            .break_lease_if_match(CONTAINER, LOCK, 0, &seen.etag)
            .await;
        assert!(
            matches!(refused, Err(BlobRefusal::Changed { .. })),
            "{}: {refused:?}",
            s.name
        );
        let held = acquire(&s.client(), &LockRequest::new("plan")).await;
        assert!(
            matches!(&held, Err(LeaseLockError::Held { holder: Some(h), .. }) if h.pid == std::process::id()),
            "{}: {held:?}",
            s.name
        );
        // Had it not written its record yet (the dead one still there), its lease is broken at once
        // and its record write then fails.
        put(record(dead_pid), Some(id.clone())).await.unwrap();
        let next = acquire(&s.client(), &LockRequest::new("apply"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        let notice = next.notice.clone().expect("a takeover notice");
        assert_eq!(
            (notice.reason, notice.previous.pid),
            (LeaseTakeoverReason::HolderDead, dead_pid),
            "{}",
            s.name
        );
        let late = put(record(std::process::id()), Some(id)).await;
        assert!(
            matches!(late, Err(BlobRefusal::LeaseLost { .. })),
            "{}: {late:?}",
            s.name
        );
        assert_eq!(
            LeaseLock::holder(&fresh, CONTAINER, LOCK)
                .await
                .unwrap()
                .as_ref(),
            Some(next.lock.info()),
            "{}",
            s.name
        );
        next.lock.release().await.unwrap();
    };
    let [local, az] = &servers;
    tokio::join!(run(local), run(az));
}

/// The heartbeat keeps a 15 s lease for 36 s (more than two lease durations): another run is
/// refused, naming the holder, all along, and the holder's `check()` never fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_keeps_a_lock_past_its_lease() {
    let (_c, _a, servers) = servers().await;
    let run = async |s: &Server| {
        let held = acquire(&s.client(), &LockRequest::new("apply"))
            .await
            .unwrap()
            .lock;
        let other = s.client();
        let start = Instant::now();
        let mut refusals = 0;
        while start.elapsed() < Duration::from_secs(36) {
            let refused = acquire(&other, &LockRequest::new("plan")).await;
            match refused {
                Err(LeaseLockError::Held {
                    holder: Some(h), ..
                }) if h.as_ref() == held.info() => refusals += 1,
                other => panic!("{}: after {:?}: {other:?}", s.name, start.elapsed()),
            }
            held.check()
                .unwrap_or_else(|e| panic!("{}: after {:?}: {e}", s.name, start.elapsed()));
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
        assert!(refusals >= 5, "{}: {refusals}", s.name);
        held.release().await.unwrap();
        let next = acquire(&other, &LockRequest::new("plan")).await.unwrap();
        assert!(next.notice.is_none(), "{}", s.name);
        next.lock.release().await.unwrap();
    };
    let [local, az] = &servers;
    tokio::join!(run(local), run(az));
}

/// How a proxy stops passing traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Forwarding.
    None,
    /// Connections are accepted (and held open) but nothing is forwarded: a partition.
    Blackhole,
    /// The port is closed and every connection dropped: the service is unreachable.
    Closed,
}

/// A TCP forwarder to a server, which a test can cut.
struct Proxy {
    port: u16,
    cut: watch::Sender<Cut>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, rx) = watch::channel(Cut::None);
        let mut accept_rx = rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { return };
                        tokio::spawn(forward(inbound, upstream, rx.clone()));
                    }
                    _ = accept_rx.wait_for(|c| *c == Cut::Closed) => return,
                }
            }
        });
        Proxy { port, cut }
    }
}

async fn forward(mut inbound: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<Cut>) {
    if *cut.borrow() == Cut::None {
        let Ok(mut outbound) = TcpStream::connect(upstream).await else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
            _ = cut.wait_for(|c| *c != Cut::None) => {}
        }
    }
    // Held open, unanswered, until the port closes.
    let _ = cut.wait_for(|c| *c == Cut::Closed).await;
}

/// A holder cut off from the service (a partition that swallows its requests, or a service that is
/// gone) fails `check()` once its lease could have run out, with the reason, and before another run
/// can hold the lock; that run then takes the lock over naming the cut-off holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_cut_off_longer_than_its_lease_fails_its_check_before_anyone_takes_over() {
    let (_c, _a, first) = servers().await;
    let run = async |s: &Server, how: Cut| {
        let proxy = Proxy::start(s.addr()).await;
        let held = acquire(&s.client_via(&proxy), &LockRequest::new("apply"))
            .await
            .unwrap()
            .lock;
        held.check().unwrap();
        proxy.cut.send_replace(how);
        let request = LockRequest::new("apply").with_timeout(Duration::from_secs(45));
        let next = LeaseLock::acquire_with(s.client(), CONTAINER, LOCK, &request, timing(), |_| {})
            .await
            .unwrap_or_else(|e| panic!("{} ({how:?}): {e}", s.name));
        // The moment another run holds the lock, the cut-off holder already refuses to write.
        let err = held.check().expect_err("the cut-off holder stopped");
        let LeaseLockError::Lost {
            why: LostReason::Unrenewed { since, last_error },
            ..
        } = &err
        else {
            panic!("{} ({how:?}): {err:?}", s.name);
        };
        assert!(*since >= Duration::from_secs(13), "{since:?}");
        assert!(last_error.is_some(), "{} ({how:?})", s.name);
        assert!(err.to_string().contains("could not be renewed"), "{err}");
        let notice = next.notice.clone().expect("a takeover notice");
        assert_eq!(
            (notice.reason, &notice.previous),
            (LeaseTakeoverReason::Expired, held.info()),
            "{} ({how:?})",
            s.name
        );
        next.lock.release().await.unwrap();
    };
    let [local, az] = &first;
    tokio::join!(
        run(local, Cut::Blackhole),
        run(az, Cut::Blackhole),
        // Two more servers, so the four runs do not share one lock.
        async {
            let (_c2, _a2, others) = servers().await;
            let [local2, az2] = &others;
            tokio::join!(run(local2, Cut::Closed), run(az2, Cut::Closed));
        }
    );
}

/// `force_unlock` breaks a held lease at once and names its holder; the holder's `check()` fails at
/// its next heartbeat with the service's reason, its release reports the lost lock, and the next run
/// takes the lock at once. Unlocking a lock nobody holds says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_unlock_breaks_a_held_lease_and_the_holder_stops() {
    let (_c, _a, servers) = servers().await;
    let run = async |s: &Server| {
        let admin = s.client();
        assert_eq!(
            LeaseLock::force_unlock(&admin, CONTAINER, LOCK)
                .await
                .unwrap(),
            UnlockOutcome::NotLocked,
            "{}",
            s.name
        );
        let held = acquire(&s.client(), &LockRequest::new("apply"))
            .await
            .unwrap()
            .lock;
        let outcome = LeaseLock::force_unlock(&admin, CONTAINER, LOCK)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            UnlockOutcome::BrokeHeldLock(Some(held.info().clone())),
            "{}",
            s.name
        );
        assert_eq!(
            LeaseLock::holder(&admin, CONTAINER, LOCK).await.unwrap(),
            None
        );
        wait_until(
            "the broken holder's heartbeat notices",
            Duration::from_secs(10),
            async || held.check().err(),
        )
        .await;
        let err = held.check().unwrap_err();
        assert!(
            matches!(
                &err,
                LeaseLockError::Lost {
                    why: LostReason::Revoked { .. },
                    ..
                }
            ),
            "{}: {err:?}",
            s.name
        );
        assert!(err.to_string().contains("broken"), "{err}");
        let next = acquire(&admin, &LockRequest::new("plan")).await.unwrap();
        assert!(next.notice.is_none(), "{}: {:?}", s.name, next.notice);
        let late = held.release().await;
        assert!(
            matches!(late, Err(LeaseLockError::Lost { .. })),
            "{}: {late:?}",
            s.name
        );
        next.lock.check().unwrap();
        assert_eq!(
            LeaseLock::holder(&admin, CONTAINER, LOCK)
                .await
                .unwrap()
                .as_ref(),
            Some(next.lock.info()),
            "the broken holder's release left the new lock alone"
        );
        next.lock.release().await.unwrap();
    };
    let [local, az] = &servers;
    tokio::join!(run(local), run(az));
}

/// What other writers leave on a lock blob: a holder record on a blob nobody leases (a release that
/// could not clear it) is taken over with a notice naming it as abandoned; an infinite lease (what
/// Terraform's azurerm backend takes, with no record we can read) is refused as one that never runs
/// out by itself, and `force_unlock` breaks it. A lock in a container that does not exist fails at
/// once saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_left_behind_and_infinite_leases_of_other_tools() {
    let (_c, _a, servers) = servers().await;
    let run = async |s: &Server| {
        let client = s.client();
        create_blob(&client, LOCK).await;
        let left: BTreeMap<String, String> = [
            ("id", "6f1c3c4e-5d0a-4d8e-9a53-0c2b8f0e7a11"),
            ("holder", "bob@ci-3"),
            ("user", "bob"),
            ("host", "ci-3"),
            ("pid", "77"),
            ("command", "destroy"),
            ("since", "2026-12-05T15:00:00Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        client
            .set_metadata(CONTAINER, LOCK, &left, &WriteCondition::Always, None)
            .await
            .unwrap();
        let taken = acquire(&client, &LockRequest::new("apply")).await.unwrap();
        let notice = taken.notice.clone().expect("a notice");
        assert_eq!(
            (
                notice.reason,
                notice.previous.holder.as_str(),
                notice.previous.pid
            ),
            (LeaseTakeoverReason::Abandoned, "bob@ci-3", 77),
            "{}",
            s.name
        );
        taken.lock.release().await.unwrap();

        let foreign = Uuid::new_v4().to_string();
        client
            .acquire_lease(CONTAINER, LOCK, LeaseDuration::Infinite, Some(&foreign))
            .await
            .unwrap();
        let refused = acquire(&s.client(), &LockRequest::new("apply")).await;
        let Err(
            err @ LeaseLockError::Held {
                holder: None,
                infinite: true,
                ..
            },
        ) = &refused
        else {
            panic!("{}: {refused:?}", s.name);
        };
        assert!(err.to_string().contains("never runs out"), "{err}");
        assert_eq!(
            LeaseLock::force_unlock(&client, CONTAINER, LOCK)
                .await
                .unwrap(),
            UnlockOutcome::BrokeHeldLock(None),
            "{}",
            s.name
        );
        let next = acquire(&s.client(), &LockRequest::new("apply"))
            .await
            .unwrap();
        assert!(next.notice.is_none(), "{}: {:?}", s.name, next.notice);
        next.lock.release().await.unwrap();

        // A container that does not exist is said so, not created and not waited for.
        let request = LockRequest::new("apply").with_timeout(Duration::from_secs(30));
        let nowhere = LeaseLock::acquire_with(
            s.client(),
            "no-such-container",
            LOCK,
            &request,
            timing(),
            |_| {},
        )
        .await;
        assert!(
            matches!(&nowhere, Err(LeaseLockError::NoContainer { location }) if location.contains("no-such-container")),
            "{}: {nowhere:?}",
            s.name
        );
    };
    let [local, az] = &servers;
    tokio::join!(run(local), run(az));
}
