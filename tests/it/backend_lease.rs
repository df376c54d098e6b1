//! The remote backend's lock (`backend::lease_lock`) against both real blob services, the local cloud
//! and Azurite, with the same expectations: one of two acquirers proceeds and the other waits or
//! fails naming the holder; a holder killed with SIGKILL, or that vanishes without releasing, loses
//! its 15 s lease and the next run takes over with a notice; the heartbeat keeps a lock far past its lease; a holder whose
//! renewals fail (cut off from the service, or its lease broken) fails `check()` before anyone else
//! can hold the lock; `force_unlock` breaks a held lease and names its holder.
//!
//! `lease_holder_child` is a no-op in a normal run: the SIGKILL test starts this binary again running
//! only that test (see [`SelfChild`]) with `HOLDER_ENV` naming a file that says which service to
//! lock; the child takes the lock, prints `LOCKED <pid>` and keeps it (its heartbeat renewing) until
//! it is killed.
//!
//! Every test uses 15 s leases (the shortest the service grants) renewed every 3 s, and runs the
//! two services side by side, so the file takes about as long as its longest test (~40 s).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stackform::backend::lease_lock::{
    LeaseLock, LeaseLockError, LeaseTakeoverReason, LeaseTiming, LostReason,
};
use stackform::provider::blob::BlobClient;
use stackform::provider::pipeline::{Pipeline, ReqwestTransport, SystemClock, build_http_client};
use stackform::provider::retry::RetryPolicy;
use stackform::provider::shared_key::SharedKeyCredential;
use stackform::state::{LockInfo, LockRequest, UnlockOutcome};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use url::Url;

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
        let held = acquire(&server.client(), &LockRequest::new("apply"))
            .await
            .expect("the child takes the lock");
        println!("LOCKED {}", std::process::id());
        // Held, renewed by the heartbeat, until the parent kills this process.
        std::future::pending::<()>().await;
        drop(held);
    });
}

/// A run killed with SIGKILL while it holds the lock (a real process, its heartbeat renewing until
/// the kill): the next run is refused naming that process while its lease lasts, then, waiting with
/// a timeout, takes the lock over with a notice naming the killed process, no command typed by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_with_sigkill_is_taken_over_when_its_lease_runs_out() {
    let (_c, _a, servers) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let run = async |s: &Server| {
        let ca = s.ca.as_ref().map(|pem| {
            let p = dir.path().join(format!("{}.pem", s.account));
            std::fs::write(&p, pem).unwrap();
            p
        });
        let spec = dir.path().join(format!("{}.json", s.account));
        let to = serde_json::json!({
            "endpoint": s.endpoint.as_str(),
            "account": s.account,
            "key": s.key,
            "ca": ca,
        });
        std::fs::write(&spec, to.to_string()).unwrap();
        let (mut child, pid) = tokio::task::spawn_blocking(move || {
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
        .unwrap();
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

        let request = LockRequest::new("apply").with_timeout(Duration::from_secs(45));
        let next = LeaseLock::acquire_with(s.client(), CONTAINER, LOCK, &request, timing(), |_| {})
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        let notice = next.notice.clone().expect("a takeover notice");
        assert_eq!(
            (notice.reason, notice.previous.pid),
            (LeaseTakeoverReason::Expired, pid),
            "{}",
            s.name
        );
        assert!(
            notice.to_string().contains(&format!("pid {pid}")),
            "{notice}"
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
    use stackform::provider::blob_conditional::{LeaseDuration, WriteCondition};
    let (_c, _a, servers) = servers().await;
    let run = async |s: &Server| {
        let client = s.client();
        client
            .put_blob_if(
                CONTAINER,
                LOCK,
                bytes::Bytes::new(),
                &Default::default(),
                &WriteCondition::IfNotExists,
                None,
            )
            .await
            .unwrap();
        let left: std::collections::BTreeMap<String, String> = [
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

        let foreign = uuid::Uuid::new_v4().to_string();
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
