//! The requests an apply sends, counted end to end: the real binary applies the synthetic stack of
//! `scripts/gen_stack.py` (storage account → blob container → blob chains) from empty against the
//! local cloud, and its `-v` log (one `http` line per response) is counted by kind. The count per
//! resource is what the latency of a large apply is made of (docs/PERFORMANCE.md).
use crate::support::Test;
use crate::support::reliability::synthetic_stack;

/// The `http` lines of a `-v` log whose method is `method` and whose URL path (before `?`) matches
/// `path`.
fn count(stderr: &str, method: &str, path: impl Fn(&str) -> bool) -> usize {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(" http method=")? + " http method=".len()..];
            let (m, rest) = rest.split_once(" url=")?;
            let url = rest.split_whitespace().next()?;
            let url = url.split('?').next()?;
            Some((m.to_owned(), url.to_owned()))
        })
        .filter(|(m, url)| m == method && path(url))
        .count()
}

/// Each storage account was read three times and each blob's account read once more: the probe for
/// objects that exist outside the state read every new account although checkNameAvailability had
/// just found its name free (so it exists nowhere), the create step read it again, and each blob
/// step read its account for the blob endpoint the account's own PUT had just answered with. Now an
/// account is read once (by its create step, just before the PUT), and a chain costs 9 requests
/// instead of 11 (3.0 per resource instead of 3.67).
#[test]
fn applying_the_synthetic_stack_reads_each_new_account_once() {
    let accounts = 10;
    let t = Test::new()
        .stack(&synthetic_stack(3 * accounts, "sfreq", "req"))
        .local_cloud(&["--retry-after-s", "0"]);
    let out = t.run(["-v", "apply", "--auto-approve"]).code(0);
    let log = &out.stderr;
    let account = |url: &str| {
        url.rsplit_once("/providers/Microsoft.Storage/storageAccounts/")
            .is_some_and(|(_, name)| name.starts_with("sfreq") && !name.contains('/'))
    };
    let container = |url: &str| url.ends_with("/blobServices/default/containers/data");
    let blob = |url: &str| url.ends_with("/data/hello.txt");
    // Storage account: checkNameAvailability (the preflight), the step's own "exists outside the
    // state?" GET, the PUT (and its operation's polls, counted below).
    assert_eq!(
        count(log, "POST", |u| u.ends_with("/checkNameAvailability")),
        accounts,
        "{log}"
    );
    assert_eq!(count(log, "GET", account), accounts, "{log}");
    assert_eq!(count(log, "PUT", account), accounts, "{log}");
    // Blob container: GET and PUT.
    assert_eq!(count(log, "GET", container), accounts, "{log}");
    assert_eq!(count(log, "PUT", container), accounts, "{log}");
    // Blob: the account's key (no data role: SharedKey), HEAD and PUT; no read of the account. The
    // run's first HEAD goes with the engine's own token and is refused (403, no blob data role):
    // once per run, then keys (`storage_account::BearerReads`).
    assert_eq!(count(log, "POST", |u| u.ends_with("/listKeys")), accounts);
    assert_eq!(count(log, "HEAD", blob), accounts + 1, "{log}");
    assert_eq!(count(log, "PUT", blob), accounts, "{log}");
    // Everything else the run summary counts: the namespace's api-versions (the preflight) and the
    // polls of the accounts' creates (one at most per account against this cloud). The cloud's
    // metadata, read while connecting, is not among the run's requests.
    let polls = count(log, "GET", |u| u.contains("/asyncoperations/"));
    assert!(polls <= 2 * accounts, "{log}");
    let total = out.numbers_on("Requests: ")[0] as usize;
    assert_eq!(total, 8 * accounts + 1 + polls + 1, "{log}");
}
