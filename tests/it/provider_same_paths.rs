//! Regression guard for a design rule: the provider talks to the local cloud and to Azure through the
//! same code. The only places allowed to look at `CloudKind::Local` are configuration (timeouts) and the
//! choice of credential; no resource, pipeline, retry or long-running-operation code may branch on it,
//! and the provider never imports the local cloud's module. (The resource code itself is exercised both
//! by unit tests with an Azure configuration over a scripted transport and by the local-cloud
//! integration tests.)
use crate::support::fixtures::{files_with_ext, repo_root};

#[test]
fn only_configuration_and_credentials_know_the_local_cloud() {
    let root = repo_root().join("src/provider");
    let files = files_with_ext(&root, "rs");
    assert!(files.len() > 10, "the provider's sources were not found");
    let mut offenders = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).unwrap();
        // Production code only: tests may set up either cloud.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let imports = code
            .lines()
            .any(|l| !l.trim_start().starts_with("//") && l.contains("crate::cloud"));
        assert!(!imports, "{rel} imports the local cloud");
        let uses = code.matches("CloudKind::Local").count() + code.matches("Self::Local").count();
        let allowed = match rel.as_str() {
            "config.rs" => 4, // parsing its name, "no well-known endpoints", its constructor, its LRO timeout
            "azure.rs" => 1,  // the credential: the local cloud's client secret
            _ => 0,
        };
        if uses > allowed {
            offenders.push(format!(
                "{rel}: {uses} use(s) of the local cloud kind (allowed {allowed})"
            ));
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}
