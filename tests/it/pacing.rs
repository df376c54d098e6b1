//! Pacing to ARM's limits, end to end: a local cloud that enforces ARM's token buckets (`cloud up
//! --arm-throttle`) at tiny sizes; the real binary paces its ARM requests with the same buckets, so an
//! apply is never answered 429, and says so in its progress; a client that does not pace
//! (`--arm-pace off`) is throttled as ARM would throttle it. Request counts come from the run summary.
use crate::support::{Output, Test};

/// One storage account, four containers and two inline blobs: five ARM writes (the account, the
/// containers) and two blob uploads, which the data plane never paces.
const STACK: &str = r#"
stack: paced
cloud: { kind: local }
resources:
  store: { type: storage_account, name: pacedstore01 }
  c1: { type: blob_container, account: "${store.name}", name: one }
  c2: { type: blob_container, account: "${store.name}", name: two }
  c3: { type: blob_container, account: "${store.name}", name: three }
  c4: { type: blob_container, account: "${store.name}", name: four }
  b1: { type: blob, account: "${store.name}", container: "${c1.name}", name: a.txt, content: "a" }
  b2: { type: blob, account: "${store.name}", container: "${c2.name}", name: b.txt, content: "b" }
"#;

/// Writes: 2 at once, then 5 per second; deletes: 2 at once, then 1 per second (slow enough that the
/// unpaced destroy's four container deletes overrun it even on a loaded machine, where they may be
/// spread over more than a second); reads: 4 at once, then 20 per second.
const THROTTLE: &str = "reads=4/20,writes=2/5,deletes=2/1";

/// The `(total, arm, other, throttled)` of the summary's `Requests:` line.
fn requests(out: &Output) -> (u64, u64, u64, u64) {
    let n = out.numbers_on("Requests: ");
    (n[0], n[1], n[2], n.get(3).copied().unwrap_or(0))
}

#[test]
fn a_paced_apply_is_never_throttled_and_an_unpaced_client_is() {
    let t = Test::new()
        .stack(STACK)
        .local_cloud(&["--arm-throttle", THROTTLE]);
    let out = t.run(["apply", "--auto-approve"]).code(0);
    // The client took the cloud's buckets and waited for them instead of being answered 429.
    assert!(
        out.stderr.contains("paced: 5 writes/s"),
        "no pacing notice:\n{}",
        out.stderr
    );
    let (total, arm, other, throttled) = requests(&out);
    assert_eq!(throttled, 0, "a paced apply was throttled:\n{}", out.stderr);
    assert_eq!(total, arm + other);
    assert!(arm >= 5, "five ARM writes at least: {arm}");

    // The same cloud, a client that does not pace: four container deletes at once against a bucket
    // of two are answered 429 SubscriptionRequestsThrottled, retried after Retry-After, and counted.
    let out = t
        .run(["destroy", "--auto-approve", "--arm-pace", "off"])
        .code(0);
    let (_, _, _, throttled) = requests(&out);
    assert!(
        throttled >= 1,
        "an unpaced client was not throttled:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("paced:"), "{}", out.stderr);
}

/// Four storage accounts: the engine's first ARM requests are four reads at once (the create
/// preflight's look for objects that exist outside the state).
const FOUR_ACCOUNTS: &str = r#"
stack: learns
cloud: { kind: local }
resources:
  one: { type: storage_account, name: pacedlearn01 }
  two: { type: storage_account, name: pacedlearn02 }
  three: { type: storage_account, name: pacedlearn03 }
  four: { type: storage_account, name: pacedlearn04 }
"#;

/// The bug: the engine's buckets start full, but the cloud's bucket of the same principal was
/// still refilling from an earlier client's requests, so the apply's first burst of reads (sent
/// before any answer said what remained) was answered 429.
#[test]
fn a_paced_apply_learns_what_an_earlier_client_left_before_it_bursts() {
    // Six reads at once, then four per second.
    let t = Test::new()
        .stack(FOUR_ACCOUNTS)
        .local_cloud(&["--arm-throttle", "reads=6/4"]);
    // Another client of the same principal (the test's own calls) takes five of the six reads.
    t.rest(async |c| {
        let path = format!("{}?api-version=2022-09-01", c.rg());
        for _ in 0..5 {
            let get = c.arm(reqwest::Method::GET, &path, None).await;
            assert_eq!(get.status, 200, "{}", get.text);
        }
    });
    let out = t.run(["apply", "--auto-approve"]).code(0);
    let (_, arm, _, throttled) = requests(&out);
    assert_eq!(throttled, 0, "a paced apply was throttled:\n{}", out.stderr);
    assert!(arm >= 8, "four reads and four writes at least: {arm}");
}

#[test]
fn the_local_cloud_answers_429_as_arm_does_when_a_bucket_is_empty() {
    let t = Test::new().local_cloud(&["--arm-throttle", "reads=2/1"]);
    t.rest(async |c| {
        let path = format!("{}?api-version=2022-09-01", c.rg());
        let first = c.arm(reqwest::Method::GET, &path, None).await;
        assert_eq!(first.status, 200);
        assert_eq!(
            first
                .header("x-ms-ratelimit-remaining-subscription-reads")
                .as_deref(),
            Some("1")
        );
        let second = c.arm(reqwest::Method::GET, &path, None).await;
        assert_eq!(second.status, 200);
        let third = c.arm(reqwest::Method::GET, &path, None).await;
        assert_eq!(third.status, 429, "{:?}", third.body);
        assert_eq!(third.body["error"]["code"], "SubscriptionRequestsThrottled");
        assert_eq!(third.header("retry-after").as_deref(), Some("1"));
        assert_eq!(
            third
                .header("x-ms-ratelimit-remaining-subscription-reads")
                .as_deref(),
            Some("0")
        );
    });
}
