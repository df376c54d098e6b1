//! Which backend a command uses, decided once from the stack file's `backend:` section, the
//! command's flags and the environment. Pure: no I/O, no network.
//!
//! Like Terraform's `-backend-config`, flags win over the environment, which wins over the stack
//! file:
//!
//! | setting | stack file | flag | environment |
//! | --- | --- | --- | --- |
//! | kind | `backend.kind` | `--backend KIND` | `STACKFORM_BACKEND` |
//! | account, container, key, resource_group, endpoint | `backend.<name>` | `--backend-config NAME=VALUE` | `STACKFORM_BACKEND_<NAME>` |
//!
//! `local` (a state file, `state/` beside the stack file) stays the default. For `azure_blob`,
//! `account` and `container` are required; `key` defaults to `<stack>.json`, and an environment
//! (`--env NAME`) keeps its state in its own blob, `env/NAME/<key>`. The account key is never a
//! setting: it comes from `ARM_ACCESS_KEY` (as for Terraform) or `STACKFORM_BACKEND_ACCESS_KEY`, read
//! by the CLI when it connects.
use crate::stack::{BackendKind, BackendSection, account_problem, container_problem, key_problem};

/// The settings `--backend-config` and `STACKFORM_BACKEND_*` may give.
pub(crate) const SETTINGS: [&str; 5] =
    ["account", "container", "key", "resource_group", "endpoint"];

/// Where a command's state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A state file (see `cli::place`).
    Local,
    AzureBlob(AzureBlob),
}

/// A state blob: `container/key` in `account`, with the lock `<key>.lock`, the journal
/// `<key>.journal` and the history index `<key>.history` beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureBlob {
    pub account: String,
    pub container: String,
    pub key: String,
    /// The account's resource group, when it is not the cloud's.
    pub resource_group: Option<String>,
    /// An explicit blob endpoint (an emulator's), instead of the account's from ARM.
    pub endpoint: Option<url::Url>,
}

impl AzureBlob {
    pub(crate) fn lock_blob(&self) -> String {
        format!("{}.lock", self.key)
    }
    pub(crate) fn journal_blob(&self) -> String {
        format!("{}.journal", self.key)
    }
    pub(crate) fn history_blob(&self) -> String {
        format!("{}.history", self.key)
    }
}

impl std::fmt::Display for AzureBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "azure_blob {}/{}/{}",
            self.account, self.container, self.key
        )
    }
}

/// What a command line and its environment say about the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    /// `--backend` (or `STACKFORM_BACKEND`).
    pub kind: Option<String>,
    /// `--backend-config NAME=VALUE`, in order (a later one wins).
    pub flags: Vec<(String, String)>,
    /// `STACKFORM_BACKEND_<NAME>` values found, by setting name.
    pub env: Vec<(String, String)>,
}

impl Overrides {
    /// The `STACKFORM_BACKEND_<NAME>` variables of the process.
    pub(crate) fn read_env(&mut self) {
        for name in SETTINGS {
            let var = format!("STACKFORM_BACKEND_{}", name.to_ascii_uppercase());
            if let Ok(v) = std::env::var(&var)
                && !v.is_empty()
            {
                self.env.push((name.to_string(), v));
            }
        }
    }
}

/// A backend that cannot be used as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendConfigError {
    #[error("unknown backend kind `{0}` (kinds: local, azure_blob)")]
    UnknownKind(String),
    #[error(
        "unknown backend setting `{0}` (settings: account, container, key, resource_group, endpoint)"
    )]
    UnknownSetting(String),
    #[error(
        "the azure_blob backend needs `{0}`: set it in the stack file's `backend:` section, with --backend-config {0}=VALUE, or STACKFORM_BACKEND_{1}"
    )]
    Missing(&'static str, String),
    #[error("backend setting `{name}` = `{value}` is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

/// Parses one `--backend-config NAME=VALUE`.
pub(crate) fn parse_setting(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!("expected NAME=VALUE, found `{s}`"));
    };
    let name = name.trim();
    if !SETTINGS.contains(&name) {
        return Err(BackendConfigError::UnknownSetting(name.to_string()).to_string());
    }
    Ok((name.to_string(), value.to_string()))
}

/// The backend of a command: the stack file's section with the environment over it and the flags
/// over both; for an environment (`env`), its own blob `env/NAME/<key>`.
pub(crate) fn resolve(
    section: Option<&BackendSection>,
    overrides: &Overrides,
    stack_name: &str,
    env: Option<&str>,
) -> Result<Backend, BackendConfigError> {
    let kind = match &overrides.kind {
        Some(k) => {
            BackendKind::parse(k).ok_or_else(|| BackendConfigError::UnknownKind(k.clone()))?
        }
        None => section.and_then(|s| s.kind).unwrap_or(BackendKind::Local),
    };
    if kind == BackendKind::Local {
        return Ok(Backend::Local);
    }
    let from_file = |name: &str| -> Option<String> {
        let s = section?;
        match name {
            "account" => s.account.clone(),
            "container" => s.container.clone(),
            "key" => s.key.clone(),
            "resource_group" => s.resource_group.clone(),
            _ => s.endpoint.clone(),
        }
    };
    let get = |name: &str| -> Option<String> {
        let last = |list: &[(String, String)]| {
            list.iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        last(&overrides.flags)
            .or_else(|| last(&overrides.env))
            .or_else(|| from_file(name))
    };
    let need = |name: &'static str| {
        get(name).ok_or_else(|| BackendConfigError::Missing(name, name.to_ascii_uppercase()))
    };
    let invalid = |name: &'static str, value: &str, why: &str| BackendConfigError::Invalid {
        name,
        value: value.to_string(),
        why: why.to_string(),
    };
    let account = need("account")?;
    if let Some(p) = account_problem(&account) {
        return Err(invalid("account", &account, p));
    }
    let container = need("container")?;
    if let Some(p) = container_problem(&container) {
        return Err(invalid("container", &container, p));
    }
    let key = get("key").unwrap_or_else(|| format!("{stack_name}.json"));
    if let Some(p) = key_problem(&key) {
        return Err(invalid("key", &key, p));
    }
    let key = match env {
        Some(env) => format!("env/{env}/{key}"),
        None => key,
    };
    let endpoint = match get("endpoint") {
        Some(e) => match url::Url::parse(&e) {
            Ok(mut u) if matches!(u.scheme(), "http" | "https") => {
                if !u.path().ends_with('/') {
                    let p = format!("{}/", u.path());
                    u.set_path(&p);
                }
                Some(u)
            }
            _ => return Err(invalid("endpoint", &e, "not an http(s) URL")),
        },
        None => None,
    };
    Ok(Backend::AzureBlob(AzureBlob {
        account,
        container,
        key,
        resource_group: get("resource_group"),
        endpoint,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> BackendSection {
        BackendSection {
            kind: Some(BackendKind::AzureBlob),
            span: crate::diag::Span::new(0, 0),
            account: Some("filestate".into()),
            container: Some("tfstate".into()),
            key: None,
            resource_group: None,
            endpoint: None,
        }
    }

    #[test]
    fn local_is_the_default_and_flags_win_over_env_over_the_file() {
        assert_eq!(
            resolve(None, &Overrides::default(), "demo", None),
            Ok(Backend::Local)
        );
        let o = Overrides {
            kind: None,
            flags: vec![("account".into(), "flagstate".into())],
            env: vec![
                ("account".into(), "envstate".into()),
                ("container".into(), "envbox".into()),
            ],
        };
        let Ok(Backend::AzureBlob(b)) = resolve(Some(&section()), &o, "demo", None) else {
            panic!("azure_blob");
        };
        assert_eq!(b.account, "flagstate");
        assert_eq!(b.container, "envbox");
        assert_eq!(b.key, "demo.json");
        let Ok(Backend::AzureBlob(b)) = resolve(
            Some(&section()),
            &Overrides::default(),
            "demo",
            Some("pr-7"),
        ) else {
            panic!("azure_blob");
        };
        assert_eq!(b.key, "env/pr-7/demo.json");
        assert_eq!(b.lock_blob(), "env/pr-7/demo.json.lock");
        let local = Overrides {
            kind: Some("local".into()),
            ..Overrides::default()
        };
        assert_eq!(
            resolve(Some(&section()), &local, "demo", None),
            Ok(Backend::Local)
        );
    }

    #[test]
    fn what_is_missing_or_wrong_is_named() {
        let o = Overrides {
            kind: Some("azure_blob".into()),
            ..Overrides::default()
        };
        let err = resolve(None, &o, "demo", None).unwrap_err();
        assert_eq!(
            err,
            BackendConfigError::Missing("account", "ACCOUNT".into())
        );
        assert!(
            err.to_string().contains("--backend-config account=VALUE"),
            "{err}"
        );
        let bad = Overrides {
            kind: Some("s3".into()),
            ..Overrides::default()
        };
        assert!(matches!(
            resolve(None, &bad, "demo", None),
            Err(BackendConfigError::UnknownKind(_))
        ));
        let bad_account = Overrides {
            flags: vec![("account".into(), "Bad_Name".into())],
            ..Overrides::default()
        };
        assert!(matches!(
            resolve(Some(&section()), &bad_account, "demo", None),
            Err(BackendConfigError::Invalid {
                name: "account",
                ..
            })
        ));
        assert!(parse_setting("access_key=x").is_err());
        assert_eq!(
            parse_setting("key=a=b"),
            Ok(("key".to_string(), "a=b".to_string()))
        );
    }
}
