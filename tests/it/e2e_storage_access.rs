//! End-to-end tests of how the provider reaches the workspace's storage: empty files (Put Blob with
//! `Content-Length: 0`), and a `--hardened` local cloud whose workspace storage refuses shared keys and
//! whose default datastore is identity-based, with and without the deployer's data role.
use reqwest::Method;

use crate::support::Test;
use crate::support::cloud::Cloud;

/// The reference example in a throw-away folder, bound to a local cloud of its own started with `flags`.
fn reference(flags: &[&str]) -> Test {
    Test::new().example("managed-identity").local_cloud(flags)
}

/// The content length the local cloud records for `rest` (`{container}/{blob}`) of `account`, read
/// with Get Blob Properties over SharedKey.
async fn blob_length(c: &Cloud, account: &str, rest: &str) -> Option<String> {
    let key = c.account_key(account).await;
    let head = c
        .blob_shared_key(Method::HEAD, account, &key, rest, vec![], &[])
        .await;
    (head.status == 200).then(|| head.header("content-length").unwrap_or_default())
}

/// Put Blob of an empty body went out without `Content-Length`, which Azure (and now the local cloud)
/// refuses with 411 `MissingContentLengthHeader`: an empty `__init__.py` in the code folder or an
/// empty `blob` source failed the apply.
#[test]
fn empty_files_are_uploaded_with_content_length_0() {
    let s = reference(&[]);
    s.write("onlinescoring/__init__.py", "");
    s.write("hello.txt", "");
    let out = s.run(["apply", "--auto-approve"]).code(0);
    assert!(out.stderr.contains("Apply complete"), "{}", out.stderr);
    let account = s
        .run(["output", "blob_url"])
        .code(0)
        .stdout
        .trim()
        .split('/')
        .rev()
        .nth(2)
        .map(str::to_string)
        .expect("the blob URL names the account");
    assert_eq!(
        s.rest(async |c: &Cloud| blob_length(c, &account, "hello/hello.txt").await)
            .as_deref(),
        Some("0"),
        "the empty blob source is stored, empty"
    );
    s.run(["plan", "--detailed-exitcode"]).code(0);
    s.run(["destroy", "--auto-approve"]).code(0);
}
